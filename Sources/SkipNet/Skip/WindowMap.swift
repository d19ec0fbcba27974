/// Which inputs each output of a conv reads along one axis (its window, in bounds) and which outputs read each input
/// (its readers), flattened: `windows[windowStart[o]..<windowStart[o + 1]]`.
struct AxisMap {
    let inputs: Int
    let outputs: Int
    private(set) var windowStart: [Int] = [0]
    private(set) var windows: [Int] = []
    private(set) var readerStart: [Int] = [0]
    private(set) var readers: [Int] = []

    init(inputs: Int, outputs: Int, kernel: Int, stride: Int, pad: Int, dilation: Int) {
        self.inputs = inputs
        self.outputs = outputs
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
    func readers(_ i: Int) -> ArraySlice<Int> { readers[readerStart[i]..<readerStart[i + 1]] }
}

/// A conv's window geometry on both axes and the two mask mappings a skip layer needs each frame, done separably
/// (rows, then columns) and only on rows that can hold a set position.
struct WindowMap {
    let rows: AxisMap
    let columns: AxisMap
    private var rowHits: [UInt8]
    private var rowAny: [Bool]

    init(_ p: Conv2DParams) {
        rows = AxisMap(
            inputs: p.inH, outputs: p.outH, kernel: p.kH, stride: p.strideH, pad: p.padTop, dilation: p.dilationH)
        columns = AxisMap(
            inputs: p.inW, outputs: p.outW, kernel: p.kW, stride: p.strideW, pad: p.padLeft, dilation: p.dilationW)
        rowHits = Array(repeating: 0, count: max(p.inH * p.outW, p.outH * p.inW))
        rowAny = Array(repeating: false, count: max(p.inH, p.outH))
    }

    /// `output` = outputs whose window holds a position of `input` (the footprint of a change).
    mutating func footprint(of input: SpatialMask, into output: SpatialMask) {
        output.clear()
        if input.isEmpty { return }
        let (inW, outW, outH) = (columns.inputs, columns.outputs, rows.outputs)
        let rows = rows
        let columns = columns
        rowHits.withUnsafeMutableBufferPointer { hits in
            rowAny.withUnsafeMutableBufferPointer { any in
                input.bits.withUnsafeBufferPointer { src in
                    for iy in 0..<rows.inputs {
                        var rowHasAny = false
                        for ox in 0..<outW {
                            var hit: UInt8 = 0
                            for ix in columns.window(ox) { hit |= src[iy * inW + ix] }
                            hits[iy * outW + ox] = hit
                            if hit != 0 { rowHasAny = true }
                        }
                        any[iy] = rowHasAny
                    }
                }
                output.withBits { dst in
                    for oy in 0..<outH {
                        for iy in rows.window(oy) where any[iy] {
                            for ox in 0..<outW { dst[oy * outW + ox] |= hits[iy * outW + ox] }
                        }
                    }
                }
            }
        }
    }

    /// `commit` = inputs every reader of which is in `active` (and that have a reader): the largest set whose
    /// change can be folded into the reference without any inactive output going stale (ALGORITHMS.md §1).
    mutating func committable(_ active: SpatialMask, into commit: SpatialMask) {
        commit.clear()
        if active.isEmpty { return }
        let (inW, outW) = (columns.inputs, columns.outputs)
        let rows = rows
        let columns = columns
        if active.isFull {
            commit.withBits { dst in
                for iy in 0..<rows.inputs where !rows.readers(iy).isEmpty {
                    for ix in 0..<columns.inputs where !columns.readers(ix).isEmpty {
                        dst[iy * columns.inputs + ix] = 1
                    }
                }
            }
            return
        }
        rowHits.withUnsafeMutableBufferPointer { all in
            rowAny.withUnsafeMutableBufferPointer { any in
                active.bits.withUnsafeBufferPointer { a in
                    // all[oy][ix]: every reader column of ix is active in output row oy.
                    for oy in 0..<rows.outputs {
                        var rowHasAny = false
                        for ox in 0..<outW where a[oy * outW + ox] != 0 {
                            rowHasAny = true
                            break
                        }
                        any[oy] = rowHasAny
                        guard rowHasAny else { continue }
                        for ix in 0..<inW {
                            let readers = columns.readers(ix)
                            var ok: UInt8 = readers.isEmpty ? 0 : 1
                            for ox in readers { ok &= a[oy * outW + ox] }
                            all[oy * inW + ix] = ok
                        }
                    }
                }
                commit.withBits { dst in
                    for iy in 0..<rows.inputs {
                        let readers = rows.readers(iy)
                        guard !readers.isEmpty, readers.allSatisfy({ any[$0] }) else { continue }
                        for ix in 0..<inW {
                            var ok: UInt8 = 1
                            for oy in readers { ok &= all[oy * inW + ix] }
                            dst[iy * inW + ix] = ok
                        }
                    }
                }
            }
        }
    }
}
