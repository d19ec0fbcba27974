import Foundation

/// Runs a ``Graph`` frame after frame, recomputing only what changed (Skip-Convolutions, docs/skip-convolutions.md §1–4).
///
/// Every value keeps its own buffer across frames, and each frame carries a change mask per value (positions that
/// were rewritten). Convolutions and 2×2-stride-2 transposed convs are ``SkipLayer``s: gated, committing into their
/// reference, recomputing active outputs. Element-wise operators (unary, and binary on equal shapes: the residual
/// adds) recompute exactly the union of their inputs' changed positions — strategy A of §1.3, limited to changed
/// tiles, so nothing but the convs' own state is needed and the work left follows the change through the network.
/// Any other operator reruns densely when an input changed and marks its output changed everywhere.
///
/// Keyframes (every layer dense): the first frame, every `refresh` frames, after ``reset()``, and on a scene cut
/// (the first layer would recompute more than `sceneCut` of its outputs). Not thread-safe: one per inference task.
public final class SkipExecutor {
    public let graph: Graph
    public let settings: SkipSettings
    public let threads: Int
    /// Every value's buffer (kept across frames: the executor's state), the fused blocks, and the steps that are
    /// not skip layers, run as planned.
    private let plan: ExecutionPlan
    private let planned: [() -> Void]
    private var steps: [Step] = []
    private var changed: [Int: SpatialMask] = [:]
    private let scratch: SkipScratch
    private let inputValue: Int
    private var framesSinceKeyframe = 0
    /// Bounded context and rolling refresh; nil when neither is set (exact propagation).
    private let bounds: ContextBounds?
    /// Frames run since the rolling refresh started its rotation (the band's position).
    private var bandFrame = 0
    private var needsKeyframe = true
    public private(set) var frames = 0
    public private(set) var keyframes = 0
    /// MACs of the last frame (gates included) and of a dense run.
    public private(set) var lastExecutedMACs = 0
    public private(set) var lastWasKeyframe = false
    public let denseMACs: Int
    /// Σ executed MACs (gates included) over all frames.
    public private(set) var executedMACs = 0
    /// Σ MACs of the gate-selected positions (see ``selectedRatio``).
    public private(set) var selectedMACs = 0
    public private(set) var lastSelectedMACs = 0
    /// Wall time in steps that are not skip layers (element-wise, dense fallbacks), seconds.
    public private(set) var otherSeconds = 0.0

    private enum Step {
        case skip(SkipLayer, input: Int, output: Int, first: Bool)
        case unary(Kernels.UnaryOp, input: Int, output: Int, channels: Int)
        case binary(Kernels.BinaryOp, a: Int, b: Int, output: Int, channels: Int)
        case dense(index: Int, inputs: [Int], outputs: [Int])
        case block(SkipBlock)
        /// A conv and the block that alone reads its output, the block computing the conv's outputs its windows
        /// hold (`SkipBlock.producer`) instead of the conv writing them and the block reading them back, at the
        /// widest planes of the network (32 × 576 × 768 floats at CenterFace's first conv).
        case fed(SkipConvLayer, SkipBlock, input: Int, output: Int, first: Bool)
    }

    public let inputShape: [Int]
    public let outputShapes: [[Int]]

    public convenience init(graph: Graph, settings: SkipSettings = SkipSettings(), threads: Int = 1)
        throws(ModelError)
    {
        try self.init(graph: graph, settings: settings, threads: threads, feedsBlocks: true)
    }

    /// `feedsBlocks` false: no `fed` steps (for tests comparing the two ways); `paths`: each exact layer's and
    /// block's dense-or-sparse choice, made by timing when nil (tests script it to run each path).
    init(
        graph: Graph, settings: SkipSettings, threads: Int, feedsBlocks: Bool,
        paths: (() -> any PathChoice)? = nil
    ) throws(ModelError) {
        guard graph.inputs.count == 1 else {
            throw ModelError("the skip executor runs single-input models; this one has \(graph.inputs.count)")
        }
        let plan = try ExecutionPlan(graph: graph, reusesBuffers: false, kernels: .detected)
        self.plan = plan
        var planned: [() -> Void] = []
        for step in plan.steps { planned.append(try plan.makeStep(step)) }
        self.planned = planned
        outputShapes = graph.outputs.map { graph.shape(of: $0) }
        self.graph = graph
        self.settings = settings
        self.threads = threads
        inputValue = graph.inputs[0]
        let inputShape = graph.shape(of: inputValue)
        self.inputShape = inputShape
        guard inputShape.count == 4, inputShape[0] == 1 else {
            throw ModelError("the skip executor runs one NCHW image per frame; the input is \(inputShape.shapeText)")
        }
        guard settings.context >= 0, settings.rollingRefresh >= 0, settings.minPixels >= 0 else {
            throw ModelError("context, rolling refresh and min-pixels must be 0 (off) or positive")
        }
        bounds =
            settings.context > 0 || settings.rollingRefresh > 0
            ? ContextBounds(radius: settings.context, imageWidth: inputShape[3], imageHeight: inputShape[2]) : nil
        var columns = 0
        var product = 0
        var denseScratch = 0
        var total = 0
        var masks: [Int: SpatialMask] = [:]
        var steps: [Step] = []
        var nodeOfStep: [Int] = []
        func mask(_ value: Int) -> SpatialMask {
            if let m = masks[value] { return m }
            let s = graph.shape(of: value)
            let m = s.count == 4 ? SpatialMask(width: s[3], height: s[2]) : SpatialMask(width: 1, height: 1)
            masks[value] = m
            return m
        }
        _ = mask(inputValue)
        let imageHeight = inputShape[2]
        for (stepIndex, step) in plan.steps.enumerated() {
            let before = steps.count
            defer { if steps.count > before { nodeOfStep.append(step.node) } }
            let node = graph.nodes[step.node]
            let inputs = node.inputs.compactMap { $0 }.filter { graph.constants[$0] == nil }
            for v in inputs + step.outputs { _ = mask(v) }
            let xShape = node.inputs[0].map { graph.shape(of: $0) } ?? []
            let yShape = graph.shape(of: step.outputs[0])
            let weight = node.inputs.count > 1 ? node.inputs[1].flatMap { plan.constantPointer($0) } : nil
            let bias = node.inputs.count > 2 ? node.inputs[2].flatMap { plan.constantPointer($0) } : nil
            let name = node.info.name
            let readsInput = inputs.first == inputValue
            let threshold = settings.threshold(for: name, readsModelInput: readsInput)
            switch node.op {
            case .conv(let a) where weight != nil && inputs.count == 1:
                let p = plan.convParams(node, a)
                if settings.gate == .gumbel && !p.isDepthwise {
                    let expected = p.inC * p.kH * p.kW
                    guard let g = settings.gumbel[name], g.weights.count == expected else {
                        // A gated layer without its gate would never recompute: stale output, silently.
                        throw ModelError(
                            "gate gumbel: node '\(name)' needs a trained gate of \(expected) weights (C_in·kH·kW) "
                                + "in the settings' gumbel entries")
                    }
                }
                let stride = Self.totalStride(imageHeight, p.outH)
                let layer = SkipConvLayer(
                    name: name, params: p, weight: weight!, bias: bias, activation: step.activation,
                    input: plan.pointer(inputs[0]), output: plan.pointer(step.outputs[0]), gate: settings.gate,
                    threshold: threshold.value, relative: threshold.relative, gumbel: settings.gumbel[name],
                    tile: settings.block / stride, breakEven: settings.breakEven(for: name),
                    dilation: inputs[0] == inputValue ? settings.dilation : 0, kernels: plan.kernels,
                    packed: plan.packedForAVX2(weight!, p),
                    hotFilter: readsInput && settings.minPixels > 1 ? (settings.block, settings.minPixels) : nil,
                    workers: threads, paths: paths?())
                let need = SkipConvLayer.scratchNeeds(p)
                (columns, product) = (max(columns, need.columns), max(product, need.product))
                denseScratch = max(denseScratch, Kernels.conv2dScratchCount(p))
                total += p.macs
                steps.append(.skip(layer, input: inputs[0], output: step.outputs[0], first: inputs[0] == inputValue))
            case .convTranspose(let a, _, _) where weight != nil && inputs.count == 1:
                let p = plan.convTransposeParams(node, a)
                total += p.macs
                denseScratch = max(denseScratch, Kernels.convTranspose2dScratchCount(p))
                guard SkipConvTransposeLayer.supports(p) else {
                    steps.append(.dense(index: stepIndex, inputs: inputs, outputs: step.outputs))
                    continue
                }
                let stride = Self.totalStride(imageHeight, p.inH)
                let layer = SkipConvTransposeLayer(
                    name: name, params: p, weight: weight!, bias: bias, activation: step.activation,
                    input: plan.pointer(inputs[0]), output: plan.pointer(step.outputs[0]), gate: settings.gate,
                    threshold: threshold.value, relative: threshold.relative, tile: settings.block / stride,
                    breakEven: settings.breakEven(for: name))
                let need = SkipConvTransposeLayer.scratchNeeds(p)
                (columns, product) = (max(columns, need.columns), max(product, need.product))
                steps.append(.skip(layer, input: inputs[0], output: step.outputs[0], first: inputs[0] == inputValue))
            case _ where Kernels.UnaryOp(node.op) != nil && xShape.count == 4 && xShape == yShape:
                steps.append(
                    .unary(Kernels.UnaryOp(node.op)!, input: inputs[0], output: step.outputs[0], channels: xShape[1]))
            case .add, .sub, .mul, .div:
                let shapes = node.inputs.compactMap { $0.map { graph.shape(of: $0) } }
                if inputs.count == 2, shapes.count == 2, shapes[0] == shapes[1], yShape == shapes[0], yShape.count == 4,
                    let a = node.inputs[0], let b = node.inputs[1]
                {
                    steps.append(
                        .binary(Kernels.BinaryOp(node.op)!, a: a, b: b, output: step.outputs[0], channels: yShape[1]))
                } else {
                    steps.append(.dense(index: stepIndex, inputs: inputs, outputs: step.outputs))
                }
            default:
                total += ModelSummary.macs(node, graph)
                steps.append(.dense(index: stepIndex, inputs: inputs, outputs: step.outputs))
            }
        }
        denseMACs = total
        changed = masks
        let grouped = Self.groupingBlocks(steps, nodes: nodeOfStep, plan: plan, workers: threads, paths: paths)
        self.steps = feedsBlocks ? Self.feeding(grouped, graph: graph) : grouped
        scratch = SkipScratch(
            columns: columns, product: product, dense: denseScratch, workers: min(threads, Kernels.maxConvWorkers))
        if let bounds, settings.context > 0 { Self.limitOutputs(self.steps, to: bounds) }
    }

    /// Runs one frame laid out as ``inputShape``. `changed`, at the input's H×W, limits where the input may have
    /// changed (e.g. an upstream `gate` stage's mask); nil means anywhere.
    public func run(_ input: UnsafeBufferPointer<Float>, changed inputChanged: SpatialMask? = nil) throws(ModelError) {
        let expected = inputShape.reduce(1, *)
        guard input.count == expected, let base = input.baseAddress else {
            throw ModelError("input holds \(input.count) values; the model takes \(inputShape.shapeText) = \(expected)")
        }
        let inputMask = changed[inputValue]!
        if let inputChanged {
            guard inputChanged.width == inputMask.width, inputChanged.height == inputMask.height else {
                throw ModelError(
                    "change mask is \(inputChanged.width)x\(inputChanged.height); the input is "
                        + "\(inputMask.width)x\(inputMask.height)")
            }
            inputMask.assign(inputChanged)
        } else {
            inputMask.fill()
        }
        plan.pointer(inputValue).update(from: base, count: expected)
        Kernels.setThreads(threads)
        var keyframe = needsKeyframe || (settings.refresh > 0 && framesSinceKeyframe >= settings.refresh)
        if keyframe { inputMask.fill() }
        var executed = 0
        var selected = 0
        for step in steps {
            switch step {
            case .skip(let layer, let input, let output, let first):
                let start = ContinuousClock.now
                defer { layer.addTime(ContinuousClock.now - start) }
                if keyframe {
                    layer.keyframe(changed: changed[output]!, scratch: scratch)
                } else {
                    if !first { bound(changed[input]!) }
                    let density = layer.frame(dirty: changed[input]!, changed: changed[output]!, scratch: scratch)
                    if first && density > settings.sceneCut { keyframe = true }
                    if first && !keyframe { beginBounds(changed[output]!) }
                }
                executed += layer.stats.lastExecutedMACs
                selected += layer.stats.lastSelectedMACs
            case .unary(let op, let input, let output, let channels):
                let start = ContinuousClock.now
                defer { otherSeconds += (ContinuousClock.now - start).seconds }
                let mask = changed[input]!
                changed[output]!.assign(mask)
                forEachRun(mask, channels: channels) { offset, n in
                    Kernels.unary(
                        op, input: plan.pointer(input) + offset, output: plan.pointer(output) + offset, count: n)
                }
            case .binary(let op, let a, let b, let output, let channels):
                let start = ContinuousClock.now
                defer { otherSeconds += (ContinuousClock.now - start).seconds }
                let mask = changed[output]!
                mask.assign(changed[a]!)
                mask.formUnion(changed[b]!)
                let (pa, pb, py) = (plan.pointer(a), plan.pointer(b), plan.pointer(output))
                forEachRun(mask, channels: channels) { offset, n in
                    Kernels.binary(op, a: pa + offset, b: pb + offset, output: py + offset, count: n)
                }
            case .block(let block):
                if !keyframe { bound(changed[block.input]!) }
                block.frame(
                    dirty: changed[block.input]!, changed: { changed[$0]! }, keyframe: keyframe, scratch: scratch)
                for m in block.members {
                    executed += m.layer.stats.lastExecutedMACs
                    selected += m.layer.stats.lastSelectedMACs
                }
            case .fed(let layer, let block, let input, let output, let first):
                let start = ContinuousClock.now
                let written = keyframe
                if keyframe {
                    layer.keyframe(changed: changed[output]!, scratch: scratch)
                } else {
                    if !first { bound(changed[input]!) }
                    let density = layer.select(dirty: changed[input]!, changed: changed[output]!, scratch: scratch)
                    if first && density > settings.sceneCut { keyframe = true }
                    if first && !keyframe {
                        beginBounds(changed[output]!)
                        // The block reads this conv's output as its changed input: the band joins it there.
                        bounds?.addBand(to: changed[output]!)
                    }
                }
                layer.addTime(ContinuousClock.now - start)
                // After a scene cut found by `select` the block runs whole but the conv's output is not written yet.
                block.frame(
                    dirty: changed[output]!, changed: { changed[$0]! }, keyframe: keyframe, scratch: scratch,
                    inputWritten: written)
                executed += layer.stats.lastExecutedMACs
                selected += layer.stats.lastSelectedMACs
                for m in block.members {
                    executed += m.layer.stats.lastExecutedMACs
                    selected += m.layer.stats.lastSelectedMACs
                }
            case .dense(let index, let inputs, let outputs):
                let start = ContinuousClock.now
                defer { otherSeconds += (ContinuousClock.now - start).seconds }
                let any = keyframe || inputs.contains { !changed[$0]!.isEmpty }
                if any { planned[index]() }
                for v in outputs {
                    if any { changed[v]!.fill() } else { changed[v]!.clear() }
                }
                if any {
                    let macs = ModelSummary.macs(graph.nodes[plan.steps[index].node], graph)
                    executed += macs
                    selected += macs
                }
            }
        }
        if keyframe {
            keyframes += 1
            framesSinceKeyframe = 1
            bandFrame = 0
        } else {
            framesSinceKeyframe += 1
            bandFrame += 1
        }
        needsKeyframe = false
        lastWasKeyframe = keyframe
        lastExecutedMACs = executed
        executedMACs += executed
        lastSelectedMACs = selected
        selectedMACs += selected
        frames += 1
    }

    /// Starts the frame's bounds from what the first layer recomputes.
    private func beginBounds(_ firstChanged: SpatialMask) {
        guard let bounds else { return }
        bounds.begin(changed: firstChanged, band: refreshBand)
    }

    /// Limits a later layer's changed input to the frame's bounds (nothing without them).
    private func bound(_ dirty: SpatialMask) {
        guard let bounds else { return }
        if settings.context > 0 { bounds.clip(dirty) } else { bounds.addBand(to: dirty) }
    }

    /// The image rows the rolling refresh recomputes this frame.
    var refreshBand: Range<Int> {
        ContextBounds.band(bandFrame, of: settings.rollingRefresh, imageHeight: inputShape[2])
    }

    /// Every conv and block past the first recomputes only outputs within the frame's bounds.
    private static func limitOutputs(_ steps: [Step], to bounds: ContextBounds) {
        let limit: (SpatialMask) -> Void = { [unowned bounds] in bounds.limit($0) }
        for step in steps {
            switch step {
            case .skip(let layer as SkipConvLayer, _, _, false): layer.outputLimit = limit
            case .skip(let layer as SkipConvTransposeLayer, _, _, false): layer.outputLimit = limit
            case .block(let block): block.outputLimit = limit
            case .fed(let layer, let block, _, _, let first):
                if !first { layer.outputLimit = limit }
                block.outputLimit = limit
            default: break
            }
        }
    }

    /// Replaces each run of steps that is one of the dense executor's fused blocks, with exact skip layers only, by
    /// a ``SkipBlock``.
    private static func groupingBlocks(
        _ steps: [Step], nodes: [Int], plan: ExecutionPlan, workers: Int, paths: (() -> any PathChoice)?
    ) -> [Step] {
        var starts: [Int: SkipBlock] = [:]
        for (d, block) in plan.fusedBlocks {
            let convs = [block.expandNode, d, block.projectNode].compactMap { $0 }
            guard let first = nodes.firstIndex(of: convs[0]), first + convs.count <= steps.count,
                Array(nodes[first..<first + convs.count]) == convs
            else { continue }
            var members: [SkipBlock.Member] = []
            for step in steps[first..<first + convs.count] {
                guard case .skip(let layer as SkipConvLayer, let input, let output, false) = step else { break }
                members.append(SkipBlock.Member(layer: layer, input: input, output: output))
            }
            guard members.count == convs.count, members[0].input == block.inputValue,
                SkipBlock.canFuse(members.map(\.layer))
            else { continue }
            starts[first] = SkipBlock(
                members: members, stages: block, output: plan.pointer(members[members.count - 1].output),
                kernels: plan.kernels, workers: workers, paths: paths?())
        }
        var grouped: [Step] = []
        var i = 0
        while i < steps.count {
            if let block = starts[i] {
                grouped.append(.block(block))
                i += block.members.count
            } else {
                grouped.append(steps[i])
                i += 1
            }
        }
        return grouped
    }

    /// Joins each conv that can compute windows of its output (`SkipConvLayer.feedsWindows`) with the block right
    /// after it, when that block is its output's only reader (nothing else may see the unwritten output).
    private static func feeding(_ steps: [Step], graph: Graph) -> [Step] {
        let readers = graph.readerCounts(countingOutputs: true)
        var fed: [Step] = []
        var i = 0
        while i < steps.count {
            if i + 1 < steps.count, case .skip(let layer as SkipConvLayer, let input, let output, let first) = steps[i],
                layer.feedsWindows, case .block(let block) = steps[i + 1], block.input == output,
                readers[output] == 1
            {
                block.producer = layer
                fed.append(.fed(layer, block, input: input, output: output, first: first))
                i += 2
            } else {
                fed.append(steps[i])
                i += 1
            }
        }
        return fed
    }

    /// Image pixels per position of a plane `height` rows high, rounded (13 rows at stride 2 give 7, not 6.5).
    static func totalStride(_ imageHeight: Int, _ height: Int) -> Int {
        max(1, Int((Double(imageHeight) / Double(max(1, height))).rounded()))
    }

    /// Applies `body(offset, count)` to each changed run of each channel plane.
    private func forEachRun(_ mask: SpatialMask, channels: Int, _ body: (Int, Int) -> Void) {
        if mask.isEmpty { return }
        let plane = mask.area
        if mask.isFull { return body(0, channels * plane) }
        mask.runs(into: &scratch.runs)
        for c in 0..<channels {
            for run in scratch.runs { body(c * plane + run.y * mask.width + run.x0, run.length) }
        }
    }

    /// The next frame is a keyframe (a new stream, a reconnect, a resolution change).
    public func reset() { needsKeyframe = true }

    public func output(_ index: Int) -> UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: plan.pointer(graph.outputs[index]), count: outputShapes[index].reduce(1, *))
    }

    /// Frames whose recompute ran on several workers, summed over fused blocks and over convs outside them.
    var parallelFrames: (blocks: Int, convs: Int) {
        steps.reduce((0, 0)) { sum, step in
            switch step {
            case .block(let b): (sum.0 + b.parallelFrames, sum.1)
            case .fed(let c, let b, _, _, _): (sum.0 + b.parallelFrames, sum.1 + c.parallelFrames)
            case .skip(let c as SkipConvLayer, _, _, _): (sum.0, sum.1 + c.parallelFrames)
            default: sum
            }
        }
    }

    /// Where output `index` changed on the last frame.
    public func changedPositions(ofOutput index: Int) -> SpatialMask { changed[graph.outputs[index]]! }

    /// Where value `index` changed on the last frame (nil for a constant).
    func changedPositions(ofValue index: Int) -> SpatialMask? { changed[index] }

    /// Per-layer accounting for the skip layers, in execution order.
    public var layerStats: [SkipLayerStats] {
        steps.flatMap { step -> [SkipLayerStats] in
            switch step {
            case .skip(let layer, _, _, _): [layer.stats]
            case .block(let block): block.members.map(\.layer.stats)
            case .fed(let layer, let block, _, _, _): [layer.stats] + block.members.map(\.layer.stats)
            default: []
            }
        }
    }

    /// Steps that run a conv inside the block reading it.
    var fedCount: Int {
        steps.reduce(0) {
            if case .fed = $1 { return $0 + 1 }
            return $0
        }
    }

    /// Steps that run a MobileNet block fused (``SkipBlock``).
    var blockCount: Int {
        steps.reduce(0) {
            switch $1 {
            case .block, .fed: return $0 + 1
            default: return $0
            }
        }
    }

    /// Σ executed / Σ dense MACs over all frames run, keyframes and gates included (docs/skip-convolutions.md §7).
    public var macRatio: Double { Double(executedMACs) / Double(max(1, denseMACs * frames)) }

    /// Σ selected / Σ dense MACs: the positions the gates chose, whether a layer then ran them sparsely or (being
    /// faster there) through the dense kernel; independent of timing, so runs and machines compare.
    public var selectedRatio: Double { Double(selectedMACs) / Double(max(1, denseMACs * frames)) }

    /// Runs and copies every output (allocates: for tests and tools).
    public func run(_ input: Tensor) throws(ModelError) -> [Tensor] {
        guard input.shape == inputShape else {
            throw ModelError("input shape \(input.shape.shapeText) differs from the model's \(inputShape.shapeText)")
        }
        try input.data.withUnsafeBufferPointer { (buffer) throws(ModelError) in try run(buffer) }
        return outputShapes.indices.map { Tensor(shape: outputShapes[$0], data: Array(output($0))) }
    }
}
