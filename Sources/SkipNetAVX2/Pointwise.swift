// 1×1 convolution as C[M×N] = A[M×K]·B[K×N] with the bias and activation applied as each tile is stored: the
// shapes of MobileNet blocks (K of 16–192, N a band of a few hundred positions) are where OpenBLAS spends as long
// packing and making its separate beta pass as multiplying, and the epilogue pass costs another read of C.

extension AVX2Kernels {
    /// Rows of A per tile: 6 rows × 16 columns keep 12 accumulators, two B vectors and a broadcast in 16 registers.
    public static let pointwiseRows = 6

    /// Largest K `pointwise` is meant for: one 16-column panel of B (K × 64 bytes) stays in L1 across all of M.
    public static let pointwiseMaxK = 256

    /// Floats `packPointwise` writes for an M×K weight matrix.
    public static func packedPointwiseCount(m: Int, k: Int) -> Int {
        (m + pointwiseRows - 1) / pointwiseRows * pointwiseRows * k
    }

    /// Packs row-major weights `a[M×K]` into panels of 6 rows, `packed[panel][k][row]`, zero-padding the last panel.
    public static func packPointwise(
        _ a: UnsafePointer<Float>, m: Int, k: Int, into packed: UnsafeMutablePointer<Float>
    ) {
        let r = pointwiseRows
        packed.initialize(repeating: 0, count: packedPointwiseCount(m: m, k: k))
        for i in 0..<m {
            for kk in 0..<k { packed[(i / r) * k * r + kk * r + i % r] = a[i * k + kk] }
        }
    }

    /// `c[i, j] = clamp(Σ_k a[i, k]·b[k, j] + bias[i])` for i < m, j < n; `packed` from `packPointwise`, B rows
    /// `ldb` apart, C rows `ldc` apart. Columns run in tiles of 16; the last tile overlaps the one before it when n is
    /// not a multiple of 16 (its columns are recomputed to the same values), and n < 16 runs a scalar loop.
    public static func pointwise(
        m: Int, n: Int, k: Int, packed: UnsafePointer<Float>, b: UnsafePointer<Float>, ldb: Int,
        c: UnsafeMutablePointer<Float>, ldc: Int, bias: UnsafePointer<Float>?, clamp: Clamp
    ) {
        let r = pointwiseRows
        let panels = (m + r - 1) / r
        let cv = ClampVector(clamp)
        guard n >= 16 else {
            for i in 0..<m {
                let ap = packed + (i / r) * k * r + i % r
                for j in 0..<n {
                    var s: Float = 0
                    for kk in 0..<k { s += ap[kk * r] * b[kk * ldb + j] }
                    c[i * ldc + j] = clamp.apply(s + (bias?[i] ?? 0))
                }
            }
            return
        }
        // Each 16-column panel of B is copied to a contiguous buffer first: B's rows are channel planes far apart,
        // and read in place every k step would touch another page.
        withUnsafeTemporaryAllocation(of: Float.self, capacity: k * 16) { panel in
            let bpanel = panel.baseAddress!
            var j = 0
            while j < n {
                let j0 = Swift.min(j, n - 16)
                var src = b + j0
                for kk in 0..<k {
                    store8(load8(src), bpanel + 16 * kk)
                    store8(load8(src + 8), bpanel + 16 * kk + 8)
                    src += ldb
                }
                tile(j0, UnsafePointer(bpanel))
                j += 16
            }
        }

        @inline(__always) func tile(_ j0: Int, _ bpanel: UnsafePointer<Float>) {
            for p in 0..<panels {
                var ap = packed + p * k * r
                var bp = bpanel
                var c00 = F8(), c01 = F8(), c10 = F8(), c11 = F8(), c20 = F8(), c21 = F8()
                var c30 = F8(), c31 = F8(), c40 = F8(), c41 = F8(), c50 = F8(), c51 = F8()
                for _ in 0..<k {
                    let b0 = load8(bp)
                    let b1 = load8(bp + 8)
                    var x = F8(repeating: ap[0])
                    c00.addProduct(x, b0)
                    c01.addProduct(x, b1)
                    x = F8(repeating: ap[1])
                    c10.addProduct(x, b0)
                    c11.addProduct(x, b1)
                    x = F8(repeating: ap[2])
                    c20.addProduct(x, b0)
                    c21.addProduct(x, b1)
                    x = F8(repeating: ap[3])
                    c30.addProduct(x, b0)
                    c31.addProduct(x, b1)
                    x = F8(repeating: ap[4])
                    c40.addProduct(x, b0)
                    c41.addProduct(x, b1)
                    x = F8(repeating: ap[5])
                    c50.addProduct(x, b0)
                    c51.addProduct(x, b1)
                    ap += r
                    bp += 16
                }
                let i0 = p * r
                let rows = Swift.min(r, m - i0)
                let cp = c + i0 * ldc + j0
                // The last panel's padding rows (zero weights) are computed but not stored.
                store8(clamp8(c00 + broadcast(bias, i0 + 0), cv), cp)
                store8(clamp8(c01 + broadcast(bias, i0 + 0), cv), cp + 8)
                if rows > 1 {
                    store8(clamp8(c10 + broadcast(bias, i0 + 1), cv), cp + ldc)
                    store8(clamp8(c11 + broadcast(bias, i0 + 1), cv), cp + ldc + 8)
                }
                if rows > 2 {
                    store8(clamp8(c20 + broadcast(bias, i0 + 2), cv), cp + 2 * ldc)
                    store8(clamp8(c21 + broadcast(bias, i0 + 2), cv), cp + 2 * ldc + 8)
                }
                if rows > 3 {
                    store8(clamp8(c30 + broadcast(bias, i0 + 3), cv), cp + 3 * ldc)
                    store8(clamp8(c31 + broadcast(bias, i0 + 3), cv), cp + 3 * ldc + 8)
                }
                if rows > 4 {
                    store8(clamp8(c40 + broadcast(bias, i0 + 4), cv), cp + 4 * ldc)
                    store8(clamp8(c41 + broadcast(bias, i0 + 4), cv), cp + 4 * ldc + 8)
                }
                if rows > 5 {
                    store8(clamp8(c50 + broadcast(bias, i0 + 5), cv), cp + 5 * ldc)
                    store8(clamp8(c51 + broadcast(bias, i0 + 5), cv), cp + 5 * ldc + 8)
                }
            }
        }
    }
}

/// `p[i]` in all lanes; zero when there is no bias.
@inline(__always)
private func broadcast(_ p: UnsafePointer<Float>?, _ i: Int) -> F8 {
    guard let p else { return F8() }
    return F8(repeating: p[i])
}
