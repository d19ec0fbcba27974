import Foundation
import Synchronization
import Testing

@testable import Plugins

/// A Debian `mosquitto` broker of the test's own on a free loopback port, with a temporary config and persistence
/// directory: stopped with SIGTERM it saves its sessions, so a persistent subscriber (``MQTTSubscriber`` with an
/// `id`) keeps its subscription and its queued QoS 1 messages across a restart.
final class MosquittoBroker {
    let port: Int
    let directory: URL
    private var process: Spawned?

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("skipd-mosquitto-\(UUID())")
        // Started as root, mosquitto runs as the user mosquitto: it must be able to write its log and sessions.
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try #require(chmod(directory.path, 0o777) == 0)
        port = try freeLoopbackPort()
        try """
        listener \(port) 127.0.0.1
        allow_anonymous true
        persistence true
        persistence_location \(directory.path)/
        max_queued_messages 100000
        log_dest file \(directory.path)/broker.log

        """.write(to: directory.appendingPathComponent("mosquitto.conf"), atomically: true, encoding: .utf8)
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }

    /// Starts the broker and waits until it accepts connections.
    func start() throws {
        let path = "/usr/sbin/mosquitto"
        try #require(FileManager.default.isExecutableFile(atPath: path), "mosquitto missing (scripts/install-deps)")
        let process = try Spawned(path, ["-c", directory.appendingPathComponent("mosquitto.conf").path])
        self.process = process
        let deadline = Date().addingTimeInterval(10)
        while !acceptsConnections(port: port) {
            try #require(process.isRunning, "mosquitto exited: \(log)")
            try #require(Date() < deadline, "mosquitto did not listen on \(port)")
            Thread.sleep(forTimeInterval: 0.02)
        }
    }

    /// SIGTERM (the broker saves its persistence file) and waits for it to exit.
    func stop() {
        process?.stop()
        process = nil
    }

    var log: String {
        (try? String(contentsOf: directory.appendingPathComponent("broker.log"), encoding: .utf8)) ?? ""
    }
}

/// `mosquitto_sub` on `PREFIX/#`, every message collected with its retain flag. With an `id`, its session is
/// persistent (clean session off, QoS 1): the broker keeps what it misses while it or the broker restarts.
final class MQTTSubscriber: Sendable {
    struct Message: Sendable, Equatable {
        var retained: Bool
        var topic: String
        var payload: String
    }

    private let process: Spawned
    private let lines = Lines()
    private let prefix: String
    private let port: Int

    private final class Lines: Sendable {
        let storage = Mutex<[String]>([])
    }

    init(port: Int, prefix: String, id: String? = nil) throws {
        self.port = port
        self.prefix = prefix
        process = try Spawned(
            "/usr/bin/mosquitto_sub",
            ["-h", "127.0.0.1", "-p", "\(port)", "-t", "\(prefix)/#", "-q", "1", "-F", "%r %t %p"]
                + (id.map { ["-c", "-i", $0] } ?? []), output: true)
        let handle = try #require(process.output)
        Thread.detachNewThread { [lines] in
            var pending = Data()
            while case let chunk = handle.availableData, !chunk.isEmpty {
                pending.append(chunk)
                while let newline = pending.firstIndex(of: 0x0A) {
                    let line = String(decoding: pending[..<newline], as: UTF8.self)
                    pending.removeSubrange(...newline)
                    lines.storage.withLock { $0.append(line) }
                }
            }
        }
        // Subscribed once a probe published after it started comes back.
        let probe = "probe-\(UUID())"
        let deadline = Date().addingTimeInterval(10)
        while !lines.storage.withLock({ $0.contains { $0.hasSuffix(probe) } }) {
            try #require(Date() < deadline, "mosquitto_sub did not subscribe")
            _ = try run(
                "/usr/bin/mosquitto_pub", ["-h", "127.0.0.1", "-p", "\(port)", "-t", "\(prefix)/probe", "-m", probe])
            Thread.sleep(forTimeInterval: 0.1)
        }
    }

    deinit { stop() }

    func stop() { process.stop() }

    /// Every message so far (probes left out), in arrival order.
    var messages: [Message] {
        lines.storage.withLock { $0 }.compactMap(Self.parse).filter { $0.topic != "\(prefix)/probe" }
    }

    static func parse(_ line: String) -> Message? {
        let parts = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3 else { return nil }
        return Message(retained: parts[0] == "1", topic: String(parts[1]), payload: String(parts[2]))
    }

    /// Waits up to `timeout` s for `done` to hold for the messages so far.
    @discardableResult
    func wait(timeout: Double = 15, until done: ([Message]) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if done(messages) { return true }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return done(messages)
    }

    /// The payloads on `topic`.
    func payloads(_ topic: String) -> [String] { messages.filter { $0.topic == topic }.map(\.payload) }

    /// `(type, track ID)` of every event on `PREFIX/events`, once each (QoS 1 is at least once: a message in
    /// flight when the connection dropped may arrive twice, with the same payload).
    func events() -> [(type: String, track: String)] {
        var seen = Set<String>()
        return payloads("\(prefix)/events").filter { seen.insert($0).inserted }.compactMap(Self.event)
    }

    static func event(_ payload: String) -> (type: String, track: String)? {
        guard let json = try? JSONSerialization.jsonObject(with: Data(payload.utf8)) as? [String: Any],
            let type = json["type"] as? String, let after = json["after"] as? [String: Any],
            let id = after["id"] as? String, let track = id.split(separator: "-").last
        else { return nil }
        return (type, String(track))
    }

    /// The retained messages under `PREFIX/` now, as a newly connected client sees them.
    static func retained(port: Int, prefix: String) throws -> [String: String] {
        let out = try run(
            "/usr/bin/mosquitto_sub",
            ["-h", "127.0.0.1", "-p", "\(port)", "-t", "\(prefix)/#", "--retained-only", "-W", "1", "-F", "%r %t %p"])
        var retained: [String: String] = [:]
        for message in out.split(separator: "\n").compactMap({ parse(String($0)) }) where message.retained {
            retained[message.topic] = message.payload
        }
        return retained
    }
}

/// The stage's events for `frames`, by an identical tracker: what a subscriber must receive, as `(type, track)`.
func expectedEvents(_ frames: [[Detection]], _ settings: ObjectEventTracker.Settings) -> [(type: String, track: String)]
{
    var tracker = ObjectEventTracker(pipeline: "default", settings: settings)
    var events = frames.enumerated().flatMap { tracker.observe($1, time: Double($0)).events }
    events += tracker.finish(time: Double(frames.count)).events
    return events.map { ($0.type.rawValue, String($0.after.id.split(separator: "-").last ?? "")) }
}

/// Runs a command to its end; its standard output.
@discardableResult
func run(_ executable: String, _ arguments: [String]) throws -> String {
    let process = try Spawned(executable, arguments, output: true)
    let data = try #require(process.output).readDataToEndOfFile()
    process.waitForExit()
    return String(decoding: data, as: UTF8.self)
}

/// A child process started with no signal blocked and every signal at its default action. The test runner's
/// threads block some (SIGTERM, SIGALRM) and a child inherits that mask (Foundation's `Process` passes it on):
/// mosquitto would never see SIGTERM, `mosquitto_sub -W` never time out.
final class Spawned: Sendable {
    let pid: pid_t
    /// Its standard output, when captured (else /dev/null, as its standard error).
    let output: FileHandle?
    private let exit = Mutex<Int32?>(nil)

    init(_ path: String, _ arguments: [String], output capture: Bool = false) throws {
        var fds: [Int32] = [-1, -1]
        if capture { try #require(pipe(&fds) == 0) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        if capture {
            posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
            posix_spawn_file_actions_addclose(&actions, fds[0])
            posix_spawn_file_actions_addclose(&actions, fds[1])
        } else {
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        }
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGALRM, SIGPIPE, SIGUSR1, SIGUSR2] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attributes, argv, environ)
        if capture { close(fds[1]) }
        guard rc == 0 else {
            if capture { close(fds[0]) }
            throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .EINVAL)
        }
        self.pid = pid
        self.output = capture ? FileHandle(fileDescriptor: fds[0], closeOnDealloc: true) : nil
    }

    deinit { stop() }

    /// Whether it has not exited (reaps it if it has).
    var isRunning: Bool {
        exit.withLock { status in
            guard status == nil else { return false }
            var raw: Int32 = 0
            if waitpid(pid, &raw, WNOHANG) == pid { status = raw }
            return status == nil
        }
    }

    /// SIGTERM unless it has exited, then waits for it.
    func stop() { waitForExit(signal: SIGTERM) }

    func waitForExit(signal: Int32? = nil) {
        exit.withLock { status in
            guard status == nil else { return }
            if let signal { kill(pid, signal) }
            var raw: Int32 = 0
            while waitpid(pid, &raw, 0) == -1 && errno == EINTR {}
            status = raw
        }
    }
}

/// A port nothing listens on now: the kernel's pick for a socket bound to port 0.
func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    try #require(fd >= 0)
    defer { close(fd) }
    var address = loopback(port: 0)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
        }
    }
    try #require(bound)
    return Int(UInt16(bigEndian: address.sin_port))
}

func acceptsConnections(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = loopback(port: port)
    return withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
        }
    }
}

private func loopback(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return address
}
