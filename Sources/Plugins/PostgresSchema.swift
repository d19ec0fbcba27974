import Logging
import PostgresNIO

/// The `postgres` sink's tables, created by numbered migrations recorded in `skipd_migrations(version, name,
/// applied_at)`. Each migration runs in its own transaction under an advisory lock, so pipelines that start
/// together against one database migrate it once; a database already at the latest version is left alone.
enum PostgresSchema {
    struct Migration: Sendable {
        var version: Int
        var name: String
        var statements: [String]
    }

    /// Serialises migrations across connections (any constant; `skipd` in ASCII).
    static let lockKey = 0x736B_6970_64

    static let migrations: [Migration] = [
        Migration(
            version: 1, name: "frames, detections and tracks",
            statements: [
                """
                CREATE TABLE frames (
                    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    run uuid NOT NULL,
                    pipeline text NOT NULL,
                    frame bigint NOT NULL,
                    pts double precision,
                    skipped boolean NOT NULL,
                    changed double precision,
                    executed_macs bigint,
                    faces integer NOT NULL,
                    created_at timestamptz NOT NULL,
                    UNIQUE (run, frame)
                )
                """,
                "CREATE INDEX frames_by_pipeline ON frames (pipeline, created_at)",
                """
                CREATE TABLE detections (
                    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    frame_id bigint NOT NULL REFERENCES frames (id) ON DELETE CASCADE,
                    x0 double precision NOT NULL,
                    y0 double precision NOT NULL,
                    x1 double precision NOT NULL,
                    y1 double precision NOT NULL,
                    score double precision NOT NULL,
                    landmarks jsonb NOT NULL,
                    class integer,
                    label text,
                    track_id bigint
                )
                """,
                "CREATE INDEX detections_by_frame ON detections (frame_id)",
                """
                CREATE TABLE tracks (
                    pipeline text NOT NULL,
                    run uuid NOT NULL,
                    track_id bigint NOT NULL,
                    class integer,
                    label text,
                    first_frame bigint NOT NULL,
                    last_frame bigint NOT NULL,
                    first_seen timestamptz NOT NULL,
                    last_seen timestamptz NOT NULL,
                    best_score double precision NOT NULL,
                    frames integer NOT NULL,
                    PRIMARY KEY (pipeline, run, track_id)
                )
                """,
            ])
    ]

    /// Brings the database to the latest version; returns the versions this call applied.
    @discardableResult
    static func migrate(_ client: PostgresClient, logger: Logger) async throws -> [Int] {
        var applied: [Int] = []
        for migration in migrations {
            let ran = try await client.withTransaction(logger: logger) { connection in
                try await connection.query("SELECT pg_advisory_xact_lock(\(lockKey))", logger: logger)
                // Inside the lock: two first starts cannot both create it.
                try await connection.query(
                    """
                    CREATE TABLE IF NOT EXISTS skipd_migrations (
                        version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now()
                    )
                    """, logger: logger)
                let rows = try await connection.query(
                    "SELECT 1 FROM skipd_migrations WHERE version = \(migration.version)", logger: logger)
                var done = false
                for try await _ in rows { done = true }
                if done { return false }
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO skipd_migrations (version, name) VALUES (\(migration.version), \(migration.name))",
                    logger: logger)
                return true
            }
            if ran { applied.append(migration.version) }
        }
        return applied
    }
}
