import PipelineKit

/// Picks, per frame, the resolution the model runs at or that frames are skipped (AR-Net, docs/skip-convolutions.md §9),
/// from `residual`'s statistics, the smallest face a decoder last saw and how full the model's input link is.
///
/// ```
/// … ! residual threshold=12 ! gate ! policy scales=1,0.5 min-face=24 skip=2
///   ! skipconv model=assets/centerface.onnx ! centerface ! jsonsink location=out/faces.jsonl
/// ```
/// Without `model` the rule needs no training: a change above `cut` runs full size; one below `skip-below`
/// skips `skip` frames (at most `max-skips` decisions in a row); otherwise the smallest scale at which the smallest
/// face seen in the last `hold` frames stays `min-face` pixels high (with no face seen: the smallest scale, and
/// full size every `probe` frames so small faces are found). Faces come from a decoder later in the pipeline
/// (`centerface` posts the smallest on the run's feedback board), which reports a frame only after the links
/// between them have drained: hence the memory. A smaller scale is taken only after `dwell` frames at the current one, a
/// larger at once. On a live source a link to the model at least half full forces the next cheaper action.
/// `model=FILE` (from `skipd fit-policy`) replaces the rule with a learned linear policy over the same features
/// (still at most `max-skips` skip decisions in a row).
/// Deterministic. Skipped frames are marked `Frame.skipped`; later model stages reuse their outputs and keep
/// separate skip-conv state per scale. Attaches a ``PolicyDecision``.
public struct Policy: Stage {
    public static let info = StageInfo(
        name: "policy",
        summary: "Per frame: run the model at full or reduced scale, or skip frames (AR-Net style)",
        example: "residual ! gate ! policy scales=1,0.5 min-face=24 ! skipconv model=assets/centerface.onnx",
        properties: [
            .numbers(
                "scales", default: "1,0.5", range: 0.01...1,
                "scales the model may run at, fractions of its full input size"),
            .int("skip", default: 2, range: 0...64, "frames one skip decision covers; 0: never skip"),
            .double("skip-below", default: 0.002, range: 0...1, "changed-block fraction below which frames skip"),
            .int("max-skips", default: 2, range: 1...1000, "skip decisions in a row before a frame must run"),
            .double(
                "cut", default: 0.9, range: 0...1,
                "changed fraction above which the frame runs at full size (a new scene; a moving camera changes ~70 %)"),
            .double("min-face", default: 24, range: 0...10000, "smallest face height, frame px, a scale must keep"),
            .int("probe", default: 8, range: 1...10000, "with no face seen, full size every this many frames"),
            .int("dwell", default: 4, range: 1...10000, "frames at a scale before a smaller one may be taken"),
            .int(
                "hold", default: 30, range: 1...100_000,
                "frames a face seen stays in mind (the decoder reports frames later than the policy decides)"),
            .file("model", optional: true, "linear policy from skipd fit-policy (none: \"\"): replaces the rule"),
        ],
        requires: ["residual"], provides: ["policy"])

    private let scales: [Double]
    private let skip: Int
    private let skipBelow: Double
    private let maxSkips: Int
    private let cut: Double
    private let minFace: Double
    private let probe: Int
    private let dwell: Int
    private let hold: Int
    private let learned: (policy: LinearPolicy, actions: [PolicyDecision.Action])?
    private let context: StageContext

    private var carrying = 0
    private var skipsInRow = 0
    private var current = 1.0
    private var atCurrent = 0
    private var sinceFull = 0
    private var frameCount = 0
    /// Face heights read from the board with the frame count they were read at, newest last, within `hold`.
    private var faces: [(height: Double, at: Int)] = []

    public init(properties: StageProperties, context: StageContext) throws {
        scales = try Self.scales(properties.string("scales"))
        skip = properties.int("skip")
        skipBelow = properties.double("skip-below")
        maxSkips = properties.int("max-skips")
        cut = properties.double("cut")
        minFace = properties.double("min-face")
        probe = properties.int("probe")
        dwell = properties.int("dwell")
        hold = properties.int("hold")
        let path = properties.string("model")
        learned = path.isEmpty ? nil : try LinearPolicy.load(path: path)
        self.context = context
        current = scales[0]
    }

    /// `1,0.5` → [1, 0.5], largest first; every scale in (0, 1].
    static func scales(_ text: String) throws(PolicyError) -> [Double] {
        var values: [Double] = []
        for part in text.split(separator: ",") {
            guard let v = Double(part.trimmingCharacters(in: .whitespaces)), v > 0, v <= 1 else {
                throw PolicyError("scales '\(text)': each must be a number in (0, 1], e.g. 1,0.75,0.5")
            }
            values.append(v)
        }
        guard !values.isEmpty else { throw PolicyError("scales is empty") }
        return Array(Set(values)).sorted(by: >)
    }

    public mutating func process(_ frame: Frame) async throws -> Frame? {
        guard let residual = frame.metadata[ResidualMap.Key.self] else {
            throw PolicyError("policy needs a residual stage before it (… ! residual ! gate ! policy ! …)")
        }
        let depth = context.live ? Double(context.outputDepth()) / Double(max(1, context.outputCapacity)) : 0
        frameCount += 1
        if let face = context.board.take(PolicyFeatures.smallestFaceKey) { faces.append((face, frameCount)) }
        faces.removeAll { frameCount - $0.at >= hold }
        let features = PolicyFeatures(
            residual: residual, smallestFace: faces.map(\.height).min(), queue: depth)
        var frame = frame
        if carrying > 0 {
            carrying -= 1
            frame.skipped = true
            frame.metadata[PolicyDecision.Key.self] = PolicyDecision(
                action: .skip(1), carried: true, features: features.vector, macs: 0)
            return frame
        }
        var action: PolicyDecision.Action
        if let (policy, actions) = learned {
            // The same cap as the rule's: a learned policy must not skip forever either.
            action = actions[policy.choose(features) { !actions[$0].skips || skipsInRow < maxSkips }]
        } else {
            action = rule(features)
        }
        if depth >= 0.5 { action = cheaper(than: action) }
        switch action {
        case .skip(let k):
            carrying = k - 1
            skipsInRow += 1
            frame.skipped = true
        case .scale(let s):
            skipsInRow = 0
            if s != current {
                current = s
                atCurrent = 0
            }
            atCurrent += 1
            sinceFull = s == scales[0] ? 0 : sinceFull + 1
        }
        frame.metadata[PolicyDecision.Key.self] = PolicyDecision(
            action: action, carried: false, features: features.vector, macs: learned?.policy.macs ?? 0)
        return frame
    }

    /// The training-free rule.
    private func rule(_ f: PolicyFeatures) -> PolicyDecision.Action {
        let largest = scales[0]
        if f.changed > cut { return .scale(largest) }
        if skip > 0, f.changed < skipBelow, skipsInRow < maxSkips { return .skip(skip) }
        let wanted: Double
        if let face = f.smallestFace {
            wanted = scales.last { face * $0 >= minFace } ?? largest
        } else {
            wanted = sinceFull + 1 >= probe ? largest : scales[scales.count - 1]
        }
        // Hysteresis: grow at once (a face may be lost), shrink only after dwelling.
        if wanted < current && atCurrent < dwell { return .scale(current) }
        return .scale(wanted)
    }

    /// One step cheaper: the next smaller scale, or skipping one frame from the smallest.
    private func cheaper(than action: PolicyDecision.Action) -> PolicyDecision.Action {
        guard case .scale(let s) = action else { return action }
        if let smaller = scales.first(where: { $0 < s }) { return .scale(smaller) }
        return .skip(1)
    }
}
