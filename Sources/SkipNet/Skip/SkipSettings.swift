import Foundation

/// How a skip layer decides which outputs to recompute (docs/skip-convolutions.md §2). One decision per output position, shared
/// by all output channels; `r` is the layer input's residual against its reference.
public enum GateKind: String, Codable, Sendable, CaseIterable {
    /// `Σ_c avgpool(|r_c|)(p) > ε`.
    case inputNorm = "input-norm"
    /// `max_o ‖W_o‖₂ · ‖r_patch(p)‖₂ > ε`: a skipped output is off by at most ε per channel (Cauchy–Schwarz).
    case outputNorm = "output-norm"
    /// Trained: `conv(|r|) + bias ≥ 0` with weights from the settings file.
    case gumbel
    /// `max_c |r| > θ` anywhere in the window (DeltaCNN / CBinfer).
    case inputSelect = "input-select"
}

/// A trained Gumbel gate for one layer: a `C_in → 1` conv with the layer's own kernel, stride and padding.
public struct GumbelGate: Codable, Sendable, Equatable {
    /// `[C_in, kH, kW]`, row-major.
    public var weights: [Float]
    public var bias: Float

    public init(weights: [Float], bias: Float) {
        self.weights = weights
        self.bias = bias
    }
}

/// Everything the skip executor is tuned by; also the sidecar file (`*.skip.json`) `skipd calibrate` writes and the
/// `skipconv` stage loads. Every field has a default, so `{}` is a valid file.
public struct SkipSettings: Codable, Sendable, Equatable {
    public var gate: GateKind = .inputSelect
    /// A `block`-pixel block of the model input counts as changed at the first layer only when at least this many
    /// of its pixels exceed `inputThreshold` (0 or 1: any one does). A codec's noise crosses the threshold at
    /// scattered pixels all over a still image; an object that moves crosses it at many pixels of a block.
    public var minPixels: Int = 1
    /// Threshold of the layers that read the model input, in model-input units (grey levels for a model fed raw
    /// 0–255 pixels): the change a camera's noise must exceed to be recomputed at all.
    public var inputThreshold: Float = 4
    /// ε (θ for `input-select`) of every other layer without its own entry in `thresholds`. 0: those layers recompute
    /// exactly the outputs their input's changes reach (no error added past the first layer).
    public var threshold: Float = 0
    /// True: `threshold` is a multiple of each layer's RMS (output RMS for the norm gates, input RMS for
    /// input-select; measured on the first keyframe), so one value suits layers whose activations differ by orders
    /// of magnitude; false: absolute, in activation units.
    public var relative = true
    /// Per-layer absolute thresholds by conv node name (from calibration); they override both of the above.
    public var thresholds: [String: Float] = [:]
    /// Tile side in input-image pixels: a layer at total stride s gates `max(1, block/s)`² positions as one.
    public var block: Int = 16
    /// Dense keyframe every this many frames (0: never).
    public var refresh: Int = 300
    /// Bounded context, in input pixels: past the first layer, a change's influence is followed only this far from
    /// what the first layer recomputed (``ContextBounds``); 0: unbounded, every layer recomputes the whole
    /// footprint of the change (exact propagation).
    public var context: Int = 0
    /// Rolling refresh: every layer past the first recomputes one band of image rows per frame, in rotation, so the
    /// whole image is recomputed once every this many frames (0: off). With a bounded context, this is what
    /// brings back the influence followed no further than `context`.
    public var rollingRefresh: Int = 0
    /// Dense keyframe when the first layer would recompute more than this fraction of its outputs.
    public var sceneCut: Double = 0.6
    /// Dilation, in positions, of the first layer's active outputs (absorbs codec noise at object edges).
    public var dilation: Int = 0
    /// A layer recomputing more than this fraction of its outputs runs the dense kernel instead, until it has timed
    /// both paths itself and knows its own break-even; 1 or more: never (every recompute sparse).
    public var breakEven: Double = 0.6
    /// Measured per-layer break-even densities by node name.
    public var breakEvens: [String: Double] = [:]
    /// Trained gates by node name (`gate: gumbel`).
    public var gumbel: [String: GumbelGate] = [:]

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = SkipSettings()
        gate = try c.decodeIfPresent(GateKind.self, forKey: .gate) ?? d.gate
        inputThreshold = try c.decodeIfPresent(Float.self, forKey: .inputThreshold) ?? d.inputThreshold
        minPixels = try c.decodeIfPresent(Int.self, forKey: .minPixels) ?? d.minPixels
        threshold = try c.decodeIfPresent(Float.self, forKey: .threshold) ?? d.threshold
        relative = try c.decodeIfPresent(Bool.self, forKey: .relative) ?? d.relative
        thresholds = try c.decodeIfPresent([String: Float].self, forKey: .thresholds) ?? d.thresholds
        block = try c.decodeIfPresent(Int.self, forKey: .block) ?? d.block
        refresh = try c.decodeIfPresent(Int.self, forKey: .refresh) ?? d.refresh
        context = try c.decodeIfPresent(Int.self, forKey: .context) ?? d.context
        rollingRefresh = try c.decodeIfPresent(Int.self, forKey: .rollingRefresh) ?? d.rollingRefresh
        sceneCut = try c.decodeIfPresent(Double.self, forKey: .sceneCut) ?? d.sceneCut
        dilation = try c.decodeIfPresent(Int.self, forKey: .dilation) ?? d.dilation
        breakEven = try c.decodeIfPresent(Double.self, forKey: .breakEven) ?? d.breakEven
        breakEvens = try c.decodeIfPresent([String: Double].self, forKey: .breakEvens) ?? d.breakEvens
        gumbel = try c.decodeIfPresent([String: GumbelGate].self, forKey: .gumbel) ?? d.gumbel
    }

    /// The layer's threshold and whether it is still relative to the layer's RMS.
    public func threshold(for layer: String, readsModelInput: Bool) -> (value: Float, relative: Bool) {
        if let t = thresholds[layer] { return (t, false) }
        return readsModelInput ? (inputThreshold, false) : (threshold, relative)
    }
    public func breakEven(for layer: String) -> Double { breakEvens[layer] ?? breakEven }

    /// Reads a sidecar file; one clear error for a missing or malformed file.
    public static func load(path: String) throws(ModelError) -> SkipSettings {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ModelError("\(path): cannot read skip settings (\(error.localizedDescription))")
        }
        let settings: SkipSettings
        do { settings = try JSONDecoder().decode(SkipSettings.self, from: data) } catch let DecodingError.dataCorrupted(
            c)
        {
            throw ModelError("\(path): not valid JSON (\(c.debugDescription))")
        } catch let DecodingError.typeMismatch(_, c) {
            throw ModelError("\(path): '\(c.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type")
        } catch {
            throw ModelError("\(path): \(error)")
        }
        do throws(ModelError) { try settings.validate() } catch { throw ModelError("\(path): \(error.description)") }
        return settings
    }

    /// Every value within what the executor can use: one error naming the first field that is not.
    public func validate() throws(ModelError) {
        func check(_ ok: Bool, _ message: String) throws(ModelError) { if !ok { throw ModelError(message) } }
        func usable(_ v: Float) -> Bool { v.isFinite && v >= 0 }
        try check(usable(inputThreshold), "'inputThreshold' must be a number ≥ 0")
        try check(usable(threshold), "'threshold' must be a number ≥ 0")
        for (layer, value) in thresholds.sorted(by: { $0.key < $1.key }) {
            try check(usable(value), "'thresholds.\(layer)' must be a number ≥ 0")
        }
        try check((1...1024).contains(block), "'block' must be 1 to 1024 pixels")
        try check((0...1_000_000).contains(refresh), "'refresh' must be 0 to 1000000 frames")
        try check(sceneCut.isFinite && sceneCut >= 0, "'sceneCut' must be a number ≥ 0")
        try check((0...64).contains(dilation), "'dilation' must be 0 to 64 positions")
        try check(breakEven.isFinite && breakEven >= 0, "'breakEven' must be a number ≥ 0")
        for (layer, value) in breakEvens.sorted(by: { $0.key < $1.key }) {
            try check(value.isFinite && value >= 0, "'breakEvens.\(layer)' must be a number ≥ 0")
        }
        try check((0...100_000).contains(context), "'context' must be 0 to 100000 pixels")
        try check((0...1_000_000).contains(rollingRefresh), "'rollingRefresh' must be 0 to 1000000 frames")
        try check((0...1_000_000).contains(minPixels), "'minPixels' must be 0 to 1000000")
        for (layer, gate) in gumbel.sorted(by: { $0.key < $1.key }) {
            try check(
                gate.bias.isFinite && gate.weights.allSatisfy(\.isFinite), "'gumbel.\(layer)' holds a non-finite number"
            )
        }
    }

    public func write(path: String) throws(ModelError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do { try encoder.encode(self).write(to: URL(fileURLWithPath: path)) } catch {
            throw ModelError("\(path): cannot write skip settings (\(error.localizedDescription))")
        }
    }
}
