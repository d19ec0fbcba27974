import PipelineKit

/// What `policy` decided for a frame: the scale the model runs at, or that the frame is skipped, and why.
/// `model` and `skipconv` read ``scale``; a skip sets `Frame.skipped`, so they reuse their previous outputs.
public struct PolicyDecision: Sendable, Encodable {
    public enum Action: Sendable, Equatable, Hashable, CustomStringConvertible {
        /// Run the model at this fraction of its full input size (1: full size).
        case scale(Double)
        /// Skip this frame and the next `k − 1`.
        case skip(Int)

        public var skips: Bool {
            if case .skip = self { return true }
            return false
        }

        /// `1`, `0.5`, `skip2`: the action's name in histograms, JSON and policy files.
        public var description: String {
            switch self {
            case .scale(let s): s == s.rounded() ? "\(Int(s))" : "\(s)"
            case .skip(let k): "skip\(k)"
            }
        }

        /// Parses ``description``.
        public init?(_ text: String) {
            if text.hasPrefix("skip"), let k = Int(text.dropFirst(4)), k > 0 {
                self = .skip(k)
            } else if let s = Double(text), s > 0, s <= 1 {
                self = .scale(s)
            } else {
                return nil
            }
        }
    }

    public var action: Action
    /// Frames still covered by an earlier skip decision ride along without the policy running.
    public var carried: Bool
    /// The features the decision was made from (``PolicyFeatures/names`` order).
    public var features: [Double]
    /// Multiply-accumulates the policy itself spent on this frame (AR-Net accounting).
    public var macs: Int

    public init(action: Action, carried: Bool, features: [Double], macs: Int) {
        self.action = action
        self.carried = carried
        self.features = features
        self.macs = macs
    }

    /// The input scale for a model stage: a skipped frame keeps whatever ran last, so 1 is only a placeholder.
    public var scale: Double {
        if case .scale(let s) = action { return s }
        return 1
    }

    private enum CodingKeys: String, CodingKey {
        case action, carried, features, macs
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(action.description, forKey: .action)
        try c.encode(carried, forKey: .carried)
        try c.encode(features, forKey: .features)
        try c.encode(macs, forKey: .macs)
    }

    public enum Key: FrameMetadataKey {
        public typealias Value = PolicyDecision
        public static let name = "policy"
    }
}
