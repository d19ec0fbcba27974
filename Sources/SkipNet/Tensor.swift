/// A dense float32 tensor in ONNX's logical layout (NCHW for images), row-major.
///
/// Integer and boolean tensors (shapes, indices, masks: small whole numbers) are held as floats too; ``kind``
/// remembers what they were so that folding at load keeps ONNX's integer semantics (division truncates).
public struct Tensor: Sendable, Equatable {
    /// The ONNX element type a tensor stands for.
    public enum Kind: Sendable, Equatable {
        case float
        case integer
        case boolean
    }

    public var shape: [Int]
    public var data: [Float]
    public var kind: Kind

    public init(shape: [Int], data: [Float], kind: Kind = .float) {
        precondition(shape.reduce(1, *) == data.count, "tensor data does not match its shape")
        self.shape = shape
        self.data = data
        self.kind = kind
    }

    public init(zeros shape: [Int]) {
        self.init(shape: shape, data: Array(repeating: 0, count: shape.reduce(1, *)))
    }

    public var count: Int { data.count }
}

extension Array where Element == Int {
    /// `1x3x576x768`, the form shapes take on the command line.
    public var shapeText: String { map(String.init).joined(separator: "x") }
}

extension Tensor {
    /// Largest element count a model's tensor may declare: far beyond any real one, and small enough that sizes
    /// computed from it in bytes and MACs cannot overflow.
    static let maximumCount = 1 << 40

    /// The number of elements of `shape`, or nil when a dimension is negative or the product exceeds
    /// ``maximumCount`` (a corrupt file, not a model).
    static func elementCount(_ shape: [Int]) -> Int? {
        var count = 1
        for d in shape {
            guard d >= 0 else { return nil }
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, product <= maximumCount else { return nil }
            count = product
        }
        return count
    }

    /// A model constant read as a whole number (a shape, size or axis); one error for NaN, infinities and values
    /// no dimension could have.
    static func integer(_ value: Float, _ info: NodeInfo) throws(ModelError) -> Int {
        guard value.isFinite, abs(value) <= Float(maximumCount) else {
            throw .node(info, "\(value) is not a usable whole number here")
        }
        return Int(value)
    }

    /// A whole number clamped to ±``maximumCount``: Slice and Range take `INT64_MAX`-style sentinels for "to the
    /// end". NaN is an error.
    static func clampedInteger(_ value: Float, _ info: NodeInfo) throws(ModelError) -> Int {
        guard !value.isNaN else { throw .node(info, "NaN is not a usable whole number here") }
        return Int(Swift.min(Swift.max(value, -Float(maximumCount)), Float(maximumCount)))
    }

    /// The values as whole numbers (see ``integer(_:_:)``).
    func integers(_ info: NodeInfo) throws(ModelError) -> [Int] {
        try data.map { (v) throws(ModelError) in try Self.integer(v, info) }
    }
}
