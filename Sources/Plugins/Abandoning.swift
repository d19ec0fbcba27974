import Synchronization

/// Runs `body` in a task of its own and returns its result, or throws ``AbandonedError`` at `deadline`, leaving
/// the task (cancelled) to end on its own. Unlike a task group, this never waits for a body that ignores
/// cancellation: a query on a connection whose peer vanished may not end for minutes.
func abandoning<T: Sendable>(
    at deadline: ContinuousClock.Instant, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let work = Task { try await body() }
    let answer = ResumeOnce<T>()
    let timer = Task {
        try? await Task.sleep(until: deadline)
        work.cancel()
        answer.resume(with: .failure(AbandonedError()))
    }
    defer { timer.cancel() }
    return try await withCheckedThrowingContinuation { continuation in
        answer.set(continuation)
        Task { answer.resume(with: await work.result) }
    }
}

/// A call given up at its deadline (``abandoning(at:_:)``).
struct AbandonedError: Error, CustomStringConvertible {
    var description: String { "no answer before the deadline" }
}

/// The first of two racing results resumes the continuation; one that comes before the continuation is set waits
/// in `early` for it.
private final class ResumeOnce<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var early: Result<T, any Error>?
        var done = false
    }
    private let state = Mutex(State())

    func set(_ continuation: CheckedContinuation<T, any Error>) {
        let early = state.withLock { s -> Result<T, any Error>? in
            if let early = s.early { return early }
            s.continuation = continuation
            return nil
        }
        if let early { continuation.resume(with: early) }
    }

    func resume(with result: Result<T, any Error>) {
        let continuation = state.withLock { s -> CheckedContinuation<T, any Error>? in
            guard !s.done else { return nil }
            s.done = true
            guard let c = s.continuation else {
                s.early = result
                return nil
            }
            s.continuation = nil
            return c
        }
        continuation?.resume(with: result)
    }
}
