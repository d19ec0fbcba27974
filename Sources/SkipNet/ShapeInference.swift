/// Output shapes of every operator, computed once at load so that every buffer can be planned before the first
/// frame. Also completes attributes that depend on shapes (kernel size from the weights, `auto_pad` pads).
enum ShapeInference {
    static func infer(
        _ op: Operator, info: NodeInfo, inputs: [[Int]?], constants: [Tensor?], outputCount: Int
    ) throws(ModelError) -> (Operator, [[Int]]) {
        func input(_ i: Int) throws(ModelError) -> [Int] {
            guard i < inputs.count, let shape = inputs[i] else { throw .node(info, "missing input \(i)") }
            return shape
        }
        let x = try input(0)
        switch op {
        case .conv(var a):
            let w = try input(1)
            guard x.count == 4, w.count == 4 else {
                throw .node(info, "only 2-D convolutions (4-D tensors) are supported; input \(x), weights \(w)")
            }
            try complete(&a, kernel: [w[2], w[3]], info: info)
            guard a.group >= 1, x[1] == w[1] * a.group, w[0] % a.group == 0 else {
                throw .node(
                    info, "input has \(x[1]) channels, weights \(w) with group \(a.group) expect \(w[1] * a.group)")
            }
            if inputs.count > 2, let b = inputs[2], b != [w[0]] {
                throw .node(info, "bias \(b) does not match \(w[0]) filters")
            }
            let (h, pt, pb) = try convOut(
                x[2], k: w[2], s: a.strides[0], d: a.dilations[0], pads: (a.pads[0], a.pads[2]), auto: a.autoPad,
                info: info)
            let (wd, pl, pr) = try convOut(
                x[3], k: w[3], s: a.strides[1], d: a.dilations[1], pads: (a.pads[1], a.pads[3]), auto: a.autoPad,
                info: info)
            a.pads = [pt, pl, pb, pr]
            a.autoPad = "NOTSET"
            return (.conv(a), [[x[0], w[0], h, wd]])
        case .convTranspose(var a, let outputPadding, let outputShape):
            let w = try input(1)
            guard x.count == 4, w.count == 4 else {
                throw .node(info, "only 2-D transposed convolutions are supported; input \(x), weights \(w)")
            }
            try complete(&a, kernel: [w[2], w[3]], info: info)
            guard x[1] == w[0], a.group >= 1, w[0] % a.group == 0 else {
                throw .node(info, "input has \(x[1]) channels, weights \(w) expect \(w[0])")
            }
            guard a.autoPad == "NOTSET" || a.autoPad == "VALID" else {
                throw .node(info, "auto_pad \(a.autoPad) is not supported for ConvTranspose")
            }
            let op = outputPadding.isEmpty ? [0, 0] : outputPadding
            var out = [0, 0]
            for i in 0..<2 {
                let full = a.strides[i] * (x[2 + i] - 1) + op[i] + (w[2 + i] - 1) * a.dilations[i] + 1
                if let outputShape, outputShape.count >= 2 {
                    let target = outputShape[outputShape.count - 2 + i]
                    let total = full - target
                    guard total >= 0 else { throw .node(info, "output_shape \(outputShape) is too large") }
                    a.pads[i] = total / 2
                    a.pads[i + 2] = total - total / 2
                }
                out[i] = full - a.pads[i] - a.pads[i + 2]
                guard out[i] > 0 else { throw .node(info, "output would be empty for input \(x)") }
            }
            return (.convTranspose(a, outputPadding: op, outputShape: nil), [[x[0], w[1] * a.group, out[0], out[1]]])
        case .batchNormalization:
            guard x.count >= 2 else { throw .node(info, "input must have a channel dimension") }
            for i in 1..<5 where try input(i) != [x[1]] {
                throw .node(info, "parameter \(i) has shape \(try input(i)), expected [\(x[1])]")
            }
            return (op, [x])
        case .relu, .leakyRelu, .clip, .sigmoid, .hardSigmoid, .hardSwish, .tanh:
            return (op, [x])
        case .prelu:
            let slope = try input(1)
            _ = try broadcast(x, slope, info: info)
            return (op, [x])
        case .add, .sub, .mul, .div:
            return (op, [try broadcast(x, try input(1), info: info)])
        case .concat(let axis):
            let ax = try normalize(axis, rank: x.count, info: info)
            var out = x
            out[ax] = 0
            for i in 0..<inputs.count {
                let s = try input(i)
                guard s.count == x.count, (0..<x.count).allSatisfy({ $0 == ax || s[$0] == x[$0] }) else {
                    throw .node(info, "inputs \(x) and \(s) differ outside axis \(axis)")
                }
                out[ax] += s[ax]
            }
            return (.concat(axis: ax), [out])
        case .split(let axis, let sizes):
            let ax = try normalize(axis, rank: x.count, info: info)
            let parts = sizes ?? Array(repeating: x[ax] / max(outputCount, 1), count: outputCount)
            guard parts.count == outputCount, parts.reduce(0, +) == x[ax], parts.allSatisfy({ $0 >= 0 }) else {
                throw .node(info, "cannot split \(x[ax]) along axis \(axis) into \(parts) for \(outputCount) outputs")
            }
            return (
                .split(axis: ax, sizes: parts),
                parts.map {
                    var s = x; s[ax] = $0; return s
                }
            )
        case .resize:
            return (op, [try resizeShape(x, inputs: inputs, constants: constants, info: info)])
        case .maxPool(var a), .averagePool(var a, _):
            guard x.count == 4, a.kernel.count == 2 else { throw .node(info, "only 2-D pooling is supported") }
            if a.strides.isEmpty { a.strides = [1, 1] }
            if a.pads.isEmpty { a.pads = [0, 0, 0, 0] }
            if a.dilations.isEmpty { a.dilations = [1, 1] }
            var out = [0, 0]
            for i in 0..<2 {
                let extent = (a.kernel[i] - 1) * a.dilations[i] + 1
                switch a.autoPad {
                case "SAME_UPPER", "SAME_LOWER":
                    out[i] = (x[2 + i] + a.strides[i] - 1) / a.strides[i]
                    let total = max(0, (out[i] - 1) * a.strides[i] + extent - x[2 + i])
                    let small = total / 2
                    (a.pads[i], a.pads[i + 2]) =
                        a.autoPad == "SAME_UPPER" ? (small, total - small) : (total - small, small)
                case "VALID":
                    a.pads[i] = 0
                    a.pads[i + 2] = 0
                    out[i] = (x[2 + i] - extent) / a.strides[i] + 1
                default:
                    let span = x[2 + i] + a.pads[i] + a.pads[i + 2] - extent
                    out[i] = (a.ceilMode ? (span + a.strides[i] - 1) / a.strides[i] : span / a.strides[i]) + 1
                    // The last window must start inside the input or its leading padding.
                    if a.ceilMode, (out[i] - 1) * a.strides[i] >= x[2 + i] + a.pads[i] { out[i] -= 1 }
                }
                guard out[i] > 0 else { throw .node(info, "pooling window larger than the input \(x)") }
            }
            a.autoPad = "NOTSET"
            let shape = [x[0], x[1], out[0], out[1]]
            if case .averagePool(_, let include) = op { return (.averagePool(a, countIncludePad: include), [shape]) }
            return (.maxPool(a), [shape])
        case .globalAveragePool:
            guard x.count == 4 else { throw .node(info, "expects a 4-D input, got \(x)") }
            return (op, [[x[0], x[1], 1, 1]])
        case .softmax(let axis, let legacy):
            return (.softmax(axis: try normalize(axis, rank: x.count, info: info), legacy: legacy), [x])
        case .transpose(let perm):
            let p = perm ?? Array((0..<x.count).reversed())
            guard p.sorted() == Array(0..<x.count) else { throw .node(info, "perm \(p) does not fit rank \(x.count)") }
            return (.transpose(perm: p), [p.map { x[$0] }])
        case .reshape(let allowZero):
            guard let target = constants.count > 1 ? constants[1] : nil else {
                throw .node(info, "the target shape must be a constant")
            }
            return (op, [try reshape(x, to: try target.integers(info), allowZero: allowZero, info: info)])
        case .flatten(let axis):
            let ax = axis < 0 ? axis + x.count : axis
            guard (0...x.count).contains(ax) else { throw .node(info, "axis \(axis) out of range for \(x)") }
            return (.flatten(axis: ax), [[x[..<ax].reduce(1, *), x[ax...].reduce(1, *)]])
        case .gemm(_, _, let transA, let transB):
            let b = try input(1)
            guard x.count == 2, b.count == 2 else { throw .node(info, "Gemm expects 2-D inputs, got \(x) and \(b)") }
            let (m, k) = transA ? (x[1], x[0]) : (x[0], x[1])
            let (k2, n) = transB ? (b[1], b[0]) : (b[0], b[1])
            guard k == k2 else { throw .node(info, "inner dimensions differ: \(x) and \(b)") }
            if inputs.count > 2, let c = inputs[2] {
                // C broadcasts one way, to [M, N] (rank 0 to 2), as the kernel reads it.
                guard c.count <= 2, try broadcast([m, n], c, info: info) == [m, n] else {
                    throw .node(info, "C of shape \(c) does not broadcast to [\(m), \(n)]")
                }
            }
            return (op, [[m, n]])
        case .matMul:
            return (op, [try matMulShape(x, try input(1), info: info)])
        case .silu, .math, .pow, .min, .max, .equal, .less, .greater, .where, .reduce, .cast, .shape,
            .constantOfShape, .range, .gather, .slice, .squeeze, .unsqueeze, .expand, .pad:
            return try inferTensorOperator(op, info: info, inputs: inputs, constants: constants)
        }
    }

    /// Fills defaults that depend on the kernel size.
    private static func complete(_ a: inout ConvAttributes, kernel: [Int], info: NodeInfo) throws(ModelError) {
        if a.kernel.isEmpty { a.kernel = kernel }
        guard a.kernel == kernel else {
            throw .node(info, "kernel_shape \(a.kernel) differs from the weights \(kernel)")
        }
        if a.strides.isEmpty { a.strides = [1, 1] }
        if a.dilations.isEmpty { a.dilations = [1, 1] }
        if a.pads.isEmpty { a.pads = [0, 0, 0, 0] }
        guard a.strides.count == 2, a.dilations.count == 2, a.pads.count == 4,
            a.strides.allSatisfy({ $0 > 0 }), a.dilations.allSatisfy({ $0 > 0 }), a.pads.allSatisfy({ $0 >= 0 })
        else { throw .node(info, "bad strides \(a.strides), dilations \(a.dilations) or pads \(a.pads)") }
    }

    private static func convOut(
        _ size: Int, k: Int, s: Int, d: Int, pads: (Int, Int), auto: String, info: NodeInfo
    ) throws(ModelError) -> (Int, Int, Int) {
        let extent = (k - 1) * d + 1
        var (begin, end) = pads
        let out: Int
        switch auto {
        case "SAME_UPPER", "SAME_LOWER":
            out = (size + s - 1) / s
            let total = max(0, (out - 1) * s + extent - size)
            (begin, end) = auto == "SAME_UPPER" ? (total / 2, total - total / 2) : (total - total / 2, total / 2)
        case "VALID":
            (begin, end) = (0, 0)
            out = (size - extent) / s + 1
        case "NOTSET":
            out = (size + begin + end - extent) / s + 1
        default:
            throw .node(info, "unknown auto_pad '\(auto)'")
        }
        guard out > 0, size + begin + end >= extent else {
            throw .node(info, "input size \(size) is too small for a kernel of \(k) (dilation \(d))")
        }
        return (out, begin, end)
    }

    static func broadcast(_ a: [Int], _ b: [Int], info: NodeInfo) throws(ModelError) -> [Int] {
        let rank = max(a.count, b.count)
        let pa = Array(repeating: 1, count: rank - a.count) + a
        let pb = Array(repeating: 1, count: rank - b.count) + b
        var out: [Int] = []
        for (x, y) in zip(pa, pb) {
            guard x == y || x == 1 || y == 1 else {
                throw .node(
                    info, "shapes \(a) and \(b) cannot be broadcast together (does the model accept this input size?)")
            }
            out.append(x == 1 ? y : x)
        }
        return out
    }

    static func normalize(_ axis: Int, rank: Int, info: NodeInfo) throws(ModelError) -> Int {
        let ax = axis < 0 ? axis + rank : axis
        guard (0..<rank).contains(ax) else { throw .node(info, "axis \(axis) out of range for rank \(rank)") }
        return ax
    }

    private static func reshape(_ x: [Int], to target: [Int], allowZero: Bool, info: NodeInfo) throws(ModelError)
        -> [Int]
    {
        var out = target
        for i in out.indices where out[i] == 0 && !allowZero {
            guard i < x.count else { throw .node(info, "shape \(target) copies a dimension \(x) lacks") }
            out[i] = x[i]
        }
        let total = x.reduce(1, *)
        if let unknown = out.firstIndex(of: -1) {
            let known = out.enumerated().filter { $0.offset != unknown }.map(\.element).reduce(1, *)
            guard known > 0, total % known == 0 else { throw .node(info, "cannot reshape \(x) to \(target)") }
            out[unknown] = total / known
        }
        guard out.allSatisfy({ $0 >= 0 }), out.reduce(1, *) == total else {
            throw .node(info, "cannot reshape \(x) to \(target)")
        }
        return out
    }

    private static func resizeShape(_ x: [Int], inputs: [[Int]?], constants: [Tensor?], info: NodeInfo)
        throws(ModelError) -> [Int]
    {
        // Upsample-9 / Resize-10: (X, scales); Resize-11+: (X, roi, scales, sizes).
        let scalesIndex = inputs.count == 2 ? 1 : 2
        var out: [Int]
        if inputs.count > 3, inputs[3] != nil {
            guard let sizes = constants[3] else { throw .node(info, "sizes must be a constant") }
            out = try sizes.integers(info)
        } else if scalesIndex < inputs.count, inputs[scalesIndex] != nil {
            guard let scales = constants[scalesIndex] else { throw .node(info, "scales must be a constant") }
            guard scales.count == x.count else {
                throw .node(info, "\(scales.count) scales for a rank-\(x.count) input")
            }
            out = try zip(x, scales.data).map { (d, s) throws(ModelError) in
                try Tensor.integer((Float(d) * s).rounded(.down), info)
            }
        } else {
            throw .node(info, "needs scales or sizes")
        }
        guard out.count == 4, x.count == 4, out[0] == x[0], out[1] == x[1], out[2] > 0, out[3] > 0 else {
            throw .node(info, "only spatial resizing of 4-D tensors is supported (\(x) → \(out))")
        }
        return out
    }

    private static func matMulShape(_ a: [Int], _ b: [Int], info: NodeInfo) throws(ModelError) -> [Int] {
        guard !a.isEmpty, !b.isEmpty else { throw .node(info, "MatMul of scalars") }
        let a2 = a.count == 1 ? [1] + a : a
        let b2 = b.count == 1 ? b + [1] : b
        guard a2[a2.count - 1] == b2[b2.count - 2] else { throw .node(info, "inner dimensions differ: \(a) and \(b)") }
        var out = try broadcast(Array(a2.dropLast(2)), Array(b2.dropLast(2)), info: info)
        if a.count > 1 { out.append(a2[a2.count - 2]) }
        if b.count > 1 { out.append(b2[b2.count - 1]) }
        return out
    }
}
