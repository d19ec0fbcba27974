import Foundation

/// The motion-region baseline (what Frigate and DL Streamer's `gvamotiondetect` + `inference-region` do): the model
/// runs densely, at full speed, on crops around the tiles of the image that changed, and every other tile keeps its
/// outputs from the last time it ran. A tile changed when at least `minPixels` pixels within `context` of it moved
/// by more than `threshold` (any channel) since that tile last ran; its crop is the tile plus `margin` pixels around
/// it (``RegionGrid``), and only the tile's own outputs are kept from the crop. Outputs are exact wherever the
/// model's receptive field stays within the crop; beyond it, the crop's border stands in for the image.
///
/// Keyframes (the whole image, densely): the first frame, every `refresh` frames, and any frame whose changed tiles
/// would cost more MACs than the whole image. With several threads, the changed tiles are shared among workers, one
/// crop executor each on one thread (small crops split badly over threads; whole crops do not). Not thread-safe:
/// one per inference task.
public final class RegionExecutor {
    public struct Settings: Sendable, Equatable {
        /// Tile side in model-input pixels.
        public var tile = 256
        /// Pixels of context a crop adds on each side of its tile.
        public var margin = 96
        /// Change a pixel must exceed (model-input units: grey levels for a model fed raw pixels).
        public var threshold: Float = 20
        /// Changed pixels a tile needs to run (a codec's noise crosses the threshold at a few scattered pixels).
        public var minPixels = 64
        /// Changes this close to a tile (in pixels, rounded up to 16) make it run.
        public var context = 32
        /// Whole-image keyframe every this many frames (0: never).
        public var refresh = 300

        public init() {}
    }

    public let settings: Settings
    public let threads: Int
    public let grid: RegionGrid
    private let full: DenseExecutor
    /// One crop executor per worker.
    private let crops: [DenseExecutor]
    private let reference: UnsafeMutablePointer<Float>
    private let channels: Int
    /// Per 16×16 block of the input, pixels over the threshold this frame.
    private var blockCounts: [Int32]
    private var row: [UInt8]
    private let outputStrides: [Int]
    private var framesSinceKeyframe = 0
    private var started = false
    public let denseMACs: Int
    /// MACs of one crop run.
    public let cropMACs: Int
    public private(set) var lastExecutedMACs = 0
    public private(set) var lastWasKeyframe = false
    /// Tiles (indices into `grid.tiles`) recomputed on the last frame (every tile on a keyframe).
    public private(set) var lastTiles: [Int] = []
    public private(set) var keyframes = 0

    static let block = 16

    /// `graph` and `cropGraph`: the same model at the full input size and at the crop size
    /// (`cropSize(graph:settings:)`).
    public init(graph: Graph, cropGraph: Graph, settings: Settings, threads: Int = 1) throws(ModelError) {
        let shape = graph.shape(of: graph.inputs[0])
        guard shape.count == 4, shape[0] == 1 else {
            throw ModelError("regions runs one NCHW image per frame; the input is \(shape.shapeText)")
        }
        guard settings.minPixels >= 0, settings.context >= 0, settings.refresh >= 0, settings.threshold >= 0 else {
            throw ModelError("threshold, min-pixels, context and refresh must be 0 or positive")
        }
        let (height, width) = (shape[2], shape[3])
        grid = try RegionGrid(
            width: width, height: height, tile: settings.tile, margin: settings.margin,
            alignment: Self.largestStride(graph))
        let cropShape = cropGraph.shape(of: cropGraph.inputs[0])
        guard cropShape == [1, shape[1], grid.cropHeight, grid.cropWidth] else {
            throw ModelError(
                "the crop model takes \(cropShape.shapeText), not the crop's 1×\(shape[1])×\(grid.cropHeight)×\(grid.cropWidth)"
            )
        }
        var strides: [Int] = []
        for v in graph.outputs {
            let s = graph.shape(of: v)
            guard s.count == 4, s[2] > 0, height % s[2] == 0, width % s[3] == 0, height / s[2] == width / s[3] else {
                throw ModelError("regions needs image-like outputs (N×C×H×W at a whole stride); one is \(s.shapeText)")
            }
            strides.append(height / s[2])
        }
        outputStrides = strides
        self.settings = settings
        self.threads = max(1, threads)
        channels = shape[1]
        full = try DenseExecutor(graph: graph, threads: threads)
        let workers = max(1, min(threads, Kernels.maxConvWorkers))
        var crops: [DenseExecutor] = []
        for _ in 0..<workers { crops.append(try DenseExecutor(graph: cropGraph, threads: 1)) }
        self.crops = crops
        reference = .allocate(capacity: shape.reduce(1, *))
        let (bw, bh) = ((width + Self.block - 1) / Self.block, (height + Self.block - 1) / Self.block)
        blockCounts = Array(repeating: 0, count: bw * bh)
        row = Array(repeating: 0, count: width)
        denseMACs = ModelSummary(graph).totalMACs
        cropMACs = ModelSummary(cropGraph).totalMACs
    }

    deinit { reference.deallocate() }

    /// The crop size for `settings` on `graph`'s input (what `cropGraph` must take).
    public static func cropSize(inputWidth: Int, inputHeight: Int, settings: Settings) -> (width: Int, height: Int) {
        (min(inputWidth, settings.tile + 2 * settings.margin), min(inputHeight, settings.tile + 2 * settings.margin))
    }

    public var graph: Graph { full.graph }
    public var inputShape: [Int] { full.inputShape }
    public var outputShapes: [[Int]] { full.outputShapes }
    public func output(_ index: Int) -> UnsafeBufferPointer<Float> { full.output(index) }

    public func run(_ input: UnsafeBufferPointer<Float>) throws(ModelError) {
        let count = inputShape.reduce(1, *)
        guard input.count == count, let x = input.baseAddress else {
            throw ModelError("input holds \(input.count) values; the model takes \(inputShape.shapeText)")
        }
        framesSinceKeyframe += 1
        var keyframe = !started || (settings.refresh > 0 && framesSinceKeyframe >= settings.refresh)
        if !keyframe {
            lastTiles = changedTiles(x)
            keyframe = lastTiles.count * cropMACs >= denseMACs
        }
        lastWasKeyframe = keyframe
        if keyframe {
            try full.run(input)
            reference.update(from: x, count: count)
            (started, framesSinceKeyframe, lastTiles) = (true, 0, Array(grid.tiles.indices))
            lastExecutedMACs = denseMACs
            keyframes += 1
            return
        }
        lastExecutedMACs = lastTiles.count * cropMACs
        if lastTiles.isEmpty { return }
        let tiles = lastTiles
        let workers = min(crops.count, tiles.count)
        Kernels.setThreads(1)
        Kernels.parallelRanges(workers, workers: workers) { _, lo, hi in
            for w in lo..<hi {
                for k in tiles[tiles.count * w / workers..<tiles.count * (w + 1) / workers] {
                    runTile(grid.tiles[k], input: x, on: crops[w])
                }
            }
        }
        Kernels.setThreads(threads)
        let plane = grid.width * grid.height
        for k in tiles {
            let t = grid.tiles[k]
            for c in 0..<channels {
                for y in t.rows {
                    let at = c * plane + y * grid.width + t.columns.lowerBound
                    (reference + at).update(from: x + at, count: t.columns.count)
                }
            }
        }
    }

    /// Copies the tile's crop into `executor`'s input, runs it, and copies the tile's outputs into the full ones
    /// (tiles are disjoint: so are the outputs two workers write).
    private func runTile(_ t: RegionGrid.Tile, input x: UnsafePointer<Float>, on executor: DenseExecutor) {
        let (cw, ch) = (grid.cropWidth, grid.cropHeight)
        let crop = executor.pointer(executor.graph.inputs[0])
        let plane = grid.width * grid.height
        for c in 0..<channels {
            for r in 0..<ch {
                (crop + (c * ch + r) * cw).update(
                    from: x + c * plane + (t.cropY + r) * grid.width + t.cropX, count: cw)
            }
        }
        executor.runSteps()
        for (k, s) in outputStrides.enumerated() {
            let shape = full.outputShapes[k]
            let (c, h, w) = (shape[1], shape[2], shape[3])
            let (cropW, cropH) = (cw / s, ch / s)
            let from = executor.pointer(executor.graph.outputs[k])
            let to = full.pointer(full.graph.outputs[k])
            let (x0, x1, y0, y1) = (
                t.columns.lowerBound / s, t.columns.upperBound / s, t.rows.lowerBound / s, t.rows.upperBound / s
            )
            let (dx, dy) = (t.cropX / s, t.cropY / s)
            for channel in 0..<c {
                for y in y0..<y1 {
                    (to + (channel * h + y) * w + x0).update(
                        from: from + (channel * cropH + y - dy) * cropW + x0 - dx, count: x1 - x0)
                }
            }
        }
    }

    /// Tiles with at least `minPixels` pixels over the threshold (against the reference) within `context` of them.
    private func changedTiles(_ x: UnsafePointer<Float>) -> [Int] {
        let (width, height, b) = (grid.width, grid.height, Self.block)
        let bw = (width + b - 1) / b
        let plane = width * height
        for i in blockCounts.indices { blockCounts[i] = 0 }
        row.withUnsafeMutableBufferPointer { marks in
            for y in 0..<height {
                Kernels.markExceeding(
                    x: x + y * width, ref: reference + y * width, channels: channels, plane: plane, count: width,
                    threshold: settings.threshold, into: marks.baseAddress!, kernels: full.kernels)
                let base = (y / b) * bw
                for bx in 0..<bw {
                    var n: Int32 = 0
                    for i in bx * b..<min(width, (bx + 1) * b) { n &+= Int32(marks[i]) }
                    blockCounts[base + bx] &+= n
                }
            }
        }
        let reach = (settings.context + b - 1) / b
        let bh = (height + b - 1) / b
        let needed = max(1, settings.minPixels)
        return grid.tiles.indices.filter { k in
            let t = grid.tiles[k]
            let (c0, c1) = (
                max(0, t.columns.lowerBound / b - reach), min(bw, (t.columns.upperBound + b - 1) / b + reach)
            )
            let (r0, r1) = (max(0, t.rows.lowerBound / b - reach), min(bh, (t.rows.upperBound + b - 1) / b + reach))
            var n = 0
            for r in r0..<r1 {
                for c in c0..<c1 { n += Int(blockCounts[r * bw + c]) }
            }
            return n >= needed
        }
    }

    /// The largest stride of `graph`'s feature maps: input size over value size, the same both ways (a pooled 1×1
    /// value is not a feature map).
    static func largestStride(_ graph: Graph) -> Int {
        let input = graph.shape(of: graph.inputs[0])
        var largest = 1
        for value in graph.values {
            let s = value.shape
            guard s.count == 4, s[2] > 1, s[3] > 1, input[2] % s[2] == 0, input[3] % s[3] == 0,
                input[2] / s[2] == input[3] / s[3]
            else { continue }
            largest = max(largest, input[2] / s[2])
        }
        return largest
    }
}
