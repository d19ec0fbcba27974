import Dispatch
import Synchronization

/// Runs blocking calls (GStreamer pulls, pushes, state changes) on a thread of their own, off the cooperative
/// pool, which has only two threads here. One worker per GStreamer segment, so calls to it stay in order.
///
/// A call whose task is cancelled stops being waited for at once (it throws `CancellationError`); the call itself
/// finishes on the worker's thread whenever GStreamer lets it. A hung GStreamer call (an RTSP teardown that never
/// returns) then holds one thread and its pipeline, not the camera's supervision.
public final class BlockingWorker: Sendable {
    private let queue: DispatchQueue

    public init(label: String) {
        queue = DispatchQueue(label: "skipd.\(label)")
    }

    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        let once = ResumeOnce<T>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                once.wait(continuation)
                queue.async { once.resume(with: Result(catching: body)) }
            }
        } onCancel: {
            once.resume(with: .failure(CancellationError()))
        }
    }
}

/// Resumes a continuation with whichever result comes first: the call's or the cancellation's (which may come
/// before the continuation exists).
private final class ResumeOnce<T: Sendable>: Sendable {
    private enum State {
        case waiting(CheckedContinuation<T, any Error>?)
        case early(Result<T, any Error>)
        case done
    }

    private let state = Mutex<State>(.waiting(nil))

    func wait(_ continuation: CheckedContinuation<T, any Error>) {
        let early: Result<T, any Error>? = state.withLock { s in
            if case .early(let result) = s {
                s = .done
                return result
            }
            s = .waiting(continuation)
            return nil
        }
        if let early { continuation.resume(with: early) }
    }

    func resume(with result: Result<T, any Error>) {
        let continuation: CheckedContinuation<T, any Error>? = state.withLock { s in
            switch s {
            case .waiting(let c?):
                s = .done
                return c
            case .waiting(nil):
                s = .early(result)
                return nil
            case .early, .done:
                return nil
            }
        }
        continuation?.resume(with: result)
    }
}
