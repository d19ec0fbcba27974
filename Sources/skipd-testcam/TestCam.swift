import ArgumentParser
import CGStreamer
import CGStreamerRTSP
import Foundation
import PipelineKit

/// A camera on 127.0.0.1: serves a test pattern or a file as H.264 over RTSP (libgstrtspserver), so the `rtspsrc`
/// path can be tried and tested without hardware.
@main
struct TestCam: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "skipd-testcam",
        abstract: "Serves a test pattern or a video file over RTSP on 127.0.0.1, like a camera.",
        discussion: """
            Prints one line, `serving rtsp://127.0.0.1:PORT/MOUNT`, once it listens; runs until SIGTERM or SIGINT \
            (exit 0). Exit 2 when the port is taken or the file is missing, 1 when GStreamer cannot build the stream.
            """)

    @Option(help: "TCP port to listen on (0: any free port; the one chosen is printed).")
    var port = 8554

    @Option(help: "Mount path of the stream.")
    var mount = "/test"

    @Option(help: "Video file to serve instead of the test pattern (decoded, scaled and re-encoded; played once).")
    var file: String?

    @Option(help: "Frame width in pixels (even).")
    var width = 320

    @Option(help: "Frame height in pixels (even).")
    var height = 240

    @Option(help: "Frames per second.")
    var fps = 15

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0…65535, not \(port)") }
        // The mount becomes part of the printed URL: keep it to characters that need no escaping.
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-_.~")
        guard mount.count > 1, mount.first == "/", mount.allSatisfy(allowed.contains) else {
            throw ValidationError("--mount must be a path like /test (letters, digits, / - _ . ~), not '\(mount)'")
        }
        // I420 (what players and x264's main profile expect) needs even sizes.
        for (name, value) in [("width", width), ("height", height)] {
            guard (16...7680).contains(value), value % 2 == 0 else {
                throw ValidationError("--\(name) must be even and 16…7680, not \(value)")
            }
        }
        guard (1...120).contains(fps) else { throw ValidationError("--fps must be 1…120, not \(fps)") }
    }

    func run() throws {
        // A parent spawning from a Dispatch or test-runner thread passes its blocked signal mask on, and SIGTERM
        // would then stay pending forever: unblock both before GStreamer starts threads (they inherit the mask).
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGINT)
        pthread_sigmask(SIG_UNBLOCK, &signals, nil)

        let source: String
        if let file {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory), !isDirectory.boolValue,
                FileManager.default.isReadableFile(atPath: file)
            else {
                printError("skipd-testcam: error: input file '\(file)' does not exist or is not a readable file")
                throw ExitCode(2)
            }
            let path = URL(fileURLWithPath: file).standardizedFileURL.path
            source = "filesrc location=\(Self.quoted(path)) ! decodebin ! videoconvert ! videoscale ! videorate"
        } else {
            source = "videotestsrc is-live=true"
        }
        // format=I420: left open, x264enc picks Y444 (High 4:4:4), which many players cannot decode.
        let launch = """
            ( \(source) ! video/x-raw,format=I420,width=\(width),height=\(height),framerate=\(fps)/1 \
            ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 \
            ! rtph264pay name=pay0 pt=96 config-interval=1 )
            """

        do {
            try GStreamer.initialize()
            // The factory parses the launch only when a client connects: parse it once now, so a missing plug-in
            // (x264enc is in gstreamer1.0-plugins-ugly) fails here rather than in every client.
            try Self.checkLaunch(launch)
        } catch {
            printError("skipd-testcam: error: \(error)")
            throw ExitCode(1)
        }

        guard let server = gst_rtsp_server_new() else {
            printError("skipd-testcam: error: cannot create the RTSP server")
            throw ExitCode(1)
        }
        defer { g_object_unref(server) }
        gst_rtsp_server_set_address(server, "127.0.0.1")
        gst_rtsp_server_set_service(server, String(port))
        guard let mounts = gst_rtsp_server_get_mount_points(server), let factory = gst_rtsp_media_factory_new() else {
            printError("skipd-testcam: error: cannot create the RTSP mount")
            throw ExitCode(1)
        }
        gst_rtsp_media_factory_set_launch(factory, launch)
        // One pipeline for all clients, as a camera has.
        gst_rtsp_media_factory_set_shared(factory, 1)
        gst_rtsp_mount_points_add_factory(mounts, mount, factory)  // takes the factory
        g_object_unref(mounts)

        // What gst_rtsp_server_attach does, but keeping the GError (it only logs it and returns 0).
        var error: UnsafeMutablePointer<GError>?
        guard let listener = gst_rtsp_server_create_source(server, nil, &error) else {
            let reason = error?.pointee.message.map { String(cString: $0) } ?? "unknown error"
            if let error { g_error_free(error) }
            printError("skipd-testcam: error: cannot listen on 127.0.0.1 port \(port): \(reason)")
            throw ExitCode(2)
        }
        defer { g_source_unref(listener) }
        g_source_attach(listener, nil)

        let loop = g_main_loop_new(nil, 0)
        defer { g_main_loop_unref(loop) }
        // g_unix_signal_add (not a DispatchSource): the handler runs on the GLib loop it stops, not in signal context.
        let sigterm = g_unix_signal_add(SIGTERM, quitLoop, UnsafeMutableRawPointer(loop))
        let sigint = g_unix_signal_add(SIGINT, quitLoop, UnsafeMutableRawPointer(loop))

        let url = "rtsp://127.0.0.1:\(gst_rtsp_server_get_bound_port(server))\(mount)"
        printError("skipd-testcam: \(file.map { "file \($0)" } ?? "test pattern") at \(width)x\(height), \(fps) fps")
        // Unbuffered write: a test waiting on a pipe sees the line at once.
        FileHandle.standardOutput.write(Data("serving \(url)\n".utf8))

        g_main_loop_run(loop)

        g_source_remove(sigterm)
        g_source_remove(sigint)
        g_source_destroy(listener)
        printError("skipd-testcam: stopped")
    }

    /// A gst-launch property value in double quotes (the parser unescapes `\"` and `\\`).
    static func quoted(_ value: String) -> String {
        "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    /// Builds (and drops) the launch description once, reporting what GStreamer could not create.
    static func checkLaunch(_ launch: String) throws {
        var error: UnsafeMutablePointer<GError>?
        let bin = gst_parse_launch(launch, &error)
        // gst_parse_launch can return a partial bin and an error together; the bin is floating.
        if let bin {
            let raw = UnsafeMutableRawPointer(bin)
            gst_object_unref(gst_object_ref_sink(raw))
        }
        if let error {
            defer { g_error_free(error) }
            let message = error.pointee.message.map { String(cString: $0) } ?? "cannot parse the stream"
            throw GStreamerError(element: "skipd-testcam", message: message)
        }
    }
}

/// SIGTERM/SIGINT handler, run by the main loop itself; stays installed so a second signal quits again.
private func quitLoop(_ loop: gpointer?) -> gboolean {
    g_main_loop_quit(OpaquePointer(loop))
    return 1
}

private func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
