import Foundation
import Testing

/// The `postgres` stage in a real `skipd run` process (the binary built beside this test bundle by
/// `swift build --build-tests`): SIGTERM mid-run, and what its standard error shows of passwords.
@Suite(.serialized) final class PostgresProcessTests {
    private let dir: URL

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("skipd-pgrun-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: dir) }

    private static let binary: URL = {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("skipd")
        if FileManager.default.isExecutableFile(atPath: beside.path) { return beside }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".build/debug/skipd")
    }()

    /// `skipd ARGUMENTS` with `environment` added; its standard error is read on a thread of its own.
    private final class Run {
        let process = Process()
        private let err = Pipe()
        private let collected = Collected()

        init(_ arguments: [String], environment: [String: String] = [:]) throws {
            process.executableURL = PostgresProcessTests.binary
            process.arguments = arguments
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            process.standardError = err
            process.standardOutput = err
            process.standardInput = FileHandle.nullDevice
            try #require(FileManager.default.isExecutableFile(atPath: PostgresProcessTests.binary.path))
            try process.run()
            let handle = err.fileHandleForReading
            let collected = collected
            Thread.detachNewThread {
                while case let chunk = handle.availableData, !chunk.isEmpty { collected.append(chunk) }
            }
        }

        deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

        var output: String { collected.text }

        /// Waits for the exit (at most `limit`); the status, nil if it still runs.
        func wait(_ limit: Duration = .seconds(60)) async -> Int32? {
            let end = ContinuousClock.now + limit
            while process.isRunning, ContinuousClock.now < end { try? await Task.sleep(for: .milliseconds(50)) }
            // The pipe's last bytes arrive just after the exit.
            try? await Task.sleep(for: .milliseconds(200))
            return process.isRunning ? nil : process.terminationStatus
        }
    }

    private final class Collected: @unchecked Sendable {
        private let lock = NSLock()
        private var data = Data()
        func append(_ chunk: Data) { lock.withLock { data.append(chunk) } }
        var text: String { lock.withLock { String(decoding: data, as: UTF8.self) } }
    }

    private func pipeline(_ name: String, _ text: String) throws -> String {
        let path = dir.appendingPathComponent("\(name).pipeline").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// SIGTERM mid-run: the drain commits what the stage holds (batch 1000, 60 s: nothing was committed before),
    /// and every frame that left the last stage is a row; exit 0.
    @Test func sigtermOfSkipdRunKeepsEveryFrameOut() async throws {
        let db = try PostgresTestCluster()
        try db.start()
        let file = try pipeline(
            "cam",
            """
            videotestsrc is-live=true ! video/x-raw,width=32,height=24,framerate=30/1,format=GRAY8
              ! residual ! postgres location=\(db.location) batch=1000 interval=60000
            """)
        let run = try Run(["run", file])
        try await Task.sleep(for: .seconds(2.5))
        run.process.terminate()
        let status = await run.wait(.seconds(20))
        #expect(status == 0, "\(run.output)")
        let summary = try #require(run.output.firstMatch(of: #/(\d+) frames in /#), "\(run.output)")
        let framesOut = try #require(Int(summary.1))
        #expect(framesOut > 20)
        #expect(
            try db.query("SELECT count(*), min(frame), max(frame), min(pipeline) FROM frames")
                == "\(framesOut)|0|\(framesOut - 1)|cam")
    }

    /// The password reaches the server (scram-sha-256 authentication succeeds) from password-env and from the URL,
    /// and appears nowhere in what skipd prints: not in `check`, not in verbose logs, not in the authentication
    /// failure of a wrong password.
    @Test func passwordNeverAppearsInOutput() async throws {
        let password = "Pg-s3cret-\(UUID().uuidString.prefix(8))"
        let wrong = "Wrong-s3cret-\(UUID().uuidString.prefix(8))"
        let db = try PostgresTestCluster(password: password)
        try db.start()
        let source = "videotestsrc num-buffers=30 ! video/x-raw,width=32,height=24,format=GRAY8 ! residual"
        let host = "127.0.0.1:\(db.port)/postgres?sslmode=disable"

        let fromEnvironment = try pipeline(
            "env", "\(source) ! postgres location=postgresql://skipd@\(host) password-env=SKIPD_TEST_PG_PASSWORD")
        let env = try Run(["run", "--verbose", fromEnvironment], environment: ["SKIPD_TEST_PG_PASSWORD": password])
        #expect(await env.wait() == 0, "\(env.output)")
        #expect(try db.count("SELECT count(*) FROM frames") == 30)

        let inURL = try pipeline("url", "\(source) ! postgres location=postgresql://skipd:\(password)@\(host)")
        let check = try Run(["check", inURL])
        #expect(await check.wait() == 0, "\(check.output)")
        #expect(check.output.contains("location=postgresql://***@127.0.0.1"), "\(check.output)")
        let url = try Run(["run", "--verbose", inURL])
        #expect(await url.wait() == 0, "\(url.output)")
        #expect(url.output.contains("the password is in the location URL"), "\(url.output)")
        #expect(try db.count("SELECT count(*) FROM frames") == 60)

        let wrongFile = dir.appendingPathComponent("wrong-password")
        try "\(wrong)\n".write(to: wrongFile, atomically: true, encoding: .utf8)
        let refused = try pipeline(
            "refused",
            "\(source) ! postgres location=postgresql://skipd@\(host) password-file=\(wrongFile.path) "
                + "flush-timeout=3000")
        let denied = try Run(["run", "--verbose", refused])
        #expect(await denied.wait() == 1, "\(denied.output)")
        #expect(denied.output.contains("password authentication failed for user \"skipd\""), "\(denied.output)")
        // The run's error passes through the runner's redaction, which hides the user too.
        #expect(
            denied.output.contains("30 frames not written to postgresql://***@\(host) within"), "\(denied.output)")
        #expect(try db.count("SELECT count(*) FROM frames") == 60)

        for output in [env.output, check.output, url.output, denied.output] {
            #expect(!output.contains(password) && !output.contains(wrong), "\(output)")
        }
    }
}
