import Foundation
import Testing

/// Runs the real `skipd-testcam` binary as a local RTSP camera and reads it with the real `skipd run`.
@Suite struct TestCamTests {
    /// Built beside the test bundle (the test target depends on it), else the default debug build.
    static let binary: URL = {
        let besideTests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("skipd-testcam")
        if FileManager.default.isExecutableFile(atPath: besideTests.path) { return besideTests }
        return CLITests.root.appendingPathComponent(".build/debug/skipd-testcam")
    }()

    /// Starts a camera; `url` is read from its `serving rtsp://…` line by `waitForURL`.
    func startCamera(_ arguments: [String]) throws -> ChildProcess {
        try ChildProcess(Self.binary, arguments)
    }

    func waitForURL(_ camera: ChildProcess, timeout: Double = 20) -> String? {
        camera.stdout.wait(timeout: timeout) { text in
            text.split(separator: "\n").first { $0.hasPrefix("serving ") }.map { String($0.dropFirst(8)) }
        }
    }

    @Test func skipdReadsTheTestPatternOverRTSP() throws {
        let camera = try startCamera(["--port", "0", "--width", "320", "--height", "240", "--fps", "15"])
        defer { camera.stop() }
        let url = try #require(waitForURL(camera), "no serving line: \(camera.stderr.text)")
        #expect(url.hasPrefix("rtsp://127.0.0.1:") && url.hasSuffix("/test"))

        let dir = try CLITests().temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // identity eos-after ends the stream after 20 frames; rtspsrc lets the EOS through like any source.
        try """
        rtspsrc location=\(url) protocols=tcp latency=200 ! rtph264depay ! avdec_h264 ! videoconvert
          ! video/x-raw,format=RGB ! identity eos-after=20 ! residual ! jsonsink location=out.jsonl
        """.write(to: dir.appendingPathComponent("rtsp.pipeline"), atomically: true, encoding: .utf8)
        let skipd = try ChildProcess(CLITests.binary, ["run", "rtsp.pipeline"], in: dir)
        defer { skipd.stop() }
        // 20 frames at 15 fps take under 2 s; past 60 s, Ctrl-C it (sinks flush) and count what arrived.
        if skipd.waitForExit(timeout: 60) == nil { skipd.process.interrupt() }
        #expect(skipd.waitForExit(timeout: 10) == 0, "\(skipd.stderr.all())")

        let lines = try String(contentsOf: dir.appendingPathComponent("out.jsonl"), encoding: .utf8)
            .split(separator: "\n")
        #expect(lines.count >= 15)
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let residual = try #require(object["residual"] as? [String: Any])
            // 320×240 in 16-pixel blocks.
            #expect(residual["block"] as? Int == 16)
            #expect(residual["columns"] as? Int == 20)
            #expect(residual["rows"] as? Int == 15)
        }

        camera.process.terminate()  // SIGTERM
        #expect(camera.waitForExit(timeout: 5) == 0, "\(camera.stderr.all())")
    }

    @Test func aSecondCameraOnTheSamePortExitsTwo() throws {
        let first = try startCamera(["--port", "0"])
        defer { first.stop() }
        let url = try #require(waitForURL(first), "no serving line: \(first.stderr.text)")
        let port = try #require(URLComponents(string: url)?.port)

        let second = try startCamera(["--port", "\(port)"])
        defer { second.stop() }
        #expect(second.waitForExit(timeout: 20) == 2)
        let message = second.stderr.all()
        #expect(message.contains("port \(port)") && message.contains("in use"), "\(message)")
        #expect(!second.stdout.all().contains("serving"))
    }

    @Test func aMissingFileExitsTwo() throws {
        let camera = try startCamera(["--port", "0", "--file", "/nonexistent/clip.mp4"])
        defer { camera.stop() }
        #expect(camera.waitForExit(timeout: 20) == 2)
        #expect(camera.stderr.all().contains("'/nonexistent/clip.mp4' does not exist"))
    }
}
