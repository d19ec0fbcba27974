import Foundation
import Logging
import PipelineKit
import Plugins
import Testing

@testable import SkipdService

/// A fleet over a temporary directory of pipeline files, started as `skipd serve` starts one.
struct TestFleet {
    let directory: URL
    let fleet: PipelineFleet

    init(_ files: [String: String]) async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("live-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for (name, text) in files {
            try text.write(
                to: directory.appendingPathComponent("\(name).pipeline"), atomically: true, encoding: .utf8)
        }
        fleet = PipelineFleet(
            directory: directory.path, settings: PipelineSupervisor.Settings(), logger: Logger(label: "test"))
        _ = await fleet.reload()
    }

    /// A file in the fleet's directory (inputs for the pipelines).
    func path(_ name: String) -> URL { directory.appendingPathComponent(name) }

    func stop() async {
        await fleet.stopAll()
        try? FileManager.default.removeItem(at: directory)
    }
}

/// Pictures as test data: packed RGB frames made here, and JPEGs decoded by GStreamer's `jpegdec` (not by
/// anything of skipd's).
enum Pictures {
    /// A `width`×`height` frame in `format` (a packed one) whose four quadrants have the given colours, rows
    /// `stride` bytes apart (padding bytes 0x55).
    static func quadrants(
        _ colors: [SIMD3<UInt8>], width: Int = 64, height: Int = 48, format: String = "RGB", stride: Int? = nil
    ) -> Frame {
        var video = VideoFormat(pixelFormat: format, width: width, height: height, stride: 0)
        let size = video.bytesPerPixel ?? 3
        video.stride = stride ?? width * size
        var bytes = [UInt8](repeating: 0x55, count: video.stride * height)
        for y in 0..<height {
            for x in 0..<width {
                let color = colors[(y < height / 2 ? 0 : 2) + (x < width / 2 ? 0 : 1)]
                let at = y * video.stride + x * size
                switch format {
                case "GRAY8": bytes[at] = color.x
                case "BGR": (bytes[at], bytes[at + 1], bytes[at + 2]) = (color.z, color.y, color.x)
                case "BGRx": (bytes[at], bytes[at + 1], bytes[at + 2]) = (color.z, color.y, color.x)
                case "xRGB": (bytes[at + 1], bytes[at + 2], bytes[at + 3]) = (color.x, color.y, color.z)
                default: (bytes[at], bytes[at + 1], bytes[at + 2]) = (color.x, color.y, color.z)
                }
            }
        }
        return Frame(index: 0, pts: nil, image: VideoImage(format: video, bytes: bytes))
    }

    /// Packed RGB bytes of a frame (no row padding), as a raw video file holds them.
    static func rgb(_ frame: Frame) -> [UInt8] {
        let image = frame.image
        return (0..<image.height).flatMap { y in
            Array(UnsafeRawBufferPointer(start: image.row(y), count: image.width * 3))
        }
    }

    /// Decodes a JPEG into packed RGB with GStreamer (`filesrc ! jpegdec ! videoconvert`).
    static func decode(_ jpeg: [UInt8]) async throws -> VideoImage {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("decode-\(UUID()).jpg")
        try Data(jpeg).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let plan = try PipelinePlanner(registry: .standard).plan(
            text: "filesrc location=\(file.path) ! jpegdec ! videoconvert ! video/x-raw,format=RGB ! residual",
            file: "decode.pipeline")
        let frames = FrameCollector()
        _ = try await PipelineRunner(plan: plan).run(onOutput: frames.append)
        return try #require(frames.frames.first, "jpegdec gave no picture").image
    }

    /// The colour at (x, y) of a packed RGB image.
    static func color(_ image: VideoImage, _ x: Int, _ y: Int) -> SIMD3<Int> {
        let p = image.row(y).assumingMemoryBound(to: UInt8.self) + x * 3
        return SIMD3(Int(p[0]), Int(p[1]), Int(p[2]))
    }

    /// Whether two colours differ by at most `tolerance` in every channel (JPEG is lossy).
    static func near(_ a: SIMD3<Int>, _ b: SIMD3<UInt8>, tolerance: Int = 12) -> Bool {
        let d = a &- SIMD3<Int>(Int(b.x), Int(b.y), Int(b.z))
        return max(abs(d.x), abs(d.y), abs(d.z)) <= tolerance
    }
}
