import SkipNetAVX2

#if canImport(Darwin)
    import Darwin
#else
    import Glibc
#endif

// A depthwise 3×3 conv fused with the pointwise conv that feeds it and/or the pointwise conv that reads it
// (MobileNet's inverted residual block), run band by band of output rows. The expanded tensors are the widest of
// the network (e.g. 96 × 288 × 384 = 42 MB) and would otherwise be written by one GEMM and read back by the
// depthwise loop from memory; per band they stay in cache. The arithmetic is the unfused kernels' own.

extension Kernels {
    /// One conv of a fused block: geometry, weights, bias and the activation applied in its epilogue.
    struct ConvStage {
        var params: Conv2DParams
        var weight: UnsafePointer<Float>
        var bias: UnsafePointer<Float>?
        var activation: Activation
        /// The weights packed by `AVX2Kernels.packPointwise` (a pointwise stage run by the AVX2 kernels), else nil.
        var packed: UnsafePointer<Float>? = nil
    }

    /// True when `fusedDepthwise` can run `depthwise` (3×3, dilation 1, equal strides 1 or 2) with these pointwise
    /// neighbours (1×1, one group, matching channels and size).
    static func canFuseDepthwise(expand: Conv2DParams?, depthwise d: Conv2DParams, project: Conv2DParams?) -> Bool {
        guard d.isDepthwise, d.kH == 3, d.kW == 3, d.dilationH == 1, d.dilationW == 1, d.strideH == d.strideW,
            d.strideH == 1 || d.strideH == 2
        else { return false }
        if expand == nil && project == nil { return false }
        if let e = expand {
            guard e.isPointwise, e.groups == 1, e.outC == d.inC, e.outH == d.inH, e.outW == d.inW else { return false }
        }
        if let q = project {
            guard q.isPointwise, q.groups == 1, q.inC == d.outC, q.inH == d.outH, q.inW == d.outW else { return false }
        }
        return true
    }

    /// Output rows per band: about 1 MB of intermediate rows (expanded input rows plus depthwise output rows).
    static func fusedBandRows(expand: Conv2DParams?, depthwise d: Conv2DParams, project: Conv2DParams?) -> Int {
        let inRow = expand == nil ? 0 : d.inC * d.inW
        let outRow = project == nil ? 0 : d.outC * d.outW
        var rows = 1
        while rows < d.outH && (rows * d.strideH + 3) * inRow + (rows + 1) * outRow <= 1 << 18 { rows += 1 }
        return rows
    }

    /// Scratch floats `fusedDepthwise` needs: one band of expanded rows and depthwise output rows per worker (at
    /// most `workers`).
    static func fusedDepthwiseScratchCount(
        expand: Conv2DParams?, depthwise d: Conv2DParams, project: Conv2DParams?, workers: Int = maxConvWorkers
    ) -> Int {
        let rows = fusedBandRows(expand: expand, depthwise: d, project: project)
        let bands = (d.outH + rows - 1) / rows
        let inRows = expandedPlaneRows(bandRows: rows, stride: d.strideH)
        let perWorker =
            (expand == nil ? 0 : d.inC * inRows * expandedRowFloats(d)) + (project == nil ? 0 : d.outC * rows * d.outW)
        return Swift.min(Swift.max(1, workers), bands) * perWorker
    }

    /// Rows of one channel plane of a worker's expanded rows: four bands' worth, so the rows the next band shares
    /// with the last one move back to the top of the plane once every few bands (when the plane is full) rather
    /// than every band.
    static func expandedPlaneRows(bandRows: Int, stride: Int) -> Int { 4 * ((bandRows - 1) * stride + 3) }

    /// Floats one expanded row takes in the band buffer: `inW`, or the split row of `ParitySplit` at stride 2.
    static func expandedRowFloats(_ d: Conv2DParams) -> Int {
        d.strideH == 2 ? Swift.max(d.inW, AVX2Kernels.splitRowCount(outW: d.outW)) : d.inW
    }

    /// A stride-2 block on the AVX2 kernels whose expand GEMM stores each expanded row split by column parity
    /// (`AVX2Kernels.pointwiseSplit`), the layout the depthwise conv reads (`AVX2Kernels.depthwise3x3Split`): the
    /// split is made as tiles are stored instead of by a pass over the block's widest rows. Needs the usual MobileNet
    /// geometry: one column of left padding, even `inW = 2·outW`, and epilogues the AVX2 kernels apply.
    struct ParitySplit {
        let packed: UnsafePointer<Float>
        let expandClamp: AVX2Kernels.Clamp
        let depthwiseClamp: AVX2Kernels.Clamp

        init?(expand: ConvStage?, depthwise dw: ConvStage, kernels: KernelSet) {
            let d = dw.params
            guard kernels == .avx2, d.strideH == 2, d.padLeft == 1, d.inW == 2 * d.outW, d.outW >= 8,
                let e = expand, let packed = e.packed, let ec = e.activation.clamp, let dc = dw.activation.clamp
            else { return nil }
            (self.packed, expandClamp, depthwiseClamp) = (packed, ec, dc)
        }
    }

    /// `project(depthwise(expand(input)))` over `n` images, each stage optional except the depthwise conv (check
    /// `canFuseDepthwise` first). Bands of output rows are split across `workers` (default: the conv workers); a worker keeps the
    /// expanded rows its next band shares with the last one (1 row at stride 2, 2 at stride 1), so every expanded
    /// row is computed once per worker. With `kernels` `.avx2`, pointwise stages that carry `packed` weights and the
    /// depthwise conv run the AVX2 kernels (the caller has checked the CPU).
    static func fusedDepthwise(
        expand: ConvStage?, depthwise dw: ConvStage, project: ConvStage?, n: Int, input: UnsafePointer<Float>,
        output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, kernels: KernelSet = .portable,
        workers: Int = convWorkers
    ) {
        let d = dw.params
        let s = d.strideH
        let rowsPerBand = fusedBandRows(expand: expand?.params, depthwise: d, project: project?.params)
        let bands = (d.outH + rowsPerBand - 1) / rowsPerBand
        let planeRows = expandedPlaneRows(bandRows: rowsPerBand, stride: s)
        let inW = d.inW
        let outW = d.outW
        let inPlane = d.inH * inW
        let outPlane = d.outH * outW
        let split = ParitySplit(expand: expand, depthwise: dw, kernels: kernels)
        let pitch = split == nil ? inW : AVX2Kernels.splitRowCount(outW: outW)
        let expandedPlane = planeRows * pitch
        let expandedFloats = expand == nil ? 0 : d.inC * expandedPlane
        let perWorker = expandedFloats + (project == nil ? 0 : d.outC * rowsPerBand * outW)
        let inImage = (expand?.params.inC ?? d.inC) * inPlane
        let outImage = (project?.params.outC ?? d.outC) * outPlane
        for b in 0..<n {
            let x = input + b * inImage
            let y = output + b * outImage
            parallelRanges(bands, workers: workers) { worker, lo, hi in
                let expanded = scratch + worker * perWorker
                let dwOut = expanded + expandedFloats
                if split != nil {
                    // E[0] of every row slot is padding the split GEMM never writes (held rows move whole).
                    for r in 0..<(d.inC * planeRows) { expanded[r * pitch] = 0 }
                }
                // Input rows [heldLo, heldHi) of the image are in `expanded`, row heldLo at row slot `heldAt`.
                var (heldLo, heldHi, heldAt) = (0, 0, 0)
                for band in lo..<hi {
                    let o0 = band * rowsPerBand
                    let rows = Swift.min(d.outH, o0 + rowsPerBand) - o0
                    var q = d
                    q.outH = rows
                    var dwIn = x
                    var dwInPlane = inPlane
                    if let e = expand {
                        let needLo = Swift.max(0, o0 * s - d.padTop)
                        let needHi = Swift.min(d.inH, (o0 + rows - 1) * s - d.padTop + 3)
                        var (kept, at) = (0, 0)
                        if needLo >= heldLo && needLo < heldHi {
                            kept = Swift.min(heldHi, needHi) - needLo
                            at = heldAt + needLo - heldLo
                            if at + needHi - needLo > planeRows {
                                for c in 0..<d.inC {
                                    let plane = expanded + c * expandedPlane
                                    memmove(plane, plane + at * pitch, kept * pitch * MemoryLayout<Float>.stride)
                                }
                                at = 0
                            }
                        }
                        let needLoRow = expanded + at * pitch
                        let first = needLo + kept
                        if let split, first < needHi {
                            // One GEMM per row: a 16-column tile must not straddle two rows' parities.
                            for r in first..<needHi {
                                let row = needLoRow + (r - needLo) * pitch
                                AVX2Kernels.pointwiseSplit(
                                    m: d.inC, n: inW, k: e.params.inC, packed: split.packed, b: x + r * inW,
                                    ldb: inPlane, even: row + outW + 1, odd: row + 1, ldc: expandedPlane,
                                    bias: e.bias, clamp: split.expandClamp)
                            }
                        } else if first < needHi {
                            let count = (needHi - first) * inW
                            let dst = needLoRow + kept * pitch
                            pointwise(
                                e, m: d.inC, n: count, b: x + first * inW, ldb: inPlane, c: dst, ldc: expandedPlane,
                                kernels: kernels)
                        }
                        (heldLo, heldHi, heldAt) = (needLo, needHi, at)
                        dwIn = UnsafePointer(needLoRow)
                        dwInPlane = expandedPlane
                        // Local input row of local output row r: r·s − padTop', i.e. the image row minus needLo.
                        q.inH = needHi - needLo
                        q.padTop = d.padTop + needLo - o0 * s
                    } else {
                        // The whole input image: output row o0 + r reads image row (o0 + r)·s − padTop.
                        q.padTop = d.padTop - o0 * s
                    }
                    let dst = project == nil ? y + o0 * outW : dwOut
                    let planes = (input: dwInPlane, output: project == nil ? outPlane : rowsPerBand * outW)
                    if let split {
                        AVX2Kernels.depthwise3x3Split(
                            inH: q.inH, outH: rows, outW: outW, padTop: q.padTop, input: dwIn, inPlane: dwInPlane,
                            weight: dw.weight, bias: dw.bias, output: dst, outPlane: planes.output,
                            channels: 0..<d.outC, clamp: split.depthwiseClamp)
                    } else {
                        depthwiseConv2d(
                            q, input: dwIn, weight: dw.weight, bias: dw.bias, output: dst, activation: dw.activation,
                            channels: 0..<d.outC, planes: planes, kernels: kernels)
                    }
                    if let pr = project {
                        let count = rows * outW
                        let yb = y + o0 * outW
                        pointwise(
                            pr, m: pr.params.outC, n: count, b: dwOut, ldb: rowsPerBand * outW, c: yb, ldc: outPlane,
                            kernels: kernels)
                    }
                }
            }
        }
    }

    /// One pointwise stage of a fused block on `n` columns: `c = act(W·b + bias)`.
    private static func pointwise(
        _ stage: ConvStage, m: Int, n: Int, b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>,
        ldc: Int, kernels: KernelSet
    ) {
        let k = stage.params.inC
        pointwiseGEMM(
            m: m, n: n, k: k, weight: stage.weight, lda: k, packed: stage.packed, bias: stage.bias,
            activation: stage.activation, b: b, ldb: ldb, c: c, ldc: ldc, kernels: kernels)
    }
}
