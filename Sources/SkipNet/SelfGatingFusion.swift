/// Replaces `Mul(x, Sigmoid(x))` — SiLU as PyTorch exports it (YOLOv5/v8) — by one `silu` node, and
/// `Mul(x, HardSigmoid(x))` with α = 1/6, β = ½ — HardSwish as exported before opset 14 (MobileNetV3) — by one
/// `hardSwish` node, so that the executor applies them in the epilogue of the convolution that produces `x`
/// instead of two passes over memory. Only when the gate's output feeds that Mul alone.
enum SelfGatingFusion {
    static func fuse(_ graph: inout Graph) {
        let uses = graph.readerCounts(countingOutputs: true)
        var producer: [Int: Int] = [:]
        for (i, node) in graph.nodes.enumerated() { for v in node.outputs { producer[v] = i } }
        var removed = Set<Int>()
        for (m, mul) in graph.nodes.enumerated() {
            guard case .mul = mul.op, mul.inputs.count == 2, let a = mul.inputs[0], let b = mul.inputs[1] else {
                continue
            }
            for (x, g) in [(a, b), (b, a)] {
                guard uses[g] == 1, let k = producer[g], !removed.contains(k), graph.nodes[k].inputs.first == x,
                    let fused = fusedOperator(gate: graph.nodes[k].op)
                else { continue }
                graph.nodes[m].op = fused
                graph.nodes[m].inputs = [x]
                removed.insert(k)
                break
            }
        }
        graph.nodes = graph.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }

    private static func fusedOperator(gate: Operator) -> Operator? {
        switch gate {
        case .sigmoid: return .silu
        case .hardSigmoid(let alpha, let beta) where abs(alpha - 1 / 6) < 1e-6 && beta == 0.5: return .hardSwish
        default: return nil
        }
    }
}
