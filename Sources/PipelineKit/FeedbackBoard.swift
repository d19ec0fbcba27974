import Synchronization

/// Numbers a stage posts for stages before it in the same run, by name: a face decoder posts the smallest face
/// it saw and a `policy` ahead of the model takes it when it decides a later frame. Frames still only move
/// forward; this carries a few scalars back.
///
/// ```swift
/// context.board.postMinimum("faces.smallest", 24)   // in the decoder, for each frame with a face
/// let smallest = context.board.take("faces.smallest") // in the policy: the smallest since it last looked
/// ```
public final class FeedbackBoard: Sendable {
    private let values = Mutex<[String: Double]>([:])

    public init() {}

    /// Sets a value, replacing any other.
    public func post(_ name: String, _ value: Double?) {
        values.withLock { $0[name] = value }
    }

    /// Keeps the smaller of `value` and a value not taken yet: the two stages need not run in lockstep.
    public func postMinimum(_ name: String, _ value: Double) {
        values.withLock { $0[name] = min($0[name] ?? value, value) }
    }

    /// The value, left in place.
    public subscript(name: String) -> Double? { values.withLock { $0[name] } }

    /// The value, removed.
    public func take(_ name: String) -> Double? { values.withLock { $0.removeValue(forKey: name) } }
}
