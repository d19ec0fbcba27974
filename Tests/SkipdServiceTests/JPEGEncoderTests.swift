import PipelineKit
import Testing

@testable import SkipdService

/// The live view's encoder and downscale: every packed format it accepts, padded rows, pixels checked after
/// GStreamer's jpegdec decodes the result; refusals as errors, never a crash.
@Suite struct JPEGEncoderTests {
    private static let colors: [SIMD3<UInt8>] = [[230, 20, 40], [20, 210, 60], [40, 60, 220], [250, 250, 250]]

    @Test(arguments: [("RGB", 64 * 3 + 4), ("BGR", 64 * 3), ("BGRx", 64 * 4 + 16), ("xRGB", 64 * 4)])
    func everyPackedOrderEncodesToItsColours(format: String, stride: Int) async throws {
        let frame = Pictures.quadrants(Self.colors, format: format, stride: stride)
        let picture = try await Pictures.decode(try JPEGEncoder.encode(frame.image))
        #expect(picture.width == 64 && picture.height == 48)
        for (k, (x, y)) in [(16, 12), (48, 12), (16, 36), (48, 36)].enumerated() {
            let color = Pictures.color(picture, x, y)
            #expect(Pictures.near(color, Self.colors[k]), "\(format) quadrant \(k): \(color)")
        }
    }

    @Test func grayEncodesAsGray() async throws {
        let levels: [SIMD3<UInt8>] = [[10, 10, 10], [90, 90, 90], [170, 170, 170], [250, 250, 250]]
        let frame = Pictures.quadrants(levels, format: "GRAY8", stride: 68)
        let picture = try await Pictures.decode(try JPEGEncoder.encode(frame.image))
        for (k, (x, y)) in [(16, 12), (48, 12), (16, 36), (48, 36)].enumerated() {
            #expect(Pictures.near(Pictures.color(picture, x, y), levels[k], tolerance: 4), "quadrant \(k)")
        }
    }

    @Test func planarFormatsAndImpossibleSizesAreErrors() throws {
        let i420 = VideoImage(
            format: VideoFormat(pixelFormat: "I420", width: 4, height: 4, stride: 4),
            bytes: .init(repeating: 0, count: 24))
        #expect(throws: LiveViewError.unsupportedFormat("I420")) { try JPEGEncoder.encode(i420) }
        // Wider than JPEG allows: libjpeg's error comes back as a value.
        let wide = VideoImage(
            format: VideoFormat(pixelFormat: "GRAY8", width: 70_000, height: 1, stride: 70_000),
            bytes: .init(repeating: 0, count: 70_000))
        #expect {
            try JPEGEncoder.encode(wide)
        } throws: { error in
            (error as? LiveViewError).map { "\($0)".contains("65500") } == true
        }
        // A format that claims more rows than its buffer holds is refused before anything is read.
        let short = VideoImage(
            format: VideoFormat(pixelFormat: "RGB", width: 8, height: 8, stride: 24),
            pixels: PixelStorage(bytes: .init(repeating: 0, count: 100)))
        #expect(throws: LiveViewError.self) { try JPEGEncoder.encode(short) }
    }

    @Test func downscaleAveragesTheSourcePixelsEachCovers() {
        // Columns alternate 0 and 100; the right half is 200: halved, the left half averages to 50.
        let width = 8
        var bytes = [UInt8](repeating: 0, count: width * 4)
        for y in 0..<4 {
            for x in 0..<width { bytes[y * width + x] = x >= 4 ? 200 : (x % 2 == 0 ? 0 : 100) }
        }
        let image = VideoImage(
            format: VideoFormat(pixelFormat: "GRAY8", width: width, height: 4, stride: width), bytes: bytes)
        let half = image.downscaled(toWidth: 4)
        #expect(half.width == 4 && half.height == 2 && half.stride == 4)
        let out = Array(UnsafeRawBufferPointer(start: half.row(0), count: 8))
        #expect(out == [50, 50, 200, 200, 50, 50, 200, 200])
        // Not wider than the limit: the same pixels, not a copy.
        let same = image.downscaled(toWidth: 8)
        #expect(same.pixels === image.pixels)
    }
}
