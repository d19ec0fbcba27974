import Foundation
import Testing

@testable import SkipNet

/// Importer and MAC accounting against facts computed independently by onnx and onnxruntime
/// (`Reference/model_facts.py`), on the real models and on small models built with onnx.helper.
@Suite struct ONNXImporterTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Reference/model_facts.py").path

    static func python(_ arguments: [String]) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script] + arguments
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw ModelError("model_facts.py \(arguments.joined(separator: " ")) failed")
        }
        return data
    }

    struct Facts: Decodable {
        var outputs: [String: [Int]]
        var convMACs: Int

        enum CodingKeys: String, CodingKey {
            case outputs
            case convMACs = "conv_macs"
        }
    }

    func asset(_ name: String) throws -> String {
        let path = Self.root.appendingPathComponent("assets/\(name)").path
        try #require(FileManager.default.fileExists(atPath: path), "\(name) missing: run scripts/fetch-assets")
        return path
    }

    @Test(arguments: [("centerface.onnx", [1, 3, 576, 768]), ("pnet.onnx", [1, 576, 768, 3])])
    func realModelsMatchOnnxruntimeShapesAndMACs(model: String, input: [Int]) throws {
        let path = try asset(model)
        let facts = try JSONDecoder().decode(Facts.self, from: try Self.python(["facts", path, input.shapeText]))
        let graph = try ONNXImporter.load(path: path, inputShape: input)
        let summary = ModelSummary(graph)
        #expect(summary.totalMACs == facts.convMACs)
        #expect(Dictionary(uniqueKeysWithValues: summary.outputs.map { ($0.name, $0.shape) }) == facts.outputs)
    }

    @Test func centerFaceHasItsBatchNormsFolded() throws {
        let graph = try ONNXImporter.load(path: try asset("centerface.onnx"), inputShape: [1, 3, 576, 768])
        #expect(!graph.nodes.contains { $0.info.opType == "BatchNormalization" })
        #expect(graph.nodes.count == 122 - 3)
        // The old exporter lists all 194 initializers as inputs too: only the image is a real input.
        #expect(graph.inputs.count == 1)
        #expect(String(format: "%.2f", Double(ModelSummary(graph).totalMACs) / 1e9) == "2.67")
    }

    struct Expected: Decodable {
        struct ConvBN: Decodable {
            var w: [Float]
            var b: [Float]
        }
        var convBN: ConvBN

        enum CodingKeys: String, CodingKey {
            case convBN = "conv_bn"
        }
    }

    private func madeModels() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("skipnet-models-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        _ = try Self.python(["make", dir.path])
        return dir
    }

    @Test func batchNormIsFoldedIntoTheConvolution() throws {
        let dir = try madeModels()
        defer { try? FileManager.default.removeItem(at: dir) }
        let expected = try JSONDecoder().decode(
            Expected.self, from: Data(contentsOf: dir.appendingPathComponent("expected.json")))
        let graph = try ONNXImporter.load(path: dir.appendingPathComponent("conv_bn.onnx").path)
        #expect(graph.nodes.count == 1)
        let conv = try #require(graph.nodes.first)
        let w = try #require(conv.inputs[1].flatMap { graph.constants[$0] })
        let b = try #require(conv.inputs[2].flatMap { graph.constants[$0] })
        #expect(w.shape == [4, 3, 3, 3])
        #expect(zip(w.data, expected.convBN.w).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($1)) })
        #expect(zip(b.data, expected.convBN.b).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($1)) })
        #expect(graph.values[conv.outputs[0]].name == "y")
        #expect(graph.shape(of: conv.outputs[0]) == [1, 4, 5, 7])
    }

    @Test func legacyExportsLoad() throws {
        let dir = try madeModels()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("legacy.onnx").path
        let graph = try ONNXImporter.load(path: path)
        #expect(graph.inputs.count == 1 && graph.values[graph.inputs[0]].name == "x")
        #expect(graph.shape(of: graph.outputs[0]) == [10, 2, 32, 32])
        // The declared fixed dims can be overridden.
        let resized = try ONNXImporter.load(path: path, inputShape: [1, 3, 8, 6])
        #expect(resized.shape(of: resized.outputs[0]) == [1, 2, 8, 6])
        #expect(ModelSummary(resized).totalMACs == 8 * 6 * 3 * 2)
    }

    /// The message of the error a load throws, or nil when it loads.
    private func failure(_ load: () throws(ModelError) -> Graph) -> String? {
        do {
            _ = try load()
            return nil
        } catch {
            return error.message
        }
    }

    @Test func badModelsGiveOneClearError() throws {
        let dir = try madeModels()
        defer { try? FileManager.default.removeItem(at: dir) }
        let einsum = dir.appendingPathComponent("einsum.onnx").path
        #expect(
            failure { () throws(ModelError) in try ONNXImporter.load(path: einsum) }?
                .contains("unsupported operator 'Einsum' in node 'the_einsum' (opset 13)") == true)
        let opset21 = dir.appendingPathComponent("opset21.onnx").path
        #expect(failure { () throws(ModelError) in try ONNXImporter.load(path: opset21) }?.contains("opset 21") == true)
        let centerface = try asset("centerface.onnx")
        let data = try Data(contentsOf: URL(fileURLWithPath: centerface))
        #expect(
            failure { () throws(ModelError) in try ONNXImporter.load(data: data.prefix(5000), name: "cut.onnx") }?
                .contains("cut.onnx is not a valid ONNX model") == true)
        let junk = Data((0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 7919) })
        #expect(
            failure { () throws(ModelError) in try ONNXImporter.load(data: junk, name: "junk.onnx") }?
                .contains("junk.onnx") == true)
        #expect(
            failure { () throws(ModelError) in try ONNXImporter.load(path: centerface, inputShape: [1, 3, 300, 400]) }?
                .contains("cannot be broadcast") == true)
        #expect(
            failure { () throws(ModelError) in try ONNXImporter.load(path: centerface, inputShape: [3, 576, 768]) }?
                .contains("--input gives 3") == true)
        #expect(
            failure { () throws(ModelError) in try ONNXImporter.load(path: "/nonexistent/model.onnx") }?
                .contains("cannot read") == true)
    }
}
