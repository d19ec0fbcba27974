import PipelineKit
import SkipNet

/// The motion-region baseline users compare skip-convolutions with (Frigate's motion boxes, DL Streamer's
/// `gvamotiondetect` feeding `inference-region`): runs an ONNX CNN densely on crops around the tiles of the image that
/// changed and keeps every other tile's outputs from the last time it ran (``RegionExecutor``).
///
/// ```
/// filesrc location=assets/vtest.avi ! decodebin ! videoconvert ! video/x-raw,format=RGB
///   ! regions model=assets/centerface.onnx tile=256 margin=96 ! centerface ! jsonsink location=out/faces.jsonl
/// ```
/// A tile runs when at least `min-pixels` model-input pixels within `context` of it changed by more than
/// `input-threshold` since it last ran; its crop adds `margin` pixels of context on each side. `tile` and `margin`
/// are multiples of the model's largest stride (32 for CenterFace). The whole image runs on the first frame, every
/// `refresh` frames, and when the changed tiles would cost more than it. `model`, `input-size`, `mean`, `scale`,
/// `channel-order` and `threads` work as in `model` (NCHW models with image-like outputs); with 2 or more threads
/// the crops run side by side. A frame skipped upstream keeps the previous outputs. Attaches ``ModelOutputs`` and
/// ``ComputeCost``.
public struct Regions: Stage {
    public static let info = StageInfo(
        name: "regions",
        summary:
            "Runs an ONNX CNN densely on crops around the tiles that changed (motion regions); the rest keep theirs",
        example: "videoconvert ! video/x-raw,format=RGB ! regions model=assets/centerface.onnx tile=256 margin=96",
        properties: ModelOptions.properties + [
            .int(
                "tile", default: 256, range: 1...100_000, "tile side in model-input pixels (a multiple of the stride)"),
            .int("margin", default: 96, range: 0...100_000, "context a crop adds on each side of its tile, pixels"),
            .double(
                "input-threshold", default: 20, range: 0...1_000_000,
                "model-input change a pixel must exceed to count (grey levels for raw pixels)"),
            .int("min-pixels", default: 64, range: 1...1_000_000, "changed pixels near a tile for it to run"),
            .int("context", default: 32, range: 0...100_000, "changes this many pixels outside a tile make it run"),
            .int("refresh", default: 300, range: 0...1_000_000, "whole-image run every this many frames; 0: never"),
        ],
        provides: ["outputs"])

    private let options: ModelOptions
    private let settings: RegionExecutor.Settings
    /// One executor per input size (a policy may switch scales).
    private var executors: [ModelSize: (executor: RegionExecutor, input: ModelInput, buffer: [Float])] = [:]
    private var last: ModelOutputs?
    private var fullCost = FullSizeCost()

    public init(properties: StageProperties, context: StageContext) throws {
        options = try ModelOptions(properties: properties)
        var settings = RegionExecutor.Settings()
        settings.tile = properties.int("tile")
        settings.margin = properties.int("margin")
        settings.threshold = Float(properties.double("input-threshold"))
        settings.minPixels = properties.int("min-pixels")
        settings.context = properties.int("context")
        settings.refresh = properties.int("refresh")
        guard settings.tile % options.stride == 0, settings.margin % options.stride == 0 else {
            throw ModelError(
                "regions: tile \(settings.tile) and margin \(settings.margin) must be multiples of stride "
                    + "\(options.stride) (the model's largest stride, so crops sample the image on its own grid)")
        }
        self.settings = settings
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
        if executors[size] == nil { executors[size] = try load(size) }
        let (executor, input) = (executors[size]!.executor, executors[size]!.input)
        try executors[size]!.buffer.withUnsafeMutableBufferPointer { b throws(ModelError) in
            try input.fill(frame.image, into: b.baseAddress!)
            try executor.run(UnsafeBufferPointer(b))
        }
        let outputs = ModelOutputs(
            graph: executor.graph, shapes: executor.outputShapes, output: executor.output,
            inputSize: (input.width, input.height), frameSize: (frame.image.width, frame.image.height))
        last = outputs
        frame.attach(outputs, executedMACs: executor.lastExecutedMACs, denseMACs: dense)
        return frame
    }

    private func load(_ size: ModelSize) throws -> (executor: RegionExecutor, input: ModelInput, buffer: [Float]) {
        let loaded = try options.loadGraph(width: size.width, height: size.height)
        guard loaded.input.layout == .nchw else {
            throw ModelError(
                "\(options.path): regions runs NCHW models (1×3×H×W); this one takes \(loaded.input.shape.shapeText)")
        }
        let crop = RegionExecutor.cropSize(
            inputWidth: loaded.input.width, inputHeight: loaded.input.height, settings: settings)
        let cropGraph = try options.loadGraph(width: crop.width, height: crop.height).graph
        let executor = try RegionExecutor(
            graph: loaded.graph, cropGraph: cropGraph, settings: settings, threads: options.threads)
        return (executor, loaded.input, Array(repeating: 0, count: loaded.input.shape.reduce(1, *)))
    }
}
