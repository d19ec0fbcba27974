import Foundation
import PipelineKit
import Plugins
import Testing

/// Real GStreamer graphs through real stages.
@Suite struct EndToEndTests {
    private func plan(_ text: String, registry: StageRegistry = .standard) throws -> PipelinePlan {
        try PipelinePlanner(registry: registry).plan(text: text, file: "test.pipeline")
    }

    @Test func videotestsrcThroughResidualAndGate() async throws {
        let plan = try plan(
            """
            videotestsrc num-buffers=40 pattern=ball ! video/x-raw,width=162,height=120,framerate=30/1
              ! videoconvert ! video/x-raw,format=RGB
              ! residual threshold=12 block=8 ! gate
            """)
        let collected = FrameCollector()
        let report = try await PipelineRunner(plan: plan).run(onOutput: collected.append)
        let frames = collected.frames
        #expect(frames.count == 40)
        #expect(frames.map(\.index) == Array(0..<40))
        #expect(zip(frames, frames.dropFirst()).allSatisfy { $0.pts! < $1.pts! })
        // 162 RGB pixels = 486 bytes, padded to 488 by GStreamer: the stride must come from GStreamer.
        #expect(frames[0].image.format.stride == 488)
        #expect(
            frames.allSatisfy { $0.metadata[ResidualMap.Key.self] != nil && $0.metadata[BlockMask.Key.self] != nil })
        // The ball moves: every frame after the first changes some, but far from all, blocks.
        let changed = frames.dropFirst().map { $0.metadata[ResidualMap.Key.self]!.changedFraction }
        #expect(changed.allSatisfy { $0 > 0 && $0 < 0.5 })
        #expect(report.framesIn == 40 && report.framesOut == 40 && !report.live)
        #expect(report.links.map(\.name) == ["source→residual0", "residual0→gate0", "gate0→sink"])
        #expect(report.links.allSatisfy { $0.stats.sent == 40 && $0.stats.dropped == 0 })
    }

    @Test func sinkSegmentReceivesEveryFrame() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("skipd-e2e-\(UUID())")
        defer { try? FileManager.default.removeItem(at: dir) }
        let plan = try plan(
            """
            videotestsrc num-buffers=12 ! video/x-raw,width=64,height=48,format=RGB
              ! residual ! gate ! jsonsink location=\(dir.path)/out.jsonl
              ! videoconvert ! pngenc ! multifilesink location=\(dir.path)/%03d.png
            """)
        let report = try await PipelineRunner(plan: plan).run()
        #expect(report.framesOut == 12)
        let pngs = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".png") }
        #expect(pngs.count == 12)
        let lines = try String(contentsOf: dir.appendingPathComponent("out.jsonl"), encoding: .utf8)
            .split(separator: "\n")
        #expect(lines.count == 12)
        let first = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any]
        #expect(first?["frame"] as? Int == 0)
        #expect(first?["changed"] as? Double == 1)
        #expect(first?["skipped"] as? Bool == false)
        let last = try JSONSerialization.jsonObject(with: Data(lines[11].utf8)) as? [String: Any]
        #expect(last?["frame"] as? Int == 11)
        #expect((last?["residual"] as? [String: Any])?["changed_fraction"] != nil)
    }

    @Test func liveSourceDefaultsToDropOldest() async throws {
        let plan = try plan(
            "videotestsrc is-live=true num-buffers=5 ! video/x-raw,width=32,height=24,format=GRAY8 ! residual")
        let report = try await PipelineRunner(plan: plan).run()
        #expect(report.live)
        #expect(report.framesIn == 5)
    }

    @Test func inputFileRemovedAfterCheckIsARuntimeFailure() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("skipd-gone-\(UUID()).avi").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data("x".utf8)))
        let plan = try plan("filesrc location=\(path) ! decodebin ! videoconvert ! residual")
        try FileManager.default.removeItem(atPath: path)
        await #expect {
            _ = try await PipelineRunner(plan: plan).run()
        } throws: { error in
            let text = "\(error)"
            return text.contains("filesrc") && text.contains("GStreamer element")
        }
    }

    @Test func undecodableFileIsARuntimeFailure() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("skipd-junk-\(UUID()).avi").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(FileManager.default.createFile(atPath: path, contents: Data((0..<4096).map { UInt8($0 % 251) })))
        let plan = try plan("filesrc location=\(path) ! decodebin ! videoconvert ! residual")
        await #expect {
            _ = try await PipelineRunner(plan: plan).run()
        } throws: { error in
            "\(error)".contains("GStreamer element")
        }
    }

    @Test func aThrowingStageStopsThePipelineAndIsNamed() async throws {
        let registry = StageRegistry([Residual.self, Gate.self, FailAt.self])
        let plan = try plan(
            "videotestsrc num-buffers=1000 ! video/x-raw,width=32,height=24,format=GRAY8 ! residual ! failat frame=5 name=boom ! gate",
            registry: registry)
        await #expect {
            _ = try await PipelineRunner(plan: plan).run()
        } throws: { error in
            let stage = (error as? PipelineRunError)?.underlying as? StageError
            return stage?.stage == "boom" && "\(error)".contains("frame 5 is bad")
        }
    }

    @Test func stopEndsTheStreamCleanly() async throws {
        // A live source defaults to drop-oldest links; on a loaded machine that legitimately drops frames, so both
        // links block here and every frame up to the stop must arrive, in order.
        let plan = try plan(
            "videotestsrc is-live=true ! video/x-raw,width=32,height=24,framerate=50/1,format=GRAY8 "
                + "! channel overflow=block ! residual ! channel overflow=block")
        let stop = StopSignal()
        let collected = FrameCollector()
        let report = try await PipelineRunner(plan: plan).run(stop: stop) { frame in
            collected.append(frame)
            if frame.index == 3 { stop.request() }
        }
        #expect(report.framesOut >= 4)
        #expect(collected.frames.map(\.index) == Array(0..<collected.frames.count))
    }
}

/// Throws on one frame: a stand-in for a stage that fails.
struct FailAt: Stage {
    static let info = StageInfo(
        name: "failat", summary: "fails on one frame", example: "failat frame=5",
        properties: [.int("frame", default: 0, range: 0...1_000_000, "the frame to fail on")])
    let frame: Int
    init(properties: StageProperties, context: StageContext) { frame = properties.int("frame") }
    mutating func process(_ frame: Frame) async throws -> Frame? {
        struct Bad: Error, CustomStringConvertible { var description: String }
        if frame.index == self.frame { throw Bad(description: "frame \(frame.index) is bad") }
        return frame
    }
}
