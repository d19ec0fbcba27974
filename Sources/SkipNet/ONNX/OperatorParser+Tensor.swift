/// The tensor-manipulation and math operators of exported detectors (YOLO's shape arithmetic, anchors and box
/// head): parsed here, resolved by `ShapeInference`, folded at load when their inputs are known.
extension OperatorParser {
    static let tensorOperators = [
        "Shape", "Gather", "Slice", "Squeeze", "Unsqueeze", "Cast", "Range", "Expand", "ConstantOfShape", "Equal",
        "Less", "Greater", "Where", "Not", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd", "Pad",
        "Pow", "Min", "Max", "Exp", "Log", "Sqrt", "Neg", "Abs", "Floor", "Ceil", "Reciprocal", "Erf", "Sin", "Cos",
    ]

    func tensorOperator(_ opType: String, inputs: [Int?], constants: [Int: Tensor]) throws(ModelError) -> Operator? {
        func need(_ count: ClosedRange<Int>) throws(ModelError) {
            guard count.contains(inputs.count), inputs.first.flatMap({ $0 }) != nil else {
                throw .node(info, "expects \(count.lowerBound)…\(count.upperBound) inputs, got \(inputs.count)")
            }
        }
        switch opType {
        case "Shape":
            try need(1...1)
            let end = attributes.has("end") ? try attributes.int("end", default: 0) : nil
            return .shape(start: try attributes.int("start", default: 0), end: end)
        case "Gather":
            try need(2...2)
            return .gather(axis: try attributes.int("axis", default: 0), indices: nil, indicesShape: nil)
        case "Slice":
            if opset < 10 {
                try need(1...1)
                guard let starts = try attributes.ints("starts"), let ends = try attributes.ints("ends") else {
                    throw .node(info, "needs starts and ends")
                }
                return .slice(SliceRange(starts: starts, ends: ends, axes: try attributes.ints("axes"), steps: nil))
            }
            try need(3...5)
            return .slice(nil)
        case "Squeeze":
            try need(1...2)
            return .squeeze(axes: opset < 13 ? try attributes.ints("axes") : nil)
        case "Unsqueeze":
            if opset < 13 {
                guard let axes = try attributes.ints("axes") else { throw .node(info, "needs axes") }
                return .unsqueeze(axes: axes)
            }
            try need(2...2)
            return .unsqueeze(axes: nil)
        case "Cast":
            // TensorProto.DataType: FLOAT 1, FLOAT16 10, DOUBLE 11, BFLOAT16 16; BOOL 9; the rest are integers.
            let to = try attributes.int("to", default: 1)
            switch to {
            case 1, 10, 11, 16: return .cast(to: .float)
            case 9: return .cast(to: .boolean)
            case 2, 3, 4, 5, 6, 7, 12, 13: return .cast(to: .integer)
            default: throw .node(info, "cannot cast to data type \(to)")
            }
        case "Range":
            try need(3...3)
            return .range
        case "Expand":
            try need(2...2)
            return .expand
        case "ConstantOfShape":
            try need(1...1)
            let value = try attributes.tensor("value").map { (t) throws(ModelError) in
                try Tensor(onnx: t, context: "node '\(info.name)' value")
            }
            if let value, value.count != 1 { throw .node(info, "value must hold one element") }
            return .constantOfShape(value: value)
        case "Equal", "Less", "Greater":
            try need(2...2)
            return opType == "Equal" ? .equal : opType == "Less" ? .less : .greater
        case "Where":
            try need(3...3)
            return .where
        case "Pow":
            try need(2...2)
            return .pow
        case "Min", "Max":
            try need(1...Int.max)
            return opType == "Min" ? .min : .max
        case "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd":
            guard let kind = Reduction(rawValue: String(opType.dropFirst("Reduce".count)).lowercased()) else {
                return nil
            }
            try need(1...2)
            if try attributes.int("noop_with_empty_axes", default: 0) != 0 {
                throw .node(info, "noop_with_empty_axes is not supported")
            }
            // Axes move from the attribute to an input at opset 13 for ReduceSum (18 for the others).
            return .reduce(
                kind, axes: try attributes.ints("axes"), keepDims: try attributes.int("keepdims", default: 1) != 0)
        case "Pad":
            let mode = try attributes.string("mode", default: "constant")
            guard mode == "constant" else { throw .node(info, "Pad mode '\(mode)' is not supported (constant only)") }
            if opset < 11 {
                try need(1...1)
                guard let pads = try attributes.ints("pads") else { throw .node(info, "needs pads") }
                return .pad(pads: pads, value: try attributes.float("value", default: 0))
            }
            try need(2...4)
            return .pad(pads: nil, value: 0)
        case "Not":
            return .math(.not)
        default:
            if let function = MathFunction(rawValue: opType.lowercased()), function != .not {
                try need(1...1)
                return .math(function)
            }
            return nil
        }
    }
}
