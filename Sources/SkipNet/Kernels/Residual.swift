// Residual statistics the skip gates read: per position, a reduction over channels of x − x_ref.

extension Kernels {
    public enum ResidualStatistic: Sendable {
        /// Σ_c (x − x_ref)²
        case sumOfSquares
        /// Σ_c |x − x_ref|
        case sumOfAbs
        /// max_c |x − x_ref|
        case maxAbs
    }

    /// Folds one channel's `x − ref` over `n` positions into `stat` (explicit SIMD: the three pointers may alias as
    /// far as the compiler knows, so it would not vectorise the plain loop).
    @inline(__always)
    static func accumulate(
        _ kind: ResidualStatistic, x: UnsafePointer<Float>, ref: UnsafePointer<Float>,
        into stat: UnsafeMutablePointer<Float>, count n: Int
    ) {
        var i = 0
        switch kind {
        case .sumOfSquares:
            while i + 16 <= n {
                let d = load16(x + i) - load16(ref + i)
                store16(load16(stat + i) + d * d, stat + i)
                i += 16
            }
            while i < n {
                let d = x[i] - ref[i]
                stat[i] += d * d
                i += 1
            }
        case .sumOfAbs:
            while i + 16 <= n {
                let d = load16(x + i) - load16(ref + i)
                store16(load16(stat + i) + vmax(d, -d), stat + i)
                i += 16
            }
            while i < n {
                stat[i] += abs(x[i] - ref[i])
                i += 1
            }
        case .maxAbs:
            while i + 16 <= n {
                let d = load16(x + i) - load16(ref + i)
                store16(vmax(load16(stat + i), vmax(d, -d)), stat + i)
                i += 16
            }
            while i < n {
                stat[i] = Swift.max(stat[i], abs(x[i] - ref[i]))
                i += 1
            }
        }
    }
}
