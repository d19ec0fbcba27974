import PipelineKit
import Testing

@testable import Plugins

/// `overlay` on flat frames with hand-made detections and masks: which pixels change, to what, and what stays.
@Suite struct OverlayTests {
    static let grey: [UInt8] = [100, 100, 100]

    /// A 16×12 RGB frame of grey 100, rows padded to 50 bytes with 7s (so the stride is kept and padding copied).
    private func greyFrame(format: String = "RGB", skipped: Bool = false) -> Frame {
        let bpp = format == "RGB" ? 3 : 4
        var f = frame(
            0, format: format, width: 16, stride: 16 * bpp + 2, pad: 7,
            rows: Array(repeating: Array(repeating: 100, count: 16 * bpp), count: 12))
        f.skipped = skipped
        return f
    }

    private func pixel(_ image: VideoImage, _ x: Int, _ y: Int, size: Int = 3) -> [UInt8] {
        (0..<size).map { image.row(y).load(fromByteOffset: x * size + $0, as: UInt8.self) }
    }

    private func bytes(_ image: VideoImage) -> [UInt8] {
        Array(UnsafeRawBufferPointer(start: image.row(0), count: image.stride * image.height))
    }

    private func run(_ stages: String, _ frame: Frame) async throws -> Frame {
        let out = try await StageChain(stages, registry: .standard).run([frame])
        return try #require(out.first)
    }

    /// Box x 2…10, y 3…9: columns 2..<10 of rows 3..<9; its 2-pixel outline is rows 3, 4, 7, 8 and columns 2, 3, 8,
    /// 9 of that rectangle, turned green; every other pixel, and the row padding, stays as it was.
    @Test func outlinesTheBoxInTheColour() async throws {
        var input = greyFrame()
        input.metadata[Detections.Key.self] = Detections([Detection(x0: 2, y0: 3, x1: 10, y1: 9, score: 0.9)])
        let image = try await run("overlay", input).image
        #expect(image.format == input.image.format)
        for y in 0..<12 {
            for x in 0..<16 {
                let inBox = (2..<10).contains(x) && (3..<9).contains(y)
                let onOutline = inBox && ([3, 4, 7, 8].contains(y) || [2, 3, 8, 9].contains(x))
                #expect(pixel(image, x, y) == (onOutline ? [0, 255, 0] : Self.grey), "(\(x), \(y))")
            }
            #expect(image.row(y).load(fromByteOffset: 48, as: UInt16.self) == 0x0707, "padding of row \(y)")
        }
    }

    /// Landmarks are 3×3 squares on a small face (10 pixels), centred on the pixel the point falls in; `color=red`.
    @Test func drawsLandmarksAsSquares() async throws {
        var input = greyFrame()
        input.metadata[Detections.Key.self] = Detections([
            Detection(x0: 20, y0: 20, x1: 30, y1: 30, score: 0.9, landmarks: [SIMD2(12.4, 5.6)])
        ])
        let image = try await run("overlay color=red", input).image
        for y in 0..<12 {
            for x in 0..<16 {
                let onSquare = (11...13).contains(x) && (4...6).contains(y)
                #expect(pixel(image, x, y) == (onSquare ? [255, 0, 0] : Self.grey), "(\(x), \(y))")
            }
        }
        let plain = try await run("overlay landmarks=false", input).image
        #expect(pixel(plain, 12, 5) == Self.grey)

        // A 60-pixel face (60 / 24 = 2): 5×5, x 6…10, y 4…8 around (8, 6).
        input.metadata[Detections.Key.self] = Detections([
            Detection(x0: 0, y0: 0, x1: 60, y1: 60, score: 0.9, landmarks: [SIMD2(8.5, 6.5)])
        ])
        let big = try await run("overlay color=red", input).image
        for (x, y) in [(6, 4), (10, 4), (8, 6), (6, 8), (10, 8)] { #expect(pixel(big, x, y) == [255, 0, 0]) }
        for (x, y) in [(5, 6), (11, 6), (8, 3), (8, 9)] { #expect(pixel(big, x, y) == Self.grey, "(\(x), \(y))") }
    }

    /// Mask blocks of 8: the grid is 2×2 over 16×12 (the bottom row of blocks is 4 pixels high). Active blocks are
    /// blended a quarter towards red: (3·100 + 255 + 2) / 4 = 139 and (3·100 + 2) / 4 = 75; the others unchanged.
    @Test func tintsRecomputedBlocks() async throws {
        var input = greyFrame()
        input.metadata[BlockMask.Key.self] = BlockMask(
            block: 8, columns: 2, rows: 2, active: [false, true, false, true], refresh: false)
        let image = try await run("overlay", input).image
        for y in 0..<12 {
            for x in 0..<16 {
                #expect(pixel(image, x, y) == (x >= 8 ? [139, 75, 75] : Self.grey), "(\(x), \(y))")
            }
        }
        let untinted = try await run("overlay mask=false", input).image
        #expect(bytes(untinted) == bytes(input.image))
    }

    /// The input frame's bytes are never written, and the results attached to it pass on.
    @Test func leavesTheOriginalFrameUntouched() async throws {
        var input = greyFrame(skipped: true)
        input.metadata[Detections.Key.self] = Detections([Detection(x0: 0, y0: 0, x1: 16, y1: 12, score: 0.9)])
        input.metadata[BlockMask.Key.self] = BlockMask(
            block: 8, columns: 2, rows: 2, active: [true, true, true, true], refresh: true)
        let before = bytes(input.image)
        let out = try await run("overlay", input)
        #expect(bytes(input.image) == before)
        #expect(bytes(out.image) != before)
        #expect(out.skipped && out.metadata[Detections.Key.self]?.items.count == 1)
    }

    /// A skipped frame gets a 4×4 yellow square in its top-left corner (unless `skipped=false`).
    @Test func marksSkippedFrames() async throws {
        let image = try await run("overlay", greyFrame(skipped: true)).image
        for y in 0..<12 {
            for x in 0..<16 {
                #expect(pixel(image, x, y) == (x < 4 && y < 4 ? [255, 255, 0] : Self.grey), "(\(x), \(y))")
            }
        }
        let unmarked = try await run("overlay skipped=false", greyFrame(skipped: true)).image
        #expect(pixel(unmarked, 0, 0) == Self.grey)
    }

    /// Tracked boxes take their track's colour over `color`, the same for the same ID, different for neighbouring
    /// IDs; untracked boxes keep `color`. Boxes 0…4 and 6…10 on the top rows, an untracked one at 12…16.
    @Test func tracksKeepAColourEach() async throws {
        var input = greyFrame()
        input.metadata[Detections.Key.self] = Detections([
            Detection(x0: 0, y0: 0, x1: 4, y1: 4, score: 0.9, trackID: 1),
            Detection(x0: 6, y0: 0, x1: 10, y1: 4, score: 0.9, trackID: 2),
            Detection(x0: 12, y0: 0, x1: 16, y1: 4, score: 0.9),
        ])
        let image = try await run("overlay color=red", input).image
        let (one, two) = (Overlay.trackColor(1), Overlay.trackColor(2))
        #expect(one != two && one != [255, 0, 0] && two != [255, 0, 0])
        #expect(pixel(image, 0, 0) == [one.x, one.y, one.z])
        #expect(pixel(image, 6, 0) == [two.x, two.y, two.z])
        #expect(pixel(image, 12, 0) == [255, 0, 0])
        #expect(Overlay.trackColor(1 + Overlay.trackColors.count) == one)
        // Any Int picks a colour, negative ones included.
        for id in [-7, Int.min] { #expect(Overlay.trackColors.contains(Overlay.trackColor(id))) }
    }

    /// BGRx: blue first, the fourth byte left alone.
    @Test func drawsInTheFramesChannelOrder() async throws {
        var input = greyFrame(format: "BGRx")
        input.metadata[Detections.Key.self] = Detections([Detection(x0: 0, y0: 0, x1: 4, y1: 4, score: 0.9)])
        let image = try await run("overlay color=red", input).image
        #expect(pixel(image, 0, 0, size: 4) == [0, 0, 255, 100])
        #expect(pixel(image, 5, 5, size: 4) == [100, 100, 100, 100])
    }

    @Test func rejectsFormatsItCannotDrawOn() async throws {
        await #expect {
            _ = try await StageChain("overlay", registry: .standard).run([flat(0, width: 2, height: 2, value: 0)])
        } throws: { error in
            "\(error)".contains("overlay0") && "\(error)".contains("GRAY8")
        }
    }

    /// Boxes partly or wholly outside the frame, empty ones and non-finite ones are clipped or ignored, not a crash.
    @Test func clipsAndIgnoresOddBoxes() async throws {
        var input = greyFrame()
        input.metadata[Detections.Key.self] = Detections([
            Detection(x0: -5, y0: -5, x1: 3, y1: 3, score: 1, landmarks: [SIMD2(-100, 1e20), SIMD2(.nan, 2)]),
            Detection(x0: 100, y0: 100, x1: 200, y1: 200, score: 1),
            Detection(x0: 5, y0: 5, x1: 5, y1: 9, score: 1),
            Detection(x0: .nan, y0: 0, x1: .infinity, y1: 4, score: 1),
        ])
        let image = try await run("overlay", input).image
        // Of the first box's outline (pixels -5..<3 both ways) only the right and bottom bands fall inside the
        // frame (columns and rows 1, 2); (0, 0) lies inside the box, off the outline.
        #expect(pixel(image, 0, 0) == Self.grey)
        #expect(pixel(image, 1, 0) == [0, 255, 0] && pixel(image, 0, 2) == [0, 255, 0])
        #expect(pixel(image, 3, 3) == Self.grey && pixel(image, 5, 6) == Self.grey)
    }
}
