// The tensor-manipulation and math operators of exported detectors (YOLO's shape arithmetic, anchors, box head),
// each against a one-node onnxruntime model (Reference/single_op.py). Every case runs twice through the real
// importer and executor: with its first input image-dependent (a graph input: shape inference and the runtime
// kernel), and with every input an initializer (evaluated at load by constant folding). Integer and boolean results
// come back from onnxruntime as floats. Tolerance as for every kernel test (KernelTestsSupport.swift).

import Foundation
import Testing

@testable import SkipNet

/// How a case's inputs reach SkipNet.
enum OperatorMode: CaseIterable {
    /// Input 0 is the model's input, known only per frame.
    case runtime
    /// Every input is an initializer, so the node is folded at load.
    case folded
}

/// Runs `c` as a one-node model through ONNXImporter and DenseExecutor.
func skipNetOutputs(_ c: RefCase, mode: OperatorMode) throws -> [(shape: [Int], data: [Float])] {
    var graph = Onnx_GraphProto()
    var node = Onnx_NodeProto()
    node.opType = c.op
    node.name = c.name
    var feed: Tensor?
    for (i, input) in c.inputs.enumerated() {
        let name = "in\(i)"
        var tensor = Onnx_TensorProto()
        tensor.name = name
        switch input {
        case .omitted:
            node.input.append("")
            continue
        case .floats(let data, let shape):
            tensor.dims = shape.map { Int64($0) }
            tensor.dataType = 1
            tensor.floatData = data
            if mode == .runtime && i == 0 { feed = Tensor(shape: shape, data: data) }
        case .int64(let data, let shape):
            tensor.dims = shape.map { Int64($0) }
            tensor.dataType = 7
            tensor.int64Data = data.map { Int64($0) }
        case .bool(let data, let shape):
            tensor.dims = shape.map { Int64($0) }
            tensor.dataType = 9
            tensor.int32Data = data.map { $0 ? 1 : 0 }
        }
        node.input.append(name)
        if feed != nil && i == 0 {
            graph.input.append(valueInfo(name, shape: feed!.shape))
        } else {
            graph.initializer.append(tensor)
        }
    }
    if feed == nil {
        // The executor needs an input; this one is read by nothing.
        graph.input.append(valueInfo("unused", shape: [1]))
        feed = Tensor(shape: [1], data: [0])
    }
    for (name, value) in c.attrs.sorted(by: { $0.key < $1.key }) {
        var a = Onnx_AttributeProto()
        a.name = name
        switch value {
        case .i(let v):
            a.type = .int
            a.i = Int64(v)
        case .f(let v):
            a.type = .float
            a.f = v
        case .s(let v):
            a.type = .string
            a.s = Data(v.utf8)
        case .ints(let v):
            a.type = .ints
            a.ints = v.map { Int64($0) }
        case .floats(let v):
            a.type = .floats
            a.floats = v
        case .tensor(let dtype, let v):
            a.type = .tensor
            a.t.dims = [1]
            switch dtype {
            case "int64":
                a.t.dataType = 7
                a.t.int64Data = [Int64(v)]
            case "bool":
                a.t.dataType = 9
                a.t.int32Data = [v != 0 ? 1 : 0]
            default:
                a.t.dataType = 1
                a.t.floatData = [v]
            }
        }
        node.attribute.append(a)
    }
    node.output = (0..<c.numOutputs).map { "out\($0)" }
    graph.node = [node]
    graph.output = node.output.map { valueInfo($0, shape: nil) }
    var model = Onnx_ModelProto()
    model.irVersion = 8
    var opset = Onnx_OperatorSetIdProto()
    opset.version = Int64(c.opset)
    model.opsetImport = [opset]
    model.graph = graph
    let loaded = try ONNXImporter.load(data: try model.serializedBytes(), name: "\(c.name).onnx")
    if mode == .folded {
        #expect(loaded.nodes.isEmpty, "\(c.name): folded at load")
    }
    let outputs = try DenseExecutor(graph: loaded).run(feed!)
    return outputs.map { ($0.shape, $0.data) }
}

private func valueInfo(_ name: String, shape: [Int]?) -> Onnx_ValueInfoProto {
    var v = Onnx_ValueInfoProto()
    v.name = name
    guard let shape else { return v }
    v.type.tensorType.elemType = 1
    v.type.tensorType.shape.dim = shape.map {
        var d = Onnx_TensorShapeProto.Dimension()
        d.dimValue = Int64($0)
        return d
    }
    return v
}

/// Checks every case in `modes` against onnxruntime, in one python process.
func expectOperatorsMatch(_ cases: [(RefCase, [OperatorMode])], sourceLocation: SourceLocation = #_sourceLocation)
    throws
{
    let reference = try runReference(cases.map(\.0))
    for (c, modes) in cases {
        for mode in modes {
            let ours: [(shape: [Int], data: [Float])]
            do {
                ours = try skipNetOutputs(c, mode: mode)
            } catch {
                Issue.record("\(c.name) (\(mode)): \(error)", sourceLocation: sourceLocation)
                continue
            }
            #expect(ours.count == c.numOutputs, "\(c.name) (\(mode)) outputs", sourceLocation: sourceLocation)
            for (k, out) in ours.enumerated() {
                expectMatches(
                    out.data, shape: out.shape, reference[c.name]?[k], "\(c.name) (\(mode)) output \(k)",
                    sourceLocation: sourceLocation)
            }
        }
    }
}

@Suite("TensorOperatorTests")
struct TensorOperatorTests {
    static let both = OperatorMode.allCases
    static let x = randomFloats(60, seed: 31, lo: -3, hi: 3)

    @Test("Shape, Gather, Slice, Squeeze, Unsqueeze, Expand, Pad match onnxruntime, int64 shape tensors included")
    func shapeAndIndex() throws {
        let x = Self.x
        let cases: [(RefCase, [OperatorMode])] = [
            (
                RefCase(
                    name: "Shape", op: "Shape", opset: 13, inputs: [.floats(x, shape: [3, 4, 5])], outputType: "int64"),
                [.runtime]
            ),
            (
                RefCase(
                    name: "ShapeRange", op: "Shape", opset: 15, attrs: ["start": .i(1), "end": .i(-1)],
                    inputs: [.floats(x, shape: [3, 4, 5])], outputType: "int64"), [.runtime]
            ),
            (
                RefCase(
                    name: "GatherAxis1", op: "Gather", opset: 13, attrs: ["axis": .i(1)],
                    inputs: [.floats(x, shape: [3, 4, 5]), .int64([3, -4, 1], shape: [3])]), Self.both
            ),
            (
                RefCase(
                    name: "GatherScalar", op: "Gather", opset: 13,
                    inputs: [.floats(x, shape: [3, 4, 5]), .int64([-1], shape: [])]), Self.both
            ),
            (
                RefCase(
                    name: "GatherInt64", op: "Gather", opset: 13,
                    inputs: [.int64([1, 3, 640, 480], shape: [4]), .int64([2], shape: [])], outputType: "int64"),
                [.folded]
            ),
            (
                RefCase(
                    name: "Slice", op: "Slice", opset: 13,
                    inputs: [
                        .floats(x, shape: [3, 4, 5]), .int64([1, -1, 0], shape: [3]),
                        .int64([Int(Int64.max), -4, 5], shape: [3]), .int64([0, 1, 2], shape: [3]),
                        .int64([1, -1, 2], shape: [3]),
                    ]), Self.both
            ),
            (
                RefCase(
                    name: "SliceAxesOmitted", op: "Slice", opset: 11,
                    inputs: [.floats(x, shape: [12, 5]), .int64([2, 1], shape: [2]), .int64([9, 100], shape: [2])]),
                Self.both
            ),
            (
                RefCase(
                    name: "SliceOpset9", op: "Slice", opset: 9,
                    attrs: ["starts": .ints([0, 2]), "ends": .ints([2, -1]), "axes": .ints([0, 2])],
                    inputs: [.floats(x, shape: [3, 4, 5])]), Self.both
            ),
            (
                RefCase(
                    name: "SliceInt64", op: "Slice", opset: 13,
                    inputs: [
                        .int64([1, 3, 48, 64], shape: [4]), .int64([2], shape: [1]),
                        .int64([Int(Int64.max)], shape: [1]),
                    ], outputType: "int64"), [.folded]
            ),
            (
                RefCase(
                    name: "Squeeze", op: "Squeeze", opset: 13,
                    inputs: [.floats(x, shape: [1, 3, 1, 20]), .int64([0, -2], shape: [2])]), Self.both
            ),
            (
                RefCase(name: "SqueezeAll", op: "Squeeze", opset: 11, inputs: [.floats(x, shape: [1, 3, 1, 20])]),
                Self.both
            ),
            (
                RefCase(
                    name: "Unsqueeze", op: "Unsqueeze", opset: 13,
                    inputs: [.floats(x, shape: [3, 20]), .int64([0, -1], shape: [2])]), Self.both
            ),
            (
                RefCase(
                    name: "UnsqueezeScalarInt64", op: "Unsqueeze", opset: 11, attrs: ["axes": .ints([0])],
                    inputs: [.int64([7], shape: [])], outputType: "int64"), [.folded]
            ),
            (
                RefCase(
                    name: "Expand", op: "Expand", opset: 13,
                    inputs: [.floats(Array(x[..<3]), shape: [3, 1]), .int64([2, 1, 4], shape: [3])]), Self.both
            ),
            (
                RefCase(
                    name: "Pad", op: "Pad", opset: 13,
                    inputs: [
                        .floats(x, shape: [3, 4, 5]), .int64([0, 1, 2, 1, 0, 3], shape: [6]),
                        .floats([-7.5], shape: []),
                    ]), Self.both
            ),
            (
                RefCase(
                    name: "PadOpset9", op: "Pad", opset: 9, attrs: ["pads": .ints([1, 0, 0, 2])],
                    inputs: [.floats(x, shape: [6, 10])]), Self.both
            ),
        ]
        try expectOperatorsMatch(cases)
    }

    @Test("Cast, Range, ConstantOfShape, integer Div, Equal, Less, Greater, Where, Not match onnxruntime")
    func integersAndMasks() throws {
        let x = Self.x
        let y = randomFloats(20, seed: 32, lo: -3, hi: 3).map { $0.rounded() }
        let cases: [(RefCase, [OperatorMode])] = [
            (
                RefCase(
                    name: "CastInt64", op: "Cast", opset: 13, attrs: ["to": .i(7)], inputs: [.floats(x, shape: [60])],
                    outputType: "int64"), Self.both
            ),
            (
                RefCase(
                    name: "CastBool", op: "Cast", opset: 13, attrs: ["to": .i(9)],
                    inputs: [.floats(y, shape: [4, 5])], outputType: "bool"), Self.both
            ),
            (
                RefCase(
                    name: "CastFloat", op: "Cast", opset: 13, attrs: ["to": .i(1)],
                    inputs: [.int64([3, -2, 640], shape: [3])]), [.folded]
            ),
            (
                RefCase(
                    name: "RangeInt64", op: "Range", opset: 11,
                    inputs: [.int64([0], shape: []), .int64([10], shape: []), .int64([3], shape: [])],
                    outputType: "int64"), [.folded]
            ),
            (
                RefCase(
                    name: "RangeFloat", op: "Range", opset: 11,
                    inputs: [.floats([1.5], shape: []), .floats([-2], shape: []), .floats([-0.5], shape: [])]),
                [.folded]
            ),
            (
                RefCase(
                    name: "ConstantOfShapeInt", op: "ConstantOfShape", opset: 11,
                    attrs: ["value": .tensor(dtype: "int64", value: 4)], inputs: [.int64([2, 3], shape: [2])],
                    outputType: "int64"), [.folded]
            ),
            (
                RefCase(
                    name: "ConstantOfShapeDefault", op: "ConstantOfShape", opset: 11,
                    inputs: [.int64([3], shape: [1])]), [.folded]
            ),
            (
                RefCase(
                    name: "DivInt64Truncates", op: "Div", opset: 13,
                    inputs: [.int64([-7, 7, 640, 5], shape: [4]), .int64([2], shape: [])], outputType: "int64"),
                [.folded]
            ),
            (
                RefCase(
                    name: "EqualInt64", op: "Equal", opset: 13,
                    inputs: [.int64([1, -1, 4], shape: [3]), .int64([-1], shape: [1])], outputType: "bool"),
                [.folded]
            ),
            (
                RefCase(
                    name: "Less", op: "Less", opset: 13,
                    inputs: [.floats(y, shape: [4, 5]), .floats([0, 1, -1, 2, -2], shape: [5])], outputType: "bool"),
                Self.both
            ),
            (
                RefCase(
                    name: "Greater", op: "Greater", opset: 13,
                    inputs: [.floats(y, shape: [4, 5]), .floats([0.5], shape: [])], outputType: "bool"), Self.both
            ),
            (
                RefCase(
                    name: "Where", op: "Where", opset: 16,
                    inputs: [
                        .bool([true, false, true, true, false], shape: [5]), .floats(y, shape: [4, 5]),
                        .floats([-9, 9, -8, 8], shape: [4, 1]),
                    ]), [.folded]
            ),
            (
                RefCase(
                    name: "Not", op: "Not", opset: 9, inputs: [.bool([true, false, false], shape: [3])],
                    outputType: "bool"),
                [.folded]
            ),
        ]
        try expectOperatorsMatch(cases)
    }

    @Test("Exp, Log, Sqrt, Neg, Abs, Floor, Ceil, Reciprocal, Erf, Sin, Cos, Pow, Min, Max match onnxruntime")
    func math() throws {
        let x = Self.x
        let positive = x.map { abs($0) + 0.1 }
        var cases: [(RefCase, [OperatorMode])] = []
        for op in ["Exp", "Neg", "Abs", "Floor", "Ceil", "Erf", "Sin", "Cos"] {
            cases.append((RefCase(name: op, op: op, opset: 13, inputs: [.floats(x, shape: [3, 4, 5])]), Self.both))
        }
        for op in ["Log", "Sqrt", "Reciprocal"] {
            cases.append(
                (RefCase(name: op, op: op, opset: 13, inputs: [.floats(positive, shape: [3, 4, 5])]), Self.both))
        }
        cases += [
            (
                RefCase(
                    name: "PowSquare", op: "Pow", opset: 13,
                    inputs: [.floats(x, shape: [3, 20]), .floats([2], shape: [])]),
                Self.both
            ),
            (
                RefCase(
                    name: "PowRoot", op: "Pow", opset: 13,
                    inputs: [.floats(positive, shape: [3, 20]), .floats([0.5, 1.5, 3], shape: [3, 1])]), Self.both
            ),
            (
                RefCase(
                    name: "Min2", op: "Min", opset: 13,
                    inputs: [.floats(x, shape: [3, 20]), .floats(Array(positive[..<20]), shape: [20])]), Self.both
            ),
            (
                RefCase(
                    name: "Max3", op: "Max", opset: 13,
                    inputs: [
                        .floats(x, shape: [3, 20]), .floats([0.5], shape: []),
                        .floats(Array(x[..<20]).map { -$0 }, shape: [20]),
                    ]), [.folded]
            ),
        ]
        try expectOperatorsMatch(cases)
    }

    @Test("ReduceMean, ReduceMax, ReduceMin, ReduceSum, ReduceProd match onnxruntime")
    func reductions() throws {
        let x = Self.x
        let cases: [(RefCase, [OperatorMode])] = [
            (
                RefCase(
                    name: "ReduceMeanHW", op: "ReduceMean", opset: 13, attrs: ["axes": .ints([2, 3])],
                    inputs: [.floats(x, shape: [1, 3, 4, 5])]), Self.both
            ),
            (
                RefCase(
                    name: "ReduceMaxNoKeep", op: "ReduceMax", opset: 13,
                    attrs: ["axes": .ints([-1]), "keepdims": .i(0)],
                    inputs: [.floats(x, shape: [3, 4, 5])]), Self.both
            ),
            (
                RefCase(name: "ReduceMinAll", op: "ReduceMin", opset: 13, inputs: [.floats(x, shape: [3, 4, 5])]),
                Self.both
            ),
            (
                RefCase(
                    name: "ReduceSumAxesInput", op: "ReduceSum", opset: 13,
                    inputs: [.floats(x, shape: [3, 4, 5]), .int64([0, 2], shape: [2])]), Self.both
            ),
            (
                RefCase(
                    name: "ReduceProd", op: "ReduceProd", opset: 13, attrs: ["axes": .ints([1])],
                    inputs: [.floats(x.map { 1 + $0 / 10 }, shape: [3, 4, 5])]), Self.both
            ),
            (
                RefCase(
                    name: "ReduceProdInt64", op: "ReduceProd", opset: 13, attrs: ["keepdims": .i(0)],
                    inputs: [.int64([2, 3, 64], shape: [3])], outputType: "int64"), [.folded]
            ),
        ]
        try expectOperatorsMatch(cases)
    }
}

@Suite("SiLUKernelTests")
struct SiLUKernelTests {
    /// The vector exp behind SiLU, against double-precision libm over the whole useful range (the tails included,
    /// where the exponent is clamped).
    @Test func siluEqualsTheDefinitionEverywhere() {
        let x = randomFloats(4099, seed: 77, lo: -100, hi: 100) + [-200, -88, -87, 0, 87, 88, 200, 1e-30]
        var y = [Float](repeating: .nan, count: x.count)
        x.withUnsafeBufferPointer { Kernels.unary(.silu, input: $0.baseAddress!, output: &y, count: x.count) }
        let worst =
            zip(x, y).map { v, out in
                let exact = Double(v) / (1 + Foundation.exp(-Double(v)))
                return abs(Double(out) - exact) / max(abs(exact), 1e-30)
            }.max() ?? .infinity
        #expect(worst <= 1e-6, "largest relative error \(worst)")
    }
}

@Suite("SelfGatingFusionTests")
struct SelfGatingFusionTests {
    /// MobileNetV3 and YOLO building blocks: a conv gated by HardSigmoid(x/6 + ½) (HardSwish as exported before
    /// opset 14), a conv gated by its own Sigmoid with the Mul's operands swapped, the HardSwish operator itself,
    /// and a squeeze-excite branch whose HardSigmoid(0.2, 0.5) gate multiplies another tensor (not a self-gate,
    /// so not fused). Fused where the pattern holds, and equal to onnxruntime.
    @Test func gatesFuseIntoConvolutionsAndMatchOnnxruntime() throws {
        var rng = SeededGenerator(seed: 14)
        var m = TestModel([1, 8, 12, 12])
        m.conv(
            "x", "a", 8, 16, kernel: [1, 1], weights: rng.weights(128, fanIn: 8),
            bias: (0..<16).map { _ in rng.uniform(-1...1) })
        m.node("HardSigmoid", ["a"], "a_gate")
        m.nodes[m.nodes.count - 1].attribute = [Self.float("alpha", 1.0 / 6.0), Self.float("beta", 0.5)]
        m.node("Mul", ["a", "a_gate"], "a_out")
        m.conv(
            "a_out", "b", 16, 16, kernel: [3, 3], pads: [1, 1, 1, 1], weights: rng.weights(2304, fanIn: 144),
            bias: Array(repeating: 0.1, count: 16))
        m.node("Sigmoid", ["b"], "b_gate")
        m.node("Mul", ["b_gate", "b"], "b_out")
        m.conv(
            "b_out", "c", 16, 16, kernel: [1, 1], weights: rng.weights(256, fanIn: 16),
            bias: Array(repeating: -0.2, count: 16))
        m.node("HardSwish", ["c"], "c_out")
        m.node("GlobalAveragePool", ["c_out"], "pool")
        m.conv(
            "pool", "squeeze", 16, 4, kernel: [1, 1], weights: rng.weights(64, fanIn: 16),
            bias: Array(repeating: 0, count: 4))
        m.node("Relu", ["squeeze"], "squeeze_relu")
        m.conv(
            "squeeze_relu", "excite", 4, 16, kernel: [1, 1], weights: rng.weights(64, fanIn: 4),
            bias: Array(repeating: 0, count: 16))
        m.node("HardSigmoid", ["excite"], "excite_gate")
        m.node("Mul", ["c_out", "excite_gate"], "y")
        m.outputs = ["y"]
        let graph = try ONNXImporter.load(data: try m.serialized(opset: 14), name: "gates.onnx")
        let ops = graph.nodes.map(\.op)
        #expect(ops.filter { $0 == .hardSwish }.count == 2 && ops.filter { $0 == .silu }.count == 1)
        #expect(ops.filter { $0 == .mul }.count == 1, "the squeeze-excite gate is not a self-gate")

        let input = randomFloats(8 * 144, seed: 15, lo: -2, hi: 2)
        let reference = try m.onnxruntimeOutputs(input, opset: 14)[0]
        for kernels in KernelSet.allCases where KernelSet.isSupported(kernels, cpuFlags: BLASCoreType.cpuFlags()) {
            let executor = try DenseExecutor(graph: graph, kernels: kernels)
            // The three gated convolutions apply their gate in the epilogue: no step of their own.
            #expect(!executor.stepNodeNames.contains("a_out") && !executor.stepNodeNames.contains("b_out"))
            #expect(!executor.stepNodeNames.contains("c_out"))
            let output = try executor.run(Tensor(shape: [1, 8, 12, 12], data: input))[0].data
            let (error, bound) = maxError(output, reference)
            #expect(error <= bound, "\(kernels): \(error) > \(bound)")
        }
    }

    static func float(_ name: String, _ value: Float) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .float
        a.f = value
        return a
    }
}
