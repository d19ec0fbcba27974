import Foundation
import PipelineKit
import Plugins
import SkipNet
import Testing

@Suite struct ModelStageTests {
    /// A 2×2 RGB frame with row padding; values worked out by hand.
    private var image: VideoImage {
        // Pixels (r,g,b): (10,20,30) (40,50,60) / (70,80,90) (100,110,120); stride 8 (2 bytes of padding).
        let bytes: [UInt8] = [10, 20, 30, 40, 50, 60, 0, 0, 70, 80, 90, 100, 110, 120, 0, 0]
        return VideoImage(format: VideoFormat(pixelFormat: "RGB", width: 2, height: 2, stride: 8), bytes: bytes)
    }

    private func fill(_ input: ModelInput) throws -> [Float] {
        var out = [Float](repeating: .nan, count: input.shape.reduce(1, *))
        try out.withUnsafeMutableBufferPointer { try input.fill(image, into: $0.baseAddress!) }
        return out
    }

    @Test func nchwWithMeanAndScale() throws {
        let out = try fill(try ModelInput(shape: [1, 3, 2, 2], mean: [10], scale: [0.5]))
        #expect(out == [0, 15, 30, 45, 5, 20, 35, 50, 10, 25, 40, 55])
    }

    @Test func nhwcInBGROrderWithPerChannelMean() throws {
        let out = try fill(try ModelInput(shape: [1, 2, 2, 3], mean: [30, 20, 10], scale: [1], channelOrder: "bgr"))
        // BGR order: channel 0 is blue minus 30, channel 1 green minus 20, channel 2 red minus 10.
        #expect(out == [0, 0, 0, 30, 30, 30, 60, 60, 60, 90, 90, 90])
    }

    @Test func nearestNeighbourResize() throws {
        let out = try fill(try ModelInput(shape: [1, 1 + 2, 1, 1]))
        #expect(out == [10, 20, 30])  // the top-left pixel
    }

    @Test func missingModelFileIsAPlanError() {
        let text = "videotestsrc ! video/x-raw,format=RGB\n  ! model model=/nonexistent/m.onnx\n"
        do {
            _ = try PipelinePlanner(registry: .standard).plan(text: text, file: "m.pipeline")
            Issue.record("planned a pipeline whose model does not exist")
        } catch {
            // "  ! model model=" is 16 characters: the value starts in column 17.
            #expect(error.headline == "m.pipeline:2:17: error: model file '/nonexistent/m.onnx' does not exist")
        }
    }

    /// `regions` crops must sample the image on the model's grid: a tile that is not a multiple of the stride is
    /// one clear error naming both.
    @Test func regionsTileOffTheStrideIsAnError() async throws {
        let cf = try Self.centerFace()
        let text =
            "videotestsrc num-buffers=2 ! video/x-raw,width=256,height=192,format=RGB ! regions model=\(cf) tile=100"
        do {
            let plan = try PipelinePlanner(registry: .standard).plan(text: text, file: "r.pipeline")
            _ = try await PipelineRunner(plan: plan).run(onOutput: { _ in })
            Issue.record("ran regions with a 100-pixel tile")
        } catch {
            #expect("\(error)".contains("tile 100 and margin 96 must be multiples of stride 32"), "\(error)")
        }
    }

    @Test func rejectsNonImageInputs() {
        for shape in [[1, 4, 8, 8], [2, 3, 8, 8], [1, 3, 8]] {
            let accepted = (try? ModelInput(shape: shape)) != nil
            #expect(!accepted, "\(shape)")
        }
    }

    /// The face model's path (fetched by `scripts/fetch-assets`).
    static func centerFace() throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let cf = root.appendingPathComponent("assets/centerface.onnx").path
        try #require(FileManager.default.fileExists(atPath: cf), "run scripts/fetch-assets")
        return cf
    }

    /// A 1920×1080 camera with the face model and no `input-size`: 1080 is not a multiple of CenterFace's 32, so
    /// every model stage runs at 1920×1088 (the nearest multiple) and attaches outputs of that input's quarter size.
    @Test func aFullHDFrameRunsThroughTheModelStagesWithoutInputSize() async throws {
        let cf = try Self.centerFace()
        for stage in ["model", "skipconv", "regions"] {
            let plan = try PipelinePlanner(registry: .standard).plan(
                text: """
                    videotestsrc num-buffers=2 pattern=ball ! video/x-raw,width=1920,height=1080,format=RGB
                      ! \(stage) model=\(cf)
                    """, file: "t.pipeline")
            let collected = FrameCollector()
            _ = try await PipelineRunner(plan: plan).run(onOutput: collected.append)
            #expect(collected.frames.count == 2, "\(stage)")
            for frame in collected.frames {
                let outputs = try #require(frame.metadata[ModelOutputs.Key.self], "\(stage)")
                #expect(outputs.inputSize == (1920, 1088), "\(stage)")
                #expect(outputs.tensors[0].shape == [1, 1, 272, 480], "\(stage)")
            }
        }
    }

    /// P-Net on a real test pattern: outputs attached to every frame, the right shapes, reused when skipped.
    @Test func modelStageInAPipeline() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let pnet = root.appendingPathComponent("assets/pnet.onnx").path
        try #require(FileManager.default.fileExists(atPath: pnet), "run scripts/fetch-assets")
        let plan = try PipelinePlanner(registry: .standard).plan(
            text: """
                videotestsrc num-buffers=6 pattern=checkers-8 ! video/x-raw,width=64,height=48,format=RGB
                  ! residual ! gate ! model model=\(pnet) mean=127.5 scale=0.0078125
                """, file: "t.pipeline")
        let collected = FrameCollector()
        _ = try await PipelineRunner(plan: plan).run(onOutput: collected.append)
        let frames = collected.frames
        #expect(frames.count == 6)
        // The checkerboard is static: every frame after the first is skipped and reuses the first result.
        #expect(frames.dropFirst().allSatisfy { $0.skipped })
        let first = try #require(frames[0].metadata[ModelOutputs.Key.self])
        // P-Net: 3×3 conv, 2×2 max-pool (ceil), two 3×3 convs: 48×64 → 46×62 → 23×31 → 21×29 → 19×27.
        #expect(Set(first.tensors.map(\.shape)) == [[1, 19, 27, 4], [1, 19, 27, 2]])
        let probabilities = try #require(first.tensors.first { $0.shape.last == 2 })
        // Softmax over the last axis: each pair sums to 1.
        #expect(
            stride(from: 0, to: probabilities.data.count, by: 2).allSatisfy {
                abs(probabilities.data[$0] + probabilities.data[$0 + 1] - 1) < 1e-5
            })
        for frame in frames.dropFirst() {
            let same = frame.metadata[ModelOutputs.Key.self]?.tensors.map(\.data) == first.tensors.map(\.data)
            #expect(same, "frame \(frame.index) does not carry the first frame's outputs")
        }
    }
}
