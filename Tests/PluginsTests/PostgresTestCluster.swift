import Foundation
import Testing

/// A throwaway PostgreSQL cluster for one test: `initdb` into a temporary directory, a server on a free loopback
/// port, stopped and removed when the value goes away (a failed expectation included). PostgreSQL refuses to run
/// as root, so as root the server runs as the `postgres` user that Debian's package creates.
///
/// ```swift
/// let db = try PostgresTestCluster()          // initialised, not started
/// try db.start()
/// … "postgres location=\(db.location)" …
/// try db.query("SELECT count(*) FROM frames")  // "12"
/// ```
final class PostgresTestCluster: Sendable {
    let dir: URL
    let port: Int
    /// The superuser `skipd`'s password (nil: trust authentication).
    let password: String?
    private let bin: URL
    private let asPostgres: Bool

    init(password: String? = nil) throws {
        bin = try Self.binaries()
        asPostgres = geteuid() == 0
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("skipd-pg-\(UUID())")
        self.password = password
        port = try Self.freePort()
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        if asPostgres { try Self.run("/usr/bin/chown", ["postgres", dir.path]) }
        var arguments = ["-D", data, "-U", "skipd", "--no-sync", "-E", "UTF8", "--no-locale"]
        if let password {
            let file = dir.appendingPathComponent("pwfile").path
            try password.write(toFile: file, atomically: true, encoding: .utf8)
            if asPostgres { try Self.run("/usr/bin/chown", ["postgres", file]) }
            arguments += ["--auth=scram-sha-256", "--pwfile=\(file)"]
        } else {
            arguments += ["--auth=trust"]
        }
        try server("initdb", arguments)
    }

    deinit {
        // Immediate: a test that failed may leave a client connected; nothing here needs a clean shutdown.
        try? server("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"])
        try? FileManager.default.removeItem(at: dir)
    }

    private var data: String { dir.appendingPathComponent("data").path }
    var logFile: String { dir.appendingPathComponent("server.log").path }

    /// A `location=` for the cluster's `postgres` database as user `skipd`.
    var location: String { "postgresql://skipd@127.0.0.1:\(port)/postgres?sslmode=disable" }

    func start() throws {
        try server(
            "pg_ctl",
            [
                "-D", data, "-l", logFile, "-w", "-t", "60", "-o",
                "-p \(port) -k \(dir.path) -c listen_addresses=127.0.0.1 -c fsync=off", "start",
            ])
    }

    func stop() throws { try server("pg_ctl", ["-D", data, "-m", "fast", "-w", "stop"]) }

    /// `pg_ctl restart -m fast`: connected clients are disconnected, the data stays.
    func restart() throws {
        try server(
            "pg_ctl",
            [
                "-D", data, "-l", logFile, "-m", "fast", "-w", "-t", "60", "-o",
                "-p \(port) -k \(dir.path) -c listen_addresses=127.0.0.1 -c fsync=off", "restart",
            ])
    }

    /// `psql -At`: rows one a line, columns separated by `|`; throws with psql's message on an error.
    @discardableResult
    func query(_ sql: String) throws -> String {
        var environment = ["PGCONNECT_TIMEOUT": "10"]
        if let password { environment["PGPASSWORD"] = password }
        return try Self.run(
            "/usr/bin/psql",
            [
                "-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", "\(port)", "-U", "skipd", "-d", "postgres",
                "-At", "-c", sql,
            ], environment: environment
        ).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// `query` as one integer.
    func count(_ sql: String) throws -> Int {
        let text = try query(sql)
        return try #require(Int(text), "not a number: \(text)")
    }

    private func server(_ tool: String, _ arguments: [String]) throws {
        let path = bin.appendingPathComponent(tool).path
        let command = asPostgres ? ["/usr/sbin/runuser", "-u", "postgres", "--", path] + arguments : [path] + arguments
        try Self.spawn(command, output: dir.appendingPathComponent("\(tool).out").path)
    }

    /// Runs `command` to its end with every descriptor above stderr closed, its output in `output`.
    ///
    /// Not `Process`: Foundation learns of a child's exit from a socket the child inherits, and the server that
    /// `pg_ctl start` leaves running inherits it too, so `waitUntilExit` would wait for the server.
    private static func spawn(_ command: [String], output: String) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // glibc ≥ 2.34 has it, but Swift's Glibc module does not import it.
        typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        let symbol = try #require(
            dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np"))
        _ = unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3)
        let argv = command.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, command[0], &actions, nil, argv, environ)
        guard spawned == 0 else { throw ClusterError(description: "cannot run \(command[0]): error \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        // WIFEXITED && WEXITSTATUS == 0, spelled out: the macros are not imported.
        guard status & 0xFFFF == 0 else {
            let message = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            throw ClusterError(description: "\(command.joined(separator: " ")): status \(status): \(message)")
        }
    }

    /// pg_ctl and initdb: on PATH, else Debian's newest /usr/lib/postgresql/N/bin.
    private static func binaries() throws -> URL {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let url = URL(fileURLWithPath: String(directory))
            if FileManager.default.isExecutableFile(atPath: url.appendingPathComponent("pg_ctl").path),
                FileManager.default.isExecutableFile(atPath: url.appendingPathComponent("initdb").path)
            {
                return url
            }
        }
        let root = "/usr/lib/postgresql"
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: root))?.compactMap(Int.init) ?? []
        let newest = try #require(
            versions.max(), "PostgreSQL server not found (Debian: apt install postgresql; scripts/install-deps does)")
        return URL(fileURLWithPath: "\(root)/\(newest)/bin")
    }

    /// A loopback port nothing listens on now.
    private static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        try #require(bound)
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Runs a program to its end; its standard output, or an error with its standard error.
    @discardableResult
    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws
        -> String
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // pg_ctl's server inherits nothing from these pipes (it logs to -l), so reading to the end returns.
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw ClusterError(description: "\(executable) \(arguments.first ?? ""): \(message)")
        }
        return String(decoding: output, as: UTF8.self)
    }

    struct ClusterError: Error, CustomStringConvertible {
        var description: String
    }
}
