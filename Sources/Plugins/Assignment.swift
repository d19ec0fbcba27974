/// Minimum-cost one-to-one assignment of rows to columns: the Hungarian method (Kuhn–Munkres with potentials,
/// O(n²·m) for n ≤ m), as SORT uses to pair tracks with detections.
enum Assignment {
    /// For each row, the column it is assigned, or nil when there are more rows than columns and it got none.
    /// `cost` is rows × columns (every row as long); a non-finite cost counts as the largest finite one.
    static func solve(_ cost: [[Double]]) -> [Int?] {
        let rows = cost.count
        let columns = cost.first?.count ?? 0
        guard rows > 0, columns > 0, cost.allSatisfy({ $0.count == columns }) else {
            return Array(repeating: nil, count: rows)
        }
        let finite = cost.joined().filter(\.isFinite)
        let worst = finite.max() ?? 0
        // Non-finite costs would stall the search (no column ever looks cheaper): the worst finite cost stands in.
        let clean = cost.map { $0.map { $0.isFinite ? $0 : worst } }
        if rows <= columns { return solveWide(clean, rows: rows, columns: columns) }
        // More rows than columns: assign columns to rows instead, then invert.
        let transposed = (0..<columns).map { c in (0..<rows).map { clean[$0][c] } }
        var result: [Int?] = Array(repeating: nil, count: rows)
        for (c, r) in solveWide(transposed, rows: columns, columns: rows).enumerated() {
            if let r { result[r] = c }
        }
        return result
    }

    /// rows ≤ columns: every row gets a column. 1-based internally, index 0 is the search's virtual column.
    private static func solveWide(_ a: [[Double]], rows n: Int, columns m: Int) -> [Int?] {
        var u = [Double](repeating: 0, count: n + 1)
        var v = [Double](repeating: 0, count: m + 1)
        // owner[j]: the row holding column j (0: free); way[j]: the previous column on the augmenting path.
        var owner = [Int](repeating: 0, count: m + 1)
        var way = [Int](repeating: 0, count: m + 1)
        for i in 1...n {
            owner[0] = i
            var j0 = 0
            var minv = [Double](repeating: .infinity, count: m + 1)
            var used = [Bool](repeating: false, count: m + 1)
            repeat {
                used[j0] = true
                let i0 = owner[j0]
                var delta = Double.infinity
                var j1 = 0
                for j in 1...m where !used[j] {
                    let reduced = a[i0 - 1][j - 1] - u[i0] - v[j]
                    if reduced < minv[j] {
                        minv[j] = reduced
                        way[j] = j0
                    }
                    if minv[j] < delta {
                        delta = minv[j]
                        j1 = j
                    }
                }
                for j in 0...m {
                    if used[j] {
                        u[owner[j]] += delta
                        v[j] -= delta
                    } else {
                        minv[j] -= delta
                    }
                }
                j0 = j1
            } while owner[j0] != 0
            repeat {
                let j1 = way[j0]
                owner[j0] = owner[j1]
                j0 = j1
            } while j0 != 0
        }
        var result: [Int?] = Array(repeating: nil, count: n)
        for j in 1...m where owner[j] != 0 { result[owner[j] - 1] = j - 1 }
        return result
    }
}
