import Foundation
import PipelineKit
import Plugins
import SkipNet
import Testing

/// The `skipconv` stage against the `model` stage (the dense executor, itself checked against onnxruntime in
/// DenseExecutorTests) on the same frames in the same pipeline: a test stage copies `model`'s outputs aside before
/// `skipconv` overwrites them. CenterFace at 256×192 (a third of the clip's size) keeps it fast.
@Suite struct SkipConvStageTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let centerface = root.appendingPathComponent("assets/centerface.onnx").path
    static let clip = root.appendingPathComponent("assets/vtest.avi").path
    static let registry = StageRegistry(StageRegistry.standard.all + [KeepDense.self])
    static let size = "input-size=256x192"

    private func requireAssets() throws {
        let present = [Self.centerface, Self.clip].allSatisfy { FileManager.default.fileExists(atPath: $0) }
        try #require(present, "run scripts/fetch-assets")
    }

    private func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("skipconv-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Checks every frame's skipconv outputs against the dense ones beside them; returns the per-frame stats.
    private func expectDense(_ frames: [Frame]) throws -> [SkipStats] {
        try frames.map { frame in
            let dense = try #require(frame.metadata[KeepDense.Key.self], "frame \(frame.index)")
            let skip = try #require(frame.metadata[ModelOutputs.Key.self], "frame \(frame.index)")
            let difference = relativeDifference(skip, dense)
            #expect(difference <= 1e-4, "frame \(frame.index): relative difference \(difference)")
            return try #require(frame.metadata[SkipStats.Key.self], "frame \(frame.index)")
        }
    }

    /// The first `count` RGB frames of vtest.avi decoded by GStreamer (768×576), through `stages`.
    private func clipFrames(_ count: Int, through stages: String = "keepdense") async throws -> [Frame] {
        let text = "filesrc location=\(Self.clip) ! decodebin ! videoconvert ! video/x-raw,format=RGB ! \(stages)"
        let plan = try PipelinePlanner(registry: Self.registry).plan(text: text, file: "t.pipeline")
        let stop = StopSignal()
        let collected = FrameCollector()
        _ = try await PipelineRunner(plan: plan).run(stop: stop) { frame in
            if frame.index < count { collected.append(frame) }
            if frame.index == count - 1 { stop.request() }
        }
        let frames = collected.frames
        try #require(frames.count == count)
        return frames
    }

    /// A sidecar that would break exactness (absolute thresholds of 9 and 5) and that forces the sparse path (no
    /// scene cut, no dense fallback): the written `input-threshold=0 threshold=0` must override the first two.
    private func writeSidecar(in dir: URL) throws -> String {
        let path = dir.appendingPathComponent("cf.skip.json").path
        try #"{"inputThreshold": 9, "threshold": 5, "relative": false, "sceneCut": 2, "breakEven": 1}"#.write(
            toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Ten real frames through GStreamer: at ε = 0 skipconv equals the dense model on every frame, both with a gate
    /// mask (residual at threshold 0 marks every block that differs at all, so the unmarked ones are truly unchanged)
    /// and without one (any position may have changed).
    @Test(arguments: [true, false])
    func equalsTheModelStageOnRealFrames(gated: Bool) async throws {
        try requireAssets()
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let sidecar = try writeSidecar(in: dir)
        let cf = Self.centerface
        let frames = try await clipFrames(
            10,
            through: (gated ? "residual threshold=0 block=16 ! gate refresh=0 ! " : "")
                + "model model=\(cf) \(Self.size) ! keepdense ! skipconv model=\(cf) \(Self.size) "
                + "thresholds=\(sidecar) input-threshold=0 threshold=0")
        let stats = try expectDense(frames)
        #expect(stats[0].keyframe && stats.dropFirst().allSatisfy { !$0.keyframe })
        #expect(stats.allSatisfy { $0.denseMACs == stats[0].denseMACs && $0.denseMACs > 100_000_000 })
        if gated {
            // Codec noise moves most blocks at threshold 0 (57–100 % here), so little is saved on these frames, but
            // partial masks did reach the executor and cut its work.
            #expect(stats.contains { $0.inputChanged < 1 && $0.executedMACs < $0.denseMACs })
            #expect(stats.allSatisfy { $0.executedMACs <= $0.denseMACs })
        } else {
            #expect(stats.allSatisfy { $0.inputChanged == 1 && !$0.reused })
        }
    }

    /// One real frame, then copies of it with single 16×16 blocks changed: after residual (threshold 0) and gate,
    /// skipconv gets exactly the model-input positions each block maps to (768×576 → 256×192 samples every third
    /// pixel), recomputes only what they reach, and still equals the dense model, with the default scene cut and
    /// break-even in play.
    @Test func oneChangedBlockRecomputesOnlyItsRegion() async throws {
        try requireAssets()
        let real = try await clipFrames(1)[0].image
        let (width, height, stride) = (real.width, real.height, real.stride)
        var bytes = (0..<height).flatMap { y in
            Array(UnsafeBufferPointer(start: real.row(y).assumingMemoryBound(to: UInt8.self), count: stride))
        }
        func frame(_ index: Int) -> Frame {
            Frame(index: index, pts: UInt64(index) * 40_000_000, image: VideoImage(format: real.format, bytes: bytes))
        }
        func change(blockX: Int, blockY: Int, _ f: (UInt8) -> UInt8) {
            for y in blockY * 16..<(blockY + 1) * 16 {
                for i in blockX * 48..<(blockX + 1) * 48 { bytes[y * stride + i] = f(bytes[y * stride + i]) }
            }
        }
        var frames = [frame(0)]
        change(blockX: 24, blockY: 18) { 255 - $0 }
        frames += [frame(1), frame(2)]  // frame 2 repeats frame 1: nothing changed
        change(blockX: 5, blockY: 30) { $0 / 2 }
        frames.append(frame(3))
        #expect(width == 768 && height == 576)

        let cf = Self.centerface
        let out = try await StageChain(
            "residual threshold=0 block=16 ! gate refresh=0 ! model model=\(cf) \(Self.size) ! keepdense "
                + "! skipconv model=\(cf) \(Self.size) input-threshold=0 threshold=0",
            registry: Self.registry
        ).run(frames)
        #expect(out.map(\.skipped) == [false, false, true, false])
        let stats = try expectDense(out)
        #expect(stats.map(\.keyframe) == [true, false, false, false])
        #expect(stats.map(\.reused) == [false, false, true, false])
        // Block (24, 18) is pixels 384…399 × 288…303: model columns 128…133 and rows 96…101 sample it (6×6);
        // block (5, 30) is 80…95 × 480…495: columns 27…31 (3·26 = 78 is outside) and rows 160…165 (5×6).
        #expect(stats[1].inputChanged == 36.0 / Double(256 * 192))
        #expect(stats[3].inputChanged == 30.0 / Double(256 * 192))
        // At threshold 0 a change reaches its whole receptive field, which in CenterFace's deep layers is most of
        // the image: about 54 % and 40 % of the dense MACs here.
        for i in [1, 3] {
            #expect(stats[i].executedMACs > 0 && stats[i].executedMACs < stats[i].denseMACs, "frame \(i)")
        }
        #expect(stats[2].executedMACs == 0)
        // The changes reached the outputs: equality with dense is not a stale copy of frame 0.
        let outputs = try out.map { try #require($0.metadata[ModelOutputs.Key.self]) }
        #expect(relativeDifference(outputs[1], outputs[0]) > 1e-3)
        #expect(relativeDifference(outputs[3], outputs[1]) > 1e-3)
        let json = String(decoding: try JSONEncoder().encode(stats[1]), as: UTF8.self)
        #expect(json.contains("\"executed_macs\"") && json.contains("\"keyframe\":false"))
    }

    /// Worked by hand: a 10×6 frame, 4-pixel blocks (3×2 grid), model input 5×3 samples frame columns 0, 2, 4, 6, 8
    /// (blocks 0, 0, 1, 1, 2) and rows 0, 2, 4 (blocks 0, 0, 1).
    @Test func changedPositionsFollowTheNearestNeighbourResize() {
        let positions = SpatialMask(width: 5, height: 3)
        var mask = BlockMask(
            block: 4, columns: 3, rows: 2, active: [false, true, false, false, false, false], refresh: false)
        SkipConv.changedPositions(mask, frameWidth: 10, frameHeight: 6, into: positions)
        let set = { (0..<3).flatMap { y in (0..<5).filter { positions[$0, y] }.map { [$0, y] } } }
        #expect(set() == [[2, 0], [3, 0], [2, 1], [3, 1]])
        // A grid that stops short of the frame (2 columns: pixels 0…7): column 8 may have changed.
        mask = BlockMask(block: 4, columns: 2, rows: 2, active: [false, false, false, false], refresh: false)
        SkipConv.changedPositions(mask, frameWidth: 10, frameHeight: 6, into: positions)
        #expect(set() == [[4, 0], [4, 1], [4, 2]])
    }

    /// The sidecar is the base; only the properties written in the pipeline override it.
    @Test func writtenPropertiesOverrideTheSidecar() throws {
        try requireAssets()
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let sidecar = dir.appendingPathComponent("s.json").path
        try #"{"gate": "output-norm", "inputThreshold": 2, "threshold": 0.5, "relative": false, "block": 32,"#
            .appending(#" "refresh": 10, "thresholds": {"conv1": 0.25}}"#)
            .write(toFile: sidecar, atomically: true, encoding: .utf8)
        func settings(_ written: String) throws -> SkipSettings {
            let plan = try PipelinePlanner(registry: .standard)
                .planStages("skipconv model=\(Self.centerface) thresholds=\(sidecar) \(written)")
            return try SkipConv.settings(plan.stages[0].properties)
        }
        let base = try settings("")
        #expect(base.gate == .outputNorm && base.inputThreshold == 2 && base.threshold == 0.5 && !base.relative)
        #expect(base.block == 32 && base.refresh == 10 && base.thresholds == ["conv1": 0.25])
        // Written at their defaults, they still win.
        let written = try settings("gate=input-select input-threshold=4 threshold=0 block=16 refresh=300")
        #expect(written.gate == .inputSelect && written.inputThreshold == 4 && written.threshold == 0)
        #expect(written.relative && written.block == 16 && written.refresh == 300)
        #expect(written.thresholds == ["conv1": 0.25])
        // No sidecar: the properties with their defaults.
        let plan = try PipelinePlanner(registry: .standard).planStages("skipconv model=\(Self.centerface)")
        #expect(try SkipConv.settings(plan.stages[0].properties) == SkipSettings())
    }

    @Test(arguments: [
        ("gate=fast", "bad value for 'skipconv gate': expected one of input-norm, output-norm, gumbel, input-select"),
        ("threshold=-1", "bad value for 'skipconv threshold': -1 is out of range"),
        ("block=0", "bad value for 'skipconv block': 0 is out of range 1…1024"),
        ("thresholds=/nonexistent/s.json", "thresholds file '/nonexistent/s.json' does not exist"),
    ])
    func badValuesArePlanErrors(property: String, message: String) throws {
        try requireAssets()
        #expect {
            _ = try PipelinePlanner(registry: .standard).planStages("skipconv model=\(Self.centerface) \(property)")
        } throws: { error in
            (error as? PipelineDiagnostic)?.message.hasPrefix(message) == true
        }
    }

    /// Problems found when the stage starts or loads its model: one clear error naming the cause, no crash.
    @Test func badSettingsAreStageErrors() async throws {
        try requireAssets()
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let broken = dir.appendingPathComponent("broken.json").path
        try "{\"threshold\": ".write(toFile: broken, atomically: true, encoding: .utf8)
        let mistyped = dir.appendingPathComponent("mistyped.json").path
        try #"{"threshold": "low"}"#.write(toFile: mistyped, atomically: true, encoding: .utf8)
        let pnet = Self.root.appendingPathComponent("assets/pnet.onnx").path
        let valueColumn = "skipconv model=\(Self.centerface) ".count + 1
        let cases = [
            ("thresholds=\(broken)", "\(broken): not valid JSON"),
            ("thresholds=\(mistyped)", "\(mistyped): 'threshold' has the wrong type"),
            // Caught when the pipeline is planned, with the value's column (after "skipconv model=PATH ").
            ("input-size=192", ":1:\(valueColumn + 11): error: bad value for 'skipconv input-size': expected WxH"),
            (
                "mean=1,2",
                ":1:\(valueColumn + 5): error: bad value for 'skipconv mean': expected 1 or 3 comma-separated numbers"
            ),
            ("gate=gumbel", "gate=gumbel needs a trained gate for conv '"),
        ]
        let frame = flat(0, width: 32, height: 32, value: 0)
        let rgb = Frame(
            index: 0, pts: 0,
            image: VideoImage(
                format: VideoFormat(pixelFormat: "RGB", width: 32, height: 32, stride: 96),
                bytes: Array(repeating: 0, count: 96 * 32)))
        for (property, message) in cases {
            await #expect {
                _ = try await StageChain("skipconv model=\(Self.centerface) \(property)", registry: .standard)
                    .run([rgb])
            } throws: { error in
                "\(error)".contains(message)
            }
        }
        await #expect {
            _ = try await StageChain("skipconv model=\(pnet)", registry: .standard).run([rgb])
        } throws: { error in
            "\(error)".contains("skipconv runs NCHW models (1×3×H×W)")
        }
        await #expect {
            _ = try await StageChain("skipconv model=\(Self.centerface)", registry: .standard).run([frame])
        } throws: { error in
            "\(error)".contains("needs RGB or BGR video, got GRAY8")
        }
    }

    @Test func isAStandardStageWithModelsProperties() {
        #expect(StageRegistry.standard.names.contains("skipconv"))
        let names = SkipConv.info.properties.map(\.name)
        let shared = Model.info.properties.map(\.name)
        #expect(Array(names.prefix(shared.count)) == shared)
        let own = [
            "gate", "input-threshold", "threshold", "thresholds", "block", "refresh", "min-pixels", "context",
            "rolling-refresh",
        ]
        #expect(Array(names.dropFirst(shared.count)) == own)
    }
}

/// Copies the `model` stage's outputs aside, so that a `skipconv` after it can be compared with them.
struct KeepDense: Stage {
    enum Key: FrameMetadataKey {
        typealias Value = ModelOutputs
        static let name = "dense"
    }

    static let info = StageInfo(name: "keepdense", summary: "copies model outputs aside", example: "keepdense")

    init(properties: StageProperties, context: StageContext) {}

    mutating func process(_ frame: Frame) async throws -> Frame? {
        var frame = frame
        frame.metadata[Key.self] = frame.metadata[ModelOutputs.Key.self]
        return frame
    }
}
