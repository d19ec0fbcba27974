import Synchronization

/// Numbers a stage publishes for stages before it in the same run, by name: a face decoder posts the smallest
/// face it saw and a `policy` ahead of the model reads it for the next frame. Frames still only move forward;
/// this carries a few scalars back, last value wins.
///
/// ```swift
/// context.board.post("faces.smallest", 24)      // in the decoder
/// let smallest = context.board["faces.smallest"] // in the policy, one frame later
/// ```
public final class FeedbackBoard: Sendable {
    private let values = Mutex<[String: Double]>([:])

    public init() {}

    public func post(_ name: String, _ value: Double?) {
        values.withLock { $0[name] = value }
    }

    public subscript(name: String) -> Double? { values.withLock { $0[name] } }
}
