import Foundation
import SwiftProtobuf

/// Loads `.onnx` files into a ``Graph``: weights become constants (also when old exporters list them as graph
/// inputs, or when they come as `Constant` nodes), input dims may be overridden, every shape is inferred, and
/// batch normalisation after a convolution is folded into its weights.
public enum ONNXImporter {
    public static let supportedOpsets = 9...17

    /// - Parameter inputShape: replaces the declared dims of the model's single input (`1x3x576x768`).
    public static func load(path: String, inputShape: [Int]? = nil) throws(ModelError) -> Graph {
        try build(try parse(path: path), name: path, inputShape: inputShape)
    }

    /// The declared dims of the model's single real input (-1 where dynamic), to build an `--input` from.
    public static func declaredInputShape(path: String) throws(ModelError) -> [Int] {
        let model = try parse(path: path)
        let initializers = Set(model.graph.initializer.map(\.name))
        let inputs = model.graph.input.filter { !initializers.contains($0.name) }
        guard inputs.count == 1 else {
            throw ModelError("\(path) has \(inputs.count) inputs; expected one image input")
        }
        return dims(inputs[0])
    }

    static func dims(_ input: Onnx_ValueInfoProto) -> [Int] {
        input.type.tensorType.shape.dim.map { dim -> Int in
            if case .dimValue(let v)? = dim.value { return Int(v) }
            return -1
        }
    }

    private static func parse(path: String) throws(ModelError) -> Onnx_ModelProto {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ModelError("cannot read \(path): \(error.localizedDescription)")
        }
        return try parse(data: data, name: path)
    }

    private static func parse(data: Data, name: String) throws(ModelError) -> Onnx_ModelProto {
        do {
            return try Onnx_ModelProto(serializedBytes: data)
        } catch {
            throw ModelError("\(name) is not a valid ONNX model (truncated or corrupt): \(error)")
        }
    }

    public static func load(data: Data, name: String, inputShape: [Int]? = nil) throws(ModelError) -> Graph {
        try build(try parse(data: data, name: name), name: name, inputShape: inputShape)
    }

    private static func build(_ model: Onnx_ModelProto, name: String, inputShape: [Int]?) throws(ModelError) -> Graph {
        guard model.hasGraph, !model.graph.node.isEmpty else { throw ModelError("\(name) holds no graph") }
        let opset = model.opsetImport.first { $0.domain.isEmpty || $0.domain == "ai.onnx" }.map { Int($0.version) }
        guard let opset else { throw ModelError("\(name) imports no default-domain opset") }
        guard supportedOpsets.contains(opset) else {
            throw ModelError(
                "\(name) uses opset \(opset); SkipNet supports opsets \(supportedOpsets.lowerBound)–\(supportedOpsets.upperBound)"
            )
        }
        var builder = GraphBuilder(opset: opset)
        try builder.add(model.graph, inputShape: inputShape)
        var graph = builder.finish()
        BatchNormFolding.fold(&graph)
        SelfGatingFusion.fuse(&graph)
        return graph
    }
}

/// Builds a ``Graph`` node by node, inferring shapes as it goes.
struct GraphBuilder {
    let opset: Int
    private var values: [Graph.Value] = []
    private var index: [String: Int] = [:]
    private var constants: [Int: Tensor] = [:]
    private var nodes: [Graph.Node] = []
    private var inputs: [Int] = []
    private var outputs: [Int] = []

    init(opset: Int) { self.opset = opset }

    private mutating func define(_ name: String, shape: [Int]) -> Int {
        values.append(Graph.Value(name: name, shape: shape))
        index[name] = values.count - 1
        return values.count - 1
    }

    mutating func add(_ graph: Onnx_GraphProto, inputShape: [Int]?) throws(ModelError) {
        for initializer in graph.initializer {
            let tensor = try Tensor(onnx: initializer, context: "initializer '\(initializer.name)'")
            constants[define(initializer.name, shape: tensor.shape)] = tensor
        }
        // Old exporters also list every initializer as a graph input: those stay constants.
        let realInputs = graph.input.filter { index[$0.name] == nil }
        guard !realInputs.isEmpty else { throw ModelError("the model has no input") }
        if inputShape != nil, realInputs.count != 1 {
            throw ModelError(
                "--input sets the shape of a single input, but the model has \(realInputs.count): "
                    + realInputs.map(\.name).joined(separator: ", "))
        }
        for input in realInputs {
            let declared = ONNXImporter.dims(input)
            let shape = inputShape ?? declared
            if let inputShape, !declared.isEmpty, inputShape.count != declared.count {
                throw ModelError(
                    "input '\(input.name)' has \(declared.count) dimensions, --input gives \(inputShape.count) "
                        + "(\(inputShape.shapeText))")
            }
            guard !shape.isEmpty, shape.allSatisfy({ $0 > 0 }) else {
                throw ModelError(
                    "input '\(input.name)' has dynamic or unknown dimensions \(declared.map { $0 < 0 ? "?" : "\($0)" }); "
                        + "give them with --input, e.g. --input 1x3x480x640")
            }
            inputs.append(define(input.name, shape: shape))
        }
        for proto in graph.node { try add(proto) }
        for output in graph.output {
            guard let id = index[output.name] else {
                throw ModelError("graph output '\(output.name)' is produced by no node")
            }
            outputs.append(id)
        }
    }

    private mutating func add(_ proto: Onnx_NodeProto) throws(ModelError) {
        let name = proto.name.isEmpty ? "\(proto.opType)_\(nodes.count)" : proto.name
        let info = NodeInfo(name: name, opType: proto.opType, opset: opset)
        guard proto.domain.isEmpty || proto.domain == "ai.onnx" else {
            throw .node(info, "operator domain '\(proto.domain)' is not supported")
        }
        let attributes = ONNXAttributes(proto, info: info)
        var inputIDs: [Int?] = []
        for input in proto.input {
            if input.isEmpty {
                inputIDs.append(nil)
                continue
            }
            guard let id = index[input] else { throw .node(info, "input '\(input)' is not produced before this node") }
            inputIDs.append(id)
        }

        switch proto.opType {
        case "Constant":
            guard proto.output.count == 1 else { throw .node(info, "expects one output") }
            let tensor: Tensor
            if let t = try attributes.tensor("value") {
                tensor = try Tensor(onnx: t, context: "node '\(name)'")
            } else if attributes.has("value_float") {
                tensor = Tensor(shape: [], data: [try attributes.float("value_float", default: 0)])
            } else if let v = try attributes.floats("value_floats") {
                tensor = Tensor(shape: [v.count], data: v)
            } else if attributes.has("value_int") {
                tensor = Tensor(shape: [], data: [Float(try attributes.int("value_int", default: 0))])
            } else if let v = try attributes.ints("value_ints") {
                tensor = Tensor(shape: [v.count], data: v.map { Float($0) })
            } else {
                throw .node(info, "only tensor, float and int constants are supported")
            }
            constants[define(proto.output[0], shape: tensor.shape)] = tensor
            return
        case "Identity", "Dropout":
            // Inference no-ops: later nodes read the input directly.
            guard let source = inputIDs.first ?? nil else { throw .node(info, "needs an input") }
            index[proto.output[0]] = source
            return
        default:
            break
        }

        let op = try OperatorParser(info: info, attributes: attributes, opset: opset)
            .parse(proto.opType, inputs: inputIDs, constants: constants)
        let inputShapes = inputIDs.map { $0.map { values[$0].shape } }
        if let folded = try ConstantFolding.fold(
            op, info: info, inputs: inputIDs.map { $0.flatMap { constants[$0] } }, shapes: inputShapes,
            outputCount: proto.output.count)
        {
            guard folded.count == proto.output.count else {
                throw .node(info, "produces \(folded.count) outputs, the model names \(proto.output.count)")
            }
            for (output, tensor) in zip(proto.output, folded) {
                constants[define(output, shape: tensor.shape)] = tensor
            }
            return
        }
        let (finalOp, outputShapes) = try ShapeInference.infer(
            op, info: info, inputs: inputShapes, constants: inputIDs.map { $0.flatMap { constants[$0] } },
            outputCount: proto.output.count)
        guard outputShapes.count == proto.output.count else {
            throw .node(info, "produces \(outputShapes.count) outputs, the model names \(proto.output.count)")
        }
        let outputIDs = zip(proto.output, outputShapes).map { define($0, shape: $1) }
        nodes.append(Graph.Node(info: info, op: finalOp, inputs: inputIDs, outputs: outputIDs))
    }

    func finish() -> Graph {
        Graph(values: values, constants: constants, nodes: nodes, inputs: inputs, outputs: outputs, opset: opset)
    }
}
