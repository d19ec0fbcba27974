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

    /// Runs `Reference/yolo_reference.py` for `frames` at `sizes` into a temporary directory.
    private func withReference(frames: String, sizes: String, _ body: (Meta, URL) throws -> Void) throws {
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
            clip, dir.path, frames, sizes,
        ]
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "yolo_reference.py failed")
        try body(
            try JSONDecoder().decode(Meta.self, from: Data(contentsOf: dir.appendingPathComponent("meta.json"))), dir)
    }

    /// Boxes (rows 0–3, pixels) and class scores (rows 4…, 0–1), each within 1e-4 of its own scale.
    private func expectClose(_ output: [Float], _ expected: [Float], shape: [Int], _ what: String) {
        for rows in [0..<4, 4..<shape[1]] {
            let span = (rows.lowerBound * shape[2])..<(rows.upperBound * shape[2])
            let (error, bound) = maxError(Array(output[span]), Array(expected[span]))
            #expect(error <= bound, "\(what) rows \(rows): \(error) > \(bound)")
        }
    }

    @Test func yoloV8GraphMatchesOnnxruntimeAtTwoSizes() throws {
        try withReference(frames: "0,120", sizes: "full,crop") { meta, dir in try matchesAtTwoSizes(meta, dir) }
    }

    private func matchesAtTwoSizes(_ meta: Meta, _ dir: URL) throws {
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
            for kernels in sets {
                for threads in [1, 2] {
                    let executor = try DenseExecutor(graph: graph, threads: threads, kernels: kernels)
                    // Each SiLU runs in its convolution's epilogue, not as a step of its own.
                    #expect(Set(executor.stepNodeNames).isDisjoint(with: silu.map(\.info.name)))
                    let output = try executor.run(Tensor(shape: c.inputShape, data: input))[0].data
                    expectClose(output, expected, shape: c.outputShape, "\(c.name), \(kernels), \(threads) threads")
                }
            }
        }
    }

    /// The skip executor on the same graph: consecutive frames (the sparse path forced after the first), exact
    /// propagation at threshold 0 and the bounded-context mode with its context wider than the image (so both must
    /// equal a dense run), 1 and 2 threads, every frame against onnxruntime.
    @Test(arguments: [(0, 1), (0, 2), (100_000, 1)])
    func skipExecutorStaysExactOnTheYOLOGraph(context: Int, threads: Int) throws {
        try withReference(frames: "100,101,102,103", sizes: "crop") { meta, dir in
            let graph = try ONNXImporter.load(path: meta.model, inputShape: meta.cases[0].inputShape)
            var settings = SkipSettings()
            settings.inputThreshold = 0
            settings.threshold = 0
            settings.relative = false
            settings.block = 32
            settings.breakEven = 1
            settings.sceneCut = 2
            settings.context = context
            settings.rollingRefresh = context > 0 ? 3 : 0
            let executor = try SkipExecutor(graph: graph, settings: settings, threads: threads)
            for c in meta.cases {
                let input = try DenseExecutorTests.floats(dir.appendingPathComponent("\(c.name).input"))
                let expected = try DenseExecutorTests.floats(dir.appendingPathComponent("\(c.name).output"))
                let output = try executor.run(Tensor(shape: c.inputShape, data: input))[0].data
                expectClose(output, expected, shape: c.outputShape, "\(c.name), context \(context), \(threads) threads")
            }
            // Frames after the first took the sparse path (forced: break-even 1, no scene cut), not keyframes.
            #expect(executor.keyframes == 1 && executor.frames == meta.cases.count)
        }
    }
}
