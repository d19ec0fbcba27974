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

        /// Steps that have held one frame for longer than `limit`: frames arrive but do not leave.
        public func stuck(longerThan limit: Duration, now: ContinuousClock.Instant = .now) -> [String] {
            busy.filter { now - $0.value > limit }.keys.sorted()
        }
    }

    private struct State {
        var snapshot = Snapshot()
        /// Totals of runs that ended, by link name.
        var ended: [String: LinkStats] = [:]
        var order: [String] = []
        var live: [(name: String, channel: BoundedChannel<Frame>)] = []
    }

    private let state = Mutex(State())

    public init() {}

    public func snapshot() -> Snapshot {
        state.withLock { s in
            var snapshot = s.snapshot
            let live = Dictionary(s.live.map { ($0.name, $0.channel.stats) }, uniquingKeysWith: { a, _ in a })
            snapshot.links = s.order.map { name in
                var total = s.ended[name] ?? LinkStats()
                if let now = live[name] {
                    total.sent += now.sent
                    total.dropped += now.dropped
                    total.received += now.received
                    total.depth = now.depth
                    total.highWater = max(total.highWater, now.highWater)
                }
                return LinkReport(name: name, stats: total)
            }
            return snapshot
        }
    }

    func attach(_ links: [(name: String, channel: BoundedChannel<Frame>)]) {
        state.withLock { s in
            s.live = links
            s.snapshot.runs += 1
            for link in links where !s.order.contains(link.name) { s.order.append(link.name) }
        }
    }

    /// Folds the finished run's link counters into the totals.
    func detach() {
        state.withLock { s in
            for (name, channel) in s.live {
                let stats = channel.stats
                var total = s.ended[name] ?? LinkStats()
                total.sent += stats.sent
                total.dropped += stats.dropped
                total.received += stats.received
                total.highWater = max(total.highWater, stats.highWater)
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

    /// `step` took a frame (true) or is done with it (false).
    func holding(_ step: String, _ busy: Bool) {
        state.withLock { s in s.snapshot.busy[step] = busy ? .now : nil }
    }
}
