/// Shapes of the tensor-manipulation and math operators, resolving the parameters ONNX passes as inputs (indices,
/// starts, axes, pads, target shapes), which must be known at load.
extension ShapeInference {
    static func inferTensorOperator(
        _ op: Operator, info: NodeInfo, inputs: [[Int]?], constants: [Tensor?]
    ) throws(ModelError) -> (Operator, [[Int]]) {
        func input(_ i: Int) throws(ModelError) -> [Int] {
            guard i < inputs.count, let shape = inputs[i] else { throw .node(info, "missing input \(i)") }
            return shape
        }
        /// A parameter input as whole numbers (nil when omitted); an error when it depends on the image.
        /// `given` when the attribute set it, else the parameter input.
        func orInput(_ given: [Int]?, _ i: Int, _ what: String) throws(ModelError) -> [Int]? {
            if let given { return given }
            return try parameter(i, what)
        }
        func parameter(_ i: Int, _ what: String) throws(ModelError) -> [Int]? {
            guard i < inputs.count, inputs[i] != nil else { return nil }
            guard let t = constants[i] else {
                throw .node(info, "\(what) must be known at load; here they depend on the image")
            }
            return try t.data.map { (v) throws(ModelError) in try Tensor.clampedInteger(v, info) }
        }
        let x = try input(0)
        switch op {
        case .silu, .math, .cast:
            return (op, [x])
        case .pow, .equal, .less, .greater:
            return (op, [try broadcast(x, try input(1), info: info)])
        case .min, .max:
            var out = x
            for i in 1..<inputs.count { out = try broadcast(out, try input(i), info: info) }
            return (op, [out])
        case .where:
            return (op, [try broadcast(try broadcast(x, try input(1), info: info), try input(2), info: info)])
        case .reduce(let kind, let given, let keepDims):
            let listed = try orInput(given, 1, "axes")
            let axes = try (listed ?? Array(0..<x.count)).map { (a) throws(ModelError) in
                try normalize(a, rank: x.count, info: info)
            }
            guard Set(axes).count == axes.count else { throw .node(info, "axes \(listed ?? []) repeat") }
            var out: [Int] = []
            for (d, n) in x.enumerated() {
                if !axes.contains(d) {
                    out.append(n)
                } else if keepDims {
                    out.append(1)
                }
            }
            return (.reduce(kind, axes: axes.sorted(), keepDims: keepDims), [out])
        case .shape(let start, let end):
            let lo = Swift.min(Swift.max(start < 0 ? start + x.count : start, 0), x.count)
            let hi = Swift.min(Swift.max(end.map { $0 < 0 ? $0 + x.count : $0 } ?? x.count, 0), x.count)
            return (.shape(start: lo, end: hi), [[Swift.max(hi - lo, 0)]])
        case .constantOfShape, .range:
            // Sizes follow from values: folded at load (`ConstantFolding`) or an error there.
            throw .node(info, "its inputs must be known at load; here they depend on the image")
        case .gather(let axis, _, _):
            let ax = try normalize(axis, rank: x.count, info: info)
            guard let raw = try parameter(1, "indices") else { throw .node(info, "needs indices") }
            let indices = try raw.map { (i) throws(ModelError) in
                guard i >= -x[ax], i < x[ax] else {
                    throw .node(info, "index \(i) out of range for axis \(axis) of \(x)")
                }
                return i < 0 ? i + x[ax] : i
            }
            let indicesShape = try input(1)
            return (
                .gather(axis: ax, indices: indices, indicesShape: indicesShape),
                [Array(x[..<ax]) + indicesShape + Array(x[(ax + 1)...])]
            )
        case .slice(let given):
            let range: SliceRange
            if let given {
                range = given
            } else {
                guard let starts = try parameter(1, "starts"), let ends = try parameter(2, "ends") else {
                    throw .node(info, "needs starts and ends")
                }
                range = SliceRange(
                    starts: starts, ends: ends, axes: try parameter(3, "axes"), steps: try parameter(4, "steps"))
            }
            return try slice(x, range, info: info)
        case .squeeze(let given):
            let listed = try orInput(given, 1, "axes")
            let axes = try listed.map { (list) throws(ModelError) in
                try list.map { (a) throws(ModelError) in try normalize(a, rank: x.count, info: info) }
            }
            if let axes, let bad = axes.first(where: { x[$0] != 1 }) {
                throw .node(info, "cannot squeeze axis \(bad) of \(x): its size is not 1")
            }
            let dropped = axes ?? x.indices.filter { x[$0] == 1 }
            return (
                .squeeze(axes: dropped.sorted()),
                [x.enumerated().filter { !dropped.contains($0.offset) }.map(\.element)]
            )
        case .unsqueeze(let given):
            guard let listed = try orInput(given, 1, "axes") else { throw .node(info, "needs axes") }
            let rank = x.count + listed.count
            let axes = try listed.map { (a) throws(ModelError) in try normalize(a, rank: rank, info: info) }
            guard Set(axes).count == axes.count else { throw .node(info, "axes \(listed) repeat") }
            var out: [Int] = []
            var rest = x.makeIterator()
            for d in 0..<rank { out.append(axes.contains(d) ? 1 : rest.next() ?? 1) }
            return (.unsqueeze(axes: axes.sorted()), [out])
        case .expand:
            guard let target = try parameter(1, "the target shape") else { throw .node(info, "needs a shape") }
            guard target.allSatisfy({ $0 >= 0 }) else { throw .node(info, "bad target shape \(target)") }
            return (op, [try broadcast(x, target, info: info)])
        case .pad(let given, let fixedValue):
            guard let pads = try orInput(given, 1, "pads") else { throw .node(info, "needs pads") }
            guard pads.count == 2 * x.count else {
                throw .node(info, "\(pads.count) pads for a rank-\(x.count) input (need \(2 * x.count))")
            }
            guard pads.allSatisfy({ $0 >= 0 && $0 <= Tensor.maximumCount / 2 }) else {
                throw .node(info, "pads \(pads) must be non-negative")
            }
            var value = fixedValue
            if inputs.count > 2, inputs[2] != nil {
                guard let v = constants[2], v.count == 1 else {
                    throw .node(info, "the pad value must be one number known at load")
                }
                value = v.data[0]
            }
            let out = x.indices.map { x[$0] + pads[$0] + pads[$0 + x.count] }
            guard Tensor.elementCount(out) != nil else { throw .node(info, "padded shape \(out) is too large") }
            return (.pad(pads: pads, value: value), [out])
        default:
            throw .node(info, "not a tensor operator")
        }
    }

    /// Resolves ONNX Slice (negative and out-of-range starts/ends clamped as the spec says) to one start and step
    /// per input dimension.
    private static func slice(_ x: [Int], _ r: SliceRange, info: NodeInfo) throws(ModelError) -> (Operator, [[Int]]) {
        let axes = r.axes ?? Array(0..<r.starts.count)
        let steps = r.steps ?? Array(repeating: 1, count: r.starts.count)
        guard r.ends.count == r.starts.count, axes.count == r.starts.count, steps.count == r.starts.count else {
            throw .node(info, "starts, ends, axes and steps differ in length")
        }
        var starts = Array(repeating: 0, count: x.count)
        var stepsOut = Array(repeating: 1, count: x.count)
        var out = x
        var seen = Set<Int>()
        for k in axes.indices {
            let a = try normalize(axes[k], rank: x.count, info: info)
            guard seen.insert(a).inserted else { throw .node(info, "axis \(axes[k]) repeats") }
            let (n, step) = (x[a], steps[k])
            guard step != 0 else { throw .node(info, "a step of 0") }
            var start = r.starts[k] < 0 ? r.starts[k] + n : r.starts[k]
            var end = r.ends[k] < 0 ? r.ends[k] + n : r.ends[k]
            if step > 0 {
                start = Swift.min(Swift.max(start, 0), n)
                end = Swift.min(Swift.max(end, 0), n)
                out[a] = end > start ? (end - start + step - 1) / step : 0
            } else {
                start = Swift.min(Swift.max(start, 0), n - 1)
                end = Swift.min(Swift.max(end, -1), n - 1)
                out[a] = start > end ? (start - end - step - 1) / -step : 0
            }
            starts[a] = start
            stepsOut[a] = step
        }
        return (.slice(SliceRange(starts: starts, ends: [], axes: nil, steps: stepsOut)), [out])
    }
}
