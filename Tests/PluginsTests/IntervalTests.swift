import PipelineKit
import Plugins
import Testing

@Suite struct IntervalTests {
    private func frames(_ count: Int, skipped: Set<Int> = []) -> [Frame] {
        (0..<count).map { i in
            var frame = flat(i, width: 2, height: 2, value: 0)
            frame.skipped = skipped.contains(i)
            return frame
        }
    }

    private func inferred(_ frames: [Frame], n: Int) async throws -> [Int] {
        let out = try await StageChain("interval n=\(n)", registry: .standard).run(frames)
        #expect(out.map(\.index) == frames.map(\.index))
        return out.filter { !$0.skipped }.map(\.index)
    }

    @Test func infersEveryNthFrame() async throws {
        #expect(try await inferred(frames(7), n: 3) == [0, 3, 6])
        #expect(try await inferred(frames(5), n: 2) == [0, 2, 4])
    }

    @Test func nOneSkipsNothing() async throws {
        #expect(try await inferred(frames(6), n: 1) == [0, 1, 2, 3, 4, 5])
    }

    /// Frame 3 was due but skipped upstream: it stays skipped, the count goes on, and frame 4 is inferred instead
    /// of waiting for frame 6. Frame 1, skipped upstream while not due, changes nothing.
    @Test func alreadySkippedFramesStaySkippedAndDoNotResetTheCount() async throws {
        #expect(try await inferred(frames(8, skipped: [3]), n: 3) == [0, 4, 7])
        #expect(try await inferred(frames(8, skipped: [1, 3]), n: 3) == [0, 4, 7])
        #expect(try await inferred(frames(4, skipped: [0]), n: 3) == [1])
    }

    /// The real chain: interval after gate keeps gate's skips and adds its own.
    @Test func afterGate() async throws {
        var input = [flat(0, width: 4, height: 4, value: 0)]
        for i in 1..<7 { input.append(flat(i, width: 4, height: 4, value: UInt8(i * 40))) }
        let out = try await StageChain("residual block=2 ! gate refresh=0 ! interval n=2", registry: .standard)
            .run(input)
        #expect(out.map(\.skipped) == [false, true, false, true, false, true, false])
        let masks = try out.map { try #require($0.metadata[BlockMask.Key.self]) }
        // Skipped frames keep their masks: skipconv carries their blocks to its next run.
        #expect(masks.map(\.activeCount) == [4, 4, 4, 4, 4, 4, 4])
    }

    @Test func isAStandardStage() {
        #expect(StageRegistry.standard.names.contains("interval"))
        #expect(Interval.info.properties.map(\.name) == ["n"])
    }
}
