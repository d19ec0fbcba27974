import SkipNetAVX2

/// How a ``SkipConvLayer`` recomputes the outputs of a set of runs (docs/skip-convolutions.md §4): gathered windows
/// through one GEMM per chunk, or the depthwise kernel restricted to the runs.
extension SkipConvLayer {
    /// GEMM convs: active positions in chunks; per chunk and group, im2col rows of `x_ref` → SGEMM → scatter.
    /// (Runs of 16 or more straight into the output planes, GEMM with ldc = plane and no scatter, measured no
    /// faster on the first conv: k = 27 GEMMs of 16–48 columns lose what the scatter costs.)
    func recomputeGEMM(
        _ runs: ArraySlice<MaskRun>, from source: UnsafePointer<Float>, columns: UnsafeMutablePointer<Float>,
        product: UnsafeMutablePointer<Float>
    ) {
        let cinG = p.inC / p.groups
        let coutG = p.outC / p.groups
        let k = cinG * p.kH * p.kW
        let capacity = min(p.outH * p.outW, SkipScratch.chunkPositions(k: k))
        var chunk: [MaskRun] = []
        forEachChunk(of: runs, capacity: capacity, into: &chunk) { chunk, m in
            for g in 0..<p.groups {
                gather(chunk, from: source, positions: m, firstChannel: g * cinG, into: columns)
                // Bias and activation are applied as the product is stored (in the AVX2 tiles' epilogue).
                Kernels.pointwiseGEMM(
                    m: coutG, n: m, k: k, weight: weight + g * coutG * k, lda: k, packed: packed,
                    bias: bias.map { $0 + g * coutG }, activation: activation, b: columns, ldb: m,
                    c: product, ldc: m, kernels: kernels)
                scatter(chunk, positions: m, from: product, firstChannel: g * coutG, channels: coutG)
            }
        }
    }

    /// `columns[(c·kH + ky)·kW + kx][j] = source[c][oy·s − pad + ky·d][ox·s − pad + kx·d]` for the chunk's positions.
    private func gather(
        _ chunk: [MaskRun], from source: UnsafePointer<Float>, positions m: Int, firstChannel: Int,
        into columns: UnsafeMutablePointer<Float>
    ) {
        let plane = p.inH * p.inW
        let cinG = p.inC / p.groups
        for c in 0..<cinG {
            let src = source + (firstChannel + c) * plane
            for ky in 0..<p.kH {
                for kx in 0..<p.kW {
                    var dst = columns + ((c * p.kH + ky) * p.kW + kx) * m
                    let offset = kx * p.dilationW - p.padLeft
                    for run in chunk {
                        let n = run.length
                        let iy = run.y * p.strideH - p.padTop + ky * p.dilationH
                        if iy < 0 || iy >= p.inH {
                            dst.update(repeating: 0, count: n)
                            dst += n
                            continue
                        }
                        let row = src + iy * p.inW
                        let valid = validColumns(run.x0, run.x1, stride: p.strideW, offset: offset, width: p.inW)
                        let lead = valid.lowerBound - run.x0
                        if lead > 0 { dst.update(repeating: 0, count: lead) }
                        if p.strideW == 1 {
                            (dst + lead).update(from: row + valid.lowerBound + offset, count: valid.count)
                        } else {
                            let ix = valid.lowerBound * p.strideW + offset
                            Kernels.copyStrided(
                                row + ix, stride: p.strideW, into: dst + lead, count: valid.count, available: p.inW - ix
                            )
                        }
                        let tail = n - lead - valid.count
                        if tail > 0 { (dst + lead + valid.count).update(repeating: 0, count: tail) }
                        dst += n
                    }
                }
            }
        }
    }

    private func scatter(
        _ chunk: [MaskRun], positions m: Int, from product: UnsafeMutablePointer<Float>, firstChannel: Int,
        channels: Int
    ) {
        let plane = p.outH * p.outW
        for o in 0..<channels {
            let oc = firstChannel + o
            var src = UnsafePointer(product + o * m)
            for run in chunk {
                (y + oc * plane + run.y * p.outW + run.x0).update(from: src, count: run.length)
                src += run.length
            }
        }
    }

    /// Depthwise: a direct loop per channel and run (9 MACs an output do not pay for a gather); 3×3 kernels take
    /// the dense kernel's SIMD rows restricted to the runs.
    func recomputeDepthwise(_ runs: ArraySlice<MaskRun>, from source: UnsafePointer<Float>) {
        if p.kH == 3 && p.kW == 3 && p.dilationH == 1 && p.dilationW == 1 && p.strideH == p.strideW
            && (p.strideH == 1 || p.strideH == 2)
        {
            runs.withUnsafeBufferPointer { r in
                Kernels.depthwise3x3(
                    p, input: source, weight: weight, bias: bias, output: y, activation: activation,
                    channels: 0..<p.outC, runs: r)
            }
            return
        }
        let (inPlane, outPlane) = (p.inH * p.inW, p.outH * p.outW)
        for c in 0..<p.outC {
            let src = source + c * inPlane
            let w = weight + c * p.kH * p.kW
            let b = bias?[c] ?? 0
            for run in runs {
                let dst = y + c * outPlane + run.y * p.outW
                (dst + run.x0).update(repeating: 0, count: run.length)
                for ky in 0..<p.kH {
                    let iy = run.y * p.strideH - p.padTop + ky * p.dilationH
                    guard iy >= 0 && iy < p.inH else { continue }
                    let row = src + iy * p.inW
                    for kx in 0..<p.kW {
                        let wv = w[ky * p.kW + kx]
                        let offset = kx * p.dilationW - p.padLeft
                        let valid = validColumns(run.x0, run.x1, stride: p.strideW, offset: offset, width: p.inW)
                        for ox in valid { dst[ox] += wv * row[ox * p.strideW + offset] }
                    }
                }
                Kernels.biasActivate(dst + run.x0, count: run.length, bias: b, activation)
            }
        }
    }
}
