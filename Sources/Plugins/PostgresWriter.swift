import Foundation
import Logging
import PipelineKit
import PostgresNIO
import Synchronization

/// The `postgres` sink's side of the database: a bounded backlog the frame path appends to without waiting, and
/// one writer task that commits it in batches through a `PostgresClient` pool.
///
/// A batch is `batch` frames, or fewer once the oldest has waited `interval`. A failed or unanswered attempt
/// (database down, restarted, unreachable) is retried with backoff (0.25 s doubling to 5 s) until it commits; the
/// batch is the writer's until then, while new frames keep arriving in the backlog, whose oldest are dropped and
/// counted once it is full. A frame is *acknowledged* when its batch commits, and never lost after that.
///
/// ``finish(timeout:)`` (end of stream, SIGTERM drain) commits everything waiting within the timeout. A writer
/// released without `finish` (the run was torn down by an error) flushes in the background for the same time.
final class PostgresWriter: Sendable {
    struct Settings: Sendable {
        var batch = 50
        var interval: Duration = .seconds(1)
        var backlog = 10_000
        /// How long one attempt (connect, migrate, one transaction) may take before it is abandoned and retried.
        var attemptLimit: Duration = .seconds(10)
        /// Longest wait between attempts.
        var maximumBackoff: Duration = .seconds(5)
    }

    /// What the writer has done, for log lines and tests.
    struct Stats: Sendable, Equatable {
        /// Frames committed (acknowledged).
        var written = 0
        /// Frames dropped from a full backlog.
        var dropped = 0
        /// Frames waiting: in the backlog or in the batch being committed.
        var waiting = 0
        /// Failed attempts so far.
        var failures = 0
        /// Frames still waiting when the writer stopped (flush timeout).
        var unwritten = 0
        /// Whether the last attempt failed.
        var failing = false
    }

    let location: PostgresLocation
    private let settings: Settings
    private let run = UUID()
    private let configuration: PostgresClient.Configuration
    /// The pool and the task that runs it; replaced when it lags behind a server that is back (``commit(_:)``).
    private let pool: Mutex<(client: PostgresClient, task: Task<Void, Never>)>
    private let logger: Logger
    private let password: String?
    /// Removes the password from anything shown (server messages, errors).
    private let scrub: @Sendable (String) -> String
    private let state: Mutex<State>
    private let writer = Mutex<Task<Void, Never>?>(nil)

    private struct State {
        var backlog: PostgresBacklog
        /// The batch being committed.
        var inFlight = 0
        var stats = Stats()
        var migrated = false
        /// Whether the last attempt succeeded; until then each attempt first connects on its own (``probe()``).
        var healthy = false
        /// Set by `finish`: write what is left, then stop, by `deadline`.
        var deadline: ContinuousClock.Instant?
        /// The writer task sleeping until there is work, and a wake-up that came while it was not asleep.
        var sleeper: CheckedContinuation<Void, Never>?
        var rang = false
        var lastError = ""
        var lastDropReport: ContinuousClock.Instant?
    }

    init(location: PostgresLocation, password: String?, settings: Settings, logger: Logger) {
        self.location = location
        self.settings = settings
        self.logger = logger
        self.password = password
        scrub = { text in
            guard let password, !password.isEmpty else { return text }
            return text.replacingOccurrences(of: password, with: "***")
        }
        var configuration = PostgresClient.Configuration(
            host: location.host, port: location.port, username: location.user, password: password,
            database: location.database, tls: Self.tls(location.tls).pool)
        configuration.options.connectTimeout = .seconds(5)
        // One writer, one transaction at a time; a second connection only replaces one that an abandoned attempt
        // still holds.
        configuration.options.maximumConnections = 2
        self.configuration = configuration
        pool = Mutex(Self.startPool(configuration))
        state = Mutex(State(backlog: PostgresBacklog(capacity: settings.backlog)))
        writer.withLock { $0 = Task { [self] in await writeUntilFinished() } }
    }

    private static func startPool(_ configuration: PostgresClient.Configuration) -> (PostgresClient, Task<Void, Never>)
    {
        let client = PostgresClient(configuration: configuration)
        return (client, Task { await client.run() })
    }

    private var client: PostgresClient { pool.withLock { $0.client } }

    /// The pool's TLS mode, and the TLS configuration a probe connection uses (nil: none).
    private static func tls(_ mode: PostgresLocation.TLSMode) -> (
        pool: PostgresClient.Configuration.TLS, probe: TLSConfiguration?, required: Bool
    ) {
        var unchecked = TLSConfiguration.makeClientConfiguration()
        unchecked.certificateVerification = .none
        switch mode {
        case .disable: return (.disable, nil, false)
        case .prefer: return (.prefer(unchecked), unchecked, false)
        case .require: return (.require(unchecked), unchecked, true)
        case .verifyFull: return (.require(.makeClientConfiguration()), .makeClientConfiguration(), true)
        }
    }

    var stats: Stats {
        state.withLock { s in
            var stats = s.stats
            stats.waiting = s.backlog.count + s.inFlight
            stats.dropped = s.backlog.dropped
            return stats
        }
    }

    /// Queues a frame row; never waits for the database.
    func add(_ row: FrameRow) {
        let (wake, dropped, report) = state.withLock { s -> (Bool, Int, Bool) in
            let droppedOne = s.backlog.append(row)
            var report = false
            if droppedOne, s.lastDropReport.map({ .now - $0 > .seconds(10) }) ?? true {
                s.lastDropReport = .now
                report = true
            }
            // The writer sleeps until the batch is full, or until the first row's interval ends.
            return (s.backlog.count >= settings.batch || s.backlog.count == 1, s.backlog.dropped, report)
        }
        if report {
            logger.warning(
                "postgres: backlog full (\(settings.backlog) frames): dropping the oldest; \(dropped) dropped so far",
                metadata: ["database": "\(location.redacted)"])
        }
        if wake { ring() }
    }

    /// Commits what is waiting, waiting at most `timeout`; throws when frames could not be written by then.
    func finish(timeout: Duration) async throws {
        beginFinishing(timeout: timeout)
        await writer.withLock { $0 }?.value
        let stats = self.stats
        if stats.dropped > 0 {
            logger.warning(
                "postgres: \(stats.dropped) frames were dropped from the full backlog during this run",
                metadata: ["database": "\(location.redacted)"])
        }
        if stats.unwritten > 0 {
            let reason = state.withLock { $0.lastError }
            throw PostgresSinkError(
                "\(stats.unwritten) frames not written to \(location.redacted) within the \(timeout) flush timeout: "
                    + reason)
        }
    }

    /// Starts the final flush without waiting for it (the stage went away without `finish`).
    func abandon(timeout: Duration) { beginFinishing(timeout: timeout) }

    private func beginFinishing(timeout: Duration) {
        state.withLock { s in if s.deadline == nil { s.deadline = .now + timeout } }
        ring()
    }

    // MARK: - The writer task

    private func writeUntilFinished() async {
        while let batch = await nextBatch() {
            if await commit(batch) { continue }
            // The flush timeout passed with this batch unwritten: give up on it and on the rest.
            state.withLock { s in
                s.stats.unwritten = s.inFlight + s.backlog.count
                s.inFlight = 0
                _ = s.backlog.take(s.backlog.count)
            }
            break
        }
        pool.withLock { $0.task }.cancel()
    }

    /// The next batch to commit: the backlog's oldest rows once enough wait, once the oldest has waited
    /// `interval`, or once finishing; nil when finishing with nothing left.
    private func nextBatch() async -> [FrameRow]? {
        enum Next {
            case take([FrameRow])
            case sleep(until: ContinuousClock.Instant?)
            case done
        }
        while true {
            let next = state.withLock { s -> Next in
                let due = s.backlog.oldestArrival.map { $0 + settings.interval }
                if s.backlog.count >= settings.batch
                    || (!s.backlog.isEmpty && (s.deadline != nil || due.map { $0 <= .now } == true))
                {
                    let rows = s.backlog.take(settings.batch)
                    s.inFlight = rows.count
                    return .take(rows)
                }
                return s.deadline != nil ? .done : .sleep(until: due)
            }
            switch next {
            case .take(let rows): return rows
            case .done: return nil
            case .sleep(let until): await sleep(until: until)
            }
        }
    }

    /// Commits one batch, retrying until it commits (true) or the flush deadline passes (false).
    private func commit(_ batch: [FrameRow]) async -> Bool {
        var failures = 0
        var firstFailure: ContinuousClock.Instant?
        var lastReport: ContinuousClock.Instant?
        while true {
            let deadline = state.withLock { $0.deadline }
            if let deadline, deadline <= .now { return false }
            let attemptEnd = min(.now + settings.attemptLimit, deadline ?? .now + settings.attemptLimit)
            let probed = Flag()
            do {
                try await abandoning(at: attemptEnd) { [self, probed] in
                    if !state.withLock({ $0.healthy }) {
                        try await probe()
                        probed.set()
                    }
                    try await write(batch)
                }
                let stats = state.withLock { s in
                    s.stats.written += batch.count
                    s.stats.failing = false
                    s.healthy = true
                    s.inFlight = 0
                    return s.stats
                }
                if let firstFailure {
                    let now = self.stats
                    let message =
                        "postgres: writing again after \(Self.seconds(.now - firstFailure)) s; "
                        + "\(stats.written) frames written, \(now.waiting) waiting, \(now.dropped) dropped"
                    logger.warning(
                        "\(message)",
                        metadata: ["database": "\(location.redacted)"])
                }
                return true
            } catch {
                failures += 1
                let reason = describe(error)
                let waiting = state.withLock { s in
                    s.stats.failures += 1
                    s.stats.failing = true
                    s.healthy = false
                    s.lastError = reason
                    return s.backlog.count + s.inFlight
                }
                // The server answered a connection of its own, yet the pool gave no connection (or lost it): after a
                // long outage its own reconnect backoff reaches a minute. A fresh pool connects at once.
                if probed.isSet, (error as? PSQLError)?.serverInfo == nil {
                    let old = pool.withLock { p in
                        defer { p = Self.startPool(configuration) }
                        return p.task
                    }
                    old.cancel()
                }
                let now = ContinuousClock.now
                if firstFailure == nil { firstFailure = now }
                // One line when writing stops, then one a minute while it stays stopped.
                if lastReport.map({ now - $0 >= .seconds(60) }) ?? true {
                    lastReport = now
                    logger.warning(
                        "postgres: cannot write (\(reason)); \(waiting) frames waiting, retrying",
                        metadata: ["database": "\(location.redacted)", "attempts": "\(failures)"])
                }
                let backoff = min(.milliseconds(250) * (1 << min(failures - 1, 10)), settings.maximumBackoff)
                let wakeAt = min(now + backoff, state.withLock { $0.deadline } ?? now + backoff)
                try? await Task.sleep(until: wakeAt)
            }
        }
    }

    private func write(_ batch: [FrameRow]) async throws {
        if !state.withLock({ $0.migrated }) {
            let applied = try await PostgresSchema.migrate(client, logger: Self.quiet)
            state.withLock { $0.migrated = true }
            if !applied.isEmpty {
                logger.info(
                    "postgres: schema migrated to version \(applied.last ?? 0)",
                    metadata: ["database": "\(location.redacted)"])
            }
        }
        let run = self.run
        _ = try await client.withTransaction(logger: Self.quiet) { connection in
            try await PostgresBatchInsert.insert(batch, run: run, into: connection, logger: Self.quiet)
        }
    }

    /// One connection of its own, closed at once. While the server is away the pool only queues a lease and
    /// retries in the background until the attempt is abandoned; this fails fast, with the reason (refused,
    /// authentication failed, no such database) for the log line.
    private func probe() async throws {
        let tls = Self.tls(location.tls)
        let mode: PostgresConnection.Configuration.TLS =
            switch tls.probe {
            case nil: .disable
            case let configuration?:
                tls.required
                    ? .require(try NIOSSLContext(configuration: configuration))
                    : .prefer(try NIOSSLContext(configuration: configuration))
            }
        var configuration = PostgresConnection.Configuration(
            host: location.host, port: location.port, username: location.user, password: password,
            database: location.database, tls: mode)
        configuration.options.connectTimeout = .seconds(5)
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: Self.quiet)
        try? await connection.close()
    }

    private func sleep(until due: ContinuousClock.Instant?) async {
        let timer = due.map { due in
            Task { [self] in
                guard (try? await Task.sleep(until: due)) != nil else { return }
                ring()
            }
        }
        defer { timer?.cancel() }
        await withCheckedContinuation { continuation in
            let now = state.withLock { s -> Bool in
                if s.rang {
                    s.rang = false
                    return true
                }
                s.sleeper = continuation
                return false
            }
            if now { continuation.resume() }
        }
    }

    private func ring() {
        state.withLock { s -> CheckedContinuation<Void, Never>? in
            guard let sleeper = s.sleeper else {
                s.rang = true
                return nil
            }
            s.sleeper = nil
            return sleeper
        }?.resume()
    }

    /// A short reason for a log line: the server's message, or the connection problem; never the password.
    private func describe(_ error: any Error) -> String {
        var text: String
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] {
                text = message + (error.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? "")
            } else if let underlying = error.underlying {
                text = "\(underlying)"
            } else {
                text = "\(error.code)"
            }
        } else {
            text = "\(error)"
        }
        return scrub(text).redactingCredentials
    }

    private static func seconds(_ duration: Duration) -> String {
        String(format: "%.1f", Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
    }

    /// postgres-nio's own per-query logging stays off; this writer logs what an operator needs.
    private static let quiet = Logger(label: "skipd.postgres.queries", factory: { _ in SwiftLogNoOpLogHandler() })
}

/// A flag one task sets and another reads.
private final class Flag: Sendable {
    private let value = Atomic(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}

/// A `postgres` failure at run time (frames that could not be written by the end of the flush timeout).
struct PostgresSinkError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
