import Foundation
import Testing

@testable import SkipNet

/// A model with one input `x`, built node by node and loaded through the real importer. Weights default to 1 (the
/// oracle never reads them); the skip tests pass their own.
struct TestModel {
    var inputShape: [Int]
    var nodes: [Onnx_NodeProto] = []
    var initializers: [Onnx_TensorProto] = []
    var outputs: [String] = []

    init(_ inputShape: [Int]) { self.inputShape = inputShape }

    mutating func constant(_ name: String, _ dims: [Int], _ data: [Float]? = nil) {
        var t = Onnx_TensorProto()
        t.name = name
        t.dims = dims.map { Int64($0) }
        t.dataType = 1
        t.floatData = data ?? Array(repeating: 1, count: dims.reduce(1, *))
        initializers.append(t)
    }

    mutating func node(
        _ op: String, _ inputs: [String], _ output: String, ints: [String: [Int]] = [:],
        strings: [String: String] = [:], int: [String: Int] = [:]
    ) {
        var n = Onnx_NodeProto()
        n.opType = op
        n.name = output
        n.input = inputs
        n.output = [output]
        for (name, value) in ints.sorted(by: { $0.key < $1.key }) {
            var a = Onnx_AttributeProto()
            a.name = name
            a.type = .ints
            a.ints = value.map { Int64($0) }
            n.attribute.append(a)
        }
        for (name, value) in strings.sorted(by: { $0.key < $1.key }) {
            var a = Onnx_AttributeProto()
            a.name = name
            a.type = .string
            a.s = Data(value.utf8)
            n.attribute.append(a)
        }
        for (name, value) in int.sorted(by: { $0.key < $1.key }) {
            var a = Onnx_AttributeProto()
            a.name = name
            a.type = .int
            a.i = Int64(value)
            n.attribute.append(a)
        }
        nodes.append(n)
    }

    /// `y = conv(x)` with `kernel` [kh, kw] and ONNX `pads` [top, left, bottom, right]; the node is named `y`.
    mutating func conv(
        _ x: String, _ y: String, _ cin: Int, _ cout: Int, kernel: [Int], strides: [Int] = [1, 1],
        pads: [Int] = [0, 0, 0, 0], groups: Int = 1, weights: [Float]? = nil, bias: [Float]? = nil
    ) {
        constant("\(y).w", [cout, cin / groups] + kernel, weights)
        var inputs = [x, "\(y).w"]
        if let bias {
            constant("\(y).b", [cout], bias)
            inputs.append("\(y).b")
        }
        node(
            "Conv", inputs, y, ints: ["kernel_shape": kernel, "strides": strides, "pads": pads],
            int: groups == 1 ? [:] : ["group": groups])
    }

    /// `y = convTranspose(x)`, weights [cin, cout, kh, kw], no padding.
    mutating func convTranspose(
        _ x: String, _ y: String, _ cin: Int, _ cout: Int, kernel: [Int], strides: [Int], weights: [Float]? = nil,
        bias: [Float]? = nil
    ) {
        constant("\(y).w", [cin, cout] + kernel, weights)
        var inputs = [x, "\(y).w"]
        if let bias {
            constant("\(y).b", [cout], bias)
            inputs.append("\(y).b")
        }
        node("ConvTranspose", inputs, y, ints: ["kernel_shape": kernel, "strides": strides])
    }

    func graph(name: String = "oracle") throws -> Graph {
        try ONNXImporter.load(data: try serialized(name: name), name: "\(name).onnx")
    }

    /// The model as an `.onnx` file's bytes.
    func serialized(name: String = "oracle", opset version: Int = 13) throws -> Data {
        var g = Onnx_GraphProto()
        g.name = name
        g.node = nodes
        g.initializer = initializers
        var input = Onnx_ValueInfoProto()
        input.name = "x"
        input.type.tensorType.elemType = 1
        input.type.tensorType.shape.dim = inputShape.map {
            var d = Onnx_TensorShapeProto.Dimension()
            d.dimValue = Int64($0)
            return d
        }
        g.input = [input]
        g.output = outputs.map {
            var v = Onnx_ValueInfoProto()
            v.name = $0
            return v
        }
        var model = Onnx_ModelProto()
        model.irVersion = 8
        var opset = Onnx_OperatorSetIdProto()
        opset.version = Int64(version)
        model.opsetImport = [opset]
        model.graph = g
        return try model.serializedBytes()
    }

    /// onnxruntime's outputs for `input` (`Reference/run_model.py`, one thread, no graph optimisations).
    func onnxruntimeOutputs(_ input: [Float], opset: Int = 13) throws -> [[Float]] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("skipnet-model-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try serialized(opset: opset).write(to: dir.appendingPathComponent("model.onnx"))
        try input.withUnsafeBytes { try Data($0).write(to: dir.appendingPathComponent("input.bin")) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3",
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Reference/run_model.py")
                .path, dir.path,
        ]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw ModelError("run_model.py failed") }
        return try outputs.indices.map { k in
            let data = try Data(contentsOf: dir.appendingPathComponent("output\(k).bin"))
            return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }
    }
}

/// SplitMix64: seeded, so every random layer and clip is the same on every run and platform.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func uniform(_ range: ClosedRange<Float>) -> Float { Float.random(in: range, using: &self) }

    /// Standard normal (Box–Muller).
    mutating func normal() -> Float {
        let u = Double.random(in: Double.leastNonzeroMagnitude..<1, using: &self)
        let v = Double.random(in: 0..<1, using: &self)
        return Float((-2 * log(u)).squareRoot() * cos(2 * Double.pi * v))
    }

    /// `count` weights of a layer with fan-in `fanIn`, scaled so activations keep their magnitude.
    mutating func weights(_ count: Int, fanIn: Int) -> [Float] {
        let scale = (2 / Float(fanIn)).squareRoot()
        return (0..<count).map { _ in normal() * scale }
    }
}

func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

/// ‖a − b‖₂ / ‖b‖₂ (b the reference), in Double.
func relativeL2(_ a: [Float], _ b: [Float]) -> Double {
    precondition(a.count == b.count)
    var (num, den) = (0.0, 0.0)
    for i in a.indices {
        let d = Double(a[i]) - Double(b[i])
        num += d * d
        den += Double(b[i]) * Double(b[i])
    }
    return (num / max(den, .leastNormalMagnitude)).squareRoot()
}

/// Set positions of a mask as (y, x), row-major.
func positions(_ mask: SpatialMask) -> Set<Pos> {
    var s = Set<Pos>()
    for y in 0..<mask.height {
        for x in 0..<mask.width where mask[x, y] { s.insert(Pos(y, x)) }
    }
    return s
}

/// An output position, row first.
struct Pos: Hashable, CustomStringConvertible {
    var y: Int
    var x: Int

    init(_ y: Int, _ x: Int) {
        self.y = y
        self.x = x
    }

    var description: String { "(\(y), \(x))" }
}

/// Every position of the rectangle rows × columns.
func rect(_ rows: ClosedRange<Int>, _ columns: ClosedRange<Int>) -> Set<Pos> {
    Set(rows.flatMap { y in columns.map { Pos(y, $0) } })
}
