// Elementwise unary activations and inference BatchNormalization.

#if canImport(Darwin)
    import Darwin
#else
    import Glibc
#endif

extension Kernels {
    /// Unary elementwise operators (ONNX semantics). PRelu is a broadcasting binary op: `Kernels.prelu`.
    public enum UnaryOp: Sendable, Equatable {
        case relu
        case leakyRelu(alpha: Float)
        case clip(min: Float, max: Float)
        case sigmoid
        /// `max(0, min(1, alpha·x + beta))` (ONNX defaults alpha 0.2, beta 0.5).
        case hardSigmoid(alpha: Float, beta: Float)
        /// `x · max(0, min(1, x/6 + 0.5))`.
        case hardSwish
        case tanh
        case silu
        case math(MathFunction)
    }

    /// `output[i] = op(input[i])` for `count` floats. In place (`output == input`) is allowed.
    public static func unary(
        _ op: UnaryOp, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, count: Int
    ) {
        var i = 0
        switch op {
        case .relu, .leakyRelu, .clip:
            let act: Activation
            switch op {
            case .relu: act = .relu
            case .leakyRelu(let a): act = .leakyRelu(alpha: a)
            case .clip(let lo, let hi): act = .clip(min: lo, max: hi)
            default: act = .none
            }
            while i + 16 <= count {
                store16(activate16(load16(input + i), act), output + i)
                i += 16
            }
            while i < count {
                output[i] = activate(input[i], act)
                i += 1
            }
        case .hardSigmoid(let alpha, let beta):
            let va = F16(repeating: alpha)
            let vb = F16(repeating: beta)
            let z = F16(repeating: 0)
            let one = F16(repeating: 1)
            while i + 16 <= count {
                store16(vmin(vmax(load16(input + i) * va + vb, z), one), output + i)
                i += 16
            }
            while i < count {
                output[i] = Swift.min(Swift.max(input[i] * alpha + beta, 0), 1)
                i += 1
            }
        case .hardSwish:
            let va = F16(repeating: 1.0 / 6.0)
            let vb = F16(repeating: 0.5)
            let z = F16(repeating: 0)
            let one = F16(repeating: 1)
            while i + 16 <= count {
                let x = load16(input + i)
                store16(x * vmin(vmax(x * va + vb, z), one), output + i)
                i += 16
            }
            while i < count {
                let x = input[i]
                output[i] = x * Swift.min(Swift.max(x * (1.0 / 6.0) + 0.5, 0), 1)
                i += 1
            }
        case .sigmoid:
            let one = F16(repeating: 1)
            while i + 16 <= count {
                store16(one / (one + exp16(-load16(input + i))), output + i)
                i += 16
            }
            while i < count {
                let x = input[i]
                // Stable for both signs.
                if x >= 0 {
                    output[i] = 1 / (1 + expf(-x))
                } else {
                    let e = expf(x)
                    output[i] = e / (1 + e)
                }
                i += 1
            }
        case .tanh:
            while i < count {
                output[i] = tanhf(input[i])
                i += 1
            }
        case .silu:
            while i + 16 <= count {
                store16(silu16(load16(input + i)), output + i)
                i += 16
            }
            while i < count {
                output[i] = silu(input[i])
                i += 1
            }
        case .math(let function):
            let f = function.scalar
            while i < count {
                output[i] = f(input[i])
                i += 1
            }
        }
    }

    /// Inference BatchNormalization over `n` images of `channels` planes of `spatial` floats:
    /// `y = (x − mean) / sqrt(var + epsilon) · scale + bias`, then `activation`. In place is allowed.
    public static func batchNorm(
        n: Int, channels: Int, spatial: Int, input: UnsafePointer<Float>, scale: UnsafePointer<Float>,
        bias: UnsafePointer<Float>, mean: UnsafePointer<Float>, variance: UnsafePointer<Float>, epsilon: Float,
        output: UnsafeMutablePointer<Float>, activation: Activation = .none
    ) {
        for c in 0..<channels {
            let a = scale[c] / (variance[c] + epsilon).squareRoot()
            let b = bias[c] - mean[c] * a
            let va = F16(repeating: a)
            let vb = F16(repeating: b)
            for img in 0..<n {
                let off = (img * channels + c) * spatial
                let x = input + off
                let y = output + off
                var i = 0
                while i + 16 <= spatial {
                    store16(activate16(load16(x + i) * va + vb, activation), y + i)
                    i += 16
                }
                while i < spatial {
                    y[i] = activate(x[i] * a + b, activation)
                    i += 1
                }
            }
        }
    }
}

extension Kernels.UnaryOp {
    /// The kernel for an element-wise operator node; nil for anything else.
    public init?(_ op: Operator) {
        switch op {
        case .relu: self = .relu
        case .leakyRelu(let alpha): self = .leakyRelu(alpha: alpha)
        case .clip(let lo, let hi): self = .clip(min: lo, max: hi)
        case .sigmoid: self = .sigmoid
        case .hardSigmoid(let alpha, let beta): self = .hardSigmoid(alpha: alpha, beta: beta)
        case .hardSwish: self = .hardSwish
        case .tanh: self = .tanh
        case .silu: self = .silu
        case .math(let function): self = .math(function)
        default: return nil
        }
    }
}

extension MathFunction {
    /// The function on one float (ONNX semantics; `not` on 0/1 booleans).
    var scalar: @Sendable (Float) -> Float {
        switch self {
        case .exp: return { expf($0) }
        case .log: return { logf($0) }
        case .sqrt: return { $0.squareRoot() }
        case .neg: return { -$0 }
        case .abs: return { Swift.abs($0) }
        case .floor: return { $0.rounded(.down) }
        case .ceil: return { $0.rounded(.up) }
        case .reciprocal: return { 1 / $0 }
        case .not: return { $0 == 0 ? 1 : 0 }
        case .erf: return { erff($0) }
        case .sin: return { sinf($0) }
        case .cos: return { cosf($0) }
        }
    }
}
