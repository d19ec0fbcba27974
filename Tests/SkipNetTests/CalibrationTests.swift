import Foundation
import Testing

@testable import SkipNet

/// `Calibration` on a small random-weight CNN and a synthetic clip: a static textured scene, a square moving across
/// it and sensor noise on every pixel (seeded). Exact execution recomputes everything (the noise reaches every
/// position), so only thresholds raised above the noise save anything.
@Suite struct CalibrationTests {
    static let shape = [1, 3, 48, 64]
    static let budget = 0.2

    /// conv3×3 3→8 + Relu, conv3×3/2 8→16 + Relu, conv3×3 16→16 + Relu; two heads, conv1×1 16→4 and
    /// conv1×1 16→1 + Sigmoid. Weights uniform in ±√(3/fan-in), so activations keep the input's scale.
    static func graph() throws -> Graph {
        var m = TestModel(shape)
        var seed: UInt64 = 4000
        func conv(_ x: String, _ y: String, _ cin: Int, _ cout: Int, _ k: Int, stride: Int = 1) {
            let fanIn = cin * k * k
            let a = (3 / Float(fanIn)).squareRoot()
            seed += 1
            m.constant("\(y).w", [cout, cin, k, k], randomFloats(cout * fanIn, seed: seed, lo: -a, hi: a))
            seed += 1
            m.constant("\(y).b", [cout], randomFloats(cout, seed: seed, lo: -0.1, hi: 0.1))
            let pad = k / 2
            m.node(
                "Conv", [x, "\(y).w", "\(y).b"], y,
                ints: ["kernel_shape": [k, k], "strides": [stride, stride], "pads": [pad, pad, pad, pad]])
        }
        conv("x", "c1", 3, 8, 3)
        m.node("Relu", ["c1"], "r1")
        conv("r1", "c2", 8, 16, 3, stride: 2)
        m.node("Relu", ["c2"], "r2")
        conv("r2", "c3", 16, 16, 3)
        m.node("Relu", ["c3"], "r3")
        conv("r3", "box", 16, 4, 1)
        conv("r3", "logit", 16, 1, 1)
        m.node("Sigmoid", ["logit"], "score")
        m.outputs = ["box", "score"]
        return try m.graph()
    }

    /// `count` frames in grey levels: texture + a 12×12 square moving right and down + uniform noise in ±1.
    static func clip(_ count: Int) -> [[Float]] {
        let (h, w) = (shape[2], shape[3])
        let scene = randomFloats(3 * h * w, seed: 4100, lo: 40, hi: 200)
        let colour: [Float] = [230, 20, 120]
        return (0..<count).map { t in
            var frame = scene
            let (x0, y0) = (4 + t, 6 + t / 2)
            for c in 0..<3 {
                for y in y0..<min(h, y0 + 12) {
                    for x in x0..<min(w, x0 + 12) { frame[(c * h + y) * w + x] = colour[c] }
                }
            }
            let noise = randomFloats(frame.count, seed: 4200 + UInt64(t), lo: -1, hi: 1)
            for i in frame.indices { frame[i] += noise[i] }
            return frame
        }
    }

    static var base: SkipSettings {
        var s = SkipSettings()
        s.block = 8
        return s
    }

    /// Each output's missed-change ratio, and the MAC ratio, when `settings` run the clip, independently of the
    /// calibration's own runs.
    static func replay(
        _ graph: Graph, _ frames: [[Float]], _ settings: SkipSettings
    ) throws -> (missed: [Double], macRatio: Double) {
        let dense = try DenseExecutor(graph: graph)
        let skip = try SkipExecutor(graph: graph, settings: settings)
        var fidelity = Array(repeating: OutputFidelity(), count: graph.outputs.count)
        for frame in frames {
            try frame.withUnsafeBufferPointer { (b) throws(ModelError) in
                try dense.run(b)
                try skip.run(b)
            }
            for k in graph.outputs.indices { fidelity[k].add(skip.output(k), dense: dense.output(k)) }
        }
        return (fidelity.map(\.missedChangeRatio), skip.macRatio)
    }

    @Test func calibrationMeetsItsBudget() throws {
        let graph = try Self.graph()
        let frames = Self.clip(40)
        var options = Calibration.Options(budget: Self.budget)
        options.layers = 2
        var seen: [Calibration.Evaluation] = []
        let result = try Calibration.calibrate(graph: graph, frames: frames, base: Self.base, options: options) {
            seen.append($0)
        }
        #expect(result.evaluations == seen.count)
        #expect(seen.map(\.index) == Array(1...seen.count))
        #expect(seen.count <= 1 + (options.layers + 1) * options.maxSteps)
        #expect(seen.first?.stage == "exact")
        // The two biggest gated convs past the first: c3 (16·16·9 per position) and c2.
        #expect(result.layers.map(\.name) == ["c2", "c3"])
        #expect(result.layers.allSatisfy { $0.rms > 0 })
        #expect(result.layers.contains { $0.threshold > 0 })
        #expect(result.settings.inputThreshold > 0, "the input threshold never rose above the noise")
        #expect(result.settings.threshold == 0)
        #expect(result.loss <= Self.budget)
        #expect(result.exactMACRatio > 0.99, "noise everywhere: exact execution should be dense")
        #expect(result.macRatio < result.exactMACRatio)

        // Re-run independently, from the file as `skipconv` would load it.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("calibration-\(UUID()).skip.json")
        defer { try? FileManager.default.removeItem(at: path) }
        try result.settings.write(path: path.path)
        let settings = try SkipSettings.load(path: path.path)
        #expect(settings == result.settings)
        let replay = try Self.replay(graph, frames, settings)
        let loss = replay.missed.max() ?? .infinity
        #expect(loss <= Self.budget)
        // Exact layers pick dense or sparse recompute by their own timings: same values up to summation order, but
        // MAC counts that vary from run to run, so only the loss is compared closely.
        #expect(abs(loss - result.loss) <= 1e-9 + 1e-5 * loss, "calibration reported \(result.loss), re-run \(loss)")
        #expect(replay.macRatio < 1)
    }

    /// `outputs` limits the loss to the outputs named, `inputOnly` tunes the input threshold alone: the chosen
    /// setting meets the budget on the box output, re-run independently, and the loss is that output's alone (the
    /// score output, which it no longer reads, misses more of its change); no layer threshold is set.
    @Test func lossReadsOnlyTheOutputsNamed() throws {
        let graph = try Self.graph()
        let frames = Self.clip(40)
        var options = Calibration.Options(budget: Self.budget)
        options.outputs = [0]
        options.inputOnly = true
        let result = try Calibration.calibrate(graph: graph, frames: frames, base: Self.base, options: options)
        #expect(result.layers.isEmpty && result.settings.thresholds.isEmpty && result.settings.threshold == 0)
        #expect(result.settings.inputThreshold > 0)
        let missed = try Self.replay(graph, frames, result.settings).missed
        let (box, score) = (missed[0], missed[1])
        #expect(box <= Self.budget)
        #expect(abs(box - result.loss) <= 1e-9 + 1e-5 * box, "calibration reported \(result.loss), re-run \(box)")
        #expect(score > box, "not discriminating: the score output misses no more than the box")
        #expect(throws: ModelError.self) {
            var bad = options
            bad.outputs = [2]
            _ = try Calibration.calibrate(graph: graph, frames: frames, base: Self.base, options: bad)
        }
    }

    /// Two stretches of a clip (frames 0–19 and 40–59): each replays from a keyframe and the loss pools both. The
    /// chosen setting meets the budget re-run stretch by stretch with fresh executors, and the loss the calibration
    /// reports is that pooled re-run's, not the one of the 40 frames played as one clip (which would count the jump
    /// between the stretches as change).
    @Test func stretchesEachStartFromAKeyframe() throws {
        let graph = try Self.graph()
        let clip = Self.clip(60)
        let stretches = [Array(clip[0..<20]), Array(clip[40..<60])]
        var options = Calibration.Options(budget: Self.budget)
        options.outputs = [0]
        options.inputOnly = true
        let result = try Calibration.calibrate(graph: graph, segments: stretches, base: Self.base, options: options)
        #expect(result.settings.inputThreshold > 0)
        let dense = try DenseExecutor(graph: graph)
        var pooled = OutputFidelity()
        var joined = OutputFidelity()
        for stretch in stretches {
            let skip = try SkipExecutor(graph: graph, settings: result.settings)
            pooled.restart()
            for frame in stretch {
                try frame.withUnsafeBufferPointer { (b) throws(ModelError) in
                    try dense.run(b)
                    try skip.run(b)
                }
                pooled.add(skip.output(0), dense: dense.output(0))
                joined.add(skip.output(0), dense: dense.output(0))
            }
        }
        let loss = pooled.missedChangeRatio
        #expect(loss <= Self.budget)
        #expect(abs(loss - result.loss) <= 1e-9 + 1e-5 * loss, "calibration reported \(result.loss), re-run \(loss)")
        #expect(abs(joined.missedChangeRatio - result.loss) > 1e-3, "the jump between stretches made no difference")
        #expect(throws: ModelError.self) {
            try Calibration.calibrate(
                graph: graph, segments: [stretches[0], Array(clip[30..<31])], base: Self.base, options: options)
        }
    }

    @Test func badInputsGiveModelErrors() throws {
        let graph = try Self.graph()
        let frames = Self.clip(3)
        let cases: [(frames: [[Float]], budget: Double)] = [
            ([], 0.1), (Array(frames.prefix(1)), 0.1), (frames, 0), (frames, -1), (frames, .nan), (frames, .infinity),
            ([[1, 2, 3], [4, 5, 6]], 0.1),
        ]
        for (clip, budget) in cases {
            #expect(throws: ModelError.self, "\(clip.count) frames, budget \(budget)") {
                try Calibration.calibrate(
                    graph: graph, frames: clip, base: Self.base, options: Calibration.Options(budget: budget))
            }
        }
        var gumbel = Self.base
        gumbel.gate = .gumbel
        #expect(throws: ModelError.self) {
            try Calibration.calibrate(
                graph: graph, frames: frames, base: gumbel, options: Calibration.Options(budget: 0.1))
        }
    }
}
