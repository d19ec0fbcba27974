// Gemm and MatMul through cblas_sgemm.

extension Kernels {
    /// ONNX Gemm: `Y[M×N] = alpha · op(A) · op(B) + beta · C`, A stored `[M×K]` (or `[K×M]` when transA),
    /// B stored `[K×N]` (or `[N×K]` when transB); C (optional) unidirectionally broadcast to `[M, N]` from `cShape`
    /// (`[]`, `[1]`, `[N]`, `[1,N]`, `[M,1]`, `[M,N]`).
    public static func gemm(
        a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafePointer<Float>?, cShape: [Int],
        m: Int, n: Int, k: Int, transA: Bool, transB: Bool, alpha: Float, beta: Float,
        output: UnsafeMutablePointer<Float>
    ) {
        var betaBlas: Float = 0
        if let c, beta != 0 {
            // Broadcast beta·C into Y, then accumulate with beta = 1.
            precondition(cShape.count <= 2, "gemm: C rank > 2")
            let cm = cShape.count == 2 ? cShape[0] : 1
            let cn = cShape.count >= 1 ? cShape[cShape.count - 1] : 1
            precondition((cm == 1 || cm == m) && (cn == 1 || cn == n), "gemm: C \(cShape) does not broadcast")
            for i in 0..<m {
                let crow = c + (cm == 1 ? 0 : i * cn)
                let yrow = output + i * n
                if cn == 1 {
                    yrow.update(repeating: beta * crow[0], count: n)
                } else {
                    for j in 0..<n { yrow[j] = beta * crow[j] }
                }
            }
            betaBlas = 1
        }
        if m == 0 || n == 0 { return }
        if k == 0 {
            if betaBlas == 0 { output.update(repeating: 0, count: m * n) }
            return
        }
        sgemm(
            transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
            a: a, lda: transA ? m : k, b: b, ldb: transB ? k : n, beta: betaBlas, c: output, ldc: n)
    }

    /// Output shape of ONNX MatMul (numpy matmul), nil when incompatible.
    public static func matmulShape(_ a: [Int], _ b: [Int]) -> [Int]? {
        guard !a.isEmpty, !b.isEmpty else { return nil }
        let a2 = a.count == 1 ? [1, a[0]] : a
        let b2 = b.count == 1 ? [b[0], 1] : b
        guard a2[a2.count - 1] == b2[b2.count - 2] else { return nil }
        guard var batch = broadcastShape(Array(a2.dropLast(2)), Array(b2.dropLast(2))) else { return nil }
        if a.count > 1 { batch.append(a2[a2.count - 2]) }
        if b.count > 1 { batch.append(b2[b2.count - 1]) }
        return batch
    }

    /// ONNX MatMul with numpy semantics: 1D operands promoted, batch dims broadcast. Output is contiguous with shape
    /// `matmulShape(aShape, bShape)`. When B is 2D (the common case) the batch is folded into one sgemm.
    public static func matmul(
        a: UnsafePointer<Float>, aShape: [Int], b: UnsafePointer<Float>, bShape: [Int],
        output: UnsafeMutablePointer<Float>
    ) {
        precondition(matmulShape(aShape, bShape) != nil, "matmul: shapes \(aShape) and \(bShape) incompatible")
        let a2 = aShape.count == 1 ? [1, aShape[0]] : aShape
        let b2 = bShape.count == 1 ? [bShape[0], 1] : bShape
        let m = a2[a2.count - 2]
        let k = a2[a2.count - 1]
        let n = b2[b2.count - 1]
        let aBatch = Array(a2.dropLast(2))
        let bBatch = Array(b2.dropLast(2))
        if m == 0 || n == 0 { return }
        let batchShape = broadcastShape(aBatch, bBatch)!
        var batch = 1
        for d in batchShape { batch *= d }
        if batch == 0 { return }
        if k == 0 {
            output.update(repeating: 0, count: batch * m * n)
            return
        }
        var bCount = 1
        for d in bBatch { bCount *= d }
        if bCount == 1 {
            // A's batch × M rows against one B (A's batch dims may still broadcast only if A has them all).
            var aCount = 1
            for d in aBatch { aCount *= d }
            if aCount == batch {
                sgemm(
                    transA: false, transB: false, m: batch * m, n: n, k: k, alpha: 1,
                    a: a, lda: k, b: b, ldb: n, beta: 0, c: output, ldc: n)
                return
            }
        }
        // General: iterate the broadcast batch index, mapping to A and B batch offsets.
        let r = batchShape.count
        withUnsafeTemporaryAllocation(of: Int.self, capacity: 3 * r + 3) { buf in
            let sa = buf.baseAddress!
            let sb = sa + (r + 1)
            let idx = sb + (r + 1)
            var runA = 1
            var runB = 1
            for i in stride(from: r - 1, through: 0, by: -1) {
                let da = i < r - aBatch.count ? 1 : aBatch[i - (r - aBatch.count)]
                let db = i < r - bBatch.count ? 1 : bBatch[i - (r - bBatch.count)]
                sa[i] = da == 1 ? 0 : runA
                sb[i] = db == 1 ? 0 : runB
                runA *= da
                runB *= db
                idx[i] = 0
            }
            var offA = 0
            var offB = 0
            for t in 0..<batch {
                sgemm(
                    transA: false, transB: false, m: m, n: n, k: k, alpha: 1,
                    a: a + offA * m * k, lda: k, b: b + offB * k * n, ldb: n, beta: 0,
                    c: output + t * m * n, ldc: n)
                var i = r - 1
                while i >= 0 {
                    idx[i] += 1
                    offA += sa[i]
                    offB += sb[i]
                    if idx[i] < batchShape[i] { break }
                    offA -= sa[i] * batchShape[i]
                    offB -= sb[i] * batchShape[i]
                    idx[i] = 0
                    i -= 1
                }
            }
        }
    }
}
