import Logging
import Synchronization

/// Keeps one pipeline running for as long as it is wanted: whenever its live source fails — a bus error, end of
/// stream, or no frame within the watchdog — the whole pipeline is torn down and rebuilt from its plan (GStreamer's
/// `rtspsrc` never reconnects, and toggling a failed pipeline back to PLAYING does not recover it), after an
/// exponential backoff with jitter, forever. Every rebuild makes fresh stages, so skip-conv state starts over.
///
/// ```swift
/// let supervisor = PipelineSupervisor(plan: plan)
/// Task { await supervisor.run(stop: stop) }
/// print(supervisor.state)   // running, or reconnecting (attempt 3: no frame for 5 seconds (watchdog))
/// ```
/// A file (not live) that reaches its end has simply finished; one that fails is reported and also retried.
public final class PipelineSupervisor: Sendable {
    public enum State: Sendable, Equatable, CustomStringConvertible {
        case starting
        case running
        /// Waiting to rebuild after `attempt` consecutive failures, the last for `reason`.
        case reconnecting(attempt: Int, reason: String)
        /// The stream ended (a file), or `stop` was requested.
        case finished
        /// A run failed in a way no rebuild cures (a ``ConfigurationError``): not retried.
        case failed(reason: String)

        /// Whether the supervisor has stopped for good (finished or failed).
        public var isFinal: Bool {
            switch self {
            case .finished, .failed: true
            default: false
            }
        }

        public var description: String {
            switch self {
            case .starting: "starting"
            case .running: "running"
            case .reconnecting(let attempt, let reason): "reconnecting (attempt \(attempt): \(reason))"
            case .finished: "finished"
            case .failed(let reason): "failed: \(reason)"
            }
        }
    }

    public struct Settings: Sendable {
        /// No frame for this long counts as a failure.
        public var watchdog: Duration = .seconds(5)
        /// A GStreamer teardown that takes longer is abandoned and the pipeline rebuilt without it
        /// (``PipelineRunner/teardownTimeout``).
        public var teardownTimeout: Duration = .seconds(5)
        /// The first retry waits this long, each further one twice as long, up to `maximumBackoff`.
        public var minimumBackoff: Duration = .seconds(1)
        public var maximumBackoff: Duration = .seconds(30)
        /// Each wait is stretched or shrunk at random by up to this fraction, so cameras behind one failed switch
        /// are not all retried in the same instant.
        public var jitter: Double = 0.2
        /// Capacity of links whose file does not give one.
        public var channelCapacity = ChannelElement.defaultCapacity
        /// Results database for stages whose file does not name one (``StageContext/store``).
        public var store: String?

        public init() {}

        /// The wait before rebuild number `attempt` (1-based), before jitter.
        public func backoff(attempt: Int) -> Duration {
            var wait = minimumBackoff
            for _ in 1..<max(1, attempt) where wait < maximumBackoff { wait *= 2 }
            return min(wait, maximumBackoff)
        }
    }

    public let plan: PipelinePlan
    public let settings: Settings
    /// Frames, links and busy steps, summed over rebuilds.
    public let monitor = PipelineMonitor()
    private let status = Mutex<(state: State, reconnects: Int)>((.starting, 0))
    /// The current run's stop signal, and whether a restart was asked for.
    private let control = Mutex<(run: StopSignal?, restart: Bool)>((nil, false))
    private let logger: Logger

    public init(plan: PipelinePlan, settings: Settings = Settings(), logger: Logger = Logger(label: "skipd.supervisor"))
    {
        self.plan = plan
        self.settings = settings
        self.logger = logger
    }

    public var state: State { status.withLock { $0.state } }
    /// Rebuilds after failures so far (restarts asked for are not counted).
    public var reconnects: Int { status.withLock { $0.reconnects } }

    /// Ends the current run cleanly (stages drain, sinks flush) and rebuilds the pipeline at once, without backoff.
    public func restart() {
        let run = control.withLock {
            $0.restart = true
            return $0.run
        }
        run?.request()
    }

    /// Runs and rebuilds the pipeline until `stop` is requested, the task is cancelled, or a file ends.
    /// `onOutput` sees every frame leaving the last stage, across rebuilds.
    public func run(stop: StopSignal, onOutput: @escaping @Sendable (Frame) -> Void = { _ in }) async {
        var failures = 0
        while !stop.isRequested && !Task.isCancelled {
            let flowing = Flag()
            var runner = PipelineRunner(plan: plan)
            runner.watchdog = settings.watchdog
            runner.teardownTimeout = settings.teardownTimeout
            runner.logger = logger
            runner.monitor = monitor
            runner.defaultCapacity = settings.channelCapacity
            runner.store = settings.store
            let runStop = StopSignal(parent: stop)
            // A restart asked for before this run began is this run.
            control.withLock { $0 = (runStop, false) }
            let reason: String
            do {
                let report = try await runner.run(stop: runStop) { frame in
                    if flowing.raise() {
                        let rebuilds = self.status.withLock {
                            $0.state = .running
                            return $0.reconnects
                        }
                        self.logger.info(
                            "frames flowing", metadata: ["file": "\(self.plan.file)", "rebuilds": "\(rebuilds)"])
                    }
                    onOutput(frame)
                }
                if stop.isRequested || Task.isCancelled { break }
                if takeRestart() { continue }
                if !report.live { break }
                reason = "end of stream"
            } catch {
                if stop.isRequested || Task.isCancelled { break }
                if error.isConfiguration {
                    status.withLock { $0.state = .failed(reason: error.description) }
                    logger.error(
                        "pipeline failed; a rebuild would fail the same way, so it stays stopped",
                        metadata: ["file": "\(plan.file)", "reason": "\(error.description)"])
                    return
                }
                if takeRestart() { continue }
                reason = error.description
            }
            // A run that delivered frames was healthy: the next failure starts the backoff over.
            failures = flowing.isRaised ? 1 : failures + 1
            status.withLock {
                $0.state = .reconnecting(attempt: failures, reason: reason)
                $0.reconnects += 1
            }
            let wait =
                settings.backoff(attempt: failures) * Double.random(in: 1 - settings.jitter...1 + settings.jitter)
            logger.warning(
                "pipeline failed; rebuilding",
                metadata: ["file": "\(plan.file)", "attempt": "\(failures)", "reason": "\(reason)", "wait": "\(wait)"])
            // Sleep in short steps so a stop request is honoured promptly.
            let until = ContinuousClock.now + wait
            while ContinuousClock.now < until, !stop.isRequested, !Task.isCancelled {
                try? await Task.sleep(for: min(.milliseconds(50), until - .now))
            }
        }
        status.withLock { $0.state = .finished }
    }

    /// Whether the run just ended because ``restart()`` asked; the next one then starts at once.
    private func takeRestart() -> Bool {
        let asked = control.withLock { c in
            defer { c.restart = false }
            return c.restart
        }
        guard asked else { return false }
        status.withLock { $0.state = .starting }
        logger.info("pipeline restarting on request", metadata: ["file": "\(plan.file)"])
        return true
    }
}

/// Set once, from any task.
private final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    /// Sets the flag; true the first time.
    func raise() -> Bool { !value.exchange(true, ordering: .relaxed) }
    var isRaised: Bool { value.load(ordering: .relaxed) }
}
