import Foundation
import Testing

@testable import SkipNet

/// The motion-region baseline (``RegionExecutor``): tile geometry by hand, and on a hand-made moving square, which
/// tiles run and that the stitched outputs equal a whole-image run of a model whose receptive field fits the margin.
@Suite struct RegionExecutorTests {
    /// 256×192, 64-pixel tiles, 16-pixel margins: 96×96 crops, moved inside the image at the borders.
    @Test func gridByHand() throws {
        let grid = try RegionGrid(width: 256, height: 192, tile: 64, margin: 16, alignment: 4)
        #expect(grid.tiles.count == 12 && grid.cropWidth == 96 && grid.cropHeight == 96)
        let t = grid.tiles
        #expect(t[0] == RegionGrid.Tile(columns: 0..<64, rows: 0..<64, cropX: 0, cropY: 0))
        #expect(t[1] == RegionGrid.Tile(columns: 64..<128, rows: 0..<64, cropX: 48, cropY: 0))
        #expect(t[3] == RegionGrid.Tile(columns: 192..<256, rows: 0..<64, cropX: 160, cropY: 0))
        #expect(t[5] == RegionGrid.Tile(columns: 64..<128, rows: 64..<128, cropX: 48, cropY: 48))
        #expect(t[11] == RegionGrid.Tile(columns: 192..<256, rows: 128..<192, cropX: 160, cropY: 96))
        #expect(throws: ModelError.self) { try RegionGrid(width: 256, height: 192, tile: 62, margin: 16, alignment: 4) }
    }

    /// Three 3×3 convs (strides 2, 2, 1: outputs at stride 4) see at most 8 pixels around an output's own 4×4 pixels,
    /// within the 16-pixel margin, so every recomputed tile's outputs are those of the whole image. A 20×20 square
    /// moves inside tile (1, 1) of a 4×3 grid (columns 64…127), its changes staying 16 pixels (the context, in whole
    /// 16-pixel blocks) from the next tile: only that tile runs, and every output equals a whole-image run of the
    /// same frame, on one thread and on two.
    @Test(arguments: [1, 2]) func movingSquare(threads: Int) throws {
        let (graph, crop) = (try Self.model(width: 256, height: 192), try Self.model(width: 96, height: 96))
        var settings = RegionExecutor.Settings()
        settings.tile = 64
        settings.margin = 16
        settings.threshold = 10
        settings.minPixels = 1
        settings.context = 8
        settings.refresh = 0
        let executor = try RegionExecutor(graph: graph, cropGraph: crop, settings: settings, threads: threads)
        let reference = try DenseExecutor(graph: graph)
        for (frame, x) in [80, 84, 88, 92].enumerated() {
            let input = Self.scene(squareX: x, squareY: 90)
            try input.data.withUnsafeBufferPointer { try executor.run($0) }
            if frame == 0 {
                #expect(executor.lastWasKeyframe && executor.lastTiles.count == 12)
            } else {
                #expect(!executor.lastWasKeyframe)
                #expect(executor.lastTiles == [5], "frame \(frame)")
                #expect(executor.lastExecutedMACs == executor.cropMACs)
            }
            let expected = try reference.run(input)
            for k in expected.indices {
                let mine = Array(executor.output(k))
                let worst = zip(mine, expected[k].data).map { abs($0 - $1) }.max() ?? 0
                let scale = expected[k].data.map(abs).max() ?? 0
                #expect(worst <= 1e-5 * scale, "frame \(frame) output \(k): off by \(worst) of \(scale)")
            }
        }
        // A still frame runs nothing and keeps the outputs.
        let before = Array(executor.output(0))
        try Self.scene(squareX: 92, squareY: 90).data.withUnsafeBufferPointer { try executor.run($0) }
        #expect(executor.lastTiles.isEmpty && executor.lastExecutedMACs == 0)
        #expect(Array(executor.output(0)) == before)
    }

    /// A square that moves across a tile border runs both tiles; one that changes most tiles makes a keyframe (the
    /// crops would cost more than the whole image).
    @Test func crossingAndKeyframes() throws {
        let (graph, crop) = (try Self.model(width: 256, height: 192), try Self.model(width: 96, height: 96))
        var settings = RegionExecutor.Settings()
        (settings.tile, settings.margin, settings.threshold, settings.minPixels, settings.context) = (64, 16, 10, 1, 0)
        let executor = try RegionExecutor(graph: graph, cropGraph: crop, settings: settings)
        try Self.scene(squareX: 100, squareY: 90).data.withUnsafeBufferPointer { try executor.run($0) }
        try Self.scene(squareX: 110, squareY: 90).data.withUnsafeBufferPointer { try executor.run($0) }
        #expect(executor.lastTiles == [5, 6])
        var flash = Self.scene(squareX: 110, squareY: 90)
        for i in flash.data.indices { flash.data[i] += 50 }
        try flash.data.withUnsafeBufferPointer { try executor.run($0) }
        #expect(executor.lastWasKeyframe && executor.keyframes == 2)
    }

    /// Conv 3→4 (3×3, stride 2) → ReLU → conv 4→4 (3×3, stride 2) → conv 4→2 (3×3), seeded weights.
    static func model(width: Int, height: Int) throws -> Graph {
        var random = SeededGenerator(seed: 11)
        func weights(_ n: Int) -> [Float] { (0..<n).map { _ in random.uniform(-0.3...0.3) } }
        var m = TestModel([1, 3, height, width])
        m.conv(
            "x", "a", 3, 4, kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], weights: weights(108), bias: weights(4)
        )
        m.node("Relu", ["a"], "ar")
        m.conv("ar", "b", 4, 4, kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], weights: weights(144))
        m.conv("b", "y", 4, 2, kernel: [3, 3], pads: [1, 1, 1, 1], weights: weights(72), bias: weights(2))
        m.outputs = ["y"]
        return try m.graph(name: "regions")
    }

    /// A 256×192 gradient with a 20×20 square of grey 240 at (`squareX`, `squareY`).
    static func scene(squareX: Int, squareY: Int) -> Tensor {
        var data = [Float](repeating: 0, count: 3 * 192 * 256)
        for c in 0..<3 {
            for y in 0..<192 {
                for x in 0..<256 {
                    let inside = (squareX..<squareX + 20).contains(x) && (squareY..<squareY + 20).contains(y)
                    data[(c * 192 + y) * 256 + x] = inside ? 240 : Float((x + y + 30 * c) % 200)
                }
            }
        }
        return Tensor(shape: [1, 3, 192, 256], data: data)
    }
}
