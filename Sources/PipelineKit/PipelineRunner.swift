import Dispatch
import Logging
import Synchronization

/// Runs a ``PipelinePlan``: a source task feeds the first link, one task per stage moves frames from its input
/// link to its output link, and a sink task hands the last link's frames to the GStreamer sink segment.
///
/// ```
/// source ─▶ link 0 ─▶ stage 0 ─▶ link 1 ─▶ … ─▶ stage n-1 ─▶ link n ─▶ sink
/// ```
/// End-of-stream is the source finishing its link: each stage drains its input, calls ``Stage/finish()`` and
/// finishes its output, so every sink flushes. The first error (a GStreamer bus error, or one a stage throws)
/// cancels every task and is rethrown naming the element or stage.
public struct PipelineRunner: Sendable {
    public var plan: PipelinePlan
    /// How long a pull waits for a frame before checking for stop and cancellation.
    public var pollInterval: Duration = .milliseconds(100)
    /// How long the sink segment may take to flush after end-of-stream.
    public var sinkFlushTimeout: Duration = .seconds(30)
    /// A source that delivers no frame for this long fails the run with ``WatchdogError`` (a hung camera puts
    /// nothing on the bus); nil: wait forever. Checked by a task of its own, so a GStreamer call that never
    /// returns cannot hold it up.
    public var watchdog: Duration?
    /// How long starting the source may take (an RTSP camera's DESCRIBE and SETUP included) before the run fails.
    public var startTimeout: Duration = .seconds(20)
    /// How long stopping a GStreamer segment may take before the run stops waiting for it: a teardown that hangs
    /// (rtspsrc's, notoriously) keeps one thread and that pipeline's memory, never the camera's next run.
    public var teardownTimeout: Duration = .seconds(5)
    /// The source's stream ends after this many frames, as at its end (nil: at its own end).
    public var frameLimit: Int?
    /// Sees frames, links and busy steps while the run lasts (a supervisor passes one across rebuilds).
    public var monitor: PipelineMonitor?
    /// Capacity of links whose file does not give one.
    public var defaultCapacity = ChannelElement.defaultCapacity
    /// Passed to stages as ``StageContext/store``.
    public var store: String?
    public var logger = Logger(label: "skipd.pipeline")

    public init(plan: PipelinePlan) {
        self.plan = plan
    }

    /// Runs until end-of-stream, `stop`, an error or cancellation.
    /// - Parameters:
    ///   - frames: frames to feed the stages when the plan has no GStreamer source (tests, generated input).
    ///   - stop: ends the stream cleanly when requested: stages drain and sinks flush.
    ///   - onOutput: sees every frame that leaves the last stage, in order.
    public func run(
        frames: [Frame] = [], stop: StopSignal = StopSignal(), onOutput: @escaping @Sendable (Frame) -> Void = { _ in }
    ) async throws(PipelineRunError) -> RunReport {
        let started = ContinuousClock.now
        let sourceWorker = BlockingWorker(label: "source")
        let sinkWorker = BlockingWorker(label: "sink")
        let sink: SinkSegment?
        let source: SourceSegment?
        let live: Bool
        do {
            // The sink segment first: its errors surface before any frame is decoded.
            sink = try await plan.sink.asyncMap { segment in
                try await sinkWorker.run { try SinkSegment(description: segment.description) }
            }
        } catch {
            throw PipelineRunError(error)
        }
        do {
            source = try await plan.source.asyncMap { segment in
                try await sourceWorker.run { try SourceSegment(description: segment.description) }
            }
        } catch {
            await tearDown(source: nil, sourceWorker, sink, sinkWorker)
            throw PipelineRunError(error)
        }
        do {
            live =
                try await source.asyncMap { source in
                    try await withTimeLimit(startTimeout, "starting the source") {
                        try await sourceWorker.run { try source.start() }
                    }
                } ?? false
        } catch {
            // A start that failed or hung: the stop queues behind it on the source's thread.
            await tearDown(source: source, sourceWorker, sink, sinkWorker)
            throw PipelineRunError(error)
        }

        logger.info(
            "pipeline started",
            metadata: [
                "file": "\(plan.file)", "live": "\(live)",
                "stages": "\(plan.stages.map(\.name).joined(separator: ","))",
            ])
        let links = plan.links.map { spec in
            BoundedChannel<Frame>(
                capacity: spec.capacity ?? defaultCapacity,
                policy: spec.policy ?? (live ? .dropOldest : .block))
        }
        let framesIn = Counter()
        let framesOut = Counter()
        let silence = SilenceClock()
        let board = FeedbackBoard()
        let monitor = self.monitor
        monitor?.attach(zip(linkNames, links).map { (name: $0, channel: $1) })
        defer { monitor?.detach() }
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    defer {
                        links[0].finish()
                        silence.end()
                    }
                    if let source {
                        try await Self.pump(
                            source, worker: sourceWorker, into: links[0], stop: stop, poll: pollInterval,
                            limit: frameLimit, count: framesIn, monitor: monitor, silence: silence)
                    } else {
                        for frame in frames where !stop.isRequested {
                            framesIn.increment()
                            monitor?.frameArrived()
                            try await links[0].send(frame)
                        }
                    }
                }
                if let watchdog, source != nil {
                    group.addTask {
                        try await Self.watch(silence, watchdog: watchdog, poll: pollInterval, stop: stop)
                    }
                }
                for (k, spec) in plan.stages.enumerated() {
                    group.addTask {
                        let output = links[k + 1]
                        let context = StageContext(
                            outputDepth: { output.stats.depth }, outputCapacity: output.capacity, live: live,
                            board: board, pipeline: StageContext.pipelineName(file: plan.file), store: store)
                        try await Self.runStage(
                            spec, context: context, input: links[k], output: output, monitor: monitor)
                    }
                }
                group.addTask {
                    for await frame in links[plan.stages.count] {
                        onOutput(frame)
                        framesOut.increment()
                        monitor?.frameLeft()
                        if let sink {
                            monitor?.holding("sink", true)
                            try await Self.push(frame, to: sink, worker: sinkWorker)
                            monitor?.holding("sink", false)
                        }
                    }
                    try Task.checkCancellation()
                    if let sink {
                        let timeout = sinkFlushTimeout.nanoseconds
                        try await sinkWorker.run { try sink.finish(timeout: timeout) }
                    }
                }
                // next() rethrows the first failure at once; leaving the group then cancels the other tasks.
                // (waitForAll() would wait for every task first, and they would wait for each other.)
                while try await group.next() != nil {}
            }
        } catch {
            await tearDown(source: source, sourceWorker, sink, sinkWorker)
            logger.error("pipeline failed", metadata: ["file": "\(plan.file)", "error": "\(PipelineRunError(error))"])
            throw PipelineRunError(error)
        }
        await tearDown(source: source, sourceWorker, sink, sinkWorker)
        logger.info(
            "end of stream",
            metadata: ["file": "\(plan.file)", "frames-in": "\(framesIn.value)", "frames-out": "\(framesOut.value)"])
        return RunReport(
            framesIn: framesIn.value, framesOut: framesOut.value,
            links: zip(linkNames, links).map { LinkReport(name: $0, stats: $1.stats, capacity: $1.capacity) },
            live: live, elapsed: ContinuousClock.now - started)
    }

    /// `source→residual0`, `residual0→gate0`, …, `gate0→sink`.
    public var linkNames: [String] {
        let names = ["source"] + plan.stages.map(\.name) + ["sink"]
        return (0..<names.count - 1).map { "\(names[$0])→\(names[$0 + 1])" }
    }

    private static func pump(
        _ source: SourceSegment, worker: BlockingWorker, into link: BoundedChannel<Frame>, stop: StopSignal,
        poll: Duration, limit: Int?, count: Counter, monitor: PipelineMonitor?, silence: SilenceClock
    ) async throws {
        let timeout = poll.nanoseconds
        var pulled = 0
        while !stop.isRequested {
            if let limit, pulled >= limit { return }
            try Task.checkCancellation()
            switch try await worker.run({ try source.pull(timeout: timeout) }) {
            case .frame(let frame):
                pulled += 1
                count.increment()
                monitor?.frameArrived()
                // Waiting for a full link (a file source ahead of a slow stage) is backpressure, not silence.
                silence.sending(true)
                defer { silence.sending(false) }
                try await link.send(frame)
            case .timeout:
                continue
            case .endOfStream:
                return
            }
        }
    }

    /// Fails the run once the source has delivered nothing for `watchdog` (until the source ends or `stop`).
    private static func watch(_ silence: SilenceClock, watchdog: Duration, poll: Duration, stop: StopSignal)
        async throws
    {
        while !stop.isRequested && !silence.ended {
            try await Task.sleep(for: poll)
            if !silence.ended && silence.age >= watchdog { throw WatchdogError(silence: watchdog) }
        }
    }

    /// Stops the segments, each within `teardownTimeout`; one that takes longer is left to finish on its thread.
    private func tearDown(
        source: SourceSegment?, _ sourceWorker: BlockingWorker, _ sink: SinkSegment?, _ sinkWorker: BlockingWorker
    ) async {
        var abandoned: [String] = []
        if let source {
            do {
                try await withTimeLimit(teardownTimeout, "stopping the source") {
                    try await sourceWorker.run { source.stop() }
                }
            } catch { abandoned.append("source") }
        }
        if let sink {
            do {
                try await withTimeLimit(teardownTimeout, "stopping the sink") {
                    try await sinkWorker.run { sink.stop() }
                }
            } catch { abandoned.append("sink") }
        }
        if !abandoned.isEmpty {
            monitor?.teardownAbandoned()
            logger.warning(
                "GStreamer teardown did not finish; abandoned (its thread stays blocked, the next run does not wait)",
                metadata: [
                    "file": "\(plan.file)", "segments": "\(abandoned.joined(separator: ","))",
                    "timeout": "\(teardownTimeout)",
                ])
        }
    }

    private static func runStage(
        _ spec: StageSpec, context: StageContext, input: BoundedChannel<Frame>, output: BoundedChannel<Frame>,
        monitor: PipelineMonitor?
    ) async throws {
        do {
            var stage = try spec.stage.init(properties: spec.properties, context: context)
            for await frame in input {
                monitor?.holding(spec.name, true)
                let result = try await stage.process(frame)
                monitor?.holding(spec.name, false)
                if let result { try await output.send(result) }
            }
            // The input also ends when this task is cancelled: then there is nothing to flush.
            try Task.checkCancellation()
            try await stage.finish()
            output.finish()
        } catch let error as CancellationError {
            throw error
        } catch let error as ChannelClosedError {
            throw error
        } catch {
            throw StageError(stage: spec.name, location: spec.location, underlying: error)
        }
    }

    private static func push(_ frame: Frame, to sink: SinkSegment, worker: BlockingWorker) async throws {
        try await withTaskCancellationHandler {
            try await worker.run { try sink.push(frame) }
        } onCancel: {
            // A push blocked on a stalled sink returns once the segment stops.
            sink.stop()
        }
    }
}

/// The source delivered no frame within the runner's watchdog.
public struct WatchdogError: Error, Sendable, CustomStringConvertible {
    public var silence: Duration
    public var description: String { "no frame for \(silence) (watchdog)" }
}

/// Asks a running pipeline to end its stream cleanly (Ctrl-C in `skipd run`).
public final class StopSignal: Sendable {
    private let requested = Atomic<Bool>(false)
    private let parent: StopSignal?
    /// - Parameter parent: a request to the parent is also one to this signal (one run of a supervised pipeline).
    public init(parent: StopSignal? = nil) { self.parent = parent }
    public func request() { requested.store(true, ordering: .relaxed) }
    public var isRequested: Bool { requested.load(ordering: .relaxed) || parent?.isRequested == true }
}

/// A frame counter shared between tasks.
final class Counter: Sendable {
    private let count = Atomic<Int>(0)
    func increment() { count.add(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}

/// What a finished run did.
public struct RunReport: Sendable {
    public var framesIn: Int
    public var framesOut: Int
    public var links: [LinkReport]
    /// Whether the source was live (links defaulted to drop-oldest).
    public var live: Bool
    public var elapsed: Duration
}

public struct LinkReport: Sendable {
    public var name: String
    public var stats: LinkStats
    /// Frames the link holds at most.
    public var capacity: Int
}

/// An error a stage threw, with the stage's instance name and place in the file.
public struct StageError: Error, Sendable, CustomStringConvertible {
    public var stage: String
    public var location: SourceLocation
    public var underlying: any Error

    public var description: String { "stage '\(stage)' (at \(location)): \(underlying)" }
}

/// Why a run stopped early: a GStreamer error (naming the element) or a stage error (naming the stage).
public struct PipelineRunError: Error, Sendable, CustomStringConvertible {
    public var underlying: any Error

    init(_ error: any Error) {
        underlying = (error as? PipelineRunError)?.underlying ?? error
    }

    /// Whether a rebuild would fail the same way (a ``ConfigurationError``, from a stage or anywhere else).
    public var isConfiguration: Bool {
        underlying is any ConfigurationError || (underlying as? StageError)?.underlying is any ConfigurationError
    }

    /// Credentials in URLs (an RTSP camera's, in a GStreamer error) are redacted.
    public var description: String {
        switch underlying {
        case is CancellationError: "cancelled"
        default: "\(underlying)".redactingCredentials
        }
    }
}

extension Duration {
    /// Whole nanoseconds, for GStreamer's clock times.
    var nanoseconds: UInt64 {
        UInt64(max(0, components.seconds)) * 1_000_000_000 + UInt64(max(0, components.attoseconds)) / 1_000_000_000
    }
}

extension Optional {
    fileprivate func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async throws -> T? {
        guard let self else { return nil }
        return try await transform(self)
    }
}

/// How long the source has been silent: since it last delivered a frame (or since the run's start), not counting
/// time spent handing a frame to a full link. Read by the watchdog task.
final class SilenceClock: Sendable {
    private let last = Atomic<UInt64>(DispatchTime.now().uptimeNanoseconds)
    private let busy = Atomic<Bool>(false)
    private let done = Atomic<Bool>(false)

    /// A frame arrived and is being handed on (true), or has been (false): silence counts again from then.
    func sending(_ on: Bool) {
        busy.store(on, ordering: .relaxed)
        last.store(DispatchTime.now().uptimeNanoseconds, ordering: .relaxed)
    }
    /// The source finished: nothing more to watch.
    func end() { done.store(true, ordering: .relaxed) }
    var ended: Bool { done.load(ordering: .relaxed) }
    var age: Duration {
        if busy.load(ordering: .relaxed) { return .zero }
        let now = DispatchTime.now().uptimeNanoseconds
        let then = last.load(ordering: .relaxed)
        return .nanoseconds(Int64(now > then ? now - then : 0))
    }
}
