import Foundation
import PipelineKit
import Testing

/// sd_notify against a datagram socket the test owns, as systemd would hold it.
@Suite struct SystemdNotifierTests {
    /// Binds a Unix datagram socket at `path` (a leading NUL byte: abstract) and returns its descriptor.
    private func listen(_ path: [UInt8]) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        try #require(fd >= 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        try #require(bound == 0, "bind: \(String(cString: strerror(errno)))")
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    private func receive(_ fd: Int32) -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n < 0 ? nil : String(decoding: buffer[..<n], as: UTF8.self)
    }

    @Test func sendsOneDatagramToAPathSocket() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "notify-\(UUID().uuidString.prefix(8))"
        )
        .path
        let fd = try listen(Array(path.utf8))
        defer {
            close(fd)
            unlink(path)
        }
        let systemd = SystemdNotifier(environment: ["NOTIFY_SOCKET": path])
        #expect(systemd.notify("READY=1", "STATUS=2 pipelines running"))
        #expect(receive(fd) == "READY=1\nSTATUS=2 pipelines running")
        #expect(systemd.notify("WATCHDOG=1"))
        #expect(receive(fd) == "WATCHDOG=1")
    }

    @Test func anAtSignNamesAnAbstractSocket() throws {
        let name = "skipd-test-\(UUID().uuidString.prefix(8))"
        let fd = try listen([0] + Array(name.utf8))
        defer { close(fd) }
        #expect(SystemdNotifier(environment: ["NOTIFY_SOCKET": "@" + name]).notify("STOPPING=1"))
        #expect(receive(fd) == "STOPPING=1")
    }

    @Test func withoutASocketNothingIsSent() {
        #expect(!SystemdNotifier(environment: [:]).notify("READY=1"))
        let missing = SystemdNotifier(environment: ["NOTIFY_SOCKET": "/nonexistent/notify"])
        #expect(!missing.notify("READY=1"))
    }

    @Test func theWatchdogIntervalIsHalfOfWatchdogUsecWhenMeantForUs() {
        let mine = SystemdNotifier(environment: ["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "\(getpid())"])
        #expect(mine.watchdogInterval == .seconds(15))
        #expect(
            SystemdNotifier(environment: ["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"]).watchdogInterval == nil)
        #expect(SystemdNotifier(environment: [:]).watchdogInterval == nil)
    }
}
