// Index and layout operators of exported detectors' heads: Slice, Gather, Expand, Pad, Where, Reduce*, Cast. They
// run at load on shape arithmetic and, on image data, on small tensors: plain loops, contiguous runs where easy.

extension Kernels {
    /// Row-major element strides of `shape`.
    static func strides(_ shape: [Int]) -> [Int] {
        var out = Array(repeating: 1, count: shape.count)
        for d in stride(from: shape.count - 2, through: 0, by: -1) { out[d] = out[d + 1] * shape[d + 1] }
        return out
    }

    /// Output dimension d reads input index `starts[d] + i·steps[d]`.
    public static func slice(
        input: UnsafePointer<Float>, shape: [Int], starts: [Int], steps: [Int], output: UnsafeMutablePointer<Float>,
        outShape: [Int]
    ) {
        let r = shape.count
        guard r > 0 else {
            output[0] = input[0]
            return
        }
        if outShape.contains(0) { return }
        let inStrides = strides(shape)
        let move = (0..<r).map { steps[$0] * inStrides[$0] }
        var base = (0..<r).reduce(0) { $0 + starts[$1] * inStrides[$1] }
        var index = Array(repeating: 0, count: r)
        let (inner, innerStep) = (outShape[r - 1], move[r - 1])
        var o = 0
        while true {
            for j in 0..<inner { output[o + j] = input[base + j * innerStep] }
            o += inner
            var d = r - 2
            while d >= 0 {
                index[d] += 1
                base += move[d]
                if index[d] < outShape[d] { break }
                base -= outShape[d] * move[d]
                index[d] = 0
                d -= 1
            }
            if d < 0 { return }
        }
    }

    /// Gather along `axis` with indices already made non-negative and in range.
    public static func gather(
        input: UnsafePointer<Float>, shape: [Int], axis: Int, indices: [Int], output: UnsafeMutablePointer<Float>
    ) {
        let outer = shape[..<axis].reduce(1, *)
        let inner = shape[(axis + 1)...].reduce(1, *)
        var o = output
        for b in 0..<outer {
            for i in indices {
                o.update(from: input + (b * shape[axis] + i) * inner, count: inner)
                o += inner
            }
        }
    }

    /// numpy-broadcasts `input` to `outShape` (Expand).
    public static func broadcastCopy(
        input: UnsafePointer<Float>, shape: [Int], output: UnsafeMutablePointer<Float>, outShape: [Int]
    ) {
        // The second operand is read but ignored: the output itself serves, having the output's shape.
        broadcastLoop(FirstOp.self, input, shape, UnsafePointer(output), outShape, output)
    }

    /// Constant padding; `pads` in ONNX order (begins, then ends), all non-negative.
    public static func pad(
        input: UnsafePointer<Float>, shape: [Int], pads: [Int], value: Float, output: UnsafeMutablePointer<Float>,
        outShape: [Int]
    ) {
        output.update(repeating: value, count: outShape.reduce(1, *))
        let r = shape.count
        guard r > 0, !shape.contains(0) else {
            if r == 0 { output[0] = input[0] }
            return
        }
        let outStrides = strides(outShape)
        let inner = shape[r - 1]
        var base = (0..<r).reduce(0) { $0 + pads[$1] * outStrides[$1] }
        var index = Array(repeating: 0, count: r)
        var i = 0
        while true {
            (output + base).update(from: input + i, count: inner)
            i += inner
            var d = r - 2
            while d >= 0 {
                index[d] += 1
                base += outStrides[d]
                if index[d] < shape[d] { break }
                base -= shape[d] * outStrides[d]
                index[d] = 0
                d -= 1
            }
            if d < 0 { return }
        }
    }

    /// `output = condition ? x : y`, all three numpy-broadcast to `outShape`.
    public static func select(
        condition: UnsafePointer<Float>, conditionShape: [Int], x: UnsafePointer<Float>, xShape: [Int],
        y: UnsafePointer<Float>, yShape: [Int], output: UnsafeMutablePointer<Float>, outShape: [Int]
    ) {
        let r = outShape.count
        let total = outShape.reduce(1, *)
        guard total > 0 else { return }
        func broadcastStrides(_ s: [Int]) -> [Int] {
            let padded = Array(repeating: 1, count: r - s.count) + s
            let own = strides(padded)
            return (0..<r).map { padded[$0] == 1 ? 0 : own[$0] }
        }
        let (sc, sx, sy) = (broadcastStrides(conditionShape), broadcastStrides(xShape), broadcastStrides(yShape))
        var index = Array(repeating: 0, count: r)
        var (c, a, b) = (0, 0, 0)
        for o in 0..<total {
            output[o] = condition[c] != 0 ? x[a] : y[b]
            var d = r - 1
            while d >= 0 {
                index[d] += 1
                c += sc[d]
                a += sx[d]
                b += sy[d]
                if index[d] < outShape[d] { break }
                c -= outShape[d] * sc[d]
                a -= outShape[d] * sx[d]
                b -= outShape[d] * sy[d]
                index[d] = 0
                d -= 1
            }
        }
    }

    /// Reduces `axes` (sorted, distinct) of `input`; the output holds the kept dimensions in order.
    public static func reduce(
        _ kind: Reduction, input: UnsafePointer<Float>, shape: [Int], axes: [Int], output: UnsafeMutablePointer<Float>
    ) {
        let r = shape.count
        let kept = (0..<r).filter { !axes.contains($0) }
        let outCount = kept.reduce(1) { $0 * shape[$1] }
        let initial: Float
        switch kind {
        case .mean, .sum: initial = 0
        case .prod: initial = 1
        case .max: initial = -.infinity
        case .min: initial = .infinity
        }
        output.update(repeating: initial, count: outCount)
        let total = shape.reduce(1, *)
        guard total > 0 else { return }
        // Output stride of each input dimension (0 for a reduced one).
        var outStride = Array(repeating: 0, count: r)
        var run = 1
        for d in kept.reversed() {
            outStride[d] = run
            run *= shape[d]
        }
        var index = Array(repeating: 0, count: r)
        var o = 0
        for i in 0..<total {
            let v = input[i]
            switch kind {
            case .mean, .sum: output[o] += v
            case .prod: output[o] *= v
            case .max: output[o] = Swift.max(output[o], v)
            case .min: output[o] = Swift.min(output[o], v)
            }
            var d = r - 1
            while d >= 0 {
                index[d] += 1
                o += outStride[d]
                if index[d] < shape[d] { break }
                o -= shape[d] * outStride[d]
                index[d] = 0
                d -= 1
            }
        }
        if kind == .mean, outCount > 0 {
            let n = Float(total / outCount)
            for j in 0..<outCount { output[j] /= n }
        }
    }

    /// Cast: floats unchanged, integers truncated toward zero, booleans 1 where non-zero.
    public static func cast(
        to kind: Tensor.Kind, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, count: Int
    ) {
        switch kind {
        case .float: output.update(from: input, count: count)
        case .integer: for i in 0..<count { output[i] = input[i].rounded(.towardZero) }
        case .boolean: for i in 0..<count { output[i] = input[i] != 0 ? 1 : 0 }
        }
    }
}

enum FirstOp: BinaryKernelOp {
    @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a }
    @inline(__always) static func apply(_ a: F16, _ b: F16) -> F16 { a }
}
