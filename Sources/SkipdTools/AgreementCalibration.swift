import PipelineKit
import Plugins
import SkipNet

/// `skipd calibrate --agreement P`: the cheapest bounded-context setting — input threshold, context and rolling
/// refresh — whose detections keep precision and recall ≥ P against the dense model on the same frames, found by
/// trying every combination of the given values. Error budgets on heatmaps say little about what a user sees; a
/// face that appears, vanishes or moves is what the decoder's output shows.
struct AgreementCalibration {
    struct Trial {
        var inputThreshold: Float
        var context: Int
        var rolling: Int
        var macRatio: Double
        var agreement: DetectionAgreement
    }

    let graph: Graph
    let input: ModelInput
    /// Frame size (the detections' coordinates).
    let frame: (width: Int, height: Int)
    let threads: Int
    let decode: (ModelOutputs) throws -> [Detection]

    /// Detections of one frame from an executor's outputs.
    func detections(_ output: (Int) -> UnsafeBufferPointer<Float>) throws -> [Detection] {
        let tensors = graph.outputs.indices.map { k in
            ModelOutputs.Output(
                name: graph.values[graph.outputs[k]].name, shape: graph.shape(of: graph.outputs[k]),
                data: Array(output(k)))
        }
        return try decode(
            ModelOutputs(tensors: tensors, inputSize: (input.width, input.height), frameSize: frame))
    }

    /// The dense model's detections on every frame of every segment.
    func reference(_ segments: [[[Float]]]) throws -> [[[Detection]]] {
        let dense = try DenseExecutor(graph: graph, threads: threads)
        return try segments.map { frames in
            try frames.map { frame in
                try frame.withUnsafeBufferPointer { (b) throws(ModelError) in try dense.run(b) }
                return try detections(dense.output)
            }
        }
    }

    /// One setting over every segment, each from a keyframe.
    func trial(
        _ segments: [[[Float]]], reference: [[[Detection]]], base: SkipSettings, inputThreshold: Float, context: Int,
        rolling: Int
    ) throws -> Trial {
        var settings = base
        settings.inputThreshold = inputThreshold
        settings.context = context
        settings.rollingRefresh = context > 0 ? rolling : 0
        var agreement = DetectionAgreement()
        var (executed, dense) = (0, 0)
        for (frames, expected) in zip(segments, reference) {
            let skip = try SkipExecutor(graph: graph, settings: settings, threads: threads)
            for (frame, want) in zip(frames, expected) {
                try frame.withUnsafeBufferPointer { (b) throws(ModelError) in try skip.run(b) }
                agreement = agreement + DetectionAgreement(reference: want, candidate: try detections(skip.output))
            }
            executed += skip.executedMACs
            dense += skip.denseMACs * skip.frames
        }
        return Trial(
            inputThreshold: inputThreshold, context: context, rolling: settings.rollingRefresh,
            macRatio: Double(executed) / Double(max(1, dense)), agreement: agreement)
    }
}
