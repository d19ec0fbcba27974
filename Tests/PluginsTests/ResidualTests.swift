import PipelineKit
import Plugins
import Testing

@Suite struct ResidualTests {
    /// 4×2 grey frames, 2×2 blocks, threshold 5; every figure below is worked out by hand.
    @Test func handComputedBlocksAndAccumulatingReference() async throws {
        let frames = [
            frame(0, width: 4, rows: [[10, 10, 10, 10], [10, 10, 10, 10]]),
            // Block 0: residuals 0,0,0,7 → peak 7 > 5, changed, mean 7/4. Block 1: 0,0,0,3 → peak 3, unchanged.
            frame(1, width: 4, rows: [[10, 10, 10, 10], [10, 17, 10, 13]]),
            // Block 0's reference now holds 17: no change. Block 1's reference still holds 10 (its +3 was not
            // passed on), so 16 gives 6 > 5 although the step from the previous frame is only 3.
            frame(2, width: 4, rows: [[10, 10, 10, 10], [10, 17, 10, 16]]),
            // Block 1's reference became 16: 16 → 16 is no change.
            frame(3, width: 4, rows: [[10, 10, 10, 10], [10, 17, 10, 16]]),
        ]
        let out = try await StageChain("residual threshold=5 block=2", registry: .standard).run(frames)
        let maps = try out.map { try #require($0.metadata[ResidualMap.Key.self]) }
        #expect(maps.map(\.changed) == [[true, true], [true, false], [false, true], [false, false]])
        #expect(maps[1].energy == [1.75, 0.75])
        #expect(maps[1].peak == [7, 3])
        #expect(maps[2].energy == [0, 1.5])
        #expect(maps[2].peak == [0, 6])
        #expect(maps.map(\.changedFraction) == [1, 0.5, 0.5, 0])
        #expect(maps[0].columns == 2 && maps[0].rows == 1 && maps[0].block == 2)
    }

    @Test func thresholdIsStrict() async throws {
        let frames = [flat(0, width: 2, height: 2, value: 100), flat(1, width: 2, height: 2, value: 105)]
        let out = try await StageChain("residual threshold=5 block=2", registry: .standard).run(frames)
        #expect(out[1].metadata[ResidualMap.Key.self]?.changed == [false])
    }

    /// Row padding beyond `width × bytesPerPixel` is not image: garbage there must not count as change.
    @Test func ignoresStridePadding() async throws {
        let rows: [[UInt8]] = [[1, 2, 3, 4, 5, 6, 7, 8, 9], [9, 8, 7, 6, 5, 4, 3, 2, 1]]
        let frames = [
            frame(0, format: "RGB", width: 3, stride: 12, pad: 0, rows: rows),
            frame(1, format: "RGB", width: 3, stride: 12, pad: 255, rows: rows),
        ]
        let out = try await StageChain("residual threshold=0 block=1", registry: .standard).run(frames)
        #expect(out[1].metadata[ResidualMap.Key.self]?.changed == Array(repeating: false, count: 6))
    }

    /// Any channel counts: a change in blue alone marks the pixel; partial edge blocks are blocks too.
    @Test func perChannelPeakAndEdgeBlocks() async throws {
        let base: [[UInt8]] = [[0, 0, 0, 0, 0, 0, 0, 0, 0]]
        var moved = base
        moved[0][8] = 40  // blue of the third pixel, which sits alone in the second (partial) block
        let frames = [
            frame(0, format: "RGB", width: 3, rows: base), frame(1, format: "RGB", width: 3, rows: moved),
        ]
        let out = try await StageChain("residual threshold=12 block=2", registry: .standard).run(frames)
        let map = try #require(out[1].metadata[ResidualMap.Key.self])
        #expect(map.columns == 2 && map.rows == 1)
        #expect(map.changed == [false, true])
        #expect(map.peak == [0, 40])
        #expect(map.energy == [0, 40.0 / 3])
    }

    @Test func sizeChangeResetsReference() async throws {
        let frames = [flat(0, width: 2, height: 2, value: 7), flat(1, width: 4, height: 2, value: 7)]
        let out = try await StageChain("residual block=2", registry: .standard).run(frames)
        #expect(out[1].metadata[ResidualMap.Key.self]?.changed == [true, true])
    }

    @Test func rejectsPlanarVideoWithAHint() async throws {
        let format = VideoFormat(pixelFormat: "I420", width: 2, height: 2, stride: 2)
        let input = Frame(index: 0, pts: nil, image: VideoImage(format: format, bytes: Array(repeating: 0, count: 6)))
        await #expect {
            _ = try await StageChain("residual", registry: .standard).run([input])
        } throws: { error in
            "\(error)".contains("residual") && "\(error)".contains("I420") && "\(error)".contains("videoconvert")
        }
    }
}
