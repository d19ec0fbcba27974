// Depthwise 3×3 convolution (dilation 1, stride 1 or 2) with 8-lane FMA: the nine weights stay in registers, rows
// outside the image read a zero row, and only the border columns run scalar.

extension AVX2Kernels {
    /// One depthwise 3×3 conv over `channels` of one image, all output rows. `inPlane`/`outPlane`: channel strides
    /// (a band of rows inside a larger buffer has planes longer than `inH·inW`). Stride 2 needs `outW >= 8`.
    public static func depthwise3x3(
        inH: Int, inW: Int, outH: Int, outW: Int, stride: Int, padTop: Int, padLeft: Int,
        input: UnsafePointer<Float>, inPlane: Int, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, outPlane: Int, channels: Range<Int>, clamp: Clamp
    ) {
        precondition(stride == 1 || (stride == 2 && outW >= 8), "AVX2 depthwise3x3: stride 1, or 2 with outW >= 8")
        let geometry = Geometry(inH: inH, inW: inW, outH: outH, outW: outW, padTop: padTop, padLeft: padLeft)
        for ch in channels {
            let taps = Taps(weight + ch * 9, bias: bias?[ch] ?? 0)
            let x = input + ch * inPlane
            let y = output + ch * outPlane
            if stride == 1 {
                stride1(geometry, x, y, taps, clamp)
            } else {
                stride2(geometry, x, y, taps, clamp)
            }
        }
    }

    struct Geometry {
        var inH: Int, inW: Int, outH: Int, outW: Int, padTop: Int, padLeft: Int
    }

    /// The nine weights and the bias, as scalars and as 8-lane broadcasts.
    struct Taps {
        let w: (Float, Float, Float, Float, Float, Float, Float, Float, Float)
        let v: (F8, F8, F8, F8, F8, F8, F8, F8, F8)
        let b: Float

        init(_ p: UnsafePointer<Float>, bias: Float) {
            w = (p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8])
            v = (
                F8(repeating: p[0]), F8(repeating: p[1]), F8(repeating: p[2]), F8(repeating: p[3]),
                F8(repeating: p[4]), F8(repeating: p[5]), F8(repeating: p[6]), F8(repeating: p[7]),
                F8(repeating: p[8])
            )
            b = bias
        }

        /// Σ taps over three rows of inputs at columns `t0 + j`, `t1 + j`, `t2 + j` (j = 0 ..< 8).
        @inline(__always)
        func vector(
            _ r0: UnsafePointer<Float>, _ r1: UnsafePointer<Float>, _ r2: UnsafePointer<Float>, _ t0: Int, _ t1: Int,
            _ t2: Int
        ) -> F8 {
            var a = F8(repeating: b)
            a.addProduct(v.0, load8(r0 + t0))
            a.addProduct(v.1, load8(r0 + t1))
            a.addProduct(v.2, load8(r0 + t2))
            var c = v.3 * load8(r1 + t0)
            c.addProduct(v.4, load8(r1 + t1))
            c.addProduct(v.5, load8(r1 + t2))
            a.addProduct(v.6, load8(r2 + t0))
            c.addProduct(v.7, load8(r2 + t1))
            a.addProduct(v.8, load8(r2 + t2))
            return a + c
        }
    }

    /// Stride 1: output column ox reads input columns ox − padLeft + {0, 1, 2}.
    static func stride1(
        _ g: Geometry, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ t: Taps, _ clamp: Clamp
    ) {
        let cv = ClampVector(clamp)
        let inW = g.inW
        let padL = g.padLeft
        // Interior ox: all three taps inside [0, inW).
        let intHi = Swift.max(0, Swift.min(g.outW, inW - 2 + padL))
        let intLo = Swift.min(padL, intHi)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: inW + 16) { zbuf in
            let zero = UnsafePointer(zbuf.baseAddress!)
            zbuf.baseAddress!.initialize(repeating: 0, count: inW + 16)
            for oy in 0..<g.outH {
                let iy = oy - g.padTop
                let r0 = iy >= 0 && iy < g.inH ? x + iy * inW : zero
                let r1 = iy + 1 >= 0 && iy + 1 < g.inH ? x + (iy + 1) * inW : zero
                let r2 = iy + 2 >= 0 && iy + 2 < g.inH ? x + (iy + 2) * inW : zero
                let row = y + oy * g.outW
                @inline(__always) func scalar(_ ox: Int) {
                    let i = ox - padL
                    @inline(__always) func tap(_ r: UnsafePointer<Float>, _ ix: Int) -> Float {
                        ix >= 0 && ix < inW ? r[ix] : 0
                    }
                    var s = t.b + t.w.0 * tap(r0, i) + t.w.1 * tap(r0, i + 1) + t.w.2 * tap(r0, i + 2)
                    s += t.w.3 * tap(r1, i) + t.w.4 * tap(r1, i + 1) + t.w.5 * tap(r1, i + 2)
                    s += t.w.6 * tap(r2, i) + t.w.7 * tap(r2, i + 1) + t.w.8 * tap(r2, i + 2)
                    row[ox] = clamp.apply(s)
                }
                var ox = 0
                if intHi - intLo >= 8 {
                    while ox < intLo {
                        scalar(ox)
                        ox += 1
                    }
                    while ox + 16 <= intHi {
                        let i = ox - padL
                        let a = t.vector(r0, r1, r2, i, i + 1, i + 2)
                        let b = t.vector(r0, r1, r2, i + 8, i + 9, i + 10)
                        store8(clamp8(a, cv), row + ox)
                        store8(clamp8(b, cv), row + ox + 8)
                        ox += 16
                    }
                    while ox < intHi {
                        // The last vector may overlap the one before it: same inputs, same values.
                        let o = Swift.min(ox, intHi - 8)
                        let i = o - padL
                        store8(clamp8(t.vector(r0, r1, r2, i, i + 1, i + 2), cv), row + o)
                        ox = o + 8
                    }
                }
                while ox < g.outW {
                    scalar(ox)
                    ox += 1
                }
            }
        }
    }

    /// Stride 2: each input row is split once into its even and odd columns, `E[j] = row[2j − padLeft]` and
    /// `O[j] = row[2j + 1 − padLeft]` (zero outside the row), kept in a ring of three (consecutive output rows share
    /// an input row); output column ox then reads `E[ox]`, `O[ox]`, `E[ox + 1]`, all plain loads.
    static func stride2(
        _ g: Geometry, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ t: Taps, _ clamp: Clamp
    ) {
        let cv = ClampVector(clamp)
        let inW = g.inW
        let outW = g.outW
        let padL = g.padLeft
        let half = outW + 16
        let slot = 2 * half
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 4 * slot) { buf in
            let base = buf.baseAddress!
            base.initialize(repeating: 0, count: 4 * slot)
            let zeroE = UnsafePointer(base + 3 * slot)
            let zeroO = zeroE + half
            var held = (-1, -1, -1)
            func split(_ iy: Int) -> (UnsafePointer<Float>, UnsafePointer<Float>) {
                if iy < 0 || iy >= g.inH { return (zeroE, zeroO) }
                let k = iy % 3
                let e = base + k * slot
                let o = e + half
                let cached = k == 0 ? held.0 : (k == 1 ? held.1 : held.2)
                if cached != iy {
                    let r = x + iy * inW
                    var j = 0
                    while j <= outW {
                        let i = 2 * j - padL
                        if i >= 0 && i + 16 <= inW {
                            let v = UnsafeRawPointer(r + i).loadUnaligned(as: SIMD16<Float>.self)
                            store8(v.evenHalf, e + j)
                            store8(v.oddHalf, o + j)
                            j += 8
                        } else {
                            e[j] = i >= 0 && i < inW ? r[i] : 0
                            o[j] = i + 1 >= 0 && i + 1 < inW ? r[i + 1] : 0
                            j += 1
                        }
                    }
                    if k == 0 { held.0 = iy } else if k == 1 { held.1 = iy } else { held.2 = iy }
                }
                return (UnsafePointer(e), UnsafePointer(o))
            }
            for oy in 0..<g.outH {
                let iy = oy * 2 - g.padTop
                let (e0, o0) = split(iy)
                let (e1, o1) = split(iy + 1)
                let (e2, o2) = split(iy + 2)
                let row = y + oy * outW
                // Each tap row is E or O of one input row: E[ox], O[ox], E[ox+1] → three row pointers per tap column.
                @inline(__always) func at(_ ox: Int) -> F8 {
                    var a = F8(repeating: t.b)
                    a.addProduct(t.v.0, load8(e0 + ox))
                    a.addProduct(t.v.1, load8(o0 + ox))
                    a.addProduct(t.v.2, load8(e0 + ox + 1))
                    var c = t.v.3 * load8(e1 + ox)
                    c.addProduct(t.v.4, load8(o1 + ox))
                    c.addProduct(t.v.5, load8(e1 + ox + 1))
                    a.addProduct(t.v.6, load8(e2 + ox))
                    c.addProduct(t.v.7, load8(o2 + ox))
                    a.addProduct(t.v.8, load8(e2 + ox + 1))
                    return a + c
                }
                var ox = 0
                while ox < outW {
                    let o = Swift.min(ox, outW - 8)
                    store8(clamp8(at(o), cv), row + o)
                    ox = o + 8
                }
            }
        }
    }
}
