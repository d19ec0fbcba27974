// MaxPool, AveragePool, GlobalAveragePool / GlobalMaxPool over NCHW.

/// Geometry of a 2D pooling window (per plane). `outH`/`outW` come from the caller (ceil_mode / auto_pad are the
/// caller's job). Pads are begin/end per axis; the end pads only matter for AveragePool with count_include_pad,
/// whose divisor counts padded cells up to the padded border (onnxruntime semantics).
public struct Pool2DParams: Sendable, Equatable {
    public var inH: Int, inW: Int, outH: Int, outW: Int
    public var kH: Int, kW: Int
    public var strideH: Int, strideW: Int
    public var padTop: Int, padLeft: Int, padBottom: Int, padRight: Int
    public var dilationH: Int, dilationW: Int

    public init(
        inH: Int, inW: Int, outH: Int, outW: Int, kH: Int, kW: Int, strideH: Int = 1, strideW: Int = 1,
        padTop: Int = 0, padLeft: Int = 0, padBottom: Int = 0, padRight: Int = 0, dilationH: Int = 1,
        dilationW: Int = 1
    ) {
        self.inH = inH
        self.inW = inW
        self.outH = outH
        self.outW = outW
        self.kH = kH
        self.kW = kW
        self.strideH = strideH
        self.strideW = strideW
        self.padTop = padTop
        self.padLeft = padLeft
        self.padBottom = padBottom
        self.padRight = padRight
        self.dilationH = dilationH
        self.dilationW = dilationW
    }

    /// ONNX pooled size for one axis, with ceil_mode (a window must start inside the input or left padding).
    public static func outputSize(
        input: Int, kernel: Int, stride: Int, padBegin: Int, padEnd: Int, dilation: Int = 1, ceilMode: Bool
    ) -> Int {
        let span = input + padBegin + padEnd - ((kernel - 1) * dilation + 1)
        if !ceilMode { return span / stride + 1 }
        var out = (span + stride - 1) / stride + 1
        if (out - 1) * stride >= input + padBegin { out -= 1 }
        return out
    }
}

extension Kernels {
    /// MaxPool over `planes` (= N·C) planes; padding never wins (treated as −∞).
    public static func maxPool2d(
        _ p: Pool2DParams, planes: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>
    ) {
        if p.strideH == 1, p.strideW == 1, p.dilationH == 1, p.dilationW == 1 {
            maxPool2dSeparable(p, planes: planes, input: input, output: output)
            return
        }
        for pl in 0..<planes {
            let x = input + pl * p.inH * p.inW
            let y = output + pl * p.outH * p.outW
            for oy in 0..<p.outH {
                let iy0 = oy * p.strideH - p.padTop
                for ox in 0..<p.outW {
                    let ix0 = ox * p.strideW - p.padLeft
                    var m = -Float.infinity
                    for ky in 0..<p.kH {
                        let iy = iy0 + ky * p.dilationH
                        if iy < 0 || iy >= p.inH { continue }
                        let row = x + iy * p.inW
                        for kx in 0..<p.kW {
                            let ix = ix0 + kx * p.dilationW
                            if ix >= 0 && ix < p.inW { m = Swift.max(m, row[ix]) }
                        }
                    }
                    y[oy * p.outW + ox] = m
                }
            }
        }
    }

    /// Stride-1 max pooling (YOLO's SPPF) as a max along rows, then along columns: kH + kW comparisons per output
    /// instead of kH·kW. Padding never wins a max, so windows are just clipped to the image.
    private static func maxPool2dSeparable(
        _ p: Pool2DParams, planes: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>
    ) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: p.inH * p.outW) { rows in
            let rowMax = rows.baseAddress!
            for pl in 0..<planes {
                let x = input + pl * p.inH * p.inW
                let y = output + pl * p.outH * p.outW
                for iy in 0..<p.inH {
                    let row = x + iy * p.inW
                    for ox in 0..<p.outW {
                        let lo = Swift.max(ox - p.padLeft, 0)
                        let hi = Swift.min(ox - p.padLeft + p.kW, p.inW)
                        var m = -Float.infinity
                        for ix in lo..<hi { m = Swift.max(m, row[ix]) }
                        rowMax[iy * p.outW + ox] = m
                    }
                }
                for oy in 0..<p.outH {
                    let lo = Swift.max(oy - p.padTop, 0)
                    let hi = Swift.min(oy - p.padTop + p.kH, p.inH)
                    let out = y + oy * p.outW
                    out.update(repeating: -.infinity, count: p.outW)
                    for iy in lo..<hi {
                        let source = rowMax + iy * p.outW
                        var ox = 0
                        while ox + 16 <= p.outW {
                            store16(vmax(load16(out + ox), load16(source + ox)), out + ox)
                            ox += 16
                        }
                        while ox < p.outW {
                            out[ox] = Swift.max(out[ox], source[ox])
                            ox += 1
                        }
                    }
                }
            }
        }
    }

    /// AveragePool over `planes` (= N·C) planes (no dilation).
    /// count_include_pad: divisor is the window clipped to the padded extent; else the number of real inputs.
    public static func averagePool2d(
        _ p: Pool2DParams, planes: Int, countIncludePad: Bool, input: UnsafePointer<Float>,
        output: UnsafeMutablePointer<Float>
    ) {
        for pl in 0..<planes {
            let x = input + pl * p.inH * p.inW
            let y = output + pl * p.outH * p.outW
            for oy in 0..<p.outH {
                let hs = oy * p.strideH - p.padTop
                let he = Swift.min(hs + p.kH, p.inH + p.padBottom)
                let hs0 = Swift.max(hs, 0)
                let he0 = Swift.min(he, p.inH)
                for ox in 0..<p.outW {
                    let ws = ox * p.strideW - p.padLeft
                    let we = Swift.min(ws + p.kW, p.inW + p.padRight)
                    let ws0 = Swift.max(ws, 0)
                    let we0 = Swift.min(we, p.inW)
                    var s: Float = 0
                    if he0 > hs0 && we0 > ws0 {
                        for iy in hs0..<he0 {
                            let row = x + iy * p.inW
                            for ix in ws0..<we0 { s += row[ix] }
                        }
                    }
                    let count = countIncludePad ? (he - hs) * (we - ws) : (he0 - hs0) * (we0 - ws0)
                    y[oy * p.outW + ox] = count > 0 ? s / Float(count) : 0
                }
            }
        }
    }

    /// GlobalAveragePool: `output[p] = mean(input[p, :])` for `planes` planes of `spatial` floats.
    public static func globalAveragePool(
        planes: Int, spatial: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>
    ) {
        for pl in 0..<planes {
            output[pl] = sum(input + pl * spatial, spatial) / Float(spatial)
        }
    }

    /// GlobalMaxPool: `output[p] = max(input[p, :])`.
    public static func globalMaxPool(
        planes: Int, spatial: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>
    ) {
        for pl in 0..<planes {
            let x = input + pl * spatial
            var vm = F16(repeating: -.infinity)
            var i = 0
            while i + 16 <= spatial {
                vm = vmax(vm, load16(x + i))
                i += 16
            }
            var m = vm.max()
            while i < spatial {
                m = Swift.max(m, x[i])
                i += 1
            }
            output[pl] = m
        }
    }

    @inline(__always)
    static func sum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = F16(repeating: 0)
        var i = 0
        while i + 16 <= n {
            acc += load16(x + i)
            i += 16
        }
        var s = acc.sum()
        while i < n {
            s += x[i]
            i += 1
        }
        return s
    }
}
