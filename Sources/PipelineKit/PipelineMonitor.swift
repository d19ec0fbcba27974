import Synchronization

/// What a pipeline is doing, readable from outside while it runs and summed over the runs a supervisor rebuilds:
/// frames in and out, each link's counters and depth, when the source last delivered, and which step (a stage, or
/// the sink) has been holding a frame since when. `skipd serve` reads it for `/metrics`, `/pipelines` and its
/// stuck-stage check.
///
/// ```swift
/// var runner = PipelineRunner(plan: plan)
/// runner.monitor = monitor
/// …
/// monitor.snapshot().stuck(longerThan: .seconds(15))   // ["model0"] while model0 hangs on a frame
/// ```
public final class PipelineMonitor: Sendable {
    public struct Snapshot: Sendable {
        public var framesIn = 0
        public var framesOut = 0
        /// Per link, in pipeline order: `sent`, `dropped` and `received` summed over runs, `highWater` the largest
        /// of any run, `depth` the current run's (zero between runs).
        public var links: [LinkReport] = []
        /// When the source last delivered a frame (nil: never).
        public var lastFrame: ContinuousClock.Instant?
        /// Steps holding a frame now, since when.
        public var busy: [String: ContinuousClock.Instant] = [:]
        /// Runs started.
        public var runs = 0
        /// Teardowns that did not finish within their limit and were left to their thread (a hung GStreamer).
        public var abandonedTeardowns = 0

        /// Steps that have held one frame for longer than `limit`: frames arrive but do not leave.
        public func stuck(longerThan limit: Duration, now: ContinuousClock.Instant = .now) -> [String] {
            busy.filter { now - $0.value > limit }.keys.sorted()
        }
    }

    private struct State {
        var snapshot = Snapshot()
        /// Totals of runs that ended, by link name.
        var ended: [String: LinkStats] = [:]
        /// Every link seen, in pipeline order, with its capacity.
        var order: [(name: String, capacity: Int)] = []
        var live: [(name: String, channel: BoundedChannel<Frame>)] = []
    }

    private let state = Mutex(State())

    public init() {}

    public func snapshot() -> Snapshot {
        state.withLock { s in
            var snapshot = s.snapshot
            let live = Dictionary(s.live.map { ($0.name, $0.channel.stats) }, uniquingKeysWith: { a, _ in a })
            snapshot.links = s.order.map { name, capacity in
                let ended = s.ended[name] ?? LinkStats()
                return LinkReport(name: name, stats: live[name].map(ended.adding) ?? ended, capacity: capacity)
            }
            return snapshot
        }
    }

    func attach(_ links: [(name: String, channel: BoundedChannel<Frame>)]) {
        state.withLock { s in
            s.live = links
            s.snapshot.runs += 1
            for link in links where !s.order.contains(where: { $0.name == link.name }) {
                s.order.append((link.name, link.channel.capacity))
            }
        }
    }

    /// Folds the finished run's link counters into the totals.
    func detach() {
        state.withLock { s in
            for (name, channel) in s.live {
                var total = (s.ended[name] ?? LinkStats()).adding(channel.stats)
                total.depth = 0
                s.ended[name] = total
            }
            s.live = []
            s.snapshot.busy = [:]
        }
    }

    func frameArrived() {
        state.withLock { s in
            s.snapshot.framesIn += 1
            s.snapshot.lastFrame = .now
        }
    }

    func frameLeft() { state.withLock { $0.snapshot.framesOut += 1 } }

    func teardownAbandoned() { state.withLock { $0.snapshot.abandonedTeardowns += 1 } }

    /// `step` took a frame (true) or is done with it (false).
    func holding(_ step: String, _ busy: Bool) {
        state.withLock { s in s.snapshot.busy[step] = busy ? .now : nil }
    }
}

extension LinkStats {
    /// Totals so far plus one run's counters: sums, the larger high-water mark, the run's depth.
    fileprivate func adding(_ run: LinkStats) -> LinkStats {
        var total = self
        total.sent += run.sent
        total.dropped += run.dropped
        total.received += run.received
        total.highWater = max(highWater, run.highWater)
        total.depth = run.depth
        return total
    }
}
