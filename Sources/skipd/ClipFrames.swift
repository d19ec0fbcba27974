import Foundation
import PipelineKit
import Synchronization

/// A clip's frames decoded to RGB by GStreamer and copied into Swift memory (so no GStreamer buffer pool is held),
/// optionally scaled by `videoscale` first: the input of the benchmarks and `calibrate`.
enum ClipFrames {
    static func decode(_ video: String, limit: Int, scale: Int = 1) async throws -> [VideoImage] {
        guard FileManager.default.fileExists(atPath: video) else { throw ClipError("\(video) does not exist") }
        var caps = "video/x-raw,format=RGB"
        if scale != 1 {
            guard let first = try await frames(video, caps: caps, limit: 1).first else {
                throw ClipError("\(video) gave no frames")
            }
            caps += ",width=\(first.width * scale),height=\(first.height * scale)"
        }
        let images = try await frames(video, caps: caps, limit: limit)
        guard !images.isEmpty else { throw ClipError("\(video) gave no frames") }
        return images
    }

    /// ``decode(_:limit:scale:)`` for a command: a progress line first, the first `skipping` frames dropped, and a
    /// clip that cannot be decoded is one error line and exit code 2.
    static func decodeForCommand(_ video: String, limit: Int, scale: Int, skipping: Int = 0) async throws
        -> [VideoImage]
    {
        let from = skipping > 0 ? " from frame \(skipping)" : ""
        printError(
            "decoding \(limit == .max ? "" : "\(limit) frames of ")\(video)\(from)\(scale > 1 ? " at ×\(scale)" : "")…")
        do {
            let images = Array(try await decode(video, limit: skipping + limit, scale: scale).dropFirst(skipping))
            guard !images.isEmpty else { throw ClipError("\(video) has no frames after the first \(skipping)") }
            return images
        } catch {
            printError("error: \(error)")
            throw Exit.invalidFile
        }
    }

    /// Decoded images as the frames of a 25 fps stream, for stage chains.
    static func stream(_ images: [VideoImage]) -> [Frame] {
        images.enumerated().map { Frame(index: $0, pts: UInt64($0) * 40_000_000, image: $1) }
    }

    private static func frames(_ video: String, caps: String, limit: Int) async throws -> [VideoImage] {
        let plan = PipelinePlan.decoding(
            "filesrc location=\(PropertySyntax.quoted(video)) ! decodebin ! videoconvert ! videoscale ! \(caps)")
        let collected = Mutex<[VideoImage]>([])
        let stop = StopSignal()
        _ = try await PipelineRunner(plan: plan).run(stop: stop) { frame in
            let image = frame.image
            let rowBytes = image.width * 3
            var bytes = [UInt8](repeating: 0, count: rowBytes * image.height)
            bytes.withUnsafeMutableBytes { out in
                for y in 0..<image.height {
                    (out.baseAddress! + y * rowBytes).copyMemory(from: image.row(y), byteCount: rowBytes)
                }
            }
            let format = VideoFormat(pixelFormat: "RGB", width: image.width, height: image.height, stride: rowBytes)
            let count = collected.withLock {
                if $0.count < limit { $0.append(VideoImage(format: format, bytes: bytes)) }
                return $0.count
            }
            if count >= limit { stop.request() }
        }
        return collected.withLock { $0 }
    }
}

struct ClipError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
