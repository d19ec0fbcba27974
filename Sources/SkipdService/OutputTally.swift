import PipelineKit
import Plugins
import Synchronization

/// What the frames leaving a pipeline say about the work done on them, summed over its life: MACs executed against
/// a dense network's on every frame, frames skipped, the policy's actions and MQTT messages published and dropped.
/// Fed by the supervisor's `onOutput`.
final class OutputTally: Sendable {
    struct Totals: Sendable {
        var executedMACs = 0
        var denseMACs = 0
        var skippedFrames = 0
        /// Policy decisions by action (`1`, `0.5`, `skip2`).
        var actions: [String: Int] = [:]
        /// Messages an `mqtt` stage published and dropped; nil without one.
        var mqtt: (published: Int, dropped: Int)?
    }

    private let totals = Mutex(Totals())

    func add(_ frame: Frame) {
        let cost = frame.metadata[ComputeCost.Key.self]
        // A skip of k frames is one action; the k − 1 frames it carries are not decisions.
        let decision = frame.metadata[PolicyDecision.Key.self]
        let action = decision.flatMap { $0.carried ? nil : $0.action.description }
        let mqtt = frame.metadata[MQTTDelivery.Key.self]
        totals.withLock { t in
            if let cost {
                t.executedMACs += cost.executedMACs
                t.denseMACs += cost.denseMACs
            }
            if frame.skipped { t.skippedFrames += 1 }
            if let action { t.actions[action, default: 0] += 1 }
            if let mqtt {
                let sum = t.mqtt ?? (0, 0)
                t.mqtt = (sum.published + mqtt.published, sum.dropped + mqtt.dropped)
            }
        }
    }

    var value: Totals { totals.withLock { $0 } }
}
