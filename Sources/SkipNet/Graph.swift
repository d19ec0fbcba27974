/// A model as SkipNet runs it: values by index, constants folded in, nodes in execution order, every shape known.
public struct Graph: Sendable {
    public struct Value: Sendable {
        public var name: String
        public var shape: [Int]
    }

    public struct Node: Sendable {
        public var info: NodeInfo
        public var op: Operator
        /// Value indices; `nil` for an omitted optional input.
        public var inputs: [Int?]
        public var outputs: [Int]
    }

    public var values: [Value]
    /// Weights and other constant values, by value index.
    public var constants: [Int: Tensor]
    public var nodes: [Node]
    public var inputs: [Int]
    public var outputs: [Int]
    /// The default-domain opset the model was exported with.
    public var opset: Int

    public func shape(of value: Int) -> [Int] { values[value].shape }

    /// Per value, how many node inputs read it (a node reading it twice counts twice), plus one for each graph
    /// output it is when `countingOutputs`.
    func readerCounts(countingOutputs: Bool = false) -> [Int] {
        var readers = Array(repeating: 0, count: values.count)
        for node in nodes { for case let v? in node.inputs { readers[v] += 1 } }
        if countingOutputs { for v in outputs { readers[v] += 1 } }
        return readers
    }
}
