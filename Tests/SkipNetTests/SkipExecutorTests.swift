import Foundation
import Testing

@testable import SkipNet

/// Each gate of docs/skip-convolutions.md §2 on hand-made residuals: a keyframe, then a frame with changes placed so that the
/// positions the gate must pick (strict comparisons, ties included) can be read off by hand. One conv, 2 → 2
/// channels, 3×3, pad 1, on 8×8; tiles of one position unless a test is about tiling.
@Suite struct SkipExecutorTests {
    static let shape = [1, 2, 8, 8]

    /// Filter 0: four ones (‖W_0‖₂ = 2); filter 1: ones over input channel 0 (‖W_1‖₂ = 3).
    static let weights: [Float] = {
        var w = [Float](repeating: 0, count: 2 * 18)
        for i in 0..<4 { w[i] = 1 }
        for i in 0..<9 { w[18 + i] = 1 }
        return w
    }()

    static func conv(stride: Int = 1) throws -> Graph {
        var m = TestModel(shape)
        m.conv(
            "x", "y", 2, 2, kernel: [3, 3], strides: [stride, stride], pads: [1, 1, 1, 1], weights: weights,
            bias: [0.5, -0.25])
        m.outputs = ["y"]
        return try m.graph(name: "gates")
    }

    /// One absolute threshold for every layer; no dense fallback or scene cut (changes on an 8×8 image are dense).
    static func settings(_ gate: GateKind, _ threshold: Float, block: Int = 1) -> SkipSettings {
        var s = SkipSettings()
        s.gate = gate
        s.inputThreshold = threshold
        s.threshold = threshold
        s.relative = false
        s.block = block
        s.breakEven = 1
        s.sceneCut = 2
        return s
    }

    /// A fixed textured frame plus `changes` as (channel, y, x, added value): the residual is exactly the change.
    static func frame(_ changes: [(Int, Int, Int, Float)] = [], shape: [Int] = shape) -> Tensor {
        let (h, w) = (shape[2], shape[3])
        var data = (0..<shape.reduce(1, *)).map { Float(($0 * 7) % 13) / 4 }
        for (c, y, x, v) in changes { data[(c * h + y) * w + x] += v }
        return Tensor(shape: shape, data: data)
    }

    /// Runs `frames` and returns the positions the executor recomputed on the last one.
    static func changed(_ graph: Graph, _ settings: SkipSettings, _ frames: [Tensor]) throws -> Set<Pos> {
        let executor = try SkipExecutor(graph: graph, settings: settings)
        for f in frames { _ = try executor.run(f) }
        #expect(executor.keyframes == 1 && executor.layerStats.allSatisfy { $0.denseFrames == 1 })
        let changed = positions(executor.changedPositions(ofOutput: 0))
        #expect(executor.layerStats.last?.lastActive == changed.count)
        return changed
    }

    // MARK: - input-select: max_c |r| > θ anywhere in the window

    @Test func inputSelectTakesTheLargestChannelAndIsStrict() throws {
        let graph = try Self.conv()
        let executor = try SkipExecutor(graph: graph, settings: Self.settings(.inputSelect, 0.5))
        let dense = try DenseExecutor(graph: graph)
        let y0 = try executor.run(Self.frame())[0].data
        let d0 = try dense.run(Self.frame())[0].data
        #expect(maxAbsDifference(y0, d0) <= 1e-5)
        // (1, 1): both channels at exactly θ (a channel sum would fire); (1, 5): −0.625 in channel 1 fires.
        let first = Self.frame([(0, 1, 1, 0.5), (1, 1, 1, -0.5), (0, 1, 5, 0.25), (1, 1, 5, -0.625)])
        let y1 = try executor.run(first)[0].data
        #expect(positions(executor.changedPositions(ofOutput: 0)) == rect(0...2, 4...6))
        #expect(executor.layerStats[0].lastActive == 9)
        // Recomputed outputs have the new value (their windows hold no uncommitted change); the rest kept theirs.
        let d1 = try dense.run(first)[0].data
        let recomputed = rect(0...2, 4...6)
        for o in 0..<2 {
            for y in 0..<8 {
                for x in 0..<8 {
                    let i = (o * 8 + y) * 8 + x
                    let want = recomputed.contains(Pos(y, x)) ? d1[i] : d0[i]
                    #expect(abs(y1[i] - want) <= 1e-5, "output \(o) at \(Pos(y, x))")
                }
            }
        }
        // (1, 1) moves on by 0.25 (< θ against the previous frame) but is 0.75 off its reference: it fires now.
        // (1, 5) was committed, so it stays quiet; after this frame everything is committed and equals dense.
        let second = Self.frame([(0, 1, 1, 0.75), (1, 1, 1, -0.5), (0, 1, 5, 0.25), (1, 1, 5, -0.625)])
        let y2 = try executor.run(second)[0].data
        #expect(positions(executor.changedPositions(ofOutput: 0)) == rect(0...2, 0...2))
        #expect(maxAbsDifference(y2, try dense.run(second)[0].data) <= 1e-5)
    }

    @Test func inputSelectPoolsOverEachOutputsOwnWindowAtStrideTwo() throws {
        // 4×4 outputs; output o reads inputs 2o − 1 … 2o + 1. Block 2 = the total stride: one-position tiles.
        let changed = try Self.changed(
            try Self.conv(stride: 2), Self.settings(.inputSelect, 0.5, block: 2),
            [Self.frame(), Self.frame([(1, 3, 3, 1), (0, 2, 6, -1), (1, 7, 0, 0.75), (0, 5, 5, 0.5)])])
        // (3, 3): rows and columns {1, 2}; (2, 6): row 1, column 3; (7, 0): row 3, column 0; (5, 5) is at θ.
        #expect(changed == rect(1...2, 1...2).union([Pos(1, 3), Pos(3, 0)]))
    }

    // MARK: - input-norm: Σ_c avgpool₃ₓ₃(|r_c|) > ε, i.e. Σ over the window of Σ_c |r| > 9ε

    @Test func inputNormSumsChannelsAndWindowAndIsStrict() throws {
        let changes: [(Int, Int, Int, Float)] = [
            (0, 1, 1, 0.5), (1, 1, 1, -0.625),  // Σ = 1.125 = 9ε: no output fires
            (0, 1, 5, 0.75), (1, 1, 5, 0.5),  // 1.25 > 9ε: its 3×3 neighbourhood fires
            (0, 5, 1, 0.75), (1, 5, 3, -0.75),  // 0.75 each; only column 2 (rows 4–6) sees both: 1.5
        ]
        let changed = try Self.changed(
            try Self.conv(), Self.settings(.inputNorm, 0.125), [Self.frame(), Self.frame(changes)])
        #expect(changed == rect(0...2, 4...6).union(rect(4...6, 2...2)))
    }

    // MARK: - output-norm: max_o ‖W_o‖₂ · ‖r_patch‖₂ > ε

    @Test func outputNormBoundsByTheLargestFilterNorm() throws {
        let norms = (0..<2).map { o in Self.weights[o * 18..<(o + 1) * 18].reduce(0) { $0 + $1 * $1 }.squareRoot() }
        #expect(norms == [2, 3])
        // ε = 1.5 with max‖W_o‖ = 3: fire when ‖r_patch‖₂ > 0.5 (with ‖W_0‖ = 2 it would take 0.75).
        let epsilon = 0.5 * norms.max()!
        let changes: [(Int, Int, Int, Float)] = [
            (0, 1, 1, 0.5),  // ‖r‖ = 0.5 exactly: no output fires
            (0, 1, 5, 0.375), (1, 1, 5, -0.375),  // ‖r‖² = 0.28125 > 0.25, though each channel alone is below
            (0, 5, 1, 0.25), (1, 5, 1, 0.25),  // ‖r‖² = 0.125
            (0, 5, 3, -0.25), (1, 5, 3, 0.375),  // 0.203125; column 2 (rows 4–6) holds both: 0.328125 > 0.25
        ]
        let changed = try Self.changed(
            try Self.conv(), Self.settings(.outputNorm, epsilon), [Self.frame(), Self.frame(changes)])
        #expect(changed == rect(0...2, 4...6).union(rect(4...6, 2...2)))
    }

    // MARK: - gumbel: bias + Σ w·|r| ≥ 0 over the layer's own window

    @Test func gumbelWithoutTrainedGatesIsAnError() throws {
        // A gated conv without its gate would never recompute; the executor refuses it up front.
        var settings = Self.settings(.gumbel, 0)
        #expect(throws: ModelError.self) { try SkipExecutor(graph: try Self.conv(), settings: settings) }
        settings.gumbel = [try Self.conv().nodes[0].info.name: GumbelGate(weights: [1, 2, 3], bias: 0)]
        #expect(throws: ModelError.self) { try SkipExecutor(graph: try Self.conv(), settings: settings) }
    }

    @Test func gumbelFiresOnNonNegativeLogits() throws {
        // Gate weights [C_in, 3, 3]: input channel 0 at the centre (1), channel 1 at ky = 0, kx = 2 (2), i.e. the
        // input one row up and one column right of the output. Bias −1.
        var w = [Float](repeating: 0, count: 18)
        w[4] = 1
        w[9 + 2] = 2
        var settings = Self.settings(.gumbel, 0)
        settings.gumbel = ["y": GumbelGate(weights: w, bias: -1)]
        let changes: [(Int, Int, Int, Float)] = [
            (0, 2, 2, 1),  // output (2, 2): −1 + 1 = 0 ≥ 0, fires
            (0, 5, 6, -0.75),  // output (5, 6): −0.25
            (1, 5, 5, -0.5),  // output (6, 4): −1 + 2·0.5 = 0, fires
            (1, 1, 6, 0.25),  // output (2, 5): −0.5
        ]
        let changed = try Self.changed(try Self.conv(), settings, [Self.frame(), Self.frame(changes)])
        #expect(changed == [Pos(2, 2), Pos(6, 4)])
    }

    // MARK: - Tiles and thresholds

    @Test func aTileRunsWhole() throws {
        // Block 4 at stride 1: 4×4 tiles. Each change's 3×3 footprint lies in one tile, which runs entirely; its
        // inputs are then read only by active outputs, so they commit and the whole output equals dense.
        let graph = try Self.conv()
        let executor = try SkipExecutor(graph: graph, settings: Self.settings(.inputSelect, 0.5, block: 4))
        _ = try executor.run(Self.frame())
        let next = Self.frame([(0, 1, 5, 1), (1, 6, 1, -1)])
        let y = try executor.run(next)[0].data
        #expect(positions(executor.changedPositions(ofOutput: 0)) == rect(0...3, 4...7).union(rect(4...7, 0...3)))
        #expect(executor.layerStats[0].lastActive == 32)
        #expect(maxAbsDifference(y, try DenseExecutor(graph: graph).run(next)[0].data) <= 1e-5)
    }

    @Test func blockEqualToTheTotalStrideGivesOnePositionTilesOnOddSizes() throws {
        // 13×11 → 7×6 at stride 2 (pad 1): output o reads inputs 2o − 1 … 2o + 1, so the total stride is 2 and
        // block 2 means one-position tiles (SkipSettings.block: max(1, block/s)² positions per tile); a stride taken
        // as imageHeight / outH = 13 / 7 = 1 would tile 2×2 positions.
        var m = TestModel([1, 1, 13, 11])
        m.conv("x", "y", 1, 2, kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1])
        m.outputs = ["y"]
        let shape = [1, 1, 13, 11]
        let changed = try Self.changed(
            try m.graph(name: "odd"), Self.settings(.inputSelect, 0.5, block: 2),
            [Self.frame(shape: shape), Self.frame([(0, 3, 3, 1)], shape: shape)])
        #expect(changed == rect(1...2, 1...2))
    }

    @Test func keyframesOnFirstFrameRefreshResetAndSceneCut() throws {
        var settings = Self.settings(.inputSelect, 0.5)
        settings.refresh = 3
        let executor = try SkipExecutor(graph: try Self.conv(), settings: settings)
        var pattern: [Bool] = []
        for t in 0..<7 {
            _ = try executor.run(Self.frame([(0, 4, 4, Float(t))]))
            pattern.append(executor.lastWasKeyframe)
        }
        // Frame 0, then every 3 frames.
        #expect(pattern == [true, false, false, true, false, false, true])
        executor.reset()
        _ = try executor.run(Self.frame())
        #expect(executor.lastWasKeyframe)
        // Scene cut: the first layer's gate picks more than `sceneCut` of its outputs.
        settings.refresh = 0
        settings.sceneCut = 0.5
        let cut = try SkipExecutor(graph: try Self.conv(), settings: settings)
        _ = try cut.run(Self.frame())
        _ = try cut.run(Self.frame([(0, 4, 4, 1)]))
        #expect(!cut.lastWasKeyframe)
        _ = try cut.run(Self.frame((0..<8).flatMap { y in (0..<8).map { (1, y, $0, 1) } }))
        #expect(cut.lastWasKeyframe && cut.keyframes == 2)
    }

    /// Identity 1×1 conv `a` (reads the model input) → the 3×3 conv `y` (reads `a`): the first layer takes
    /// `inputThreshold`, the second `threshold`, and a `thresholds` entry overrides either.
    static func twoLayers() throws -> Graph {
        var m = TestModel([1, 2, 8, 8])
        m.conv("x", "a", 2, 2, kernel: [1, 1], weights: [1, 0, 0, 1])
        m.conv("a", "y", 2, 2, kernel: [3, 3], pads: [1, 1, 1, 1], weights: weights)
        m.outputs = ["y"]
        return try m.graph(name: "two")
    }

    @Test func firstLayerTakesInputThresholdLaterLayersThreshold() throws {
        let graph = try Self.twoLayers()
        let frames = [Self.frame(), Self.frame([(0, 4, 4, 0.75)])]
        var settings = Self.settings(.inputSelect, 0)
        // 0.75 passes the exact first layer and fires the second at θ = 0.5.
        settings.threshold = 0.5
        #expect(try Self.changed(graph, settings, frames) == rect(3...5, 3...5))
        // Above the second layer's θ, stopped by the first layer's.
        settings.inputThreshold = 1
        settings.threshold = 0
        #expect(try Self.changed(graph, settings, frames) == [])
        // Per-layer entries override both.
        settings.thresholds = ["a": 0.5, "y": 1]
        #expect(try Self.changed(graph, settings, frames) == [])
        settings.thresholds = ["a": 0.5, "y": 0.5]
        #expect(try Self.changed(graph, settings, frames) == rect(3...5, 3...5))
    }

    @Test func relativeThresholdScalesByTheLayersRMSOnTheFirstKeyframe() throws {
        var settings = Self.settings(.inputSelect, 0)
        settings.threshold = 0.5
        settings.relative = true
        let executor = try SkipExecutor(graph: try Self.twoLayers(), settings: settings)
        let x = Self.frame()
        _ = try executor.run(x)
        // Input-select is relative to the layer's input RMS; `y` reads `a` = x.
        let rms = (x.data.reduce(0) { $0 + Double($1) * Double($1) } / Double(x.count)).squareRoot()
        #expect(executor.layerStats.map(\.name) == ["a", "y"])
        #expect(executor.layerStats[0].threshold == 0)
        #expect(abs(Double(executor.layerStats[1].threshold) - 0.5 * rms) <= 1e-5 * rms)
    }
}

/// The settings file: every field optional, one clear error naming the file otherwise.
@Suite struct SkipSettingsTests {
    static func file(_ text: String) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("skip-\(UUID()).skip.json")
        try Data(text.utf8).write(to: url)
        return url.path
    }

    @Test func emptyObjectDecodesToDefaults() throws {
        let decoded = try JSONDecoder().decode(SkipSettings.self, from: Data("{}".utf8))
        #expect(decoded == SkipSettings())
        let path = try Self.file("{}")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let loaded = try SkipSettings.load(path: path)
        #expect(loaded == SkipSettings())
        #expect(loaded.gate == .inputSelect && loaded.block == 16 && loaded.refresh == 300 && loaded.relative)
    }

    @Test func writtenSettingsLoadBack() throws {
        var s = SkipSettings()
        s.gate = .gumbel
        s.thresholds = ["conv1": 0.25]
        s.gumbel = ["conv1": GumbelGate(weights: [1, -2], bias: 0.5)]
        s.refresh = 0
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("skip-\(UUID()).skip.json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try s.write(path: path)
        #expect(try SkipSettings.load(path: path) == s)
    }

    @Test(arguments: [
        ("{\"gate\": \"output-norm\", \"block\": ", "not valid JSON"),
        ("{\"gate\": \"median\"}", "median"),
        ("{\"block\": \"big\"}", "'block' has the wrong type"),
        ("{\"thresholds\": {\"conv1\": \"x\"}}", "wrong type"),
        // Values the executor cannot use: each once passed loading and failed (or trapped) at run time.
        ("{\"block\": 0}", "'block' must be 1 to 1024 pixels"),
        ("{\"inputThreshold\": -1}", "'inputThreshold' must be a number ≥ 0"),
        ("{\"sceneCut\": -1}", "'sceneCut' must be a number ≥ 0"),
        ("{\"thresholds\": {\"conv1\": -0.5}}", "'thresholds.conv1' must be a number ≥ 0"),
        ("{\"context\": -16}", "'context' must be 0 to 100000 pixels"),
        ("{\"rollingRefresh\": -1}", "'rollingRefresh' must be 0 to 1000000 frames"),
        ("{\"dilation\": 1000000}", "'dilation' must be 0 to 64 positions"),
    ])
    func malformedFileNamesItself(text: String, reason: String) throws {
        let path = try Self.file(text)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let error = #expect(throws: ModelError.self) { try SkipSettings.load(path: path) }
        #expect(error?.message.hasPrefix(path) == true, "\(error?.message ?? "")")
        #expect(error?.message.contains(reason) == true, "\(error?.message ?? "")")
    }

    @Test func missingFileNamesItself() {
        let path = "/nonexistent/settings.skip.json"
        let error = #expect(throws: ModelError.self) { try SkipSettings.load(path: path) }
        #expect(error?.message.hasPrefix(path) == true)
    }

    @Test func unknownGateIsRejected() {
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(SkipSettings.self, from: Data("{\"gate\": \"median\"}".utf8))
        }
        #expect(GateKind.allCases.map(\.rawValue).sorted() == ["gumbel", "input-norm", "input-select", "output-norm"])
    }
}
