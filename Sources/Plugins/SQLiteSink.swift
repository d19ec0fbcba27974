import Foundation
import GRDB
import PipelineKit
import Synchronization

/// Stores one row per frame and one per detection in a SQLite database (WAL), batched; frames pass on unchanged.
///
/// ```
/// … ! centerface ! sqlite location=/var/lib/skipd/results.sqlite
/// ```
/// Tables (created by a migration, appended to on later runs):
/// - `frames(id, pipeline, frame, pts, skipped, changed, executed_macs, faces, created_at)`: `pts` in seconds,
///   `changed` residual's changed-block fraction, `executed_macs` a model stage's ``ComputeCost`` (both NULL when
///   no such stage ran), `faces` the number of ``Detections`` (0 without a decoder), `created_at` when the frame
///   reached this stage (UTC, `YYYY-MM-DD HH:MM:SS.SSS`).
/// - `detections(id, frame_id → frames ON DELETE CASCADE, x0, y0, x1, y1, score, landmarks, class, label,
///   track_id)`: frame pixels; `landmarks` is JSON `[[x, y], …]`; `class` and `label` a multi-class decoder's
///   (`detect`) class index and name, NULL for faces or without a labels file; `track_id` the ``Detection/trackID``
///   `track` gave it (unique within one run of the pipeline), NULL without tracking.
///
/// Rows are written in one transaction per `batch` frames, or earlier once the oldest waiting frame has waited
/// `interval` ms. A frame is *acknowledged* once its transaction has committed (synchronous=FULL: also after a
/// power loss); passing a frame on to the next stage acknowledges nothing. End of stream and the SIGTERM drain
/// both end in ``finish()``, which commits every waiting frame, so a clean stop loses no frame that reached the
/// stage. A crash or a run stopped by an error loses at most the uncommitted batch.
public struct SQLiteSink: Stage {
    public static let info = StageInfo(
        name: "sqlite",
        summary: "One SQLite row per frame and per detection (WAL, batched transactions)",
        example: "centerface ! sqlite location=/var/lib/skipd/results.sqlite",
        properties: [
            .string(
                "location", default: defaultLocation(environment: ProcessInfo.processInfo.environment),
                "database file, created with its parent directories; default: `store` of skipd serve's config, "
                    + "else $STATE_DIRECTORY/results.sqlite (systemd StateDirectory=), else out/results.sqlite"),
            .string("pipeline", default: "file name", "name stored in every frame row (default: the pipeline file's)"),
            .int("batch", default: 30, range: 1...100_000, "frames per transaction"),
            .int("interval", default: 500, range: 1...3_600_000, "ms a frame may wait before its batch commits"),
        ])

    /// `$STATE_DIRECTORY/results.sqlite` (its first entry: systemd joins several with `:`), else
    /// `out/results.sqlite`.
    static func defaultLocation(environment: [String: String]) -> String {
        if let first = environment["STATE_DIRECTORY"]?.split(separator: ":").first, !first.isEmpty {
            return URL(fileURLWithPath: String(first)).appendingPathComponent("results.sqlite").path
        }
        return "out/results.sqlite"
    }

    private let writer: ResultsWriter
    private let pipeline: String
    private let encoder = JSONEncoder()

    public init(properties: StageProperties, context: StageContext) throws {
        pipeline = properties.isSet("pipeline") ? properties.string("pipeline") : context.pipeline
        // Opening and migrating block this task for a few milliseconds, once, before the first frame.
        writer = try ResultsWriter(
            location: properties.isSet("location")
                ? properties.string("location") : context.store ?? properties.string("location"),
            batch: properties.int("batch"),
            interval: .milliseconds(properties.int("interval")))
    }

    public mutating func process(_ frame: Frame) async throws -> Frame? {
        try await writer.add(FrameRow(frame, pipeline: pipeline, encoder: encoder))
        return frame
    }

    public mutating func finish() async throws {
        try await writer.finish()
    }
}

struct SQLiteSinkError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

struct FrameRow: Sendable {
    var pipeline: String
    var frame: Int
    var pts: Double?
    var skipped: Bool
    var changed: Double?
    var executedMACs: Int?
    var createdAt: Date
    var detections: [DetectionRow]
}

extension FrameRow {
    /// The row a results sink (`sqlite`, `postgres`) stores for `frame`: its index, time, skip, change and cost,
    /// and its detections with landmarks as JSON.
    init(_ frame: Frame, pipeline: String, encoder: JSONEncoder) throws {
        let detections = try (frame.metadata[Detections.Key.self]?.items ?? []).map { d in
            let landmarks = try encoder.encode(d.landmarks.map { [$0.x, $0.y] })
            return DetectionRow(
                x0: Double(d.x0), y0: Double(d.y0), x1: Double(d.x1), y1: Double(d.y1), score: Double(d.score),
                landmarks: String(decoding: landmarks, as: UTF8.self), classIndex: d.classIndex, label: d.label,
                trackID: d.trackID)
        }
        self.init(
            pipeline: pipeline, frame: frame.index, pts: frame.pts.map { Double($0) / 1e9 }, skipped: frame.skipped,
            changed: frame.metadata[ResidualMap.Key.self]?.changedFraction,
            executedMACs: frame.metadata[ComputeCost.Key.self]?.executedMACs, createdAt: Date(),
            detections: detections)
    }
}

struct DetectionRow: Sendable {
    var x0, y0, x1, y1, score: Double
    var landmarks: String
    var classIndex: Int?
    var label: String?
    var trackID: Int?
}

/// The database and the frames waiting for their transaction. Shared with the interval timer, so a frame never
/// waits longer than `interval` even when no further frame arrives (a stalled camera).
///
/// Writes go through GRDB's async `write`, which runs on the database's own serial queue: the stage's task is
/// suspended, not blocking one of the two cooperative threads, while SQLite commits. Rows are taken from
/// `pending` inside that serial queue, so transactions commit frames in arrival order.
final class ResultsWriter: Sendable {
    private let database: DatabaseQueue
    private let location: String
    private let batch: Int
    private let interval: Duration
    private let state = Mutex(State())

    private struct State {
        var pending: [FrameRow] = []
        /// The sleeping timer for the oldest pending frame; a timer that wakes takes itself out before committing,
        /// so cancelling one never interrupts a transaction (GRDB rolls back a cancelled write).
        var timer: (id: Int, task: Task<Void, Never>)?
        var timers = 0
        /// A failed timer commit, reported by the next frame or `finish`.
        var failure: SQLiteSinkError?
    }

    init(location: String, batch: Int, interval: Duration) throws {
        self.location = location
        self.batch = batch
        self.interval = interval
        do {
            try FileManager.default.createDirectory(
                at: URL(fileURLWithPath: location).deletingLastPathComponent(), withIntermediateDirectories: true)
        } catch {
            throw SQLiteSinkError("cannot create the directory of \(location): \(error.localizedDescription)")
        }
        var config = Configuration()
        config.journalMode = .wal
        // A reader (sqlite3, a dashboard) may briefly hold the lock while it checkpoints the WAL.
        config.busyMode = .timeout(5)
        do {
            database = try DatabaseQueue(path: location, configuration: config)
            // GRDB's WAL setup picks synchronous=NORMAL, whose last commits may roll back after a power cut; FULL
            // makes a commit (an acknowledgement) durable for one WAL fsync per batch.
            try database.inDatabase { try $0.execute(sql: "PRAGMA synchronous = FULL") }
            try Self.migrator.migrate(database)
        } catch {
            throw SQLiteSinkError("cannot open \(location): \(error)")
        }
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1 frames and detections") { db in
            try db.create(table: "frames") { t in
                t.primaryKey("id", .integer)
                t.column("pipeline", .text).notNull()
                t.column("frame", .integer).notNull()
                t.column("pts", .real)
                t.column("skipped", .boolean).notNull()
                t.column("changed", .real)
                t.column("executed_macs", .integer)
                t.column("faces", .integer).notNull()
                t.column("created_at", .datetime).notNull()
            }
            try db.create(index: "frames_by_pipeline", on: "frames", columns: ["pipeline", "frame"])
            try db.create(table: "detections") { t in
                t.primaryKey("id", .integer)
                // Indexed: the cascade and per-frame lookups search by frame.
                t.column("frame_id", .integer).notNull().indexed().references("frames", onDelete: .cascade)
                for name in ["x0", "y0", "x1", "y1", "score"] { t.column(name, .real).notNull() }
                t.column("landmarks", .jsonText).notNull()
            }
        }
        // A database written by an earlier version gains the columns; its rows read NULL.
        migrator.registerMigration("v2 detection classes") { db in
            try db.alter(table: "detections") { t in
                t.add(column: "class", .integer)
                t.add(column: "label", .text)
            }
        }
        migrator.registerMigration("v3 detection track ids") { db in
            try db.alter(table: "detections") { t in t.add(column: "track_id", .integer) }
        }
        return migrator
    }

    /// Queues a frame; commits when the batch is full (the caller waits, which paces the stage to the disk).
    func add(_ row: FrameRow) async throws {
        let full = try state.withLock { s throws(SQLiteSinkError) -> Bool in
            if let failure = s.failure { throw failure }
            s.pending.append(row)
            if s.timer == nil {
                s.timers += 1
                let id = s.timers
                s.timer = (
                    id,
                    Task { [self, interval] in
                        guard (try? await Task.sleep(for: interval)) != nil else { return }
                        await commitOnTimer(id)
                    }
                )
            }
            return s.pending.count >= batch
        }
        if full { try await commit() }
    }

    /// Commits every waiting frame and closes the database: end of stream and the SIGTERM drain.
    func finish() async throws {
        let timer = state.withLock { s in
            defer { s.timer = nil }
            return s.timer?.task
        }
        timer?.cancel()
        try await commit()
        if let failure = state.withLock({ $0.failure }) { throw failure }
        do {
            // Closing now rather than on release makes the end deterministic for readers that open the file next.
            // The checkpoint runs off the cooperative pool, so the blocking close only removes an empty WAL.
            _ = try await database.writeWithoutTransaction { try $0.checkpoint(.passive) }
            try database.close()
        } catch {
            throw SQLiteSinkError("cannot close \(location): \(error)")
        }
    }

    private func commitOnTimer(_ id: Int) async {
        let due = state.withLock { s in
            guard s.timer?.id == id else { return false }
            s.timer = nil
            return true
        }
        guard due else { return }
        do {
            try await commit()
        } catch {
            state.withLock { s in
                if s.failure == nil { s.failure = error as? SQLiteSinkError ?? SQLiteSinkError("\(error)") }
            }
        }
    }

    private func commit() async throws {
        guard state.withLock({ !$0.pending.isEmpty }) else { return }
        do {
            try await database.write { db in
                let rows = self.state.withLock { s in
                    // These rows are in this transaction: the next frame starts a new timer.
                    s.timer?.task.cancel()
                    s.timer = nil
                    defer { s.pending = [] }
                    return s.pending
                }
                try Self.insert(rows, db)
            }
        } catch let error as CancellationError {
            // The run is being torn down by another error; the rows were never acknowledged.
            throw error
        } catch {
            throw SQLiteSinkError("cannot write \(location): \(error)")
        }
    }

    private static func insert(_ rows: [FrameRow], _ db: Database) throws {
        let frame = try db.cachedStatement(
            sql: """
                INSERT INTO frames (pipeline, frame, pts, skipped, changed, executed_macs, faces, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """)
        let detection = try db.cachedStatement(
            sql: """
                INSERT INTO detections (frame_id, x0, y0, x1, y1, score, landmarks, class, label, track_id)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
        for row in rows {
            try frame.execute(arguments: [
                row.pipeline, row.frame, row.pts, row.skipped, row.changed, row.executedMACs, row.detections.count,
                row.createdAt,
            ])
            let id = db.lastInsertedRowID
            for d in row.detections {
                try detection.execute(arguments: [
                    id, d.x0, d.y0, d.x1, d.y1, d.score, d.landmarks, d.classIndex, d.label, d.trackID,
                ])
            }
        }
    }
}
