// Elementwise binary ops with numpy multidirectional broadcasting (Add, Sub, Mul, Div, and PRelu's slope).
//
// Shapes are padded on the left to a common rank, size-1 dims dropped, and adjacent dims with the same broadcast
// pattern merged, so same-shape inputs become one flat SIMD loop and a per-channel operand ([1,C,1,1] against
// [N,C,H,W]) becomes a vector-by-scalar loop over each H·W plane.

#if canImport(Darwin)
    import Darwin
#else
    import Glibc
#endif

extension Kernels {
    public enum BinaryOp: Sendable, Equatable {
        case add, sub, mul, div
        /// PRelu: `a < 0 ? a · b : a` (a = X, b = slope).
        case prelu
        case pow, min, max
        /// Comparisons give 1 or 0 (ONNX bool, held as float).
        case equal, less, greater
    }

    /// numpy broadcast of two shapes, nil when incompatible.
    public static func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int]? {
        let r = Swift.max(a.count, b.count)
        var out = [Int](repeating: 1, count: r)
        for i in 0..<r {
            let da = i < r - a.count ? 1 : a[i - (r - a.count)]
            let db = i < r - b.count ? 1 : b[i - (r - b.count)]
            if da == db || db == 1 {
                out[i] = da
            } else if da == 1 {
                out[i] = db
            } else {
                return nil
            }
        }
        return out
    }

    /// `output = a op b` with numpy broadcasting; `output` has shape `broadcastShape(aShape, bShape)` (contiguous).
    /// In place is allowed when the aliased input already has the output's shape.
    public static func binary(
        _ op: BinaryOp, a: UnsafePointer<Float>, aShape: [Int], b: UnsafePointer<Float>, bShape: [Int],
        output: UnsafeMutablePointer<Float>
    ) {
        switch op {
        case .add: broadcastLoop(AddOp.self, a, aShape, b, bShape, output)
        case .sub: broadcastLoop(SubOp.self, a, aShape, b, bShape, output)
        case .mul: broadcastLoop(MulOp.self, a, aShape, b, bShape, output)
        case .div: broadcastLoop(DivOp.self, a, aShape, b, bShape, output)
        case .prelu: broadcastLoop(PReluOp.self, a, aShape, b, bShape, output)
        case .pow: broadcastLoop(PowOp.self, a, aShape, b, bShape, output)
        case .min: broadcastLoop(MinOp.self, a, aShape, b, bShape, output)
        case .max: broadcastLoop(MaxOp.self, a, aShape, b, bShape, output)
        case .equal: broadcastLoop(EqualOp.self, a, aShape, b, bShape, output)
        case .less: broadcastLoop(LessOp.self, a, aShape, b, bShape, output)
        case .greater: broadcastLoop(GreaterOp.self, a, aShape, b, bShape, output)
        }
    }

    /// `output[i] = a[i] op b[i]` over `count` floats (equal shapes, no broadcasting).
    public static func binary(
        _ op: BinaryOp, a: UnsafePointer<Float>, b: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
        count: Int
    ) {
        switch op {
        case .add: binaryVV(AddOp.self, a, b, output, count)
        case .sub: binaryVV(SubOp.self, a, b, output, count)
        case .mul: binaryVV(MulOp.self, a, b, output, count)
        case .div: binaryVV(DivOp.self, a, b, output, count)
        case .prelu: binaryVV(PReluOp.self, a, b, output, count)
        case .pow: binaryVV(PowOp.self, a, b, output, count)
        case .min: binaryVV(MinOp.self, a, b, output, count)
        case .max: binaryVV(MaxOp.self, a, b, output, count)
        case .equal: binaryVV(EqualOp.self, a, b, output, count)
        case .less: binaryVV(LessOp.self, a, b, output, count)
        case .greater: binaryVV(GreaterOp.self, a, b, output, count)
        }
    }

    /// PRelu: `y = x < 0 ? x · slope : x`, slope broadcast to x's shape (e.g. `[C,1,1]` per channel, or full).
    public static func prelu(
        input: UnsafePointer<Float>, shape: [Int], slope: UnsafePointer<Float>, slopeShape: [Int],
        output: UnsafeMutablePointer<Float>
    ) {
        binary(.prelu, a: input, aShape: shape, b: slope, bShape: slopeShape, output: output)
    }

    static func broadcastLoop<Op: BinaryKernelOp>(
        _: Op.Type, _ a: UnsafePointer<Float>, _ aShape: [Int], _ b: UnsafePointer<Float>, _ bShape: [Int],
        _ out: UnsafeMutablePointer<Float>
    ) {
        let r = Swift.max(aShape.count, bShape.count)
        withUnsafeTemporaryAllocation(of: Int.self, capacity: 4 * r + 4) { buf in
            let dims = buf.baseAddress!
            let sa = dims + (r + 1)
            let sb = sa + (r + 1)
            let idx = sb + (r + 1)
            // Collapsed dims, innermost first. Pattern: bit0 = a varies, bit1 = b varies.
            var k = 0
            var lastPattern = -1
            var total = 1
            for i in stride(from: r - 1, through: 0, by: -1) {
                let da = i < r - aShape.count ? 1 : aShape[i - (r - aShape.count)]
                let db = i < r - bShape.count ? 1 : bShape[i - (r - bShape.count)]
                precondition(da == db || da == 1 || db == 1, "binary: shapes \(aShape) and \(bShape) do not broadcast")
                let d = da == 1 ? db : da
                total *= d
                if d == 1 { continue }
                let pattern = (da == d ? 1 : 0) | (db == d ? 2 : 0)
                if pattern == lastPattern {
                    dims[k - 1] *= d
                } else {
                    dims[k] = d
                    sa[k] = pattern & 1
                    sb[k] = pattern & 2
                    k += 1
                    lastPattern = pattern
                }
            }
            if total == 0 { return }
            if k == 0 {
                out[0] = Op.apply(a[0], b[0])
                return
            }
            // Strides in elements for each collapsed dim (0 when broadcast).
            var runA = 1
            var runB = 1
            for j in 0..<k {
                let fa = sa[j] != 0
                let fb = sb[j] != 0
                sa[j] = fa ? runA : 0
                sb[j] = fb ? runB : 0
                if fa { runA *= dims[j] }
                if fb { runB *= dims[j] }
            }
            let inner = dims[0]
            let innerA = sa[0] != 0
            let innerB = sb[0] != 0
            for j in 0..<k { idx[j] = 0 }
            var pa = a
            var pb = b
            var po = out
            while true {
                if innerA && innerB {
                    binaryVV(Op.self, pa, pb, po, inner)
                } else if innerA {
                    binaryVS(Op.self, pa, pb[0], po, inner)
                } else {
                    binarySV(Op.self, pa[0], pb, po, inner)
                }
                po += inner
                // Odometer over dims 1..<k.
                var j = 1
                while j < k {
                    idx[j] += 1
                    pa += sa[j]
                    pb += sb[j]
                    if idx[j] < dims[j] { break }
                    pa -= sa[j] * dims[j]
                    pb -= sb[j] * dims[j]
                    idx[j] = 0
                    j += 1
                }
                if j == k { break }
            }
        }
    }

    @inline(__always)
    static func binaryVV<Op: BinaryKernelOp>(
        _: Op.Type, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ o: UnsafeMutablePointer<Float>, _ n: Int
    ) {
        var i = 0
        while i + 16 <= n {
            store16(Op.apply(load16(a + i), load16(b + i)), o + i)
            i += 16
        }
        while i < n {
            o[i] = Op.apply(a[i], b[i])
            i += 1
        }
    }

    @inline(__always)
    static func binaryVS<Op: BinaryKernelOp>(
        _: Op.Type, _ a: UnsafePointer<Float>, _ b: Float, _ o: UnsafeMutablePointer<Float>, _ n: Int
    ) {
        let vb = F16(repeating: b)
        var i = 0
        while i + 16 <= n {
            store16(Op.apply(load16(a + i), vb), o + i)
            i += 16
        }
        while i < n {
            o[i] = Op.apply(a[i], b)
            i += 1
        }
    }

    @inline(__always)
    static func binarySV<Op: BinaryKernelOp>(
        _: Op.Type, _ a: Float, _ b: UnsafePointer<Float>, _ o: UnsafeMutablePointer<Float>, _ n: Int
    ) {
        let va = F16(repeating: a)
        var i = 0
        while i + 16 <= n {
            store16(Op.apply(va, load16(b + i)), o + i)
            i += 16
        }
        while i < n {
            o[i] = Op.apply(a, b[i])
            i += 1
        }
    }
}

protocol BinaryKernelOp {
    static func apply(_ a: Float, _ b: Float) -> Float
    static func apply(_ a: F16, _ b: F16) -> F16
}

enum AddOp: BinaryKernelOp {
    @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a + b }
    @inline(__always) static func apply(_ a: F16, _ b: F16) -> F16 { a + b }
}

enum SubOp: BinaryKernelOp {
    @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a - b }
    @inline(__always) static func apply(_ a: F16, _ b: F16) -> F16 { a - b }
}

enum MulOp: BinaryKernelOp {
    @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a * b }
    @inline(__always) static func apply(_ a: F16, _ b: F16) -> F16 { a * b }
}

enum DivOp: BinaryKernelOp {
    @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a / b }
    @inline(__always) static func apply(_ a: F16, _ b: F16) -> F16 { a / b }
}

enum PReluOp: BinaryKernelOp {
    @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a < 0 ? a * b : a }
    @inline(__always) static func apply(_ a: F16, _ b: F16) -> F16 {
        a.replacing(with: a * b, where: a .< F16(repeating: 0))
    }
}

enum PowOp: BinaryKernelOp {
    @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float {
        // Squares are common (YOLOv5's box head); powf of a negative base is NaN for fractional exponents only.
        b == 2 ? a * a : powf(a, b)
    }
    @inline(__always) static func apply(_ a: F16, _ b: F16) -> F16 {
        var out = F16()
        for i in 0..<16 { out[i] = apply(a[i], b[i]) }
        return out
    }
}

enum MinOp: BinaryKernelOp {
    @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { Swift.min(a, b) }
    @inline(__always) static func apply(_ a: F16, _ b: F16) -> F16 { a.replacing(with: b, where: b .< a) }
}

enum MaxOp: BinaryKernelOp {
    @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { Swift.max(a, b) }
    @inline(__always) static func apply(_ a: F16, _ b: F16) -> F16 { a.replacing(with: b, where: b .> a) }
}

enum EqualOp: BinaryKernelOp {
    @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a == b ? 1 : 0 }
    @inline(__always) static func apply(_ a: F16, _ b: F16) -> F16 {
        F16(repeating: 0).replacing(with: 1, where: a .== b)
    }
}

enum LessOp: BinaryKernelOp {
    @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a < b ? 1 : 0 }
    @inline(__always) static func apply(_ a: F16, _ b: F16) -> F16 {
        F16(repeating: 0).replacing(with: 1, where: a .< b)
    }
}

enum GreaterOp: BinaryKernelOp {
    @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a > b ? 1 : 0 }
    @inline(__always) static func apply(_ a: F16, _ b: F16) -> F16 {
        F16(repeating: 0).replacing(with: 1, where: a .> b)
    }
}

extension Kernels.BinaryOp {
    /// The kernel for a two-input element-wise node (Min and Max with two inputs); nil for anything else.
    public init?(_ op: Operator) {
        switch op {
        case .add: self = .add
        case .sub: self = .sub
        case .mul: self = .mul
        case .div: self = .div
        case .pow: self = .pow
        case .min: self = .min
        case .max: self = .max
        case .equal: self = .equal
        case .less: self = .less
        case .greater: self = .greater
        default: return nil
        }
    }
}
