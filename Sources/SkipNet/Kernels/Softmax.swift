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
            for i in 0..<inner {
                let x = input + base + i
                let y = output + base + i
                var m = -Float.infinity
                for a in 0..<axisSize { m = Swift.max(m, x[a * inner]) }
                var s: Float = 0
                for a in 0..<axisSize {
                    let e = expf(x[a * inner] - m)
                    y[a * inner] = e
                    s += e
                }
                let r = 1 / s
                for a in 0..<axisSize { y[a * inner] *= r }
            }
        }
    }
}
