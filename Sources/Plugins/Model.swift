import Foundation
import PipelineKit
import SkipNet

/// Runs an ONNX model on every frame that is not skipped and attaches its output tensors.
///
/// ```
/// filesrc location=assets/vtest.avi ! decodebin ! videoconvert ! video/x-raw,format=RGB
///   ! model model=assets/centerface.onnx ! jsonsink location=out/faces.jsonl
/// ```
/// The input size defaults to the frame size (the first frame's); `input-size=WxH` fixes it and frames are
/// resized to it (nearest neighbour). Pixels become `(value − mean) × scale` in the model's channel order and
/// layout (NCHW or NHWC, from the model's input). A skipped frame keeps the previous frame's outputs.
/// Attaches ``ModelOutputs``.
public struct Model: Stage {
    public static let info = StageInfo(
        name: "model",
        summary: "Runs an ONNX CNN densely on each frame and attaches its outputs",
        example: "videoconvert ! video/x-raw,format=RGB ! model model=assets/centerface.onnx",
        properties: ModelOptions.properties)

    private let options: ModelOptions
    private var executor: DenseExecutor?
    private var input: ModelInput?
    private var buffer: [Float] = []
    private var last: ModelOutputs?

    public init(properties: StageProperties) throws {
        options = try ModelOptions(properties: properties)
    }

    public mutating func process(_ frame: Frame) async throws -> Frame? {
        var frame = frame
        if frame.skipped, let last {
            frame.metadata[ModelOutputs.Key.self] = last
            return frame
        }
        if executor == nil { try load(width: frame.image.width, height: frame.image.height) }
        guard let executor, let input else { return frame }
        try buffer.withUnsafeMutableBufferPointer { b throws(ModelError) in
            try input.fill(frame.image, into: b.baseAddress!)
        }
        try buffer.withUnsafeBufferPointer { b throws(ModelError) in try executor.run(b) }
        let outputs = ModelOutputs(
            graph: executor.graph, shapes: executor.outputShapes, output: executor.output,
            inputSize: (input.width, input.height), frameSize: (frame.image.width, frame.image.height))
        last = outputs
        frame.metadata[ModelOutputs.Key.self] = outputs
        return frame
    }

    private mutating func load(width: Int, height: Int) throws {
        let loaded = try options.loadGraph(width: width, height: height)
        executor = try DenseExecutor(graph: loaded.graph, threads: options.threads)
        input = loaded.input
        buffer = Array(repeating: 0, count: loaded.input.shape.reduce(1, *))
    }
}

/// A model's output tensors for one frame.
public struct ModelOutputs: Sendable, Encodable {
    public struct Output: Sendable {
        public var name: String
        public var shape: [Int]
        public var data: [Float]
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
        graph: Graph, shapes: [[Int]], output: (Int) -> UnsafeBufferPointer<Float>, inputSize: (width: Int, height: Int),
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
