import Prometheus
import Synchronization

/// `GET /metrics`: every pipeline's counters and gauges in Prometheus text format, refreshed from
/// ``PipelineStatus`` at each scrape. Counters only grow: a pipeline whose counts start over (its file changed,
/// or it was removed and added again) gets fresh series, which Prometheus reads as a counter reset.
public final class FleetMetrics: Sendable {
    private enum Kind { case counter, gauge }

    /// One metric family: its name, help and kind, declared once (the registry insists on one help text per name).
    private struct Family: Sendable {
        var name: String
        var unit: String
        var kind: Kind
        var help: String

        init(_ name: String, _ unit: String, _ kind: Kind, _ help: String) {
            (self.name, self.unit, self.kind, self.help) = (name, unit, kind, help)
        }

        var descriptor: MetricNameDescriptor {
            MetricNameDescriptor(namespace: "skipd", metricName: name, unitName: unit, helpText: help)
        }
    }

    private static let state = Family("pipeline", "state", .gauge, "1 for the state the pipeline is in, else 0")
    private static let framesIn = Family("frames_in", "total", .counter, "Frames the source delivered")
    private static let framesOut = Family("frames_out", "total", .counter, "Frames that left the last stage")
    private static let fpsIn = Family("fps_in", "frames_per_second", .gauge, "Frames in per second, last 5 s")
    private static let fpsOut = Family("fps_out", "frames_per_second", .gauge, "Frames out per second, last 5 s")
    private static let age = Family(
        "last_frame_age", "seconds", .gauge, "Seconds since the source last delivered a frame")
    private static let reconnects = Family(
        "reconnects", "total", .counter, "Rebuilds after a source error, end of stream or watchdog")
    private static let abandoned = Family(
        "teardowns_abandoned", "total", .counter, "GStreamer teardowns left hung on their thread after their limit")
    private static let linkSent = Family("link_frames", "total", .counter, "Frames put on a link")
    private static let linkDropped = Family(
        "link_dropped_frames", "total", .counter, "Frames a drop-oldest link dropped unread")
    private static let linkDepth = Family("link_depth", "frames", .gauge, "Frames waiting on a link now")
    private static let linkCapacity = Family("link_capacity", "frames", .gauge, "Frames a link can hold")
    private static let denseMACs = Family(
        "dense_macs", "total", .counter, "MACs a dense full-size model would have run on the frames out")
    private static let executedMACs = Family("executed_macs", "total", .counter, "MACs the model stages ran")
    private static let skipped = Family("skipped_frames", "total", .counter, "Frames out that no model ran on")
    private static let actions = Family("policy_actions", "total", .counter, "Policy decisions by action")
    private static let mqttPublished = Family(
        "mqtt_published_messages", "total", .counter, "MQTT messages the broker acknowledged (QoS 0: written)")
    private static let mqttDropped = Family(
        "mqtt_dropped_messages", "total", .counter, "MQTT messages dropped unsent: the queue was full")
    private static let busy = Family(
        "step_busy", "seconds", .gauge, "How long a stage (or the sink) has held the frame it holds now")

    private static let states = ["starting", "running", "stalled", "reconnecting", "finished", "failed"]

    public init() {}

    let registry = PrometheusCollectorRegistry()

    private struct Series {
        var family: Family
        var labels: [(String, String)]
        var counter: Counter?
        var gauge: Gauge?
        var counted = 0
    }

    /// Every series by pipeline, then by family name and labels.
    private let series = Mutex<[String: [String: Series]]>([:])

    /// The Prometheus text for `rows`.
    func render(_ rows: [PipelineStatus]) -> String {
        series.withLock { all in
            for gone in all.keys where !rows.contains(where: { $0.name == gone }) {
                for s in all.removeValue(forKey: gone)?.values ?? [:].values { unregister(s) }
            }
            for row in rows {
                var own = all[row.name] ?? [:]
                var seen = Set<String>()
                // Counters take whole counts (MAC totals pass 2^53: a Double would lose them), gauges Doubles.
                func gauge(_ family: Family, _ value: Double, by labels: [(String, String)] = []) {
                    record(family, labels, count: 0, gauge: value)
                }
                func count(_ family: Family, _ total: Int, by labels: [(String, String)] = []) {
                    record(family, labels, count: total, gauge: 0)
                }
                func record(_ family: Family, _ labels: [(String, String)], count total: Int, gauge value: Double) {
                    let labels = [("pipeline", row.name)] + labels
                    let key = family.name + labels.map { "|\($0.0)=\($0.1)" }.joined()
                    seen.insert(key)
                    var s = own[key] ?? Series(family: family, labels: labels)
                    switch family.kind {
                    case .gauge:
                        s.gauge = s.gauge ?? registry.makeGauge(descriptor: family.descriptor, labels: labels)
                        s.gauge?.set(value)
                    case .counter:
                        if total < s.counted, let old = s.counter {
                            registry.unregisterCounter(old)
                            s.counter = nil
                            s.counted = 0
                        }
                        let counter =
                            s.counter ?? registry.makeCounter(descriptor: family.descriptor, labels: labels)
                        s.counter = counter
                        if total > s.counted { counter.increment(by: Int64(total - s.counted)) }
                        s.counted = total
                    }
                    own[key] = s
                }
                for state in Self.states { gauge(Self.state, row.state == state ? 1.0 : 0.0, by: [("state", state)]) }
                count(Self.framesIn, row.framesIn)
                count(Self.framesOut, row.framesOut)
                gauge(Self.fpsIn, row.fpsIn)
                gauge(Self.fpsOut, row.fpsOut)
                if let age = row.lastFrameAge { gauge(Self.age, age) }
                count(Self.reconnects, row.reconnects)
                count(Self.abandoned, row.abandonedTeardowns)
                for link in row.links {
                    let ends = [("from", link.from), ("to", link.to)]
                    count(Self.linkSent, link.sent, by: ends)
                    count(Self.linkDropped, link.dropped, by: ends)
                    gauge(Self.linkDepth, Double(link.depth), by: ends)
                    gauge(Self.linkCapacity, Double(link.capacity), by: ends)
                }
                count(Self.denseMACs, row.denseMACs)
                count(Self.executedMACs, row.executedMACs)
                count(Self.skipped, row.skippedFrames)
                for (action, n) in row.policyActions { count(Self.actions, n, by: [("action", action)]) }
                if let published = row.mqttPublished { count(Self.mqttPublished, published) }
                if let dropped = row.mqttDropped { count(Self.mqttDropped, dropped) }
                for (step, seconds) in row.busy { gauge(Self.busy, seconds, by: [("step", step)]) }
                // A step no longer busy, a link no longer in the file: its series goes.
                for (key, s) in own where !seen.contains(key) && s.family.kind == .gauge {
                    unregister(s)
                    own[key] = nil
                }
                all[row.name] = own
            }
        }
        return registry.emitToString()
    }

    private func unregister(_ s: Series) {
        if let counter = s.counter { registry.unregisterCounter(counter) }
        if let gauge = s.gauge { registry.unregisterGauge(gauge) }
    }
}
