/// Which inputs each output of a conv reads along one axis (its window, in bounds) and which outputs read each input
/// (its readers), flattened: `windows[windowStart[o]..<windowStart[o + 1]]`.
struct AxisMap {
    let inputs: Int
    let outputs: Int
    let kernel: Int
    let stride: Int
    let pad: Int
    let dilation: Int
    private(set) var windowStart: [Int] = [0]
    private(set) var windows: [Int] = []
    private(set) var readerStart: [Int] = [0]
    private(set) var readers: [Int] = []

    init(inputs: Int, outputs: Int, kernel: Int, stride: Int, pad: Int, dilation: Int) {
        self.inputs = inputs
        self.outputs = outputs
        (self.kernel, self.stride, self.pad, self.dilation) = (kernel, stride, pad, dilation)
        var readersOf = [[Int]](repeating: [], count: inputs)
        for o in 0..<outputs {
            for t in 0..<kernel {
                let i = o * stride - pad + t * dilation
                guard i >= 0 && i < inputs else { continue }
                windows.append(i)
                readersOf[i].append(o)
            }
            windowStart.append(windows.count)
        }
        for list in readersOf {
            readers.append(contentsOf: list)
            readerStart.append(readers.count)
        }
    }

    func window(_ o: Int) -> ArraySlice<Int> { windows[windowStart[o]..<windowStart[o + 1]] }

    /// Windows are intervals (dilation 1), so a run of inputs has an interval of readers and a run of outputs an
    /// interval of inputs covering their windows: the masks are mapped run by run.
    var intervals: Bool { dilation == 1 }

    /// The outputs whose window meets inputs `lo..<hi`, clipped (dilation 1): window [o·s − pad, o·s − pad + k − 1]
    /// meets the run iff it starts at or before hi − 1 and ends at or after lo.
    func readers(_ lo: Int, _ hi: Int) -> Range<Int> {
        let first = Swift.max(0, ceilDiv(lo + pad - kernel + 1, stride))
        let last = Swift.min(outputs - 1, floorDiv(hi - 1 + pad, stride))
        return first <= last ? first..<last + 1 : first..<first
    }

    /// The inputs inside the windows of outputs `lo..<hi`, clipped (dilation 1).
    func span(_ lo: Int, _ hi: Int) -> Range<Int> {
        let first = Swift.max(0, lo * stride - pad)
        let last = Swift.min(inputs - 1, (hi - 1) * stride - pad + kernel - 1)
        return first <= last ? first..<last + 1 : first..<first
    }
}

/// A conv's window geometry on both axes and the two mask mappings a skip layer needs each frame, done separably
/// (a pass along rows, then whole byte rows OR-ed / AND-ed together) and only on rows that can hold a set position.
struct WindowMap {
    let rows: AxisMap
    let columns: AxisMap
    /// Scratch: one byte row per input row (footprint) or per output row (commit).
    private var rowBits: [UInt8]
    private var rowAny: [Bool]
    /// Per input column: 1 if some output reads it (a commit row starts as this).
    private let hasReader: [UInt8]

    init(_ p: Conv2DParams) {
        rows = AxisMap(
            inputs: p.inH, outputs: p.outH, kernel: p.kH, stride: p.strideH, pad: p.padTop, dilation: p.dilationH)
        columns = AxisMap(
            inputs: p.inW, outputs: p.outW, kernel: p.kW, stride: p.strideW, pad: p.padLeft, dilation: p.dilationW)
        rowBits = Array(repeating: 0, count: max(p.inH * p.outW, p.outH * p.inW))
        rowAny = Array(repeating: false, count: max(p.inH, p.outH))
        let columns = columns
        hasReader = (0..<p.inW).map { columns.readerStart[$0] < columns.readerStart[$0 + 1] ? 1 : 0 }
    }

    /// `output` = outputs whose window holds a position of `input` (the footprint of a change).
    mutating func footprint(of input: SpatialMask, into output: SpatialMask) {
        output.clear()
        if input.isEmpty { return }
        let (inW, outW, outH, inH) = (columns.inputs, columns.outputs, rows.outputs, rows.inputs)
        let columns = columns
        withPointers { colReaderStart, colReaders, rowWindowStart, rowWindows, _, _, hits, any in
            input.bits.withUnsafeBufferPointer { src in
                // hits[iy][ox]: some input of row iy inside ox's column window is set.
                for iy in 0..<inH {
                    let row = src.baseAddress! + iy * inW
                    let h = hits + iy * outW
                    var touched = false
                    if columns.intervals {
                        forEachRun(of: row, count: inW, set: true) { lo, hi in
                            if !touched {
                                h.update(repeating: 0, count: outW)
                                touched = true
                            }
                            let r = columns.readers(lo, hi)
                            (h + r.lowerBound).update(repeating: 1, count: r.count)
                        }
                        any[iy] = touched
                        continue
                    }
                    var ix = 0
                    while ix < inW {
                        if row[ix] == 0 {
                            // Clear positions 8 at a time: most of a change mask is clear.
                            if ix + 8 <= inW && UnsafeRawPointer(row + ix).loadUnaligned(as: UInt64.self) == 0 {
                                ix += 8
                            } else {
                                ix += 1
                            }
                            continue
                        }
                        if !touched {
                            h.update(repeating: 0, count: outW)
                            touched = true
                        }
                        for r in colReaderStart[ix]..<colReaderStart[ix + 1] { h[colReaders[r]] = 1 }
                        ix += 1
                    }
                    any[iy] = touched
                }
            }
            output.withBits { dst in
                for oy in 0..<outH {
                    let d = dst.baseAddress! + oy * outW
                    for w in rowWindowStart[oy]..<rowWindowStart[oy + 1] {
                        let iy = rowWindows[w]
                        if any[iy] { orRow(d, hits + iy * outW, outW) }
                    }
                }
            }
        }
    }

    /// `commit` = inputs every reader of which is in `active` (and that have a reader): the largest set whose
    /// change can be folded into the reference without any inactive output going stale (docs/skip-convolutions.md §1).
    mutating func committable(_ active: SpatialMask, into commit: SpatialMask) {
        commit.clear()
        if active.isEmpty { return }
        let (inW, outW, outH, inH) = (columns.inputs, columns.outputs, rows.outputs, rows.inputs)
        let (colWindowStart, colWindows) = (columns.windowStart, columns.windows)
        let (columns, hasReader) = (columns, hasReader)
        withPointers { _, _, _, _, rowReaderStart, rowReaders, all, any in
            active.bits.withUnsafeBufferPointer { a in
                // all[oy][ix]: every reader column of ix is active in output row oy — start from "has a reader"
                // and clear the window of each inactive output (outW windows, not inW reader lists).
                for oy in 0..<outH {
                    let row = a.baseAddress! + oy * outW
                    var rowHasAny = false
                    for ox in 0..<outW where row[ox] != 0 {
                        rowHasAny = true
                        break
                    }
                    any[oy] = rowHasAny
                    guard rowHasAny else { continue }
                    let out = all + oy * inW
                    out.update(from: hasReader, count: inW)
                    if columns.intervals {
                        // Inputs between the windows of an inactive run have no reader (already 0 here).
                        forEachRun(of: row, count: outW, set: false) { lo, hi in
                            let span = columns.span(lo, hi)
                            (out + span.lowerBound).update(repeating: 0, count: span.count)
                        }
                        continue
                    }
                    for ox in 0..<outW where row[ox] == 0 {
                        for w in colWindowStart[ox]..<colWindowStart[ox + 1] { out[colWindows[w]] = 0 }
                    }
                }
            }
            commit.withBits { dst in
                for iy in 0..<inH {
                    let (lo, hi) = (rowReaderStart[iy], rowReaderStart[iy + 1])
                    guard lo < hi else { continue }
                    var allRows = true
                    for r in lo..<hi where !any[rowReaders[r]] {
                        allRows = false
                        break
                    }
                    guard allRows else { continue }
                    let d = dst.baseAddress! + iy * inW
                    d.update(from: all + rowReaders[lo] * inW, count: inW)
                    for r in (lo + 1)..<hi { andRow(d, all + rowReaders[r] * inW, inW) }
                }
            }
        }
    }

    private mutating func withPointers(
        _ body: (
            _ colReaderStart: UnsafePointer<Int>, _ colReaders: UnsafePointer<Int>,
            _ rowWindowStart: UnsafePointer<Int>,
            _ rowWindows: UnsafePointer<Int>, _ rowReaderStart: UnsafePointer<Int>, _ rowReaders: UnsafePointer<Int>,
            _ scratch: UnsafeMutablePointer<UInt8>, _ any: UnsafeMutablePointer<Bool>
        ) -> Void
    ) {
        let (columns, rows) = (columns, rows)
        columns.readerStart.withUnsafeBufferPointer { crs in
            columns.readers.withUnsafeBufferPointer { cr in
                rows.windowStart.withUnsafeBufferPointer { rws in
                    rows.windows.withUnsafeBufferPointer { rw in
                        rows.readerStart.withUnsafeBufferPointer { rrs in
                            rows.readers.withUnsafeBufferPointer { rr in
                                rowBits.withUnsafeMutableBufferPointer { bits in
                                    rowAny.withUnsafeMutableBufferPointer { any in
                                        body(
                                            crs.baseAddress!, cr.baseAddress ?? crs.baseAddress!, rws.baseAddress!,
                                            rw.baseAddress ?? rws.baseAddress!, rrs.baseAddress!,
                                            rr.baseAddress ?? rrs.baseAddress!, bits.baseAddress!, any.baseAddress!)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Calls `body(lo, hi)` for each maximal run `lo..<hi` of positions of a 0/1 byte row that are set (`set`) or
/// clear, skipping eight positions at a time where a word holds none of them.
@inline(__always)
func forEachRun(of row: UnsafePointer<UInt8>, count n: Int, set: Bool, _ body: (Int, Int) -> Void) {
    let (want, other): (UInt8, UInt64) = set ? (1, 0) : (0, 0x0101_0101_0101_0101)
    var x = 0
    while x < n {
        if row[x] != want {
            if x + 8 <= n && UnsafeRawPointer(row + x).loadUnaligned(as: UInt64.self) == other {
                x += 8
            } else {
                x += 1
            }
            continue
        }
        let start = x
        let full: UInt64 = 0x0101_0101_0101_0101 - other
        while x + 8 <= n && UnsafeRawPointer(row + x).loadUnaligned(as: UInt64.self) == full { x += 8 }
        while x < n && row[x] == want { x += 1 }
        body(start, x)
    }
}
