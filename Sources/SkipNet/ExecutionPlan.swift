import Foundation
import SkipNetAVX2

/// The graph as the executors run it, built once per executor: which activation and which pointwise convs fuse into
/// which conv, a buffer for every value, constants, weights packed for the AVX2 kernels, scratch, and the closure of
/// each step (`makeStep`).
///
/// Activations are NCHW (ONNX's own layout, so every operator's axis semantics carry over unchanged, and a conv is
/// `W[Cout×Cin·k²] × im2col[Cin·k² × H·W]` with the long H·W side as GEMM's N). With `reusesBuffers` a buffer is
/// reused once its value's last reader has run (liveness over the node order), and a depthwise 3×3 conv becomes
/// one step with the pointwise convs around it (MobileNet blocks, `Kernels.fusedDepthwise`) so the wide expanded
/// tensors stay in cache. Without it (the skip executor's state) every value keeps a buffer of its own across
/// runs, the block's convs stay steps of their own, and the fused block is described in `fusedBlocks` for
/// `SkipBlock`. A conv whose only reader is a Relu, LeakyRelu, Clip, SiLU or HardSwish applies it in its epilogue.
final class ExecutionPlan {
    /// One step: a node, the activation fused into it, the values it writes, and the pointwise convs it runs with
    /// when it is a fused block's depthwise conv.
    struct Step {
        let node: Int
        let activation: Kernels.Activation
        let outputs: [Int]
        let block: (expand: Int?, project: Int?)?
    }

    let graph: Graph
    let kernels: KernelSet
    let reusesBuffers: Bool
    private(set) var steps: [Step] = []
    /// Without buffer reuse, the fused blocks' stages by depthwise node, for the skip executor's `SkipBlock`.
    private(set) var fusedBlocks: [Int: FusedBlockStages] = [:]
    private var slots: [UnsafeMutablePointer<Float>] = []
    private var slotOf: [Int: Int] = [:]
    private var constantMemory: [Int: UnsafeMutablePointer<Float>] = [:]
    private var scratch: UnsafeMutablePointer<Float>
    /// Pointwise weights packed for the AVX2 kernels, by the weights they were packed from.
    private var packedByWeight: [UnsafePointer<Float>: UnsafeMutablePointer<Float>] = [:]
    /// Activation applied in each conv's epilogue, by node index.
    private var fusedActivations: [Int: Kernels.Activation] = [:]
    /// Floats held by activation buffers and scratch (not weights), after reuse.
    private(set) var plannedFloats = 0

    init(graph: Graph, reusesBuffers: Bool, kernels: KernelSet) throws(ModelError) {
        self.graph = graph
        self.kernels = kernels
        self.reusesBuffers = reusesBuffers
        scratch = .allocate(capacity: 1)
        for (id, tensor) in graph.constants {
            let memory = UnsafeMutablePointer<Float>.allocate(capacity: max(tensor.count, 1))
            tensor.data.withUnsafeBufferPointer { data in
                // An empty constant (a legal ONNX tensor) has no storage to copy.
                if let base = data.baseAddress { memory.initialize(from: base, count: tensor.count) }
            }
            constantMemory[id] = memory
        }
        try plan()
    }

    deinit {
        for p in slots { ActivationMemory.release(p) }
        for p in constantMemory.values { p.deallocate() }
        for p in packedByWeight.values { p.deallocate() }
        scratch.deallocate()
    }

    func constantPointer(_ value: Int) -> UnsafeMutablePointer<Float>? { constantMemory[value] }

    func pointer(_ value: Int) -> UnsafeMutablePointer<Float> {
        if let c = constantMemory[value] { return c }
        return slots[slotOf[value]!]
    }

    // MARK: - Planning

    private func plan() throws(ModelError) {
        let nodes = graph.nodes
        let readers = graph.readerCounts()
        var lastUse = Array(repeating: -1, count: graph.values.count)
        for (i, node) in nodes.enumerated() { for case let v? in node.inputs { lastUse[v] = i } }
        let keep = Set(graph.outputs + graph.inputs)

        // Fuse a conv with the activation that is its only reader.
        var fused: [Int: (activation: Kernels.Activation, output: Int)] = [:]
        var skipped = Set<Int>()
        var producerIndex: [Int: Int] = [:]
        for (i, node) in nodes.enumerated() { for v in node.outputs { producerIndex[v] = i } }
        for (i, node) in nodes.enumerated() {
            let activation: Kernels.Activation
            switch node.op {
            case .relu: activation = .relu
            case .leakyRelu(let alpha): activation = .leakyRelu(alpha: alpha)
            case .clip(let lo, let hi): activation = .clip(min: lo, max: hi)
            case .silu: activation = .silu
            case .hardSwish: activation = .hardSwish
            default: continue
            }
            guard let x = node.inputs[0], readers[x] == 1, !keep.contains(x), let p = producerIndex[x],
                fused[p] == nil
            else { continue }
            switch nodes[p].op {
            case .conv, .convTranspose: break
            default: continue
            }
            fused[p] = (activation, node.outputs[0])
            skipped.insert(i)
            lastUse[node.outputs[0]] = max(lastUse[node.outputs[0]], i)
        }

        // Fuse a depthwise conv with the pointwise conv that is its input's only producer and reader and/or the
        // pointwise conv that is its output's only reader. Without buffer reuse (the skip executor needs every
        // value) the block's convs remain steps of their own and the fused step is kept aside (`fusedBlocks`).
        var blocks: [Int: (expand: Int?, project: Int?)] = [:]
        var claimed = Set<Int>()
        do {
            var stepOf: [Int: Int] = [:]
            for (i, node) in nodes.enumerated() where !skipped.contains(i) {
                for v in fused[i].map({ [$0.output] }) ?? node.outputs { stepOf[v] = i }
            }
            var readerOf: [Int: Int] = [:]
            for (i, node) in nodes.enumerated() { for case let v? in node.inputs { readerOf[v] = i } }
            func pointwise(_ i: Int) -> Conv2DParams? {
                guard case .conv(let a) = nodes[i].op else { return nil }
                let p = convParams(nodes[i], a)
                return p.isPointwise && p.groups == 1 ? p : nil
            }
            func single(_ v: Int) -> Bool { readers[v] == 1 && !keep.contains(v) && graph.constants[v] == nil }
            for (i, node) in nodes.enumerated() where !skipped.contains(i) {
                guard case .conv(let a) = node.op, let u = node.inputs[0], node.outputs.count == 1 else { continue }
                let d = convParams(node, a)
                let w = fused[i]?.output ?? node.outputs[0]
                let expand = stepOf[u].flatMap { p in
                    single(u) && !skipped.contains(p) && !claimed.contains(p) && blocks[p] == nil
                        && Kernels.canFuseDepthwise(expand: pointwise(p), depthwise: d, project: nil) ? p : nil
                }
                let project = readerOf[w].flatMap { q in
                    single(w) && nodes[q].inputs[0] == w && nodes[q].outputs.count == 1
                        && Kernels.canFuseDepthwise(expand: nil, depthwise: d, project: pointwise(q)) ? q : nil
                }
                guard expand != nil || project != nil else { continue }
                blocks[i] = (expand, project)
                for j in [expand, project].compactMap({ $0 }) { claimed.insert(j) }
                if reusesBuffers { skipped.formUnion(claimed) }
                // The block reads the expand conv's inputs at the depthwise conv's position.
                if reusesBuffers, let e = expand {
                    for case let v? in nodes[e].inputs { lastUse[v] = max(lastUse[v], i) }
                }
            }
        }

        var free: [(slot: Int, capacity: Int)] = []
        var capacities: [Int] = []
        func allocate(_ value: Int) {
            let size = max(graph.shape(of: value).reduce(1, *), 1)
            if let best = free.enumerated().filter({ $0.element.capacity >= size }).min(by: {
                $0.element.capacity < $1.element.capacity
            }) {
                slotOf[value] = best.element.slot
                free.remove(at: best.offset)
            } else {
                capacities.append(size)
                slotOf[value] = capacities.count - 1
            }
        }
        func release(_ value: Int) {
            guard reusesBuffers, let slot = slotOf[value], !keep.contains(value) else { return }
            free.append((slot, capacities[slot]))
        }

        allocate(graph.inputs[0])
        var scratchCount = 1
        var builders: [(Int, Kernels.Activation, [Int])] = []
        for (i, node) in nodes.enumerated() where !skipped.contains(i) {
            let block = reusesBuffers ? blocks[i] : nil
            let last = block?.project ?? i
            let outputs = fused[last].map { [$0.output] } ?? nodes[last].outputs
            for v in outputs { allocate(v) }
            builders.append((i, fused[i]?.activation ?? .none, outputs))
            var reads = node.inputs
            if let block {
                scratchCount = max(scratchCount, blockScratchNeed(i, block))
                for j in [block.expand, block.project].compactMap({ $0 }) { reads += nodes[j].inputs }
            } else {
                scratchCount = max(scratchCount, scratchNeed(node))
            }
            // Values whose last reader is this node are free again (once, even if read twice).
            for v in Set(reads.compactMap { $0 }) where graph.constants[v] == nil && lastUse[v] <= i {
                release(v)
            }
        }
        self.fusedActivations = fused.mapValues(\.activation)
        slots = capacities.map { ActivationMemory.allocate($0) }
        scratch.deallocate()
        scratch = .allocate(capacity: scratchCount)
        plannedFloats = capacities.reduce(0, +) + scratchCount
        for (i, activation, outputs) in builders {
            if !reusesBuffers, let block = blocks[i] {
                fusedBlocks[i] = try blockStages(i, block, activation: activation)
            }
            steps.append(
                Step(node: i, activation: activation, outputs: outputs, block: reusesBuffers ? blocks[i] : nil))
        }
    }

    private func blockParams(_ i: Int) -> Conv2DParams? {
        guard case .conv(let a) = graph.nodes[i].op else { return nil }
        return convParams(graph.nodes[i], a)
    }

    private func blockScratchNeed(_ i: Int, _ block: (expand: Int?, project: Int?)) -> Int {
        guard let d = blockParams(i) else { return 0 }
        return Kernels.fusedDepthwiseScratchCount(
            expand: block.expand.flatMap(blockParams), depthwise: d, project: block.project.flatMap(blockParams))
    }

    private func scratchNeed(_ node: Graph.Node) -> Int {
        switch node.op {
        case .conv(let a): return Kernels.conv2dScratchCount(convParams(node, a))
        case .convTranspose(let a, _, _): return Kernels.convTranspose2dScratchCount(convTransposeParams(node, a))
        default: return 0
        }
    }

    func convParams(_ node: Graph.Node, _ a: ConvAttributes) -> Conv2DParams {
        let x = graph.shape(of: node.inputs[0]!)
        let y = graph.shape(of: node.outputs[0])
        return Conv2DParams(
            inC: x[1], inH: x[2], inW: x[3], outC: y[1], outH: y[2], outW: y[3], kH: a.kernel[0], kW: a.kernel[1],
            strideH: a.strides[0], strideW: a.strides[1], padTop: a.pads[0], padLeft: a.pads[1],
            padBottom: a.pads[2], padRight: a.pads[3], dilationH: a.dilations[0], dilationW: a.dilations[1],
            groups: a.group)
    }

    func convTransposeParams(_ node: Graph.Node, _ a: ConvAttributes) -> ConvTranspose2DParams {
        let x = graph.shape(of: node.inputs[0]!)
        let y = graph.shape(of: node.outputs[0])
        return ConvTranspose2DParams(
            inC: x[1], inH: x[2], inW: x[3], outC: y[1], outH: y[2], outW: y[3], kH: a.kernel[0], kW: a.kernel[1],
            strideH: a.strides[0], strideW: a.strides[1], padTop: a.pads[0], padLeft: a.pads[1],
            dilationH: a.dilations[0], dilationW: a.dilations[1], groups: a.group)
    }

    // MARK: - Step closures

    /// The step of depthwise conv `i` fused with its expand and/or project pointwise convs.
    private func fusedStep(
        _ i: Int, _ block: (expand: Int?, project: Int?), activation: Kernels.Activation,
        output: UnsafeMutablePointer<Float>
    ) throws(ModelError) -> () -> Void {
        let b = try blockStages(i, block, activation: activation)
        let (expand, dw, project) = (b.expand, b.depthwise, b.project)
        let (x, n, scratch, kernels) = (b.input, graph.shape(of: b.inputValue)[0], scratch, kernels)
        return {
            Kernels.fusedDepthwise(
                expand: expand, depthwise: dw, project: project, n: n, input: x, output: output, scratch: scratch,
                kernels: kernels)
        }
    }

    /// The stages of the block around depthwise conv `i` and the tensor it reads.
    private func blockStages(
        _ i: Int, _ block: (expand: Int?, project: Int?), activation: Kernels.Activation
    ) throws(ModelError) -> FusedBlockStages {
        func stage(_ j: Int, _ activation: Kernels.Activation) throws(ModelError) -> Kernels.ConvStage {
            let node = graph.nodes[j]
            guard case .conv(let a) = node.op, node.inputs.count > 1, let wv = node.inputs[1],
                let w = constantMemory[wv]
            else { throw .node(node.info, "weights must be constant") }
            let b = node.inputs.count > 2 ? node.inputs[2].map { pointer($0) } : nil
            let p = convParams(node, a)
            return Kernels.ConvStage(
                params: p, weight: w, bias: b, activation: activation, packed: packedForAVX2(w, p))
        }
        let dw = try stage(i, activation)
        var expand: Kernels.ConvStage?
        var source = graph.nodes[i]
        if let e = block.expand {
            expand = try stage(e, fusedActivations[e] ?? .none)
            source = graph.nodes[e]
        }
        var project: Kernels.ConvStage?
        if let q = block.project { project = try stage(q, fusedActivations[q] ?? .none) }
        guard let xv = source.inputs[0] else { throw .node(source.info, "missing input 0") }
        return FusedBlockStages(
            expandNode: block.expand, projectNode: block.project, expand: expand, depthwise: dw, project: project,
            inputValue: xv, input: UnsafePointer(pointer(xv)))
    }

    /// `weight` packed for `AVX2Kernels.pointwise` (once per weight) when the plan runs the AVX2 kernels and
    /// `p` is a one-group conv whose GEMM they take (K = inC·kH·kW ≤ `pointwiseMaxK`: pointwise convs, and k×k
    /// convs on their im2col rows); nil otherwise.
    func packedForAVX2(_ weight: UnsafePointer<Float>, _ p: Conv2DParams) -> UnsafePointer<Float>? {
        let k = p.inC * p.kH * p.kW
        guard kernels == .avx2, p.groups == 1, k <= AVX2Kernels.pointwiseMaxK else { return nil }
        if let done = packedByWeight[weight] { return UnsafePointer(done) }
        let packed = UnsafeMutablePointer<Float>.allocate(
            capacity: AVX2Kernels.packedPointwiseCount(m: p.outC, k: k))
        AVX2Kernels.packPointwise(weight, m: p.outC, k: k, into: packed)
        packedByWeight[weight] = packed
        return UnsafePointer(packed)
    }

    /// The closure that runs `step`: a fused MobileNet block, or one node.
    func makeStep(_ step: Step) throws(ModelError) -> () -> Void {
        if let block = step.block {
            return try fusedStep(step.node, block, activation: step.activation, output: pointer(step.outputs[0]))
        }
        return try self.step(graph.nodes[step.node], activation: step.activation, outputs: step.outputs)
    }

    /// The step of one node: the convolutions here (scratch, packed weights, a fused activation), every other
    /// operator through `OperatorStep`, which constant folding shares.
    private func step(_ node: Graph.Node, activation: Kernels.Activation, outputs: [Int]) throws(ModelError)
        -> () -> Void
    {
        func input(_ i: Int) throws(ModelError) -> UnsafeMutablePointer<Float> {
            guard i < node.inputs.count, let v = node.inputs[i] else { throw .node(node.info, "missing input \(i)") }
            return pointer(v)
        }
        func optional(_ i: Int) -> UnsafeMutablePointer<Float>? {
            i < node.inputs.count ? node.inputs[i].map { pointer($0) } : nil
        }
        func constant(_ i: Int, _ what: String) throws(ModelError) -> UnsafeMutablePointer<Float> {
            guard i < node.inputs.count, let v = node.inputs[i], let c = constantMemory[v] else {
                throw .node(node.info, "\(what) must be constant")
            }
            return c
        }
        let x = try input(0)
        let xShape = graph.shape(of: node.inputs[0]!)
        let y = pointer(outputs[0])
        let scratch = scratch

        switch node.op {
        case .conv(let a):
            let p = convParams(node, a)
            let (w, b, n, kernels) = (try constant(1, "weights"), optional(2), xShape[0], kernels)
            let packed = packedForAVX2(w, p)
            return {
                Kernels.conv2d(
                    p, n: n, input: x, weight: w, bias: b, output: y, scratch: scratch, activation: activation,
                    kernels: kernels, packed: packed)
            }
        case .convTranspose(let a, _, _):
            let p = convTransposeParams(node, a)
            let (w, b, n) = (try constant(1, "weights"), optional(2), xShape[0])
            return {
                Kernels.convTranspose2d(
                    p, n: n, input: x, weight: w, bias: b, output: y, scratch: scratch, activation: activation)
            }
        default:
            return try OperatorStep.make(
                node.op, info: node.info, inputs: node.inputs.map { $0.map(pointer) },
                inputShapes: node.inputs.map { $0.map(graph.shape(of:)) },
                constants: node.inputs.map { $0.flatMap { graph.constants[$0] } }, outputs: outputs.map(pointer),
                outputShapes: outputs.map(graph.shape(of:)))
        }
    }
}

/// A depthwise conv and the pointwise convs fused with it (`Kernels.fusedDepthwise`), and the tensor it reads.
struct FusedBlockStages {
    var expandNode: Int?
    var projectNode: Int?
    var expand: Kernels.ConvStage?
    var depthwise: Kernels.ConvStage
    var project: Kernels.ConvStage?
    var inputValue: Int
    var input: UnsafePointer<Float>
}
