/// How a ``SkipBlock`` covers the outputs it recomputes with rectangles, each run through the fused kernel on a copy
/// of its input window. A window holds the rectangle's halo (the inputs the depthwise conv reads around it), and the
/// block's expand conv is computed over all of it: two rectangles stacked one on the other both compute the halo
/// rows between them, so fewer, taller rectangles pay less; but a rectangle is a hull, and a hull over runs that
/// move sideways from row to row computes columns nothing changed in.
///
/// So the cover starts from thin bands (`bandRows` output rows: one rectangle per group of column runs, trimmed to
/// the rows they lie on) and merges each new rectangle into the one of its band or the band above whose hull saves
/// the most MACs, if any does, while the hull's window stays within `windowFloats` (it is copied out and read back
/// while in cache). On CenterFace at θ = 6 with 32-pixel tiles (40 frames) this cut the expand convs' window
/// positions from 1.23–2.18× the changed inputs (8-row bands) to 1.01–2.03× (the exact set of inputs read:
/// 1.00–1.56×).
struct BlockCover {
    /// An output rectangle and the input window it reads (clipped to the image). `computed`: the output columns
    /// the fused kernel produces, `columns` plus, at stride 1, the window's halo columns (see `rectangle`).
    struct Rectangle: Equatable {
        var rows: Range<Int>
        var columns: Range<Int>
        var windowRows: Range<Int>
        var windowColumns: Range<Int>
        var computed: Range<Int>

        var windowPositions: Int { windowRows.count * windowColumns.count }
        var outputPositions: Int { rows.count * computed.count }
    }

    /// MACs per input-window position (the expand conv's, and a producer's) and per computed output position.
    struct Cost {
        var input: Int
        var output: Int

        func macs(_ r: Rectangle) -> Int { r.windowPositions * input + r.outputPositions * output }
    }

    let depthwise: Conv2DParams
    /// Channels of the block's input (the window's).
    let inputChannels: Int
    let expands: Bool

    /// Column runs closer than this are one rectangle before any merging.
    static let gap = 2
    /// The largest window a merge may make (4 MB).
    static let windowFloats = 1 << 20

    /// Output rows of a band: 2 at stride 1, 4 at stride 2, where a band's window shares only one row with the
    /// next and thin bands would seldom merge.
    var bandRows: Int { depthwise.strideH == 1 ? 2 : 4 }

    /// Narrow rectangles are widened to this many output columns: at stride 2, 7 (with the column added on the
    /// left, the 8 that `Kernels.ParitySplit` needs; at the image's left edge, with no column to add, 7 take the
    /// unsplit path); at stride 1, 4.
    var minimumWidth: Int { depthwise.strideH == 1 ? 4 : 7 }

    /// Appends to `rects` rectangles covering `runs` (a mask's runs, in row order).
    func rectangles(covering runs: [MaskRun], cost: Cost, into rects: inout [Rectangle]) {
        // Indices of the rectangles that reach into the band above or this one: the only ones to merge with.
        var open: [Int] = []
        var first = 0
        while first < runs.count {
            let band = runs[first].y / bandRows
            var last = first
            while last < runs.count && runs[last].y / bandRows == band { last += 1 }
            let above = (band - 1) * bandRows
            open.removeAll { rects[$0].rows.upperBound <= above }
            for (columns, rows) in Self.columnRuns(runs[first..<last], width: depthwise.outW, minimum: minimumWidth) {
                add(rectangle(rows: rows, columns: columns), cost: cost, open: &open, to: &rects)
            }
            first = last
        }
    }

    /// Appends `r`, or replaces the rectangle of `open` whose hull with `r` saves the most MACs.
    private func add(_ r: Rectangle, cost: Cost, open: inout [Int], to rects: inout [Rectangle]) {
        var best: (index: Int, saving: Int, hull: Rectangle)?
        for i in open.reversed() {
            let a = rects[i]
            let rows = min(a.rows.lowerBound, r.rows.lowerBound)..<max(a.rows.upperBound, r.rows.upperBound)
            let columns =
                min(a.columns.lowerBound, r.columns.lowerBound)..<max(a.columns.upperBound, r.columns.upperBound)
            let hull = rectangle(rows: rows, columns: columns)
            guard inputChannels * hull.windowPositions <= Self.windowFloats else { continue }
            let saving = cost.macs(a) + cost.macs(r) - cost.macs(hull)
            if saving > (best?.saving ?? 0) { best = (i, saving, hull) }
        }
        if let best {
            rects[best.index] = best.hull
        } else {
            open.append(rects.count)
            rects.append(r)
        }
    }

    /// The rectangle computing output `rows × columns`, with its input window (clipped to the image).
    func rectangle(rows: Range<Int>, columns: Range<Int>) -> Rectangle {
        let d = depthwise
        let s = d.strideH
        // A "same" stride-1 conv computed over its whole window (halo columns included, discarded afterwards) has
        // inW = outW and one column of padding: the depthwise kernel's flat path, not its row ring, which costs
        // more than the two extra columns.
        let sameSize = s == 1 && d.padLeft == 1 && d.inW == d.outW
        // Likewise at stride 2 (one column of left padding, inW = 2·outW): computing one output column more on the
        // left gives the window the same geometry (its first column stands where the padding was), so the expand
        // GEMM stores its rows split by parity for the depthwise conv (`Kernels.ParitySplit`) instead of the
        // depthwise conv splitting every window row again. The extra output reads that column as zero: discarded.
        let halved = s == 2 && d.padLeft == 1 && d.inW == 2 * d.outW && expands
        let top = max(0, rows.lowerBound * s - d.padTop)
        let left = max(0, columns.lowerBound * s - d.padLeft)
        var window = left..<min(d.inW, (columns.upperBound - 1) * s - d.padLeft + 3)
        var computed = sameSize ? window : columns
        if halved {
            computed = max(0, columns.lowerBound - 1)..<columns.upperBound
            window = 2 * computed.lowerBound..<2 * computed.upperBound
        }
        return Rectangle(
            rows: rows, columns: columns, windowRows: top..<min(d.inH, (rows.upperBound - 1) * s - d.padTop + 3),
            windowColumns: window, computed: computed)
    }

    /// The union of a band's column runs, merged across gaps of up to `gap` columns and widened to at least
    /// `minimum` within `0 ..< width`; with each, the rows its runs lie on.
    static func columnRuns(_ runs: ArraySlice<MaskRun>, width: Int, minimum: Int) -> [(
        columns: Range<Int>, rows: Range<Int>
    )] {
        let sorted = runs.sorted { $0.x0 < $1.x0 }
        var merged: [(columns: Range<Int>, rows: Range<Int>)] = []
        for r in sorted {
            if let last = merged.last, r.x0 <= last.columns.upperBound + gap {
                merged[merged.count - 1] = (
                    last.columns.lowerBound..<max(last.columns.upperBound, r.x1),
                    min(last.rows.lowerBound, r.y)..<max(last.rows.upperBound, r.y + 1)
                )
            } else {
                merged.append((r.x0..<r.x1, r.y..<r.y + 1))
            }
        }
        return merged.map { m in
            guard m.columns.count < minimum && width >= minimum else { return m }
            let lo = min(m.columns.lowerBound, width - minimum)
            return (lo..<lo + minimum, m.rows)
        }
    }
}
