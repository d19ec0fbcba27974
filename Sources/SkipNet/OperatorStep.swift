/// The kernel call of one node for every operator but the convolutions (which need scratch and packed weights):
/// shared by the dense executor's steps and by constant folding at load.
enum OperatorStep {
    /// A closure that runs `op` from `inputs` (nil: an omitted optional input) into `outputs`, shapes as inferred;
    /// `constants`: the inputs known at load (Resize reads its scales there).
    static func make(
        _ op: Operator, info: NodeInfo, inputs: [UnsafeMutablePointer<Float>?], inputShapes: [[Int]?],
        constants: [Tensor?], outputs: [UnsafeMutablePointer<Float>], outputShapes: [[Int]]
    ) throws(ModelError) -> () -> Void {
        func input(_ i: Int) throws(ModelError) -> UnsafeMutablePointer<Float> {
            guard i < inputs.count, let p = inputs[i] else { throw .node(info, "missing input \(i)") }
            return p
        }
        func optional(_ i: Int) -> UnsafeMutablePointer<Float>? { i < inputs.count ? inputs[i] : nil }
        func shape(_ i: Int) -> [Int] { i < inputShapes.count ? inputShapes[i] ?? [] : [] }
        let x = try input(0)
        let xShape = shape(0)
        let y = outputs[0]
        let yShape = outputShapes[0]
        let count = yShape.reduce(1, *)

        switch op {
        case .batchNormalization(let epsilon):
            let (s, b, m, v) = (try input(1), try input(2), try input(3), try input(4))
            let spatial = xShape.dropFirst(2).reduce(1, *)
            return {
                Kernels.batchNorm(
                    n: xShape[0], channels: xShape[1], spatial: spatial, input: x, scale: s, bias: b, mean: m,
                    variance: v, epsilon: epsilon, output: y)
            }
        case .relu: return { Kernels.unary(.relu, input: x, output: y, count: count) }
        case .leakyRelu(let alpha):
            return { Kernels.unary(.leakyRelu(alpha: alpha), input: x, output: y, count: count) }
        case .clip(let lo, let hi): return { Kernels.unary(.clip(min: lo, max: hi), input: x, output: y, count: count) }
        case .sigmoid: return { Kernels.unary(.sigmoid, input: x, output: y, count: count) }
        case .hardSigmoid(let alpha, let beta):
            return { Kernels.unary(.hardSigmoid(alpha: alpha, beta: beta), input: x, output: y, count: count) }
        case .hardSwish: return { Kernels.unary(.hardSwish, input: x, output: y, count: count) }
        case .tanh: return { Kernels.unary(.tanh, input: x, output: y, count: count) }
        case .prelu:
            let (slope, slopeShape) = (try input(1), shape(1))
            return { Kernels.prelu(input: x, shape: xShape, slope: slope, slopeShape: slopeShape, output: y) }
        case .add, .sub, .mul, .div:
            let op = Kernels.BinaryOp(op)!
            let (b, bShape) = (try input(1), shape(1))
            return { Kernels.binary(op, a: x, aShape: xShape, b: b, bShape: bShape, output: y) }
        case .concat(let axis):
            var pointers: [UnsafePointer<Float>] = []
            for i in inputs.indices { pointers.append(UnsafePointer(try input(i))) }
            let shapes = inputs.indices.map(shape)
            return { Kernels.concat(inputs: pointers, shapes: shapes, axis: axis, output: y) }
        case .split(let axis, let sizes):
            let outs = outputs
            return { Kernels.split(input: x, shape: xShape, axis: axis, sizes: sizes ?? [], outputs: outs) }
        case .resize(let r):
            let mode: Kernels.ResizeMode
            switch (r.mode, r.nearestMode) {
            case ("linear", _), ("bilinear", _): mode = .linear
            case ("nearest", "round_prefer_ceil"): mode = .nearest(.roundPreferCeil)
            case ("nearest", "floor"): mode = .nearest(.floor)
            case ("nearest", "ceil"): mode = .nearest(.ceil)
            case ("nearest", "round_prefer_floor"): mode = .nearest(.roundPreferFloor)
            default: throw .node(info, "resize mode \(r.mode) / \(r.nearestMode) is not supported")
            }
            guard let coordinate = Kernels.CoordinateTransform(onnx: r.coordinateTransformation) else {
                throw .node(info, "coordinate_transformation_mode \(r.coordinateTransformation) is not supported")
            }
            // Scales as given when the model gives them (they enter the coordinate arithmetic), else out/in.
            let scalesIndex = inputs.count == 2 ? 1 : 2
            let given = scalesIndex < constants.count ? constants[scalesIndex] : nil
            let scales =
                given.map { $0.count == 4 ? ($0.data[2], $0.data[3]) : (0, 0) }
                ?? (Float(yShape[2]) / Float(xShape[2]), Float(yShape[3]) / Float(xShape[3]))
            let sH = scales.0 > 0 ? scales.0 : Float(yShape[2]) / Float(xShape[2])
            let sW = scales.1 > 0 ? scales.1 : Float(yShape[3]) / Float(xShape[3])
            return {
                Kernels.resize2d(
                    n: xShape[0], c: xShape[1], inH: xShape[2], inW: xShape[3], outH: yShape[2], outW: yShape[3],
                    scaleH: sH, scaleW: sW, mode: mode, coordinate: coordinate, input: x, output: y)
            }
        case .maxPool(let a), .averagePool(let a, _):
            let p = Pool2DParams(
                inH: xShape[2], inW: xShape[3], outH: yShape[2], outW: yShape[3], kH: a.kernel[0], kW: a.kernel[1],
                strideH: a.strides[0], strideW: a.strides[1], padTop: a.pads[0], padLeft: a.pads[1],
                padBottom: a.pads[2], padRight: a.pads[3], dilationH: a.dilations[0], dilationW: a.dilations[1])
            let planes = xShape[0] * xShape[1]
            if case .averagePool(_, let include) = op {
                return { Kernels.averagePool2d(p, planes: planes, countIncludePad: include, input: x, output: y) }
            }
            return { Kernels.maxPool2d(p, planes: planes, input: x, output: y) }
        case .globalAveragePool:
            let (planes, spatial) = (xShape[0] * xShape[1], xShape[2] * xShape[3])
            return { Kernels.globalAveragePool(planes: planes, spatial: spatial, input: x, output: y) }
        case .softmax(let axis, let legacy):
            let outer = xShape[..<axis].reduce(1, *)
            let axisSize = legacy ? xShape[axis...].reduce(1, *) : xShape[axis]
            let inner = legacy ? 1 : xShape[(axis + 1)...].reduce(1, *)
            return { Kernels.softmax(input: x, output: y, outer: outer, axisSize: axisSize, inner: inner) }
        case .transpose(let perm):
            let p = perm ?? Array((0..<xShape.count).reversed())
            return { Kernels.transpose(input: x, shape: xShape, perm: p, output: y) }
        case .reshape, .flatten:
            return { y.update(from: x, count: count) }
        case .gemm(let alpha, let beta, let transA, let transB):
            let b = try input(1)
            let c = optional(2)
            let cShape = shape(2)
            let k = transA ? xShape[0] : xShape[1]
            return {
                Kernels.gemm(
                    a: x, b: b, c: c, cShape: cShape, m: yShape[0], n: yShape[1], k: k, transA: transA,
                    transB: transB, alpha: alpha, beta: beta, output: y)
            }
        case .matMul:
            let (b, bShape) = (try input(1), shape(1))
            return { Kernels.matmul(a: x, aShape: xShape, b: b, bShape: bShape, output: y) }
        case .silu: return { Kernels.unary(.silu, input: x, output: y, count: count) }
        case .math(let function): return { Kernels.unary(.math(function), input: x, output: y, count: count) }
        case .pow, .equal, .less, .greater, .min, .max:
            guard inputs.count == 2 else {
                throw .node(info, "\(inputs.count) inputs: only two are supported unless all are known at load")
            }
            let op = Kernels.BinaryOp(op)!
            let (b, bShape) = (try input(1), shape(1))
            return { Kernels.binary(op, a: x, aShape: xShape, b: b, bShape: bShape, output: y) }
        case .where:
            let (a, aShape, b, bShape) = (try input(1), shape(1), try input(2), shape(2))
            return {
                Kernels.select(
                    condition: x, conditionShape: xShape, x: a, xShape: aShape, y: b, yShape: bShape, output: y,
                    outShape: yShape)
            }
        case .reduce(let kind, let axes, _):
            let axes = axes ?? Array(xShape.indices)
            return { Kernels.reduce(kind, input: x, shape: xShape, axes: axes, output: y) }
        case .cast(let kind):
            return { Kernels.cast(to: kind, input: x, output: y, count: count) }
        case .squeeze, .unsqueeze:
            return { y.update(from: x, count: count) }
        case .gather(let axis, let indices?, _):
            return { Kernels.gather(input: x, shape: xShape, axis: axis, indices: indices, output: y) }
        case .slice(let range?):
            let (starts, steps) = (range.starts, range.steps ?? [])
            return {
                Kernels.slice(input: x, shape: xShape, starts: starts, steps: steps, output: y, outShape: yShape)
            }
        case .expand:
            return { Kernels.broadcastCopy(input: x, shape: xShape, output: y, outShape: yShape) }
        case .pad(let pads?, let value):
            return {
                Kernels.pad(input: x, shape: xShape, pads: pads, value: value, output: y, outShape: yShape)
            }
        case .gather, .slice, .pad:
            throw .node(info, "parameters not resolved by shape inference")
        case .shape, .range, .constantOfShape:
            throw .node(info, "its inputs must be known at load; here they depend on the image")
        case .conv, .convTranspose:
            throw .node(info, "convolutions run as the executor's own steps")
        }
    }
}
