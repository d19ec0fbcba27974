import COpenBLAS
import Dispatch
import SkipNetAVX2

#if canImport(Darwin)
    import Darwin
#else
    import Glibc
#endif

// Conv (2D, NCHW): 1×1 stride-1 unpadded as one sgemm, depthwise as a direct SIMD loop, everything else via im2col +
// one sgemm per group. Bias and a cheap activation are applied in one epilogue pass per output channel.

/// Geometry of a 2D convolution (one image; the batch is the `n` argument of `Kernels.conv2d`).
/// Weights are ONNX layout `[outC, inC/groups, kH, kW]`.
public struct Conv2DParams: Sendable, Equatable {
    public var inC: Int, inH: Int, inW: Int
    public var outC: Int, outH: Int, outW: Int
    public var kH: Int, kW: Int
    public var strideH: Int, strideW: Int
    public var padTop: Int, padLeft: Int, padBottom: Int, padRight: Int
    public var dilationH: Int, dilationW: Int
    public var groups: Int

    public init(
        inC: Int, inH: Int, inW: Int, outC: Int, outH: Int, outW: Int, kH: Int, kW: Int,
        strideH: Int = 1, strideW: Int = 1, padTop: Int = 0, padLeft: Int = 0, padBottom: Int = 0, padRight: Int = 0,
        dilationH: Int = 1, dilationW: Int = 1, groups: Int = 1
    ) {
        self.inC = inC
        self.inH = inH
        self.inW = inW
        self.outC = outC
        self.outH = outH
        self.outW = outW
        self.kH = kH
        self.kW = kW
        self.strideH = strideH
        self.strideW = strideW
        self.padTop = padTop
        self.padLeft = padLeft
        self.padBottom = padBottom
        self.padRight = padRight
        self.dilationH = dilationH
        self.dilationW = dilationW
        self.groups = groups
    }

    /// ONNX output size for one spatial axis (explicit pads, floor).
    public static func outputSize(input: Int, kernel: Int, stride: Int, padBegin: Int, padEnd: Int, dilation: Int)
        -> Int
    {
        (input + padBegin + padEnd - ((kernel - 1) * dilation + 1)) / stride + 1
    }

    /// True for 1×1, stride 1, no padding: the conv is a plain GEMM on the input.
    public var isPointwise: Bool {
        kH == 1 && kW == 1 && strideH == 1 && strideW == 1 && padTop == 0 && padLeft == 0 && padBottom == 0
            && padRight == 0 && outH == inH && outW == inW
    }

    /// True for depthwise convs (groups == inC == outC), run by a direct loop.
    public var isDepthwise: Bool { groups == inC && groups == outC && groups > 1 }

    /// Dense MACs for one image: `outH·outW·(inC/groups)·outC·kH·kW`.
    public var macs: Int { outH * outW * (inC / groups) * outC * kH * kW }
}

extension Kernels {
    /// Upper bound on conv workers (online CPUs, at most 8); `conv2dScratchCount` reserves one im2col band per
    /// worker that can be busy.
    static let maxConvWorkers = Swift.max(1, Swift.min(8, sysconf(Int32(_SC_NPROCESSORS_ONLN))))

    /// Workers the conv kernels split their work across (the `setThreads` value, capped).
    static var convWorkers: Int { Swift.max(1, Swift.min(maxConvWorkers, workerCount)) }

    /// Scratch floats `conv2d` needs for `p` (0 for pointwise and depthwise convs): one band of one group's im2col
    /// matrix `[(inC/groups)·kH·kW] × [bandRows·outW]` per possible worker, reused across bands, groups and images.
    public static func conv2dScratchCount(_ p: Conv2DParams) -> Int {
        if p.isPointwise || p.isDepthwise { return 0 }
        let band = im2colBandRows(p)
        let bands = (p.outH + band - 1) / band
        return Swift.min(maxConvWorkers, bands) * im2colBandFloats(p)
    }

    /// Runs `body(worker, lo, hi)` over `count` items split into `workers` contiguous ranges, in parallel when
    /// `workers > 1` (OpenBLAS is held at 1 thread meanwhile so the workers' sgemm calls don't oversubscribe).
    static func parallelRanges(
        _ count: Int, workers: Int, _ body: (_ worker: Int, _ lo: Int, _ hi: Int) -> Void
    ) {
        let w = Swift.max(1, Swift.min(workers, count))
        if w == 1 {
            body(0, 0, count)
            return
        }
        let blasThreads = openblas_get_num_threads()
        if blasThreads != 1 { openblas_set_num_threads(1) }
        withoutActuallyEscaping(body) { body in
            let box = UncheckedSendableBox(body)
            DispatchQueue.concurrentPerform(iterations: w) { i in
                box.value(i, count * i / w, count * (i + 1) / w)
            }
        }
        if blasThreads != 1 { openblas_set_num_threads(blasThreads) }
    }

    /// 2D convolution over `n` images: `output[n, outC, outH, outW] = act(conv(input[n, inC, inH, inW], weight) + bias)`.
    /// - weight: `[outC, inC/groups, kH, kW]`; bias: `[outC]` or nil.
    /// - scratch: at least `conv2dScratchCount(p)` floats (may be nil when that is 0).
    /// - kernels: `.avx2` (the caller has checked the CPU) runs depthwise 3×3 convs with the AVX2 kernel, a first
    ///   conv on an image with `AVX2Kernels.stemRun` (see `stemClamp`), and the GEMM of one-group convs too
    ///   (pointwise, or on im2col rows) when `packed` holds their weights packed by `AVX2Kernels.packPointwise`.
    /// Work is split over column blocks / row bands / channels across `setThreads` workers (each sgemm single-threaded
    /// then); bias and activation are applied per block right after its sgemm, while the block is in cache.
    public static func conv2d(
        _ p: Conv2DParams, n: Int = 1, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>?,
        activation: Activation = .none, kernels: KernelSet = .portable, packed: UnsafePointer<Float>? = nil
    ) {
        precondition(p.groups >= 1 && p.inC % p.groups == 0 && p.outC % p.groups == 0, "conv2d: bad groups")
        let inSize = p.inC * p.inH * p.inW
        let outPlane = p.outH * p.outW
        let outSize = p.outC * outPlane
        let workers = convWorkers
        if p.isDepthwise {
            for b in 0..<n {
                parallelRanges(p.outC, workers: workers) { _, lo, hi in
                    depthwiseConv2d(
                        p, input: input + b * inSize, weight: weight, bias: bias, output: output + b * outSize,
                        activation: activation, channels: lo..<hi, kernels: kernels)
                }
            }
            return
        }
        if let clamp = stemClamp(p, activation: activation, kernels: kernels) {
            stemConv2d(
                p, n: n, input: input, weight: weight, bias: bias, output: output, clamp: clamp, workers: workers)
            return
        }
        let cinG = p.inC / p.groups
        let coutG = p.outC / p.groups
        let kDim = cinG * p.kH * p.kW
        if p.isPointwise {
            // Column blocks of about 512 KB (input block + output block, about L2) so the epilogue finds them in cache.
            let nb = Swift.min(outPlane, Swift.max(256, ((128 * 1024) / (cinG + coutG)) & ~63))
            let blocks = (outPlane + nb - 1) / nb
            for b in 0..<n {
                let x = input + b * inSize
                let y = output + b * outSize
                parallelRanges(blocks, workers: workers) { _, lo, hi in
                    for blk in lo..<hi {
                        let j0 = blk * nb
                        let cols = Swift.min(nb, outPlane - j0)
                        for g in 0..<p.groups {
                            pointwiseGEMM(
                                m: coutG, n: cols, k: cinG, weight: weight + g * coutG * kDim, lda: kDim,
                                packed: p.groups == 1 ? packed : nil, bias: bias.map { $0 + g * coutG },
                                activation: activation, b: x + g * cinG * outPlane + j0, ldb: outPlane,
                                c: y + g * coutG * outPlane + j0, ldc: outPlane, kernels: kernels)
                        }
                    }
                }
            }
            return
        }
        guard let colBase = scratch else { preconditionFailure("conv2d: scratch required") }
        let band = im2colBandRows(p)
        let bands = (p.outH + band - 1) / band
        let bandFloats = im2colBandFloats(p)
        for b in 0..<n {
            let x = input + b * inSize
            let y = output + b * outSize
            parallelRanges(bands, workers: workers) { worker, lo, hi in
                let col = colBase + worker * bandFloats
                for bi in lo..<hi {
                    let oy0 = bi * band
                    let rows = Swift.min(band, p.outH - oy0)
                    let cols = rows * p.outW
                    for g in 0..<p.groups {
                        let yg = y + g * coutG * outPlane + oy0 * p.outW
                        im2col(
                            p, input: x + g * cinG * p.inH * p.inW, channels: cinG, col: col, oyStart: oy0,
                            oyCount: rows)
                        pointwiseGEMM(
                            m: coutG, n: cols, k: kDim, weight: weight + g * coutG * kDim, lda: kDim,
                            packed: p.groups == 1 ? packed : nil, bias: bias.map { $0 + g * coutG },
                            activation: activation, b: col, ldb: cols, c: yg, ldc: outPlane, kernels: kernels)
                    }
                }
            }
        }
    }

    /// Output rows per im2col band: im2col block plus output block about 256 KB, at least 512 columns and one row.
    static func im2colBandRows(_ p: Conv2DParams) -> Int {
        let kDim = (p.inC / p.groups) * p.kH * p.kW
        let coutG = p.outC / p.groups
        let cols = Swift.max(512, (1 << 16) / Swift.max(1, kDim + coutG))
        let rows = cols / Swift.max(1, p.outW)
        return Swift.max(1, Swift.min(p.outH, rows))
    }

    /// Floats of one im2col band (one worker's scratch).
    static func im2colBandFloats(_ p: Conv2DParams) -> Int {
        (p.inC / p.groups) * p.kH * p.kW * im2colBandRows(p) * p.outW
    }

    /// `dst[j] = src[j·stride]` for `j < count`. Stride 2 (first convs on full-size frames) copies 8 at a time from
    /// the even lanes of 16 consecutive inputs while those lie within `src[0 ..< available]`.
    @inline(__always)
    static func copyStrided(
        _ src: UnsafePointer<Float>, stride: Int, into dst: UnsafeMutablePointer<Float>, count: Int, available: Int
    ) {
        var j = 0
        while stride == 2 && j + 8 <= count && 2 * j + 16 <= available {
            let v = UnsafeRawPointer(src + 2 * j).loadUnaligned(as: SIMD16<Float>.self)
            UnsafeMutableRawPointer(dst + j).storeBytes(of: v.evenHalf, as: SIMD8<Float>.self)
            j += 8
        }
        while j < count {
            dst[j] = src[j * stride]
            j += 1
        }
    }

    /// im2col of output rows `oyStart ..< oyStart + oyCount` for one group of `channels` input planes:
    /// `col[(c·kH + ky)·kW + kx][(oy − oyStart)·outW + ox]`, zero outside the image.
    static func im2col(
        _ p: Conv2DParams, input: UnsafePointer<Float>, channels: Int, col: UnsafeMutablePointer<Float>, oyStart: Int,
        oyCount: Int
    ) {
        let outPlane = oyCount * p.outW
        var row = col
        for c in 0..<channels {
            let plane = input + c * p.inH * p.inW
            for ky in 0..<p.kH {
                for kx in 0..<p.kW {
                    let offX = kx * p.dilationW - p.padLeft
                    // Valid ox: 0 <= ox*sW + offX < inW.
                    let oxLo = offX >= 0 ? 0 : Swift.min(p.outW, (-offX + p.strideW - 1) / p.strideW)
                    let oxHi = Swift.max(oxLo, Swift.min(p.outW, (p.inW - offX + p.strideW - 1) / p.strideW))
                    for oy in oyStart..<(oyStart + oyCount) {
                        let dst = row + (oy - oyStart) * p.outW
                        let iy = oy * p.strideH + ky * p.dilationH - p.padTop
                        if iy < 0 || iy >= p.inH {
                            dst.update(repeating: 0, count: p.outW)
                            continue
                        }
                        let src = plane + iy * p.inW
                        if oxLo > 0 { dst.update(repeating: 0, count: oxLo) }
                        if p.strideW == 1 {
                            (dst + oxLo).update(from: src + oxLo + offX, count: oxHi - oxLo)
                        } else {
                            let ix = oxLo * p.strideW + offX
                            copyStrided(
                                src + ix, stride: p.strideW, into: dst + oxLo, count: oxHi - oxLo, available: p.inW - ix
                            )
                        }
                        if oxHi < p.outW { (dst + oxHi).update(repeating: 0, count: p.outW - oxHi) }
                    }
                    row += outPlane
                }
            }
        }
    }

    /// Depthwise conv for one image (groups == inC == outC, one filter per channel), single-threaded SIMD loop:
    /// the AVX2 kernel when `kernels` allows and it takes the conv, else the portable 3×3 kernels, else a general
    /// loop whose interior outputs accumulate all taps in registers (16 lanes) and whose borders run scalar.
    /// `planes`: as for `depthwise3x3`.
    static func depthwiseConv2d(
        _ p: Conv2DParams, input: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, activation: Activation, channels: Range<Int>,
        planes: (input: Int, output: Int)? = nil, kernels: KernelSet = .portable
    ) {
        if depthwiseAVX2(
            p, input: input, weight: weight, bias: bias, output: output, activation: activation, channels: channels,
            planes: planes, kernels: kernels)
        {
            return
        }
        if p.kH == 3 && p.kW == 3 && p.dilationH == 1 && p.dilationW == 1
            && ((p.strideH == 1 && p.strideW == 1) || (p.strideH == 2 && p.strideW == 2))
        {
            if p.strideH == 2 && p.outW >= 16 {
                depthwise3x3s2(
                    p, input: input, weight: weight, bias: bias, output: output, activation: activation,
                    channels: channels, planes: planes)
                return
            }
            depthwise3x3(
                p, input: input, weight: weight, bias: bias, output: output, activation: activation, channels: channels,
                planes: planes)
            return
        }
        let inPlane = planes?.input ?? p.inH * p.inW
        let outPlane = planes?.output ?? p.outH * p.outW
        let kH = p.kH
        let kW = p.kW
        let sW = p.strideW
        let dW = p.dilationW
        // Interior ox: every kx tap is inside [0, inW).
        let ixSpan = (kW - 1) * dW
        var intLo = p.padLeft > 0 ? (p.padLeft + sW - 1) / sW : 0
        var intHi = p.inW - 1 - ixSpan + p.padLeft >= 0 ? (p.inW - 1 - ixSpan + p.padLeft) / sW + 1 : 0
        intHi = Swift.min(intHi, p.outW)
        intLo = Swift.min(intLo, intHi)
        // Taps of one row (at most 32 handled in registers-friendly loop; larger kernels go scalar).
        withUnsafeTemporaryAllocation(of: Int.self, capacity: kH) { validKy in
            for c in channels {
                let x = input + c * inPlane
                let w = weight + c * kH * kW
                let y = output + c * outPlane
                let b = bias?[c] ?? 0
                for oy in 0..<p.outH {
                    let yRow = y + oy * p.outW
                    // Rows of taps inside the image.
                    var nky = 0
                    for ky in 0..<kH {
                        let iy = oy * p.strideH + ky * p.dilationH - p.padTop
                        if iy >= 0 && iy < p.inH {
                            validKy[nky] = ky
                            nky += 1
                        }
                    }
                    let iy0 = oy * p.strideH - p.padTop
                    // Scalar border (and whole row when no interior).
                    @inline(__always) func scalarAt(_ ox: Int) {
                        var acc = b
                        let ix0 = ox * sW - p.padLeft
                        for t in 0..<nky {
                            let ky = validKy[t]
                            let xr = x + (iy0 + ky * p.dilationH) * p.inW
                            let wr = w + ky * kW
                            for kx in 0..<kW {
                                let ix = ix0 + kx * dW
                                if ix >= 0 && ix < p.inW { acc += wr[kx] * xr[ix] }
                            }
                        }
                        yRow[ox] = activate(acc, activation)
                    }
                    for ox in 0..<intLo { scalarAt(ox) }
                    var ox = intLo
                    let vb = F16(repeating: b)
                    if sW == 1 {
                        while ox + 16 <= intHi {
                            var acc = vb
                            let ix0 = ox - p.padLeft
                            for t in 0..<nky {
                                let ky = validKy[t]
                                let xr = x + (iy0 + ky * p.dilationH) * p.inW + ix0
                                let wr = w + ky * kW
                                for kx in 0..<kW {
                                    acc += F16(repeating: wr[kx]) * load16(xr + kx * dW)
                                }
                            }
                            store16(activate16(acc, activation), yRow + ox)
                            ox += 16
                        }
                    } else if sW == 2 {
                        while ox + 16 <= intHi {
                            var acc = vb
                            let ix0 = ox * 2 - p.padLeft
                            for t in 0..<nky {
                                let ky = validKy[t]
                                let xr = x + (iy0 + ky * p.dilationH) * p.inW + ix0
                                let wr = w + ky * kW
                                for kx in 0..<kW {
                                    // 32 consecutive inputs, keep the even lanes. Needs ix0+kx*dW+31 < inW: check.
                                    let base = xr + kx * dW
                                    let v: F16
                                    if ix0 + kx * dW + 31 < p.inW {
                                        v = UnsafeRawPointer(base).loadUnaligned(as: SIMD32<Float>.self).evenHalf
                                    } else {
                                        var t16 = F16()
                                        for l in 0..<16 { t16[l] = base[2 * l] }
                                        v = t16
                                    }
                                    acc += F16(repeating: wr[kx]) * v
                                }
                            }
                            store16(activate16(acc, activation), yRow + ox)
                            ox += 16
                        }
                    }
                    while ox < p.outW {
                        scalarAt(ox)
                        ox += 1
                    }
                }
            }
        }
    }

    /// Depthwise 3×3, stride 2, dilation 1. Each input row is split once (zero padded) into its even and odd
    /// columns `E[j] = row[2j − padL]`, `O[j] = row[2j + 1 − padL]`; a ring of 3 split rows serves the output rows
    /// (consecutive output rows share one input row), and taps are then contiguous loads: `E[ox]`, `O[ox]`, `E[ox+1]`.
    /// `planes`: as for `depthwise3x3`.
    static func depthwise3x3s2(
        _ p: Conv2DParams, input: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, activation: Activation, channels: Range<Int>,
        planes: (input: Int, output: Int)? = nil
    ) {
        let inPlane = planes?.input ?? p.inH * p.inW
        let outPlane = planes?.output ?? p.outH * p.outW
        let inW = p.inW
        let outW = p.outW
        let padL = p.padLeft
        // One ring slot holds E then O, each outW + 1 values plus room for a 16-wide store past the end.
        let half = outW + 32
        let slot = 2 * half
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 4 * slot) { buf in
            let base = buf.baseAddress!
            base.initialize(repeating: 0, count: 4 * slot)
            let zeroE = UnsafePointer(base + 3 * slot)
            let zeroO = zeroE + half
            for c in channels {
                let x = input + c * inPlane
                let w = weight + c * 9
                let y = output + c * outPlane
                let b = bias?[c] ?? 0
                let (w0, w1, w2, w3, w4, w5, w6, w7, w8) = (w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8])
                let v0 = F4(repeating: w0), v1 = F4(repeating: w1), v2 = F4(repeating: w2)
                let v3 = F4(repeating: w3), v4 = F4(repeating: w4), v5 = F4(repeating: w5)
                let v6 = F4(repeating: w6), v7 = F4(repeating: w7), v8 = F4(repeating: w8)
                let vb = F4(repeating: b)
                var slotRow = (-1000, -1000, -1000)
                // Splits input row iy into ring slot iy mod 3 (once); returns (E, O) of that row.
                func split(_ iy: Int) -> (UnsafePointer<Float>, UnsafePointer<Float>) {
                    if iy < 0 || iy >= p.inH { return (zeroE, zeroO) }
                    let k = iy % 3
                    let e = base + k * slot
                    let o = e + half
                    let cached = k == 0 ? slotRow.0 : (k == 1 ? slotRow.1 : slotRow.2)
                    if cached != iy {
                        let r = x + iy * inW
                        // E[j] = r[2j − padL], O[j] = r[2j + 1 − padL], j in 0 ... outW (zero outside the row).
                        var j = 0
                        while j <= outW {
                            let i = 2 * j - padL
                            if i >= 0 && i + 32 <= inW {
                                let v = UnsafeRawPointer(r + i).loadUnaligned(as: SIMD32<Float>.self)
                                store16(v.evenHalf, e + j)
                                store16(v.oddHalf, o + j)
                                j += 16
                            } else {
                                e[j] = i >= 0 && i < inW ? r[i] : 0
                                o[j] = i + 1 >= 0 && i + 1 < inW ? r[i + 1] : 0
                                j += 1
                            }
                        }
                        if k == 0 { slotRow.0 = iy } else if k == 1 { slotRow.1 = iy } else { slotRow.2 = iy }
                    }
                    return (UnsafePointer(e), UnsafePointer(o))
                }
                for oy in 0..<p.outH {
                    let iy = oy * 2 - p.padTop
                    let (e0, o0) = split(iy)
                    let (e1, o1) = split(iy + 1)
                    let (e2, o2) = split(iy + 2)
                    let yRow = y + oy * outW
                    var ox = 0
                    // 4 lanes per vector: nine 16-lane weight vectors would not fit SSE's 16 registers.
                    while ox + 4 <= outW {
                        var acc = vb + v0 * load4(e0 + ox) + v1 * load4(o0 + ox) + v2 * load4(e0 + ox + 1)
                        acc += v3 * load4(e1 + ox) + v4 * load4(o1 + ox) + v5 * load4(e1 + ox + 1)
                        acc += v6 * load4(e2 + ox) + v7 * load4(o2 + ox) + v8 * load4(e2 + ox + 1)
                        store4(activate4(acc, activation), yRow + ox)
                        ox += 4
                    }
                    while ox < outW {
                        var acc = b + w0 * e0[ox] + w1 * o0[ox] + w2 * e0[ox + 1]
                        acc += w3 * e1[ox] + w4 * o1[ox] + w5 * e1[ox + 1]
                        acc += w6 * e2[ox] + w7 * o2[ox] + w8 * e2[ox + 1]
                        yRow[ox] = activate(acc, activation)
                        ox += 1
                    }
                }
            }
        }
    }

    /// Depthwise 3×3, stride 1 or 2, dilation 1: weights held in registers, rows outside the image read a zero row,
    /// 16 outputs per step with all 9 taps accumulated in registers; the ragged end of the interior is covered by one
    /// overlapping (recomputed) vector step, so only the 1–2 border columns run scalar.
    /// `runs`: only these output positions (the skip executor's active set; other outputs of the same rows may be
    /// rewritten with the value computed from the same input); nil: every output. `planes`: channel plane strides
    /// of input and output when they are not `inH·inW` and `outH·outW` (a band of rows inside a larger buffer).
    static func depthwise3x3(
        _ p: Conv2DParams, input: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, activation: Activation, channels: Range<Int>,
        runs: UnsafeBufferPointer<MaskRun>? = nil, planes: (input: Int, output: Int)? = nil
    ) {
        let inPlane = planes?.input ?? p.inH * p.inW
        let outPlane = planes?.output ?? p.outH * p.outW
        let s = p.strideW
        let inW = p.inW
        let padL = p.padLeft
        // Interior ox: taps ox·s − padL + {0,1,2} all inside [0, inW).
        var intLo = padL > 0 ? (padL + s - 1) / s : 0
        var intHi = inW - 3 + padL >= 0 ? (inW - 3 + padL) / s + 1 : 0
        intHi = Swift.min(intHi, p.outW)
        intLo = Swift.min(intLo, intHi)
        let vectorOK = intHi - intLo >= 16
        withUnsafeTemporaryAllocation(of: Float.self, capacity: inW + 32) { zbuf in
            let zero = zbuf.baseAddress!
            zero.initialize(repeating: 0, count: inW + 32)
            for c in channels {
                let x = input + c * inPlane
                let w = weight + c * 9
                let y = output + c * outPlane
                let b = bias?[c] ?? 0
                let (w0, w1, w2, w3, w4, w5, w6, w7, w8) = (w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8])
                let v0 = F16(repeating: w0), v1 = F16(repeating: w1), v2 = F16(repeating: w2)
                let v3 = F16(repeating: w3), v4 = F16(repeating: w4), v5 = F16(repeating: w5)
                let v6 = F16(repeating: w6), v7 = F16(repeating: w7), v8 = F16(repeating: w8)
                let vb = F16(repeating: b)
                let u = (
                    F4(repeating: w0), F4(repeating: w1), F4(repeating: w2), F4(repeating: w3), F4(repeating: w4),
                    F4(repeating: w5), F4(repeating: w6), F4(repeating: w7), F4(repeating: w8), b: F4(repeating: b)
                )
                let segments = runs?.count ?? p.outH
                for segment in 0..<segments {
                    let (oy, x0, x1) =
                        runs.map { ($0[segment].y, $0[segment].x0, $0[segment].x1) } ?? (segment, 0, p.outW)
                    let iy = oy * p.strideH - p.padTop
                    let r0: UnsafePointer<Float> = iy >= 0 && iy < p.inH ? x + iy * inW : UnsafePointer(zero)
                    let r1: UnsafePointer<Float> =
                        iy + 1 >= 0 && iy + 1 < p.inH ? x + (iy + 1) * inW : UnsafePointer(zero)
                    let r2: UnsafePointer<Float> =
                        iy + 2 >= 0 && iy + 2 < p.inH ? x + (iy + 2) * inW : UnsafePointer(zero)
                    let yRow = y + oy * p.outW
                    @inline(__always) func tap(_ r: UnsafePointer<Float>, _ ix: Int) -> Float {
                        ix >= 0 && ix < inW ? r[ix] : 0
                    }
                    @inline(__always) func scalarAt(_ ox: Int) {
                        let i = ox * s - padL
                        var acc = b
                        acc += w0 * tap(r0, i) + w1 * tap(r0, i + 1) + w2 * tap(r0, i + 2)
                        acc += w3 * tap(r1, i) + w4 * tap(r1, i + 1) + w5 * tap(r1, i + 2)
                        acc += w6 * tap(r2, i) + w7 * tap(r2, i + 1) + w8 * tap(r2, i + 2)
                        yRow[ox] = activate(acc, activation)
                    }
                    @inline(__always) func vectorAt(_ ox: Int) {
                        let i = ox * s - padL
                        var acc: F16
                        if s == 1 {
                            // 4 lanes at a time: nine 16-lane weight vectors would not fit SSE's 16 registers.
                            for k in stride(from: 0, to: 16, by: 4) {
                                let j = i + k
                                var a = u.b + u.0 * load4(r0 + j) + u.1 * load4(r0 + j + 1) + u.2 * load4(r0 + j + 2)
                                a += u.3 * load4(r1 + j) + u.4 * load4(r1 + j + 1) + u.5 * load4(r1 + j + 2)
                                a += u.6 * load4(r2 + j) + u.7 * load4(r2 + j + 1) + u.8 * load4(r2 + j + 2)
                                store4(activate4(a, activation), yRow + ox + k)
                            }
                            return
                        } else {
                            // a = in[i ..< i+32]: even lanes tap 0, odd lanes tap 1; odd lanes of in[i+1 ..< i+33]
                            // are tap 2. Reads stay below i + 33 <= inW.
                            let a0 = UnsafeRawPointer(r0 + i).loadUnaligned(as: SIMD32<Float>.self)
                            let b0 = UnsafeRawPointer(r0 + i + 1).loadUnaligned(as: SIMD32<Float>.self)
                            let a1 = UnsafeRawPointer(r1 + i).loadUnaligned(as: SIMD32<Float>.self)
                            let b1 = UnsafeRawPointer(r1 + i + 1).loadUnaligned(as: SIMD32<Float>.self)
                            let a2 = UnsafeRawPointer(r2 + i).loadUnaligned(as: SIMD32<Float>.self)
                            let b2 = UnsafeRawPointer(r2 + i + 1).loadUnaligned(as: SIMD32<Float>.self)
                            acc = vb + v0 * a0.evenHalf + v1 * a0.oddHalf + v2 * b0.oddHalf
                            acc += v3 * a1.evenHalf + v4 * a1.oddHalf + v5 * b1.oddHalf
                            acc += v6 * a2.evenHalf + v7 * a2.oddHalf + v8 * b2.oddHalf
                        }
                        store16(activate16(acc, activation), yRow + ox)
                    }
                    let (lo, hi) = (Swift.min(Swift.max(intLo, x0), x1), Swift.max(Swift.min(intHi, x1), x0))
                    for ox in x0..<lo { scalarAt(ox) }
                    if vectorOK && lo < hi {
                        // Whole vectors even for a short run: the extra lanes rewrite neighbours of the same row
                        // with the value they already have (same input), which is cheaper than scalar taps.
                        var ox = Swift.min(lo, intHi - 16)
                        while ox < hi {
                            vectorAt(Swift.min(ox, intHi - 16))
                            ox += 16
                        }
                    } else {
                        for ox in lo..<hi { scalarAt(ox) }
                    }
                    for ox in Swift.max(hi, lo)..<x1 { scalarAt(ox) }
                }
            }
        }
    }
}

/// Carries a closure over raw pointers into Dispatch workers; callers guarantee the workers touch disjoint memory.
private struct UncheckedSendableBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
