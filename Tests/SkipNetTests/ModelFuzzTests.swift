import Foundation
import Testing

@testable import SkipNet

/// Corrupted models — bytes flipped, spans zeroed, files cut short — through the importer, the dense executor and one
/// inference: each loads and runs, or is one `ModelError`, never a trap (which would end this process). P-Net is
/// small enough to try a few hundred; seeded, so every run tries the same files.
@Suite struct ModelFuzzTests {
    @Test func corruptedModelsLoadAndRunOrFailWithOneError() throws {
        let path = DenseExecutorTests.root.appendingPathComponent("assets/pnet.onnx").path
        try #require(FileManager.default.fileExists(atPath: path), "run scripts/fetch-assets")
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        var state: UInt64 = 20_261_207
        func random(_ n: Int) -> Int {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Int((z ^ (z >> 31)) % UInt64(max(1, n)))
        }
        var (ran, rejected) = (0, 0)
        let input = Tensor(zeros: [1, 48, 64, 3])
        for _ in 0..<300 {
            var bytes = original
            switch random(3) {
            case 0:
                for _ in 0...random(8) { bytes[random(bytes.count)] = UInt8(random(256)) }
            case 1:
                let at = random(bytes.count)
                for i in at..<min(bytes.count, at + 1 + random(64)) { bytes[i] = 0 }
            default:
                bytes = Array(bytes[..<random(bytes.count)])
            }
            do throws(ModelError) {
                let graph = try ONNXImporter.load(data: Data(bytes), name: "fuzz.onnx", inputShape: [1, 48, 64, 3])
                _ = try DenseExecutor(graph: graph).run(input)
                ran += 1
            } catch {
                rejected += 1
                #expect(!error.description.isEmpty)
            }
        }
        #expect(ran + rejected == 300)
        #expect(rejected > 30, "ran \(ran), rejected \(rejected): the corruptions should be caught")
    }
}
