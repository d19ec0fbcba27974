import PipelineKit
import Plugins
import Testing

@Suite struct GateTests {
    /// 4×4 grey frames, residual blocks of 2 (a 2×2 grid). `set` raises the given blocks by 50.
    private func frames(_ changes: [[Int]]) -> [Frame] {
        var values = Array(repeating: UInt8(0), count: 4)
        var out = [flat(0, width: 4, height: 4, value: 0)]
        for (i, blocks) in changes.enumerated() {
            for b in blocks { values[b] &+= 50 }
            let rows = (0..<4).map { y in (0..<4).map { x in values[(y / 2) * 2 + x / 2] } }
            out.append(frame(i + 1, width: 4, rows: rows))
        }
        return out
    }

    @Test func emptyMaskIsSkipped() async throws {
        let out = try await StageChain("residual block=2 ! gate refresh=0", registry: .standard)
            .run(frames([[], [3], []]))
        #expect(out.map(\.skipped) == [false, true, false, true])
        let masks = try out.map { try #require($0.metadata[BlockMask.Key.self]) }
        #expect(
            masks.map(\.active) == [
                [true, true, true, true], [false, false, false, false],
                [false, false, false, true], [false, false, false, false],
            ])
    }

    /// A skipped frame's blocks were committed by residual; they must join the next mask that is passed on.
    @Test func blocksOfSkippedFramesArePassedOnLater() async throws {
        let out = try await StageChain("residual block=2 ! gate min-changed=0.5 refresh=0", registry: .standard)
            .run(frames([[0], [2], []]))
        #expect(out.map(\.skipped) == [false, true, false, true])
        let masks = try out.map { try #require($0.metadata[BlockMask.Key.self]) }
        #expect(masks[1].active == [false, false, false, false])  // 1/4 < 0.5: skipped, block 0 pending
        #expect(masks[2].active == [true, false, true, false])  // pending block 0 + new block 2 = 0.5
        #expect(masks[3].active == [false, false, false, false])
    }

    @Test func refreshActivatesEveryBlock() async throws {
        let out = try await StageChain("residual block=2 ! gate refresh=3", registry: .standard)
            .run(frames([[], [], [], [], []]))
        #expect(out.map(\.skipped) == [false, true, false, true, true, false])
        let masks = try out.map { try #require($0.metadata[BlockMask.Key.self]) }
        #expect(masks.map(\.refresh) == [false, false, true, false, false, true])
        #expect(masks[2].activeCount == 4)
    }

    @Test func coarserGateBlocksPoolResidualBlocks() async throws {
        let out = try await StageChain("residual block=2 ! gate block=4 refresh=0", registry: .standard)
            .run(frames([[3], []]))
        let masks = try out.map { try #require($0.metadata[BlockMask.Key.self]) }
        #expect(masks.map(\.active) == [[true], [true], [false]])
        #expect(masks[1].block == 4 && masks[1].columns == 1 && masks[1].rows == 1)
    }

    @Test func needsAResidualStage() async throws {
        await #expect {
            _ = try await StageChain("gate", registry: .standard).run([flat(0, width: 2, height: 2, value: 0)])
        } throws: { error in
            "\(error)".contains("gate0") && "\(error)".contains("residual")
        }
    }

    @Test func gateBlockMustBeAMultipleOfResidualBlock() async throws {
        await #expect {
            _ = try await StageChain("residual block=2 ! gate block=3", registry: .standard)
                .run([flat(0, width: 4, height: 4, value: 0)])
        } throws: { error in
            "\(error)".contains("multiple")
        }
    }
}
