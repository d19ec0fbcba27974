import Foundation
import PipelineKit
import SkipNet

/// How a frame becomes a model's input tensor: layout from the model's input shape (`1×3×H×W` is NCHW,
/// `1×H×W×3` NHWC), channel order, `value = (pixel − mean) × scale` per channel, and a nearest-neighbour resize
/// when the frame's size differs (put `videoscale` in the pipeline for a smoother one).
public struct ModelInput: Sendable {
    public enum Layout: String, Sendable {
        case nchw, nhwc
    }

    public var shape: [Int]
    public var layout: Layout
    public var mean: [Float]
    public var scale: [Float]
    /// `rgb` or `bgr`: the channel order the model expects.
    public var channelOrder: String

    public var height: Int { layout == .nchw ? shape[2] : shape[1] }
    public var width: Int { layout == .nchw ? shape[3] : shape[2] }

    public init(shape: [Int], mean: [Float] = [0], scale: [Float] = [1], channelOrder: String = "rgb")
        throws(ModelError)
    {
        guard shape.count == 4, shape[0] == 1 else {
            throw ModelError("model input \(shape.shapeText) is not a single image (1×3×H×W or 1×H×W×3)")
        }
        if shape[1] == 3 {
            layout = .nchw
        } else if shape[3] == 3 {
            layout = .nhwc
        } else {
            throw ModelError("model input \(shape.shapeText) has no 3-channel axis (1×3×H×W or 1×H×W×3)")
        }
        guard [1, 3].contains(mean.count), [1, 3].contains(scale.count) else {
            throw ModelError("mean and scale take 1 or 3 values")
        }
        self.shape = shape
        self.mean = mean
        self.scale = scale
        self.channelOrder = channelOrder
    }

    /// The model input shape for a frame size, from a model's declared shape (whose H and W are replaced).
    public static func shape(declared: [Int], width: Int, height: Int) -> [Int]? {
        guard declared.count == 4 else { return nil }
        if declared[1] == 3 { return [1, 3, height, width] }
        if declared[3] == 3 { return [1, height, width, 3] }
        return nil
    }

    /// `768x576` → (768, 576); nil unless two positive integers.
    public static func size(_ text: String) -> (width: Int, height: Int)? { PropertySpec.parseSize(text) }

    /// Loads an image model for frames of `width`×`height`: the input shape from the model's declared one, the
    /// graph at that shape, its executor and the frame conversion.
    public static func loadModel(
        path: String, width: Int, height: Int, threads: Int, mean: [Float] = [0], scale: [Float] = [1],
        channelOrder: String = "rgb", kernels: KernelSet = .detected
    ) throws(ModelError) -> (executor: DenseExecutor, input: ModelInput) {
        let loaded = try loadGraph(
            path: path, width: width, height: height, mean: mean, scale: scale, channelOrder: channelOrder)
        return (try DenseExecutor(graph: loaded.graph, threads: threads, kernels: kernels), loaded.input)
    }

    /// The graph of an image model at `width`×`height` and the frame conversion, for any executor.
    public static func loadGraph(
        path: String, width: Int, height: Int, mean: [Float] = [0], scale: [Float] = [1], channelOrder: String = "rgb"
    ) throws(ModelError) -> (graph: Graph, input: ModelInput) {
        let declared = try ONNXImporter.declaredInputShape(path: path)
        guard let shape = Self.shape(declared: declared, width: width, height: height) else {
            throw ModelError("\(path): input \(declared.shapeText) is not an image input (1×3×H×W or 1×H×W×3)")
        }
        let graph = try ONNXImporter.load(path: path, inputShape: shape)
        return (graph, try ModelInput(shape: shape, mean: mean, scale: scale, channelOrder: channelOrder))
    }

    /// The source row or column nearest-neighbour resizing samples for output `index` of `size` from `source`:
    /// ``fill(_:into:)`` reads exactly these, so a change elsewhere cannot reach the model.
    public static func nearest(_ index: Int, of size: Int, from source: Int) -> Int { index * source / size }

    /// Writes the frame into `output` (`shape` elements).
    public func fill(_ image: VideoImage, into output: UnsafeMutablePointer<Float>) throws(ModelError) {
        let source: [Int]
        switch image.format.pixelFormat {
        case "RGB", "RGBx", "RGBA": source = channelOrder == "bgr" ? [2, 1, 0] : [0, 1, 2]
        case "BGR", "BGRx", "BGRA": source = channelOrder == "bgr" ? [0, 1, 2] : [2, 1, 0]
        default:
            throw ModelError("the model stage needs RGB or BGR video, got \(image.format.pixelFormat)")
        }
        let bpp = image.format.bytesPerPixel ?? 3
        let (h, w) = (height, width)
        let plane = h * w
        let m = (0..<3).map { mean[mean.count == 3 ? $0 : 0] }
        let s = (0..<3).map { scale[scale.count == 3 ? $0 : 0] }
        let xs = (0..<w).map { Self.nearest($0, of: w, from: image.width) * bpp }
        for y in 0..<h {
            let row = image.row(Self.nearest(y, of: h, from: image.height)).assumingMemoryBound(to: UInt8.self)
            for c in 0..<3 {
                let (offset, mc, sc) = (source[c], m[c], s[c])
                if layout == .nchw {
                    let out = output + c * plane + y * w
                    for x in 0..<w { out[x] = (Float(row[xs[x] + offset]) - mc) * sc }
                } else {
                    let out = output + y * w * 3 + c
                    for x in 0..<w { out[x * 3] = (Float(row[xs[x] + offset]) - mc) * sc }
                }
            }
        }
    }
}

/// The properties every model stage (`model`, `skipconv`) takes for its network and input, parsed once.
struct ModelOptions: Sendable {
    static let properties: [PropertySpec] = [
        .file("model", "ONNX model file"),
        .size(
            "input-size", default: "auto", allowsAuto: true,
            "WxH the model runs at; auto: the frame size, or the nearest multiple of stride if the model rejects it"),
        .numbers(
            "mean", default: "0", counts: [1, 3], range: -1e6...1e6,
            "subtracted from each channel: one value or three (comma-separated)"),
        .numbers(
            "scale", default: "1", counts: [1, 3], range: -1e6...1e6,
            "multiplies each channel after the mean: one value or three"),
        .choice("channel-order", default: "rgb", ["rgb", "bgr"], "channel order the model expects"),
        .int("threads", default: 1, range: 1...64, "BLAS threads for this model"),
        .int("stride", default: 32, range: 1...1024, "a policy's reduced input sizes are multiples of this"),
    ]

    var path: String
    /// nil: the first frame's size.
    var fixedSize: (width: Int, height: Int)?
    var mean: [Float]
    var scale: [Float]
    var channelOrder: String
    var threads: Int
    var stride: Int

    init(properties: StageProperties) throws(ModelError) {
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
        func numbers(_ name: String) throws(ModelError) -> [Float] {
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
        stride = properties.int("stride")
    }

    /// The input size for a frame at a policy's `scale`: the full size (`input-size` or the frame's) at 1,
    /// otherwise scaled and rounded to a multiple of `stride` (at least one stride) so the model's shapes work.
    func inputSize(frameWidth: Int, frameHeight: Int, scale: Double) -> ModelSize {
        let full = fixedSize ?? (frameWidth, frameHeight)
        guard scale < 1 else { return ModelSize(width: full.width, height: full.height) }
        return ModelSize(width: snapped(full.width, scale: scale), height: snapped(full.height, scale: scale))
    }

    /// `n` pixels times `scale`, rounded to the nearest multiple of `stride` (at least one stride).
    private func snapped(_ n: Int, scale: Double = 1) -> Int {
        max(stride, Int((Double(n) * scale / Double(stride)).rounded()) * stride)
    }

    /// The model's graph and input conversion for an input of `width`×`height` (from ``inputSize``). With
    /// `input-size=auto`, a frame size the model rejects (CenterFace's shapes need multiples of 32: a 1080-row
    /// camera) becomes the nearest multiple of `stride` in each direction (at least one stride) and frames are
    /// resized to it; detections are mapped back per axis, so they land on the frame's own pixels.
    func loadGraph(width: Int, height: Int) throws(ModelError) -> (graph: Graph, input: ModelInput) {
        do {
            return try ModelInput.loadGraph(
                path: path, width: width, height: height, mean: mean, scale: scale, channelOrder: channelOrder)
        } catch {
            let (w, h) = (snapped(width), snapped(height))
            guard fixedSize == nil, (w, h) != (width, height) else { throw error }
            do {
                return try ModelInput.loadGraph(
                    path: path, width: w, height: h, mean: mean, scale: scale, channelOrder: channelOrder)
            } catch {
                throw ModelError("\(error) (tried \(width)x\(height), then \(w)x\(h))")
            }
        }
    }
}
