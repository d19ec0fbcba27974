// Kernels compiled for AVX2 + FMA (`-target-cpu haswell`, see Package.swift), beside SkipNet's portable ones.
//
// SwiftPM builds every target for baseline x86-64 (SSE2, no FMA: `addingProduct` becomes a libm call per lane),
// and Swift has no per-function target attribute, so the 8-lane FMA loops live in a module of their own. Nothing
// here may run before the caller has checked the CPU: SkipNet calls these only when `/proc/cpuinfo` lists avx2 and
// fma, and falls back to its portable kernels otherwise. Functions take raw pointers and plain numbers only (this
// module knows no SkipNet type), and none is `@inlinable`, so no AVX2 body is inlined into baseline code.

#if canImport(Darwin)
    import Darwin
#else
    import Glibc
#endif

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
    /// (slope 1, lo 0), LeakyReLU with alpha ≤ 1 (slope alpha) and Clip (slope 1, lo, hi); or, with `gate`, the
    /// self-gating activations SiLU and HardSwish (`x·g(x)`, bounds unused).
    public struct Clamp: Sendable, Equatable {
        public enum Gate: Sendable, Equatable {
            case none, silu, hardSwish
        }

        public var lo: Float
        public var hi: Float
        public var slope: Float
        public var gate: Gate

        public init(lo: Float = -.infinity, hi: Float = .infinity, slope: Float = 1) {
            self.lo = lo
            self.hi = hi
            self.slope = slope
            gate = .none
        }

        public init(gate: Gate) {
            self.init()
            self.gate = gate
        }

        @inline(__always)
        func apply(_ v: Float) -> Float {
            switch gate {
            case .none: return Swift.min(Swift.max(v, slope * v, lo), hi)
            case .silu: return v / (1 + Float(exp(-Double(v))))
            case .hardSwish: return v * Swift.min(Swift.max(v / 6 + 0.5, 0), 1)
            }
        }
    }
}

/// A `Clamp` as broadcast vectors, made once per call outside the loops.
struct ClampVector {
    let lo: F8, hi: F8, slope: F8
    let leaky: Bool
    let gate: AVX2Kernels.Clamp.Gate

    init(_ c: AVX2Kernels.Clamp) {
        lo = F8(repeating: c.lo)
        hi = F8(repeating: c.hi)
        slope = F8(repeating: c.slope)
        leaky = c.slope != 1
        gate = c.gate
    }
}

@_transparent
func clamp8(_ v: F8, _ c: ClampVector) -> F8 {
    switch c.gate {
    case .none: break
    case .silu: return silu8(v)
    case .hardSwish: return hardSwish8(v)
    }
    var y = v
    if c.leaky {
        let s = v * c.slope
        y = y.replacing(with: s, where: y .< s)
    }
    y = y.replacing(with: c.lo, where: y .< c.lo)
    return y.replacing(with: c.hi, where: c.hi .< y)
}

/// e^x for the SiLU epilogue: x = n·ln2 + r, |r| ≤ ln2/2, a degree-6 polynomial for e^r, 2ⁿ built in the exponent
/// bits; only operations LLVM keeps in vector registers (SkipNet's portable `exp16` is the same function).
@inline(__always)
func exp8(_ x: F8) -> F8 {
    var clamped = x.replacing(with: F8(repeating: -87.3), where: x .< F8(repeating: -87.3))
    clamped = clamped.replacing(with: F8(repeating: 88.37), where: F8(repeating: 88.37) .< clamped)
    let shifter = F8(repeating: 12_582_912)
    let shifted = clamped * F8(repeating: 1.442_695_04) + shifter
    let n = shifted - shifter
    var r = clamped - n * F8(repeating: 0.693_359_375)
    r = r + n * F8(repeating: 2.121_944_4e-4)
    var p = F8(repeating: 1.987_569_1e-4)
    p = p * r + F8(repeating: 1.398_199_9e-3)
    p = p * r + F8(repeating: 8.333_452e-3)
    p = p * r + F8(repeating: 4.166_579_6e-2)
    p = p * r + F8(repeating: 0.166_666_66)
    p = p * r + F8(repeating: 0.5)
    p = p * r * r + r + F8(repeating: 1)
    let integer = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000
    return p * unsafeBitCast((integer &+ 127) &<< 23, to: F8.self)
}

/// `x·σ(x)`.
@inline(__always)
func silu8(_ x: F8) -> F8 { x / (F8(repeating: 1) + exp8(-x)) }

/// `x·max(0, min(1, x/6 + ½))`.
@inline(__always)
func hardSwish8(_ x: F8) -> F8 {
    var g = x * F8(repeating: 1.0 / 6.0) + F8(repeating: 0.5)
    g = g.replacing(with: F8(repeating: 0), where: g .< F8(repeating: 0))
    g = g.replacing(with: F8(repeating: 1), where: F8(repeating: 1) .< g)
    return x * g
}
