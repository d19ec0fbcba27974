/// How the skip path shares one frame's recompute of a layer or block among the executor's threads: contiguous
/// parts of about equal work, each written by one worker, so no output is written by two.
enum ParallelWork {
    /// Below this many MACs a recompute runs on one worker: handing it out (~10–20 µs) would cost more than the
    /// second core saves.
    static let minimumMACs = 4_000_000

    /// `runs` cut into at most `parts` contiguous ranges of about equal positions (none empty).
    static func ranges(of runs: [MaskRun], parts: Int) -> [Range<Int>] {
        let total = runs.positions
        guard parts > 1, runs.count > 1, total > 0 else { return [0..<runs.count] }
        var ranges: [Range<Int>] = []
        var (start, sum) = (0, 0)
        for (i, run) in runs.enumerated() {
            sum += run.length
            if ranges.count < parts - 1 && sum * parts >= total * (ranges.count + 1) {
                ranges.append(start..<i + 1)
                start = i + 1
            }
        }
        if start < runs.count { ranges.append(start..<runs.count) }
        return ranges
    }
}
