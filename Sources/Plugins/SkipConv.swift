import PipelineKit
import SkipNet

/// Runs an ONNX CNN with skip-convolutions (docs/skip-convolutions.md §1–4): each conv recomputes only the outputs its input's
/// changes reach, so a mostly static camera costs a fraction of `model`'s MACs for the same ``ModelOutputs``.
///
/// ```
/// filesrc location=assets/vtest.avi ! decodebin ! videoconvert ! video/x-raw,format=RGB
///   ! residual threshold=12 ! gate ! skipconv model=assets/centerface.onnx input-threshold=4
///   ! jsonsink location=out/faces.jsonl
/// ```
/// `model`, `input-size`, `mean`, `scale`, `channel-order` and `threads` work as in `model` (NCHW models only).
/// After a `gate`, only model-input positions whose nearest-neighbour source pixel lies in an active block count as
/// changed (the rest keep their reference, so sub-threshold change is not lost but waits for its block), and a
/// skipped frame keeps the previous outputs; without a gate any position may have changed. Dense keyframes: the first
/// frame, a new frame size, every `refresh` frames run, and a scene cut.
///
/// Settings: `thresholds=FILE` (a `skipd calibrate` sidecar) is the base; `gate`, `input-threshold`, `threshold`,
/// `block`, `refresh`, `min-pixels`, `context` and `rolling-refresh` override it only when written in the pipeline (a written
/// `threshold` is relative to each layer's RMS). `context=R` bounds each change's reach to R model-input pixels past
/// the first layer, so the deep layers' work follows the changed area instead of its growing footprint; what lies
/// beyond is brought back by `rolling-refresh=N` (every layer recomputes one band of rows a frame, the whole image
/// every N frames). The sidecar's per-layer thresholds win over both for their layers. Without a sidecar the
/// properties, with their defaults, are the settings. After a `policy`, each input scale keeps its own skip-conv
/// state (a frame at another scale than the last run compares against that scale's references everywhere), and
/// blocks that changed on skipped frames join the next run's mask. Attaches ``ModelOutputs``, ``ComputeCost`` and
/// ``SkipStats``.
public struct SkipConv: Stage {
    public static let info = StageInfo(
        name: "skipconv",
        summary: "Runs an ONNX CNN recomputing only what changed (skip-convolutions) and attaches its outputs",
        example: "residual ! gate ! skipconv model=assets/centerface.onnx input-threshold=4",
        properties: ModelOptions.properties + [
            .choice(
                "gate", default: GateKind.inputSelect.rawValue, GateKind.allCases.map(\.rawValue),
                "how each layer picks the outputs it recomputes (gumbel: trained gates from the sidecar)"),
            .double(
                "input-threshold", default: 4, range: 0...1_000_000,
                "model-input change (after mean and scale) the first layers ignore; grey levels for raw pixels"),
            .double(
                "threshold", default: 0, range: 0...1_000_000,
                "threshold of every other layer, times its RMS; 0: they recompute exactly what changed"),
            .file(
                "thresholds", optional: true,
                "settings sidecar from skipd calibrate (none: \"\"): the base; properties written here override it"),
            .int("block", default: 16, range: 1...1024, "tile side in model-input pixels, gated as one"),
            .int("refresh", default: 300, range: 0...1_000_000, "dense keyframe every this many frames run; 0: never"),
            .int(
                "min-pixels", default: 1, range: 1...1_000_000,
                "pixels of a block over input-threshold for it to count as changed (codec noise crosses it at few)"),
            .int(
                "context", default: 0, range: 0...100_000,
                "bounded context: follow a change only this many model-input pixels past the first layer; 0: exact"),
            .int(
                "rolling-refresh", default: 0, range: 0...1_000_000,
                "recompute every layer over one band of rows per frame, all rows every this many frames; 0: off"),
        ],
        provides: ["outputs"])

    private let options: ModelOptions
    private let settings: SkipSettings
    private let sidecar: String
    /// Skip-conv state per input size: each scale a policy picks keeps its own references and reference outputs.
    private var runners: [ModelSize: Runner] = [:]
    /// The size that ran last: a runner whose size did not cannot trust the gate's mask (it covers one step).
    private var lastSize: ModelSize?
    /// Blocks that changed on frames skipped since the last run (nil: none; `all`: grids differed).
    private var pending: PendingBlocks = .none
    private var last: ModelOutputs?
    private var executedTotal = 0
    private var framesTotal = 0
    private var fullCost = FullSizeCost()

    private final class Runner {
        let executor: SkipExecutor
        let input: ModelInput
        var buffer: [Float]
        let changed: SpatialMask
        var frameSize: ModelSize?

        init(_ loaded: (graph: Graph, input: ModelInput), settings: SkipSettings, threads: Int) throws(ModelError) {
            executor = try SkipExecutor(graph: loaded.graph, settings: settings, threads: threads)
            input = loaded.input
            buffer = Array(repeating: 0, count: loaded.input.shape.reduce(1, *))
            changed = SpatialMask(width: loaded.input.width, height: loaded.input.height)
        }
    }

    private enum PendingBlocks {
        case none
        case some([Bool])
        case all
    }

    public init(properties: StageProperties, context: StageContext) throws {
        options = try ModelOptions(properties: properties)
        settings = try Self.settings(properties)
        sidecar = properties.string("thresholds")
    }

    /// The sidecar (if any) with the written properties applied over it, or the properties alone.
    public static func settings(_ properties: StageProperties) throws(ModelError) -> SkipSettings {
        let sidecar = properties.string("thresholds")
        var settings = sidecar.isEmpty ? SkipSettings() : try SkipSettings.load(path: sidecar)
        func applies(_ name: String) -> Bool { sidecar.isEmpty || properties.isSet(name) }
        if applies("gate") { settings.gate = GateKind(rawValue: properties.string("gate")) ?? .inputSelect }
        if applies("input-threshold") { settings.inputThreshold = Float(properties.double("input-threshold")) }
        if applies("threshold") {
            settings.threshold = Float(properties.double("threshold"))
            settings.relative = true
        }
        if applies("block") { settings.block = properties.int("block") }
        if applies("refresh") { settings.refresh = properties.int("refresh") }
        if applies("min-pixels") { settings.minPixels = properties.int("min-pixels") }
        if applies("context") { settings.context = properties.int("context") }
        if applies("rolling-refresh") { settings.rollingRefresh = properties.int("rolling-refresh") }
        return settings
    }

    public mutating func process(_ frame: Frame) async throws -> Frame? {
        var frame = frame
        let frameSize = ModelSize(width: frame.image.width, height: frame.image.height)
        let dense = try fullCost.macs(options, frameWidth: frameSize.width, frameHeight: frameSize.height)
        if frame.skipped, let last {
            remember(frame.metadata[BlockMask.Key.self])
            framesTotal += 1
            frame.attach(last, executedMACs: 0, denseMACs: dense)
            if let runner = lastSize.flatMap({ runners[$0] }) {
                frame.metadata[SkipStats.Key.self] = stats(
                    runner.executor, executed: 0, keyframe: false, reused: true, changed: 0)
            }
            return frame
        }
        let scale = frame.metadata[PolicyDecision.Key.self]?.scale ?? 1
        let size = options.inputSize(frameWidth: frameSize.width, frameHeight: frameSize.height, scale: scale)
        let runner = try self.runner(size)
        let executor = runner.executor
        if let previous = runner.frameSize, previous != frameSize { executor.reset() }
        runner.frameSize = frameSize
        try runner.buffer.withUnsafeMutableBufferPointer { b throws(ModelError) in
            try runner.input.fill(frame.image, into: b.baseAddress!)
        }
        // A skipped frame only gets here before the first run, which is a keyframe anyway. Another size ran since
        // this one did, or the blocks skipped meanwhile cannot be merged: every position may have changed since
        // this size's references, and its gates compare against them everywhere.
        var mask = frame.skipped || lastSize != size ? nil : frame.metadata[BlockMask.Key.self]
        if var m = mask {
            switch pending {
            case .none: break
            case .all: mask = nil
            case .some(let blocks):
                if blocks.count == m.active.count {
                    for k in blocks.indices where blocks[k] { m.active[k] = true }
                    mask = m
                } else {
                    mask = nil
                }
            }
        }
        pending = .none
        lastSize = size
        let changed = runner.changed
        if let mask {
            Self.changedPositions(mask, frameWidth: frameSize.width, frameHeight: frameSize.height, into: changed)
        }
        try runner.buffer.withUnsafeBufferPointer { b throws(ModelError) in
            try executor.run(b, changed: mask == nil ? nil : changed)
        }
        let outputs = ModelOutputs(
            graph: executor.graph, shapes: executor.outputShapes, output: executor.output,
            inputSize: (runner.input.width, runner.input.height), frameSize: (frameSize.width, frameSize.height))
        last = outputs
        framesTotal += 1
        executedTotal += executor.lastExecutedMACs
        frame.attach(outputs, executedMACs: executor.lastExecutedMACs, denseMACs: dense)
        frame.metadata[SkipStats.Key.self] = stats(
            executor, executed: executor.lastExecutedMACs, keyframe: executor.lastWasKeyframe, reused: false,
            changed: mask == nil ? 1 : changed.density)
        return frame
    }

    /// Keeps a skipped frame's changed blocks for the next run (the gate passed them on; nothing used them yet).
    private mutating func remember(_ mask: BlockMask?) {
        guard let mask else { return }
        switch pending {
        case .all: return
        case .none: pending = .some(mask.active)
        case .some(var blocks):
            guard blocks.count == mask.active.count else {
                pending = .all
                return
            }
            for k in blocks.indices where mask.active[k] { blocks[k] = true }
            pending = .some(blocks)
        }
    }

    private func stats(_ executor: SkipExecutor, executed: Int, keyframe: Bool, reused: Bool, changed: Double)
        -> SkipStats
    {
        SkipStats(
            executedMACs: executed, denseMACs: executor.denseMACs, keyframe: keyframe, reused: reused,
            inputChanged: changed,
            streamRatio: Double(executedTotal) / Double(max(1, executor.denseMACs * framesTotal)))
    }

    private mutating func runner(_ size: ModelSize) throws -> Runner {
        if let runner = runners[size] { return runner }
        let loaded = try options.loadGraph(width: size.width, height: size.height)
        guard loaded.input.layout == .nchw else {
            throw ModelError(
                "\(options.path): skipconv runs NCHW models (1×3×H×W); this one takes "
                    + "\(loaded.input.shape.shapeText): use the model stage")
        }
        if settings.gate == .gumbel {
            // Without its trained gate a conv would never recompute anything: refuse rather than go stale.
            for node in loaded.graph.nodes {
                guard case .conv(let a) = node.op, a.group == 1, settings.gumbel[node.info.name] == nil else {
                    continue
                }
                let source = sidecar.isEmpty ? "no thresholds sidecar is given" : "\(sidecar) has none"
                throw ModelError("gate=gumbel needs a trained gate for conv '\(node.info.name)': \(source)")
            }
        }
        let runner = try Runner(loaded, settings: settings, threads: options.threads)
        runners[size] = runner
        return runner
    }

    /// Marks the positions of `positions` (the model input's size) whose source pixel, as the nearest-neighbour
    /// resize of ``ModelInput/fill(_:into:)`` samples it from a `frameWidth`×`frameHeight` frame, lies in an active
    /// block of `mask`: only those can differ from the previous run. Pixels outside the mask's grid count as changed.
    public static func changedPositions(
        _ mask: BlockMask, frameWidth: Int, frameHeight: Int, into positions: SpatialMask
    ) {
        let (w, h) = (positions.width, positions.height)
        let columns = (0..<w).map { ModelInput.nearest($0, of: w, from: frameWidth) / mask.block }
        positions.withBits { bits in
            for y in 0..<h {
                let row = ModelInput.nearest(y, of: h, from: frameHeight) / mask.block
                for x in 0..<w {
                    let column = columns[x]
                    let outside = row >= mask.rows || column >= mask.columns
                    bits[y * w + x] = outside || mask.active[row * mask.columns + column] ? 1 : 0
                }
            }
        }
    }
}

/// What `skipconv` spent on one frame, in MACs (docs/skip-convolutions.md §7: convs only, gates included).
public struct SkipStats: Sendable, Encodable {
    public var executedMACs: Int
    /// MACs of one dense run of the model.
    public var denseMACs: Int
    /// Every layer ran densely (first frame, new frame size, `refresh`, scene cut).
    public var keyframe: Bool
    /// The frame was skipped upstream and kept the previous outputs: nothing ran.
    public var reused: Bool
    /// Fraction of model-input positions passed on as possibly changed (1 without a gate's mask).
    public var inputChanged: Double
    /// Σ executed / Σ dense MACs over the stream so far, reused frames included.
    public var streamRatio: Double

    public var macRatio: Double { Double(executedMACs) / Double(max(1, denseMACs)) }

    private enum CodingKeys: String, CodingKey {
        case keyframe, reused
        case executedMACs = "executed_macs"
        case denseMACs = "dense_macs"
        case macRatio = "mac_ratio"
        case inputChanged = "input_changed"
        case streamRatio = "stream_mac_ratio"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(executedMACs, forKey: .executedMACs)
        try c.encode(denseMACs, forKey: .denseMACs)
        try c.encode(macRatio, forKey: .macRatio)
        try c.encode(keyframe, forKey: .keyframe)
        try c.encode(reused, forKey: .reused)
        try c.encode(inputChanged, forKey: .inputChanged)
        try c.encode(streamRatio, forKey: .streamRatio)
    }

    public enum Key: FrameMetadataKey {
        public typealias Value = SkipStats
        public static let name = "skip"
    }
}
