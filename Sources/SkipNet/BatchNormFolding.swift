/// Folds inference-time batch normalisation into the convolution before it:
/// `W' = W·γ/σ` per output channel, `b' = β + γ/σ·(b − μ)`, `σ = √(var + ε)` (docs/skip-convolutions.md §1).
/// Only when the convolution's output feeds nothing else and its weights are constants used by it alone.
enum BatchNormFolding {
    static func fold(_ graph: inout Graph) {
        let uses = graph.readerCounts(countingOutputs: true)
        var producer: [Int: Int] = [:]
        for (i, node) in graph.nodes.enumerated() { for v in node.outputs { producer[v] = i } }

        var removed = Set<Int>()
        for (b, bn) in graph.nodes.enumerated() {
            guard case .batchNormalization(let epsilon) = bn.op, let x = bn.inputs[0], uses[x] == 1,
                let c = producer[x], !removed.contains(c)
            else { continue }
            let conv = graph.nodes[c]
            let outputAxis: Int
            switch conv.op {
            case .conv: outputAxis = 0
            case .convTranspose: outputAxis = 1
            default: continue
            }
            // BatchNormalization inputs: X, scale (γ), bias (β), mean (μ), var.
            let params = bn.inputs.dropFirst().map { $0.flatMap { graph.constants[$0]?.data } }
            guard let w = conv.inputs[1], uses[w] == 1, var weights = graph.constants[w], params.count == 4,
                let gamma = params[0], let beta = params[1], let mean = params[2], let variance = params[3]
            else { continue }
            let biasID = conv.inputs.count > 2 ? conv.inputs[2] : nil
            if let biasID, uses[biasID] != 1 || graph.constants[biasID] == nil { continue }
            let outChannels = gamma.count
            var bias = biasID.flatMap { graph.constants[$0]?.data } ?? Array(repeating: 0, count: outChannels)
            let scale = (0..<outChannels).map { gamma[$0] / (variance[$0] + epsilon).squareRoot() }

            // Weights [M, C/g, kh, kw] (conv) or [C, M/g, kh, kw] (transposed, output channel = axis 1 per group).
            let s = weights.shape
            let inner = s[2...].reduce(1, *)
            let groups: Int
            if case .convTranspose(let a, _, _) = conv.op { groups = a.group } else { groups = 1 }
            let perGroup = outputAxis == 0 ? s[0] : s[1]
            for i in 0..<s[0] {
                for j in 0..<s[1] {
                    let channel = outputAxis == 0 ? i : (i / (s[0] / groups)) * perGroup + j
                    for k in 0..<inner { weights.data[(i * s[1] + j) * inner + k] *= scale[channel] }
                }
            }
            for o in 0..<outChannels { bias[o] = beta[o] + scale[o] * (bias[o] - mean[o]) }
            graph.constants[w] = weights

            var folded = conv
            if let biasID {
                graph.constants[biasID] = Tensor(shape: [outChannels], data: bias)
            } else {
                graph.values.append(Graph.Value(name: "\(conv.info.name).folded_bias", shape: [outChannels]))
                graph.constants[graph.values.count - 1] = Tensor(shape: [outChannels], data: bias)
                while folded.inputs.count < 3 { folded.inputs.append(nil) }
                folded.inputs[2] = graph.values.count - 1
            }
            folded.outputs = bn.outputs
            graph.nodes[c] = folded
            removed.insert(b)
        }
        graph.nodes = graph.nodes.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
    }
}
