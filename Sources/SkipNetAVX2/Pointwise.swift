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
        tiles(m, n, k, packed, b, ldb, c, ldc, bias, clamp, Contiguous())
    }

    /// `pointwise` with C's columns stored split by parity: column 2t of row i goes to `even[i·ldc + t]`, column
    /// 2t + 1 to `odd[i·ldc + t]` — the even/odd rows a stride-2 depthwise conv reads, made while the tile is in
    /// registers instead of by a pass over C. `n` even and at least 16.
    public static func pointwiseSplit(
        m: Int, n: Int, k: Int, packed: UnsafePointer<Float>, b: UnsafePointer<Float>, ldb: Int,
        even: UnsafeMutablePointer<Float>, odd: UnsafeMutablePointer<Float>, ldc: Int, bias: UnsafePointer<Float>?,
        clamp: Clamp
    ) {
        precondition(n >= 16 && n % 2 == 0, "pointwiseSplit: n even and >= 16")
        tiles(m, n, k, packed, b, ldb, even, ldc, bias, clamp, Split(odd: odd - even))
    }

    /// One specialised copy of the tile loop per epilogue: a branch per stored vector costs as much as a k step.
    @inline(__always)
    static func tiles<C: Columns>(
        _ m: Int, _ n: Int, _ k: Int, _ packed: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ ldb: Int,
        _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ bias: UnsafePointer<Float>?, _ clamp: Clamp, _ columns: C
    ) {
        let cv = ClampVector(clamp)
        if clamp.gate == .silu {
            tiles(m, n, k, packed, b, ldb, c, ldc, bias, SiLU(), columns)
        } else if clamp.gate == .hardSwish {
            tiles(m, n, k, packed, b, ldb, c, ldc, bias, HardSwish(), columns)
        } else if clamp.slope != 1 {
            tiles(m, n, k, packed, b, ldb, c, ldc, bias, Leaky(cv), columns)
        } else if clamp.hi != .infinity {
            tiles(m, n, k, packed, b, ldb, c, ldc, bias, Band(cv), columns)
        } else if clamp.lo != -.infinity {
            tiles(m, n, k, packed, b, ldb, c, ldc, bias, Floor(cv), columns)
        } else {
            tiles(m, n, k, packed, b, ldb, c, ldc, bias, Identity(), columns)
        }
    }

    /// The 6×16 tiles of `pointwise` for n >= 16. Accumulators start at the bias, so the store applies only `e`.
    @inline(__always)
    static func tiles<E: Epilogue, C: Columns>(
        _ m: Int, _ n: Int, _ k: Int, _ packed: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ ldb: Int,
        _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ bias: UnsafePointer<Float>?, _ e: E, _ columns: C
    ) {
        let r = pointwiseRows
        let panels = (m + r - 1) / r
        // Each 16-column panel of B is copied to a contiguous buffer first: B's rows are channel planes far apart,
        // and read in place every k step would touch another page.
        withUnsafeTemporaryAllocation(of: Float.self, capacity: k * 16) { panel in
            let bpanel = panel.baseAddress!
            var j = 0
            while j < n {
                let j0 = Swift.min(j, n - 16)
                var src = b + j0
                for kk in 0..<k {
                    columns.copy(src, bpanel + 16 * kk)
                    src += ldb
                }
                let (first, second) = (columns.first(j0), columns.second(j0))
                for p in 0..<panels {
                    let i0 = p * r
                    let rows = Swift.min(r, m - i0)
                    var ap = packed + p * k * r
                    var bp = UnsafePointer(bpanel)
                    // Padding rows of the last panel read bias 0 (their weights are zero and they are not stored).
                    var c00 = broadcast(bias, i0, 0, rows), c01 = c00
                    var c10 = broadcast(bias, i0, 1, rows), c11 = c10
                    var c20 = broadcast(bias, i0, 2, rows), c21 = c20
                    var c30 = broadcast(bias, i0, 3, rows), c31 = c30
                    var c40 = broadcast(bias, i0, 4, rows), c41 = c40
                    var c50 = broadcast(bias, i0, 5, rows), c51 = c50
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
                    let (cp, cq) = (c + i0 * ldc + first, c + i0 * ldc + second)
                    store8(e.apply(c00), cp)
                    store8(e.apply(c01), cq)
                    if rows == r {
                        store8(e.apply(c10), cp + ldc)
                        store8(e.apply(c11), cq + ldc)
                        store8(e.apply(c20), cp + 2 * ldc)
                        store8(e.apply(c21), cq + 2 * ldc)
                        store8(e.apply(c30), cp + 3 * ldc)
                        store8(e.apply(c31), cq + 3 * ldc)
                        store8(e.apply(c40), cp + 4 * ldc)
                        store8(e.apply(c41), cq + 4 * ldc)
                        store8(e.apply(c50), cp + 5 * ldc)
                        store8(e.apply(c51), cq + 5 * ldc)
                        continue
                    }
                    if rows > 1 {
                        store8(e.apply(c10), cp + ldc)
                        store8(e.apply(c11), cq + ldc)
                    }
                    if rows > 2 {
                        store8(e.apply(c20), cp + 2 * ldc)
                        store8(e.apply(c21), cq + 2 * ldc)
                    }
                    if rows > 3 {
                        store8(e.apply(c30), cp + 3 * ldc)
                        store8(e.apply(c31), cq + 3 * ldc)
                    }
                    if rows > 4 {
                        store8(e.apply(c40), cp + 4 * ldc)
                        store8(e.apply(c41), cq + 4 * ldc)
                    }
                }
                j = j0 + 16
            }
        }
    }
}

/// Where a tile's 16 columns come from in B and go to in C: its panel copy fills lanes 0–7 and 8–15 of each k row,
/// and the two accumulator vectors of a row are stored at `first(j0)` and `second(j0)` from the row's start.
protocol Columns {
    func copy(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>)
    func first(_ j0: Int) -> Int
    func second(_ j0: Int) -> Int
}

/// Columns in order: C's columns are B's.
struct Contiguous: Columns {
    @_transparent func copy(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>) {
        store8(load8(src), dst)
        store8(load8(src + 8), dst + 8)
    }
    @_transparent func first(_ j0: Int) -> Int { j0 }
    @_transparent func second(_ j0: Int) -> Int { j0 + 8 }
}

/// Columns split by parity: the panel holds B's even columns, then its odd ones (j0 even), so the first vector is
/// stored at the even row's t = j0/2 and the second `odd` floats further on.
struct Split: Columns {
    let odd: Int
    @_transparent func copy(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>) {
        let v = UnsafeRawPointer(src).loadUnaligned(as: SIMD16<Float>.self)
        store8(v.evenHalf, dst)
        store8(v.oddHalf, dst + 8)
    }
    @_transparent func first(_ j0: Int) -> Int { j0 / 2 }
    @_transparent func second(_ j0: Int) -> Int { odd + j0 / 2 }
}

/// What a tile applies to each accumulator as it stores it (the bias is already in).
protocol Epilogue {
    func apply(_ v: F8) -> F8
}

struct Identity: Epilogue {
    @_transparent func apply(_ v: F8) -> F8 { v }
}

/// max(v, lo): ReLU and other lower bounds.
struct Floor: Epilogue {
    let lo: F8
    init(_ c: ClampVector) { lo = c.lo }
    @_transparent func apply(_ v: F8) -> F8 { v.replacing(with: lo, where: v .< lo) }
}

/// min(max(v, lo), hi): Clip.
struct Band: Epilogue {
    let lo: F8, hi: F8
    init(_ c: ClampVector) { (lo, hi) = (c.lo, c.hi) }
    @_transparent func apply(_ v: F8) -> F8 {
        let y = v.replacing(with: lo, where: v .< lo)
        return y.replacing(with: hi, where: hi .< y)
    }
}

/// The full clamp, LeakyReLU's max(v, αv) first.
struct Leaky: Epilogue {
    let c: ClampVector
    init(_ c: ClampVector) { self.c = c }
    @_transparent func apply(_ v: F8) -> F8 { clamp8(v, c) }
}

struct SiLU: Epilogue {
    @_transparent func apply(_ v: F8) -> F8 { silu8(v) }
}

struct HardSwish: Epilogue {
    @_transparent func apply(_ v: F8) -> F8 { hardSwish8(v) }
}

/// `bias[i0 + r]` in all lanes for a stored row (r < rows) of a conv with a bias; zero otherwise.
@inline(__always)
private func broadcast(_ bias: UnsafePointer<Float>?, _ i0: Int, _ r: Int, _ rows: Int) -> F8 {
    guard let bias, r < rows else { return F8() }
    return F8(repeating: bias[i0 + r])
}
