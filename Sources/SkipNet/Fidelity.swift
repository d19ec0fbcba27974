// Fidelity of a skip-convolution run against the dense run of the same clip, as `skipd bench skip` prints it
// (docs/skip-convolutions.md §10). Sums are Double: millions of squared Float differences summed in Float would swamp the
// small errors being measured.

/// Accumulates, over a clip, how far one output tensor of a sparse run is from the dense run (docs/skip-convolutions.md §10).
public struct OutputFidelity: Sendable {
    /// Per-frame relative L2 ‖y−y_dense‖₂/‖y_dense‖₂, in order: 0 if both are zero, +infinity if only the dense
    /// output is (no scale to judge the error by).
    public private(set) var relativeL2: [Double] = []
    /// The dense output of the last frame, overwritten in place each frame: the missed-change ratio needs the
    /// dense frame-to-frame change, and one buffer keeps `add` free of allocation after the first frame.
    private var previousDense: [Float] = []
    private var missedSquared = 0.0
    private var changeSquared = 0.0

    public init() {}

    /// Feed frame t: `y` = sparse output, `dense` = dense output of the same frame (same count, every frame).
    public mutating func add(_ y: UnsafeBufferPointer<Float>, dense: UnsafeBufferPointer<Float>) {
        precondition(y.count == dense.count, "sparse output has \(y.count) values, dense \(dense.count)")
        var errorSquared = 0.0
        var denseSquared = 0.0
        if previousDense.isEmpty {
            for i in 0..<dense.count {
                let d = Double(dense[i])
                let e = Double(y[i]) - d
                errorSquared += e * e
                denseSquared += d * d
            }
            previousDense.append(contentsOf: dense)
        } else {
            precondition(previousDense.count == dense.count, "output size changed between frames")
            var change = 0.0
            previousDense.withUnsafeMutableBufferPointer { previous in
                for i in 0..<dense.count {
                    let d = Double(dense[i])
                    // Both differences in Double: reusing the previous output (y = previous) then gives e = −c
                    // exactly, so that baseline scores exactly 1.
                    let e = Double(y[i]) - d
                    let c = d - Double(previous[i])
                    errorSquared += e * e
                    denseSquared += d * d
                    change += c * c
                    previous[i] = dense[i]
                }
            }
            missedSquared += errorSquared
            changeSquared += change
        }
        relativeL2.append(Self.ratio(errorSquared, denseSquared))
    }

    /// The next frame starts another stretch of the clip: like the first frame, it enters neither sum of the
    /// missed-change ratio (the frame fed before it is not the one before it in the clip).
    public mutating func restart() { previousDense.removeAll(keepingCapacity: true) }

    /// Mean of `relativeL2` (0 before the first frame).
    public var meanRelativeL2: Double { Self.mean(relativeL2[...]) }

    /// Missed-change ratio √(Σ_t ‖y_t−y_dense,t‖² / Σ_t ‖y_dense,t − y_dense,t−1‖²) over frames t ≥ 1 (frame 0 has
    /// no previous dense output and enters neither sum). Relative L2 hides skipping on a static scene; this
    /// scores the error against how much the scene really changed: 1.0 is what reusing the previous output scores
    /// (y_t = y_dense,t−1), 0 is perfect. If nothing changed: 0 if the numerator is 0, else +infinity.
    public var missedChangeRatio: Double { Self.ratio(missedSquared, changeSquared) }

    /// Mean relative L2 of the first `n` and the last `n` frames (n = min(n, count/2), so the two never overlap);
    /// a rising pair means the sparse state drifts. (0, 0) when n comes out 0.
    public func firstAndLast(_ n: Int) -> (first: Double, last: Double) {
        let n = min(max(n, 0), relativeL2.count / 2)
        return (Self.mean(relativeL2.prefix(n)), Self.mean(relativeL2.suffix(n)))
    }

    /// √(numerator/denominator) of two sums of squares, with the zero-denominator convention of both metrics.
    private static func ratio(_ numerator: Double, _ denominator: Double) -> Double {
        if denominator == 0 { return numerator == 0 ? 0 : .infinity }
        return (numerator / denominator).squareRoot()
    }

    private static func mean(_ values: ArraySlice<Double>) -> Double {
        values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count)
    }
}

/// Heatmap peak agreement: for keypoint and centre heatmaps what matters is whether the peaks land in
/// the same places, which a small L2 error does not guarantee. Peaks are cells > `threshold` that equal the maximum
/// of their 3×3 neighbourhood (a 3×3 max-pool, stride 1, same padding: border cells compare only with in-bounds
/// neighbours). On a plateau every cell equal to the neighbourhood maximum is a peak, even next to an equal
/// neighbour: breaking the tie by position would make peaks jump with sub-ULP changes. Peaks of `y` are matched
/// one-to-one to peaks of `reference` within `radius` cells (Chebyshev distance), greedily by ascending distance
/// (ties: row-major order of the `y` peak, then of the reference peak). Counts accumulate over frames.
public struct PeakAgreement: Sendable {
    public let threshold: Float
    public let radius: Int
    public private(set) var matched = 0
    /// Peaks found in `y`.
    public private(set) var predicted = 0
    /// Peaks found in `reference`.
    public private(set) var expected = 0

    public init(threshold: Float = 0.5, radius: Int = 2) {
        precondition(radius >= 0, "negative match radius")
        self.threshold = threshold
        self.radius = radius
    }

    /// matched / expected; 1 when expected == 0 (nothing to miss).
    public var recall: Double { expected == 0 ? 1 : Double(matched) / Double(expected) }
    /// matched / predicted; 1 when predicted == 0 (nothing spurious).
    public var precision: Double { predicted == 0 ? 1 : Double(matched) / Double(predicted) }

    /// Feed one frame's `width`×`height` row-major map of the sparse run (`y`) and of the dense run (`reference`).
    public mutating func add(
        _ y: UnsafeBufferPointer<Float>, reference: UnsafeBufferPointer<Float>, width: Int, height: Int
    ) {
        precondition(reference.count == y.count, "maps differ in size")
        let found = Self.peaks(y, width: width, height: height, threshold: threshold)
        let wanted = Self.peaks(reference, width: width, height: height, threshold: threshold)
        predicted += found.count
        expected += wanted.count
        guard !found.isEmpty, !wanted.isEmpty else { return }
        // A grid of still-unmatched reference peaks makes each lookup O(radius²) instead of O(peaks).
        var free = [Bool](repeating: false, count: width * height)
        for p in wanted { free[p.y * width + p.x] = true }
        var done = [Bool](repeating: false, count: found.count)
        for distance in 0...radius {
            for (i, p) in found.enumerated() where !done[i] {
                guard let cell = Self.firstFree(free, around: p, at: distance, width: width, height: height)
                else { continue }
                free[cell] = false
                done[i] = true
                matched += 1
            }
        }
    }

    /// The peak cells of one `width`×`height` row-major map, in row-major order. NaN cells are never peaks and
    /// never suppress one.
    public static func peaks(
        _ map: UnsafeBufferPointer<Float>, width: Int, height: Int, threshold: Float
    ) -> [(x: Int, y: Int)] {
        precondition(width >= 0 && height >= 0 && map.count == width * height, "map is not \(width)×\(height)")
        var result: [(x: Int, y: Int)] = []
        for y in 0..<height {
            for x in 0..<width {
                let value = map[y * width + x]
                guard value > threshold else { continue }
                var isPeak = true
                neighbourhood: for ny in max(y - 1, 0)...min(y + 1, height - 1) {
                    for nx in max(x - 1, 0)...min(x + 1, width - 1) where map[ny * width + nx] > value {
                        isPeak = false
                        break neighbourhood
                    }
                }
                if isPeak { result.append((x, y)) }
            }
        }
        return result
    }

    /// The first free cell, in row-major order, at Chebyshev distance exactly `distance` from `p`.
    private static func firstFree(
        _ free: [Bool], around p: (x: Int, y: Int), at distance: Int, width: Int, height: Int
    ) -> Int? {
        for dy in -distance...distance {
            let y = p.y + dy
            guard y >= 0, y < height else { continue }
            // Rows strictly inside the ring hold only its two side cells.
            let step = abs(dy) == distance ? 1 : 2 * distance
            for dx in stride(from: -distance, through: distance, by: step) {
                let x = p.x + dx
                if x >= 0, x < width, free[y * width + x] { return y * width + x }
            }
        }
        return nil
    }
}
