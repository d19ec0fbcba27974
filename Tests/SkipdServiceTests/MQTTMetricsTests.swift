import PipelineKit
import Plugins
import Testing

@testable import SkipdService

/// The mqtt stage's per-frame delivery counts become `/pipelines` fields and `/metrics` counters, summed over the
/// frames out; a pipeline without an mqtt stage shows neither.
@Suite struct MQTTMetricsTests {
    private func frame(_ index: Int, _ delivery: MQTTDelivery?) -> Frame {
        let format = VideoFormat(pixelFormat: "GRAY8", width: 1, height: 1, stride: 1)
        var frame = Frame(index: index, pts: nil, image: VideoImage(format: format, bytes: [0]))
        frame.metadata[MQTTDelivery.Key.self] = delivery
        return frame
    }

    private func status(_ name: String, _ tally: OutputTally) throws -> PipelineStatus {
        let supervisor = PipelineSupervisor(plan: try StageChain("residual", registry: .standard).plan)
        return PipelineStatus(
            name: name, supervisor: supervisor, monitor: PipelineMonitor().snapshot(), tally: tally.value,
            rates: FrameRates(), now: .now)
    }

    @Test func deliveriesAreSummedIntoCountersOnlyForPipelinesWithAnMQTTStage() throws {
        let door = OutputTally()
        for (k, (published, dropped)) in [(3, 0), (0, 5), (2, 1)].enumerated() {
            door.add(frame(k, MQTTDelivery(published: published, dropped: dropped, queued: 7)))
        }
        let yard = OutputTally()
        yard.add(frame(0, nil))
        let rows = [try status("door", door), try status("yard", yard)]
        #expect(rows[0].mqttPublished == 5 && rows[0].mqttDropped == 6)
        #expect(rows[1].mqttPublished == nil && rows[1].mqttDropped == nil)

        let text = FleetMetrics().render(rows)
        #expect(text.contains(#"skipd_mqtt_published_messages_total{pipeline="door"} 5"#), "\(text)")
        #expect(text.contains(#"skipd_mqtt_dropped_messages_total{pipeline="door"} 6"#))
        #expect(!text.contains(#"mqtt_published_messages_total{pipeline="yard"}"#))
    }
}
