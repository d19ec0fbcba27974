/// Why a model cannot be loaded or run: one clear message, never a crash.
public struct ModelError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }

    static func node(_ node: NodeInfo, _ message: String) -> ModelError {
        ModelError("node '\(node.name)' (\(node.opType), opset \(node.opset)): \(message)")
    }
}

/// What errors say about the node they concern.
public struct NodeInfo: Sendable, Equatable {
    public var name: String
    public var opType: String
    public var opset: Int
}
