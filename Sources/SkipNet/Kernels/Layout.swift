// Data movement: Concat, Split, Transpose (Reshape / Flatten / Squeeze are metadata-only; the executor skips them).

extension Kernels {
    /// Concat along `axis` (non-negative, already normalised) of inputs that agree on every other dim.
    /// `output` has the inputs' shape with dim `axis` summed.
    public static func concat(
        inputs: [UnsafePointer<Float>], shapes: [[Int]], axis: Int, output: UnsafeMutablePointer<Float>
    ) {
        precondition(inputs.count == shapes.count && !inputs.isEmpty, "concat: inputs/shapes mismatch")
        let shape0 = shapes[0]
        precondition(axis >= 0 && axis < shape0.count, "concat: bad axis")
        var outer = 1
        for d in 0..<axis { outer *= shape0[d] }
        var innerAfter = 1
        for d in (axis + 1)..<shape0.count { innerAfter *= shape0[d] }
        var outChunk = 0
        for s in shapes { outChunk += s[axis] * innerAfter }
        var offset = 0
        for (i, x) in inputs.enumerated() {
            let chunk = shapes[i][axis] * innerAfter
            if chunk > 0 {
                let dst = output + offset
                for o in 0..<outer {
                    (dst + o * outChunk).update(from: x + o * chunk, count: chunk)
                }
            }
            offset += chunk
        }
    }

    /// Split along `axis` into pieces of `sizes[i]` along that axis (sizes sum to `shape[axis]`).
    public static func split(
        input: UnsafePointer<Float>, shape: [Int], axis: Int, sizes: [Int], outputs: [UnsafeMutablePointer<Float>]
    ) {
        precondition(sizes.count == outputs.count, "split: sizes/outputs mismatch")
        precondition(axis >= 0 && axis < shape.count, "split: bad axis")
        var outer = 1
        for d in 0..<axis { outer *= shape[d] }
        var innerAfter = 1
        for d in (axis + 1)..<shape.count { innerAfter *= shape[d] }
        let inChunk = shape[axis] * innerAfter
        var offset = 0
        for (i, y) in outputs.enumerated() {
            let chunk = sizes[i] * innerAfter
            if chunk > 0 {
                for o in 0..<outer {
                    (y + o * chunk).update(from: input + o * inChunk + offset, count: chunk)
                }
            }
            offset += chunk
        }
    }

    /// Transpose with ONNX `perm`: output dim i is input dim `perm[i]`.
    public static func transpose(
        input: UnsafePointer<Float>, shape: [Int], perm: [Int], output: UnsafeMutablePointer<Float>
    ) {
        let r = shape.count
        precondition(perm.count == r, "transpose: perm rank mismatch")
        var total = 1
        for d in shape { total *= d }
        if total == 0 { return }
        withUnsafeTemporaryAllocation(of: Int.self, capacity: 4 * r + 4) { buf in
            let inStride = buf.baseAddress!
            let dims = inStride + (r + 1)
            let strides = dims + (r + 1)
            let idx = strides + (r + 1)
            var s = 1
            for d in stride(from: r - 1, through: 0, by: -1) {
                inStride[d] = s
                s *= shape[d]
            }
            // Output dims (innermost first) with the input stride of each; drop size-1 dims, merge runs that stay
            // contiguous in the input.
            var k = 0
            for i in stride(from: r - 1, through: 0, by: -1) {
                let d = shape[perm[i]]
                if d == 1 { continue }
                let st = inStride[perm[i]]
                if k > 0 && st == strides[k - 1] * dims[k - 1] {
                    dims[k - 1] *= d
                } else {
                    dims[k] = d
                    strides[k] = st
                    k += 1
                }
            }
            if k == 0 {
                output[0] = input[0]
                return
            }
            if k == 1 {
                // Pure reorder of size-1 dims (or identity): a copy.
                output.update(from: input, count: total)
                return
            }
            for j in 0..<k { idx[j] = 0 }
            let inner = dims[0]
            let innerStride = strides[0]
            var src = input
            var dst = output
            while true {
                if innerStride == 1 {
                    dst.update(from: src, count: inner)
                } else {
                    var q = src
                    for t in 0..<inner {
                        dst[t] = q[0]
                        q += innerStride
                    }
                }
                dst += inner
                var j = 1
                while j < k {
                    idx[j] += 1
                    src += strides[j]
                    if idx[j] < dims[j] { break }
                    src -= strides[j] * dims[j]
                    idx[j] = 0
                    j += 1
                }
                if j == k { break }
            }
        }
    }
}
