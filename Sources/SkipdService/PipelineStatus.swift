import PipelineKit
import SkipNet

/// One pipeline as `GET /pipelines`, `/metrics` and systemd's STATUS= see it. Camera credentials are redacted
/// everywhere in it (the source description and the last failure's reason).
struct PipelineStatus: Encodable, Sendable {
    struct Link: Encodable, Sendable {
        var from: String
        var to: String
        var sent: Int
        var dropped: Int
        var depth: Int
        var capacity: Int
    }

    var name: String
    /// `starting`, `running`, `stalled` (running, but no frame for longer than the watchdog), `reconnecting`,
    /// `finished` or `failed`.
    var state: String
    /// Why it is reconnecting or failed.
    var reason: String?
    /// Consecutive failed attempts while reconnecting.
    var attempt: Int?
    var source: String?
    var reconnects = 0
    var abandonedTeardowns = 0
    var framesIn = 0
    var framesOut = 0
    var fpsIn = 0.0
    var fpsOut = 0.0
    /// Seconds since the source last delivered a frame (nil: never).
    var lastFrameAge: Double?
    var links: [Link] = []
    /// Steps holding one frame now, with how long they have held it in seconds.
    var busy: [String: Double] = [:]
    var executedMACs = 0
    var denseMACs = 0
    var skippedFrames = 0
    var policyActions: [String: Int] = [:]
    /// Messages an `mqtt` stage published, and dropped unsent (nil: no such stage).
    var mqttPublished: Int?
    var mqttDropped: Int?

    private enum CodingKeys: String, CodingKey {
        case name, state, reason, attempt, source, reconnects, links, busy
        case framesIn = "frames_in"
        case framesOut = "frames_out"
        case fpsIn = "fps_in"
        case fpsOut = "fps_out"
        case lastFrameAge = "last_frame_age_seconds"
        case executedMACs = "executed_macs"
        case denseMACs = "dense_macs"
        case skippedFrames = "skipped_frames"
        case policyActions = "policy_actions"
        case abandonedTeardowns = "abandoned_teardowns"
        case mqttPublished = "mqtt_published_messages"
        case mqttDropped = "mqtt_dropped_messages"
    }

    init(
        name: String, supervisor: PipelineSupervisor, monitor: PipelineMonitor.Snapshot, tally: OutputTally.Totals,
        rates: FrameRates, now: ContinuousClock.Instant
    ) {
        self.name = name
        switch supervisor.state {
        case .starting: state = "starting"
        case .running: state = "running"
        case .finished: state = "finished"
        case .reconnecting(let attempt, let reason):
            state = "reconnecting"
            self.attempt = attempt
            self.reason = reason.redactingCredentials
        case .failed(let reason):
            state = "failed"
            self.reason = reason.redactingCredentials
        }
        source = supervisor.plan.source?.description.redactingCredentials
        reconnects = supervisor.reconnects
        abandonedTeardowns = monitor.abandonedTeardowns
        framesIn = monitor.framesIn
        framesOut = monitor.framesOut
        (fpsIn, fpsOut) = rates.perSecond
        lastFrameAge = monitor.lastFrame.map { (now - $0).seconds }
        // Silent past the watchdog but not yet torn down (a teardown takes up to its time limit): not running.
        if state == "running", let age = lastFrameAge, age >= supervisor.settings.watchdog.seconds {
            state = "stalled"
            reason = String(format: "no frame for %.1f s", age)
        }
        links = monitor.links.map { link in
            let ends = link.name.components(separatedBy: "→")
            return Link(
                from: ends.first ?? link.name, to: ends.last ?? link.name, sent: link.stats.sent,
                dropped: link.stats.dropped, depth: link.stats.depth, capacity: link.capacity)
        }
        busy = monitor.busy.mapValues { (now - $0).seconds }
        executedMACs = tally.executedMACs
        denseMACs = tally.denseMACs
        skippedFrames = tally.skippedFrames
        policyActions = tally.actions
        mqttPublished = tally.mqtt?.published
        mqttDropped = tally.mqtt?.dropped
    }

    init(name: String, failed error: String) {
        self.name = name
        state = "failed"
        reason = error.redactingCredentials
    }
}

/// Frames in and out per second over the last few seconds, from counts sampled about once a second.
struct FrameRates: Sendable {
    private var samples: [(at: ContinuousClock.Instant, framesIn: Int, framesOut: Int)] = []
    /// How far back the rate looks.
    static let window: Duration = .seconds(5)

    mutating func record(framesIn: Int, framesOut: Int, at now: ContinuousClock.Instant) {
        samples.append((now, framesIn, framesOut))
        samples.removeAll { now - $0.at > Self.window }
    }

    var perSecond: (framesIn: Double, framesOut: Double) {
        guard let first = samples.first, let last = samples.last, last.at > first.at else { return (0, 0) }
        let seconds = (last.at - first.at).seconds
        return (Double(last.framesIn - first.framesIn) / seconds, Double(last.framesOut - first.framesOut) / seconds)
    }
}
