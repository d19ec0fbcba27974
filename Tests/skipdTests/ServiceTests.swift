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
        let socketPath = FileManager.default.temporaryDirectory
            .appendingPathComponent("sd-\(UUID().uuidString.prefix(8))").path
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        try #require(fd >= 0)
        defer {
            close(fd)
            unlink(socketPath)
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(socketPath.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sa_family_t>.size + socketPath.utf8.count))
            }
        }
        try #require(bound == 0)
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        func receive() -> String? {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buffer, buffer.count, 0)
            return n < 0 ? nil : String(decoding: buffer[..<n], as: UTF8.self)
        }

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
        environment["NOTIFY_SOCKET"] = socketPath
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
}
