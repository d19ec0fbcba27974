import Foundation
import Synchronization
import Testing

/// `skipd serve` against real RTSP cameras (`skipd-testcam`) that die, come back and hang.
@Suite(.serialized) struct CameraRecoveryTests {
    static let testcam = CLITests.binary.deletingLastPathComponent().appendingPathComponent("skipd-testcam")

    /// A camera process and the port it serves on.
    final class Camera {
        let process = Process()
        let port: Int

        /// Starts `skipd-testcam` on `port` (0: any) and waits for its `serving` line.
        init(port: Int = 0) throws {
            process.executableURL = CameraRecoveryTests.testcam
            process.arguments = ["--port", "\(port)", "--width", "64", "--height", "48", "--fps", "15"]
            let out = Pipe()
            process.standardOutput = out
            process.standardError = Pipe()
            try process.run()
            var line = Data()
            while !line.contains(UInt8(ascii: "\n")) {
                let chunk = out.fileHandleForReading.availableData
                guard !chunk.isEmpty else { break }
                line.append(chunk)
            }
            let text = String(decoding: line, as: UTF8.self)
            let served = text.split(separator: ":").last.flatMap { Int($0.prefix { $0.isNumber }) }
            guard text.hasPrefix("serving rtsp://127.0.0.1:"), let served else {
                process.terminate()
                throw CameraError(message: "skipd-testcam did not start: \(text)")
            }
            self.port = served
        }

        func kill(_ signal: Int32 = SIGKILL) {
            Foundation.kill(process.processIdentifier, signal)
            if signal == SIGKILL || signal == SIGTERM { process.waitUntilExit() }
        }

        deinit { if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) } }
    }

    struct CameraError: Error { var message: String }

    /// Starts `skipd serve` with one pipeline per camera port (the URL carries a password that must never show).
    private func serve(_ cameras: [String: Int]) throws -> ServeProcess {
        try ServeProcess(
            pipelines: cameras.mapValues { port in
                """
                rtspsrc location=rtsp://viewer:secret@127.0.0.1:\(port)/test protocols=tcp latency=200
                  ! rtph264depay ! avdec_h264 ! videoconvert ! video/x-raw,format=RGB ! residual
                """
            },
            config: "watchdog = 2\nbackoff-min = 0.25\nbackoff-max = 1")
    }

    /// Open descriptors and threads of a process, from /proc.
    private func resources(_ pid: Int32) throws -> (fds: Int, threads: Int) {
        let fds = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        let line = status.split(separator: "\n").first { $0.hasPrefix("Threads:") } ?? ""
        return (fds, Int(line.split(separator: "\t").last ?? "") ?? -1)
    }

    /// Waits until `pipeline`'s frames flow for the `count`-th time (a "frames flowing" line per healthy run).
    private func flowing(_ log: StderrLines, _ pipeline: String, count: Int, limit: Duration) async throws -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if log.count(containing: ["frames flowing", "/\(pipeline).pipeline"]) >= count { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    @Test func camerasThatDieComeBackWithin5sAndTheOtherNeverStops() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.testcam.path), "skipd-testcam not built")
        var flaky = try Camera()
        let steady = try Camera()
        let serve = try serve(["flaky": flaky.port, "steady": steady.port])
        let log = serve.log
        #expect(try await flowing(log, "flaky", count: 1, limit: .seconds(60)))
        #expect(try await flowing(log, "steady", count: 1, limit: .seconds(60)))
        var baseline: (fds: Int, threads: Int)?
        for cycle in 1...10 {
            flaky.kill()
            try await Task.sleep(for: .milliseconds(300))
            flaky = try Camera(port: flaky.port)
            let back = ContinuousClock.now
            let recovered = try await flowing(log, "flaky", count: cycle + 1, limit: .seconds(5))
            #expect(recovered, "cycle \(cycle): no frames within 5 s of the camera's return")
            if !recovered { break }
            if cycle == 1 { baseline = try resources(serve.process.processIdentifier) }
            _ = back
        }
        // Resources after ten rebuilds: a leak would grow with every cycle; a few threads of GStreamer's pools
        // come and go on their own.
        let end = try resources(serve.process.processIdentifier)
        if let baseline {
            #expect(end.fds <= baseline.fds + 2, "fds \(baseline.fds) → \(end.fds)")
            #expect(end.threads <= baseline.threads + 4, "threads \(baseline.threads) → \(end.threads)")
        }
        // The steady camera's pipeline ran once, from start to end: never failed, never rebuilt.
        #expect(log.count(containing: ["frames flowing", "/steady.pipeline"]) == 1)
        #expect(log.count(containing: ["rebuilding", "/steady.pipeline"]) == 0)
        // The camera's password never reaches the log.
        #expect(!log.text.contains("secret"))
        #expect(serve.terminate().status == 0)
    }

    @Test func aHungCameraIsCaughtByTheWatchdogAndRecoveredAfterSIGCONT() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.testcam.path), "skipd-testcam not built")
        let camera = try Camera()
        let serve = try serve(["cam": camera.port])
        let log = serve.log
        #expect(try await flowing(log, "cam", count: 1, limit: .seconds(60)))
        camera.kill(SIGSTOP)
        // rtspsrc reports nothing for a hung server: only the 2 s watchdog notices.
        let deadline = ContinuousClock.now + .seconds(6)
        while log.count(containing: ["watchdog", "/cam.pipeline"]) == 0, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(log.count(containing: ["watchdog", "/cam.pipeline"]) >= 1)
        camera.kill(SIGCONT)
        #expect(try await flowing(log, "cam", count: 2, limit: .seconds(10)))
        camera.kill(SIGTERM)
        _ = serve.terminate()
    }
}

extension StderrLines {
    /// Lines containing every one of `parts`.
    func count(containing parts: [String]) -> Int {
        text.split(separator: "\n").filter { line in parts.allSatisfy { line.contains($0) } }.count
    }
}
