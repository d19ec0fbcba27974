/// The gates of a ``SkipConvLayer`` (docs/skip-convolutions.md §2): the residual statistic the norm gates keep per
/// input position, and how each gate marks the outputs it lets through.
extension SkipConvLayer {
    /// The norm gates' statistic: Σ r² over channels (within a group, the largest group: depthwise takes max_c r²)
    /// for output-norm, Σ|r| for input-norm. (Input-select and gumbel read the residual itself.)
    func updateStatistic(_ runs: [MaskRun]) {
        let plane = p.inH * p.inW
        let kind: Kernels.ResidualStatistic = gate == .inputNorm ? .sumOfAbs : .sumOfSquares
        let perGroup = p.inC / p.groups
        for run in runs {
            let at = run.y * p.inW + run.x0
            let n = run.length
            let s = stat + at
            s.update(repeating: 0, count: n)
            if gate == .outputNorm && p.groups > 1 {
                // Per-group sums, maximum over groups: each group's filters only see their own channels.
                withUnsafeTemporaryAllocation(of: Float.self, capacity: n) { group in
                    let g0 = group.baseAddress!
                    for g in 0..<p.groups {
                        g0.update(repeating: 0, count: n)
                        for c in g * perGroup..<(g + 1) * perGroup {
                            Kernels.accumulate(
                                kind, x: x + c * plane + at, ref: xRef + c * plane + at, into: g0, count: n)
                        }
                        for i in 0..<n { s[i] = max(s[i], g0[i]) }
                    }
                }
            } else {
                for c in 0..<p.inC {
                    Kernels.accumulate(kind, x: x + c * plane + at, ref: xRef + c * plane + at, into: s, count: n)
                }
            }
        }
    }

    /// Output-norm or input-norm: each output's window sum of the statistic against its limit.
    func evaluateNorm(_ runs: [MaskRun]) {
        // Output-norm compares Σ‖r‖² over the window with (ε / max‖W_o‖)², avoiding a square root per output.
        let limit: Float
        if gate == .outputNorm {
            limit = maxFilterNorm > 0 ? (threshold / maxFilterNorm) * (threshold / maxFilterNorm) : .infinity
        } else {
            limit = threshold * Float(p.kH * p.kW)
        }
        let (rows, columns, inW) = (map.rows, map.columns, p.inW)
        active.withBits { a in
            for run in runs {
                let window = rows.window(run.y)
                for ox in run.x0..<run.x1 {
                    var v: Float = 0
                    for iy in window {
                        for ix in columns.window(ox) { v += stat[iy * inW + ix] }
                    }
                    if v > limit { a[run.y * p.outW + ox] = 1 }
                }
            }
        }
    }

    func evaluateGumbel(_ runs: [MaskRun]) {
        guard let gumbel, gumbel.weights.count == p.inC * p.kH * p.kW else { return }
        let plane = p.inH * p.inW
        active.withBits { a in
            for run in runs {
                for ox in run.x0..<run.x1 {
                    var logit = gumbel.bias
                    for c in 0..<p.inC {
                        for ky in 0..<p.kH {
                            let iy = run.y * p.strideH - p.padTop + ky * p.dilationH
                            guard iy >= 0 && iy < p.inH else { continue }
                            for kx in 0..<p.kW {
                                let ix = ox * p.strideW - p.padLeft + kx * p.dilationW
                                guard ix >= 0 && ix < p.inW else { continue }
                                let i = c * plane + iy * p.inW + ix
                                logit += gumbel.weights[(c * p.kH + ky) * p.kW + kx] * abs(x[i] - xRef[i])
                            }
                        }
                    }
                    if logit >= 0 { a[run.y * p.outW + ox] = 1 }
                }
            }
        }
    }
}
