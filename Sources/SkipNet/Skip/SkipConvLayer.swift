import Foundation
import SkipNetAVX2

/// Skip-convolution for one Conv node (docs/skip-convolutions.md §1–4), recompute form: the layer keeps `x_ref` and an output
/// `y = act(W*x_ref + b)` that is exact for `x_ref`. Per frame it tests the residual `x − x_ref` where the input
/// changed, picks active outputs `A` by its gate (tiled), commits into `x_ref` every input all of whose readers are
/// in `A`, and recomputes `y` on `A` from `x_ref` (gather → one SGEMM per chunk → scatter with bias and activation).
///
/// Recomputing `W*x_ref` on `A` costs the same MACs as accumulating `W*Δ` but needs no `z_acc` and cannot drift: the
/// bias is added once per recomputed output, never per residual, and no round-off accumulates across frames.
final class SkipConvLayer: SkipLayer {
    let p: Conv2DParams
    let weight: UnsafePointer<Float>
    let bias: UnsafePointer<Float>?
    let activation: Kernels.Activation
    let x: UnsafePointer<Float>
    let y: UnsafeMutablePointer<Float>
    let reference: LayerReference
    var xRef: UnsafeMutablePointer<Float> { reference.values }
    /// Per input position, the norm gates' channel statistic of `x − x_ref` (kept where the input did not change).
    /// Input-select compares it with θ as it goes (`Kernels.markExceeding`) and gumbel reads the residual: no plane.
    var stat: UnsafeMutablePointer<Float> { reference.statistic }
    let keepsStatistic: Bool
    let gate: GateKind
    /// Absolute threshold; a relative one becomes absolute on the first keyframe.
    private(set) var threshold: Float
    private var relative: Bool
    let gumbel: GumbelGate?
    let tile: Int
    let breakEven: Double
    let dilation: Int
    /// Largest filter norm `max_o ‖W_o‖₂` (output-norm gate).
    let maxFilterNorm: Float
    private(set) var map: WindowMap
    let evaluated: SpatialMask
    /// Input positions whose residual exceeds θ (input-select).
    let hot: SpatialMask
    /// Input-select counts a `tile`-pixel block of the input as hot only when at least `minimum` of its positions
    /// exceed θ (``SkipSettings/minPixels``); nil: every position over θ counts.
    let hotFilter: (tile: Int, minimum: Int)?
    /// Limits the outputs a frame recomputes (bounded context, set by `SkipExecutor`; not on keyframes).
    var outputLimit: ((SpatialMask) -> Void)?
    /// Dense or sparse for each recompute (measured unless a test scripts it).
    private var timer: any PathChoice
    let active: SpatialMask
    let commit: SpatialMask
    private(set) var stats: SkipLayerStats
    /// Layers with threshold 0, and depthwise convs (9 MACs an output cost less than the C reads of a residual
    /// statistic), gate nothing: they recompute exactly the outputs whose window changed, from the current input
    /// (no reference, no error added). Only where the gate would skip something does a reference pay for itself.
    let propagates: Bool
    /// The kernels of the dense recomputes (keyframes, and densities above break-even), and the pointwise weights
    /// packed for the AVX2 ones.
    let kernels: KernelSet
    let packed: UnsafePointer<Float>?
    /// Conv workers a sparse recompute's runs are shared among (the executor's threads, capped).
    let workers: Int
    /// Frames whose sparse recompute ran on several workers (for tests).
    private(set) var parallelFrames = 0
    /// A first conv's weights packed for `AVX2Kernels.stemRun`, which its sparse recomputes run (see StemConv.swift:
    /// no im2col copies, no scatter), and the kernel's row scratch, one per conv worker (a fed block's rectangles
    /// run on several); nil for every other conv.
    let stem:
        (
            packed: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, scratchCount: Int,
            clamp: AVX2Kernels.Clamp
        )?

    init(
        name: String, params: Conv2DParams, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        activation: Kernels.Activation, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
        gate: GateKind, threshold: Float, relative: Bool, gumbel: GumbelGate?, tile: Int, breakEven: Double,
        dilation: Int, kernels: KernelSet = .portable, packed: UnsafePointer<Float>? = nil,
        hotFilter: (tile: Int, minimum: Int)? = nil, workers: Int = 1, paths: (any PathChoice)? = nil
    ) {
        self.hotFilter = hotFilter
        self.workers = max(1, min(workers, Kernels.maxConvWorkers))
        self.kernels = kernels
        self.packed = packed
        p = params
        self.weight = weight
        self.bias = bias
        self.activation = activation
        x = input
        y = output
        propagates = p.isDepthwise || (threshold == 0 && gate != .gumbel)
        keepsStatistic = gate == .inputNorm || gate == .outputNorm
        reference = LayerReference(
            channels: p.inC, plane: p.inH * p.inW, kept: !propagates, statistic: keepsStatistic)
        self.gate = gate
        self.threshold = threshold
        self.relative = relative
        self.gumbel = gumbel
        self.tile = max(1, tile)
        self.breakEven = breakEven
        self.dilation = dilation
        let filter = (p.inC / p.groups) * p.kH * p.kW
        var norm: Float = 0
        for o in 0..<p.outC {
            var s: Float = 0
            for i in 0..<filter { s += weight[o * filter + i] * weight[o * filter + i] }
            norm = max(norm, s.squareRoot())
        }
        maxFilterNorm = norm
        map = WindowMap(p)
        evaluated = SpatialMask(width: p.outW, height: p.outH)
        hot = SpatialMask(width: p.inW, height: p.inH)
        timer = paths ?? PathTimer(positions: p.outH * p.outW)
        active = SpatialMask(width: p.outW, height: p.outH)
        commit = SpatialMask(width: p.inW, height: p.inH)
        stats = SkipLayerStats(name: name, op: "Conv", positions: p.outH * p.outW, denseMACs: p.macs)
        if let clamp = Kernels.stemClamp(p, activation: activation, kernels: kernels) {
            let packed = UnsafeMutablePointer<Float>.allocate(
                capacity: AVX2Kernels.stemPackedCount(inC: p.inC, outC: p.outC))
            AVX2Kernels.packStem(weight, inC: p.inC, outC: p.outC, into: packed)
            let count = AVX2Kernels.stemScratchCount(inC: p.inC, n: p.outW)
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: count * Kernels.maxConvWorkers)
            stem = (packed, scratch, count, clamp)
        } else {
            stem = nil
        }
    }

    deinit {
        stem?.packed.deallocate()
        stem?.scratch.deallocate()
    }

    static func scratchNeeds(_ p: Conv2DParams) -> (columns: Int, product: Int) {
        if p.isDepthwise { return (0, 0) }
        let k = (p.inC / p.groups) * p.kH * p.kW
        let m = min(p.outH * p.outW, SkipScratch.chunkPositions(k: k))
        return (k * m, (p.outC / p.groups) * m)
    }

    func keyframe(changed: SpatialMask, scratch: SkipScratch) {
        let start = ContinuousClock.now
        defer { timer.recordDense((ContinuousClock.now - start).seconds) }
        reference.reset(to: x)
        Kernels.conv2d(
            p, input: x, weight: weight, bias: bias, output: y, scratch: scratch.dense, activation: activation,
            kernels: kernels, packed: packed)
        if relative {
            threshold = absoluteThreshold(
                threshold, gate: gate, input: x, inputCount: p.inC * p.inH * p.inW, output: y,
                outputCount: p.outC * p.outH * p.outW)
            relative = false
        }
        changed.fill()
        account(active: p.outH * p.outW, executed: p.macs, gate: 0, dense: true)
    }

    /// Runs a frame whose input changed at `dirty`: `select`, then the selected outputs recomputed into the output;
    /// returns the gate's density (for the scene-cut test).
    @discardableResult
    func frame(dirty: SpatialMask, changed: SpatialMask, scratch: SkipScratch) -> Double {
        let gated = select(dirty: dirty, changed: changed, scratch: scratch)
        // Nothing changed: nothing to time (an empty recompute would skew the break-even timer).
        if dirty.isEmpty {
            account(active: 0, executed: 0, gate: 0, dense: false)
            return 0
        }
        recompute(active, scratch: scratch)
        return gated
    }

    /// The input `frame` recomputes from: `x_ref`, or `x` when the layer propagates.
    private var source: UnsafePointer<Float> { propagates ? x : UnsafePointer(xRef) }

    /// Gate counts of the last `select`, charged when the outputs are computed.
    private var gateOps = 0

    /// A frame's gate and commit without the recompute: sets `active` and `changed` to the outputs whose value
    /// changes (afterwards every output of `conv(source)` outside them equals the stored one) and returns the
    /// gate's density. `frame` recomputes them into the output; a block fed by this layer computes them itself.
    func select(dirty: SpatialMask, changed: SpatialMask, scratch: SkipScratch) -> Double {
        gateOps = 0
        if dirty.isEmpty {
            active.clear()
            changed.clear()
            return 0
        }
        if propagates {
            footprint(of: dirty, into: active)
            outputLimit?(active)
            changed.assign(active)
            return active.density
        }
        if gate != .gumbel {
            dirty.runs(into: &scratch.runs)
            if keepsStatistic { updateStatistic(scratch.runs) }
            gateOps = dirty.count * p.inC
        }
        if gate == .inputSelect {
            // An input over θ can only be one that changed this frame (an older one was committed when it crossed
            // θ), so the hot set is found on the dirty runs and its footprint is the active set.
            hot.clear()
            hot.withBits { h in
                for run in scratch.runs {
                    let at = run.y * p.inW + run.x0
                    Kernels.markExceeding(
                        x: x + at, ref: xRef + at, channels: p.inC, plane: p.inH * p.inW, count: run.length,
                        threshold: threshold, into: h.baseAddress! + at, kernels: kernels)
                }
            }
            if let hotFilter { hot.dropSparseTiles(tile: hotFilter.tile, minimum: hotFilter.minimum) }
            map.footprint(of: hot, into: active)
        } else {
            if dirty.isFull { evaluated.fill() } else { map.footprint(of: dirty, into: evaluated) }
            evaluated.runs(into: &scratch.runs)
            active.clear()
            if gate == .gumbel {
                gateOps = evaluated.count * p.inC * p.kH * p.kW
                evaluateGumbel(scratch.runs)
            } else {
                evaluateNorm(scratch.runs)
            }
        }
        active.dilate(dilation)
        // The scene-cut test reads the gate's own decision, before tiles round it up.
        let gated = active.density
        active.tileUp(tile)
        outputLimit?(active)
        map.committable(active, into: commit)
        commit.runs(into: &scratch.runs)
        let plane = p.inH * p.inW
        for run in scratch.runs {
            let at = run.y * p.inW + run.x0
            for c in 0..<p.inC { (xRef + c * plane + at).update(from: x + c * plane + at, count: run.length) }
            if keepsStatistic { (stat + at).update(repeating: 0, count: run.length) }
        }
        changed.assign(active)
        return gated
    }

    /// Recomputes `active` from `source`, sparsely or, above the measured break-even density, with the dense kernel
    /// over every output: both give the same values, since every output is exact for `source` (the invariant), so
    /// only the time differs.
    private func recompute(_ active: SpatialMask, scratch: SkipScratch) {
        let source = source
        let start = ContinuousClock.now
        // A full mask runs dense: the sparse path would compute the same outputs with its gather on top.
        if breakEven < 1 && (active.isFull || timer.choosesDense(density: active.density, otherwise: breakEven)) {
            computeAll(scratch: scratch)
            timer.recordDense((ContinuousClock.now - start).seconds)
            account(
                active: p.outH * p.outW, executed: p.macs, gate: gateOps, dense: true,
                selected: active.count * macsPerOutput)
        } else {
            active.runs(into: &scratch.runs)
            scratch.runs.merge(gap: mergeGap)
            let runs = scratch.runs
            let computed = runs.positions
            // Parts of the runs go to the workers; runs are disjoint, so are the outputs each part writes.
            let parts =
                workers > 1 && computed * macsPerOutput >= ParallelWork.minimumMACs
                ? ParallelWork.ranges(weights: runs.map { Double($0.length) }, parts: workers) : [0..<runs.count]
            if parts.count > 1 { parallelFrames += 1 }
            Kernels.parallelRanges(parts.count, workers: parts.count) { _, lo, hi in
                for worker in lo..<hi { recompute(runs[parts[worker]], from: source, scratch: scratch, worker: worker) }
            }
            timer.recordSparse((ContinuousClock.now - start).seconds, positions: computed)
            account(
                active: computed, executed: computed * macsPerOutput, gate: gateOps, dense: false,
                selected: active.count * macsPerOutput)
        }
        stats.breakEven = timer.breakEven ?? 0
    }

    /// Recomputes the outputs of `runs` from `source` on conv worker `worker` (its scratch).
    private func recompute(
        _ runs: ArraySlice<MaskRun>, from source: UnsafePointer<Float>, scratch: SkipScratch, worker: Int
    ) {
        if let stem {
            for run in runs {
                AVX2Kernels.stemRun(
                    input: source, inC: p.inC, inH: p.inH, inW: p.inW, inPlane: p.inH * p.inW, oy: run.y,
                    x0: run.x0, n: run.length, packed: stem.packed, bias: bias, outC: p.outC,
                    output: y + run.y * p.outW + run.x0, outPlane: p.outH * p.outW, clamp: stem.clamp,
                    scratch: stem.scratch + worker * stem.scratchCount)
            }
        } else if p.isDepthwise {
            recomputeDepthwise(runs, from: source)
        } else {
            recomputeGEMM(runs, from: source, columns: scratch.columns(worker), product: scratch.product(worker))
        }
    }

    // MARK: - Feeding a block

    /// Whether a block reading this layer's output can compute the windows it reads itself (`produce`): a first
    /// conv with the stem kernel. Its output is then written only on keyframes and dense frames (`computeAll`).
    var feedsWindows: Bool { stem != nil }

    /// Computes output rows × columns of `conv(source)` (after `select`) into `window`, channel planes `plane`
    /// floats apart, rows `columns.count` apart. Conv workers with different `worker` indices may call it at once.
    func produce(
        rows: Range<Int>, columns: Range<Int>, into window: UnsafeMutablePointer<Float>, plane: Int, worker: Int = 0
    ) {
        guard let stem else { preconditionFailure("produce needs the stem kernel (feedsWindows)") }
        for (r, oy) in rows.enumerated() {
            AVX2Kernels.stemRun(
                input: source, inC: p.inC, inH: p.inH, inW: p.inW, inPlane: p.inH * p.inW, oy: oy,
                x0: columns.lowerBound, n: columns.count, packed: stem.packed, bias: bias, outC: p.outC,
                output: window + r * columns.count, outPlane: plane, clamp: stem.clamp,
                scratch: stem.scratch + worker * stem.scratchCount)
        }
    }

    /// Writes every output of `conv(source)` with the dense kernel: a dense recompute, or a fed block that runs the
    /// whole image (after `select`).
    func computeAll(scratch: SkipScratch) {
        Kernels.conv2d(
            p, input: source, weight: weight, bias: bias, output: y, scratch: scratch.dense, activation: activation,
            kernels: kernels, packed: packed)
    }

    /// A fed block computed `positions` of this layer's outputs in `seconds` this frame (after `select`).
    func recordProduced(seconds: Double, positions: Int, dense: Bool) {
        let perPosition = macsPerOutput
        stats.seconds += seconds
        account(
            active: positions, executed: positions * perPosition, gate: gateOps, dense: dense,
            selected: active.count * perPosition)
    }

    func addTime(_ duration: Duration) { stats.seconds += duration.seconds }

    private var macsPerOutput: Int { p.macs / (p.outH * p.outW) }

    /// The layer ran inside its block (`SkipBlock`): `computed` positions recomputed in `seconds`, of which
    /// `selected` changed; `breakEven`: the block's measured density of changed input positions above which it
    /// runs the whole image (nil until measured).
    func recordBlock(seconds: Double, computed: Int, selected: Int, dense: Bool, breakEven: Double?) {
        let perPosition = macsPerOutput
        stats.seconds += seconds
        stats.breakEven = breakEven ?? 0
        account(
            active: computed, executed: computed * perPosition, gate: 0, dense: dense, selected: selected * perPosition)
    }

    /// The outputs whose window holds a position of `dirty`.
    func footprint(of dirty: SpatialMask, into out: SpatialMask) {
        if dirty.isFull { out.fill() } else { map.footprint(of: dirty, into: out) }
    }

    /// Depthwise rows run 16-wide vectors anyway; a GEMM pays K + C_out per extra position.
    private var mergeGap: Int { p.isDepthwise ? 32 : 8 }

    /// `selected`: MACs of the positions the gate chose (what the sparse path computes, whichever path ran).
    private func account(active: Int, executed: Int, gate: Int, dense: Bool, selected: Int? = nil) {
        stats.record(
            active: active, executed: executed, gate: gate, dense: dense, selected: selected, threshold: threshold)
    }
}
