import Foundation
import PipelineKit

/// The per-frame inputs of `policy` (and of the linear policies `skipd fit-policy` learns): how much changed,
/// how strongly, how small the smallest face last seen was, and how full the model's input link is.
public struct PolicyFeatures: Sendable, Equatable {
    /// Fraction of `residual`'s blocks that changed.
    public var changed: Double
    /// Mean |x − ref| over all blocks, in 8-bit levels.
    public var energy: Double
    /// Height in frame pixels of the smallest detection last published on the board; nil: none seen.
    public var smallestFace: Double?
    /// Frames waiting in the policy's output link over its capacity (0 for files: they block instead).
    public var queue: Double

    public init(changed: Double, energy: Double, smallestFace: Double?, queue: Double) {
        self.changed = changed
        self.energy = energy
        self.smallestFace = smallestFace
        self.queue = queue
    }

    public init(residual: ResidualMap, smallestFace: Double?, queue: Double) {
        let energy = residual.energy.isEmpty ? 0 : residual.energy.reduce(0, +) / Float(residual.energy.count)
        self.init(changed: residual.changedFraction, energy: Double(energy), smallestFace: smallestFace, queue: queue)
    }

    public static let names = ["bias", "changed", "energy", "has_face", "face_log2", "queue"]

    /// The vector a linear policy scores, in ``names`` order, each feature scaled to about 0…1.
    public var vector: [Double] {
        let face = smallestFace.map { min(4, max(-2, log2(max($0, 1) / 16))) / 4 } ?? 0
        return [1, changed, min(energy / 32, 4), smallestFace == nil ? 0 : 1, face, queue]
    }

    /// The name on the feedback board under which a face decoder posts the smallest face height.
    public static let smallestFaceKey = "faces.smallest"
}

/// A learned policy: one linear score per action over ``PolicyFeatures/vector``; the action with the highest
/// score wins (argmax, never sampled). `skipd fit-policy` writes it as JSON.
public struct LinearPolicy: Sendable, Codable, Equatable {
    public var actions: [String]
    public var features: [String]
    /// `actions.count` rows of `features.count` weights.
    public var weights: [[Double]]

    public init(actions: [String], weights: [[Double]]) {
        self.actions = actions
        self.features = PolicyFeatures.names
        self.weights = weights
    }

    /// Loads and checks a policy file: every action parses and every row has one weight per feature.
    public static func load(path: String) throws(PolicyError) -> (LinearPolicy, [PolicyDecision.Action]) {
        let policy: LinearPolicy
        do {
            policy = try JSONDecoder().decode(LinearPolicy.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw PolicyError("\(path): not a policy file (\(error))")
        }
        guard policy.features == PolicyFeatures.names else {
            throw PolicyError(
                "\(path): features \(policy.features) are not \(PolicyFeatures.names); refit with skipd fit-policy")
        }
        var actions: [PolicyDecision.Action] = []
        for text in policy.actions {
            guard let action = PolicyDecision.Action(text) else {
                throw PolicyError("\(path): unknown action '\(text)' (1, 0.75, skip2, …)")
            }
            actions.append(action)
        }
        guard !actions.isEmpty, policy.weights.count == actions.count,
            policy.weights.allSatisfy({ $0.count == PolicyFeatures.names.count && $0.allSatisfy(\.isFinite) })
        else {
            throw PolicyError(
                "\(path): needs \(actions.count) rows of \(PolicyFeatures.names.count) finite weights, one per action")
        }
        return (policy, actions)
    }

    /// Index of the best-scoring action.
    public func choose(_ features: PolicyFeatures, allowed: (Int) -> Bool = { _ in true }) -> Int {
        choose(vector: features.vector, allowed: allowed)
    }

    /// Index of the best-scoring `allowed` action for a feature vector (``PolicyFeatures/vector``); the best of all
    /// when none is allowed.
    public func choose(vector x: [Double], allowed: (Int) -> Bool = { _ in true }) -> Int {
        var best = 0
        var bestScore = -Double.infinity
        for (k, row) in weights.enumerated() where allowed(k) {
            let score = zip(row, x).reduce(0) { $0 + $1.0 * $1.1 }
            if score > bestScore {
                best = k
                bestScore = score
            }
        }
        return bestScore == -Double.infinity && !weights.isEmpty ? choose(vector: x) : best
    }

    public var macs: Int { weights.count * features.count }
}

public struct PolicyError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
