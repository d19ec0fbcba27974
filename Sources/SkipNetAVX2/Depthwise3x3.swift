// Depthwise 3×3 convolution (dilation 1, stride 1 or 2) with 8-lane FMA. Stride-1 rows inside the image run as one
// flat loop over the plane; the other rows are first copied into a ring of three zero-padded (stride 1) or
// even/odd-split (stride 2) rows, so every output column is a plain vector step and rows outside the image read a
// zero row.

extension AVX2Kernels {
    /// One depthwise 3×3 conv over `channels` of one image, all output rows. `inPlane`/`outPlane`: channel strides
    /// (a band of rows inside a larger buffer has planes longer than `inH·inW`). Stride 2 needs `outW >= 8`.
    public static func depthwise3x3(
        inH: Int, inW: Int, outH: Int, outW: Int, stride: Int, padTop: Int, padLeft: Int,
        input: UnsafePointer<Float>, inPlane: Int, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, outPlane: Int, channels: Range<Int>, clamp: Clamp
    ) {
        precondition(stride == 1 || (stride == 2 && outW >= 8), "AVX2 depthwise3x3: stride 1, or 2 with outW >= 8")
        let g = Geometry(inH: inH, inW: inW, outH: outH, outW: outW, padTop: padTop, padLeft: padLeft)
        // Row buffers, zeroed once per call: a band holds only a few rows per channel, so per-channel set-up would
        // cost as much as the arithmetic.
        let count = stride == 1 ? stride1ScratchCount(g) : stride2ScratchCount(g)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: count) { buf in
            let scratch = buf.baseAddress!
            scratch.initialize(repeating: 0, count: count)
            for ch in channels {
                let (w, b) = (weight + ch * 9, bias?[ch] ?? 0)
                let x = input + ch * inPlane
                let y = output + ch * outPlane
                if stride == 1 {
                    stride1(g, x, y, w, b, clamp, scratch)
                } else {
                    stride2(g, x, y, w, b, clamp, scratch)
                }
            }
        }
    }

    struct Geometry {
        var inH: Int, inW: Int, outH: Int, outW: Int, padTop: Int, padLeft: Int
    }

    /// Which input row each of three ring slots holds: row iy lives in slot iy mod 3 (an output row reads three
    /// consecutive input rows, so they never share a slot).
    struct RowRing {
        private var held = (-1, -1, -1)

        /// The slot of row `iy`, and whether it must be filled first (it holds another row, or none yet).
        mutating func slot(_ iy: Int) -> (k: Int, fill: Bool) {
            let k = iy % 3
            let cached = k == 0 ? held.0 : (k == 1 ? held.1 : held.2)
            if cached == iy { return (k, false) }
            if k == 0 { held.0 = iy } else if k == 1 { held.1 = iy } else { held.2 = iy }
            return (k, true)
        }
    }

    /// Stride 1: output column ox reads input columns ox − padLeft + {0, 1, 2}. Each input row is copied once into a
    /// ring of three zero-padded rows, `P[j] = row[j − padLeft]`, so every output column is one vector step over
    /// `P[ox]`, `P[ox + 1]`, `P[ox + 2]` — no scalar border path (narrow deep layers have 2 border columns in 24).
    static func stride1ScratchCount(_ g: Geometry) -> Int { 4 * (Swift.max(g.outW, 8) + 2) + 8 }

    static func stride1(
        _ g: Geometry, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ w: UnsafePointer<Float>,
        _ b: Float, _ clamp: Clamp, _ base: UnsafeMutablePointer<Float>
    ) {
        let outW = g.outW
        let inW = g.inW
        let padL = g.padLeft
        let len = Swift.max(outW, 8) + 2
        // Columns of P that hold input (the rest stay zero).
        let (lo, hi) = (Swift.min(len, Swift.max(0, padL)), Swift.max(0, Swift.min(len, inW + padL)))
        let zero = UnsafePointer(base + 3 * len)
        let spill = base + 4 * len  // an 8-lane result for rows narrower than 8
        var ring = RowRing()
        func padded(_ iy: Int) -> UnsafePointer<Float> {
            if iy < 0 || iy >= g.inH { return zero }
            let (k, fill) = ring.slot(iy)
            let row = base + k * len
            if fill && lo < hi { (row + lo).update(from: x + iy * inW + lo - padL, count: hi - lo) }
            return UnsafePointer(row)
        }
        // Rows whose three input rows are all in the image run as one flat loop (see `flat`); the rest use the ring.
        var (flatLo, flatHi) = (0, 0)
        if padL == 1 && inW == outW && outW >= 8 {
            flatLo = Swift.min(g.outH, Swift.max(0, g.padTop))
            flatHi = Swift.max(flatLo, Swift.min(g.outH, g.inH - 2 + g.padTop))
            if flatHi > flatLo { flat(g, x, y, w, b, clamp, rows: flatLo..<flatHi) }
        }
        for oy in 0..<g.outH where oy < flatLo || oy >= flatHi {
            let iy = oy - g.padTop
            let (r0, r1, r2) = (padded(iy), padded(iy + 1), padded(iy + 2))
            let out = y + oy * outW
            if outW >= 8 {
                row(r0, r0 + 1, r0 + 2, r1, r1 + 1, r1 + 2, r2, r2 + 1, r2 + 2, out, outW, w, b, clamp)
            } else {
                // Rows narrower than a vector: one vector over the zero-padded rows, then the valid part.
                row(r0, r0 + 1, r0 + 2, r1, r1 + 1, r1 + 2, r2, r2 + 1, r2 + 2, spill, 8, w, b, clamp)
                out.update(from: spill, count: outW)
            }
        }
    }

    /// Stride 1 with one column of padding each side, output `rows` whose input rows are all inside the image: the
    /// rows are contiguous in both planes, so output k of the run (row-major) reads input k − 1 + {0, 1, 2} of each
    /// of the three row runs — one `row` call covers all of them (narrow deep layers have 24 columns a row: a call
    /// per row would spend more on set-up than on arithmetic). That wraps only at the two border columns of each
    /// row, which are then recomputed with their zero taps. The run's first and last outputs are such columns, so
    /// no read leaves the planes.
    static func flat(
        _ g: Geometry, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ w: UnsafePointer<Float>,
        _ b: Float, _ clamp: Clamp, rows: Range<Int>
    ) {
        let width = g.inW
        let r0 = x + (rows.lowerBound - g.padTop) * width
        let (r1, r2) = (r0 + width, r0 + 2 * width)
        let out = y + rows.lowerBound * width
        row(r0, r0 + 1, r0 + 2, r1, r1 + 1, r1 + 2, r2, r2 + 1, r2 + 2, out + 1, rows.count * width - 2, w, b, clamp)
        for k in 0..<rows.count {
            let (a, c, o) = (r0 + k * width, width - 1, out + k * width)
            // Column 0 lacks its left taps, column width − 1 its right taps.
            o[0] = clamp.apply(
                b + w[1] * a[0] + w[2] * a[1] + w[4] * a[width] + w[5] * a[width + 1] + w[7] * a[2 * width]
                    + w[8] * a[2 * width + 1])
            o[c] = clamp.apply(
                b + w[0] * a[c - 1] + w[1] * a[c] + w[3] * a[width + c - 1] + w[4] * a[width + c]
                    + w[6] * a[2 * width + c - 1] + w[7] * a[2 * width + c])
        }
    }

    /// Stride 2: each input row is split once into its even and odd columns, `E[j] = row[2j − padLeft]` and
    /// `O[j] = row[2j + 1 − padLeft]` (zero outside the row), kept in a ring of three (consecutive output rows share
    /// an input row); output column ox then reads `E[ox]`, `O[ox]`, `E[ox + 1]`, all plain loads.
    static func stride2ScratchCount(_ g: Geometry) -> Int { 8 * (g.outW + 16) }

    static func stride2(
        _ g: Geometry, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ w: UnsafePointer<Float>,
        _ b: Float, _ clamp: Clamp, _ base: UnsafeMutablePointer<Float>
    ) {
        let inW = g.inW
        let outW = g.outW
        let padL = g.padLeft
        let half = outW + 16
        let slot = 2 * half
        let zeroE = UnsafePointer(base + 3 * slot)
        let zeroO = zeroE + half
        var ring = RowRing()
        func split(_ iy: Int) -> (UnsafePointer<Float>, UnsafePointer<Float>) {
            if iy < 0 || iy >= g.inH { return (zeroE, zeroO) }
            let (k, fill) = ring.slot(iy)
            let e = base + k * slot
            let o = e + half
            if fill { splitByParity(x + iy * inW, width: inW, from: -padL, through: outW, even: e, odd: o) }
            return (UnsafePointer(e), UnsafePointer(o))
        }
        splitRows(outH: g.outH, padTop: g.padTop, y, outW, w, b, clamp, split: split)
    }

    /// `even[j] = row[start + 2j]`, `odd[j] = row[start + 2j + 1]` for j in 0 ... n, zero outside `0 ..< width`: the
    /// taps of a stride-2 3×3 conv as plain vector loads. Vector steps may write up to 7 floats past n.
    @inline(__always)
    static func splitByParity(
        _ row: UnsafePointer<Float>, width: Int, from start: Int, through n: Int, even e: UnsafeMutablePointer<Float>,
        odd o: UnsafeMutablePointer<Float>
    ) {
        var j = 0
        while j <= n {
            let i = start + 2 * j
            if i >= 0 && i + 16 <= width {
                let v = UnsafeRawPointer(row + i).loadUnaligned(as: SIMD16<Float>.self)
                store8(v.evenHalf, e + j)
                store8(v.oddHalf, o + j)
                j += 8
            } else {
                e[j] = i >= 0 && i < width ? row[i] : 0
                o[j] = i + 1 >= 0 && i + 1 < width ? row[i + 1] : 0
                j += 1
            }
        }
    }

    /// The output rows of one channel at stride 2 from input rows split by column parity: `split(iy)` gives the E
    /// and O rows of input row iy (zero rows outside the image); output column ox reads E[ox], O[ox], E[ox + 1].
    @inline(__always)
    static func splitRows(
        outH: Int, padTop: Int, _ y: UnsafeMutablePointer<Float>, _ outW: Int, _ w: UnsafePointer<Float>,
        _ b: Float, _ clamp: Clamp, split: (Int) -> (UnsafePointer<Float>, UnsafePointer<Float>)
    ) {
        for oy in 0..<outH {
            let iy = oy * 2 - padTop
            let (e0, o0) = split(iy)
            let (e1, o1) = split(iy + 1)
            let (e2, o2) = split(iy + 2)
            row(e0, o0, e0 + 1, e1, o1, e1 + 1, e2, o2, e2 + 1, y + oy * outW, outW, w, b, clamp)
        }
    }

    /// Floats of one input row as `depthwise3x3Split` reads it: E then O, `outW + 1` each.
    public static func splitRowCount(outW: Int) -> Int { 2 * (outW + 1) }

    /// A stride-2 depthwise 3×3 with one column of left padding over rows already split by column parity (by
    /// `pointwiseSplit`): input row iy of channel c starts at `input + c·inPlane + iy·splitRowCount(outW)` and holds
    /// `E[j] = row[2j − 1]` (E[0] = 0) then `O[j] = row[2j]`, j ≤ outW; output column ox reads E[ox], O[ox], E[ox + 1].
    /// Rows outside `0 ..< inH` read zero. `outW >= 8`.
    public static func depthwise3x3Split(
        inH: Int, outH: Int, outW: Int, padTop: Int, input: UnsafePointer<Float>, inPlane: Int,
        weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, outPlane: Int,
        channels: Range<Int>, clamp: Clamp
    ) {
        precondition(outW >= 8, "AVX2 depthwise3x3Split: outW >= 8")
        let pitch = splitRowCount(outW: outW)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: pitch) { zeros in
            let zero = UnsafePointer(zeros.baseAddress!)
            zeros.initialize(repeating: 0)
            for ch in channels {
                let (w, b) = (weight + ch * 9, bias?[ch] ?? 0)
                let x = input + ch * inPlane
                let y = output + ch * outPlane
                splitRows(outH: outH, padTop: padTop, y, outW, w, b, clamp) { iy in
                    let e = iy >= 0 && iy < inH ? x + iy * pitch : zero
                    return (e, e + outW + 1)
                }
            }
        }
    }

    /// One output row (`outW >= 8`): `out[ox] = clamp(b + Σ w_k · p_k[ox])` over the nine tap rows `p`.
    /// Not inlined on purpose: inlined into the ring bookkeeping, LLVM's SLP vectorizer re-splits the 8-lane FMAs
    /// over overlapping loads into 4-lane pieces and shuffles (3× slower, measured).
    @inline(never)
    static func row(
        _ p0: UnsafePointer<Float>, _ p1: UnsafePointer<Float>, _ p2: UnsafePointer<Float>,
        _ p3: UnsafePointer<Float>, _ p4: UnsafePointer<Float>, _ p5: UnsafePointer<Float>,
        _ p6: UnsafePointer<Float>, _ p7: UnsafePointer<Float>, _ p8: UnsafePointer<Float>,
        _ out: UnsafeMutablePointer<Float>, _ outW: Int, _ w: UnsafePointer<Float>, _ b: Float, _ clamp: Clamp
    ) {
        // Broadcasts made here from scalars: F8 values passed in a struct reach LLVM as float arrays, which it
        // then reassembles from 4-lane halves inside the loop.
        let (v0, v1, v2) = (F8(repeating: w[0]), F8(repeating: w[1]), F8(repeating: w[2]))
        let (v3, v4, v5) = (F8(repeating: w[3]), F8(repeating: w[4]), F8(repeating: w[5]))
        let (v6, v7, v8) = (F8(repeating: w[6]), F8(repeating: w[7]), F8(repeating: w[8]))
        let vb = F8(repeating: b)
        let cv = ClampVector(clamp)
        var ox = 0
        while ox < outW {
            // The last vector may overlap the one before it: same inputs, same values.
            let o = Swift.min(ox, outW - 8)
            var a = vb
            a.addProduct(v0, load8(p0 + o))
            a.addProduct(v1, load8(p1 + o))
            a.addProduct(v2, load8(p2 + o))
            var c = v3 * load8(p3 + o)
            c.addProduct(v4, load8(p4 + o))
            c.addProduct(v5, load8(p5 + o))
            a.addProduct(v6, load8(p6 + o))
            c.addProduct(v7, load8(p7 + o))
            a.addProduct(v8, load8(p8 + o))
            store8(clamp8(a + c, cv), out + o)
            ox = o + 8
        }
    }
}
