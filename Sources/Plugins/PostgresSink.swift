import Foundation
import Logging
import PipelineKit

/// Stores one row per frame and per detection, and one per track, in a PostgreSQL database; frames pass on
/// unchanged and never wait for the database.
///
/// ```
/// … ! detect labels=coco.names ! track ! postgres location=postgresql://skipd@db.lan:5432/skipd password-env=PGPASSWORD
/// ```
/// The password comes from `password-env` (an environment variable, e.g. systemd's `Environment=` or
/// `LoadCredential=`) or `password-file` (its first line); one in the URL is used but shown as `***` wherever
/// the location is printed. Tables (created by migrations recorded in `skipd_migrations`):
/// - `frames(id, run, pipeline, frame, pts, skipped, changed, executed_macs, faces, created_at)`: as `sqlite`'s,
///   plus `run`, a UUID per start of the pipeline (frame indices and track IDs count from there; a supervised
///   rebuild starts a new run); unique by (run, frame).
/// - `detections(id, frame_id → frames ON DELETE CASCADE, x0, y0, x1, y1, score, landmarks jsonb, class, label,
///   track_id)`: as `sqlite`'s.
/// - `tracks(pipeline, run, track_id, class, label, first_frame, last_frame, first_seen, last_seen, best_score,
///   frames)`: one row per ``Detection/trackID`` per run, upserted with each batch that saw it: its first and last
///   frame index and time, its first class and label, its best score, and how many frames reported it.
///
/// Frames go into a backlog of at most `backlog` frames and a writer task commits them `batch` at a time, or
/// once the oldest has waited `interval` ms. A frame is *acknowledged* once its transaction commits. While the
/// database is unreachable (down, restarting, not yet up when the pipeline starts) the writer retries with
/// backoff and logs once a minute; a full backlog drops its oldest frames and logs how many. End of stream and
/// the SIGTERM drain commit what waits, for at most `flush-timeout` ms; frames still unwritten then fail the run.
public struct PostgresSink: Stage {
    public static let info = StageInfo(
        name: "postgres",
        summary: "One PostgreSQL row per frame, detection and track (batched off the frame path, retried)",
        example: "track ! postgres location=postgresql://skipd@db.lan:5432/skipd password-env=PGPASSWORD",
        properties: [
            .string(
                "location", default: nil,
                "postgresql://user@host[:port]/database[?sslmode=disable|prefer|require|verify-full]",
                check: { text in
                    if case .failure(let error) = PostgresLocation.parse(text) { return error }
                    return nil
                }),
            .string(
                "password-env", default: "",
                "environment variable holding the password (default: none, or the URL's)"),
            .file("password-file", optional: true, "file whose first line is the password"),
            .string("pipeline", default: "file name", "name stored in every row (default: the pipeline file's)"),
            .int("batch", default: 50, range: 1...10_000, "frames per transaction"),
            .int("interval", default: 1000, range: 1...3_600_000, "ms a frame may wait before its batch commits"),
            .int(
                "backlog", default: 10_000, range: 1...10_000_000,
                "frames waiting for the database at most; when full the oldest are dropped and counted"),
            .int(
                "flush-timeout", default: 5000, range: 0...3_600_000,
                "ms the end of stream (and SIGTERM) waits for waiting frames to commit"),
        ])

    private let handle: Handle
    private let pipeline: String
    private let encoder = JSONEncoder()

    public init(properties: StageProperties, context: StageContext) throws {
        // The planner checked the URL; a direct caller (a tool, a test) gets the same message as an error.
        let location: PostgresLocation
        switch PostgresLocation.parse(properties.string("location")) {
        case .success(let parsed): location = parsed
        case .failure(let error): throw PostgresConfigurationError("location: \(error.message)")
        }
        let environmentName = properties.string("password-env")
        let file = properties.string("password-file")
        let password = try PostgresPassword.resolve(
            location: location, environmentName: environmentName.isEmpty ? nil : environmentName,
            file: file.isEmpty ? nil : file)
        pipeline = properties.isSet("pipeline") ? properties.string("pipeline") : context.pipeline
        var settings = PostgresWriter.Settings()
        settings.batch = properties.int("batch")
        settings.interval = .milliseconds(properties.int("interval"))
        settings.backlog = properties.int("backlog")
        var logger = Logger(label: "skipd.postgres")
        logger[metadataKey: "pipeline"] = "\(pipeline)"
        if location.password != nil {
            let advice = "password-env or password-file keeps it out of pipeline files"
            logger.warning(
                "postgres: the password is in the location URL; \(advice)",
                metadata: ["database": "\(location.redacted)"])
        }
        // Nothing connects here: an unreachable database is an outage the writer rides out, not a bad pipeline.
        handle = Handle(
            writer: PostgresWriter(location: location, password: password, settings: settings, logger: logger),
            flushTimeout: .milliseconds(properties.int("flush-timeout")))
    }

    public mutating func process(_ frame: Frame) async throws -> Frame? {
        handle.writer.add(try FrameRow(frame, pipeline: pipeline, encoder: encoder))
        return frame
    }

    public mutating func finish() async throws {
        try await handle.writer.finish(timeout: handle.flushTimeout)
    }

    /// What the writer has done so far (tests, tools).
    var stats: PostgresWriter.Stats { handle.writer.stats }

    /// Owns the writer for the stage: a stage dropped without `finish` (its run was cancelled by another error)
    /// still gets its waiting frames flushed, in the background, for the flush timeout.
    private final class Handle: Sendable {
        let writer: PostgresWriter
        let flushTimeout: Duration

        init(writer: PostgresWriter, flushTimeout: Duration) {
            self.writer = writer
            self.flushTimeout = flushTimeout
        }

        deinit { writer.abandon(timeout: flushTimeout) }
    }
}
