/// How the skip path shares one frame's recompute of a layer or block among the executor's threads: contiguous
/// parts of about equal work, each written by one worker, so no output is written by two.
enum ParallelWork {
    /// Below this many MACs a recompute runs on one worker: handing it out (~10–20 µs) would cost more than the
    /// second core saves.
    static let minimumMACs = 4_000_000

    /// The indices of `weights` cut into at most `parts` contiguous ranges of about equal weight, none empty: a
    /// range ends where the running sum first reaches its share of the total. One range when there is nothing to
    /// share.
    static func ranges(weights: [Double], parts: Int) -> [Range<Int>] {
        let total = weights.reduce(0, +)
        guard parts > 1, weights.count > 1, total > 0 else { return [0..<weights.count] }
        var ranges: [Range<Int>] = []
        var (start, sum) = (0, 0.0)
        for (i, weight) in weights.enumerated() {
            sum += weight
            if ranges.count < parts - 1 && sum * Double(parts) >= total * Double(ranges.count + 1) {
                ranges.append(start..<i + 1)
                start = i + 1
            }
        }
        if start < weights.count { ranges.append(start..<weights.count) }
        return ranges
    }
}
