/// Evaluates, at load, every node whose inputs are all known — weights, `Constant`s, and shapes, which are fixed
/// once the input size is: exported detectors compute reshape targets, anchors and strides with `Shape → Gather →
/// Unsqueeze → Concat` chains that would otherwise need a runtime with integer tensors. The executors then see a
/// static graph. Integer tensors keep ONNX's semantics here (division and means truncate toward zero).
enum ConstantFolding {
    /// The node's outputs when it can be evaluated now, nil when it must run per frame. `inputs`: per input, its
    /// value when known (nil for image-dependent or omitted ones); `shapes`: every present input's shape.
    static func fold(
        _ op: Operator, info: NodeInfo, inputs: [Tensor?], shapes: [[Int]?], outputCount: Int
    ) throws(ModelError) -> [Tensor]? {
        switch op {
        case .shape:
            guard let x = shapes.first ?? nil else { throw .node(info, "needs an input") }
            let (resolved, _) = try ShapeInference.infer(
                op, info: info, inputs: shapes, constants: inputs, outputCount: outputCount)
            guard case .shape(let start, let end) = resolved else { return nil }
            let dims = Array(x[start..<(end ?? x.count)])
            return [Tensor(shape: [dims.count], data: dims.map { Float($0) }, kind: .integer)]
        case .conv, .convTranspose:
            return nil
        default:
            break
        }
        // Every present input known?
        for (value, shape) in zip(inputs, shapes) where shape != nil && value == nil { return nil }
        switch op {
        case .range:
            return [try range(inputs, info: info)]
        case .constantOfShape(let value):
            guard let shapeTensor = inputs.first ?? nil else { throw .node(info, "needs a shape") }
            let dims = try shapeTensor.integers(info)
            guard let count = Tensor.elementCount(dims) else { throw .node(info, "bad shape \(dims)") }
            return [
                Tensor(
                    shape: dims, data: Array(repeating: value?.data[0] ?? 0, count: count), kind: value?.kind ?? .float)
            ]
        case .min where inputs.count > 2, .max where inputs.count > 2:
            // Pairwise, so that the kernel (two inputs) does the broadcasting.
            guard var result = inputs[0] else { throw .node(info, "needs an input") }
            for next in inputs.dropFirst() {
                result = try evaluate(
                    op, info: info, inputs: [result, next], shapes: [result.shape, next?.shape], outputCount: 1)[0]
            }
            return [result]
        default:
            return try evaluate(op, info: info, inputs: inputs, shapes: shapes, outputCount: outputCount)
        }
    }

    /// Runs the operator's kernel once on the known inputs.
    private static func evaluate(
        _ op: Operator, info: NodeInfo, inputs: [Tensor?], shapes: [[Int]?], outputCount: Int
    ) throws(ModelError) -> [Tensor] {
        let (resolved, outputShapes) = try ShapeInference.infer(
            op, info: info, inputs: shapes, constants: inputs, outputCount: outputCount)
        let inputMemory = inputs.map { tensor -> UnsafeMutablePointer<Float>? in
            guard let tensor else { return nil }
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(tensor.count, 1))
            tensor.data.withUnsafeBufferPointer {
                if let base = $0.baseAddress { p.initialize(from: base, count: tensor.count) }
            }
            return p
        }
        let outputMemory = outputShapes.map { UnsafeMutablePointer<Float>.allocate(capacity: max($0.reduce(1, *), 1)) }
        defer {
            for p in inputMemory { p?.deallocate() }
            for p in outputMemory { p.deallocate() }
        }
        try OperatorStep.make(
            resolved, info: info, inputs: inputMemory, inputShapes: shapes, constants: inputs, outputs: outputMemory,
            outputShapes: outputShapes)()
        let kind = resultKind(op, inputs: inputs)
        return zip(outputShapes, outputMemory).map { shape, memory in
            var data = Array(UnsafeBufferPointer(start: memory, count: shape.reduce(1, *)))
            if kind == .integer, truncates(op) {
                for i in data.indices { data[i] = data[i].rounded(.towardZero) }
            }
            return Tensor(shape: shape, data: data, kind: kind)
        }
    }

    /// Integer results that the float kernels leave fractional.
    private static func truncates(_ op: Operator) -> Bool {
        switch op {
        case .div, .reduce(.mean, _, _): true
        default: false
        }
    }

    private static func resultKind(_ op: Operator, inputs: [Tensor?]) -> Tensor.Kind {
        let first = inputs.first??.kind ?? .float
        switch op {
        case .cast(let kind): return kind
        case .equal, .less, .greater, .math(.not): return .boolean
        case .math(let f) where [.exp, .log, .sqrt, .reciprocal, .erf, .sin, .cos].contains(f): return .float
        case .where: return inputs.count > 1 ? inputs[1]?.kind ?? .float : .float
        case .sigmoid, .tanh, .silu, .hardSigmoid, .hardSwish, .softmax, .resize, .globalAveragePool,
            .averagePool:
            return .float
        default: return first
        }
    }

    /// ONNX Range: `start + i·delta` for `i < max(ceil((limit − start) / delta), 0)`.
    private static func range(_ inputs: [Tensor?], info: NodeInfo) throws(ModelError) -> Tensor {
        guard inputs.count == 3, let start = inputs[0], let limit = inputs[1], let delta = inputs[2],
            start.count == 1, limit.count == 1, delta.count == 1
        else { throw .node(info, "start, limit and delta must be scalars") }
        let (a, b, d) = (Double(start.data[0]), Double(limit.data[0]), Double(delta.data[0]))
        guard d != 0, a.isFinite, b.isFinite, d.isFinite else { throw .node(info, "bad range \(a), \(b), \(d)") }
        let steps = ((b - a) / d).rounded(.up)
        guard steps <= Double(Tensor.maximumCount) else { throw .node(info, "range of \(steps) values") }
        let count = max(Int(steps), 0)
        return Tensor(shape: [count], data: (0..<count).map { Float(a + Double($0) * d) }, kind: start.kind)
    }
}
