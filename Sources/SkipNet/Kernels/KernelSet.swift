import SkipNetAVX2

/// Which build of the hot loops runs. SwiftPM compiles SkipNet for the architecture's baseline (on x86-64: SSE2,
/// no FMA); the AVX2 + FMA kernels (module SkipNetAVX2) run MobileNet blocks' pointwise and depthwise convs where
/// the CPU has them (CenterFace 1.3× faster overall). Results agree to float rounding (sums in another order).
public enum KernelSet: String, Sendable, CaseIterable {
    /// SkipNet's own kernels and OpenBLAS: any CPU.
    case portable
    /// SkipNetAVX2's kernels for depthwise 3×3 and small-K pointwise convs in fused blocks; the rest as `portable`.
    case avx2

    /// The fastest set this CPU runs: `avx2` when `/proc/cpuinfo` lists avx2 and fma.
    public static let detected: KernelSet = isSupported(.avx2, cpuFlags: BLASCoreType.cpuFlags()) ? .avx2 : .portable

    /// Whether a CPU with these `/proc/cpuinfo` flags can run `set`.
    public static func isSupported(_ set: KernelSet, cpuFlags flags: Set<Substring>) -> Bool {
        switch set {
        case .portable: return true
        case .avx2:
            #if arch(x86_64)
                return flags.contains("avx2") && flags.contains("fma")
            #else
                return false
            #endif
        }
    }
}

extension Kernels.Activation {
    /// The AVX2 kernels' epilogue for this activation; nil for a LeakyReLU steeper than 1 (max(x, αx) ≠ LeakyReLU).
    var clamp: AVX2Kernels.Clamp? {
        switch self {
        case .none: return AVX2Kernels.Clamp()
        case .relu: return AVX2Kernels.Clamp(lo: 0)
        case .leakyRelu(let alpha): return alpha <= 1 ? AVX2Kernels.Clamp(slope: alpha) : nil
        case .clip(let lo, let hi): return AVX2Kernels.Clamp(lo: lo, hi: hi)
        case .silu: return AVX2Kernels.Clamp(gate: .silu)
        case .hardSwish: return AVX2Kernels.Clamp(gate: .hardSwish)
        }
    }
}

extension Kernels {
    /// `c[m × n] = act(W[m × k] · b[k × n] + bias)`, B rows `ldb` apart, C rows `ldc` apart: the AVX2 kernel when
    /// `kernels` is `.avx2` and `packed` holds W packed by `AVX2Kernels.packPointwise`, else OpenBLAS and one
    /// bias/activation pass per row while it is in cache.
    static func pointwiseGEMM(
        m: Int, n: Int, k: Int, weight: UnsafePointer<Float>, lda: Int, packed: UnsafePointer<Float>?,
        bias: UnsafePointer<Float>?, activation: Activation, b: UnsafePointer<Float>, ldb: Int,
        c: UnsafeMutablePointer<Float>, ldc: Int, kernels: KernelSet
    ) {
        if kernels == .avx2, let packed, let clamp = activation.clamp {
            AVX2Kernels.pointwise(
                m: m, n: n, k: k, packed: packed, b: b, ldb: ldb, c: c, ldc: ldc, bias: bias, clamp: clamp)
            return
        }
        sgemm(
            transA: false, transB: false, m: m, n: n, k: k, alpha: 1, a: weight, lda: lda, b: b, ldb: ldb, beta: 0,
            c: c, ldc: ldc)
        if bias != nil || activation != .none {
            for i in 0..<m { biasActivate(c + i * ldc, count: n, bias: bias?[i] ?? 0, activation) }
        }
    }

    /// The epilogue of `AVX2Kernels.stemRun` for conv `p` when that kernel computes it — 3×3, stride 2, one pixel
    /// of top and left padding, dilation 1, one group, at most 4 input channels (a first conv on an image), on
    /// `.avx2` — else nil.
    static func stemClamp(_ p: Conv2DParams, activation: Activation, kernels: KernelSet) -> AVX2Kernels.Clamp? {
        guard kernels == .avx2, p.groups == 1, p.inC <= 4, p.kH == 3, p.kW == 3, p.strideH == 2, p.strideW == 2,
            p.dilationH == 1, p.dilationW == 1, p.padTop == 1, p.padLeft == 1
        else { return nil }
        return activation.clamp
    }

    /// Conv `p` over `n` whole images with `AVX2Kernels.stemRun`, output rows split across `workers`; `clamp`: from
    /// `stemClamp`. Faster than its im2col GEMM on CenterFace's first conv (~13 vs ~15 ms at 1536×1152, one thread).
    static func stemConv2d(
        _ p: Conv2DParams, n: Int, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, clamp: AVX2Kernels.Clamp, workers: Int
    ) {
        let (inPlane, outPlane) = (p.inH * p.inW, p.outH * p.outW)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: AVX2Kernels.stemPackedCount(inC: p.inC, outC: p.outC)) {
            let packed = $0.baseAddress!
            AVX2Kernels.packStem(weight, inC: p.inC, outC: p.outC, into: packed)
            for b in 0..<n {
                let (x, y) = (input + b * p.inC * inPlane, output + b * p.outC * outPlane)
                parallelRanges(p.outH, workers: workers) { _, lo, hi in
                    let count = AVX2Kernels.stemScratchCount(inC: p.inC, n: p.outW)
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: count) { scratch in
                        for oy in lo..<hi {
                            AVX2Kernels.stemRun(
                                input: x, inC: p.inC, inH: p.inH, inW: p.inW, inPlane: inPlane, oy: oy, x0: 0,
                                n: p.outW, packed: packed, bias: bias, outC: p.outC, output: y + oy * p.outW,
                                outPlane: outPlane, clamp: clamp, scratch: scratch.baseAddress!)
                        }
                    }
                }
            }
        }
    }

    /// Runs depthwise conv `p` over `channels` with the AVX2 kernel and returns true when `kernels` is `.avx2` and
    /// the kernel takes it (3×3, dilation 1, equal strides 1, or 2 with outW ≥ 8, an activation it can apply);
    /// false, having done nothing, otherwise. `planes`: as for `depthwise3x3`.
    static func depthwiseAVX2(
        _ p: Conv2DParams, input: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, activation: Activation, channels: Range<Int>,
        planes: (input: Int, output: Int)? = nil, kernels: KernelSet
    ) -> Bool {
        guard kernels == .avx2, let clamp = activation.clamp, p.isDepthwise, p.kH == 3, p.kW == 3,
            p.dilationH == 1, p.dilationW == 1, p.strideH == p.strideW,
            p.strideH == 1 || (p.strideH == 2 && p.outW >= 8)
        else { return false }
        AVX2Kernels.depthwise3x3(
            inH: p.inH, inW: p.inW, outH: p.outH, outW: p.outW, stride: p.strideH, padTop: p.padTop,
            padLeft: p.padLeft, input: input, inPlane: planes?.input ?? p.inH * p.inW, weight: weight, bias: bias,
            output: output, outPlane: planes?.output ?? p.outH * p.outW, channels: channels, clamp: clamp)
        return true
    }
}
