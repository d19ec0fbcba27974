import Foundation
import Logging
import PostgresNIO

/// The statements of one batch, run inside its transaction: frames, their detections, and the upsert of the tracks
/// they saw. Frames are unique by (run, frame) and inserted `ON CONFLICT DO NOTHING`: a batch retried after a
/// COMMIT whose answer was lost (the server went away just then) adds nothing twice. Only the frames this
/// transaction inserted contribute detections and track updates.
enum PostgresBatchInsert {
    /// Rows per statement: PostgreSQL takes at most 65535 parameters in one.
    static let framesPerStatement = 1000
    static let detectionsPerStatement = 2000
    static let tracksPerStatement = 2000

    /// Inserts the rows; the number of frames inserted (fewer than given when some were already there).
    @discardableResult
    static func insert(_ rows: [FrameRow], run: UUID, into connection: PostgresConnection, logger: Logger)
        async throws -> Int
    {
        var ids: [Int: Int] = [:]
        for chunk in rows.chunked(framesPerStatement) {
            var binds = PostgresBindings()
            var values: [String] = []
            for row in chunk {
                let first = binds.count + 1
                binds.append(run)
                binds.append(row.pipeline)
                binds.append(row.frame)
                binds.append(row.pts)
                binds.append(row.skipped)
                binds.append(row.changed)
                binds.append(row.executedMACs)
                binds.append(row.detections.count)
                binds.append(row.createdAt)
                values.append(
                    placeholders(
                        from: first,
                        ["uuid", "text", "bigint", "float8", "boolean", "float8", "bigint", "integer", "timestamptz"]))
            }
            let query = PostgresQuery(
                unsafeSQL: """
                    INSERT INTO frames (run, pipeline, frame, pts, skipped, changed, executed_macs, faces, created_at)
                    VALUES \(values.joined(separator: ", "))
                    ON CONFLICT (run, frame) DO NOTHING RETURNING id, frame
                    """, binds: binds)
            for try await (id, frame) in try await connection.query(query, logger: logger).decode((Int, Int).self) {
                ids[frame] = id
            }
        }
        let inserted = rows.filter { ids[$0.frame] != nil }

        let detections = inserted.flatMap { row in row.detections.map { (frameID: ids[row.frame] ?? 0, $0) } }
        for chunk in detections.chunked(detectionsPerStatement) {
            var binds = PostgresBindings()
            var values: [String] = []
            for (frameID, d) in chunk {
                let first = binds.count + 1
                binds.append(frameID)
                for value in [d.x0, d.y0, d.x1, d.y1, d.score] { binds.append(value) }
                binds.append(d.landmarks)
                binds.append(d.classIndex)
                binds.append(d.label)
                binds.append(d.trackID)
                values.append(
                    placeholders(
                        from: first,
                        [
                            "bigint", "float8", "float8", "float8", "float8", "float8", "jsonb", "integer", "text",
                            "bigint",
                        ]))
            }
            try await connection.query(
                PostgresQuery(
                    unsafeSQL: """
                        INSERT INTO detections (frame_id, x0, y0, x1, y1, score, landmarks, class, label, track_id)
                        VALUES \(values.joined(separator: ", "))
                        """, binds: binds), logger: logger)
        }

        for chunk in TrackSummary.of(inserted).chunked(tracksPerStatement) {
            var binds = PostgresBindings()
            var values: [String] = []
            for t in chunk {
                let first = binds.count + 1
                binds.append(t.pipeline)
                binds.append(run)
                binds.append(t.trackID)
                binds.append(t.classIndex)
                binds.append(t.label)
                binds.append(t.firstFrame)
                binds.append(t.lastFrame)
                binds.append(t.firstSeen)
                binds.append(t.lastSeen)
                binds.append(t.bestScore)
                binds.append(t.frames)
                values.append(
                    placeholders(
                        from: first,
                        [
                            "text", "uuid", "bigint", "integer", "text", "bigint", "bigint", "timestamptz",
                            "timestamptz", "float8", "integer",
                        ]))
            }
            try await connection.query(
                PostgresQuery(
                    unsafeSQL: """
                        INSERT INTO tracks AS t (pipeline, run, track_id, class, label, first_frame, last_frame,
                            first_seen, last_seen, best_score, frames)
                        VALUES \(values.joined(separator: ", "))
                        ON CONFLICT (pipeline, run, track_id) DO UPDATE SET
                            class = coalesce(t.class, excluded.class),
                            label = coalesce(t.label, excluded.label),
                            first_frame = least(t.first_frame, excluded.first_frame),
                            last_frame = greatest(t.last_frame, excluded.last_frame),
                            first_seen = least(t.first_seen, excluded.first_seen),
                            last_seen = greatest(t.last_seen, excluded.last_seen),
                            best_score = greatest(t.best_score, excluded.best_score),
                            frames = t.frames + excluded.frames
                        """, binds: binds), logger: logger)
        }
        return inserted.count
    }

    /// `($3::uuid, $4::text, …)`: typed, so NULLs and multi-row VALUES need no inference.
    private static func placeholders(from first: Int, _ types: [String]) -> String {
        "(" + types.enumerated().map { "$\(first + $0.offset)::\($0.element)" }.joined(separator: ", ") + ")"
    }
}

/// What one batch says about each track it saw: the `tracks` row it upserts.
struct TrackSummary: Equatable {
    var pipeline: String
    var trackID: Int
    var classIndex: Int?
    var label: String?
    var firstFrame, lastFrame: Int
    var firstSeen, lastSeen: Date
    var bestScore: Double
    /// Frames the track was reported on (a track appears once per frame).
    var frames: Int

    /// One summary per track ID, in order of first appearance.
    static func of(_ rows: [FrameRow]) -> [TrackSummary] {
        var order: [Int] = []
        var tracks: [Int: TrackSummary] = [:]
        for row in rows {
            for d in row.detections {
                guard let id = d.trackID else { continue }
                if var t = tracks[id] {
                    t.classIndex = t.classIndex ?? d.classIndex
                    t.label = t.label ?? d.label
                    t.firstFrame = min(t.firstFrame, row.frame)
                    t.lastFrame = max(t.lastFrame, row.frame)
                    t.firstSeen = min(t.firstSeen, row.createdAt)
                    t.lastSeen = max(t.lastSeen, row.createdAt)
                    t.bestScore = max(t.bestScore, d.score)
                    t.frames += 1
                    tracks[id] = t
                } else {
                    order.append(id)
                    tracks[id] = TrackSummary(
                        pipeline: row.pipeline, trackID: id, classIndex: d.classIndex, label: d.label,
                        firstFrame: row.frame, lastFrame: row.frame, firstSeen: row.createdAt,
                        lastSeen: row.createdAt, bestScore: d.score, frames: 1)
                }
            }
        }
        return order.compactMap { tracks[$0] }
    }
}

extension Array {
    /// Consecutive slices of at most `size` elements.
    fileprivate func chunked(_ size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}
