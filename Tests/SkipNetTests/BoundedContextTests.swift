import Foundation
import Testing

@testable import SkipNet

/// Bounded context and the rolling refresh (`SkipSettings.context`, `.rollingRefresh`): which positions a layer may
/// recompute, on hand-made change maps, and what the executor then recomputes on CenterFace.
@Suite struct BoundedContextTests {
    /// A 128×128 image whose first layer (stride 2, a 64×64 plane) changed at one position, (20, 20): image pixels
    /// 40…41 in both directions. With a radius of 16, a stride-8 position x is allowed when [8x − 16, 8x + 24) meets
    /// [40, 42): 8x − 16 < 42 and 8x + 24 > 40, so x = 3…7 (and the same rows). The band of image rows 0…15 adds
    /// that plane's rows 0 and 1 whatever changed.
    @Test func allowedPositionsByHand() {
        let bounds = ContextBounds(radius: 16, imageWidth: 128, imageHeight: 128)
        let first = SpatialMask(width: 64, height: 64)
        first.set(x: 20, y: 20)
        bounds.begin(changed: first, band: 0..<0)
        let dirty = SpatialMask(width: 16, height: 16)
        dirty.fill()
        bounds.clip(dirty)
        #expect(positions(dirty) == rect(3...7, 3...7))

        bounds.begin(changed: first, band: 0..<16)
        dirty.fill()
        bounds.clip(dirty)
        #expect(positions(dirty) == rect(3...7, 3...7).union(rect(0...1, 0...15)))
        // A plane of the first layer's own stride: positions within 16 pixels (8 positions) of (20, 20).
        let own = SpatialMask(width: 64, height: 64)
        own.fill()
        bounds.begin(changed: first, band: 0..<0)
        bounds.clip(own)
        #expect(positions(own) == rect(12...28, 12...28))
        // Nothing changed at the first layer: nothing may be recomputed past it.
        bounds.begin(changed: SpatialMask(width: 64, height: 64), band: 0..<0)
        dirty.fill()
        bounds.clip(dirty)
        #expect(dirty.isEmpty)
    }

    /// The bands of one rotation cover every row of every plane, whatever the plane's stride.
    @Test(arguments: [1, 3, 7, 30, 1000])
    func bandsCoverEveryRow(bands: Int) {
        let bounds = ContextBounds(radius: 0, imageWidth: 768, imageHeight: 576)
        let first = SpatialMask(width: 384, height: 288)
        for height in [288, 144, 72, 36, 18] {
            var covered = Set<Int>()
            for frame in 0..<bands {
                bounds.begin(changed: first, band: ContextBounds.band(frame, of: bands, imageHeight: 576))
                covered.formUnion(bounds.bandRows(height: height))
            }
            #expect(covered == Set(0..<height), "plane height \(height), \(bands) bands")
        }
    }

    /// CenterFace at 256×192 on a still scene after the first (dense) frame, with a 16-pixel context: with a rolling
    /// refresh over 4 frames, every position of every output is recomputed within 4 frames and not every position on
    /// any one frame; without one, nothing is.
    @Test func rollingRefreshReachesEveryOutput() throws {
        let graph = try Self.centerFace()
        let input = Self.scene(seed: 1)
        for bands in [0, 4] {
            var settings = Self.exact()
            settings.context = 16
            settings.rollingRefresh = bands
            let executor = try SkipExecutor(graph: graph, settings: settings)
            _ = try executor.run(input)
            var union = graph.outputs.indices.map { _ in Set<Pos>() }
            for _ in 0..<4 {
                _ = try executor.run(input)
                for k in graph.outputs.indices {
                    let changed = executor.changedPositions(ofOutput: k)
                    if bands > 0 { #expect(!changed.isFull && !changed.isEmpty) } else { #expect(changed.isEmpty) }
                    union[k].formUnion(positions(changed))
                }
            }
            for k in graph.outputs.indices where bands > 0 {
                let s = graph.shape(of: graph.outputs[k])
                #expect(union[k] == rect(0...(s[2] - 1), 0...(s[3] - 1)), "output \(k)")
            }
        }
    }

    /// A 16×16 patch changes at image pixels 32…47. Exact propagation recomputes the change's whole footprint;
    /// with a 16-pixel context, every recomputed output lies within the patch ± (16 + 32) pixels (32: the first
    /// layer's 16-pixel tiles and 3×3 window around the patch; past it, no layer recomputes outside the region), the
    /// recomputed set is smaller, and every other output keeps the previous frame's value to the bit.
    @Test func changeIsFollowedOnlyWithinTheContext() throws {
        let graph = try Self.centerFace()
        let before = Self.scene(seed: 2)
        var after = before
        for c in 0..<3 {
            for y in 32..<48 {
                for x in 32..<48 { after.data[(c * 192 + y) * 256 + x] = 255 - after.data[(c * 192 + y) * 256 + x] }
            }
        }
        var counts: [Int] = []
        for context in [0, 16] {
            var settings = Self.exact()
            settings.context = context
            let executor = try SkipExecutor(graph: graph, settings: settings)
            let previous = try executor.run(before)
            let outputs = try executor.run(after)
            #expect(executor.keyframes == 1)
            let heat = executor.changedPositions(ofOutput: 0)
            counts.append(heat.count)
            if context > 0 {
                // The first conv (3×3, stride 2, 8-position tiles) recomputes image pixels 32…63; the region is
                // that ± 16, 16…79. No value past the input changed outside it, at any depth.
                for (v, value) in graph.values.enumerated() where v != graph.inputs[0] && value.shape.count == 4 {
                    guard let mask = executor.changedPositions(ofValue: v) else { continue }  // folded away
                    let (sx, sy) = (256 / value.shape[3], 192 / value.shape[2])
                    for p in positions(mask) {
                        let inside = p.x * sx < 80 && (p.x + 1) * sx > 16 && p.y * sy < 80 && (p.y + 1) * sy > 16
                        #expect(inside, "\(value.name) \(p)")
                    }
                }
            }
            for k in graph.outputs.indices {
                let changed = executor.changedPositions(ofOutput: k)
                let s = graph.shape(of: graph.outputs[k])
                let stride = 192 / s[2]
                let plane = s[2] * s[3]
                for y in 0..<s[2] {
                    for x in 0..<s[3] {
                        if changed[x, y] {
                            if context > 0 {
                                let reach = (32 - 48)..<(48 + 48)
                                #expect(
                                    reach.contains(y * stride) && reach.contains(x * stride), "output \(k) (\(y), \(x))"
                                )
                            }
                            continue
                        }
                        for c in 0..<s[1] {
                            let i = c * plane + y * s[3] + x
                            #expect(outputs[k].data[i] == previous[k].data[i])
                        }
                    }
                }
            }
        }
        #expect(counts[1] > 0 && counts[1] < counts[0], "recomputed heatmap positions, exact vs bounded: \(counts)")
    }

    /// Blocks with fewer set positions than the minimum are cleared, the others kept whole (8×8 blocks of a 16×12
    /// mask; the last row of blocks is 4 high).
    @Test func sparseTilesAreDropped() {
        let mask = SpatialMask(width: 16, height: 12)
        mask.set(x: 1, y: 1)  // block (0, 0): 1 position
        for x in 8..<11 { mask.set(x: x, y: 2) }  // block (0, 1): 3 positions
        for x in 0..<3 { mask.set(x: x, y: 9) }  // block (1, 0): 3 positions, a 4-row block
        mask.dropSparseTiles(tile: 8, minimum: 3)
        #expect(positions(mask) == rect(2...2, 8...10).union(rect(9...9, 0...2)))
        mask.dropSparseTiles(tile: 8, minimum: 4)
        #expect(mask.isEmpty)
    }

    /// `minPixels`: one changed pixel (codec noise) recomputes nothing, a changed 16×16 patch does.
    @Test func isolatedPixelsDoNotCount() throws {
        let graph = try Self.centerFace()
        let before = Self.scene(seed: 3)
        var settings = Self.exact()
        settings.minPixels = 4
        let executor = try SkipExecutor(graph: graph, settings: settings)
        _ = try executor.run(before)
        var pixel = before
        pixel.data[100 * 256 + 100] += 40
        _ = try executor.run(pixel)
        #expect(executor.changedPositions(ofOutput: 0).isEmpty)
        var patch = pixel
        for y in 96..<112 { for x in 96..<112 { patch.data[y * 256 + x] += 40 } }
        _ = try executor.run(patch)
        #expect(!executor.changedPositions(ofOutput: 0).isEmpty)
        #expect(executor.keyframes == 1)
    }

    /// Two threads give every output of every frame as one does (within float rounding), with the fused blocks'
    /// rectangles and the other convs' runs shared between the workers (checked to happen): three 48×48 squares move over a 512×384 scene, recomputed
    /// sparsely under a 16-pixel context with a rolling refresh.
    @Test func twoThreadsEqualOne() throws {
        let graph = try Self.centerFace(width: 512, height: 384)
        var settings = Self.exact()
        settings.context = 16
        settings.rollingRefresh = 5
        let frames = (0..<6).map { t in Self.movingSquares(frame: t, width: 512, height: 384) }
        var results: [[[Float]]] = []
        var parallel: [(blocks: Int, convs: Int)] = []
        for threads in [1, 2] {
            let executor = try SkipExecutor(graph: graph, settings: settings, threads: threads)
            results.append(try frames.flatMap { try executor.run($0).map(\.data) })
            parallel.append(executor.parallelFrames)
        }
        #expect(parallel[0] == (0, 0), "one thread, work on two workers: \(parallel[0])")
        #expect(parallel[1].blocks > 0 && parallel[1].convs > 0, "two threads, work on two workers: \(parallel[1])")
        for (k, (one, two)) in zip(results[0], results[1]).enumerated() {
            // Within float rounding (OpenBLAS and the dense kernels split their sums differently on two threads,
            // keyframes included); a rectangle lost or misplaced leaves a stale value, off by far more. Compared by
            // hand: a failed array comparison would print a diff of 100,000 floats.
            let scale = one.map(abs).max() ?? 0
            let worst = zip(one, two).map { abs($0 - $1) }.max() ?? 0
            #expect(
                worst <= 1e-5 * scale,
                "output \(k % graph.outputs.count) of frame \(k / graph.outputs.count): off by \(worst) of \(scale)")
        }
    }

    /// Every layer past the first exact (threshold 0), the first recomputing every change of a whole grey level (the
    /// scenes are whole numbers), every recompute sparse, no scene cut: what is left is the context.
    private static func exact() -> SkipSettings {
        var settings = SkipSettings()
        settings.inputThreshold = 0.5
        settings.threshold = 0
        settings.relative = false
        settings.breakEven = 1
        settings.sceneCut = 2
        settings.refresh = 0
        return settings
    }

    private static func centerFace(width: Int = 256, height: Int = 192) throws -> Graph {
        let path = DenseExecutorTests.root.appendingPathComponent("assets/centerface.onnx").path
        try #require(FileManager.default.fileExists(atPath: path))
        return try ONNXImporter.load(path: path, inputShape: [1, 3, height, width])
    }

    /// A gradient scene with three 48×48 squares that move 6–10 pixels a frame.
    static func movingSquares(frame t: Int, width: Int, height: Int) -> Tensor {
        var data = [Float](repeating: 0, count: 3 * width * height)
        let squares: [(x: Int, y: Int, grey: Float)] = [
            (40 + 8 * t, 60, 230), (300, 40 + 6 * t, 20), (200 - 10 * t, 250, 180),
        ]
        for c in 0..<3 {
            for y in 0..<height {
                for x in 0..<width {
                    var v = Float((x + 2 * y + 40 * c) % 256) * 0.6 + 30
                    for s in squares where (s.x..<s.x + 48).contains(x) && (s.y..<s.y + 48).contains(y) { v = s.grey }
                    data[(c * height + y) * width + x] = v
                }
            }
        }
        return Tensor(shape: [1, 3, height, width], data: data)
    }

    /// A seeded 0…255 image, smooth enough for CenterFace's activations to be ordinary.
    private static func scene(seed: UInt64) -> Tensor {
        var random = SeededGenerator(seed: seed)
        let data = (0..<(3 * 192 * 256)).map { i -> Float in
            let x = i % 256
            let y = (i / 256) % 192
            return (Float(x + y) / 448 * 200 + random.uniform(0...55)).rounded()
        }
        return Tensor(shape: [1, 3, 192, 256], data: data)
    }
}
