import Foundation
import PipelineKit
import SkipNet

/// Runs an ONNX model on every frame that is not skipped and attaches its output tensors.
///
/// ```
/// filesrc location=assets/vtest.avi ! decodebin ! videoconvert ! video/x-raw,format=RGB
///   ! model model=assets/centerface.onnx ! jsonsink location=out/faces.jsonl
/// ```
/// The input size defaults to the frame size; `input-size=WxH` fixes it and frames are resized to it (nearest
/// neighbour). After a `policy`, the input is that size times the frame's ``PolicyDecision/scale``, rounded to a
/// multiple of `stride`, with one executor per size. Pixels become `(value − mean) × scale` in the model's channel
/// order and layout (NCHW or NHWC, from the model's input). A skipped frame keeps the previous frame's outputs.
/// Attaches ``ModelOutputs`` and ``ComputeCost``.
public struct Model: Stage {
    public static let info = StageInfo(
        name: "model",
        summary: "Runs an ONNX CNN densely on each frame and attaches its outputs",
        example: "videoconvert ! video/x-raw,format=RGB ! model model=assets/centerface.onnx",
        properties: ModelOptions.properties, provides: ["outputs"])

    private let options: ModelOptions
    /// One executor per input size: a policy may switch scales from frame to frame.
    private var runners: [ModelSize: Runner] = [:]
    private var last: ModelOutputs?
    private var fullCost = FullSizeCost()

    private final class Runner {
        let executor: DenseExecutor
        let input: ModelInput
        let macs: Int
        var buffer: [Float]

        init(_ loaded: (graph: Graph, input: ModelInput), threads: Int) throws(ModelError) {
            executor = try DenseExecutor(graph: loaded.graph, threads: threads)
            input = loaded.input
            macs = ModelSummary(loaded.graph).totalMACs
            buffer = Array(repeating: 0, count: loaded.input.shape.reduce(1, *))
        }
    }

    public init(properties: StageProperties, context: StageContext) throws {
        options = try ModelOptions(properties: properties)
    }

    public mutating func process(_ frame: Frame) async throws -> Frame? {
        var frame = frame
        let dense = try fullCost.macs(options, frameWidth: frame.image.width, frameHeight: frame.image.height)
        if frame.skipped, let last {
            frame.attach(last, executedMACs: 0, denseMACs: dense)
            return frame
        }
        let scale = frame.metadata[PolicyDecision.Key.self]?.scale ?? 1
        let size = options.inputSize(frameWidth: frame.image.width, frameHeight: frame.image.height, scale: scale)
        let runner: Runner
        if let existing = runners[size] {
            runner = existing
        } else {
            runner = try Runner(options.loadGraph(width: size.width, height: size.height), threads: options.threads)
            runners[size] = runner
        }
        let (executor, input) = (runner.executor, runner.input)
        try runner.buffer.withUnsafeMutableBufferPointer { b throws(ModelError) in
            try input.fill(frame.image, into: b.baseAddress!)
        }
        try runner.buffer.withUnsafeBufferPointer { b throws(ModelError) in try executor.run(b) }
        let outputs = ModelOutputs(
            graph: executor.graph, shapes: executor.outputShapes, output: executor.output,
            inputSize: (input.width, input.height), frameSize: (frame.image.width, frame.image.height))
        last = outputs
        frame.attach(outputs, executedMACs: runner.macs, denseMACs: dense)
        return frame
    }
}

/// MACs of one dense run at the full input size, worked out once per frame size (a policy's smaller scales
/// must not lower the dense baseline they are compared with).
struct FullSizeCost {
    private var macs: [ModelSize: Int] = [:]

    mutating func macs(_ options: ModelOptions, frameWidth: Int, frameHeight: Int) throws(ModelError) -> Int {
        let size = options.inputSize(frameWidth: frameWidth, frameHeight: frameHeight, scale: 1)
        if let known = macs[size] { return known }
        let total = ModelSummary(try options.loadGraph(width: size.width, height: size.height).graph).totalMACs
        macs[size] = total
        return total
    }
}

extension Frame {
    /// Attaches a model stage's outputs and what they cost: `executedMACs` this frame (0 when it reused its last
    /// outputs) against `denseMACs`, one dense run at full size.
    mutating func attach(_ outputs: ModelOutputs, executedMACs: Int, denseMACs: Int) {
        metadata[ModelOutputs.Key.self] = outputs
        metadata[ComputeCost.Key.self] = ComputeCost(
            executedMACs: executedMACs, denseMACs: denseMACs, input: outputs.inputSize)
    }
}

/// A model input size, the key of per-scale state.
struct ModelSize: Hashable, Sendable {
    var width: Int
    var height: Int
}

/// The multiply-accumulates a model stage executed for a frame (convolutions and matrix products, docs/skip-convolutions.md
/// §5; 0 when it reused its previous outputs), what one dense run at full size would have cost, and the input size
/// it ran at.
public struct ComputeCost: Sendable, Encodable {
    public var executedMACs: Int
    /// MACs of one dense run at the full input size (scale 1): the cost of a dense network on every frame.
    public var denseMACs: Int
    public var inputWidth: Int
    public var inputHeight: Int

    public init(executedMACs: Int, denseMACs: Int, input: (width: Int, height: Int)) {
        self.executedMACs = executedMACs
        self.denseMACs = denseMACs
        inputWidth = input.width
        inputHeight = input.height
    }

    private enum CodingKeys: String, CodingKey {
        case executedMACs = "executed_macs"
        case denseMACs = "dense_macs"
        case inputWidth = "input_width"
        case inputHeight = "input_height"
    }

    public enum Key: FrameMetadataKey {
        public typealias Value = ComputeCost
        public static let name = "cost"
    }
}

/// A model's output tensors for one frame.
public struct ModelOutputs: Sendable, Encodable {
    public struct Output: Sendable {
        public var name: String
        public var shape: [Int]
        public var data: [Float]

        public init(name: String, shape: [Int], data: [Float]) {
            self.name = name
            self.shape = shape
            self.data = data
        }
    }

    public var tensors: [Output]
    /// The size the model ran at (its input's W and H) and the size of the frame it was given: a decoder maps
    /// model coordinates to frame coordinates with their ratio, whatever scale a policy picked.
    public var inputSize: (width: Int, height: Int)
    public var frameSize: (width: Int, height: Int)

    public init(tensors: [Output], inputSize: (width: Int, height: Int), frameSize: (width: Int, height: Int)) {
        self.tensors = tensors
        self.inputSize = inputSize
        self.frameSize = frameSize
    }

    /// Copies every output of a graph run by an executor (`output(i)` is output i's buffer).
    public init(
        graph: Graph, shapes: [[Int]], output: (Int) -> UnsafeBufferPointer<Float>,
        inputSize: (width: Int, height: Int),
        frameSize: (width: Int, height: Int)
    ) {
        tensors = graph.outputs.indices.map { i in
            Output(name: graph.values[graph.outputs[i]].name, shape: shapes[i], data: Array(output(i)))
        }
        self.inputSize = inputSize
        self.frameSize = frameSize
    }

    /// The output called `name`, or the one at position `name` when it is a number that names no output.
    public func index(of name: String) -> Int? {
        if let i = tensors.firstIndex(where: { $0.name == name }) { return i }
        if let i = Int(name), tensors.indices.contains(i) { return i }
        return nil
    }

    private struct Summary: Encodable {
        var name: String
        var shape: [Int]
        var max: Float
    }

    /// Names, shapes and maxima: whole tensors are for later stages, not for JSON lines.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.unkeyedContainer()
        for t in tensors { try c.encode(Summary(name: t.name, shape: t.shape, max: t.data.max() ?? 0)) }
    }

    public enum Key: FrameMetadataKey {
        public typealias Value = ModelOutputs
        public static let name = "outputs"
    }
}
