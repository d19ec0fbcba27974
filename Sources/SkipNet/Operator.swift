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

    /// Convolutions and matrix products: the layers whose multiply-accumulates are counted.
    public var isLinearLayer: Bool {
        switch self {
        case .conv, .convTranspose, .gemm, .matMul: true
        default: false
        }
    }
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
