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
        properties: [
            .file("model", "ONNX model file"),
            .string("input-size", default: "auto", "WxH the model runs at; auto: the frame size"),
            .string("mean", default: "0", "subtracted from each channel: one value or three (comma-separated)"),
            .string("scale", default: "1", "multiplies each channel after the mean: one value or three"),
            .choice("channel-order", default: "rgb", ["rgb", "bgr"], "channel order the model expects"),
            .int("threads", default: 1, range: 1...64, "BLAS threads for this model"),
        ])

    private let path: String
    private let fixedSize: (width: Int, height: Int)?
    private let mean: [Float]
    private let scale: [Float]
    private let channelOrder: String
    private let threads: Int
    private var executor: DenseExecutor?
    private var input: ModelInput?
    private var buffer: [Float] = []
    private var last: ModelOutputs?

    public init(properties: StageProperties) throws {
        // The planner has checked that the model file exists (a `.file` property).
        path = properties.string("model")
        let size = properties.string("input-size")
        if size == "auto" {
            fixedSize = nil
        } else {
            guard let parsed = ModelInput.size(size) else {
                throw ModelError("input-size '\(size)' is not WxH, e.g. 768x576")
            }
            fixedSize = parsed
        }
        func numbers(_ name: String) throws -> [Float] {
            let values = properties.string(name).split(separator: ",").map {
                Float($0.trimmingCharacters(in: .whitespaces))
            }
            guard [1, 3].contains(values.count), values.allSatisfy({ $0 != nil }) else {
                throw ModelError("\(name) '\(properties.string(name))' is not one or three numbers")
            }
            return values.compactMap { $0 }
        }
        mean = try numbers("mean")
        scale = try numbers("scale")
        channelOrder = properties.string("channel-order")
        threads = properties.int("threads")
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
            tensors: executor.graph.outputs.indices.map { i in
                ModelOutputs.Output(
                    name: executor.graph.values[executor.graph.outputs[i]].name, shape: executor.outputShapes[i],
                    data: Array(executor.output(i)))
            })
        last = outputs
        frame.metadata[ModelOutputs.Key.self] = outputs
        return frame
    }

    private mutating func load(width: Int, height: Int) throws {
        let (w, h) = fixedSize ?? (width, height)
        let loaded = try ModelInput.loadModel(
            path: path, width: w, height: h, threads: threads, mean: mean, scale: scale, channelOrder: channelOrder)
        executor = loaded.executor
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
