// The input-select gate's one pass over a frame and its reference (the first conv's 1536×1152×3 floats twice): 8-lane
// compares, and the 0/1 bytes narrowed from the compare mask in registers rather than stored lane by lane.

extension AVX2Kernels {
    /// `mask[i] = 1` where `max_c |x − ref| > threshold` over `channels` planes `plane` apart, else 0, for the
    /// first `n` rounded down to 8 positions; returns how many it did (the caller finishes the tail).
    public static func markExceeding(
        x: UnsafePointer<Float>, ref: UnsafePointer<Float>, channels: Int, plane: Int, count n: Int, threshold: Float,
        into mask: UnsafeMutablePointer<UInt8>
    ) -> Int {
        let limit = F8(repeating: threshold)
        var i = 0
        while i + 8 <= n {
            var m = F8()
            for c in 0..<channels {
                let d = load8(x + c * plane + i) - load8(ref + c * plane + i)
                let a = d.replacing(with: -d, where: d .< 0)
                m = m.replacing(with: a, where: m .< a)
            }
            // 32-bit 0/1 lanes narrowed to bytes (vpack), one 8-byte store.
            let over = SIMD8<UInt8>(truncatingIfNeeded: SIMD8<Int32>().replacing(with: 1, where: m .> limit))
            UnsafeMutableRawPointer(mask + i).storeBytes(of: over, as: SIMD8<UInt8>.self)
            i += 8
        }
        return i
    }
}
