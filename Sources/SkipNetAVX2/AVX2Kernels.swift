// Kernels compiled for AVX2 + FMA (`-target-cpu haswell`, see Package.swift), beside SkipNet's portable ones.
//
// SwiftPM builds every target for baseline x86-64 (SSE2, no FMA: `addingProduct` becomes a libm call per lane),
// and Swift has no per-function target attribute, so the 8-lane FMA loops live in a module of their own. Nothing
// here may run before the caller has checked the CPU: SkipNet calls these only when `/proc/cpuinfo` lists avx2 and
// fma, and falls back to its portable kernels otherwise. Functions take raw pointers and plain numbers only (this
// module knows no SkipNet type), and none is `@inlinable`, so no AVX2 body is inlined into baseline code.

typealias F8 = SIMD8<Float>

@inline(__always)
func load8(_ p: UnsafePointer<Float>) -> F8 {
    UnsafeRawPointer(p).loadUnaligned(as: F8.self)
}

@inline(__always)
func store8(_ v: F8, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: F8.self)
}

/// Namespace of the AVX2 + FMA kernels (NCHW float32, as SkipNet's).
public enum AVX2Kernels {
    /// A conv epilogue: `y = min(max(x + bias, slope·(x + bias), lo), hi)`. Covers none (slope 1, ±∞), ReLU
    /// (slope 1, lo 0), LeakyReLU with alpha ≤ 1 (slope alpha) and Clip (slope 1, lo, hi).
    public struct Clamp: Sendable, Equatable {
        public var lo: Float
        public var hi: Float
        public var slope: Float

        public init(lo: Float = -.infinity, hi: Float = .infinity, slope: Float = 1) {
            self.lo = lo
            self.hi = hi
            self.slope = slope
        }

        @inline(__always)
        func apply(_ v: Float) -> Float {
            Swift.min(Swift.max(v, slope * v, lo), hi)
        }
    }
}

/// A `Clamp` as broadcast vectors, made once per call outside the loops.
struct ClampVector {
    let lo: F8, hi: F8, slope: F8
    let leaky: Bool

    init(_ c: AVX2Kernels.Clamp) {
        lo = F8(repeating: c.lo)
        hi = F8(repeating: c.hi)
        slope = F8(repeating: c.slope)
        leaky = c.slope != 1
    }
}

@_transparent
func clamp8(_ v: F8, _ c: ClampVector) -> F8 {
    var y = v
    if c.leaky {
        let s = v * c.slope
        y = y.replacing(with: s, where: y .< s)
    }
    y = y.replacing(with: c.lo, where: y .< c.lo)
    return y.replacing(with: c.hi, where: c.hi .< y)
}
