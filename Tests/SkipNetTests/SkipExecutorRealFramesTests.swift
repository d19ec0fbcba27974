import Foundation
import Testing

@testable import SkipNet

/// The skip executor at ε = 0 against onnxruntime on consecutive real frames of vtest.avi: every output within 1e-4
/// relative (max-abs difference over max-abs value) on every frame, with the sparse path forced (no dense fallback,
/// no scene cut) so that frames after the first really go through partial recomputes. Two ways to be exact: every
/// layer propagating exactly (threshold 0), and every layer gated by the output-norm bound at the smallest positive ε
/// (gates, commits into the reference and tiles all in play). A context wider than the image with a rolling refresh
/// (bounds computed, the band recomputed on every frame) must change nothing.
@Suite struct SkipExecutorRealFramesTests {
    @Test(arguments: [
        (GateKind.inputSelect, Float(0), 16, 0), (.outputNorm, .leastNonzeroMagnitude, 16, 0),
        (.outputNorm, .leastNonzeroMagnitude, 64, 0), (.outputNorm, .leastNonzeroMagnitude, 16, 100_000),
    ])
    func exactAtZeroThreshold(gate: GateKind, epsilon: Float, block: Int, context: Int) throws {
        try withRealFrames(Array(100..<106)) { graph, meta, dir in
            try exactAtZeroThreshold(gate, epsilon, block, context, graph, meta, dir)
        }
    }

    /// CenterFace on vtest.avi `frames` as onnxruntime runs them (inputs and outputs written to a temporary
    /// directory, removed afterwards), and the graph at that input shape.
    private func withRealFrames(
        _ frames: [Int], _ body: (Graph, DenseExecutorTests.Meta, URL) throws -> Void
    ) throws {
        let modelPath = DenseExecutorTests.root.appendingPathComponent("assets/centerface.onnx").path
        let clip = DenseExecutorTests.root.appendingPathComponent("assets/vtest.avi").path
        try #require(FileManager.default.fileExists(atPath: modelPath) && FileManager.default.fileExists(atPath: clip))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("skipnet-skip-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let meta = try DenseExecutorTests.onnxruntimeReference(
            model: modelPath, clip: clip, frames: frames, layout: "nchw", into: dir)
        try body(try ONNXImporter.load(path: modelPath, inputShape: meta.inputShape), meta, dir)
    }

    private func exactAtZeroThreshold(
        _ gate: GateKind, _ epsilon: Float, _ block: Int, _ context: Int, _ graph: Graph,
        _ meta: DenseExecutorTests.Meta, _ dir: URL
    ) throws {
        var settings = SkipSettings()
        settings.gate = gate
        settings.inputThreshold = epsilon
        settings.threshold = epsilon
        settings.relative = false
        settings.block = block
        settings.breakEven = 1
        settings.sceneCut = 2
        settings.context = context
        settings.rollingRefresh = context > 0 ? 3 : 0
        let executor = try SkipExecutor(graph: graph, settings: settings)
        let names = graph.outputs.map { graph.values[$0].name }
        for frame in meta.frames {
            let input = try DenseExecutorTests.floats(dir.appendingPathComponent("frame\(frame).input"))
            let outputs = try executor.run(Tensor(shape: meta.inputShape, data: input))
            for (k, reference) in meta.outputs.enumerated() {
                let mine = try #require(names.firstIndex(of: reference.name))
                let expected = try DenseExecutorTests.floats(dir.appendingPathComponent("frame\(frame).out\(k)"))
                let scale = expected.map(abs).max() ?? 0
                let diff = zip(outputs[mine].data, expected).map { abs($0 - $1) }.max() ?? .infinity
                #expect(diff / max(scale, .leastNormalMagnitude) <= 1e-4, "frame \(frame) \(reference.name)")
            }
        }
        // Only the first frame was dense: the others went through gates, commits and partial recomputes.
        #expect(executor.keyframes == 1)
        #expect(executor.layerStats.allSatisfy { $0.denseFrames == 1 })
    }

    /// The timed choice between the whole-image kernel and the sparse path, scripted: every exact layer and block
    /// takes the dense path on some frames after the first and the sparse one on others (the rotation differs from
    /// layer to layer as their decision counts do). Real frames pasted into a 192×256 window of the first one keep
    /// the change partial; every output stays within 1e-4 of the dense executor on the same input (itself checked
    /// against onnxruntime above): whichever path the timer would pick, the values are the same.
    @Test(arguments: [[true, false], [false, true, true]])
    func eachPathStaysExact(pattern: [Bool]) throws {
        try withRealFrames(Array(100..<105)) { graph, meta, dir in
            var settings = SkipSettings()
            settings.inputThreshold = 0
            settings.threshold = 0
            settings.relative = false
            settings.breakEven = 0.5
            settings.sceneCut = 2
            let executor = try SkipExecutor(
                graph: graph, settings: settings, threads: 1, feedsBlocks: true, paths: { ScriptedPaths(pattern) })
            let dense = try DenseExecutor(graph: graph)
            let (h, w) = (meta.inputShape[2], meta.inputShape[3])
            let first = try DenseExecutorTests.floats(dir.appendingPathComponent("frame\(meta.frames[0]).input"))
            // Only the window may have changed: the executor is told so, as a gate would.
            let window = SpatialMask(width: w, height: h)
            for y in 100..<min(h, 292) { for x in 200..<min(w, 456) { window.set(x: x, y: y) } }
            for frame in meta.frames {
                var input = first
                let real = try DenseExecutorTests.floats(dir.appendingPathComponent("frame\(frame).input"))
                for c in 0..<3 {
                    for y in 100..<min(h, 292) {
                        for x in 200..<min(w, 456) { input[(c * h + y) * w + x] = real[(c * h + y) * w + x] }
                    }
                }
                let tensor = Tensor(shape: meta.inputShape, data: input)
                try input.withUnsafeBufferPointer { try executor.run($0, changed: window) }
                let expected = try dense.run(tensor)
                for k in expected.indices {
                    let scale = expected[k].data.map(abs).max() ?? 0
                    let diff = zip(executor.output(k), expected[k].data).map { abs($0 - $1) }.max() ?? .infinity
                    #expect(diff / max(scale, .leastNormalMagnitude) <= 1e-4, "frame \(frame) output \(k)")
                }
            }
            #expect(executor.keyframes == 1)
            // Past the keyframe, layers ran dense on some frames and sparse on others.
            let stats = executor.layerStats.filter { $0.op == "Conv" && $0.threshold == 0 }
            #expect(stats.contains { $0.denseFrames > 1 })
            #expect(stats.contains { $0.denseFrames < meta.frames.count }, "\(stats.map(\.denseFrames))")
        }
    }

    /// The block after the first conv computes the conv's outputs that its windows read, and the conv's output is
    /// written only when the block runs whole: on real frames with the input gate at θ = 5, every output equals the
    /// one of the same executor whose conv writes its output and whose block copies windows from it — to rounding:
    /// the fed block counts the conv's MACs in its windows, so it merges its rectangles differently and sums some
    /// outputs in another order (a window read from the wrong place would be off by far more). With a scene cut on
    /// every frame (`sceneCut` 0) the fed block runs whole after the gate and must write the conv's output first:
    /// equal to the bit.
    @Test(arguments: [2.0, 0.0])
    func fedBlockChangesNothing(sceneCut: Double) throws {
        try withRealFrames(Array(100..<105)) { graph, meta, dir in try fedBlock(sceneCut, graph, meta, dir) }
    }

    private func fedBlock(_ sceneCut: Double, _ graph: Graph, _ meta: DenseExecutorTests.Meta, _ dir: URL) throws {
        var settings = SkipSettings()
        settings.inputThreshold = 5
        settings.block = 16
        settings.breakEven = 1
        settings.sceneCut = sceneCut
        let fed = try SkipExecutor(graph: graph, settings: settings, threads: 1, feedsBlocks: true)
        let plain = try SkipExecutor(graph: graph, settings: settings, threads: 1, feedsBlocks: false)
        #expect(fed.fedCount == 1 && plain.fedCount == 0)
        for frame in meta.frames {
            let input = try DenseExecutorTests.floats(dir.appendingPathComponent("frame\(frame).input"))
            let a = try fed.run(Tensor(shape: meta.inputShape, data: input))
            let b = try plain.run(Tensor(shape: meta.inputShape, data: input))
            for k in a.indices {
                if sceneCut > 1 {
                    let error = maxAbsDifference(a[k].data, b[k].data) / b[k].data.reduce(0) { max($0, abs($1)) }
                    #expect(error <= 5e-5, "frame \(frame), output \(k): \(error)")
                } else {
                    let differing = zip(a[k].data, b[k].data).filter { $0 != $1 }.count
                    #expect(differing == 0, "frame \(frame), output \(k): \(differing) values differ")
                }
            }
        }
        let (first, block) = (fed.layerStats[0], fed.layerStats[1])
        if sceneCut > 1 {
            // Past the keyframe the block ran rectangles, computing the first conv's outputs in their windows.
            #expect(first.denseFrames == 1 && block.denseFrames == 1)
            #expect(first.lastExecutedMACs > 0 && first.lastExecutedMACs < first.denseMACs)
        } else {
            #expect(fed.keyframes == meta.frames.count && block.denseFrames == meta.frames.count)
        }
        #expect(fed.layerStats.map(\.lastSelectedMACs) == plain.layerStats.map(\.lastSelectedMACs))
    }
}
