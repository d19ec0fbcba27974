// Residual statistics the skip gates read: per position, a reduction over channels of x − x_ref.

import SkipNetAVX2

extension Kernels {
    public enum ResidualStatistic: Sendable {
        /// Σ_c (x − x_ref)²
        case sumOfSquares
        /// Σ_c |x − x_ref|
        case sumOfAbs
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
        }
    }

    /// `mask[i] = 1` where `max_c |x − ref| > threshold` over `channels` planes `plane` apart, else 0: the
    /// input-select gate in one pass, with no statistic stored (it is only compared, then dropped). On `.avx2`
    /// `AVX2Kernels.markExceeding` does all but the last n mod 8 positions (same comparisons, 8 lanes).
    @inline(never)
    static func markExceeding(
        x: UnsafePointer<Float>, ref: UnsafePointer<Float>, channels: Int, plane: Int, count n: Int, threshold: Float,
        into mask: UnsafeMutablePointer<UInt8>, kernels: KernelSet = .portable
    ) {
        var i = 0
        let limit = F16(repeating: threshold)
        if kernels == .avx2 {
            i = AVX2Kernels.markExceeding(
                x: x, ref: ref, channels: channels, plane: plane, count: n, threshold: threshold, into: mask)
        }
        while i + 16 <= n {
            var m = F16(repeating: 0)
            for c in 0..<channels {
                let d = load16(x + c * plane + i) - load16(ref + c * plane + i)
                m = vmax(m, vmax(d, -d))
            }
            let over = F16(repeating: 1).replacing(with: 0, where: m .<= limit)
            for l in 0..<16 { mask[i + l] = UInt8(over[l]) }
            i += 16
        }
        while i < n {
            var m: Float = 0
            for c in 0..<channels { m = Swift.max(m, abs(x[c * plane + i] - ref[c * plane + i])) }
            mask[i] = m > threshold ? 1 : 0
            i += 1
        }
    }
}
