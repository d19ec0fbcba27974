import Foundation
import Testing

@testable import SkipNet

/// A YOLOv8-structured detector as ultralytics exports it with dynamic axes (`Reference/yolo_graph.py`: shape
/// subgraphs, SiLU as Sigmoid·Mul, C2f, SPPF, the DFL head with run-time anchors) loads at two input sizes with its
/// shape arithmetic folded and its SiLUs fused, and equals onnxruntime on real frames of vtest.avi
/// (`Reference/yolo_reference.py`).
@Suite struct YOLOGraphTests {
    struct Meta: Decodable {
        struct Case: Decodable {
            var name: String
            var inputShape: [Int]
            var outputShape: [Int]

            enum CodingKeys: String, CodingKey {
                case name
                case inputShape = "input_shape"
                case outputShape = "output_shape"
            }
        }
        var model: String
        var cases: [Case]
    }

    @Test func yoloV8GraphMatchesOnnxruntimeAtTwoSizes() throws {
        let clip = DenseExecutorTests.root.appendingPathComponent("assets/vtest.avi").path
        try #require(FileManager.default.fileExists(atPath: clip))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("skipnet-yolo-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3",
            URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                .appendingPathComponent("Reference/yolo_reference.py").path,
            clip, dir.path,
        ]
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "yolo_reference.py failed")
        let meta = try JSONDecoder().decode(Meta.self, from: Data(contentsOf: dir.appendingPathComponent("meta.json")))
        #expect(Set(meta.cases.map(\.inputShape)).count == 2)

        let sets = KernelSet.allCases.filter { KernelSet.isSupported($0, cpuFlags: BLASCoreType.cpuFlags()) }
        for c in meta.cases {
            let graph = try ONNXImporter.load(path: meta.model, inputShape: c.inputShape)
            // Only image operators are left: every Shape/Gather/Range/… chain was evaluated at load.
            for node in graph.nodes {
                switch node.op {
                case .conv, .silu, .add, .sub, .mul, .div, .concat, .split, .maxPool, .resize, .reshape, .transpose,
                    .softmax, .slice, .sigmoid:
                    break
                default: Issue.record("\(c.name): \(node.info.opType) '\(node.info.name)' was not folded")
                }
            }
            // 64 convolutions, 57 of them followed by Sigmoid·Mul; the one Sigmoid left is the class scores'.
            let silu = graph.nodes.filter { $0.op == .silu }
            #expect(silu.count == 57 && graph.nodes.filter { $0.op == .sigmoid }.count == 1, "\(c.name)")
            #expect(graph.shape(of: graph.outputs[0]) == c.outputShape)

            let input = try DenseExecutorTests.floats(dir.appendingPathComponent("\(c.name).input"))
            let expected = try DenseExecutorTests.floats(dir.appendingPathComponent("\(c.name).output"))
            let anchors = c.outputShape[2]
            for kernels in sets {
                for threads in [1, 2] {
                    let executor = try DenseExecutor(graph: graph, threads: threads, kernels: kernels)
                    // Each SiLU runs in its convolution's epilogue, not as a step of its own.
                    #expect(Set(executor.stepNodeNames).isDisjoint(with: silu.map(\.info.name)))
                    let output = try executor.run(Tensor(shape: c.inputShape, data: input))[0].data
                    // Boxes (rows 0–3, pixels) and class scores (rows 4…, 0–1) each within 1e-4 of their scale.
                    for rows in [0..<4, 4..<c.outputShape[1]] {
                        let span = (rows.lowerBound * anchors)..<(rows.upperBound * anchors)
                        let reference = Array(expected[span])
                        let (error, bound) = maxError(Array(output[span]), reference)
                        #expect(
                            error <= bound,
                            "\(c.name) rows \(rows), \(kernels), \(threads) threads: \(error) > \(bound)")
                    }
                }
            }
        }
    }
}
