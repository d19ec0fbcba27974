/// A MobileNet block — depthwise 3×3 conv with its expand and/or project pointwise convs — whose convs are all
/// exact (propagating) skip layers, run as one fused computation (`Kernels.fusedDepthwise`) over the regions that
/// changed. Run conv by conv, the block would write its widest tensor (the expanded one: 96 × 576 × 768 floats at
/// the second block) wherever the input changed and read it back for the depthwise conv; fused, those rows stay in
/// cache, as in the dense executor.
///
/// Per frame the outputs to recompute are the depthwise footprint `A` of the input's changed positions. `A` is
/// covered by rectangles (``BlockCover``); each rectangle's input window (its halo included) is copied out, the
/// fused kernel runs on it with the image's padding only on the sides that touch the image border, and the result
/// is copied into the block's output. When the input changed everywhere, above the break-even density (measured
/// per block; until then the depthwise conv's setting), or when the rectangles would cost more MACs than the whole
/// image, the fused kernel runs over the whole image instead.
///
/// The intermediate tensors are never written: no conv of the block reads them again, since the block always
/// recomputes from its input, which every rectangle reads whole.
///
/// A block fed by the conv that writes its input (`SkipExecutor`'s `fed` steps: CenterFace's first conv and the
/// block after it) does not copy its windows from that conv's output: it computes them from the conv's input
/// (`SkipConvLayer.produce`), in cache, and the conv's output is written only when the block runs the whole image.
/// At the first conv's 32 × 576 × 768 floats, reading windows back from memory cost more than computing them.
final class SkipBlock {
    struct Member {
        let layer: SkipConvLayer
        let input: Int
        let output: Int
    }

    let members: [Member]
    private let stages: FusedBlockStages
    private let output: UnsafeMutablePointer<Float>
    private let kernels: KernelSet
    /// Per conv worker: copies of one rectangle's input window and output, and the fused kernel's scratch.
    private let buffers = (0..<Kernels.maxConvWorkers).map { _ in RectangleBuffers() }
    private var runs: [MaskRun] = []
    private let cover: BlockCover
    private var rects: [BlockCover.Rectangle] = []
    /// Whole-image fused run vs rectangles, per changed input position (both give the same values).
    private var timer: any PathChoice
    private let depthwise: SkipConvLayer
    private let depthwiseIndex: Int
    /// Σ the members' dense MACs.
    private let denseMACs: Int
    /// Conv workers the rectangles of a frame are shared among (the executor's threads, capped).
    private let workers: Int
    /// Frames whose rectangles ran on several workers (for tests).
    private(set) var parallelFrames = 0

    var input: Int { members[0].input }

    init(
        members: [Member], stages: FusedBlockStages, output: UnsafeMutablePointer<Float>, kernels: KernelSet,
        workers: Int = 1, paths: (any PathChoice)? = nil
    ) {
        self.workers = max(1, min(workers, Kernels.maxConvWorkers))
        self.members = members
        self.stages = stages
        self.output = output
        self.kernels = kernels
        depthwiseIndex = stages.expand == nil ? 0 : 1
        depthwise = members[depthwiseIndex].layer
        denseMACs = members.reduce(0) { $0 + $1.layer.p.macs }
        let p = members[0].layer.p
        timer = paths ?? PathTimer(positions: p.inH * p.inW)
        cover = BlockCover(
            depthwise: stages.depthwise.params, inputChannels: stages.expand?.params.inC ?? stages.depthwise.params.inC,
            expands: stages.expand != nil)
    }

    /// Members that can run as one fused computation: all exact (they read the current input, no reference).
    static func canFuse(_ layers: [SkipConvLayer]) -> Bool { layers.allSatisfy(\.propagates) && layers.count > 1 }

    /// The conv writing the block's input, when the block computes what it reads itself (set by `SkipExecutor`):
    /// the block runs after the conv's `select`, which leaves the conv's output unwritten.
    var producer: SkipConvLayer?

    /// Limits the outputs a frame recomputes (bounded context, set by `SkipExecutor`; not on keyframes).
    var outputLimit: ((SpatialMask) -> Void)?

    /// Runs the block for a frame whose input changed at `dirty`; sets the members' `changed` masks. `scratch`: for
    /// a producer's whole-image kernel; `inputWritten`: the producer wrote its output this frame (a keyframe).
    func frame(
        dirty: SpatialMask, changed: (Int) -> SpatialMask, keyframe: Bool, scratch: SkipScratch,
        inputWritten: Bool = false
    ) {
        let start = ContinuousClock.now
        begin(dirty: dirty, changed: changed, keyframe: keyframe)
        finish(producer: inputWritten ? nil : producer, scratch: scratch, since: start)
    }

    /// This frame's plan, from `begin` to `finish`: how the block runs, what it counts, and what a producer computed
    /// for it.
    private struct Plan {
        var dense = false
        var wholeImage = false
        var dirty = 0
        var active = 0
        var macs = (input: 0, output: 0, total: 0, dense: 0)
        var produced = (positions: 0, seconds: 0.0)
    }

    private var plan = Plan()

    /// Plans a frame whose input changed at `dirty` and sets the members' `changed` masks.
    private func begin(dirty: SpatialMask, changed: (Int) -> SpatialMask, keyframe: Bool) {
        plan = Plan(dirty: dirty.count)
        if stages.expand != nil { changed(members[0].output).assign(dirty) }
        let active = changed(members[depthwiseIndex].output)
        depthwise.footprint(of: dirty, into: active)
        if !keyframe { outputLimit?(active) }
        if stages.project != nil { changed(members[members.count - 1].output).assign(active) }
        plan.active = active.count
        rects.removeAll(keepingCapacity: true)
        if active.isEmpty { return }
        // Above the break-even density (measured; until then the depthwise conv's setting, where 1 or more forces
        // the sparse path) the whole-image kernel is the faster way to the same values: a dense frame.
        let breakEven = depthwise.breakEven
        plan.dense =
            keyframe
            || (breakEven < 1 && (dirty.isFull || timer.choosesDense(density: dirty.density, otherwise: breakEven)))
        // Rectangles whose windows would cost more MACs than the whole image (halos on a change that reaches most of
        // it, small images) are replaced by the whole image as their cover: still the sparse path's choice, at the
        // dense cost, which is what is counted.
        if !plan.dense {
            active.runs(into: &runs)
            cover.rectangles(covering: runs, cost: cost, into: &rects)
            plan.macs = rectangleMACs()
        }
        plan.wholeImage = plan.dense || plan.macs.total >= plan.macs.dense
        if plan.wholeImage { rects.removeAll(keepingCapacity: true) }
    }

    /// Runs the planned frame and records its time since `start` and counts (the producer's share is the producer's).
    private func finish(producer: SkipConvLayer?, scratch: SkipScratch, since start: ContinuousClock.Instant) {
        let d = stages.depthwise.params
        if plan.wholeImage {
            if let producer {
                let t = ContinuousClock.now
                producer.computeAll(scratch: scratch)
                plan.produced = (d.inH * d.inW, (ContinuousClock.now - t).seconds)
            }
            runFused(
                d, input: stages.input, output: output, rows: 0..<d.outH, columns: 0..<d.outW, buffers: buffers[0],
                workers: Kernels.convWorkers)
        } else {
            runRectangles(producer: producer)
        }
        let seconds = (ContinuousClock.now - start).seconds
        producer?.recordProduced(
            seconds: plan.produced.seconds, positions: plan.produced.positions, dense: plan.dense)
        if plan.active == 0 {
            record(seconds: 0, inputPositions: 0, outputPositions: 0, dirty: 0, active: 0, dense: false)
            return
        }
        // The timer compares whole paths, a producer's part included (not on keyframes, where the producer ran
        // alone); each member's time is its own.
        if plan.dense {
            if producer != nil || self.producer == nil { timer.recordDense(seconds) }
        } else {
            timer.recordSparse(seconds, positions: plan.dirty)
        }
        let (input, output) =
            plan.wholeImage ? (d.inH * d.inW, d.outH * d.outW) : (plan.macs.input, plan.macs.output)
        record(
            seconds: seconds - plan.produced.seconds, inputPositions: input, outputPositions: output,
            dirty: plan.dirty, active: plan.active, dense: plan.dense)
    }

    /// MACs per input-window position (the expand conv's, and a producer's) and per computed output position.
    private var cost: BlockCover.Cost {
        let d = stages.depthwise.params
        let expandMACs = stages.expand.map { $0.params.macs / max(1, d.inH * d.inW) } ?? 0
        let produced = producer.map { $0.p.macs / max(1, d.inH * d.inW) } ?? 0
        return BlockCover.Cost(
            input: expandMACs + produced, output: (denseMACs - expandMACs * d.inH * d.inW) / max(1, d.outH * d.outW))
    }

    /// Positions `rects` compute (input windows, outputs), their MACs, and the block's dense MACs (a producer's
    /// included in both: the whole image costs it its dense MACs).
    private func rectangleMACs() -> (input: Int, output: Int, total: Int, dense: Int) {
        let cost = cost
        var (input, output, total) = (0, 0, 0)
        for r in rects {
            input += r.windowPositions
            output += r.outputPositions
            total += cost.macs(r)
        }
        let dense = denseMACs + (producer?.p.macs ?? 0)
        return (input, output, total, dense)
    }

    /// Runs the planned rectangles. With several conv workers, the output rows are cut into one part per worker of
    /// about equal MACs and each rectangle is clipped to the parts it spans (a clipped rectangle reads its own
    /// window), so the workers write disjoint rows and every output gets the value one worker would give it.
    private func runRectangles(producer: SkipConvLayer?) {
        guard workers > 1, plan.macs.total >= ParallelWork.minimumMACs else {
            for rect in rects {
                let p = rectangle(rect, producer: producer, buffers: buffers[0], worker: 0, workers: workers)
                plan.produced = (plan.produced.positions + p.positions, plan.produced.seconds + p.seconds)
            }
            return
        }
        parallelFrames += 1
        let parts = partition(into: workers)
        var produced = [(positions: Int, seconds: Double)](repeating: (0, 0), count: parts.count)
        produced.withUnsafeMutableBufferPointer { out in
            Kernels.parallelRanges(parts.count, workers: workers) { _, lo, hi in
                for w in lo..<hi {
                    for rect in parts[w] {
                        let p = rectangle(rect, producer: producer, buffers: buffers[w], worker: w, workers: 1)
                        out[w] = (out[w].positions + p.positions, out[w].seconds + p.seconds)
                    }
                }
            }
        }
        // The producer's share of the block's wall time: its CPU time spread over the workers.
        for p in produced {
            plan.produced.positions += p.positions
            plan.produced.seconds += p.seconds / Double(parts.count)
        }
    }

    /// `rects` cut at output rows into at most `count` parts of about equal MACs.
    private func partition(into count: Int) -> [[BlockCover.Rectangle]] {
        let cost = cost
        var perRow = [Double](repeating: 0, count: stages.depthwise.params.outH)
        for r in rects {
            let share = Double(cost.macs(r)) / Double(r.rows.count)
            for y in r.rows { perRow[y] += share }
        }
        return ParallelWork.ranges(weights: perRow, parts: count).map { part in
            rects.compactMap { r in
                let rows = r.rows.clamped(to: part)
                if rows.isEmpty { return nil }
                return rows == r.rows ? r : cover.rectangle(rows: rows, columns: r.columns)
            }
        }
    }

    /// Recomputes output `rect.rows × rect.columns` from a copy of its input window (or the window computed by
    /// `producer`) with `buffers`, the fused kernel on `workers`; returns the positions the producer computed and
    /// the time it took. `worker`: the conv worker running it (the producer's scratch).
    private func rectangle(
        _ rect: BlockCover.Rectangle, producer: SkipConvLayer?, buffers: RectangleBuffers, worker: Int, workers: Int
    ) -> (positions: Int, seconds: Double) {
        let d = stages.depthwise.params
        let (rows, columns, iy, ix) = (rect.rows, rect.computed, rect.windowRows, rect.windowColumns)
        let cin = stages.expand?.params.inC ?? d.inC
        let cout = stages.project?.params.outC ?? d.outC
        let (inPlane, windowPlane) = (d.inH * d.inW, iy.count * ix.count)
        let x = buffers.window.reserve(cin * windowPlane)
        var produced = (positions: 0, seconds: 0.0)
        if let producer {
            let t = ContinuousClock.now
            producer.produce(rows: iy, columns: ix, into: x, plane: windowPlane, worker: worker)
            produced = (windowPlane, (ContinuousClock.now - t).seconds)
        } else {
            for c in 0..<cin {
                for (r, row) in iy.enumerated() {
                    (x + c * windowPlane + r * ix.count).update(
                        from: stages.input + c * inPlane + row * d.inW + ix.lowerBound, count: ix.count)
                }
            }
        }
        let (outPlane, resultPlane) = (d.outH * d.outW, rows.count * columns.count)
        let y = buffers.result.reserve(cout * resultPlane)
        runFused(
            d, input: x, output: y, rows: rows, columns: columns, window: (iy, ix), buffers: buffers, workers: workers)
        let (kept, skipped) = (rect.columns, rect.columns.lowerBound - columns.lowerBound)
        for c in 0..<cout {
            for (r, row) in rows.enumerated() {
                (output + c * outPlane + row * d.outW + kept.lowerBound).update(
                    from: y + c * resultPlane + r * columns.count + skipped, count: kept.count)
            }
        }
        return produced
    }

    /// The fused kernel on an input window `window` (image rows × columns; the whole image if nil) producing
    /// output `rows × columns`: the depthwise conv's padding becomes the offset of the output's first input
    /// row/column inside the window (zero where the window starts inside the image).
    private func runFused(
        _ d: Conv2DParams, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, rows: Range<Int>,
        columns: Range<Int>, window: (rows: Range<Int>, columns: Range<Int>)? = nil, buffers: RectangleBuffers,
        workers: Int
    ) {
        var (e, dw, q) = (stages.expand, stages.depthwise, stages.project)
        if let window {
            let (h, w) = (window.rows.count, window.columns.count)
            dw.params.inH = h
            dw.params.inW = w
            dw.params.outH = rows.count
            dw.params.outW = columns.count
            dw.params.padTop = d.padTop + window.rows.lowerBound - rows.lowerBound * d.strideH
            dw.params.padLeft = d.padLeft + window.columns.lowerBound - columns.lowerBound * d.strideW
            dw.params.padBottom = (rows.count - 1) * d.strideH + 3 - dw.params.padTop - h
            dw.params.padRight = (columns.count - 1) * d.strideW + 3 - dw.params.padLeft - w
            if e != nil {
                (e!.params.inH, e!.params.inW, e!.params.outH, e!.params.outW) = (h, w, h, w)
            }
            if q != nil {
                (q!.params.inH, q!.params.inW) = (rows.count, columns.count)
                (q!.params.outH, q!.params.outW) = (rows.count, columns.count)
            }
        }
        let need = Kernels.fusedDepthwiseScratchCount(
            expand: e?.params, depthwise: dw.params, project: q?.params, workers: workers)
        Kernels.fusedDepthwise(
            expand: e, depthwise: dw, project: q, n: 1, input: input, output: output,
            scratch: buffers.scratch.reserve(need), kernels: kernels, workers: workers)
    }

    /// Shares `seconds` among the members by MACs and records what each computed: the expand conv at the input
    /// positions its windows held, the others at the output positions; selected = the dirty / footprint positions.
    private func record(
        seconds: Double, inputPositions: Int, outputPositions: Int, dirty: Int, active: Int, dense: Bool
    ) {
        let total = Double(max(1, denseMACs))
        for m in members {
            let isExpand = m.layer !== depthwise && m.input == input
            m.layer.recordBlock(
                seconds: seconds * Double(m.layer.p.macs) / total,
                computed: isExpand ? inputPositions : outputPositions, selected: isExpand ? dirty : active,
                dense: dense, breakEven: timer.breakEven)
        }
    }
}

/// One conv worker's buffers for a block's rectangles (grown as needed).
final class RectangleBuffers {
    var window = ScratchBuffer()
    var result = ScratchBuffer()
    var scratch = ScratchBuffer()
}

/// A float buffer that grows to the largest size asked for and is then reused.
struct ScratchBuffer: ~Copyable {
    private var pointer = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private var capacity = 1

    mutating func reserve(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            pointer.deallocate()
            capacity = count
            pointer = .allocate(capacity: count)
        }
        return pointer
    }

    deinit { pointer.deallocate() }
}
