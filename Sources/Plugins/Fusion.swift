import PipelineKit

/// Causal temporal fusion of one model output over the last k frames (docs/skip-convolutions.md §9).
///
/// ```
/// … ! model model=assets/centerface.onnx ! fusion output=537 unit=st taps=3 weights=0.5,0.3,0.2 ! jsonsink …
/// ```
/// Units, on the output tensor `x_t` of frame t:
/// - `s`: pass-through (`y_t = x_t`), the spatial unit alone.
/// - `st`: `y_t = Σ_{j<k} w_j · x_{t−j}`, a causal temporal filter: frame t's result depends only on frames ≤ t,
///   so it is ready when frame t arrives.
/// - `s+st`: `y_t = ½ (x_t + Σ_j w_j · x_{t−j})`. The paper sums the two units; the sum is halved here so that
///   scores keep their scale (e.g. a sigmoid heatmap a decoder thresholds at 0.5 stays in 0…1).
///
/// `weights` are k numbers, newest first, used as written (their sum is the filter's gain); without them
/// `w_j ∝ decay^j`, normalised to sum 1. `taps` defaults to the number of weights when only `weights` is given.
/// On the first frame, and whenever the tensor's shape changes (a policy may change the model's input size), the
/// ring is filled with the current tensor (left padding with the first frame). A skipped frame carries the
/// tensor the model reused, which is pushed like any other so taps stay one frame apart: the skip gets the fused
/// value of a still scene ("fused carry-forward"), so detections do not blink. The fused data replaces the
/// tensor's data in ``ModelOutputs``; the other tensors are untouched. The arithmetic is ``CausalFusion``.
///
/// It does not help face detection on moving people: averaging a heatmap over frames spreads a moving face's peak
/// below the decoder's threshold. On vtest.avi at 1536×1152 (`skipd bench policy … --scale 2 --frames 120`,
/// docs/performance.md) `unit=s+st` took bounded skipconv's recall from 0.955 to 0.523 and interval-4's from 0.284
/// to 0.148 against dense. It is in no default; for results that stay steady over time, use `track`.
public struct Fusion: Stage {
    public static let info = StageInfo(
        name: "fusion",
        summary: "Causal temporal fusion of one model output over the last k frames (units s, st, s+st)",
        example: "model model=assets/centerface.onnx ! fusion output=537 unit=st taps=3",
        properties: [
            .string("output", default: "0", "the output tensor to fuse: its name, or its position"),
            .choice(
                "unit", default: "st", FusionUnit.allCases.map(\.rawValue),
                "s: pass-through; st: temporal; s+st: ½(s + st)"),
            .int("taps", default: 3, range: 1...32, "k, frames in the ring (current + k−1 past)"),
            .string("weights", default: "", "k comma-separated weights, newest first; empty: decay^j normalised"),
            .double("decay", default: 0.5, range: 0...1, "default weights w_j ∝ decay^j (1: plain average)"),
        ],
        requires: ["outputs"])

    private let output: String
    private var fusion: CausalFusion

    public init(properties: StageProperties, context: StageContext) throws {
        output = properties.string("output")
        let unit = FusionUnit(rawValue: properties.string("unit")) ?? .st
        let text = properties.string("weights")
        let weights: [Float]
        if text.isEmpty {
            weights = CausalFusion.defaultWeights(taps: properties.int("taps"), decay: properties.double("decay"))
        } else {
            weights = try CausalFusion.parseWeights(
                text, taps: properties.isSet("taps") ? properties.int("taps") : nil)
        }
        fusion = try CausalFusion(unit: unit, weights: weights)
    }

    public mutating func process(_ frame: Frame) async throws -> Frame? {
        guard var outputs = frame.metadata[ModelOutputs.Key.self] else { throw FusionError.noOutputs }
        guard let i = outputs.index(of: output) else {
            throw FusionError(
                "the model has no output '\(output)' (it has: \(outputs.tensors.map(\.name).joined(separator: ", ")))")
        }
        // Skipped or not, the frame carries the tensor for its time step (reused by the model on a skip).
        outputs.tensors[i].data = fusion.push(outputs.tensors[i].data, shape: outputs.tensors[i].shape)
        var frame = frame
        frame.metadata[ModelOutputs.Key.self] = outputs
        return frame
    }
}

/// How a fusion combines the current tensor with its past (docs/skip-convolutions.md §9).
public enum FusionUnit: String, Sendable, CaseIterable {
    /// Spatial only: the current tensor, unchanged.
    case s
    /// Temporal: the causal weighted sum over the ring.
    case st
    /// Both, averaged: ½ (s + st).
    case sPlusST = "s+st"
}

/// The streaming arithmetic of `fusion`: a ring buffer of the last k tensors (slot `t mod k`) and the causal sum
/// `Σ_{j<k} w_j · x_{t−j}`, combined per ``FusionUnit``. Push one tensor per frame, in order.
public struct CausalFusion: Sendable {
    public let unit: FusionUnit
    /// w_0 … w_{k−1}, newest first.
    public let weights: [Float]
    /// The shape the ring holds; `nil` before the first push.
    public private(set) var shape: [Int]?
    /// k slots of one tensor each, flat.
    private var ring: [Float] = []
    /// The slot holding x_t.
    private var newest = 0

    public init(unit: FusionUnit, weights: [Float]) throws(FusionError) {
        guard !weights.isEmpty, weights.allSatisfy(\.isFinite) else {
            throw FusionError("fusion weights must be one or more finite numbers")
        }
        self.unit = unit
        self.weights = weights
    }

    public var taps: Int { weights.count }

    /// `w_j = decay^j / Σ_i decay^i` for j < taps (decay 0: the current frame alone; 1: a plain average).
    public static func defaultWeights(taps: Int, decay: Double) -> [Float] {
        var powers: [Double] = []
        var p = 1.0
        for _ in 0..<max(1, taps) {
            powers.append(p)
            p *= decay
        }
        let sum = powers.reduce(0, +)  // ≥ 1: w_0's power is 1
        return powers.map { Float($0 / sum) }
    }

    /// Parses `0.5,0.3,0.2`; `taps`, when given, must match the count.
    public static func parseWeights(_ text: String, taps: Int?) throws(FusionError) -> [Float] {
        var weights: [Float] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let item = String(part.filter { !$0.isWhitespace })
            guard let w = Float(item), w.isFinite else {
                throw FusionError("weights '\(text)': '\(item)' is not a number")
            }
            weights.append(w)
        }
        guard (1...32).contains(weights.count) else {
            throw FusionError("weights '\(text)': \(weights.count) numbers, expected 1…32")
        }
        if let taps, taps != weights.count {
            throw FusionError("weights '\(text)' has \(weights.count) numbers but taps=\(taps)")
        }
        return weights
    }

    /// Forgets the past: the next push fills the ring (start of a stream, refresh).
    public mutating func reset() {
        shape = nil
        ring = []
        newest = 0
    }

    /// Pushes x_t (row-major data of `shape`) and returns y_t. A first push, or one whose shape or size differs
    /// from the ring's, fills every slot with x_t.
    public mutating func push(_ x: [Float], shape: [Int]) -> [Float] {
        if unit == .s { return x }
        let n = x.count
        let k = weights.count
        if shape != self.shape || ring.count != k * n {
            self.shape = shape
            ring = Array(repeating: 0, count: k * n)
            for slot in 0..<k { ring.replaceSubrange(slot * n..<(slot + 1) * n, with: x) }
            newest = 0
        } else {
            newest = (newest + 1) % k
            ring.replaceSubrange(newest * n..<(newest + 1) * n, with: x)
        }
        var y = [Float](repeating: 0, count: n)
        ring.withUnsafeBufferPointer { r in
            y.withUnsafeMutableBufferPointer { out in
                for j in 0..<k {
                    let base = ((newest - j + k) % k) * n
                    let w = weights[j]
                    for i in 0..<n { out[i] += w * r[base + i] }
                }
                if unit == .sPlusST {
                    for i in 0..<n { out[i] = 0.5 * (x[i] + out[i]) }
                }
            }
        }
        return y
    }
}

public struct FusionError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }

    static let noOutputs = FusionError(
        "fusion needs model outputs: put it after a model or skipconv stage (… ! model … ! fusion)")
}
