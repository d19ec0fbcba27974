import Foundation
import PipelineKit
import Plugins
import Testing

/// `skipconv` under a policy that changes scale mid-clip and skips frames: each scale keeps its own skip-conv
/// state, and every frame still equals the dense `model` stage at the same scale (itself checked against
/// onnxruntime in DenseExecutorTests).
@Suite struct PolicyScaleTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let centerface = root.appendingPathComponent("assets/centerface.onnx").path
    static let clip = root.appendingPathComponent("assets/vtest.avi").path
    static let registry = StageRegistry(StageRegistry.standard.all + [KeepDense.self, ScriptedPolicy.self])
    static let model = "model=\(centerface) input-size=256x192"

    private func requireAssets() throws {
        let present = [Self.centerface, Self.clip].allSatisfy { FileManager.default.fileExists(atPath: $0) }
        try #require(present, "run scripts/fetch-assets")
    }

    private func firstFrames(_ count: Int) async throws -> [Frame] {
        let text = "filesrc location=\(Self.clip) ! decodebin ! videoconvert ! video/x-raw,format=RGB ! keepdense"
        let plan = try PipelinePlanner(registry: Self.registry).plan(text: text, file: "t.pipeline")
        let stop = StopSignal()
        let collected = FrameCollector()
        _ = try await PipelineRunner(plan: plan).run(stop: stop) { frame in
            if frame.index < count { collected.append(frame) }
            if frame.index == count - 1 { stop.request() }
        }
        return collected.frames.map { Frame(index: $0.index, pts: $0.pts, image: $0.image) }
    }

    /// Full, half, back to full (no keyframe: its references were kept), a skip, and half again. Codec noise
    /// changes most blocks at residual threshold 0, so a sidecar turns the scene cut off: every keyframe is then
    /// a first run at a scale.
    @Test func eachScaleKeepsItsOwnState() async throws {
        try requireAssets()
        let frames = try await firstFrames(8)
        let sidecar = FileManager.default.temporaryDirectory.appendingPathComponent("nocut-\(UUID()).json").path
        try #"{"sceneCut": 2}"#.write(toFile: sidecar, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: sidecar) }
        let out = try await StageChain(
            "residual threshold=0 block=16 ! gate refresh=0 ! scripted script=1,1,0.5,0.5,1,skip,1,0.5 "
                + "! model \(Self.model) ! keepdense ! skipconv \(Self.model) thresholds=\(sidecar) "
                + "input-threshold=0 threshold=0",
            registry: Self.registry
        ).run(frames)
        try #require(out.count == 8)
        let stats = try out.map { try #require($0.metadata[SkipStats.Key.self]) }
        let heatmaps = try out.map { try #require($0.metadata[ModelOutputs.Key.self]?.tensors[0].shape) }
        for frame in out {
            let dense = try #require(frame.metadata[KeepDense.Key.self])
            let skip = try #require(frame.metadata[ModelOutputs.Key.self])
            #expect(relativeDifference(skip, dense) <= 1e-4, "frame \(frame.index)")
        }
        #expect(heatmaps.map { $0[2] } == [48, 48, 24, 24, 48, 48, 48, 24])
        #expect(stats.map(\.keyframe) == [true, false, true, false, false, false, false, false])
        #expect(stats.map(\.reused) == [false, false, false, false, false, true, false, false])
        // Returning to a scale compares against that scale's references everywhere (the gate's mask covers only
        // the last step); within a scale the mask is used.
        #expect(stats[4].inputChanged == 1 && stats[7].inputChanged == 1)
        for i in [1, 3] {
            let mask = try #require(out[i].metadata[BlockMask.Key.self])
            if mask.activeFraction < 1 { #expect(stats[i].inputChanged < 1, "frame \(i)") }
        }
        let costs = try out.map { try #require($0.metadata[ComputeCost.Key.self]) }
        #expect(costs.map(\.inputWidth) == [256, 256, 128, 128, 256, 256, 256, 128])
        #expect(costs[5].executedMACs == 0 && costs[2].executedMACs > 0)
        // The dense baseline is the full-size model's on every frame, whatever scale ran (or none).
        #expect(costs.allSatisfy { $0.denseMACs == stats[0].denseMACs }, "\(costs.map(\.denseMACs))")
        #expect(costs[0].executedMACs == costs[0].denseMACs && costs[2].executedMACs < costs[2].denseMACs / 3)
    }

    /// A block that changed on a frame the policy skipped reaches the next run, merged with that frame's own.
    @Test func blocksChangedOnSkippedFramesAreNotLost() async throws {
        try requireAssets()
        let real = try await firstFrames(1)[0].image
        let stride = real.stride
        var bytes = (0..<real.height).flatMap { y in
            Array(UnsafeBufferPointer(start: real.row(y).assumingMemoryBound(to: UInt8.self), count: stride))
        }
        func frame(_ index: Int) -> Frame {
            Frame(index: index, pts: UInt64(index) * 40_000_000, image: VideoImage(format: real.format, bytes: bytes))
        }
        func change(blockX: Int, blockY: Int) {
            for y in blockY * 16..<(blockY + 1) * 16 {
                for i in blockX * 48..<(blockX + 1) * 48 { bytes[y * stride + i] = 255 - bytes[y * stride + i] }
            }
        }
        var frames = [frame(0)]
        change(blockX: 24, blockY: 18)
        frames += [frame(1), frame(2)]  // 1 is skipped by the policy, 2 (no change) by the gate
        change(blockX: 5, blockY: 30)
        frames.append(frame(3))
        let out = try await StageChain(
            "residual threshold=0 block=16 ! gate refresh=0 ! scripted script=1,skip,1,1 ! model \(Self.model) "
                + "! keepdense ! skipconv \(Self.model) input-threshold=0 threshold=0",
            registry: Self.registry
        ).run(frames)
        #expect(out.map(\.skipped) == [false, true, true, false])
        let stats = try out.map { try #require($0.metadata[SkipStats.Key.self]) }
        // Block (24, 18) maps to 6×6 model positions, block (5, 30) to 5×6 (see SkipConvStageTests).
        #expect(stats[3].inputChanged == 66.0 / Double(256 * 192))
        let dense = try #require(out[3].metadata[KeepDense.Key.self])
        let skip = try #require(out[3].metadata[ModelOutputs.Key.self])
        #expect(relativeDifference(skip, dense) <= 1e-4)
        let before = try #require(out[0].metadata[ModelOutputs.Key.self])
        #expect(relativeDifference(skip, before) > 1e-3)
    }
}

/// Sets a ``PolicyDecision`` from a list, one entry per frame (a scale, or `skip`), for tests.
struct ScriptedPolicy: Stage {
    static let info = StageInfo(
        name: "scripted", summary: "policy decisions from a list", example: "scripted script=1,0.5,skip",
        properties: [.string("script", default: "1", "scales or skip, one per frame")])

    let script: [String]

    init(properties: StageProperties, context: StageContext) {
        script = properties.string("script").split(separator: ",").map(String.init)
    }

    mutating func process(_ frame: Frame) async throws -> Frame? {
        var frame = frame
        let entry = script[frame.index % script.count]
        let action: PolicyDecision.Action = entry == "skip" ? .skip(1) : .scale(Double(entry) ?? 1)
        frame.skipped = frame.skipped || action.skips
        frame.metadata[PolicyDecision.Key.self] = PolicyDecision(action: action, carried: false, features: [], macs: 0)
        return frame
    }
}
