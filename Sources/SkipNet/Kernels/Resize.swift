// Resize / Upsample over the two spatial dims of NCHW tensors (nearest and bilinear), onnxruntime-compatible
// coordinate arithmetic (float32, same formulas, same clamping).

extension Kernels {
    public enum ResizeMode: Sendable, Equatable {
        case nearest(NearestMode)
        /// Bilinear over H and W ("linear" on a 4D tensor with N and C scales 1).
        case linear
    }

    public enum NearestMode: Sendable, Equatable {
        case roundPreferFloor, roundPreferCeil, floor, ceil
    }

    public enum CoordinateTransform: Sendable, Equatable {
        case halfPixel, asymmetric, alignCorners, pytorchHalfPixel, halfPixelSymmetric
    }

    /// Resizes `n·c` planes `[inH × inW]` to `[outH × outW]`.
    /// - scaleH, scaleW: the ONNX scales used in the coordinate formulas: the `scales` input when given, else
    ///   `Float(outH) / Float(inH)` (as onnxruntime does for `sizes`). The caller computes output sizes.
    public static func resize2d(
        n: Int, c: Int, inH: Int, inW: Int, outH: Int, outW: Int, scaleH: Float, scaleW: Float,
        mode: ResizeMode, coordinate: CoordinateTransform, input: UnsafePointer<Float>,
        output: UnsafeMutablePointer<Float>
    ) {
        let planes = n * c
        if planes == 0 || outH == 0 || outW == 0 { return }
        switch mode {
        case .nearest(let nm):
            withUnsafeTemporaryAllocation(of: Int.self, capacity: outH + outW) { buf in
                let ys = buf.baseAddress!
                let xs = ys + outH
                for y in 0..<outH {
                    ys[y] = nearestIndex(y, outH, inH, scaleH, coordinate, nm)
                }
                for x in 0..<outW {
                    xs[x] = nearestIndex(x, outW, inW, scaleW, coordinate, nm)
                }
                for p in 0..<planes {
                    let src = input + p * inH * inW
                    let dst = output + p * outH * outW
                    for y in 0..<outH {
                        let row = src + ys[y] * inW
                        let drow = dst + y * outW
                        if y > 0 && ys[y] == ys[y - 1] {
                            drow.update(from: drow - outW, count: outW)
                            continue
                        }
                        for x in 0..<outW { drow[x] = row[xs[x]] }
                    }
                }
            }
        case .linear:
            // Per output coordinate: two source indices and two weights.
            withUnsafeTemporaryAllocation(of: Int.self, capacity: 2 * (outH + outW)) { ibuf in
                withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * (outH + outW)) { fbuf in
                    let y0 = ibuf.baseAddress!
                    let y1 = y0 + outH
                    let x0 = y1 + outH
                    let x1 = x0 + outW
                    let wy0 = fbuf.baseAddress!
                    let wy1 = wy0 + outH
                    let wx0 = wy1 + outH
                    let wx1 = wx0 + outW
                    for y in 0..<outH {
                        linearTaps(y, outH, inH, scaleH, coordinate, &y0[y], &y1[y], &wy0[y], &wy1[y])
                    }
                    for x in 0..<outW {
                        linearTaps(x, outW, inW, scaleW, coordinate, &x0[x], &x1[x], &wx0[x], &wx1[x])
                    }
                    for p in 0..<planes {
                        let src = input + p * inH * inW
                        let dst = output + p * outH * outW
                        for y in 0..<outH {
                            let r0 = src + y0[y] * inW
                            let r1 = src + y1[y] * inW
                            let a0 = wy0[y]
                            let a1 = wy1[y]
                            let drow = dst + y * outW
                            for x in 0..<outW {
                                let i0 = x0[x]
                                let i1 = x1[x]
                                let top = r0[i0] * wx0[x] + r0[i1] * wx1[x]
                                let bottom = r1[i0] * wx0[x] + r1[i1] * wx1[x]
                                drow[x] = top * a0 + bottom * a1
                            }
                        }
                    }
                }
            }
        }
    }

    /// ONNX `coordinate_transformation_mode`: output coordinate → input coordinate (float32 like onnxruntime).
    @inline(__always)
    static func originalCoordinate(
        _ xr: Int, _ lengthResized: Int, _ lengthOriginal: Int, _ scale: Float, _ mode: CoordinateTransform
    ) -> Float {
        let x = Float(xr)
        switch mode {
        case .halfPixel:
            return (x + 0.5) / scale - 0.5
        case .asymmetric:
            return x / scale
        case .alignCorners:
            return lengthResized == 1 ? 0 : x * Float(lengthOriginal - 1) / Float(lengthResized - 1)
        case .pytorchHalfPixel:
            return lengthResized > 1 ? (x + 0.5) / scale - 0.5 : 0
        case .halfPixelSymmetric:
            let adjustment = Float(lengthResized) / (scale * Float(lengthOriginal))
            let center = Float(lengthOriginal) / 2
            let offset = center * (1 - adjustment)
            // onnxruntime evaluates this sum in double (0.5 literals), then rounds to float.
            return Float(Double(offset) + (Double(x) + 0.5) / Double(scale) - 0.5)
        }
    }

    @inline(__always)
    static func nearestIndex(
        _ xr: Int, _ lengthResized: Int, _ lengthOriginal: Int, _ scale: Float, _ coord: CoordinateTransform,
        _ nm: NearestMode
    ) -> Int {
        let xo = originalCoordinate(xr, lengthResized, lengthOriginal, scale, coord)
        var i: Int
        switch nm {
        case .roundPreferFloor:
            i = xo == xo.rounded(.down) + 0.5 ? Int(xo.rounded(.down)) : Int(xo.rounded(.toNearestOrAwayFromZero))
        case .roundPreferCeil:
            i = Int(xo.rounded(.toNearestOrAwayFromZero))
            if xo < 0 && xo == xo.rounded(.down) + 0.5 { i = Int(xo.rounded(.up)) }
        case .floor:
            i = Int(xo.rounded(.down))
        case .ceil:
            i = Int(xo.rounded(.up))
        }
        return Swift.min(Swift.max(i, 0), lengthOriginal - 1)
    }

    @inline(__always)
    static func linearTaps(
        _ xr: Int, _ lengthResized: Int, _ lengthOriginal: Int, _ scale: Float, _ coord: CoordinateTransform,
        _ i0: inout Int, _ i1: inout Int, _ w0: inout Float, _ w1: inout Float
    ) {
        var xo = originalCoordinate(xr, lengthResized, lengthOriginal, scale, coord)
        xo = Swift.max(0, Swift.min(xo, Float(lengthOriginal - 1)))
        let a = Swift.min(Int(xo), lengthOriginal - 1)
        let b = Swift.min(a + 1, lengthOriginal - 1)
        i0 = a
        i1 = b
        if a == b {
            w0 = 0.5
            w1 = 0.5
        } else {
            w1 = xo - Float(a)
            w0 = Float(b) - xo
        }
    }
}

extension Kernels.CoordinateTransform {
    /// From ONNX's `coordinate_transformation_mode`; nil for a mode the kernels do not implement.
    init?(onnx mode: String) {
        switch mode {
        case "half_pixel": self = .halfPixel
        case "asymmetric": self = .asymmetric
        case "align_corners": self = .alignCorners
        case "pytorch_half_pixel": self = .pytorchHalfPixel
        default: return nil
        }
    }
}
