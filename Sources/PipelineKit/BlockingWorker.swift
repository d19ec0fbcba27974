import Dispatch

/// Runs blocking calls (GStreamer pulls, pushes, state changes) on a thread of their own, off the cooperative
/// pool, which has only two threads here. One worker per GStreamer segment, so calls to it stay in order.
public final class BlockingWorker: Sendable {
    private let queue: DispatchQueue

    public init(label: String) {
        queue = DispatchQueue(label: "skipd.\(label)")
    }

    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result(catching: body)) }
        }
    }
}
