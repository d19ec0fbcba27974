import DequeModule

/// Frame rows waiting for the database, oldest first, at most `capacity` of them. When full, the oldest row is
/// dropped and counted: a camera must never wait for a database, and the newest results matter most once it is
/// back. (Rows a writer has taken for a transaction are its own until they commit, and are never dropped.)
struct PostgresBacklog {
    let capacity: Int
    private var rows: Deque<(row: FrameRow, arrived: ContinuousClock.Instant)> = []
    /// Rows dropped since the backlog was made.
    private(set) var dropped = 0

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    var count: Int { rows.count }
    var isEmpty: Bool { rows.isEmpty }
    /// When the oldest waiting row arrived.
    var oldestArrival: ContinuousClock.Instant? { rows.first?.arrived }

    /// Appends a row; true when the oldest row was dropped to make room.
    mutating func append(_ row: FrameRow, arrived: ContinuousClock.Instant = .now) -> Bool {
        var droppedOne = false
        if rows.count >= capacity {
            rows.removeFirst()
            dropped += 1
            droppedOne = true
        }
        rows.append((row, arrived))
        return droppedOne
    }

    /// Removes and returns up to `limit` of the oldest rows.
    mutating func take(_ limit: Int) -> [FrameRow] {
        let n = min(limit, rows.count)
        defer { rows.removeFirst(n) }
        return rows.prefix(n).map(\.row)
    }
}
