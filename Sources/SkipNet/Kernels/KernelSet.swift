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
        }
    }
}
