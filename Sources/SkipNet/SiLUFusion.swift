/// Replaces `Mul(x, Sigmoid(x))` — SiLU as PyTorch exports it (YOLOv5/v8) — by one `silu` node, so that the
/// executor applies it in the epilogue of the convolution that produces `x` instead of two passes over memory.
/// Only when the Sigmoid's output feeds that Mul alone.
enum SiLUFusion {
    static func fuse(_ graph: inout Graph) {
        let uses = graph.readerCounts(countingOutputs: true)
        var producer: [Int: Int] = [:]
        for (i, node) in graph.nodes.enumerated() { for v in node.outputs { producer[v] = i } }
        var removed = Set<Int>()
        for (m, mul) in graph.nodes.enumerated() {
            guard case .mul = mul.op, mul.inputs.count == 2, let a = mul.inputs[0], let b = mul.inputs[1] else {
                continue
            }
            for (x, s) in [(a, b), (b, a)] {
                guard uses[s] == 1, let k = producer[s], !removed.contains(k), case .sigmoid = graph.nodes[k].op,
                    graph.nodes[k].inputs.first == x
                else { continue }
                graph.nodes[m].op = .silu
                graph.nodes[m].inputs = [x]
                removed.insert(k)
                break
            }
        }
        graph.nodes = graph.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }
}
