import PipelineKit
import Synchronization

/// The latest frame that left one pipeline's last stage, for the live view.
///
/// The pipeline's side is ``publish(_:)``: one short lock to swap a reference to the frame's pixels (shared, not
/// copied; an `overlay` before it has drawn into its own copy already). Nothing is encoded there and nothing
/// waits for a viewer. Viewers read ``latest`` or ``jpeg(maxWidth:quality:)`` on their own tasks; the last
/// encoding is kept until the next frame, so viewers asking for the same size share it.
final class FrameTap: Sendable {
    struct Latest: Sendable {
        var image: VideoImage
        /// 1 for the first frame published, then one more per frame.
        var sequence: Int
    }

    struct Encoded: Sendable {
        var sequence: Int
        var maxWidth: Int
        var jpeg: [UInt8]
        /// The encoded picture's size (after downscaling).
        var width: Int
        var height: Int
    }

    private struct State {
        var latest: Latest?
        var encoded: Encoded?
        var closed = false
    }

    private let state = Mutex(State())
    /// Tells one tap's frames from another's (a changed file gets a new tap, whose sequence starts over) in ETags.
    let id: UInt64

    private static let taps = Atomic<UInt64>(0)

    init() {
        id = Self.taps.add(1, ordering: .relaxed).newValue
    }

    /// Called for every frame leaving the last stage.
    func publish(_ frame: Frame) {
        state.withLock { s in
            s.latest = Latest(image: frame.image, sequence: (s.latest?.sequence ?? 0) + 1)
            s.encoded = nil
        }
    }

    var latest: Latest? { state.withLock { $0.latest } }

    /// The pipeline was stopped or replaced: streams of it end.
    func close() { state.withLock { $0.closed = true } }
    var isClosed: Bool { state.withLock { $0.closed } }

    /// The latest frame as JPEG, no wider than `maxWidth`; nil before the first frame. Encodes on the caller's
    /// task unless the same frame was already encoded at the same size.
    func jpeg(maxWidth: Int, quality: Int) throws(LiveViewError) -> Encoded? {
        let (latest, cached) = state.withLock { ($0.latest, $0.encoded) }
        guard let latest else { return nil }
        if let cached, cached.sequence == latest.sequence, cached.maxWidth == maxWidth { return cached }
        let image = latest.image.downscaled(toWidth: maxWidth)
        let encoded = Encoded(
            sequence: latest.sequence, maxWidth: maxWidth,
            jpeg: try JPEGEncoder.encode(image, quality: quality), width: image.width, height: image.height)
        state.withLock { s in
            // Kept only while it is of the latest frame: publish() drops it with the next one.
            if s.latest?.sequence == encoded.sequence { s.encoded = encoded }
        }
        return encoded
    }
}
