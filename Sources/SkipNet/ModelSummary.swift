/// Per-layer parameters and multiply-accumulates (docs/skip-convolutions.md §7): what `skipd inspect` prints.
public struct ModelSummary: Sendable {
    public struct Layer: Sendable {
        public var name: String
        public var op: String
        public var inputShape: [Int]
        public var outputShape: [Int]
        /// Constant inputs' element count (weights, biases).
        public var parameters: Int
        /// Multiply-accumulates for convolutions and matrix products; 0 for other operators.
        public var macs: Int
    }

    public var layers: [Layer]
    public var inputs: [(name: String, shape: [Int])]
    public var outputs: [(name: String, shape: [Int])]

    public var totalMACs: Int { layers.reduce(0) { $0 + $1.macs } }
    public var totalParameters: Int { layers.reduce(0) { $0 + $1.parameters } }

    public init(_ graph: Graph) {
        layers = graph.nodes.map { node in
            let x = node.inputs.first.flatMap { $0 }.map { graph.shape(of: $0) } ?? []
            let y = graph.shape(of: node.outputs[0])
            let parameters = node.inputs.compactMap { $0.flatMap { graph.constants[$0]?.count } }.reduce(0, +)
            return Layer(
                name: node.info.name, op: node.info.opType, inputShape: x, outputShape: y, parameters: parameters,
                macs: Self.macs(node, graph))
        }
        inputs = graph.inputs.map { (graph.values[$0].name, graph.shape(of: $0)) }
        outputs = graph.outputs.map { (graph.values[$0].name, graph.shape(of: $0)) }
    }

    static func macs(_ node: Graph.Node, _ graph: Graph) -> Int {
        let x = node.inputs[0].map { graph.shape(of: $0) } ?? []
        let y = graph.shape(of: node.outputs[0])
        switch node.op {
        case .conv(let a):
            // N·H_out·W_out·(C_in/g)·C_out·k_h·k_w
            return y[0] * y[2] * y[3] * (x[1] / a.group) * y[1] * a.kernel[0] * a.kernel[1]
        case .convTranspose(let a, _, _):
            // N·H_in·W_in·C_in·(C_out/g)·k_h·k_w
            return x[0] * x[2] * x[3] * x[1] * (y[1] / a.group) * a.kernel[0] * a.kernel[1]
        case .gemm(_, _, let transA, _):
            let k = transA ? x[0] : x[1]
            return y[0] * y[1] * k
        case .matMul:
            let k = x.last ?? 1
            return y.reduce(1, *) * k
        default:
            return 0
        }
    }
}
