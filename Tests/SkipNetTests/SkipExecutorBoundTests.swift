import Foundation
import Testing

@testable import SkipNet

/// The skip executor against the dense executor (itself checked against onnxruntime) on seeded random layers and
/// synthetic clips: the output-norm bound of docs/skip-convolutions.md §2 per output, exactness at ε = 0 (§10), and no drift
/// under the commit rule (§1.1).
@Suite struct SkipExecutorBoundTests {
    /// One conv layer's geometry.
    struct Shape: CustomTestStringConvertible, Sendable {
        var cin: Int
        var cout: Int
        var kernel: Int
        var stride = 1
        var groups = 1
        var height = 12
        var width = 10
        var block = 1

        var testDescription: String {
            "\(cin)→\(cout) k\(kernel) s\(stride) g\(groups) \(height)×\(width) block \(block)"
        }
    }

    static func settings(_ gate: GateKind, _ epsilon: Float, block: Int) -> SkipSettings {
        var s = SkipSettings()
        s.gate = gate
        s.inputThreshold = epsilon
        s.threshold = epsilon
        s.relative = false
        s.block = block
        s.refresh = 0
        // No density fallback or scene cut: on small images they would turn frames into keyframes.
        s.breakEven = 1
        s.sceneCut = 2
        return s
    }

    // MARK: - The strict bound

    /// A skipped output (no committed input in its window) is off by ≤ ε per channel; an active one by ≤ k·ε, since
    /// each of its k² uncommitted inputs borders a skipped output and so has ‖r(q)‖₂ ≤ ε / max‖W_o‖₂.
    @Test(arguments: [
        Shape(cin: 3, cout: 4, kernel: 3),
        Shape(cin: 4, cout: 6, kernel: 3, stride: 2, height: 13, width: 11),
        Shape(cin: 2, cout: 3, kernel: 5, height: 9, width: 12),
        Shape(cin: 4, cout: 6, kernel: 3, groups: 2),
        Shape(cin: 6, cout: 6, kernel: 3, groups: 6),
        Shape(cin: 6, cout: 6, kernel: 3, stride: 2, groups: 6, height: 14, width: 14),
        Shape(cin: 3, cout: 4, kernel: 3, height: 16, width: 16, block: 4),
    ])
    func outputNormBoundHoldsOnRandomLayers(shape: Shape) throws {
        var rng = SeededGenerator(seed: 0x5eed + UInt64(shape.cin * 100 + shape.kernel * 10 + shape.groups))
        let (k, pad) = (shape.kernel, shape.kernel / 2)
        var m = TestModel([1, shape.cin, shape.height, shape.width])
        let fanIn = shape.cin / shape.groups * k * k
        // Filter norms spread up to ×20, largest in the middle, so that a gate using any filter's norm but the
        // largest lets errors through.
        var weights = rng.weights(shape.cout * fanIn, fanIn: fanIn)
        for o in 0..<shape.cout {
            let scale = Float(exp(1.5 - 3 * abs(2 * Double(o) / Double(shape.cout - 1) - 1)))
            for i in o * fanIn..<(o + 1) * fanIn { weights[i] *= scale }
        }
        m.conv(
            "x", "y", shape.cin, shape.cout, kernel: [k, k], strides: [shape.stride, shape.stride],
            pads: [pad, pad, pad, pad], groups: shape.groups, weights: weights,
            bias: (0..<shape.cout).map { _ in rng.normal() })
        m.outputs = ["y"]
        let graph = try m.graph(name: "bound")
        let epsilon: Float = 0.5
        let skip = try SkipExecutor(graph: graph, settings: Self.settings(.outputNorm, epsilon, block: shape.block))
        let dense = try DenseExecutor(graph: graph)

        let plane = shape.height * shape.width
        var x = (0..<shape.cin * plane).map { _ in rng.uniform(-1...1) }
        // ~15% of the values drift steadily by up to 0.02 a frame (below ε each frame, adding up over frames);
        // ~2% jump each frame.
        let drift = (0..<x.count).map { _ in rng.uniform(0...1) < 0.15 ? rng.uniform(-0.02...0.02) : 0 }
        var (skipped, active, skippedOff) = (0, 0, 0)
        for frame in 0..<12 {
            if frame > 0 {
                for i in x.indices { x[i] += drift[i] }
                for _ in 0..<max(1, x.count / 50) {
                    x[Int.random(in: 0..<x.count, using: &rng)] = rng.uniform(-1...1)
                }
            }
            let input = Tensor(shape: [1, shape.cin, shape.height, shape.width], data: x)
            let y = try skip.run(input)[0].data
            let want = try dense.run(input)[0].data
            let scale = want.reduce(0) { max($0, abs($1)) }
            let slack = 1e-5 * max(1, scale)
            let mask = skip.changedPositions(ofOutput: 0)
            let outPlane = mask.area
            for o in 0..<shape.cout {
                for p in 0..<outPlane {
                    let error = abs(y[o * outPlane + p] - want[o * outPlane + p])
                    let at = Pos(p / mask.width, p % mask.width)
                    if mask[at.x, at.y] {
                        active += 1
                        #expect(error <= Float(k) * epsilon + slack, "frame \(frame) active \(o) \(at)")
                    } else {
                        skipped += 1
                        if error > slack { skippedOff += 1 }
                        #expect(error <= epsilon + slack, "frame \(frame) skipped \(o) \(at)")
                    }
                }
            }
        }
        #expect(skip.keyframes == 1)
        #expect(active > 0)
        // Not vacuous: outputs were skipped with a residual pending (depthwise convs recompute exactly instead).
        if shape.groups < shape.cin { #expect(skipped > 0 && skippedOff > 0) }
    }

    // MARK: - Exactness at ε = 0 on a moving object

    /// A small network and the L∞ error it may reach under the output-norm gate at ε: each conv adds ≤ k·ε to what
    /// it passes on with gain max_o ‖W_o‖₁, a 2×2 transposed conv adds ≤ ε (an active input commits itself), ReLU
    /// is 1-Lipschitz and an Add sums its branches' errors.
    struct Net: CustomTestStringConvertible, Sendable {
        var name: String
        var graph: Graph
        var bound: @Sendable (Float) -> Float
        var testDescription: String { name }
    }

    static let clipShape = [1, 3, 24, 32]

    /// Random 3×3 (or `kernel`) conv weights; returns the L∞ gain max_o Σ|W_o|.
    static func conv(
        _ m: inout TestModel, _ x: String, _ y: String, _ cin: Int, _ cout: Int, kernel: Int = 3, stride: Int = 1,
        groups: Int = 1, rng: inout SeededGenerator
    ) -> Float {
        let fanIn = cin / groups * kernel * kernel
        let w = rng.weights(cout * fanIn, fanIn: fanIn)
        let p = kernel / 2
        m.conv(
            x, y, cin, cout, kernel: [kernel, kernel], strides: [stride, stride], pads: [p, p, p, p], groups: groups,
            weights: w, bias: (0..<cout).map { _ in rng.normal() * 0.1 })
        return (0..<cout).map { o in w[o * fanIn..<(o + 1) * fanIn].reduce(0) { $0 + abs($1) } }.max()!
    }

    static let nets: [Net] = {
        var rng = SeededGenerator(seed: 2024)
        var nets: [Net] = []
        func build(_ name: String, _ body: (inout TestModel) -> @Sendable (Float) -> Float) {
            var m = TestModel(clipShape)
            let bound = body(&m)
            m.outputs = ["y"]
            nets.append(Net(name: name, graph: try! m.graph(name: name), bound: bound))
        }
        build("strided") { m in
            _ = conv(&m, "x", "c1", 3, 8, stride: 2, rng: &rng)
            m.node("Relu", ["c1"], "a")
            let g = conv(&m, "a", "y", 8, 4, stride: 2, rng: &rng)
            return { e in g * 3 * e + 3 * e }
        }
        build("depthwise") { m in
            _ = conv(&m, "x", "c1", 3, 8, kernel: 1, rng: &rng)
            m.node("Relu", ["c1"], "a")
            let gd = conv(&m, "a", "c2", 8, 8, groups: 8, rng: &rng)
            m.node("Relu", ["c2"], "b")
            let g = conv(&m, "b", "y", 8, 4, kernel: 1, rng: &rng)
            return { e in g * (gd * e + 3 * e) + e }
        }
        // MobileNet blocks after a first conv, so that the block does not read the model input and runs as one
        // fused `SkipBlock` (over rectangles around the square) when its convs are exact.
        for stride in [1, 2] {
            build(stride == 1 ? "mobileBlock" : "mobileBlockStride2") { m in
                _ = conv(&m, "x", "c1", 3, 8, rng: &rng)
                m.node("Relu", ["c1"], "a")
                let ge = conv(&m, "a", "e", 8, 16, kernel: 1, rng: &rng)
                m.node("Relu", ["e"], "b")
                let gd = conv(&m, "b", "d", 16, 16, stride: stride, groups: 16, rng: &rng)
                m.node("Relu", ["d"], "c")
                let gp = conv(&m, "c", "y", 16, 8, kernel: 1, rng: &rng)
                return { e in gp * (gd * (ge * 3 * e + e) + 3 * e) + e }
            }
        }
        build("convTranspose") { m in
            _ = conv(&m, "x", "c1", 3, 8, stride: 2, rng: &rng)
            m.node("Relu", ["c1"], "a")
            let w = rng.weights(8 * 4 * 4, fanIn: 8)
            m.convTranspose("a", "y", 8, 4, kernel: [2, 2], strides: [2, 2], weights: w, bias: [0.1, -0.2, 0.3, 0])
            // Gain: max over (o, ky, kx) of Σ_c |W[c, o, ky, kx]|.
            let g = (0..<16).map { j in (0..<8).reduce(Float(0)) { $0 + abs(w[$1 * 16 + j]) } }.max()!
            return { e in g * 3 * e + e }
        }
        build("residualAdd") { m in
            _ = conv(&m, "x", "c1", 3, 8, rng: &rng)
            m.node("Relu", ["c1"], "a")
            let g2 = conv(&m, "a", "b", 8, 8, rng: &rng)
            m.node("Add", ["a", "b"], "s")
            let g3 = conv(&m, "s", "y", 8, 4, kernel: 1, rng: &rng)
            return { e in g3 * (3 * e + (g2 * 3 * e + 3 * e)) + e }
        }
        build("chain") { m in
            _ = conv(&m, "x", "c1", 3, 8, rng: &rng)
            m.node("Relu", ["c1"], "a")
            let g = conv(&m, "a", "y", 8, 4, rng: &rng)
            return { e in g * 3 * e + 3 * e }
        }
        return nets
    }()

    /// A static textured background with a 5×5 bright square moving right and down, and where frame t differs from
    /// frame t − 1 (the union of the square's two positions). `noise` adds fresh uniform noise in ±noise everywhere
    /// (then the mask is wrong: pass it only without noise).
    static func movingSquare(frame t: Int, noise: Float = 0) -> (Tensor, SpatialMask) {
        let (c, h, w) = (clipShape[1], clipShape[2], clipShape[3])
        var data = [Float](repeating: 0, count: c * h * w)
        for ch in 0..<c {
            for y in 0..<h {
                for x in 0..<w { data[(ch * h + y) * w + x] = Float((x * 3 + y * 5 + ch * 7) % 17) / 17 }
            }
        }
        let corner = { (t: Int) in (2 + t / 2, 3 + t) }
        let (y0, x0) = corner(t)
        for ch in 0..<c {
            for y in y0..<y0 + 5 {
                for x in x0..<x0 + 5 { data[(ch * h + y) * w + x] = 1.5 + Float(ch) * 0.25 }
            }
        }
        if noise > 0 {
            var rng = SeededGenerator(seed: UInt64(t))
            for i in data.indices { data[i] += rng.uniform(-noise...noise) }
        }
        let mask = SpatialMask(width: w, height: h)
        for (cy, cx) in [corner(max(0, t - 1)), corner(t)] {
            for y in cy..<cy + 5 {
                for x in cx..<cx + 5 { mask.set(x: x, y: y) }
            }
        }
        return (Tensor(shape: clipShape, data: data), mask)
    }

    /// Runs 20 frames of the moving square through skip and dense; per frame, the L∞ error of output 0 and the
    /// fraction of its positions the skip executor rewrote.
    static func play(
        _ net: Net, _ settings: SkipSettings, passMask: Bool, noise: Float = 0
    ) throws -> [(error: Float, rewritten: Double)] {
        let skip = try SkipExecutor(graph: net.graph, settings: settings)
        let dense = try DenseExecutor(graph: net.graph)
        var result: [(Float, Double)] = []
        for t in 0..<20 {
            let (input, mask) = movingSquare(frame: t, noise: noise)
            if passMask && t > 0 {
                try input.data.withUnsafeBufferPointer { (b) throws(ModelError) in try skip.run(b, changed: mask) }
            } else {
                _ = try skip.run(input)
            }
            let y = Array(skip.output(0))
            let want = try dense.run(input)[0].data
            result.append((maxAbsDifference(y, want), skip.changedPositions(ofOutput: 0).density))
            if t == 0 { #expect(relativeL2(y, want) <= 1e-6, "keyframe") }
        }
        #expect(skip.keyframes == 1)
        // Every conv, the transposed one included, ran as a skip layer (none fell back to dense).
        let convs = net.graph.nodes.filter { ["Conv", "ConvTranspose"].contains($0.info.opType) }.count
        #expect(skip.layerStats.count == convs)
        return result
    }

    @Test(
        arguments: nets,
        [
            (GateKind.inputSelect, Float(0)), (.outputNorm, .leastNonzeroMagnitude),
            (.inputNorm, .leastNonzeroMagnitude),
        ])
    func exactAtZeroThresholdOnAMovingObject(net: Net, gate: (GateKind, Float)) throws {
        for passMask in [false, true] {
            let frames = try Self.play(net, Self.settings(gate.0, gate.1, block: 8), passMask: passMask)
            let dense = try DenseExecutor(graph: net.graph)
            for (t, f) in frames.enumerated() {
                let scale = try dense.run(Self.movingSquare(frame: t).0)[0].data.reduce(0) { max($0, abs($1)) }
                #expect(f.error <= 1e-5 * scale, "frame \(t), change mask passed: \(passMask)")
                // Not vacuous: a moving 5×5 square rewrites part of the output, never all of it (except through an
                // exact first layer without a change mask, which has no reference to find the change with).
                let partial = passMask || gate.1 > 0
                if t > 0 { #expect(f.rewritten > 0 && (f.rewritten < 1 || !partial), "frame \(t)") }
            }
        }
    }

    /// Exact MobileNet blocks run as one fused step over rectangles around the change (`SkipBlock`): the previous
    /// test checks their values; this one that the block path ran and recomputed only part of the image.
    @Test(arguments: ["mobileBlock", "mobileBlockStride2"])
    func exactMobileBlocksRunFusedOverTheChangedRegionOnly(name: String) throws {
        let net = try #require(Self.nets.first { $0.name == name })
        let settings = Self.settings(.inputSelect, 0, block: 8)
        #expect(try SkipExecutor(graph: net.graph, settings: settings).blockCount == 1)
        let skip = try SkipExecutor(graph: net.graph, settings: settings)
        let dense = try DenseExecutor(graph: net.graph)
        for t in 0..<20 {
            let (input, mask) = Self.movingSquare(frame: t)
            try input.data.withUnsafeBufferPointer { (b) throws(ModelError) in
                try skip.run(b, changed: t == 0 ? nil : mask)
            }
            let want = try dense.run(input)[0].data
            let scale = want.reduce(0) { max($0, abs($1)) }
            #expect(maxAbsDifference(Array(skip.output(0)), want) <= 1e-5 * scale, "frame \(t)")
        }
        // The depthwise conv (second layer of the block) computed fewer positions than 20 dense frames.
        let depthwise = skip.layerStats[2]
        #expect(depthwise.activePositions > depthwise.positions && depthwise.activePositions < 10 * depthwise.positions)
    }

    /// Output-norm at ε = 0.05 on the same clip with noise of ±0.005 on every pixel (sub-threshold residuals that
    /// pile up against the reference): every frame within the bound composed over the network (``Net``).
    @Test(arguments: nets)
    func withinTheComposedBoundAtSmallEpsilon(net: Net) throws {
        let (epsilon, noise): (Float, Float) = (0.05, 0.005)
        let frames = try Self.play(net, Self.settings(.outputNorm, epsilon, block: 1), passMask: false, noise: noise)
        let dense = try DenseExecutor(graph: net.graph)
        for (t, f) in frames.enumerated() {
            let want = try dense.run(Self.movingSquare(frame: t, noise: noise).0)[0].data
            let scale = want.reduce(0) { max($0, abs($1)) }
            #expect(f.error <= net.bound(epsilon) + 1e-5 * scale, "frame \(t): bound \(net.bound(epsilon))")
        }
        // Not vacuous: something was skipped with a residual pending.
        #expect(frames.contains { $0.error > 1e-4 })
    }

    // MARK: - No drift

    /// A static 64×48 scene under fresh Gaussian noise (σ ≈ 2 grey levels) every frame, input-select at 7 grey
    /// levels on the first layer and 0.05 × RMS on the others, refresh off: 1000 frames, one keyframe. Every layer
    /// measures `x − x_ref` against what it last committed, so the noise never accumulates: the error against dense
    /// is as large at the end as at the start.
    ///
    /// Counterfactual (not run): with the Skip-Conv reference rule `x_ref ← x_t` on every frame and `z += W*(r⊙g)`,
    /// each skipped frame-to-frame difference `n_t − n_{t−1}` is lost for good; the losses no longer telescope, so
    /// the error is a random walk and its mean grows like √t (a NumPy replay of the first layer alone under that
    /// rule: late/early ≈ 4.4). In this executor's recompute form, committing everywhere would instead leave skipped
    /// outputs stale: bounded under i.i.d. noise, unbounded under slow drift (the next test).
    @Test func errorStaysFlatOverAThousandNoisyFrames() throws {
        var rng = SeededGenerator(seed: 1000)
        var m = TestModel([1, 1, 48, 64])
        _ = Self.conv(&m, "x", "c1", 1, 8, stride: 2, rng: &rng)
        m.node("Relu", ["c1"], "a")
        _ = Self.conv(&m, "a", "c2", 8, 8, rng: &rng)
        m.node("Relu", ["c2"], "b")
        _ = Self.conv(&m, "b", "c3", 8, 16, stride: 2, rng: &rng)
        m.node("Relu", ["c3"], "c")
        _ = Self.conv(&m, "c", "y", 16, 4, kernel: 1, rng: &rng)
        // The activations are outputs too, so that each layer's rewritten positions can be read.
        m.outputs = ["y", "a", "b", "c"]
        let graph = try m.graph(name: "noise")
        var settings = Self.settings(.inputSelect, 7, block: 4)
        settings.threshold = 0.05
        settings.relative = true
        let skip = try SkipExecutor(graph: graph, settings: settings)
        let dense = try DenseExecutor(graph: graph)

        // Scene in grey levels: a ramp with two flat rectangles.
        let (h, w) = (48, 64)
        var scene = [Float](repeating: 0, count: h * w)
        for y in 0..<h {
            for x in 0..<w {
                scene[y * w + x] = Float(40 + 2 * x + y)
                if (10..<30).contains(y) && (8..<24).contains(x) { scene[y * w + x] = 200 }
                if (30..<44).contains(y) && (40..<60).contains(x) { scene[y * w + x] = 20 }
            }
        }
        var errors: [Double] = []
        var rewritten = [Double](repeating: 0, count: 4)
        var frame = [Float](repeating: 0, count: h * w)
        for _ in 0..<1000 {
            // Sum of four random bytes, centred and scaled: ≈ Gaussian with σ ≈ 2, rounded to grey levels.
            for i in 0..<h * w {
                let r = rng.next()
                let s = Int(r & 0xff) + Int((r >> 8) & 0xff) + Int((r >> 16) & 0xff) + Int((r >> 24) & 0xff) - 510
                frame[i] = scene[i] + (Float(s) / 74).rounded()
            }
            let input = Tensor(shape: [1, 1, h, w], data: frame)
            let y = try skip.run(input)[0].data
            errors.append(relativeL2(y, try dense.run(input)[0].data))
            for i in 0..<4 { rewritten[i] += skip.changedPositions(ofOutput: i).density / 999 }
        }
        #expect(skip.keyframes == 1)
        let early = errors[1...100].reduce(0, +) / 100
        let late = errors[900...999].reduce(0, +) / 100
        #expect(early > 0, "the threshold must skip something")
        #expect(late <= 1.2 * early, "early \(early), late \(late)")
        // Not vacuous: noise crosses every layer's threshold somewhere (so every layer commits), yet most of each
        // layer is skipped.
        for (name, fraction) in zip(["y", "a", "b", "c"], rewritten) {
            // The keyframe rewrote everything: 1/999 of the mean.
            #expect(fraction > 0.01 && fraction < 0.9, "\(name): mean fraction rewritten \(fraction)")
        }
    }

    /// A 3×3 patch brightening by θ/2 per frame: against the previous frame it never exceeds θ, against the
    /// reference it does every third frame (θ/2, θ — not above — then 1.5θ), and it is committed then. Input-select
    /// commits every input over θ, so every pending |r| ≤ θ and every output is within max_o ‖W_o‖₁·θ of dense; if
    /// sub-threshold change were dropped instead, the error would grow by ‖W_o‖₁·θ/2 a frame.
    @Test func slowDriftIsCaughtOnceItAddsUpPastTheThreshold() throws {
        var rng = SeededGenerator(seed: 77)
        var m = TestModel([1, 2, 12, 12])
        let gain = Self.conv(&m, "x", "y", 2, 3, rng: &rng)
        m.outputs = ["y"]
        let graph = try m.graph(name: "drift")
        let theta: Float = 0.5
        let skip = try SkipExecutor(graph: graph, settings: Self.settings(.inputSelect, theta, block: 1))
        let dense = try DenseExecutor(graph: graph)
        var x = (0..<2 * 144).map { Float(($0 * 5) % 11) / 4 }
        var rewritten: [Int] = []
        for t in 0..<13 {
            if t > 0 {
                for c in 0..<2 {
                    for y in 5...7 {
                        for px in 4...6 { x[(c * 12 + y) * 12 + px] += theta / 2 }
                    }
                }
            }
            let input = Tensor(shape: [1, 2, 12, 12], data: x)
            let y = try skip.run(input)[0].data
            let want = try dense.run(input)[0].data
            #expect(maxAbsDifference(y, want) <= gain * theta + 1e-5, "frame \(t)")
            let changed = positions(skip.changedPositions(ofOutput: 0))
            rewritten.append(changed.count)
            if t > 0 && t % 3 == 0 {
                // The patch's footprint runs and commits: the output is exact again.
                #expect(changed == rect(4...8, 3...7), "frame \(t)")
                #expect(maxAbsDifference(y, want) <= 1e-5, "frame \(t)")
            }
        }
        #expect(rewritten == [144] + Array(repeating: [0, 0, 25], count: 4).flatMap { $0 })
    }
}
