import Foundation
import PipelineKit
import Testing

@testable import Plugins

/// The `postgres` stage's URL, password sources and backlog, without a database.
@Suite struct PostgresLocationTests {
    @Test func parsesAFullURL() throws {
        let location = try PostgresLocation.parse("postgresql://sk%40pd:p%3Ass@db.lan:6543/res%20ults?sslmode=require")
            .get()
        #expect(location.user == "sk@pd" && location.password == "p:ss")
        #expect(location.host == "db.lan" && location.port == 6543 && location.database == "res ults")
        #expect(location.tls == .require)
        #expect(location.redacted == "postgresql://sk@pd@db.lan:6543/res ults?sslmode=require")
    }

    @Test func defaultsPortAndTLSAndAcceptsTheShortScheme() throws {
        let location = try PostgresLocation.parse("postgres://skipd@127.0.0.1/skipd").get()
        #expect(location.port == 5432 && location.tls == .prefer && location.password == nil)
        #expect(location.redacted == "postgresql://skipd@127.0.0.1:5432/skipd")
        let v6 = try PostgresLocation.parse("postgresql://skipd@[::1]:5433/skipd?sslmode=verify-full").get()
        #expect(v6.host == "::1" && v6.tls == .verifyFull)
        #expect(v6.redacted == "postgresql://skipd@[::1]:5433/skipd?sslmode=verify-full")
    }

    /// Each bad URL is one message that says what is wrong and never repeats the password.
    @Test(arguments: [
        ("mysql://u:hunter2@h/db", "'mysql://' is not a PostgreSQL URL: expected postgresql://user@host:5432/database"),
        ("postgresql://:hunter2@h/db", "the URL needs a user"),
        ("postgresql://u:hunter2@/db", "the URL needs a host"),
        ("postgresql://u:hunter2@h", "the URL needs one database name as its path"),
        ("postgresql://u:hunter2@h/a/b", "the URL needs one database name as its path"),
        ("postgresql://u:hunter2@h:70000/db", "port 70000 is out of range 1…65535"),
        ("postgresql://u:hunter2@h/db?sslmode=maybe", "sslmode must be one of disable, prefer, require, verify-full"),
        ("postgresql://u:hunter2@h/db?application_name=x", "unknown parameter 'application_name' in the URL"),
        ("postgresql://u:hunter2@h/db#x", "the URL cannot have a fragment"),
        ("u:hunter2 at h", "not a URL: expected postgresql://user@host:5432/database"),
    ])
    func rejectsABadURLWithOneMessage(_ text: String, _ expected: String) throws {
        let result = PostgresLocation.parse(text)
        guard case .failure(let error) = result else {
            Issue.record("accepted \(text)")
            return
        }
        #expect(error.message.contains(expected), "\(error.message)")
        #expect(!error.message.contains("hunter2"))
    }

    @Test func passwordComesFromOneSource() throws {
        let location = try PostgresLocation.parse("postgresql://skipd@h/db").get()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("skipd-pgpw-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("pw").path
        try "s3cret word\nignored\n".write(toFile: file, atomically: true, encoding: .utf8)

        #expect(try PostgresPassword.resolve(location: location, environmentName: nil, file: file) == "s3cret word")
        #expect(
            try PostgresPassword.resolve(
                location: location, environmentName: "PGPW", file: nil, environment: ["PGPW": "from-env"])
                == "from-env")
        #expect(try PostgresPassword.resolve(location: location, environmentName: nil, file: nil) == nil)
        let inURL = try PostgresLocation.parse("postgresql://skipd:in-url@h/db").get()
        #expect(try PostgresPassword.resolve(location: inURL, environmentName: nil, file: nil) == "in-url")

        let unset = #expect(throws: PostgresConfigurationError.self) {
            try PostgresPassword.resolve(location: location, environmentName: "PGPW", file: nil, environment: [:])
        }
        #expect(unset?.description == "password-env: the environment variable PGPW is not set")
        // A directory exists (so planning passes) but cannot be read as a file.
        let unreadable = #expect(throws: PostgresConfigurationError.self) {
            try PostgresPassword.resolve(location: location, environmentName: nil, file: dir.path)
        }
        #expect(unreadable?.description.hasPrefix("password-file: cannot read \(dir.path)") == true)
        let twice = #expect(throws: PostgresConfigurationError.self) {
            try PostgresPassword.resolve(location: inURL, environmentName: nil, file: file)
        }
        #expect(twice?.description.contains("give the password once") == true)
        #expect(twice?.description.contains("in-url") == false)
    }

    /// Planning points at the value (file:line:col) and masks the password in the excerpt.
    @Test func plannerReportsABadLocationAtItsColumn() throws {
        let text = "videotestsrc ! video/x-raw,format=RGB\n  ! postgres location=postgresql://u:hunter2@h/db?x=1\n"
        let error = #expect(throws: PipelineDiagnostic.self) {
            try PipelinePlanner(registry: .standard).plan(text: text, file: "bad.pipeline")
        }
        let diagnostic = try #require(error)
        #expect(
            diagnostic.headline
                == "bad.pipeline:2:23: error: bad value for 'postgres location': unknown parameter 'x' in the URL "
                + "(supported: sslmode)")
        #expect(!diagnostic.description.contains("hunter2"))
        #expect(diagnostic.description.contains("location=postgresql://*********@h/db?x=1"))
    }

    @Test func backlogDropsTheOldestAndCounts() {
        var backlog = PostgresBacklog(capacity: 3)
        let row = { (i: Int) in
            FrameRow(
                pipeline: "p", frame: i, pts: nil, skipped: false, changed: nil, executedMACs: nil, createdAt: Date(),
                detections: [])
        }
        #expect((0..<5).map { backlog.append(row($0)) } == [false, false, false, true, true])
        #expect(backlog.dropped == 2 && backlog.count == 3)
        #expect(backlog.take(2).map(\.frame) == [2, 3])
        #expect(backlog.take(5).map(\.frame) == [4])
        #expect(backlog.isEmpty && backlog.oldestArrival == nil)
    }

    @Test func isAStandardStage() {
        #expect(StageRegistry.standard.names.contains("postgres"))
        #expect(
            PostgresSink.info.properties.map(\.name) == [
                "location", "password-env", "password-file", "pipeline", "batch", "interval", "backlog",
                "flush-timeout",
            ])
    }
}
