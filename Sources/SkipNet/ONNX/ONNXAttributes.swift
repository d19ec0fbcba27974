import Foundation

/// A node's attributes by name, with typed, checked accessors.
struct ONNXAttributes {
    let node: NodeInfo
    private let byName: [String: Onnx_AttributeProto]

    init(_ proto: Onnx_NodeProto, info: NodeInfo) {
        node = info
        byName = Dictionary(proto.attribute.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    }

    func has(_ name: String) -> Bool { byName[name] != nil }

    func int(_ name: String, default value: Int) throws(ModelError) -> Int {
        guard let a = byName[name] else { return value }
        guard a.type == .int || a.hasI else { throw .node(node, "attribute '\(name)' must be an int") }
        return Int(a.i)
    }

    func float(_ name: String, default value: Float) throws(ModelError) -> Float {
        guard let a = byName[name] else { return value }
        guard a.type == .float || a.hasF else { throw .node(node, "attribute '\(name)' must be a float") }
        return a.f
    }

    func ints(_ name: String) throws(ModelError) -> [Int]? {
        guard let a = byName[name] else { return nil }
        guard a.type == .ints || a.type == .undefined else {
            throw .node(node, "attribute '\(name)' must be a list of ints")
        }
        return a.ints.map { Int($0) }
    }

    func floats(_ name: String) throws(ModelError) -> [Float]? {
        guard let a = byName[name] else { return nil }
        guard a.type == .floats || a.type == .undefined else {
            throw .node(node, "attribute '\(name)' must be a list of floats")
        }
        return a.floats
    }

    func string(_ name: String, default value: String) throws(ModelError) -> String {
        guard let a = byName[name] else { return value }
        guard a.type == .string || a.hasS, let text = String(data: a.s, encoding: .utf8) else {
            throw .node(node, "attribute '\(name)' must be a string")
        }
        return text
    }

    func tensor(_ name: String) throws(ModelError) -> Onnx_TensorProto? {
        guard let a = byName[name] else { return nil }
        guard a.hasT else { throw .node(node, "attribute '\(name)' must be a tensor") }
        return a.t
    }
}
