import Foundation
import PipelineKit
import Testing

@testable import Plugins

/// The database is read back with the sqlite3 CLI (`-json`), never through the stage's own code.
@Suite final class SQLiteSinkTests {
    private let dir: URL

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("skipd-sqlite-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: dir) }

    private var database: String { dir.appendingPathComponent("results.sqlite").path }

    /// Rows of `sql` as JSON objects (empty for no rows: sqlite3 prints nothing).
    private func query(_ sql: String, _ path: String? = nil) throws -> [[String: Any]] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["sqlite3", "-json", path ?? database, sql]
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "sqlite3 (Debian: apt install sqlite3) failed: \(message)")
        if data.allSatisfy({ $0 == 0x0A || $0 == 0x20 }) { return [] }
        return try #require(JSONSerialization.jsonObject(with: data) as? [[String: Any]])
    }

    private func count(_ table: String) throws -> Int {
        try #require(query("SELECT count(*) AS n FROM \(table)").first?["n"] as? Int)
    }

    private func frames(_ count: Int) -> [Frame] {
        (0..<count).map { flat($0, width: 2, height: 2, value: 0) }
    }

    private func sink(_ properties: [String: PropertyValue]) throws -> SQLiteSink {
        var values: [String: PropertyValue] = ["location": .string(database), "pipeline": .string("default")]
        values.merge(properties) { $1 }
        values["batch"] = values["batch"] ?? .int(30)
        values["interval"] = values["interval"] ?? .int(500)
        return try SQLiteSink(properties: StageProperties(values), context: .detached())
    }

    @Test func writesFrameAndDetectionRowsWithExactValues() async throws {
        var input = frames(3)
        input[0].metadata[Detections.Key.self] = Detections([
            Detection(
                x0: 10.5, y0: 20, x1: 30.25, y1: 44, score: 0.75,
                landmarks: [SIMD2(12, 25), SIMD2(28.5, 25), SIMD2(20, 32), SIMD2(14, 38), SIMD2(26, 38)]),
            Detection(x0: 1, y0: 2, x1: 3, y1: 4, score: 0.5),
        ])
        input[0].metadata[ResidualMap.Key.self] = ResidualMap(
            block: 16, columns: 2, rows: 2, energy: [0, 0, 0, 0], peak: [0, 0, 0, 0],
            changed: [true, false, false, false])
        input[0].metadata[ComputeCost.Key.self] = ComputeCost(
            executedMACs: 123_456_789_012, denseMACs: 123_456_789_012, input: (640, 480))
        input[1].skipped = true
        input[1].metadata[Detections.Key.self] = Detections([])
        input[1].metadata[ComputeCost.Key.self] = ComputeCost(
            executedMACs: 0, denseMACs: 123_456_789_012, input: (640, 480))
        input[2].pts = nil

        let out = try await StageChain("sqlite location=\(database) pipeline=lobby", registry: .standard).run(input)
        #expect(out.map(\.index) == [0, 1, 2])

        let rows = try query(
            "SELECT id, pipeline, frame, pts, skipped, changed, executed_macs, faces, created_at FROM frames ORDER BY id"
        )
        try #require(rows.count == 3)
        #expect(rows.map { $0["pipeline"] as? String } == ["lobby", "lobby", "lobby"])
        #expect(rows.map { $0["frame"] as? Int } == [0, 1, 2])
        #expect(rows[0]["pts"] as? Double == 0)
        #expect(rows[1]["pts"] as? Double == 0.1)
        #expect(rows[2]["pts"] is NSNull)
        #expect(rows.map { $0["skipped"] as? Int } == [0, 1, 0])
        #expect(rows[0]["changed"] as? Double == 0.25)
        #expect(rows[1]["changed"] is NSNull)
        #expect(rows[0]["executed_macs"] as? Int == 123_456_789_012)
        #expect(rows[1]["executed_macs"] as? Int == 0)
        #expect(rows[2]["executed_macs"] is NSNull)
        #expect(rows.map { $0["faces"] as? Int } == [2, 0, 0])
        // UTC, as GRDB stores dates: SQLite's date functions read it.
        let created = try #require(rows[0]["created_at"] as? String)
        #expect(created.wholeMatch(of: /\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}/) != nil)

        let detections = try query(
            "SELECT frame_id, x0, y0, x1, y1, score, landmarks, json_valid(landmarks) AS valid FROM detections ORDER BY id"
        )
        try #require(detections.count == 2)
        let first = try #require(rows[0]["id"] as? Int)
        #expect(detections.map { $0["frame_id"] as? Int } == [first, first])
        #expect(detections.map { $0["x0"] as? Double } == [10.5, 1])
        #expect(detections.map { $0["y0"] as? Double } == [20, 2])
        #expect(detections.map { $0["x1"] as? Double } == [30.25, 3])
        #expect(detections.map { $0["y1"] as? Double } == [44, 4])
        #expect(detections.map { $0["score"] as? Double } == [0.75, 0.5])
        #expect(detections.map { $0["valid"] as? Int } == [1, 1])
        #expect(detections[0]["landmarks"] as? String == "[[12,25],[28.5,25],[20,32],[14,38],[26,38]]")
        #expect(detections[1]["landmarks"] as? String == "[]")

        // Deleting a frame deletes its detections (the CLI, like GRDB, must turn foreign keys on).
        _ = try query("PRAGMA foreign_keys = ON; DELETE FROM frames WHERE id = \(first)")
        #expect(try count("detections") == 0)
    }

    /// A multi-class decoder's class and label land in their columns; faces leave them NULL.
    @Test func storesClassAndLabel() async throws {
        var input = frames(1)
        input[0].metadata[Detections.Key.self] = Detections([
            Detection(x0: 1, y0: 2, x1: 3, y1: 4, score: 0.9, classIndex: 2, label: "car"),
            Detection(x0: 5, y0: 6, x1: 7, y1: 8, score: 0.8, classIndex: 0),
            Detection(x0: 1, y0: 2, x1: 3, y1: 4, score: 0.7),
        ])
        _ = try await StageChain("sqlite location=\(database)", registry: .standard).run(input)
        let rows = try query("SELECT class, label FROM detections ORDER BY id")
        try #require(rows.count == 3)
        #expect(rows[0]["class"] as? Int == 2 && rows[0]["label"] as? String == "car")
        #expect(rows[1]["class"] as? Int == 0 && rows[1]["label"] is NSNull)
        #expect(rows[2]["class"] is NSNull && rows[2]["label"] is NSNull)
    }

    /// A database written before the class columns existed (here: made so by removing them and their migration
    /// record) gains them on the next run; its old rows read NULL.
    @Test func migratesAnOlderDatabase() async throws {
        var input = frames(1)
        input[0].metadata[Detections.Key.self] = Detections([Detection(x0: 1, y0: 2, x1: 3, y1: 4, score: 0.7)])
        _ = try await StageChain("sqlite location=\(database)", registry: .standard).run(input)
        _ = try query(
            """
            ALTER TABLE detections DROP COLUMN class; ALTER TABLE detections DROP COLUMN label;
            DELETE FROM grdb_migrations WHERE identifier = 'v2 detection classes'
            """)
        input[0].metadata[Detections.Key.self] = Detections([
            Detection(x0: 1, y0: 2, x1: 3, y1: 4, score: 0.6, classIndex: 1, label: "bus")
        ])
        _ = try await StageChain("sqlite location=\(database)", registry: .standard).run(input)
        let rows = try query("SELECT score, class, label FROM detections ORDER BY id")
        try #require(rows.count == 2)
        #expect(rows[0]["class"] is NSNull && rows[0]["label"] is NSNull)
        #expect(rows[1]["class"] as? Int == 1 && rows[1]["label"] as? String == "bus")
    }

    /// `track`'s IDs land in `track_id`; untracked detections leave it NULL. A database from before the column
    /// (made so by removing it and its migration record) gains it on the next run; its old rows read NULL.
    @Test func storesTrackIDs() async throws {
        var input = frames(1)
        input[0].metadata[Detections.Key.self] = Detections([
            Detection(x0: 1, y0: 2, x1: 3, y1: 4, score: 0.9, trackID: 7),
            Detection(x0: 5, y0: 6, x1: 7, y1: 8, score: 0.8),
        ])
        _ = try await StageChain("sqlite location=\(database)", registry: .standard).run(input)
        let stored = try query("SELECT track_id FROM detections ORDER BY id")
        #expect(stored.count == 2 && stored[0]["track_id"] as? Int == 7 && stored[1]["track_id"] is NSNull)

        _ = try query(
            """
            ALTER TABLE detections DROP COLUMN track_id;
            DELETE FROM grdb_migrations WHERE identifier = 'v3 detection track ids'
            """)
        input[0].metadata[Detections.Key.self] = Detections([
            Detection(x0: 1, y0: 2, x1: 3, y1: 4, score: 0.7, classIndex: 1, trackID: 12)
        ])
        _ = try await StageChain("sqlite location=\(database)", registry: .standard).run(input)
        let rows = try query("SELECT track_id FROM detections ORDER BY id")
        try #require(rows.count == 3)
        #expect(rows[0]["track_id"] is NSNull && rows[1]["track_id"] is NSNull)
        #expect(rows[2]["track_id"] as? Int == 12)
    }

    @Test func databaseIsInWALMode() async throws {
        _ = try await StageChain("sqlite location=\(database)", registry: .standard).run(frames(1))
        // Closed at end of stream: the WAL is folded into the file, which alone holds every row.
        #expect(!FileManager.default.fileExists(atPath: database + "-wal"))
        #expect(try query("PRAGMA journal_mode").first?["journal_mode"] as? String == "wal")
    }

    /// batch=1000 and a one-minute interval: no transaction before end of stream, and every row after it.
    @Test func finishCommitsEverything() async throws {
        var stage = try sink(["batch": .int(1000), "interval": .int(60_000)])
        for frame in frames(10) { _ = try await stage.process(frame) }
        #expect(try count("frames") == 0)
        try await stage.finish()
        #expect(try count("frames") == 10)

        let other = dir.appendingPathComponent("chain.sqlite").path
        _ = try await StageChain("sqlite location=\(other) batch=1000 interval=60000", registry: .standard)
            .run(frames(10))
        #expect(try query("SELECT count(*) AS n FROM frames", other).first?["n"] as? Int == 10)
    }

    @Test func commitsEachFullBatch() async throws {
        var stage = try sink(["batch": .int(4), "interval": .int(60_000)])
        for frame in frames(10) { _ = try await stage.process(frame) }
        #expect(try count("frames") == 8)
        try await stage.finish()
        #expect(try query("SELECT frame FROM frames ORDER BY id").map { $0["frame"] as? Int } == Array(0..<10))
    }

    /// No further frame arrives (a stalled camera): the waiting frames still commit after `interval`.
    @Test func commitsWaitingFramesAfterTheInterval() async throws {
        var stage = try sink(["batch": .int(1000), "interval": .int(50)])
        for frame in frames(3) { _ = try await stage.process(frame) }
        var committed = 0
        for _ in 0..<100 where committed < 3 {
            try await Task.sleep(for: .milliseconds(20))
            committed = try count("frames")
        }
        #expect(committed == 3)
        try await stage.finish()
        #expect(try count("frames") == 3)
    }

    /// A second run appends to the same file (the migration runs once).
    @Test func appendsAcrossRuns() async throws {
        for name in ["a", "b"] {
            _ = try await StageChain("sqlite location=\(database) pipeline=\(name)", registry: .standard)
                .run(frames(2))
        }
        #expect(
            try query("SELECT pipeline FROM frames ORDER BY id").map { $0["pipeline"] as? String } == [
                "a", "a", "b", "b",
            ])
    }

    @Test(arguments: ["/proc/skipd-results.sqlite", "a directory"])
    func unwritableLocationIsAStageErrorNamingThePath(_ location: String) async throws {
        let path = location == "a directory" ? dir.path : location
        let chain = try StageChain("sqlite location=\(path)", registry: .standard)
        let error = await #expect(throws: PipelineRunError.self) { try await chain.run(frames(1)) }
        let message = try #require(error).description
        #expect(message.contains("stage 'sqlite0'"))
        #expect(message.contains("cannot open \(path)"))
    }

    /// A failed transaction (here: tables dropped behind the stage's back; the same path as a full disk) is a
    /// stage error naming the file, whether `finish` or the interval timer committed.
    @Test func failedWriteIsAnErrorNamingThePath() async throws {
        var stage = try sink(["batch": .int(1000), "interval": .int(60_000)])
        _ = try await stage.process(frames(1)[0])
        _ = try query("DROP TABLE detections; DROP TABLE frames")
        let error = await #expect(throws: SQLiteSinkError.self) { try await stage.finish() }
        #expect(error?.description.hasPrefix("cannot write \(database): ") == true)

        let other = dir.appendingPathComponent("timer.sqlite").path
        var timed = try sink(["location": .string(other), "batch": .int(1000), "interval": .int(10)])
        _ = try query("DROP TABLE detections; DROP TABLE frames", other)
        _ = try await timed.process(frames(1)[0])
        // The timer's failure surfaces on the next frame; on a loaded machine it may take a while to fire.
        var late: (any Error)?
        let deadline = ContinuousClock.now + .seconds(10)
        while late == nil, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
            do { _ = try await timed.process(frames(2)[1]) } catch { late = error }
        }
        #expect((late as? SQLiteSinkError)?.description.hasPrefix("cannot write \(other): ") == true)
    }

    @Test func defaultLocationIsUnderTheStateDirectory() {
        #expect(SQLiteSink.defaultLocation(environment: [:]) == "out/results.sqlite")
        #expect(
            SQLiteSink.defaultLocation(environment: ["STATE_DIRECTORY": "/var/lib/skipd"])
                == "/var/lib/skipd/results.sqlite")
        #expect(
            SQLiteSink.defaultLocation(environment: ["STATE_DIRECTORY": "/var/lib/skipd:/var/lib/other"])
                == "/var/lib/skipd/results.sqlite")
    }

    @Test func isAStandardStage() {
        #expect(StageRegistry.standard.names.contains("sqlite"))
        #expect(SQLiteSink.info.properties.map(\.name) == ["location", "pipeline", "batch", "interval"])
    }
}
