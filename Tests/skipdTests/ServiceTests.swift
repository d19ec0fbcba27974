import Foundation
import Testing

/// skipd as a systemd service: the shipped unit passes `systemd-analyze verify`, and `run --supervise` speaks
/// sd_notify to a socket the test owns and drains on SIGTERM.
@Suite struct ServiceTests {
    static let root = CLITests.root

    @Test func theUnitPassesSystemdAnalyzeVerify() throws {
        let analyze = "/usr/bin/systemd-analyze"
        try #require(FileManager.default.isExecutableFile(atPath: analyze), "systemd-analyze missing (apt: systemd)")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("unit-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        // verify checks that ExecStart's binary exists: point it at the one under test.
        let unit = try String(
            contentsOf: Self.root.appendingPathComponent("packaging/systemd/skipd.service"), encoding: .utf8)
        #expect(unit.contains("ExecStart=/usr/local/bin/skipd serve "))
        let path = dir.appendingPathComponent("skipd.service")
        try unit.replacingOccurrences(of: "/usr/local/bin/skipd", with: CLITests.binary.path)
            .write(to: path, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: analyze)
        process.arguments = ["verify", "--man=no", "--generators=no", path.path]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = Pipe()
        try process.run()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        // verify exits 0 on unknown keys and bad values: only stderr tells.
        #expect(process.terminationStatus == 0)
        #expect(stderr.isEmpty, "\(stderr)")
    }

    @Test func superviseNotifiesSystemdAndDrainsOnSIGTERM() throws {
        let notify = try NotifySocket()
        func receive() -> String? { notify.receive() }

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("svc-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let pipeline = dir.appendingPathComponent("cam.pipeline")
        let output = dir.appendingPathComponent("cam.jsonl")
        try """
        videotestsrc is-live=true ! video/x-raw,width=64,height=48,framerate=30/1,format=RGB
          ! residual ! jsonsink location=\(output.path)
        """.write(to: pipeline, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = CLITests.binary
        process.arguments = ["run", "--quiet", "--supervise", pipeline.path]
        var environment = ProcessInfo.processInfo.environment
        environment["NOTIFY_SOCKET"] = notify.path
        environment["WATCHDOG_USEC"] = "400000"
        environment.removeValue(forKey: "WATCHDOG_PID")
        process.environment = environment
        process.standardOutput = Pipe()
        process.standardError = Pipe()
        try process.run()

        let ready = try #require(receive())
        #expect(ready.split(separator: "\n").contains("READY=1"))
        // Pings every WATCHDOG_USEC/2 = 0.2 s, with a status line that reports frames once they flow.
        var running = false
        for _ in 0..<40 where !running {
            let message = try #require(receive())
            #expect(message.hasPrefix("WATCHDOG=1"))
            running = message.contains("running") && !message.contains(" 0 frames")
        }
        #expect(running)
        let sent = ContinuousClock.now
        kill(process.processIdentifier, SIGTERM)
        var stopping = false
        while !stopping, let message = receive() { stopping = message == "STOPPING=1" }
        process.waitUntilExit()
        #expect(stopping)
        #expect(process.terminationStatus == 0)
        #expect(ContinuousClock.now - sent < .seconds(5))
        // The sink was flushed: every line it wrote is whole JSON.
        let lines = try String(contentsOf: output, encoding: .utf8).split(separator: "\n")
        #expect(!lines.isEmpty)
        #expect(lines.allSatisfy { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) != nil })
    }

    /// A stage that takes frames and never hands them on (here the sink: `identity` sleeps 600 s per buffer) stops
    /// WATCHDOG=1, says so in STATUS= and /metrics, and SIGTERM still ends the process within 5 s.
    @Test func aStuckStageStopsTheWatchdogPingsOfServe() async throws {
        let notify = try NotifySocket()
        let serve = try ServeProcess(
            pipelines: [
                "cam": """
                videotestsrc is-live=true ! video/x-raw,width=32,height=24,framerate=30/1,format=GRAY8
                  ! residual ! identity sleep-time=600000000 ! fakesink
                """
            ], config: "stuck = 1", environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"])
        #expect(notify.receive()?.split(separator: "\n").contains("READY=1") == true)
        var stuck = false
        for _ in 0..<60 where !stuck {
            let message = try #require(notify.receive())
            stuck = message == "STATUS=stuck: cam/sink"
        }
        #expect(stuck)
        // Three seconds of messages (one each 0.5 s): status lines, not one ping.
        let until = ContinuousClock.now + .seconds(3)
        var messages: [String] = []
        while ContinuousClock.now < until, let message = notify.receive() { messages.append(message) }
        #expect(messages.count >= 3 && !messages.contains { $0.contains("WATCHDOG=1") }, "\(messages)")
        let metrics = try await serve.request("/metrics").body
        let busy = metrics.split(separator: "\n").first { $0.hasPrefix("skipd_step_busy_seconds{") }
        #expect(busy?.contains("step=\"sink\"") == true, "\(metrics)")
        #expect((busy?.split(separator: " ").last).flatMap { Double($0) } ?? 0 > 1)
        // The sink cannot be stopped from outside: the drain deadline ends the process, and says why.
        let (status, took) = serve.terminate()
        #expect(took < .seconds(5))
        #expect(status == 1)
        #expect(serve.log.text.contains("did not finish within 4.5 s (holding a frame at SIGTERM: cam/sink"))
    }
}
