/// A call that did not finish within its limit and was abandoned (``withTimeLimit(_:_:_:)``).
public struct TimeLimitError: Error, CustomStringConvertible {
    public var what: String
    public var limit: Duration
    public var description: String { "\(what) did not finish within \(limit); abandoned" }
}

/// Runs `body`, giving up on it after `limit` with ``TimeLimitError``. `body` must end when its task is cancelled
/// (a ``BlockingWorker`` call does, leaving the blocked call to its thread), or giving up would wait for it anyway.
public func withTimeLimit<T: Sendable>(
    _ limit: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            throw TimeLimitError(what: what, limit: limit)
        }
        defer { group.cancelAll() }
        guard let first = try await group.next() else { throw CancellationError() }
        return first
    }
}
