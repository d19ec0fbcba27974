/// A MobileNet block — depthwise 3×3 conv with its expand and/or project pointwise convs — whose convs are all
/// exact (propagating) skip layers, run as one fused computation (`Kernels.fusedDepthwise`) over the regions that
/// changed. Run conv by conv, the block would write its widest tensor (the expanded one: 96 × 576 × 768 floats at
/// the second block) wherever the input changed and read it back for the depthwise conv; fused, those rows stay in
/// cache, as in the dense executor.
///
/// Per frame the outputs to recompute are the depthwise footprint `A` of the input's changed positions. `A` is
/// covered by rectangles (bands of output rows × merged column runs); each rectangle's input window (its halo
/// included) is copied out, the fused kernel runs on it with the image's padding only on the sides that touch the
/// image border, and the result is copied into the block's output. When the input changed everywhere, above the
/// break-even density (measured per block; until then the depthwise conv's setting), or when the rectangles would
/// cost more MACs than the whole image, the fused kernel runs over the whole image instead.
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
    /// Copies of one rectangle's input window and output, and the fused kernel's scratch (grown as needed).
    private var window = ScratchBuffer()
    private var result = ScratchBuffer()
    private var scratch = ScratchBuffer()
    private var runs: [MaskRun] = []
    private var rects: [Rectangle] = []
    /// Whole-image fused run vs rectangles, per changed input position (both give the same values).
    private var timer: PathTimer
    private let depthwise: SkipConvLayer
    private let depthwiseIndex: Int

    var input: Int { members[0].input }

    init(members: [Member], stages: FusedBlockStages, output: UnsafeMutablePointer<Float>, kernels: KernelSet) {
        self.members = members
        self.stages = stages
        self.output = output
        self.kernels = kernels
        depthwiseIndex = stages.expand == nil ? 0 : 1
        depthwise = members[depthwiseIndex].layer
        let p = members[0].layer.p
        timer = PathTimer(positions: p.inH * p.inW)
    }

    /// Members that can run as one fused computation: all exact (they read the current input, no reference).
    static func canFuse(_ layers: [SkipConvLayer]) -> Bool { layers.allSatisfy(\.propagates) && layers.count > 1 }

    /// Output rows per band of rectangles: the expand conv's halo rows (2 at stride 1, 1 at stride 2) are
    /// recomputed once per band.
    private var bandRows: Int { stages.depthwise.params.strideH == 1 ? 8 : 4 }

    /// The conv writing the block's input, when the block computes what it reads itself (set by `SkipExecutor`):
    /// the block runs after the conv's `select`, which leaves the conv's output unwritten.
    var producer: SkipConvLayer?

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
            rectangles(covering: active)
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
                producer.produceAll(scratch: scratch)
                plan.produced = (d.inH * d.inW, (ContinuousClock.now - t).seconds)
            }
            runFused(d, input: stages.input, output: output, rows: 0..<d.outH, columns: 0..<d.outW)
        } else {
            for rect in rects { rectangle(rect, producer: producer) }
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

    /// An output rectangle and the input window it reads (clipped to the image). `computed`: the output columns
    /// the fused kernel produces, `columns` plus, at stride 1, the window's halo columns (see `rectangles`).
    struct Rectangle {
        var rows: Range<Int>
        var columns: Range<Int>
        var windowRows: Range<Int>
        var windowColumns: Range<Int>
        var computed: Range<Int>
    }

    /// Sets `rects` to rectangles covering `active`: per band of `bandRows` output rows, the merged column runs,
    /// each trimmed to the rows its runs reach (a changed tile's halo row reaching into the next band costs one row
    /// there, not a band).
    private func rectangles(covering active: SpatialMask) {
        let d = stages.depthwise.params
        let s = d.strideH
        // A "same" stride-1 conv computed over its whole window (halo columns included, discarded afterwards) has
        // inW = outW and one column of padding: the depthwise kernel's flat path, not its row ring, which costs
        // more than the two extra columns.
        let sameSize = s == 1 && d.padLeft == 1 && d.inW == d.outW
        // Likewise at stride 2 (one column of left padding, inW = 2·outW): computing one output column more on the
        // left gives the window the same geometry (its first column stands where the padding was), so the expand
        // GEMM stores its rows split by parity for the depthwise conv (`Kernels.ParitySplit`) instead of the
        // depthwise conv splitting every window row again. The extra output reads that column as zero: discarded.
        let halved = s == 2 && d.padLeft == 1 && d.inW == 2 * d.outW && stages.expand != nil
        active.runs(into: &runs)
        var first = 0
        while first < runs.count {
            let band = runs[first].y / bandRows
            var last = first
            while last < runs.count && runs[last].y / bandRows == band { last += 1 }
            for (columns, rows) in Self.columnRuns(runs[first..<last], width: d.outW) {
                let top = Swift.max(0, rows.lowerBound * s - d.padTop)
                let left = Swift.max(0, columns.lowerBound * s - d.padLeft)
                var window = left..<Swift.min(d.inW, (columns.upperBound - 1) * s - d.padLeft + 3)
                var computed = sameSize ? window : columns
                if halved {
                    computed = Swift.max(0, columns.lowerBound - 1)..<columns.upperBound
                    window = 2 * computed.lowerBound..<2 * computed.upperBound
                }
                rects.append(
                    Rectangle(
                        rows: rows, columns: columns,
                        windowRows: top..<Swift.min(d.inH, (rows.upperBound - 1) * s - d.padTop + 3),
                        windowColumns: window, computed: computed))
            }
            first = last
        }
    }

    /// Positions `rects` compute (input windows, outputs), their MACs, and the block's dense MACs (a producer's
    /// included in both).
    private func rectangleMACs() -> (input: Int, output: Int, total: Int, dense: Int) {
        let d = stages.depthwise.params
        var (input, output) = (0, 0)
        for r in rects {
            input += r.windowRows.count * r.windowColumns.count
            output += r.rows.count * r.computed.count
        }
        let expandMACs = stages.expand.map { $0.params.macs / max(1, d.inH * d.inW) } ?? 0
        let dense = members.reduce(0) { $0 + $1.layer.p.macs }
        let outputMACs = (dense - expandMACs * d.inH * d.inW) / max(1, d.outH * d.outW)
        // A producer computes the windows too: the whole image costs it its dense MACs.
        let produced = producer.map { (input * ($0.p.macs / max(1, d.inH * d.inW)), $0.p.macs) } ?? (0, 0)
        return (input, output, input * expandMACs + output * outputMACs + produced.0, dense + produced.1)
    }

    /// The union of a band's column runs, merged across gaps of up to 4 columns and widened to at least 8 (the
    /// AVX2 depthwise rows' vector width), within `0 ..< width`; with each, the rows its runs lie on.
    static func columnRuns(_ runs: ArraySlice<MaskRun>, width: Int) -> [(columns: Range<Int>, rows: Range<Int>)] {
        let sorted = runs.sorted { $0.x0 < $1.x0 }
        var merged: [(columns: Range<Int>, rows: Range<Int>)] = []
        for r in sorted {
            if let last = merged.last, r.x0 <= last.columns.upperBound + 4 {
                merged[merged.count - 1] = (
                    last.columns.lowerBound..<Swift.max(last.columns.upperBound, r.x1),
                    Swift.min(last.rows.lowerBound, r.y)..<Swift.max(last.rows.upperBound, r.y + 1)
                )
            } else {
                merged.append((r.x0..<r.x1, r.y..<r.y + 1))
            }
        }
        return merged.map { m in
            guard m.columns.count < 8 && width >= 8 else { return m }
            let lo = Swift.min(m.columns.lowerBound, width - 8)
            return (lo..<lo + 8, m.rows)
        }
    }

    /// Recomputes output `rect.rows × rect.columns` from a copy of its input window (or the window computed by
    /// `producer`).
    private func rectangle(_ rect: Rectangle, producer: SkipConvLayer?) {
        let d = stages.depthwise.params
        let (rows, columns, iy, ix) = (rect.rows, rect.computed, rect.windowRows, rect.windowColumns)
        let cin = stages.expand?.params.inC ?? d.inC
        let cout = stages.project?.params.outC ?? d.outC
        let (inPlane, windowPlane) = (d.inH * d.inW, iy.count * ix.count)
        let x = window.reserve(cin * windowPlane)
        if let producer {
            let t = ContinuousClock.now
            producer.produce(rows: iy, columns: ix, into: x, plane: windowPlane)
            plan.produced.positions += windowPlane
            plan.produced.seconds += (ContinuousClock.now - t).seconds
        } else {
            for c in 0..<cin {
                for (r, row) in iy.enumerated() {
                    (x + c * windowPlane + r * ix.count).update(
                        from: stages.input + c * inPlane + row * d.inW + ix.lowerBound, count: ix.count)
                }
            }
        }
        let (outPlane, resultPlane) = (d.outH * d.outW, rows.count * columns.count)
        let y = result.reserve(cout * resultPlane)
        runFused(d, input: x, output: y, rows: rows, columns: columns, window: (iy, ix))
        let (kept, skipped) = (rect.columns, rect.columns.lowerBound - columns.lowerBound)
        for c in 0..<cout {
            for (r, row) in rows.enumerated() {
                (output + c * outPlane + row * d.outW + kept.lowerBound).update(
                    from: y + c * resultPlane + r * columns.count + skipped, count: kept.count)
            }
        }
    }

    /// The fused kernel on an input window `window` (image rows × columns; the whole image if nil) producing
    /// output `rows × columns`: the depthwise conv's padding becomes the offset of the output's first input
    /// row/column inside the window (zero where the window starts inside the image).
    private func runFused(
        _ d: Conv2DParams, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, rows: Range<Int>,
        columns: Range<Int>, window: (rows: Range<Int>, columns: Range<Int>)? = nil
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
        let need = Kernels.fusedDepthwiseScratchCount(expand: e?.params, depthwise: dw.params, project: q?.params)
        Kernels.fusedDepthwise(
            expand: e, depthwise: dw, project: q, n: 1, input: input, output: output,
            scratch: scratch.reserve(need), kernels: kernels)
    }

    /// Shares `seconds` among the members by MACs and records what each computed: the expand conv at the input
    /// positions its windows held, the others at the output positions; selected = the dirty / footprint positions.
    private func record(
        seconds: Double, inputPositions: Int, outputPositions: Int, dirty: Int, active: Int, dense: Bool
    ) {
        let total = Double(max(1, members.reduce(0) { $0 + $1.layer.p.macs }))
        for m in members {
            let isExpand = m.layer !== depthwise && m.input == input
            m.layer.recordBlock(
                seconds: seconds * Double(m.layer.p.macs) / total,
                computed: isExpand ? inputPositions : outputPositions, selected: isExpand ? dirty : active,
                dense: dense, breakEven: timer.breakEven)
        }
    }
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
