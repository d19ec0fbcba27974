/// Skip form of a transposed conv whose kernel equals its stride (no padding, no dilation, one group: CenterFace's
/// 2×2 stride-2 upsampling): each input position writes its own non-overlapping k×k output block, so the gate decides
/// per *input* position, an active position is its own commit, and its block is recomputed from `x_ref`
/// (docs/skip-convolutions.md §1).
final class SkipConvTransposeLayer: SkipLayer {
    /// Limits the outputs a frame marks changed (bounded context, set by `SkipExecutor`; not on keyframes): each
    /// input position writes its whole 2×2 output block, and the part of it outside the region is not followed.
    var outputLimit: ((SpatialMask) -> Void)?
    let p: ConvTranspose2DParams
    private let weight: UnsafePointer<Float>
    private let bias: UnsafePointer<Float>?
    private let activation: Kernels.Activation
    private let x: UnsafePointer<Float>
    private let y: UnsafeMutablePointer<Float>
    private let reference: LayerReference
    private var xRef: UnsafeMutablePointer<Float> { reference.values }
    private var stat: UnsafeMutablePointer<Float> { reference.statistic }
    private let gate: GateKind
    /// Absolute threshold; a relative one becomes absolute on the first keyframe.
    private(set) var threshold: Float
    private var relative: Bool
    private let tile: Int
    private let breakEven: Double
    /// `max ‖W[:, o, ky, kx]‖₂`: bounds every output of a block by the input residual's norm.
    let maxFilterNorm: Float
    let active: SpatialMask
    private(set) var stats: SkipLayerStats
    /// Threshold 0: recompute the blocks of changed inputs from the current input, no reference (exact).
    let propagates: Bool

    /// The transposed convs this layer handles; others run densely whenever their input changed.
    static func supports(_ p: ConvTranspose2DParams) -> Bool {
        p.kH == p.strideH && p.kW == p.strideW && p.padTop == 0 && p.padLeft == 0 && p.dilationH == 1
            && p.dilationW == 1 && p.groups == 1 && p.outH == p.inH * p.strideH && p.outW == p.inW * p.strideW
    }

    init(
        name: String, params: ConvTranspose2DParams, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        activation: Kernels.Activation, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
        gate: GateKind, threshold: Float, relative: Bool, tile: Int, breakEven: Double
    ) {
        p = params
        self.weight = weight
        self.bias = bias
        self.activation = activation
        x = input
        y = output
        propagates = threshold == 0
        reference = LayerReference(channels: p.inC, plane: p.inH * p.inW, kept: !propagates, statistic: true)
        // Gumbel gates are trained for convs; a transposed conv falls back to the strict output-norm bound.
        self.gate = gate == .gumbel ? .outputNorm : gate
        self.threshold = threshold
        self.relative = relative
        self.tile = max(1, tile)
        self.breakEven = breakEven
        let columns = p.outC * p.kH * p.kW
        var norm: Float = 0
        for j in 0..<columns {
            var s: Float = 0
            for c in 0..<p.inC { s += weight[c * columns + j] * weight[c * columns + j] }
            norm = max(norm, s.squareRoot())
        }
        maxFilterNorm = norm
        active = SpatialMask(width: p.inW, height: p.inH)
        stats = SkipLayerStats(name: name, op: "ConvTranspose", positions: p.inH * p.inW, denseMACs: p.macs)
    }

    static func scratchNeeds(_ p: ConvTranspose2DParams) -> (columns: Int, product: Int) {
        let m = min(p.inH * p.inW, SkipScratch.chunkPositions(k: p.inC))
        return (p.inC * m, p.outC * p.kH * p.kW * m)
    }

    func keyframe(changed: SpatialMask, scratch: SkipScratch) {
        reference.reset(to: x)
        Kernels.convTranspose2d(
            p, input: x, weight: weight, bias: bias, output: y, scratch: scratch.dense, activation: activation)
        if relative {
            threshold = absoluteThreshold(
                threshold, gate: gate, input: x, inputCount: p.inC * p.inH * p.inW, output: y,
                outputCount: p.outC * p.outH * p.outW)
            relative = false
        }
        changed.fill()
        account(active: p.inH * p.inW, executed: p.macs, gate: 0, dense: true)
    }

    @discardableResult
    func frame(dirty: SpatialMask, changed: SpatialMask, scratch: SkipScratch) -> Double {
        if dirty.isEmpty {
            changed.clear()
            account(active: 0, executed: 0, gate: 0, dense: false)
            return 0
        }
        let plane = p.inH * p.inW
        if propagates {
            active.assign(dirty)
            active.runs(into: &scratch.runs)
            let density = active.density
            if density > breakEven {
                Kernels.convTranspose2d(
                    p, input: x, weight: weight, bias: bias, output: y, scratch: scratch.dense, activation: activation)
                account(
                    active: active.count, executed: p.macs, gate: 0, dense: true,
                    selected: active.count * (p.macs / plane))
            } else {
                recompute(scratch, from: x)
                account(active: active.count, executed: active.count * (p.macs / plane), gate: 0, dense: false)
            }
            markBlocks(changed, scratch.runs)
            outputLimit?(changed)
            return density
        }
        dirty.runs(into: &scratch.runs)
        let limit: Float
        switch gate {
        case .outputNorm:
            limit = maxFilterNorm > 0 ? (threshold / maxFilterNorm) * (threshold / maxFilterNorm) : .infinity
        default: limit = threshold
        }
        active.clear()
        active.withBits { a in
            for run in scratch.runs {
                let at = run.y * p.inW + run.x0
                for i in 0..<run.length {
                    var v: Float = 0
                    for c in 0..<p.inC {
                        let d = x[c * plane + at + i] - xRef[c * plane + at + i]
                        switch gate {
                        case .outputNorm: v += d * d
                        case .inputNorm: v += abs(d)
                        default: v = max(v, abs(d))
                        }
                    }
                    stat[at + i] = v
                }
            }
            for run in scratch.runs {
                for x in run.x0..<run.x1 where stat[run.y * p.inW + x] > limit { a[run.y * p.inW + x] = 1 }
            }
        }
        let gateOps = dirty.count * p.inC
        active.tileUp(tile)
        let density = active.density
        if density > breakEven {
            keyframe(changed: changed, scratch: scratch)
            stats.gateMACs += gateOps
            return density
        }
        active.runs(into: &scratch.runs)
        for run in scratch.runs {
            let at = run.y * p.inW + run.x0
            for c in 0..<p.inC { (xRef + c * plane + at).update(from: x + c * plane + at, count: run.length) }
        }
        recompute(scratch, from: xRef)
        markBlocks(changed, scratch.runs)
        outputLimit?(changed)
        account(
            active: active.count, executed: active.count * (p.macs / plane), gate: gateOps, dense: false)
        return density
    }

    /// The output blocks of `runs` (input positions).
    private func markBlocks(_ changed: SpatialMask, _ runs: [MaskRun]) {
        changed.clear()
        changed.withBits { b in
            for run in runs {
                for ky in 0..<p.kH {
                    let row = (run.y * p.strideH + ky) * p.outW
                    for x in run.x0 * p.strideW..<run.x1 * p.strideW { b[row + x] = 1 }
                }
            }
        }
    }

    func addTime(_ duration: Duration) { stats.seconds += duration.seconds }

    private func account(active: Int, executed: Int, gate: Int, dense: Bool, selected: Int? = nil) {
        stats.record(
            active: active, executed: executed, gate: gate, dense: dense, selected: selected, threshold: threshold)
    }

    /// Per chunk: gather `x_ref` columns → `W^T`·columns (one SGEMM) → write each position's k×k block.
    private func recompute(_ scratch: SkipScratch, from source: UnsafePointer<Float>) {
        let plane = p.inH * p.inW
        let outPlane = p.outH * p.outW
        let rows = p.outC * p.kH * p.kW
        let capacity = min(plane, SkipScratch.chunkPositions(k: p.inC))
        forEachChunk(of: scratch.runs, capacity: capacity, into: &scratch.chunk) { chunk, m in
            for c in 0..<p.inC {
                var dst = scratch.columns + c * m
                for run in chunk {
                    dst.update(from: source + c * plane + run.y * p.inW + run.x0, count: run.length)
                    dst += run.length
                }
            }
            Kernels.sgemm(
                transA: true, transB: false, m: rows, n: m, k: p.inC, alpha: 1, a: weight, lda: rows,
                b: scratch.columns, ldb: m, beta: 0, c: scratch.product, ldc: m)
            for o in 0..<p.outC {
                let b = bias?[o] ?? 0
                for ky in 0..<p.kH {
                    for kx in 0..<p.kW {
                        var src = scratch.product + ((o * p.kH + ky) * p.kW + kx) * m
                        for run in chunk {
                            let row = y + o * outPlane + (run.y * p.strideH + ky) * p.outW + kx
                            for ix in run.x0..<run.x1 {
                                row[ix * p.strideW] = Kernels.activate(src[0] + b, activation)
                                src += 1
                            }
                        }
                    }
                }
            }
        }
    }
}
