// ConvTranspose (2D, NCHW) via sgemm + col2im.

/// Geometry of a 2D transposed convolution (one image; batch is the `n` argument).
/// Weights are ONNX layout `[inC, outC/groups, kH, kW]`. `outH`/`outW` are the final output sizes (the caller
/// folds in `output_padding`, `output_shape` and `auto_pad`); only the leading pads matter to the kernel:
/// input (iy, ix) with tap (ky, kx) lands on `oy = iy·strideH + ky·dilationH − padTop` (dropped outside the output).
public struct ConvTranspose2DParams: Sendable, Equatable {
    public var inC: Int, inH: Int, inW: Int
    public var outC: Int, outH: Int, outW: Int
    public var kH: Int, kW: Int
    public var strideH: Int, strideW: Int
    public var padTop: Int, padLeft: Int
    public var dilationH: Int, dilationW: Int
    public var groups: Int

    public init(
        inC: Int, inH: Int, inW: Int, outC: Int, outH: Int, outW: Int, kH: Int, kW: Int,
        strideH: Int = 1, strideW: Int = 1, padTop: Int = 0, padLeft: Int = 0,
        dilationH: Int = 1, dilationW: Int = 1, groups: Int = 1
    ) {
        self.inC = inC
        self.inH = inH
        self.inW = inW
        self.outC = outC
        self.outH = outH
        self.outW = outW
        self.kH = kH
        self.kW = kW
        self.strideH = strideH
        self.strideW = strideW
        self.padTop = padTop
        self.padLeft = padLeft
        self.dilationH = dilationH
        self.dilationW = dilationW
        self.groups = groups
    }

    /// ONNX output size for one axis: `stride·(in−1) + outputPadding + (k−1)·dilation + 1 − padBegin − padEnd`.
    public static func outputSize(
        input: Int, kernel: Int, stride: Int, padBegin: Int, padEnd: Int, dilation: Int, outputPadding: Int
    ) -> Int {
        stride * (input - 1) + outputPadding + (kernel - 1) * dilation + 1 - padBegin - padEnd
    }

    /// MACs for one image (Skip-Conv accounting): `inH·inW·inC·(outC/groups)·kH·kW`.
    public var macs: Int { inH * inW * inC * (outC / groups) * kH * kW }
}

extension Kernels {
    /// Scratch floats for `convTranspose2d`: one group's column matrix `[(outC/groups)·kH·kW] × [inH·inW]`.
    public static func convTranspose2dScratchCount(_ p: ConvTranspose2DParams) -> Int {
        (p.outC / p.groups) * p.kH * p.kW * p.inH * p.inW
    }

    /// Transposed 2D convolution over `n` images:
    /// `output[n, outC, outH, outW] = act(convT(input[n, inC, inH, inW], weight) + bias)`.
    /// - weight: `[inC, outC/groups, kH, kW]`; bias: `[outC]` or nil; scratch: `convTranspose2dScratchCount(p)` floats.
    public static func convTranspose2d(
        _ p: ConvTranspose2DParams, n: Int = 1, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>,
        activation: Activation = .none
    ) {
        precondition(p.groups >= 1 && p.inC % p.groups == 0 && p.outC % p.groups == 0, "convTranspose2d: bad groups")
        let cinG = p.inC / p.groups
        let coutG = p.outC / p.groups
        let inPlane = p.inH * p.inW
        let outPlane = p.outH * p.outW
        let rows = coutG * p.kH * p.kW
        for b in 0..<n {
            let x = input + b * p.inC * inPlane
            let y = output + b * p.outC * outPlane
            for c in 0..<p.outC {
                (y + c * outPlane).update(repeating: bias?[c] ?? 0, count: outPlane)
            }
            for g in 0..<p.groups {
                // col[rows × inPlane] = W_g^T [rows × cinG] · X_g [cinG × inPlane]; W_g is [cinG × rows].
                sgemm(
                    transA: true, transB: false, m: rows, n: inPlane, k: cinG, alpha: 1,
                    a: weight + g * cinG * rows, lda: rows, b: x + g * cinG * inPlane, ldb: inPlane, beta: 0,
                    c: scratch, ldc: inPlane)
                col2im(p, col: scratch, channels: coutG, output: y + g * coutG * outPlane)
            }
            if activation != .none {
                biasActivate(y, count: p.outC * outPlane, bias: 0, activation)
            }
        }
    }

    /// Scatter-adds `col[(c·kH + ky)·kW + kx][iy·inW + ix]` into `output[c][oy][ox]`.
    static func col2im(
        _ p: ConvTranspose2DParams, col: UnsafePointer<Float>, channels: Int, output: UnsafeMutablePointer<Float>
    ) {
        let inPlane = p.inH * p.inW
        var row = col
        for c in 0..<channels {
            let plane = output + c * p.outH * p.outW
            for ky in 0..<p.kH {
                for kx in 0..<p.kW {
                    let offX = kx * p.dilationW - p.padLeft
                    // Valid ix: 0 <= ix*sW + offX < outW.
                    let ixLo = offX >= 0 ? 0 : Swift.min(p.inW, (-offX + p.strideW - 1) / p.strideW)
                    let ixHi = Swift.max(ixLo, Swift.min(p.inW, (p.outW - offX + p.strideW - 1) / p.strideW))
                    for iy in 0..<p.inH {
                        let oy = iy * p.strideH + ky * p.dilationH - p.padTop
                        if oy < 0 || oy >= p.outH { continue }
                        let src = row + iy * p.inW
                        let dst = plane + oy * p.outW + offX
                        if p.strideW == 1 {
                            var ix = ixLo
                            while ix + 16 <= ixHi {
                                store16(load16(dst + ix) + load16(src + ix), dst + ix)
                                ix += 16
                            }
                            while ix < ixHi {
                                dst[ix] += src[ix]
                                ix += 1
                            }
                        } else {
                            var ix = ixLo
                            while ix < ixHi {
                                dst[ix * p.strideW] += src[ix]
                                ix += 1
                            }
                        }
                    }
                    row += inPlane
                }
            }
        }
    }
}
