import Foundation
import PipelineKit
import Synchronization

/// A clip's frames decoded to RGB by GStreamer and copied into Swift memory (so no GStreamer buffer pool is held),
/// optionally scaled by `videoscale` first: the input of the benchmarks and `calibrate`.
enum ClipFrames {
    static func decode(_ video: String, limit: Int, scale: Int = 1) async throws -> [VideoImage] {
        guard FileManager.default.fileExists(atPath: video) else { throw ClipError("\(video) does not exist") }
        let images = try await frames(video, caps: try await scaledCaps(video, scale: scale), limit: limit).images
        guard !images.isEmpty else { throw ClipError("\(video) gave no frames") }
        return images
    }

    /// `count` stretches of `length` frames each, spread evenly over the clip (the first starts at its first frame,
    /// the last ends at its last), decoded as `decode` does: one pass to count the clip's frames, one to keep them.
    /// With them, the index each starts at and the clip's frame count.
    static func stretches(_ video: String, count: Int, length: Int, scale: Int) async throws
        -> (stretches: [[VideoImage]], starts: [Int], total: Int)
    {
        guard FileManager.default.fileExists(atPath: video) else { throw ClipError("\(video) does not exist") }
        let total = try await frames(video, caps: "video/x-raw,format=RGB", limit: .max, keep: { _ in false }).seen
        guard total >= count * length else {
            throw ClipError("\(video) has \(total) frames, fewer than \(count) stretches of \(length)")
        }
        let starts = (0..<count).map { i in count == 1 ? 0 : i * (total - length) / (count - 1) }
        let ranges = starts.map { $0..<$0 + length }
        let caps = try await scaledCaps(video, scale: scale)
        let kept = try await frames(video, caps: caps, limit: starts[count - 1] + length) { index in
            ranges.contains { $0.contains(index) }
        }.images
        guard kept.count == count * length else { throw ClipError("\(video) ended early: \(kept.count) frames kept") }
        return ((0..<count).map { Array(kept[($0 * length)..<(($0 + 1) * length)]) }, starts, total)
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

    /// Hands the clip's first `limit` frames to `body` (frame index, image) one at a time as GStreamer decodes them,
    /// decoded as `decode` does but not kept: memory stays bounded on a long clip. `body` throwing stops the
    /// decoding and the error is rethrown. Returns how many frames `body` saw.
    static func forEach(
        _ video: String, limit: Int, _ body: @escaping @Sendable (Int, VideoImage) throws -> Void
    ) async throws -> Int {
        guard FileManager.default.fileExists(atPath: video) else { throw ClipError("\(video) does not exist") }
        let plan = PipelinePlan.decoding(
            "filesrc location=\(PropertySyntax.quoted(video)) ! decodebin ! videoconvert ! videoscale ! "
                + "video/x-raw,format=RGB")
        let state = Mutex<(seen: Int, failure: (any Error)?)>((0, nil))
        let stop = StopSignal()
        var runner = PipelineRunner(plan: plan)
        // The caller reports a failed decode once, as its own error.
        runner.logger.logLevel = .critical
        _ = try await runner.run(stop: stop) { frame in
            let index: Int? = state.withLock { s in
                guard s.failure == nil, s.seen < limit else { return nil }
                s.seen += 1
                return s.seen - 1
            }
            guard let index else { return }
            if index + 1 >= limit { stop.request() }
            do {
                try body(index, frame.image)
            } catch {
                state.withLock { $0.failure = $0.failure ?? error }
                stop.request()
            }
        }
        let (seen, failure) = state.withLock { ($0.seen, $0.failure) }
        if let failure { throw failure }
        return seen
    }

    /// Decoded images as the frames of a 25 fps stream, for stage chains.
    static func stream(_ images: [VideoImage]) -> [Frame] {
        images.enumerated().map { Frame(index: $0, pts: UInt64($0) * 40_000_000, image: $1) }
    }

    /// RGB caps at `scale` times the clip's size (its first frame decoded to learn it, unless `scale` is 1).
    private static func scaledCaps(_ video: String, scale: Int) async throws -> String {
        let caps = "video/x-raw,format=RGB"
        if scale == 1 { return caps }
        guard let first = try await frames(video, caps: caps, limit: 1).images.first else {
            throw ClipError("\(video) gave no frames")
        }
        return caps + ",width=\(first.width * scale),height=\(first.height * scale)"
    }

    /// The first `limit` frames of the clip, of which those `keep` selects (by index) are copied; `seen`: how many
    /// the clip gave (at most `limit`).
    private static func frames(
        _ video: String, caps: String, limit: Int, keep: @escaping @Sendable (Int) -> Bool = { _ in true }
    ) async throws -> (images: [VideoImage], seen: Int) {
        let plan = PipelinePlan.decoding(
            "filesrc location=\(PropertySyntax.quoted(video)) ! decodebin ! videoconvert ! videoscale ! \(caps)")
        let collected = Mutex<(images: [VideoImage], seen: Int)>(([], 0))
        let stop = StopSignal()
        _ = try await PipelineRunner(plan: plan).run(stop: stop) { frame in
            let index = collected.withLock {
                $0.seen += 1
                return $0.seen - 1
            }
            guard index < limit else { return }
            if index + 1 >= limit { stop.request() }
            guard keep(index) else { return }
            let image = frame.image
            let rowBytes = image.width * 3
            var bytes = [UInt8](repeating: 0, count: rowBytes * image.height)
            bytes.withUnsafeMutableBytes { out in
                for y in 0..<image.height {
                    (out.baseAddress! + y * rowBytes).copyMemory(from: image.row(y), byteCount: rowBytes)
                }
            }
            let format = VideoFormat(pixelFormat: "RGB", width: image.width, height: image.height, stride: rowBytes)
            collected.withLock { $0.images.append(VideoImage(format: format, bytes: bytes)) }
        }
        return collected.withLock { ($0.images, min($0.seen, limit)) }
    }
}

struct ClipError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
