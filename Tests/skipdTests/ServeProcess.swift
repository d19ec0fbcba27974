import Foundation
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// `skipd serve` as a test runs it: a temporary directory with pipeline files and a config (HTTP on a free
/// loopback port unless the config says otherwise), the process, its standard error line by line, and an HTTP
/// client for its API.
///
/// ```swift
/// let serve = try ServeProcess(pipelines: ["cam": "videotestsrc is-live=true ! residual"], config: "watchdog = 2")
/// let port = try await serve.httpPort()
/// let (status, _, body) = try await serve.request("/pipelines")
/// ```
final class ServeProcess {
    let dir: URL
    let pipelines: URL
    let config: URL
    let process = Process()
    let log: StderrLines

    init(
        pipelines files: [String: String], config extra: String = "", http: String = "127.0.0.1:0",
        environment: [String: String] = [:]
    ) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("serve-\(UUID())")
        pipelines = dir.appendingPathComponent("pipelines")
        config = dir.appendingPathComponent("skipd.toml")
        let err = Pipe()
        log = StderrLines(err)
        try FileManager.default.createDirectory(at: pipelines, withIntermediateDirectories: true)
        for (name, text) in files { try write(name, text) }
        try """
        pipelines = "\(pipelines.path)"
        pidfile = "\(dir.path)/skipd.pid"
        http = "\(http)"
        \(extra)
        """.write(to: config, atomically: true, encoding: .utf8)
        process.executableURL = CLITests.binary
        process.arguments = ["serve", "--config", config.path]
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardError = err
        process.standardOutput = Pipe()
        try process.run()
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: dir)
    }

    /// Writes (or replaces) pipeline `name`.
    func write(_ name: String, _ text: String) throws {
        try text.write(to: file(name), atomically: true, encoding: .utf8)
    }

    func file(_ name: String) -> URL { pipelines.appendingPathComponent("\(name).pipeline") }

    /// A file in the temporary directory (outputs of the pipelines).
    func path(_ name: String) -> URL { dir.appendingPathComponent(name) }

    /// The port from the `serve: http on HOST:PORT` line.
    func httpPort(limit: Duration = .seconds(60)) async throws -> Int {
        let line = try #require(await log.wait(for: "serve: http on ", limit: limit), "no http line: \(log.text)")
        return try #require(line.split(separator: ":").last.flatMap { Int($0) })
    }

    /// One request to the API on 127.0.0.1: status, headers (lower-cased names) and body.
    func request(_ path: String, method: String = "GET", headers: [String: String] = [:]) async throws -> (
        status: Int, headers: [String: String], body: String
    ) {
        let port = try await httpPort()
        var request = URLRequest(url: try #require(URL(string: "http://127.0.0.1:\(port)\(path)")))
        request.httpMethod = method
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = try #require(response as? HTTPURLResponse)
        var fields: [String: String] = [:]
        for (name, value) in http.allHeaderFields {
            if let name = name as? String, let value = value as? String { fields[name.lowercased()] = value }
        }
        return (http.statusCode, fields, String(decoding: data, as: UTF8.self))
    }

    /// The body of a request answered 200, as JSON.
    func json(_ path: String) async throws -> Any {
        let answer = try await request(path)
        #expect(answer.status == 200, "\(path): \(answer.status) \(answer.body)")
        return try JSONSerialization.jsonObject(with: Data(answer.body.utf8))
    }

    /// Sends SIGTERM and waits for the exit: the status and how long it took.
    func terminate() -> (status: Int32, took: Duration) {
        let sent = ContinuousClock.now
        process.terminate()
        process.waitUntilExit()
        return (process.terminationStatus, ContinuousClock.now - sent)
    }
}

/// A datagram socket standing in for systemd's NOTIFY_SOCKET: what a child sends with sd_notify arrives here.
final class NotifySocket {
    let path: String
    private let fd: Int32

    init(timeout seconds: Int = 10) throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("sd-\(UUID().uuidString.prefix(8))").path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        try #require(fd >= 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.utf8.count)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        try #require(bound == 0)
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// The next message (nil after the timeout).
    func receive() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n < 0 ? nil : String(decoding: buffer[..<n], as: UTF8.self)
    }
}
