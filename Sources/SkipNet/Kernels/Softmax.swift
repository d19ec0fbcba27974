// Softmax over one axis of a tensor viewed as [outer, axis, inner].

#if canImport(Darwin)
    import Darwin
#else
    import Glibc
#endif

extension Kernels {
    /// `output[o, a, i] = exp(x[o, a, i] − max_a) / Σ_a exp(x[o, a, i] − max_a)`. In place is allowed.
    /// Opset < 13 Softmax (coerced to 2D at `axis`) is `outer = Π dims[..<axis]`, `axisSize = Π dims[axis...]`,
    /// `inner = 1`; opset ≥ 13 is the plain single axis.
    public static func softmax(
        input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, outer: Int, axisSize: Int, inner: Int
    ) {
        for o in 0..<outer {
            let base = o * axisSize * inner
            var i = 0
            // Sixteen positions of the inner axis at a time (e.g. YOLO's DFL, softmax over channels).
            while i + 16 <= inner {
                let x = input + base + i
                let y = output + base + i
                var m = F16(repeating: -.infinity)
                for a in 0..<axisSize { m = vmax(m, load16(x + a * inner)) }
                var s = F16(repeating: 0)
                for a in 0..<axisSize {
                    let e = exp16(load16(x + a * inner) - m)
                    store16(e, y + a * inner)
                    s += e
                }
                let r = F16(repeating: 1) / s
                for a in 0..<axisSize { store16(load16(y + a * inner) * r, y + a * inner) }
                i += 16
            }
            while i < inner {
                softmaxLine(input + base + i, output + base + i, count: axisSize, stride: inner)
                i += 1
            }
        }
    }

    /// One softmax over `count` values `stride` apart; contiguous lines (the last axis) use the vector exp.
    private static func softmaxLine(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int, stride: Int
    ) {
        var m = -Float.infinity
        for a in 0..<count { m = Swift.max(m, x[a * stride]) }
        var s: Float = 0
        var a = 0
        if stride == 1 {
            var vs = F16(repeating: 0)
            let vm = F16(repeating: m)
            while a + 16 <= count {
                let e = exp16(load16(x + a) - vm)
                store16(e, y + a)
                vs += e
                a += 16
            }
            s = vs.sum()
        }
        while a < count {
            let e = expf(x[a * stride] - m)
            y[a * stride] = e
            s += e
            a += 1
        }
        let r = 1 / s
        for a in 0..<count { y[a * stride] *= r }
    }
}
