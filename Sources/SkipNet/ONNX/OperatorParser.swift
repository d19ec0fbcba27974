/// Maps an ONNX node to an ``Operator``, checking attributes and the opset-dependent forms of each operator.
struct OperatorParser {
    let info: NodeInfo
    let attributes: ONNXAttributes
    let opset: Int

    func parse(_ opType: String, inputs: [Int?], constants: [Int: Tensor]) throws(ModelError) -> Operator {
        func constant(_ i: Int) -> Tensor? { i < inputs.count ? inputs[i].flatMap { constants[$0] } : nil }
        func need(_ count: ClosedRange<Int>) throws(ModelError) {
            guard count.contains(inputs.count), inputs.first.flatMap({ $0 }) != nil else {
                throw .node(info, "expects \(count.lowerBound)…\(count.upperBound) inputs, got \(inputs.count)")
            }
        }
        switch opType {
        case "Conv":
            try need(2...3)
            return .conv(try convAttributes())
        case "ConvTranspose":
            try need(2...3)
            return .convTranspose(
                try convAttributes(), outputPadding: try attributes.ints("output_padding") ?? [],
                outputShape: try attributes.ints("output_shape"))
        case "BatchNormalization":
            try need(5...5)
            return .batchNormalization(epsilon: try attributes.float("epsilon", default: 1e-5))
        case "Relu": return .relu
        case "PRelu":
            try need(2...2)
            return .prelu
        case "LeakyRelu": return .leakyRelu(alpha: try attributes.float("alpha", default: 0.01))
        case "Clip":
            if opset < 11 {
                return .clip(
                    min: try attributes.float("min", default: -.greatestFiniteMagnitude),
                    max: try attributes.float("max", default: .greatestFiniteMagnitude))
            }
            for i in 1..<3 where i < inputs.count && inputs[i] != nil && constant(i) == nil {
                throw .node(info, "Clip bounds must be constants")
            }
            return .clip(
                min: constant(1)?.data.first ?? -.greatestFiniteMagnitude,
                max: constant(2)?.data.first ?? .greatestFiniteMagnitude)
        case "Sigmoid": return .sigmoid
        case "HardSigmoid":
            return .hardSigmoid(
                alpha: try attributes.float("alpha", default: 0.2), beta: try attributes.float("beta", default: 0.5))
        case "HardSwish": return .hardSwish
        case "Tanh": return .tanh
        case "Add", "Sub", "Mul", "Div":
            try need(2...2)
            if opset < 7 || attributes.has("broadcast") && attributes.has("axis") {
                throw .node(info, "legacy broadcast attributes are not supported")
            }
            switch opType {
            case "Add": return .add
            case "Sub": return .sub
            case "Mul": return .mul
            default: return .div
            }
        case "Concat":
            guard attributes.has("axis") else { throw .node(info, "Concat needs an axis") }
            return .concat(axis: try attributes.int("axis", default: 0))
        case "Split":
            var sizes = try attributes.ints("split")
            if opset >= 13, inputs.count > 1, inputs[1] != nil {
                guard let t = constant(1) else { throw .node(info, "split sizes must be a constant") }
                sizes = try t.integers(info)
            }
            return .split(axis: try attributes.int("axis", default: 0), sizes: sizes)
        case "Resize", "Upsample":
            return .resize(
                ResizeAttributes(
                    mode: try attributes.string("mode", default: "nearest"),
                    coordinateTransformation: opType == "Upsample" || opset < 11
                        ? "asymmetric" : try attributes.string("coordinate_transformation_mode", default: "half_pixel"),
                    nearestMode: opType == "Upsample" || opset < 11
                        ? "floor" : try attributes.string("nearest_mode", default: "round_prefer_floor")))
        case "MaxPool":
            if let order = try? attributes.int("storage_order", default: 0), order != 0 {
                throw .node(info, "storage_order=1 is not supported")
            }
            return .maxPool(try poolAttributes())
        case "AveragePool":
            return .averagePool(
                try poolAttributes(), countIncludePad: try attributes.int("count_include_pad", default: 0) != 0)
        case "GlobalAveragePool": return .globalAveragePool
        case "Softmax":
            return .softmax(axis: try attributes.int("axis", default: opset < 13 ? 1 : -1), legacy: opset < 13)
        case "Transpose": return .transpose(perm: try attributes.ints("perm"))
        case "Reshape":
            try need(2...2)
            return .reshape(allowZero: try attributes.int("allowzero", default: 0) != 0)
        case "Flatten": return .flatten(axis: try attributes.int("axis", default: 1))
        case "Gemm":
            try need(2...3)
            return .gemm(
                alpha: try attributes.float("alpha", default: 1), beta: try attributes.float("beta", default: 1),
                transA: try attributes.int("transA", default: 0) != 0,
                transB: try attributes.int("transB", default: 0) != 0)
        case "MatMul":
            try need(2...2)
            return .matMul
        default:
            if let op = try tensorOperator(opType, inputs: inputs, constants: constants) { return op }
            throw ModelError(
                "unsupported operator '\(opType)' in node '\(info.name)' (opset \(opset)); SkipNet supports "
                    + Self.supported.joined(separator: ", "))
        }
    }

    static let supported =
        [
            "Conv", "ConvTranspose", "BatchNormalization", "Relu", "PRelu", "LeakyRelu", "Clip", "Sigmoid",
            "HardSigmoid", "HardSwish", "Tanh", "Add", "Sub", "Mul", "Div", "Concat", "Split", "Resize", "Upsample",
            "MaxPool", "AveragePool", "GlobalAveragePool", "Softmax", "Transpose", "Reshape", "Flatten", "Gemm",
            "MatMul",
            "Constant", "Identity", "Dropout",
        ] + tensorOperators

    private func convAttributes() throws(ModelError) -> ConvAttributes {
        ConvAttributes(
            kernel: try attributes.ints("kernel_shape") ?? [], strides: try attributes.ints("strides") ?? [],
            pads: try attributes.ints("pads") ?? [], dilations: try attributes.ints("dilations") ?? [],
            group: try attributes.int("group", default: 1),
            autoPad: try attributes.string("auto_pad", default: "NOTSET"))
    }

    private func poolAttributes() throws(ModelError) -> PoolAttributes {
        guard let kernel = try attributes.ints("kernel_shape") else { throw .node(info, "needs kernel_shape") }
        return PoolAttributes(
            kernel: kernel, strides: try attributes.ints("strides") ?? [], pads: try attributes.ints("pads") ?? [],
            dilations: try attributes.ints("dilations") ?? [],
            ceilMode: try attributes.int("ceil_mode", default: 0) != 0,
            autoPad: try attributes.string("auto_pad", default: "NOTSET"))
    }
}
