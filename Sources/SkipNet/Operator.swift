/// The operators SkipNet runs, with attributes parsed and checked at load.
public enum Operator: Sendable, Equatable {
    case conv(ConvAttributes)
    case convTranspose(ConvAttributes, outputPadding: [Int], outputShape: [Int]?)
    case batchNormalization(epsilon: Float)
    case relu
    case prelu
    case leakyRelu(alpha: Float)
    /// Bounds from attributes (opset < 11) or constant inputs (opset ≥ 11), resolved at load.
    case clip(min: Float, max: Float)
    case sigmoid
    case hardSigmoid(alpha: Float, beta: Float)
    case hardSwish
    case tanh
    case add, sub, mul, div
    case concat(axis: Int)
    case split(axis: Int, sizes: [Int]?)
    case resize(ResizeAttributes)
    case maxPool(PoolAttributes)
    case averagePool(PoolAttributes, countIncludePad: Bool)
    case globalAveragePool
    /// `legacy`: opset < 13 semantics (the input is flattened to 2-D at `axis`).
    case softmax(axis: Int, legacy: Bool)
    case transpose(perm: [Int]?)
    case reshape(allowZero: Bool)
    case flatten(axis: Int)
    case gemm(alpha: Float, beta: Float, transA: Bool, transB: Bool)
    case matMul
    /// `x·σ(x)`: a Sigmoid and the Mul that reads it and its input, fused at load (`SelfGatingFusion`).
    case silu
    case math(MathFunction)
    case pow, min, max
    case equal, less, greater
    case `where`
    case reduce(Reduction, axes: [Int]?, keepDims: Bool)
    case cast(to: Tensor.Kind)

    // Shape and index operators. Parameters that ONNX passes as inputs (indices, starts, pads, target shapes)
    // must be constants once the input size is fixed; shape inference resolves them into these cases.

    /// Evaluated at load only: a value's dims `[start, end)`.
    case shape(start: Int, end: Int?)
    /// Evaluated at load only (its input is a shape); `value` from the attribute, 0 when absent.
    case constantOfShape(value: Tensor?)
    /// Evaluated at load only.
    case range
    /// `indices` resolved to non-negative whole numbers, with the shape they came in.
    case gather(axis: Int, indices: [Int]?, indicesShape: [Int]?)
    /// As the model gives it (from attributes before opset 10, nil when from inputs); shape inference resolves it
    /// to one start and step per dimension of the input.
    case slice(SliceRange?)
    case squeeze(axes: [Int]?)
    case unsqueeze(axes: [Int]?)
    case expand
    /// Constant mode only; `pads` in ONNX order (begins then ends, one per dimension), resolved at load.
    case pad(pads: [Int]?, value: Float)

    /// Convolutions and matrix products: the layers whose multiply-accumulates are counted.
    public var isLinearLayer: Bool {
        switch self {
        case .conv, .convTranspose, .gemm, .matMul: true
        default: false
        }
    }
}

/// Element-wise functions beyond the activations.
public enum MathFunction: String, Sendable, Equatable, CaseIterable {
    case exp, log, sqrt, neg, abs, floor, ceil, reciprocal, not, erf, sin, cos
}

/// Slice parameters: ONNX's `starts`, `ends`, `axes`, `steps`.
public struct SliceRange: Sendable, Equatable {
    public var starts: [Int]
    public var ends: [Int]
    public var axes: [Int]?
    public var steps: [Int]?
}

/// ReduceMean/Max/Min/Sum/Prod.
public enum Reduction: String, Sendable, Equatable {
    case mean, max, min, sum, prod
}

public struct ConvAttributes: Sendable, Equatable {
    public var kernel: [Int]
    public var strides: [Int]
    /// ONNX order: begins then ends, `[top, left, bottom, right]` for 2-D.
    public var pads: [Int]
    public var dilations: [Int]
    public var group: Int
    /// `NOTSET`, `SAME_UPPER`, `SAME_LOWER` or `VALID`; `pads` are final once shapes are known.
    public var autoPad: String
}

public struct PoolAttributes: Sendable, Equatable {
    public var kernel: [Int]
    public var strides: [Int]
    public var pads: [Int]
    public var dilations: [Int]
    public var ceilMode: Bool
    public var autoPad: String
}

public struct ResizeAttributes: Sendable, Equatable {
    /// `nearest` or `linear`.
    public var mode: String
    public var coordinateTransformation: String
    public var nearestMode: String
}
