#if canImport(Darwin)
    import Darwin
#else
    import Glibc
#endif

// A vector exp for activations applied in conv epilogues (SiLU), where a libm call per element would cost as much
// as the convolution. Range reduction x = n·ln2 + r with |r| ≤ ln2/2 and a degree-6 polynomial for e^r (the
// approach of Cephes and of onnxruntime's MLAS); relative error about 2 ulp over the float range.

extension Kernels {
    @inline(__always)
    static func exp16(_ x: F16) -> F16 {
        // Only operations LLVM keeps in vector registers: the stdlib's generic SIMD rounding, clamping and
        // float→int conversion go lane by lane and made this 20× slower.
        let clamped = vmin(vmax(x, F16(repeating: -87.3)), F16(repeating: 88.37))
        // Adding 1.5·2²³ rounds to the nearest integer and leaves it in the low mantissa bits.
        let shifter = F16(repeating: 12_582_912)
        let shifted = clamped * F16(repeating: 1.442_695_04) + shifter
        let n = shifted - shifter
        // ln2 split in two so that n·ln2 is exact to float precision.
        var r = clamped - n * F16(repeating: 0.693_359_375)
        r = r + n * F16(repeating: 2.121_944_4e-4)
        var p = F16(repeating: 1.987_569_1e-4)
        p = p * r + F16(repeating: 1.398_199_9e-3)
        p = p * r + F16(repeating: 8.333_452e-3)
        p = p * r + F16(repeating: 4.166_579_6e-2)
        p = p * r + F16(repeating: 0.166_666_66)
        p = p * r + F16(repeating: 0.5)
        p = p * r * r + r + F16(repeating: 1)
        let integer = unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- 0x4B40_0000
        return p * unsafeBitCast((integer &+ 127) &<< 23, to: F16.self)
    }

    /// `x·σ(x)`.
    @inline(__always)
    static func silu16(_ x: F16) -> F16 {
        x / (F16(repeating: 1) + exp16(-x))
    }

    @inline(__always)
    static func silu(_ x: Float) -> Float {
        x / (1 + expf(-x))
    }
}

extension Kernels {
    /// `x·max(0, min(1, x/6 + ½))`.
    @inline(__always)
    static func hardSwish16(_ x: F16) -> F16 {
        x * vmin(vmax(x * F16(repeating: 1.0 / 6.0) + F16(repeating: 0.5), F16(repeating: 0)), F16(repeating: 1))
    }

    @inline(__always)
    static func hardSwish(_ x: Float) -> Float {
        x * Swift.min(Swift.max(x * (1.0 / 6.0) + 0.5, 0), 1)
    }
}
