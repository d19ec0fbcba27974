import Foundation
import Testing

@testable import SkipNet

/// Models a corrupt or hostile file could hold: each is one `ModelError` when it loads, never a trap.
@Suite struct CorruptModelTests {
    /// Gemm's C broadcasts to [M, N] one way only; a rank-3 C passed shape inference and trapped in the kernel.
    @Test func gemmWithARankThreeBiasIsAnError() throws {
        var m = TestModel([2, 3])
        m.constant("b", [3, 4])
        m.constant("c", [1, 2, 4])
        m.node("Gemm", ["x", "b", "c"], "y")
        m.outputs = ["y"]
        #expect { try m.graph() } throws: { "\($0)".contains("C of shape [1, 2, 4] does not broadcast to [2, 4]") }
        var ok = TestModel([2, 3])
        ok.constant("b", [3, 4])
        ok.constant("c", [4], [1, 2, 3, 4])
        ok.node("Gemm", ["x", "b", "c"], "y")
        ok.outputs = ["y"]
        let y = try DenseExecutor(graph: try ok.graph()).run(Tensor(shape: [2, 3], data: [1, 1, 1, 2, 2, 2]))
        #expect(y[0].data == [4, 5, 6, 7, 7, 8, 9, 10])
    }

    /// A Reshape target read from the file: NaN, an infinity or a value no dimension has trapped in `Int(_:)`.
    @Test(arguments: [Float.nan, .infinity, -.infinity, 1e30])
    func reshapeToANonNumberIsAnError(value: Float) throws {
        var m = TestModel([1, 4])
        m.constant("shape", [2], [value, 2])
        m.node("Reshape", ["x", "shape"], "y")
        m.outputs = ["y"]
        #expect { try m.graph() } throws: { "\($0)".contains("is not a usable whole number") }
    }

    /// Dimensions whose product overflows (2^40 · 2^40) trapped while counting the tensor's values.
    @Test func absurdDimensionsAreAnError() throws {
        var m = TestModel([1, 4])
        var t = Onnx_TensorProto()
        t.name = "huge"
        t.dims = [1 << 40, 1 << 40]
        t.dataType = 1
        m.initializers.append(t)
        m.node("Relu", ["x"], "y")
        m.outputs = ["y"]
        #expect { try m.graph() } throws: { "\($0)".contains("holds more values than any model could") }
    }

    /// An empty constant (legal ONNX) has no storage: the executor copies nothing and runs.
    @Test func anEmptyConstantRuns() throws {
        var m = TestModel([1, 4])
        m.constant("empty", [0], [])
        m.node("Relu", ["x"], "y")
        m.outputs = ["y"]
        let y = try DenseExecutor(graph: try m.graph()).run(Tensor(shape: [1, 4], data: [-1, 2, -3, 4]))
        #expect(y[0].data == [0, 2, 0, 4])
    }
}
