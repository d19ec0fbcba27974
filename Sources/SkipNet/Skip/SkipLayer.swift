/// Splits `runs` into chunks of at most `capacity` positions (splitting a run where needed) and calls `body` with
/// each chunk and its position count: the unit of one gather → SGEMM → scatter.
func forEachChunk<Runs: Sequence<MaskRun>>(
    of runs: Runs, capacity: Int, into chunk: inout [MaskRun], _ body: (_ chunk: [MaskRun], _ count: Int) -> Void
) {
    var m = 0
    chunk.removeAll(keepingCapacity: true)
    for run in runs {
        var x0 = run.x0
        while x0 < run.x1 {
            let n = min(run.x1 - x0, capacity - m)
            chunk.append(MaskRun(y: run.y, x0: x0, x1: x0 + n))
            m += n
            x0 += n
            if m == capacity {
                body(chunk, m)
                chunk.removeAll(keepingCapacity: true)
                m = 0
            }
        }
    }
    if m > 0 { body(chunk, m) }
    chunk.removeAll(keepingCapacity: true)
}

/// Scratch the skip layers share (one layer runs at a time): im2col columns for a chunk of active positions, the
/// GEMM result for that chunk, and the dense path's own im2col scratch.
final class SkipScratch {
    /// Floats of columns per chunk: about 1 MB, so a chunk's columns stay in L2 between gather and GEMM.
    static let columnBudget = 1 << 18
    /// Worker 0's columns and product; each further worker's follow (`columns(worker)`, `product(worker)`).
    let columns: UnsafeMutablePointer<Float>
    let product: UnsafeMutablePointer<Float>
    let dense: UnsafeMutablePointer<Float>
    var chunk: [MaskRun] = []
    var runs: [MaskRun] = []
    private let sizes: (columns: Int, product: Int)

    init(columns: Int, product: Int, dense: Int, workers: Int = 1) {
        sizes = (max(columns, 1), max(product, 1))
        self.columns = .allocate(capacity: sizes.columns * max(1, workers))
        self.product = .allocate(capacity: sizes.product * max(1, workers))
        self.dense = .allocate(capacity: max(dense, 1))
    }

    func columns(_ worker: Int) -> UnsafeMutablePointer<Float> { columns + worker * sizes.columns }
    func product(_ worker: Int) -> UnsafeMutablePointer<Float> { product + worker * sizes.product }

    deinit {
        columns.deallocate()
        product.deallocate()
        dense.deallocate()
    }

    /// Positions per chunk for a GEMM with `k` reduction rows.
    static func chunkPositions(k: Int) -> Int { max(64, columnBudget / max(k, 1)) }
}

/// What one skip layer did, cumulatively and on the last frame.
public struct SkipLayerStats: Sendable {
    public var name: String
    public var op: String
    /// Positions the gate decides over (outputs of a conv, inputs of a transposed conv) per frame.
    public var positions: Int
    /// Dense MACs per frame.
    public var denseMACs: Int
    /// Totals over all frames run.
    public var frames = 0
    public var activePositions = 0
    public var executedMACs = 0
    /// Norm statistics and Gumbel logits (one op per input element read, docs/skip-convolutions.md §7).
    public var gateMACs = 0
    /// Frames this layer ran densely (keyframe or above its break-even density).
    public var denseFrames = 0
    /// Wall time spent in this layer (gate, commit, recompute), seconds.
    public var seconds = 0.0
    /// Measured break-even density (0 until both paths were timed). A fused block's members carry the block's, a
    /// density of changed input positions (the block times its rectangles per changed input position).
    public var breakEven = 0.0
    /// The absolute threshold in use (a relative one once the first keyframe has measured the layer).
    public var threshold: Float = 0
    public var lastActive = 0
    public var lastExecutedMACs = 0
    /// MACs of the positions the gate selected (gates included), whichever path computed them: the deterministic
    /// figure to hold against the oracle bound; `executedMACs` counts a dense-kernel recompute as dense.
    public var selectedMACs = 0
    public var lastSelectedMACs = 0

    /// One frame of a layer: `selected` defaults to `executed` (what a sparse recompute runs).
    mutating func record(
        active: Int, executed: Int, gate: Int, dense: Bool, selected: Int? = nil, threshold: Float
    ) {
        selectedMACs += (selected ?? executed) + gate
        lastSelectedMACs = (selected ?? executed) + gate
        self.threshold = threshold
        frames += 1
        activePositions += active
        executedMACs += executed
        gateMACs += gate
        lastActive = active
        lastExecutedMACs = executed + gate
        if dense { denseFrames += 1 }
    }

    public var macRatio: Double { Double(executedMACs + gateMACs) / Double(max(1, denseMACs * frames)) }
    public var selectedRatio: Double { Double(selectedMACs) / Double(max(1, denseMACs * frames)) }
}

/// A convolution or transposed convolution that keeps the docs/skip-convolutions.md §1 state (a reference input; outputs
/// consistent with it) and, per frame, recomputes only outputs its gate selects.
protocol SkipLayer: AnyObject {
    var stats: SkipLayerStats { get }
    func addTime(_ duration: Duration)
    /// Input positions `dirty` changed this frame; sets `changed` to the output positions it rewrote.
    /// Runs densely (a per-layer keyframe) above its break-even density; returns the density it saw.
    @discardableResult
    func frame(dirty: SpatialMask, changed: SpatialMask, scratch: SkipScratch) -> Double
    /// Dense: reference = input, every output recomputed.
    func keyframe(changed: SpatialMask, scratch: SkipScratch)
}

/// A gated layer's reference input `x_ref` (the input its outputs are exact for) and, for gates that keep one, the
/// per-position residual statistic. A propagating layer keeps no reference (it reads the current input), so it holds
/// neither; the input-select and gumbel gates of a conv read the residual directly and keep no statistic.
final class LayerReference {
    let values: UnsafeMutablePointer<Float>
    let statistic: UnsafeMutablePointer<Float>
    private let count: Int
    private let plane: Int

    init(channels: Int, plane: Int, kept: Bool, statistic keepsStatistic: Bool) {
        count = kept ? channels * plane : 0
        self.plane = kept && keepsStatistic ? plane : 0
        values = .allocate(capacity: max(count, 1))
        values.initialize(repeating: 0, count: max(count, 1))
        statistic = .allocate(capacity: max(self.plane, 1))
        statistic.initialize(repeating: 0, count: max(self.plane, 1))
    }

    deinit {
        values.deallocate()
        statistic.deallocate()
    }

    /// Keyframe: the reference becomes the input `x`, leaving no residual.
    func reset(to x: UnsafePointer<Float>) {
        values.update(from: x, count: count)
        statistic.update(repeating: 0, count: plane)
    }
}

/// A relative threshold made absolute on the first keyframe: × the input RMS for input-select (it tests input
/// residuals), × the output RMS for the norm gates (they bound output changes).
func absoluteThreshold(
    _ threshold: Float, gate: GateKind, input: UnsafePointer<Float>, inputCount: Int,
    output: UnsafePointer<Float>, outputCount: Int
) -> Float {
    threshold * (gate == .inputSelect ? rms(input, count: inputCount) : rms(output, count: outputCount))
}

@inline(__always)
func ceilDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? (a + b - 1) / b : -((-a) / b) }

@inline(__always)
func floorDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? a / b : -((-a + b - 1) / b) }

/// Outputs `ox` in `x0..<x1` whose input column `ox·stride + offset` is inside `0..<width`.
@inline(__always)
func validColumns(_ x0: Int, _ x1: Int, stride: Int, offset: Int, width: Int) -> Range<Int> {
    let lo = max(x0, ceilDiv(-offset, stride))
    let hi = min(x1, floorDiv(width - 1 - offset, stride) + 1)
    return lo < hi ? lo..<hi : x0..<x0
}

/// Root mean square of `count` floats (Double sum: millions of squares).
func rms(_ p: UnsafePointer<Float>, count: Int) -> Float {
    var sum = 0.0
    for i in 0..<count { sum += Double(p[i]) * Double(p[i]) }
    return Float((sum / Double(max(1, count))).squareRoot())
}

/// Learns from a propagating layer's own timings whether recomputing its changed positions beats the dense kernel
/// (docs/skip-convolutions.md §4: the break-even density d* measured on the target CPU, here online, per layer). Only exact
/// layers use it: both paths give the same values, so a timing-driven choice cannot change results.
///
/// An estimate is only as good as its samples: the first run of a path is cold (page faults on fresh scratch, empty
/// caches; the dense one is usually the first keyframe's), so each path's first sample is replaced by its second
/// rather than blended in, and every `probeInterval`-th decision runs the path not chosen, so a path is remeasured
/// instead of being judged forever on an old or disturbed sample.
struct PathTimer: PathChoice {
    static let probeInterval = 16
    let positions: Int
    private(set) var dense: Double?
    private(set) var perPosition: Double?
    private var samples = (dense: 0, sparse: 0)
    private var sinceProbe = 0

    init(positions: Int) { self.positions = positions }

    mutating func recordDense(_ seconds: Double) {
        samples.dense += 1
        dense = samples.dense == 2 ? seconds : dense.map { 0.8 * $0 + 0.2 * seconds } ?? seconds
    }

    mutating func recordSparse(_ seconds: Double, positions n: Int) {
        guard n >= positions / 64, n > 0 else { return }  // tiny updates are all overhead; they would skew the rate
        let rate = seconds / Double(n)
        samples.sparse += 1
        perPosition = samples.sparse == 2 ? rate : perPosition.map { 0.8 * $0 + 0.2 * rate } ?? rate
    }

    /// The density above which the dense kernel is faster; nil until both paths have been timed.
    var breakEven: Double? {
        guard let dense, let perPosition, perPosition > 0 else { return nil }
        return dense / (perPosition * Double(positions))
    }

    /// Whether to run the dense kernel for a frame at `density`: the faster path by the estimates (by `fallback`
    /// until both are measured), but the other one every `probeInterval`-th decision.
    mutating func choosesDense(density: Double, otherwise fallback: Double) -> Bool {
        let preferred = density > (breakEven ?? fallback)
        sinceProbe += 1
        guard sinceProbe >= Self.probeInterval else { return preferred }
        sinceProbe = 0
        return !preferred
    }
}

/// Picks how an exact layer or block recomputes a frame: the whole-image kernel or the sparse path. Both give the
/// same values, so the choice only moves time; ``PathTimer`` makes it from measurements, tests inject
/// ``ScriptedPaths`` to run each path on frames they pick.
protocol PathChoice {
    /// Whether to run the whole-image kernel for a frame at `density` (`fallback`: the break-even to assume until
    /// measured).
    mutating func choosesDense(density: Double, otherwise fallback: Double) -> Bool
    mutating func recordDense(_ seconds: Double)
    mutating func recordSparse(_ seconds: Double, positions n: Int)
    /// The measured break-even density, nil until known.
    var breakEven: Double? { get }
}

/// Choices in a fixed rotation, whatever the density or timing: decision k takes `pattern[k % pattern.count]`
/// (true: dense).
struct ScriptedPaths: PathChoice {
    let pattern: [Bool]
    private var next = 0

    init(_ pattern: [Bool]) { self.pattern = pattern.isEmpty ? [false] : pattern }

    mutating func choosesDense(density: Double, otherwise fallback: Double) -> Bool {
        defer { next += 1 }
        return pattern[next % pattern.count]
    }

    mutating func recordDense(_ seconds: Double) {}
    mutating func recordSparse(_ seconds: Double, positions n: Int) {}
    var breakEven: Double? { nil }
}
