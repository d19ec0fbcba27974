import Foundation
import PipelineKit
import Testing

@testable import Plugins

/// The `postgres` stage against a real server: a throwaway cluster per test (``PostgresTestCluster``), read back
/// with psql, never through the stage's own code. Serialized: several tests stop and restart their server and
/// time the writer's recovery.
@Suite(.serialized) final class PostgresSinkTests {
    private func frames(_ range: Range<Int>) -> [Frame] {
        range.map { flat($0, width: 2, height: 2, value: 0) }
    }

    private func sink(_ db: PostgresTestCluster, _ properties: [String: PropertyValue] = [:]) throws -> PostgresSink {
        var values: [String: PropertyValue] = [
            "location": .string(db.location), "password-env": .string(""), "password-file": .string(""),
            "pipeline": .string("cam"), "batch": .int(5), "interval": .int(100), "backlog": .int(10_000),
            "flush-timeout": .int(10_000),
        ]
        values.merge(properties) { $1 }
        return try PostgresSink(properties: StageProperties(values), context: .detached())
    }

    /// Polls `condition` every 50 ms for at most `limit`; whether it came true.
    private func eventually(within limit: Duration = .seconds(30), _ condition: () throws -> Bool) async rethrows
        -> Bool
    {
        let end = ContinuousClock.now + limit
        while ContinuousClock.now < end {
            if try condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return try condition()
    }

    @Test func storesFramesDetectionsAndTracksOfAHandMadeSequence() async throws {
        let db = try PostgresTestCluster()
        try db.start()
        var input = frames(0..<6)
        input[0].metadata[Detections.Key.self] = Detections([
            Detection(x0: 1, y0: 2, x1: 3, y1: 4, score: 0.5, classIndex: 2, label: "car", trackID: 1),
            Detection(
                x0: 10.5, y0: 20, x1: 30.25, y1: 44, score: 0.875, landmarks: [SIMD2(12, 25), SIMD2(28.5, 25)],
                classIndex: 0, trackID: 2),
        ])
        input[1].metadata[Detections.Key.self] = Detections([
            Detection(x0: 1, y0: 2, x1: 3, y1: 4, score: 0.75, classIndex: 2, label: "car", trackID: 1)
        ])
        input[2].metadata[Detections.Key.self] = Detections([Detection(x0: 5, y0: 6, x1: 7, y1: 8, score: 0.25)])
        input[3].metadata[Detections.Key.self] = Detections([
            Detection(x0: 1, y0: 2, x1: 3, y1: 4, score: 0.625, classIndex: 2, label: "car", trackID: 1),
            Detection(x0: 9, y0: 9, x1: 12, y1: 12, score: 0.5, classIndex: 5, label: "bus", trackID: 3),
        ])
        input[4].metadata[Detections.Key.self] = Detections([
            Detection(x0: 10, y0: 20, x1: 30, y1: 44, score: 0.9375, classIndex: 0, trackID: 2)
        ])
        input[1].skipped = true
        input[5].pts = nil

        // batch=2: tracks 1 and 2 span batches, so their rows are updated, not only inserted.
        let out = try await StageChain("postgres location=\(db.location) batch=2 pipeline=lobby", registry: .standard)
            .run(input)
        #expect(out.map(\.index) == Array(0..<6))
        #expect(try db.count("SELECT count(*) FROM frames") == out.count)
        #expect(
            try db.query("SELECT frame, pts, skipped, faces, pipeline FROM frames ORDER BY frame")
                == "0|0|f|2|lobby\n1|0.1|t|1|lobby\n2|0.2|f|1|lobby\n3|0.3|f|2|lobby\n4|0.4|f|1|lobby\n5||f|0|lobby")
        #expect(try db.count("SELECT count(DISTINCT run) FROM frames") == 1)

        #expect(
            try db.query(
                """
                SELECT f.frame, d.x0, d.y1, d.score, d.landmarks, d.class, d.label, d.track_id
                FROM detections d JOIN frames f ON f.id = d.frame_id ORDER BY d.id
                """)
                    == """
                    0|1|4|0.5|[]|2|car|1
                    0|10.5|44|0.875|[[12, 25], [28.5, 25]]|0||2
                    1|1|4|0.75|[]|2|car|1
                    2|5|8|0.25|[]|||
                    3|1|4|0.625|[]|2|car|1
                    3|9|12|0.5|[]|5|bus|3
                    4|10|44|0.9375|[]|0||2
                    """)

        #expect(
            try db.query(
                """
                SELECT track_id, class, label, first_frame, last_frame, best_score, frames, pipeline FROM tracks
                ORDER BY track_id
                """)
                == "1|2|car|0|3|0.75|3|lobby\n2|0||0|4|0.9375|2|lobby\n3|5|bus|3|3|0.5|1|lobby")
        // Times are the frames' own: first_seen of frame 0's row, last_seen of the last frame that saw the track.
        #expect(
            try db.query(
                """
                SELECT bool_and(t.first_seen = a.created_at AND t.last_seen = b.created_at AND t.run = a.run)
                FROM tracks t JOIN frames a ON a.frame = t.first_frame JOIN frames b ON b.frame = t.last_frame
                """) == "t")

        // Deleting a frame deletes its detections.
        try db.query("DELETE FROM frames WHERE frame = 0")
        #expect(try db.count("SELECT count(*) FROM detections") == 5)
    }

    /// Migrations run once: a second run, a third against a database already at the latest version, and two
    /// stages migrating at the same moment all leave one record and working tables.
    @Test func migrationsAreIdempotentAndSafeToRunTogether() async throws {
        let db = try PostgresTestCluster()
        try db.start()
        _ = try await StageChain("postgres location=\(db.location)", registry: .standard).run(frames(0..<2))
        _ = try await StageChain("postgres location=\(db.location)", registry: .standard).run(frames(0..<3))
        #expect(try db.query("SELECT version, name FROM skipd_migrations") == "1|frames, detections and tracks")
        #expect(try db.count("SELECT count(*) FROM frames") == 5)
        #expect(try db.count("SELECT count(DISTINCT run) FROM frames") == 2)

        // A fresh database, two pipelines starting together.
        let fresh = try PostgresTestCluster()
        try fresh.start()
        let chain = try StageChain("postgres location=\(fresh.location)", registry: .standard)
        let input = frames(0..<4)
        async let a = chain.run(input)
        async let b = chain.run(input)
        _ = try await (a, b)
        #expect(try fresh.count("SELECT count(*) FROM skipd_migrations") == 1)
        #expect(try fresh.count("SELECT count(*) FROM frames") == 8)
    }

    /// A table the migration would create already exists without its record (someone else's `frames`): the
    /// writer reports the server's message and retries instead of writing into it; nothing is recorded.
    @Test func aConflictingTableIsReportedNotClobbered() async throws {
        let db = try PostgresTestCluster()
        try db.start()
        try db.query("CREATE TABLE frames (other text)")
        var stage = try sink(db, ["flush-timeout": .int(1500)])
        _ = try await stage.process(frames(0..<1)[0])
        let error = await #expect(throws: PostgresSinkError.self) { try await stage.finish() }
        #expect(
            error?.description.contains("relation \"frames\" already exists") == true, "\(String(describing: error))")
        // The failed migration rolled back whole, its record table included.
        #expect(try db.count("SELECT count(*) FROM pg_tables WHERE tablename IN ('skipd_migrations', 'tracks')") == 0)
        #expect(try db.count("SELECT count(*) FROM frames") == 0)
    }

    /// `pg_ctl restart` while frames flow: every frame acknowledged before it is still there, the writer
    /// resumes by itself (all frames committed before `finish` is called), and no frame is stored twice.
    @Test func restartMidRunLosesNothingAcknowledgedAndRecovers() async throws {
        let db = try PostgresTestCluster()
        try db.start()
        var stage = try sink(db, ["batch": .int(5), "interval": .int(50)])
        let input = frames(0..<60)
        for frame in input[0..<20] {
            _ = try await stage.process(frame)
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(await eventually { stage.stats.written == 20 })
        let acknowledged = stage.stats.written
        // Frames keep coming while the server restarts.
        let restart = Task.detached { try db.restart() }
        for frame in input[20..<60] {
            let started = ContinuousClock.now
            _ = try await stage.process(frame)
            // A frame that waited for the database would wait out the restart (seconds); a loaded machine's slowest
            // append is far below that.
            #expect(ContinuousClock.now - started < .seconds(1), "the frame path waited for the database")
            try await Task.sleep(for: .milliseconds(50))
        }
        try await restart.value
        #expect(await eventually { stage.stats.written == 60 }, "\(stage.stats)")
        #expect(try db.count("SELECT count(*) FROM frames WHERE frame < \(acknowledged)") == acknowledged)
        try await stage.finish()
        #expect(
            try db.query("SELECT count(*), count(DISTINCT frame), min(frame), max(frame) FROM frames") == "60|60|0|59")
        #expect(stage.stats.dropped == 0 && stage.stats.waiting == 0)
    }

    /// The database is not up when the pipeline starts: no configuration error, frames wait without slowing the
    /// frame path, and arrive once the server starts.
    @Test func databaseDownAtStartThenRowsArriveOnceItStarts() async throws {
        let db = try PostgresTestCluster()
        var stage = try sink(db, ["batch": .int(4), "interval": .int(50)])
        let started = ContinuousClock.now
        for frame in frames(0..<10) { _ = try await stage.process(frame) }
        // Waiting for an absent server would never end; appending ten rows takes far less than this.
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(await eventually(within: .seconds(10)) { stage.stats.failures > 0 })
        #expect(stage.stats.written == 0 && stage.stats.waiting == 10 && stage.stats.failing)
        try db.start()
        #expect(await eventually { stage.stats.written == 10 }, "\(stage.stats)")
        #expect(!stage.stats.failing)
        try await stage.finish()
        #expect(try db.query("SELECT count(*), min(frame), max(frame) FROM frames") == "10|0|9")
    }

    /// A full backlog drops its oldest frames and counts them; the newest are written once the database is back.
    @Test func fullBacklogDropsTheOldestAndCountsThem() async throws {
        let db = try PostgresTestCluster()
        var stage = try sink(db, ["batch": .int(100), "interval": .int(60_000), "backlog": .int(5)])
        for frame in frames(0..<12) { _ = try await stage.process(frame) }
        #expect(stage.stats.dropped == 7 && stage.stats.waiting == 5)
        try db.start()
        try await stage.finish()
        #expect(try db.query("SELECT string_agg(frame::text, ',' ORDER BY frame) FROM frames") == "7,8,9,10,11")
    }

    /// Still down at end of stream: `finish` gives up after `flush-timeout` with an error that counts the frames
    /// and names the database without its password.
    @Test func finishGivesUpAfterTheFlushTimeout() async throws {
        let db = try PostgresTestCluster()
        let location = "postgresql://skipd:hunter2@127.0.0.1:\(db.port)/postgres?sslmode=disable"
        var stage = try sink(db, ["location": .string(location), "flush-timeout": .int(800)])
        for frame in frames(0..<3) { _ = try await stage.process(frame) }
        let started = ContinuousClock.now
        let error = await #expect(throws: PostgresSinkError.self) { try await stage.finish() }
        #expect(ContinuousClock.now - started < .seconds(5))
        let message = try #require(error?.description)
        #expect(
            message.hasPrefix(
                "3 frames not written to postgresql://skipd@127.0.0.1:\(db.port)/postgres?sslmode=disable within "),
            "\(message)")
        #expect(!message.contains("hunter2"))
        #expect(stage.stats.unwritten == 3)
    }

    /// A password file that cannot be read and an unset password variable fail the run as configuration errors
    /// (a rebuild would meet them again); an unreachable database does not.
    @Test func unusablePasswordSourcesAreConfigurationErrors() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("skipd-pgpw-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let location = "postgresql://skipd@127.0.0.1:1/postgres"
        for (properties, expected) in [
            ("password-file=\(dir.path)", "password-file: cannot read \(dir.path)"),
            ("password-env=SKIPD_TEST_UNSET_VARIABLE", "the environment variable SKIPD_TEST_UNSET_VARIABLE is not set"),
        ] {
            let chain = try StageChain("postgres location=\(location) \(properties)", registry: .standard)
            let error = await #expect(throws: PipelineRunError.self) { try await chain.run(frames(0..<1)) }
            #expect(error?.isConfiguration == true)
            #expect(error?.description.contains(expected) == true, "\(String(describing: error))")
        }
        let unreachable = try StageChain("postgres location=\(location) flush-timeout=0", registry: .standard)
        let error = await #expect(throws: PipelineRunError.self) { try await unreachable.run(frames(0..<1)) }
        #expect(error?.isConfiguration == false)
    }
}
