// Numeric kernels of the SkipNet CNN engine.
//
// Conventions (shared by every file in Kernels/):
// - Tensors are contiguous float32 buffers in NCHW (4D) or the ONNX logical row-major layout otherwise.
// - Kernels take `UnsafePointer<Float>` / `UnsafeMutablePointer<Float>` plus explicit shapes. Batch is an explicit
//   `n` parameter where it matters (conv, pooling, resize); elementwise kernels work on flat counts.
// - Kernels do not allocate tensor-sized memory: scratch (im2col columns etc.) is passed in by the caller, sized by
//   the matching `...ScratchCount` function (in floats). Shape bookkeeping uses stack temporaries only.
// - Threading: OpenBLAS is multi-threaded (see `setThreads`); conv2d splits its work across `setThreads` workers
//   itself (Dispatch), holding OpenBLAS at 1 thread meanwhile. Other hand-written loops are single-threaded.
// - Output buffers must not alias inputs unless a function says in-place is allowed.

import COpenBLAS

#if canImport(Darwin)
    import Darwin
#else
    import Glibc
#endif

/// Namespace of the numeric kernels. All functions are stateless and thread-safe (OpenBLAS's own thread count is
/// process-global).
public enum Kernels {
    /// Activation fused into conv / BN epilogues.
    public enum Activation: Sendable, Equatable {
        case none
        case relu
        case leakyRelu(alpha: Float)
        case clip(min: Float, max: Float)
        /// `x·σ(x)` (YOLO's SiLU, exported as Sigmoid and Mul).
        case silu
        /// `x·max(0, min(1, x/6 + ½))` (MobileNetV3).
        case hardSwish
    }

    /// Worker count for the conv kernels (set by `setThreads`, process-global).
    nonisolated(unsafe) static var workerCount = 1

    /// Sets OpenBLAS's thread count and the conv kernels' worker count (process-global).
    public static func setThreads(_ n: Int) {
        openblas_set_num_threads(Int32(max(1, n)))
        workerCount = max(1, n)
    }

    /// OpenBLAS's current thread count.
    public static func threads() -> Int {
        Int(openblas_get_num_threads())
    }

    /// OpenBLAS's detected / forced core type (e.g. "SkylakeX"); check it, OpenBLAS misdetects some CPUs.
    public static func blasCoreName() -> String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }
}

// MARK: - Internal helpers

typealias F16 = SIMD16<Float>

@inline(__always)
func load16(_ p: UnsafePointer<Float>) -> F16 {
    UnsafeRawPointer(p).loadUnaligned(as: F16.self)
}

@inline(__always)
func store16(_ v: F16, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: F16.self)
}

extension Kernels {
    /// Applies `act(x + bias)` in place over `count` floats with one scalar bias (bias 0 when nil).
    @inline(__always)
    static func biasActivate(_ p: UnsafeMutablePointer<Float>, count: Int, bias: Float, _ act: Activation) {
        var i = 0
        let vb = F16(repeating: bias)
        switch act {
        case .none:
            if bias == 0 { return }
            while i + 16 <= count {
                store16(load16(p + i) + vb, p + i)
                i += 16
            }
            while i < count {
                p[i] += bias
                i += 1
            }
        case .relu:
            let z = F16(repeating: 0)
            while i + 16 <= count {
                store16(vmax(load16(p + i) + vb, z), p + i)
                i += 16
            }
            while i < count {
                p[i] = Swift.max(p[i] + bias, 0)
                i += 1
            }
        case .leakyRelu(let alpha):
            let va = F16(repeating: alpha)
            let z = F16(repeating: 0)
            while i + 16 <= count {
                let v = load16(p + i) + vb
                store16(v.replacing(with: v * va, where: v .< z), p + i)
                i += 16
            }
            while i < count {
                let v = p[i] + bias
                p[i] = v < 0 ? v * alpha : v
                i += 1
            }
        case .clip(let lo, let hi):
            let vl = F16(repeating: lo)
            let vh = F16(repeating: hi)
            while i + 16 <= count {
                store16(vmin(vmax(load16(p + i) + vb, vl), vh), p + i)
                i += 16
            }
            while i < count {
                p[i] = Swift.min(Swift.max(p[i] + bias, lo), hi)
                i += 1
            }
        case .silu, .hardSwish:
            while i + 16 <= count {
                store16(activate16(load16(p + i) + vb, act), p + i)
                i += 16
            }
            while i < count {
                p[i] = activate(p[i] + bias, act)
                i += 1
            }
        }
    }

    @inline(__always)
    static func activate(_ v: Float, _ act: Activation) -> Float {
        switch act {
        case .none: return v
        case .relu: return Swift.max(v, 0)
        case .leakyRelu(let a): return v < 0 ? v * a : v
        case .clip(let lo, let hi): return Swift.min(Swift.max(v, lo), hi)
        case .silu: return silu(v)
        case .hardSwish: return hardSwish(v)
        }
    }

    /// Row-major sgemm: C[M×N] = alpha · op(A) · op(B) + beta · C with leading dimensions given explicitly.
    @inline(__always)
    static func sgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
    }
}

extension Kernels {
    @inline(__always)
    static func activate16(_ v: F16, _ act: Activation) -> F16 {
        switch act {
        case .none: return v
        case .relu: return vmax(v, F16(repeating: 0))
        case .leakyRelu(let a): return v.replacing(with: v * F16(repeating: a), where: v .< F16(repeating: 0))
        case .clip(let lo, let hi): return vmin(vmax(v, F16(repeating: lo)), F16(repeating: hi))
        case .silu: return silu16(v)
        case .hardSwish: return hardSwish16(v)
        }
    }
}

typealias F4 = SIMD4<Float>

@inline(__always)
func load4(_ p: UnsafePointer<Float>) -> F4 {
    UnsafeRawPointer(p).loadUnaligned(as: F4.self)
}

@inline(__always)
func store4(_ v: F4, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: F4.self)
}

extension Kernels {
    /// `activate16` at SSE's native width: loops that keep many weight vectors live stay in registers with 4 lanes.
    @inline(__always)
    static func activate4(_ v: F4, _ act: Activation) -> F4 {
        switch act {
        case .none: return v
        case .relu: return v.replacing(with: F4(repeating: 0), where: v .< F4(repeating: 0))
        case .leakyRelu(let a): return v.replacing(with: v * F4(repeating: a), where: v .< F4(repeating: 0))
        case .clip(let lo, let hi):
            let l = v.replacing(with: F4(repeating: lo), where: v .< F4(repeating: lo))
            return l.replacing(with: F4(repeating: hi), where: F4(repeating: hi) .< l)
        case .silu, .hardSwish:
            var out = F4()
            for i in 0..<4 { out[i] = activate(v[i], act) }
            return out
        }
    }
}

/// Lane-wise max/min via compare + select (the stdlib's generic `pointwiseMax` is not vectorised).
@inline(__always)
func vmax(_ a: F16, _ b: F16) -> F16 { a.replacing(with: b, where: a .< b) }

@inline(__always)
func vmin(_ a: F16, _ b: F16) -> F16 { a.replacing(with: b, where: b .< a) }
