import Foundation
import Testing

@testable import SkipNet

/// The dense executor against onnxruntime on real frames of vtest.avi, computed at test time
/// (`Reference/dense_reference.py`): every output within 1e-4 relative (max-abs difference over max-abs value).
@Suite struct DenseExecutorTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    struct Meta: Decodable {
        struct Output: Decodable {
            var name: String
            var shape: [Int]
        }
        var inputShape: [Int]
        var frames: [Int]
        var outputs: [Output]

        enum CodingKeys: String, CodingKey {
            case inputShape = "input_shape"
            case frames, outputs
        }
    }

    static func floats(_ url: URL) throws -> [Float] {
        let data = try Data(contentsOf: url)
        return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    /// Runs `Reference/dense_reference.py`: onnxruntime's outputs for `frames` of `clip`, written into `dir`.
    static func onnxruntimeReference(model: String, clip: String, frames: [Int], layout: String, into dir: URL) throws
        -> Meta
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3",
            URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                .appendingPathComponent("Reference/dense_reference.py").path,
            model, clip, frames.map(String.init).joined(separator: ","), layout, dir.path,
        ]
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "dense_reference.py failed")
        return try JSONDecoder().decode(Meta.self, from: Data(contentsOf: dir.appendingPathComponent("meta.json")))
    }

    @Test(arguments: [("centerface.onnx", "nchw"), ("pnet.onnx", "nhwc")])
    func matchesOnnxruntimeOnRealFrames(model: String, layout: String) throws {
        let modelPath = Self.root.appendingPathComponent("assets/\(model)").path
        let clip = Self.root.appendingPathComponent("assets/vtest.avi").path
        try #require(FileManager.default.fileExists(atPath: modelPath) && FileManager.default.fileExists(atPath: clip))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("skipnet-dense-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }

        let meta = try Self.onnxruntimeReference(
            model: modelPath, clip: clip, frames: [0, 250, 600], layout: layout, into: dir)

        let graph = try ONNXImporter.load(path: modelPath, inputShape: meta.inputShape)
        let names = graph.outputs.map { graph.values[$0].name }
        // Every kernel set this CPU runs, against the same reference.
        let sets = KernelSet.allCases.filter { KernelSet.isSupported($0, cpuFlags: BLASCoreType.cpuFlags()) }
        for kernels in sets {
            let executor = try DenseExecutor(graph: graph, kernels: kernels)
            for frame in meta.frames {
                let input = try Self.floats(dir.appendingPathComponent("frame\(frame).input"))
                let outputs = try executor.run(Tensor(shape: meta.inputShape, data: input))
                for (k, reference) in meta.outputs.enumerated() {
                    let mine = try #require(names.firstIndex(of: reference.name))
                    #expect(outputs[mine].shape == reference.shape)
                    let expected = try Self.floats(dir.appendingPathComponent("frame\(frame).out\(k)"))
                    let scale = expected.map(abs).max() ?? 0
                    let diff = zip(outputs[mine].data, expected).map { abs($0 - $1) }.max() ?? .infinity
                    #expect(
                        diff / max(scale, .leastNormalMagnitude) <= 1e-4,
                        "\(model) frame \(frame) \(reference.name), \(kernels) kernels")
                }
            }
        }
    }
}
