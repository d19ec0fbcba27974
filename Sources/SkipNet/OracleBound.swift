/// The skip-convolution oracle: the MAC ratio an executor would reach if every convolution recomputed exactly the
/// output positions whose receptive field holds an input-image change above θ (docs/skip-convolutions.md §3, §7). No gate can
/// skip more without leaving a change unpropagated, so `skipd bench skip` prints it beside what the real executor
/// achieves.
///
/// - Input: the model's input tensor per frame (NCHW, batch 1, normalised as the model takes it); θ is in its units.
///   With a larger batch all items share one mask (conservative).
/// - Image change against a committed reference, the executor's rule (§1.1): frame 0 is a dense keyframe and sets
///   `ref`. For t ≥ 1, `changed(q) = max_c |x_t[c,q] − ref[c,q]| > θ`, then `ref[:,q] = x_t[:,q]` where changed,
///   so a slow drift is seen once it adds up to more than θ.
/// - The change mask is propagated in node order at each value's own H×W (a value that is not 4-D is one position):
///   Conv, MaxPool, AveragePool: an output is changed if its window holds a changed input (in bounds);
///   ConvTranspose: if an input that writes to it changed; Resize: if an input within ±1 of its source coordinate
///   changed (the exact source for nearest); BatchNormalization, activations, channel Softmax, channel Split: copy;
///   channel Concat: union; Add/Sub/Mul/Div/PRelu: union of the non-constant inputs at the output's H×W, while a
///   non-constant input broadcast spatially (H or W of 1, or not 4-D) changes every output if any of it changed;
///   anything else (GlobalAveragePool, Gemm, MatMul, Reshape, Flatten, Transpose, …) changes all its outputs if any
///   input changed. Constants never change.
/// - Executed MACs per frame: Conv: changed outputs × `(C_in/g)·C_out·k_h·k_w`; ConvTranspose: changed inputs ×
///   `C_in·(C_out/g)·k_h·k_w`; Gemm, MatMul: dense if an input changed. No gate MACs: the oracle needs no gate.
///   Dense MACs per frame: ``ModelSummary``'s total.
public struct OracleBound: Sendable {
    /// Per output index along one axis, the input indices it reads: `index[start[o]..<start[o + 1]]`.
    struct Taps: Sendable {
        var start = [0]
        var index: [Int] = []

        mutating func append(_ taps: some Sequence<Int>) {
            index.append(contentsOf: taps)
            start.append(index.count)
        }

        /// Conv and pooling windows, clipped to the input.
        static func window(_ inN: Int, _ outN: Int, _ kernel: Int, _ stride: Int, _ pad: Int, _ dilation: Int) -> Taps {
            var taps = Taps()
            for o in 0..<outN {
                taps.append((0..<kernel).map { o * stride - pad + $0 * dilation }.filter { (0..<inN).contains($0) })
            }
            return taps
        }

        /// ConvTranspose: input `i` writes to `i·stride − pad + j·dilation` for each kernel tap `j`.
        static func transposed(
            _ inN: Int, _ outN: Int, _ kernel: Int, _ stride: Int, _ pad: Int, _ dilation: Int
        ) -> Taps {
            var writers = [[Int]](repeating: [], count: outN)
            for i in 0..<inN {
                for j in 0..<kernel {
                    let o = i * stride - pad + j * dilation
                    if (0..<outN).contains(o) { writers[o].append(i) }
                }
            }
            var taps = Taps()
            for w in writers { taps.append(w) }
            return taps
        }

        /// Both axes of a 2-D conv, pooling or transposed conv between NCHW shapes `x` and `y`.
        static func windows(
            _ x: [Int], _ y: [Int], _ kernel: [Int], _ strides: [Int], _ pads: [Int], _ dilations: [Int],
            transposed: Bool = false
        ) -> (rows: Taps, cols: Taps) {
            let axis = { (i: Int) in
                (transposed ? Taps.transposed : Taps.window)(
                    x[2 + i], y[2 + i], kernel[i], strides[i], pads[i], dilations[i])
            }
            return (axis(0), axis(1))
        }

        /// Resize: the nearest source, or every source within ±1 of the source coordinate (linear reads two).
        static func resize(
            _ inN: Int, _ outN: Int, scale: Float, coordinate: Kernels.CoordinateTransform,
            nearest: Kernels.NearestMode?
        ) -> Taps {
            var taps = Taps()
            for o in 0..<outN {
                if let nearest {
                    taps.append(CollectionOfOne(Kernels.nearestIndex(o, outN, inN, scale, coordinate, nearest)))
                } else {
                    // Clamping the ends (not the coordinate) keeps the one source that an edge output reads.
                    let x = Kernels.originalCoordinate(o, outN, inN, scale, coordinate)
                    let clamp = { (i: Float) in min(max(Int(i), 0), inN - 1) }
                    taps.append(clamp((x - 1).rounded(.up))...clamp((x + 1).rounded(.down)))
                }
            }
            return taps
        }
    }

    enum Rule: Sendable {
        /// Output (y, x) is changed if an input at (rows[y], cols[x]) is.
        case gather(input: Int, rows: Taps, cols: Taps)
        /// The union of `same` (masks at the outputs' H×W); everything if any of `broadcast` changed.
        case union(same: [Int], broadcast: [Int])
    }

    enum Cost: Sendable {
        case none
        case perChangedOutput(Int)
        case perChangedInput(Int)
        case denseIfChanged(Int)
    }

    struct Step: Sendable {
        var rule: Rule
        /// Mask slots written.
        var outputs: [Int]
        var cost: Cost
    }

    private let threshold: Float
    private let steps: [Step]
    /// Mask geometry per slot; a slot holds one value's mask or several identical ones (pointwise ops share).
    private let dims: [(h: Int, w: Int)]
    private let offsets: [Int]
    /// Where the gather scratch starts in `masks`.
    private let scratch: Int
    private let inputSlot: Int
    private let dense: Int
    /// All masks, one byte per position, then the scratch a gather needs; reused every frame.
    private var masks: [UInt8]
    private var changed: [Bool]
    private var reference: [Float]
    private var frames = 0
    public private(set) var executedMACs = 0
    public private(set) var denseMACs = 0

    /// Σ executed / Σ dense over all frames so far (keyframe included); 1 before any frame.
    public var ratio: Double { denseMACs == 0 ? 1 : Double(executedMACs) / Double(denseMACs) }

    public init(graph: Graph, threshold: Float) {
        precondition(graph.inputs.count == 1, "the oracle bound takes a model with one input")
        var slotOf = [Int?](repeating: nil, count: graph.values.count)
        var dims: [(h: Int, w: Int)] = []
        func newSlot(_ value: Int) -> Int {
            let s = graph.shape(of: value)
            dims.append(s.count == 4 ? (s[2], s[3]) : (1, 1))
            slotOf[value] = dims.count - 1
            return dims.count - 1
        }
        inputSlot = newSlot(graph.inputs[0])
        var steps: [Step] = []
        var scratchSize = 0

        for node in graph.nodes {
            let macs = ModelSummary.macs(node, graph)
            let live = node.inputs.compactMap { $0.flatMap { slotOf[$0] } }
            // Only constants in: the outputs are constant too.
            guard !live.isEmpty else { continue }
            let x = node.inputs[0].flatMap { slotOf[$0] }
            let sideInputChanges = live.count > 1 || x == nil
            func alias() { for v in node.outputs { slotOf[v] = live[0] } }
            func all() {
                let cost: Cost = macs > 0 ? .denseIfChanged(macs) : .none
                steps.append(
                    Step(rule: .union(same: [], broadcast: live), outputs: node.outputs.map(newSlot), cost: cost))
            }
            func gather(_ rows: Taps, _ cols: Taps, cost: (_ inH: Int, _ inW: Int, _ outH: Int, _ outW: Int) -> Cost) {
                guard let input = x, !sideInputChanges else { return all() }
                let out = newSlot(node.outputs[0])
                let (i, o) = (dims[input], dims[out])
                scratchSize = max(scratchSize, i.h * o.w + i.h)
                steps.append(
                    Step(
                        rule: .gather(input: input, rows: rows, cols: cols), outputs: [out],
                        cost: cost(i.h, i.w, o.h, o.w)))
            }
            let xShape = node.inputs[0].map { graph.shape(of: $0) } ?? []
            let yShape = graph.shape(of: node.outputs[0])
            let spatial = xShape.count == 4 && yShape.count == 4

            switch node.op {
            case .conv(let a) where spatial:
                let (rows, cols) = Taps.windows(xShape, yShape, a.kernel, a.strides, a.pads, a.dilations)
                gather(rows, cols) { _, _, h, w in .perChangedOutput(macs / (h * w)) }
            case .convTranspose(let a, _, _) where spatial:
                let (rows, cols) = Taps.windows(
                    xShape, yShape, a.kernel, a.strides, a.pads, a.dilations, transposed: true)
                gather(rows, cols) { h, w, _, _ in .perChangedInput(macs / (h * w)) }
            case .maxPool(let a) where spatial, .averagePool(let a, _) where spatial:
                let (rows, cols) = Taps.windows(xShape, yShape, a.kernel, a.strides, a.pads, a.dilations)
                gather(rows, cols) { _, _, _, _ in .none }
            case .resize(let r) where spatial:
                guard let (coordinate, nearest) = Self.resizeMode(r) else { all(); break }
                let (sH, sW) = Self.resizeScales(node, graph, xShape, yShape)
                gather(
                    .resize(xShape[2], yShape[2], scale: sH, coordinate: coordinate, nearest: nearest),
                    .resize(xShape[3], yShape[3], scale: sW, coordinate: coordinate, nearest: nearest)
                ) { _, _, _, _ in .none }
            case .batchNormalization, .relu, .leakyRelu, .clip, .sigmoid, .hardSigmoid, .hardSwish, .tanh, .silu, .math,
                .cast:
                if sideInputChanges { all() } else { alias() }
            case .softmax(axis: 1, legacy: false) where yShape.count == 4:
                if sideInputChanges { all() } else { alias() }
            case .split(let axis, _) where axis <= 1 && yShape.count == 4:
                alias()
            case .add, .sub, .mul, .div, .prelu, .concat(axis: 0), .concat(axis: 1):
                if case .concat = node.op, yShape.count != 4 {
                    all()
                    break
                }
                let out = yShape.count == 4 ? (yShape[2], yShape[3]) : (1, 1)
                let same = live.filter { yShape.count == 4 && dims[$0] == out }
                let broadcast = live.filter { !same.contains($0) }
                if same.count == 1 && broadcast.isEmpty { alias(); break }
                steps.append(
                    Step(
                        rule: .union(same: same, broadcast: broadcast), outputs: node.outputs.map(newSlot), cost: .none)
                )
            default:
                all()
            }
        }
        var offsets: [Int] = []
        var total = 0
        for d in dims {
            offsets.append(total)
            total += d.h * d.w
        }
        self.threshold = threshold
        self.steps = steps
        self.dims = dims
        self.offsets = offsets
        self.scratch = total
        self.dense = graph.nodes.reduce(0) { $0 + ModelSummary.macs($1, graph) }
        masks = Array(repeating: 0, count: total + scratchSize)
        changed = Array(repeating: false, count: dims.count)
        reference = Array(repeating: 0, count: graph.shape(of: graph.inputs[0]).reduce(1, *))
    }

    /// One frame; returns this frame's (executed, dense) MACs and accumulates them.
    @discardableResult public mutating func add(_ input: UnsafeBufferPointer<Float>) -> (executed: Int, dense: Int) {
        precondition(
            input.count == reference.count, "the frame has \(input.count) values, the model takes \(reference.count)")
        let executed: Int
        if frames == 0 {
            reference.withUnsafeMutableBufferPointer { _ = $0.update(fromContentsOf: input) }
            executed = dense
        } else {
            executed = propagate(input)
        }
        frames += 1
        executedMACs += executed
        denseMACs += dense
        return (executed, dense)
    }

    private mutating func propagate(_ input: UnsafeBufferPointer<Float>) -> Int {
        // Moved out so that the loops below hold plain locals (no overlapping access to self).
        var masks = [UInt8]()
        var changed = [Bool]()
        swap(&masks, &self.masks)
        swap(&changed, &self.changed)
        defer {
            swap(&masks, &self.masks)
            swap(&changed, &self.changed)
        }
        let (dims, offsets, steps) = (self.dims, self.offsets, self.steps)
        let theta = threshold
        return masks.withUnsafeMutableBufferPointer { buffer -> Int in
            let base = buffer.baseAddress!
            func count(_ slot: Int) -> Int {
                guard changed[slot] else { return 0 }
                let m = base + offsets[slot]
                var n = 0
                for i in 0..<(dims[slot].h * dims[slot].w) { n &+= Int(m[i]) }
                return n
            }

            // Image-level change against the committed reference, then commit where changed.
            let positions = dims[inputSlot].h * dims[inputSlot].w
            let m = base + offsets[inputSlot]
            m.update(repeating: 0, count: positions)
            reference.withUnsafeMutableBufferPointer { ref in
                let planes = ref.count / positions
                for p in 0..<planes {
                    let (x, r) = (input.baseAddress! + p * positions, ref.baseAddress! + p * positions)
                    for q in 0..<positions { m[q] |= abs(x[q] - r[q]) > theta ? 1 : 0 }
                }
                for p in 0..<planes {
                    let (x, r) = (input.baseAddress! + p * positions, ref.baseAddress! + p * positions)
                    for q in 0..<positions where m[q] != 0 { r[q] = x[q] }
                }
            }
            changed[inputSlot] = (0..<positions).contains { m[$0] != 0 }

            var executed = 0
            for step in steps {
                var changedOutputs = 0
                switch step.rule {
                case .gather(let input, let rows, let cols):
                    let out = step.outputs[0]
                    if changed[input] {
                        let (src, dst) = (base + offsets[input], base + offsets[out])
                        changedOutputs = Self.gather(src, dims[input], dst, dims[out], rows, cols, base + scratch)
                    }
                    changed[out] = changedOutputs > 0
                case .union(let same, let broadcast):
                    let everything = broadcast.contains { changed[$0] }
                    for out in step.outputs {
                        let (dst, n) = (base + offsets[out], dims[out].h * dims[out].w)
                        if everything {
                            dst.update(repeating: 1, count: n)
                            changed[out] = true
                            continue
                        }
                        var first = true
                        for s in same where changed[s] {
                            let src = base + offsets[s]
                            if first {
                                dst.update(from: src, count: n)
                                first = false
                            } else {
                                for i in 0..<n { dst[i] |= src[i] }
                            }
                        }
                        changed[out] = !first
                    }
                }
                switch step.cost {
                case .none: break
                case .perChangedOutput(let unit): executed += changedOutputs * unit
                case .perChangedInput(let unit):
                    if case .gather(let input, _, _) = step.rule { executed += count(input) * unit }
                case .denseIfChanged(let macs): executed += changed[step.outputs[0]] ? macs : 0
                }
            }
            return executed
        }
    }

    /// Separable: a row pass into `scratch` (input rows × output columns), then each output row ORs its source rows.
    /// Returns the number of changed outputs.
    private static func gather(
        _ src: UnsafePointer<UInt8>, _ i: (h: Int, w: Int), _ dst: UnsafeMutablePointer<UInt8>,
        _ o: (h: Int, w: Int), _ rows: Taps, _ cols: Taps, _ scratch: UnsafeMutablePointer<UInt8>
    ) -> Int {
        let rowChanged = scratch + i.h * o.w
        for y in 0..<i.h {
            let row = src + y * i.w
            guard (0..<i.w).contains(where: { row[$0] != 0 }) else {
                rowChanged[y] = 0
                continue
            }
            let t = scratch + y * o.w
            var any: UInt8 = 0
            for x in 0..<o.w {
                var v: UInt8 = 0
                for k in cols.start[x]..<cols.start[x + 1] { v |= row[cols.index[k]] }
                t[x] = v
                any |= v
            }
            rowChanged[y] = any
        }
        var changed = 0
        for y in 0..<o.h {
            let out = dst + y * o.w
            out.update(repeating: 0, count: o.w)
            var read = false
            for k in rows.start[y]..<rows.start[y + 1] {
                let source = rows.index[k]
                guard rowChanged[source] != 0 else { continue }
                let t = scratch + source * o.w
                for x in 0..<o.w { out[x] |= t[x] }
                read = true
            }
            if read { for x in 0..<o.w { changed &+= Int(out[x]) } }
        }
        return changed
    }

    /// The kernel's coordinate arithmetic for this resize; nil for a mode the dense executor does not run either.
    private static func resizeMode(_ r: ResizeAttributes) -> (Kernels.CoordinateTransform, Kernels.NearestMode?)? {
        guard let coordinate = Kernels.CoordinateTransform(onnx: r.coordinateTransformation) else { return nil }
        switch (r.mode, r.nearestMode) {
        case ("linear", _), ("bilinear", _): return (coordinate, nil)
        case ("nearest", "round_prefer_ceil"): return (coordinate, .roundPreferCeil)
        case ("nearest", "floor"): return (coordinate, .floor)
        case ("nearest", "ceil"): return (coordinate, .ceil)
        case ("nearest", "round_prefer_floor"): return (coordinate, .roundPreferFloor)
        default: return nil
        }
    }

    /// The scales the model gives (they enter the coordinate arithmetic), else out/in, as the dense executor does.
    private static func resizeScales(_ node: Graph.Node, _ graph: Graph, _ x: [Int], _ y: [Int]) -> (Float, Float) {
        let index = node.inputs.count == 2 ? 1 : 2
        let given = index < node.inputs.count ? node.inputs[index].flatMap { graph.constants[$0] } : nil
        let scales = given.map { $0.count == 4 ? ($0.data[2], $0.data[3]) : (0, 0) } ?? (0, 0)
        return (
            scales.0 > 0 ? scales.0 : Float(y[2]) / Float(x[2]), scales.1 > 0 ? scales.1 : Float(y[3]) / Float(x[3])
        )
    }
}
