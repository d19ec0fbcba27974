import Foundation
import Testing

@testable import SkipNet

/// The oracle bound on small models built here, with every expected MAC count worked out by hand from the receptive
/// fields, plus sanity bounds on CenterFace.
@Suite struct OracleBoundTests {
    /// A model with one input `x`, built node by node; every weight is 1 (the oracle never reads weights).
    typealias Model = TestModel

    /// An NCHW frame of zeros with `changes` as (channel, y, x, value).
    static func frame(_ shape: [Int], _ changes: [(Int, Int, Int, Float)] = []) -> [Float] {
        var data = [Float](repeating: 0, count: shape.reduce(1, *))
        for (c, y, x, v) in changes { data[(c * shape[2] + y) * shape[3] + x] = v }
        return data
    }

    @Test func oneChangedPixelRecomputesItsThreeByThreeNeighbourhood() throws {
        var m = Model([1, 2, 8, 8])
        m.conv("x", "y", 2, 4, kernel: [3, 3], pads: [1, 1, 1, 1])
        m.outputs = ["y"]
        var oracle = OracleBound(graph: try m.graph(), threshold: 0.5)
        #expect(oracle.ratio == 1)
        let unit = 3 * 3 * 2 * 4
        let dense = 64 * unit
        #expect(oracle.add(Self.frame([1, 2, 8, 8])) == (dense, dense))
        // One pixel inside: its 3×3 neighbourhood of outputs.
        #expect(oracle.add(Self.frame([1, 2, 8, 8], [(1, 3, 4, 1)])) == (9 * unit, dense))
        // A corner: only the 2×2 outputs in bounds; (3, 4) is committed, so it is no change any more.
        #expect(oracle.add(Self.frame([1, 2, 8, 8], [(1, 3, 4, 1), (0, 0, 0, 1)])) == (4 * unit, dense))
        #expect(oracle.executedMACs == dense + 13 * unit)
        #expect(oracle.denseMACs == 3 * dense)
        #expect(oracle.ratio == Double(dense + 13 * unit) / Double(3 * dense))
    }

    @Test func strideTwoConvCountsTheOutputsWhoseWindowHoldsTheChange() throws {
        var m = Model([1, 3, 8, 8])
        m.conv("x", "y", 3, 2, kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1])
        m.outputs = ["y"]
        var oracle = OracleBound(graph: try m.graph(), threshold: 0.5)
        let unit = 3 * 3 * 3 * 2
        oracle.add(Self.frame([1, 3, 8, 8]))
        // Output row o reads input rows 2o−1…2o+1: row 3 is read by o = 1, 2; row 2 by o = 1 only.
        #expect(oracle.add(Self.frame([1, 3, 8, 8], [(2, 3, 3, 1)])).executed == 4 * unit)
        #expect(oracle.add(Self.frame([1, 3, 8, 8], [(2, 3, 3, 1), (0, 2, 2, 1)])).executed == 1 * unit)
        #expect(oracle.add(Self.frame([1, 3, 8, 8], [(2, 3, 3, 1), (0, 2, 2, 1), (1, 7, 0, 1)])).executed == 1 * unit)
    }

    @Test func convTransposeScattersEachChangedInputToItsBlock() throws {
        var m = Model([1, 1, 8, 8])
        m.conv("x", "a", 1, 2, kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1])
        m.constant("u.w", [2, 3, 2, 2])
        m.node("ConvTranspose", ["a", "u.w"], "u", ints: ["kernel_shape": [2, 2], "strides": [2, 2]])
        m.conv("u", "y", 3, 1, kernel: [1, 1])
        m.outputs = ["y"]
        let graph = try m.graph()
        #expect(graph.shape(of: graph.outputs[0]) == [1, 1, 8, 8])
        var oracle = OracleBound(graph: graph, threshold: 0.5)
        // Dense: conv 16·(9·1·2), transposed 16·(2·3·4), 1×1 conv 64·(3·1).
        #expect(oracle.add(Self.frame([1, 1, 8, 8])).dense == 288 + 384 + 192)
        // (3, 3) → conv outputs rows/cols {1, 2} (4) → their 2×2 blocks, rows/cols 2…5 (16) → the 1×1 conv.
        #expect(oracle.add(Self.frame([1, 1, 8, 8], [(0, 3, 3, 1)])).executed == 4 * 18 + 4 * 24 + 16 * 3)
    }

    @Test func residualAddUnitesItsBranches() throws {
        var m = Model([1, 2, 8, 8])
        m.conv("x", "a", 2, 2, kernel: [3, 3], pads: [1, 1, 1, 1])
        m.node("Relu", ["a"], "r")
        m.conv("x", "b", 2, 2, kernel: [1, 5], pads: [0, 2, 0, 2])
        m.node("Add", ["r", "b"], "s")
        m.conv("s", "y", 2, 3, kernel: [1, 1])
        m.outputs = ["y"]
        var oracle = OracleBound(graph: try m.graph(), threshold: 0.5)
        let (a, b, y) = (3 * 3 * 2 * 2, 1 * 5 * 2 * 2, 2 * 3)
        #expect(oracle.add(Self.frame([1, 2, 8, 8])).dense == 64 * (a + b + y))
        // (4, 4): a 3×3 block and a 1×5 row through it; the sum changes on their union, 9 + 5 − 3.
        #expect(oracle.add(Self.frame([1, 2, 8, 8], [(0, 4, 4, 1)])).executed == 9 * a + 5 * b + 11 * y)
        // (0, 0): a 2×2 corner and 3 of a row, 2 of them shared.
        let corner = [(0, 4, 4, 1), (1, 0, 0, 1)] as [(Int, Int, Int, Float)]
        #expect(oracle.add(Self.frame([1, 2, 8, 8], corner)).executed == 4 * a + 3 * b + 5 * y)
    }

    @Test func aScaleFromAGlobalPoolChangesEverythingAConstantScaleNothing() throws {
        var m = Model([1, 2, 8, 8])
        m.conv("x", "a", 2, 2, kernel: [3, 3], pads: [1, 1, 1, 1])
        m.node("GlobalAveragePool", ["a"], "g")
        m.node("Sigmoid", ["g"], "e")
        m.node("Mul", ["a", "e"], "excited")
        m.conv("excited", "y1", 2, 1, kernel: [1, 1])
        m.constant("scale", [1, 2, 1, 1], [0.5, 2])
        m.node("Mul", ["a", "scale"], "scaled")
        m.conv("scaled", "y2", 2, 1, kernel: [1, 1])
        m.outputs = ["y1", "y2"]
        var oracle = OracleBound(graph: try m.graph(), threshold: 0.5)
        oracle.add(Self.frame([1, 2, 8, 8]))
        #expect(oracle.add(Self.frame([1, 2, 8, 8])).executed == 0)
        #expect(oracle.add(Self.frame([1, 2, 8, 8], [(1, 4, 4, 1)])).executed == 9 * 36 + 64 * 2 + 9 * 2)
    }

    @Test func resizeReadsItsSources() throws {
        var m = Model([1, 1, 4, 4])
        m.constant("scales", [4], [1, 1, 2, 2])
        m.node(
            "Resize", ["x", "", "scales"], "n",
            strings: ["mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"])
        m.conv("n", "yn", 1, 1, kernel: [1, 1])
        m.node("Resize", ["x", "", "scales"], "l", strings: ["mode": "linear"])
        m.conv("l", "yl", 1, 1, kernel: [1, 1])
        m.outputs = ["yn", "yl"]
        var oracle = OracleBound(graph: try m.graph(), threshold: 0.5)
        #expect(oracle.add(Self.frame([1, 1, 4, 4])).dense == 128)
        // Nearest, floor(o/2): row 1 → rows 2, 3; column 2 → 4, 5. Linear half-pixel, o/2 − 1/4 ± 1: row 1 → 1…4;
        // column 2 → 3…6 (exactly the outputs that weight it).
        #expect(oracle.add(Self.frame([1, 1, 4, 4], [(0, 1, 2, 1)])).executed == 2 * 2 + 4 * 4)
    }

    @Test func thresholdIsStrictAndTakesTheLargestChannelChange() throws {
        var m = Model([1, 3, 4, 4])
        m.conv("x", "y", 3, 1, kernel: [1, 1])
        m.outputs = ["y"]
        var oracle = OracleBound(graph: try m.graph(), threshold: 0.5)
        oracle.add(Self.frame([1, 3, 4, 4]))
        #expect(oracle.add(Self.frame([1, 3, 4, 4], [(2, 1, 1, 0.5), (0, 2, 2, -0.5)])).executed == 0)
        // Not committed, so measured against 0 again; a change in any one channel counts.
        let frame = Self.frame([1, 3, 4, 4], [(2, 1, 1, 0.75), (0, 2, 2, -0.5), (1, 3, 3, -0.75)])
        #expect(oracle.add(frame).executed == 2 * 3)
    }

    @Test func slowDriftIsCountedOnceItAddsUpPastTheThreshold() throws {
        var m = Model([1, 1, 4, 4])
        m.conv("x", "y", 1, 1, kernel: [1, 1])
        m.outputs = ["y"]
        var oracle = OracleBound(graph: try m.graph(), threshold: 0.5)
        // θ/2 per frame: frame 1 differs by θ/2, frame 2 by exactly θ (not above), frame 3 by 1.5θ and commits;
        // then the same again from the new reference. Against the previous frame it would never count.
        let executed = (0..<7).map { t in oracle.add([Float](repeating: 0.25 * Float(t), count: 16)).executed }
        #expect(executed == [16, 0, 0, 16, 0, 0, 16])
        #expect(oracle.ratio == 3.0 / 7.0)
    }

    static let centerFace = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("assets/centerface.onnx").path

    @Test(.enabled(if: FileManager.default.fileExists(atPath: centerFace)))
    func centerFaceBounds() throws {
        let shape = [1, 3, 576, 768]
        let graph = try ONNXImporter.load(path: Self.centerFace, inputShape: shape)
        let dense = ModelSummary(graph).totalMACs
        let x = (0..<shape.reduce(1, *)).map { Float($0 % 251) / 251 }

        var blind = OracleBound(graph: graph, threshold: .infinity)
        for _ in 0..<4 { blind.add(x) }
        #expect(blind.denseMACs == 4 * dense && blind.executedMACs == dense)
        #expect(blind.ratio == 0.25)

        var oracle = OracleBound(graph: graph, threshold: 0.1)
        oracle.add(x)
        var moved = x
        moved[288 * 768 + 384] += 1
        let (executed, perFrame) = oracle.add(moved)
        #expect(perFrame == dense)
        #expect(executed > 0 && executed < dense)
    }
}

extension OracleBound {
    @discardableResult fileprivate mutating func add(_ frame: [Float]) -> (executed: Int, dense: Int) {
        frame.withUnsafeBufferPointer { add($0) }
    }
}
