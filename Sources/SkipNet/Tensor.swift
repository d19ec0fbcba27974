/// A dense float32 tensor in ONNX's logical layout (NCHW for images), row-major.
public struct Tensor: Sendable, Equatable {
    public var shape: [Int]
    public var data: [Float]

    public init(shape: [Int], data: [Float]) {
        precondition(shape.reduce(1, *) == data.count, "tensor data does not match its shape")
        self.shape = shape
        self.data = data
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
