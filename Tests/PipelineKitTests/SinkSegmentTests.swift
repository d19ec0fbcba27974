import CGStreamer
import Foundation
import Testing

@testable import PipelineKit

/// Frames generated in Swift (as stages produce them) go through a real sink segment into an H.264 mp4, which is
/// then decoded again: every frame must come back, at the frame rate it was pushed with.
@Suite struct SinkSegmentTests {
    static let (width, height) = (64, 48)
    /// As many frames as pipelines/carphone-faces.pipeline writes: 120 at 30000/1001 read back as 121/4.
    static let count = 120

    /// A moving diagonal gradient, so the encoder has motion to code; RGB rows of 64 px need no padding.
    static func generated(framerate: (Int, Int), ptsStep: UInt64) -> [Frame] {
        let format = VideoFormat(
            pixelFormat: "RGB", width: width, height: height, stride: width * 3, framerate: framerate)
        return (0..<count).map { index in
            var bytes = [UInt8](repeating: 0, count: width * 3 * height)
            for y in 0..<height {
                for x in 0..<width {
                    let value = UInt8(truncatingIfNeeded: (x + y + 4 * index) * 4)
                    bytes[(y * width + x) * 3] = value
                    bytes[(y * width + x) * 3 + 1] = 255 - value
                    bytes[(y * width + x) * 3 + 2] = UInt8(truncatingIfNeeded: index * 8)
                }
            }
            return Frame(index: index, pts: UInt64(index) * ptsStep, image: VideoImage(format: format, bytes: bytes))
        }
    }

    /// Encodes `frames` through the same chain as the face pipelines, then decodes the file.
    static func roundTrip(_ frames: [Frame]) async throws -> [Frame] {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("skipd-sink-\(UUID()).mp4").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let encode = PipelinePlan(
            file: "<encode>", source: nil, stages: [], links: [LinkSpec()],
            sink: .init(
                description: "videoconvert ! video/x-raw,format=I420 ! x264enc ! mp4mux ! filesink location=\(path)",
                location: SourceLocation(line: 1, column: 1)))
        _ = try await PipelineRunner(plan: encode).run(frames: frames)

        let decode = PipelinePlan.decoding(
            "filesrc location=\(path) ! qtdemux ! h264parse ! avdec_h264 ! videoconvert ! video/x-raw,format=RGB")
        let collected = FrameCollector()
        _ = try await PipelineRunner(plan: decode).run { collected.append($0) }
        return collected.frames
    }

    /// Buffers without a duration lost the last frame in mp4mux, and qtdemux then guessed the frame rate from
    /// the shortened sample table.
    @Test(arguments: [(25, 1), (30000, 1001)])
    func everyFrameComesBackAtItsFrameRate(framerate: (Int, Int)) async throws {
        let step = UInt64(1_000_000_000) * UInt64(framerate.1) / UInt64(framerate.0)
        let decoded = try await Self.roundTrip(Self.generated(framerate: framerate, ptsStep: step))
        #expect(decoded.count == Self.count)
        let rate = try #require(decoded.first?.image.format.framerate)
        #expect(rate.numerator == framerate.0 && rate.denominator == framerate.1)
    }

    /// At an unknown frame rate (0/1) each frame lasts until the next one's PTS and the last one as long as the
    /// gap before it, so it survives the muxer too and the decoded PTS span the whole input.
    @Test func unknownFrameRateKeepsEveryFrame() async throws {
        let step: UInt64 = 40_000_000
        let decoded = try await Self.roundTrip(Self.generated(framerate: (0, 1), ptsStep: step))
        #expect(decoded.count == Self.count)
        let first = try #require(decoded.first?.pts)
        let last = try #require(decoded.last?.pts)
        // The encoder's reordering delay shifts every PTS alike; the span is what a lost frame shortens.
        #expect(last - first == UInt64(Self.count - 1) * step)
    }

    /// A GStreamer buffer without a duration (the decoder did not stamp one) gets it on a copy that shares the
    /// pixels: the buffer the frame still maps is left alone, and nothing is copied.
    @Test func gstreamerBufferWithoutDurationGetsOneWithoutCopyingPixels() throws {
        try GStreamer.initialize()
        let bytes: [UInt8] = Array(0..<48)
        let source = try #require(bytes.withUnsafeBytes { gst_buffer_new_memdup($0.baseAddress, gsize($0.count)) })
        defer { swgst_buffer_unref(source) }
        source.pointee.pts = 1_000
        let storage = try #require(PixelStorage(gstBuffer: source))
        let buffer = try #require(storage.makeGstBuffer(pts: nil, duration: 40_000_000))
        defer { swgst_buffer_unref(buffer) }
        #expect(buffer != source)
        #expect(buffer.pointee.duration == 40_000_000 && buffer.pointee.pts == 1_000)
        #expect(source.pointee.duration == GstClockTime.max)
        var map = GstMapInfo()
        try #require(gst_buffer_map(buffer, &map, GST_MAP_READ) != 0)
        defer { gst_buffer_unmap(buffer, &map) }
        #expect(UnsafeRawPointer(map.data) == storage.baseAddress)
    }
}
