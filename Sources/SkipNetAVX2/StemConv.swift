// A CNN's first conv — 3×3, stride 2, one pixel of top/left padding, a few input channels (CenterFace's Conv_0:
// 3 → 32 channels) — computed straight from its input rows. As an im2col GEMM it has K = 27, so each output costs
// 27 copies into the column matrix and, on a sparse set of runs, a copy out of the product: more memory traffic
// than arithmetic. Here each input row a run reads is split once by column parity (the stride-2 taps become plain
// vector loads) and the outputs are stored where they belong.

extension AVX2Kernels {
    /// Floats `packStem` writes for `outC` filters over `inC` channels.
    public static func stemPackedCount(inC: Int, outC: Int) -> Int { (outC + 3) / 4 * inC * 9 * 4 }

    /// Packs 3×3 weights `[outC][inC][3][3]` as `[outC / 4][inC][3][3][4]`: four filters' taps side by side (zero
    /// filters pad the last four).
    public static func packStem(
        _ weight: UnsafePointer<Float>, inC: Int, outC: Int, into packed: UnsafeMutablePointer<Float>
    ) {
        for g in 0..<(outC + 3) / 4 {
            for t in 0..<inC * 9 {
                for l in 0..<4 {
                    let o = 4 * g + l
                    packed[(g * inC * 9 + t) * 4 + l] = o < outC ? weight[o * inC * 9 + t] : 0
                }
            }
        }
    }

    /// Scratch floats `stemRun` needs for runs of up to `n` outputs over `inC` channels.
    public static func stemScratchCount(inC: Int, n: Int) -> Int { inC * 3 * stemPitch(n) + 8 * 4 }

    /// Floats of one split input row (E then O) for runs of up to `n` outputs, with room for a last vector.
    static func stemPitch(_ n: Int) -> Int { 2 * (n + 16) }

    /// Outputs `(oy, x0 ..< x0 + n)` of every channel of a 3×3 stride-2 conv with one pixel of top and left padding:
    /// `out[o] = clamp(bias[o] + Σ w[o][c][ky][kx] · in[c][2·oy − 1 + ky][2·ox − 1 + kx])`, zero outside the image,
    /// stored at `output + o·outPlane + (ox − x0)`. `packed`: by `packStem`. `scratch`: `stemScratchCount` floats.
    public static func stemRun(
        input: UnsafePointer<Float>, inC: Int, inH: Int, inW: Int, inPlane: Int, oy: Int, x0: Int, n: Int,
        packed: UnsafePointer<Float>, bias: UnsafePointer<Float>?, outC: Int, output: UnsafeMutablePointer<Float>,
        outPlane: Int, clamp: Clamp, scratch: UnsafeMutablePointer<Float>
    ) {
        let pitch = stemPitch(n)
        // Row (c, ky): E[j] = row[2(x0 + j) − 1], O[j] = row[2(x0 + j)], j ≤ n; output j reads E[j], O[j], E[j + 1].
        for c in 0..<inC {
            for ky in 0..<3 {
                let e = scratch + (c * 3 + ky) * pitch
                let o = e + n + 16
                let iy = 2 * oy - 1 + ky
                if iy < 0 || iy >= inH {
                    e.update(repeating: 0, count: pitch)
                    continue
                }
                splitByParity(
                    input + c * inPlane + iy * inW, width: inW, from: 2 * x0 - 1, through: n, even: e, odd: o)
            }
        }
        let spill = scratch + inC * 3 * pitch
        let cv = ClampVector(clamp)
        for g in 0..<(outC + 3) / 4 {
            let w = packed + g * inC * 9 * 4
            let channels = Swift.min(4, outC - 4 * g)
            let out = output + 4 * g * outPlane
            if n < 8 {
                // Narrower than a vector: one vector into `spill`, then the valid part.
                stemBlock8(scratch, pitch: pitch, n: n, taps: inC * 3, w, bias, 4 * g, channels, 0, spill, 8, cv)
                for l in 0..<channels { (out + l * outPlane).update(from: spill + l * 8, count: n) }
                continue
            }
            // The last block may overlap the one before it: same inputs, same values.
            let width = n >= 16 ? 16 : 8
            var j = 0
            while j < n {
                let j0 = Swift.min(j, n - width)
                if width == 16 {
                    stemBlock16(
                        scratch, pitch: pitch, n: n, taps: inC * 3, w, bias, 4 * g, channels, j0, out, outPlane, cv)
                } else {
                    stemBlock8(
                        scratch, pitch: pitch, n: n, taps: inC * 3, w, bias, 4 * g, channels, j0, out, outPlane, cv)
                }
                j = j0 + width
            }
        }
    }

    /// Four filters × 16 outputs `j0 ..< j0 + 16` over the split rows.
    @inline(never)
    static func stemBlock16(
        _ split: UnsafePointer<Float>, pitch: Int, n: Int, taps: Int, _ w: UnsafePointer<Float>,
        _ bias: UnsafePointer<Float>?, _ o0: Int, _ channels: Int, _ j0: Int, _ out: UnsafeMutablePointer<Float>,
        _ outPlane: Int, _ cv: ClampVector
    ) {
        var a0 = F8(repeating: channels > 0 ? bias?[o0] ?? 0 : 0), b0 = a0
        var a1 = F8(repeating: channels > 1 ? bias?[o0 + 1] ?? 0 : 0), b1 = a1
        var a2 = F8(repeating: channels > 2 ? bias?[o0 + 2] ?? 0 : 0), b2 = a2
        var a3 = F8(repeating: channels > 3 ? bias?[o0 + 3] ?? 0 : 0), b3 = a3
        var wp = w
        for t in 0..<taps {
            let e = split + t * pitch + j0
            let o = e + n + 16
            for kx in 0..<3 {
                let p = kx == 0 ? e : (kx == 1 ? o : e + 1)
                let (x0, x1) = (load8(p), load8(p + 8))
                var s = F8(repeating: wp[0])
                a0.addProduct(s, x0)
                b0.addProduct(s, x1)
                s = F8(repeating: wp[1])
                a1.addProduct(s, x0)
                b1.addProduct(s, x1)
                s = F8(repeating: wp[2])
                a2.addProduct(s, x0)
                b2.addProduct(s, x1)
                s = F8(repeating: wp[3])
                a3.addProduct(s, x0)
                b3.addProduct(s, x1)
                wp += 4
            }
        }
        let y = out + j0
        store8(clamp8(a0, cv), y)
        store8(clamp8(b0, cv), y + 8)
        if channels > 1 {
            store8(clamp8(a1, cv), y + outPlane)
            store8(clamp8(b1, cv), y + outPlane + 8)
        }
        if channels > 2 {
            store8(clamp8(a2, cv), y + 2 * outPlane)
            store8(clamp8(b2, cv), y + 2 * outPlane + 8)
        }
        if channels > 3 {
            store8(clamp8(a3, cv), y + 3 * outPlane)
            store8(clamp8(b3, cv), y + 3 * outPlane + 8)
        }
    }

    /// Four filters × 8 outputs `j0 ..< j0 + 8`.
    @inline(never)
    static func stemBlock8(
        _ split: UnsafePointer<Float>, pitch: Int, n: Int, taps: Int, _ w: UnsafePointer<Float>,
        _ bias: UnsafePointer<Float>?, _ o0: Int, _ channels: Int, _ j0: Int, _ out: UnsafeMutablePointer<Float>,
        _ outPlane: Int, _ cv: ClampVector
    ) {
        var a0 = F8(repeating: channels > 0 ? bias?[o0] ?? 0 : 0)
        var a1 = F8(repeating: channels > 1 ? bias?[o0 + 1] ?? 0 : 0)
        var a2 = F8(repeating: channels > 2 ? bias?[o0 + 2] ?? 0 : 0)
        var a3 = F8(repeating: channels > 3 ? bias?[o0 + 3] ?? 0 : 0)
        var wp = w
        for t in 0..<taps {
            let e = split + t * pitch + j0
            let o = e + n + 16
            for kx in 0..<3 {
                let x = load8(kx == 0 ? e : (kx == 1 ? o : e + 1))
                a0.addProduct(F8(repeating: wp[0]), x)
                a1.addProduct(F8(repeating: wp[1]), x)
                a2.addProduct(F8(repeating: wp[2]), x)
                a3.addProduct(F8(repeating: wp[3]), x)
                wp += 4
            }
        }
        let y = out + j0
        store8(clamp8(a0, cv), y)
        if channels > 1 { store8(clamp8(a1, cv), y + outPlane) }
        if channels > 2 { store8(clamp8(a2, cv), y + 2 * outPlane) }
        if channels > 3 { store8(clamp8(a3, cv), y + 3 * outPlane) }
    }
}
