// The AVX2 + FMA kernels against sums computed by hand (Double, straight from the definitions), on every edge their
// loops have: column tiles that overlap, row panels with padding rows, borders, strides, band planes, epilogues.
// Skipped on a CPU without avx2 and fma (the kernels would die on an illegal instruction).

import Foundation
import SkipNetAVX2
import Testing

@testable import SkipNet

private let avx2 = KernelSet.isSupported(.avx2, cpuFlags: BLASCoreType.cpuFlags())

/// The epilogues the engine maps activations to, and the activation each stands for.
private let clamps: [(AVX2Kernels.Clamp, @Sendable (Double) -> Double)] = [
    (AVX2Kernels.Clamp(), { $0 }),
    (AVX2Kernels.Clamp(lo: 0), { max($0, 0) }),
    (AVX2Kernels.Clamp(slope: 0.1), { $0 < 0 ? 0.1 * $0 : $0 }),
    (AVX2Kernels.Clamp(lo: -0.25, hi: 0.5), { min(max($0, -0.25), 0.5) }),
    (AVX2Kernels.Clamp(gate: .silu), { $0 / (1 + Foundation.exp(-$0)) }),
    (AVX2Kernels.Clamp(gate: .hardSwish), { $0 * min(max($0 / 6 + 0.5, 0), 1) }),
]

@Suite("AVX2Kernels", .enabled(if: avx2, "this CPU lacks avx2 or fma"))
struct AVX2KernelTests {
    @Test(
        "pointwise equals Σ_k a·b + bias, then the activation",
        arguments: [(1, 1, 1), (5, 3, 7), (6, 16, 16), (7, 27, 17), (16, 24, 34), (24, 96, 200), (13, 256, 48)])
    func pointwise(m: Int, k: Int, n: Int) {
        let (ldb, ldc) = (n + 5, n + 3)
        let a = randomFloats(m * k, seed: 1)
        let b = randomFloats(k * ldb, seed: 2)
        let bias = randomFloats(m, seed: 3)
        var packed = [Float](repeating: .nan, count: AVX2Kernels.packedPointwiseCount(m: m, k: k))
        AVX2Kernels.packPointwise(a, m: m, k: k, into: &packed)
        for (withBias, (clamp, activation)) in [false, true].flatMap({ w in clamps.map { (w, $0) } }) {
            var c = [Float](repeating: .nan, count: m * ldc)
            bias.withUnsafeBufferPointer { pb in
                AVX2Kernels.pointwise(
                    m: m, n: n, k: k, packed: packed, b: b, ldb: ldb, c: &c, ldc: ldc,
                    bias: withBias ? pb.baseAddress : nil, clamp: clamp)
            }
            var worst = 0.0
            for i in 0..<m {
                for j in 0..<n {
                    var s = withBias ? Double(bias[i]) : 0
                    for kk in 0..<k { s += Double(a[i * k + kk]) * Double(b[kk * ldb + j]) }
                    worst = max(worst, abs(Double(c[i * ldc + j]) - activation(s)))
                }
                // Columns past n in each row of C stay untouched.
                #expect(c[(i * ldc + n)..<(i * ldc + ldc)].allSatisfy { $0.isNaN })
            }
            #expect(worst <= 1e-5 * Double(max(1, k / 16)), "m \(m) k \(k) n \(n) bias \(withBias) \(clamp)")
            guard n >= 16 && n % 2 == 0 else { continue }
            // The parity split stores the same values: even columns in one row, odd ones in another.
            var even = [Float](repeating: .nan, count: m * ldc)
            var odd = even
            bias.withUnsafeBufferPointer { pb in
                AVX2Kernels.pointwiseSplit(
                    m: m, n: n, k: k, packed: packed, b: b, ldb: ldb, even: &even, odd: &odd, ldc: ldc,
                    bias: withBias ? pb.baseAddress : nil, clamp: clamp)
            }
            for i in 0..<m {
                for j in 0..<n {
                    #expect((j % 2 == 0 ? even : odd)[i * ldc + j / 2] == c[i * ldc + j], "split m \(m) (\(i), \(j))")
                }
                #expect(even[(i * ldc + n / 2)..<(i * ldc + ldc)].allSatisfy { $0.isNaN })
            }
        }
    }

    struct DepthwiseCase: CustomStringConvertible, Sendable {
        var h: Int, w: Int, stride: Int, padTop: Int, padLeft: Int, padBottom: Int, padRight: Int
        var description: String { "\(h)x\(w) s\(stride) pads \(padTop),\(padLeft),\(padBottom),\(padRight)" }
        var outH: Int { (h + padTop + padBottom - 3) / stride + 1 }
        var outW: Int { (w + padLeft + padRight - 3) / stride + 1 }
    }

    @Test(
        "depthwise 3×3 equals the sum over its nine taps (zero outside the image)",
        arguments: [
            DepthwiseCase(h: 5, w: 3, stride: 1, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1),
            DepthwiseCase(h: 9, w: 8, stride: 1, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1),
            DepthwiseCase(h: 7, w: 45, stride: 1, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1),
            DepthwiseCase(h: 6, w: 40, stride: 1, padTop: 0, padLeft: 0, padBottom: 0, padRight: 0),
            DepthwiseCase(h: 4, w: 21, stride: 1, padTop: 2, padLeft: 2, padBottom: 0, padRight: 0),
            // Bands of a fused block: the top, a middle and the bottom band, and a one-row band.
            DepthwiseCase(h: 5, w: 24, stride: 1, padTop: 1, padLeft: 1, padBottom: 0, padRight: 1),
            DepthwiseCase(h: 8, w: 24, stride: 1, padTop: 0, padLeft: 1, padBottom: 0, padRight: 1),
            DepthwiseCase(h: 6, w: 9, stride: 1, padTop: 0, padLeft: 1, padBottom: 1, padRight: 1),
            DepthwiseCase(h: 3, w: 16, stride: 1, padTop: 0, padLeft: 1, padBottom: 0, padRight: 1),
            DepthwiseCase(h: 9, w: 17, stride: 2, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1),
            DepthwiseCase(h: 10, w: 48, stride: 2, padTop: 0, padLeft: 1, padBottom: 1, padRight: 1),
            DepthwiseCase(h: 8, w: 70, stride: 2, padTop: 0, padLeft: 0, padBottom: 0, padRight: 0),
        ])
    func depthwise(_ t: DepthwiseCase) {
        let channels = 5
        // Planes longer than one image (a band inside a larger buffer), and a channel range that skips channel 0.
        let (inPlane, outPlane) = (t.h * t.w + 11, t.outH * t.outW + 7)
        let x = randomFloats(channels * inPlane, seed: 4)
        let weight = randomFloats(channels * 9, seed: 5)
        let bias = randomFloats(channels, seed: 6)
        for (clamp, activation) in clamps {
            var y = [Float](repeating: .nan, count: channels * outPlane)
            AVX2Kernels.depthwise3x3(
                inH: t.h, inW: t.w, outH: t.outH, outW: t.outW, stride: t.stride, padTop: t.padTop,
                padLeft: t.padLeft, input: x, inPlane: inPlane, weight: weight, bias: bias, output: &y,
                outPlane: outPlane, channels: 1..<channels, clamp: clamp)
            var worst = 0.0
            for c in 1..<channels {
                for oy in 0..<t.outH {
                    for ox in 0..<t.outW {
                        var s = Double(bias[c])
                        for ky in 0..<3 {
                            for kx in 0..<3 {
                                let (iy, ix) = (oy * t.stride + ky - t.padTop, ox * t.stride + kx - t.padLeft)
                                guard iy >= 0, iy < t.h, ix >= 0, ix < t.w else { continue }
                                s += Double(weight[c * 9 + ky * 3 + kx]) * Double(x[c * inPlane + iy * t.w + ix])
                            }
                        }
                        worst = max(worst, abs(Double(y[c * outPlane + oy * t.outW + ox]) - activation(s)))
                    }
                }
            }
            #expect(worst <= 1e-5, "\(t) \(clamp)")
            #expect(y[0..<outPlane].allSatisfy { $0.isNaN }, "channel 0 is outside the range")
        }
    }

    @Test(
        "stemRun equals the 3×3 stride-2 sum over the run's outputs (zero outside the image), and writes only them",
        arguments: [(1, 6), (3, 32), (4, 5)])
    func stemRun(inC: Int, outC: Int) {
        // Odd width: the last output's right taps fall outside the image; 2·oy + 1 = inH on the last row too.
        let (inH, inW) = (9, 41)
        let (outH, outW) = ((inH + 1) / 2, (inW + 1) / 2)
        let (inPlane, outPlane) = (inH * inW, outH * outW)
        let x = randomFloats(inC * inPlane, seed: 11)
        let w = randomFloats(outC * inC * 9, seed: 12)
        let bias = randomFloats(outC, seed: 13)
        var packed = [Float](repeating: .nan, count: AVX2Kernels.stemPackedCount(inC: inC, outC: outC))
        AVX2Kernels.packStem(w, inC: inC, outC: outC, into: &packed)
        var scratch = [Float](repeating: .nan, count: AVX2Kernels.stemScratchCount(inC: inC, n: outW))
        // Runs narrower than a vector, between one and two vectors, overlapping last blocks, the whole row, borders.
        let runs = [(0, 0, 1), (1, 3, 5), (2, 0, 8), (3, 9, 12), (4, 4, 17), (4, 21 - 16, 16), (0, 0, 21), (3, 17, 4)]
        for (clamp, activation) in clamps {
            for (oy, x0, n) in runs {
                var y = [Float](repeating: .nan, count: outC * outPlane)
                y.withUnsafeMutableBufferPointer { out in
                    bias.withUnsafeBufferPointer { b in
                        AVX2Kernels.stemRun(
                            input: x, inC: inC, inH: inH, inW: inW, inPlane: inPlane, oy: oy, x0: x0, n: n,
                            packed: packed, bias: b.baseAddress, outC: outC,
                            output: out.baseAddress! + oy * outW + x0, outPlane: outPlane, clamp: clamp,
                            scratch: &scratch)
                    }
                }
                var worst = 0.0
                for o in 0..<outC {
                    for ox in 0..<outW {
                        let at = o * outPlane + oy * outW + ox
                        guard (x0..<x0 + n).contains(ox) else {
                            #expect(y[at].isNaN, "wrote outside the run: channel \(o), column \(ox)")
                            continue
                        }
                        var s = Double(bias[o])
                        for c in 0..<inC {
                            for ky in 0..<3 {
                                for kx in 0..<3 {
                                    let (iy, ix) = (2 * oy - 1 + ky, 2 * ox - 1 + kx)
                                    guard iy >= 0 && iy < inH && ix >= 0 && ix < inW else { continue }
                                    s +=
                                        Double(w[((o * inC + c) * 3 + ky) * 3 + kx])
                                        * Double(x[c * inPlane + iy * inW + ix])
                                }
                            }
                        }
                        worst = max(worst, abs(Double(y[at]) - activation(s)))
                    }
                }
                #expect(worst <= 1e-5, "run (\(oy), \(x0), \(n)) \(clamp)")
                #expect(y[0..<(oy * outW)].allSatisfy { $0.isNaN }, "rows above the run")
            }
        }
    }

    @Test("markExceeding marks max_c |x − ref| > θ (ties not), on vector steps and the tail", arguments: [1, 3, 4])
    func markExceeding(channels: Int) {
        let (n, plane) = (45, 50)
        // Grey-level-like values: integer residuals, so some equal θ exactly.
        let x = randomFloats(channels * plane, seed: 7, lo: 0, hi: 12).map { $0.rounded() }
        let ref = randomFloats(channels * plane, seed: 8, lo: 0, hi: 12).map { $0.rounded() }
        for threshold: Float in [0, 3, 5.5, 11] {
            var mask = [UInt8](repeating: 7, count: n + 3)
            Kernels.markExceeding(
                x: x, ref: ref, channels: channels, plane: plane, count: n, threshold: threshold, into: &mask,
                kernels: .avx2)
            for i in 0..<n {
                let over = (0..<channels).contains { abs(x[$0 * plane + i] - ref[$0 * plane + i]) > threshold }
                #expect(mask[i] == (over ? 1 : 0), "position \(i), θ \(threshold)")
            }
            #expect(mask[n...].allSatisfy { $0 == 7 }, "writes past n")
        }
    }
}

@Suite("Kernels.conv2d with the AVX2 kernels", .enabled(if: avx2, "this CPU lacks avx2 or fma"))
struct AVX2Conv2dTests {
    /// Depthwise 3×3 (strides 1, 2), pointwise, a k×k conv on im2col rows, and CenterFace's first conv (3
    /// channels, stride 2: `AVX2Kernels.stemRun`), batch 2, 1 and 2 workers: `conv2d(kernels: .avx2)` equals the
    /// portable `conv2d` (itself checked against onnxruntime in KernelTests).
    @Test(arguments: [1, 2])
    func matchesPortable(threads: Int) {
        Kernels.setThreads(threads)
        defer { Kernels.setThreads(1) }
        let cases = [
            Conv2DParams(
                inC: 24, inH: 13, inW: 29, outC: 24, outH: 13, outW: 29, kH: 3, kW: 3, padTop: 1, padLeft: 1,
                padBottom: 1, padRight: 1, groups: 24),
            Conv2DParams(
                inC: 16, inH: 20, inW: 34, outC: 16, outH: 10, outW: 17, kH: 3, kW: 3, strideH: 2, strideW: 2,
                padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, groups: 16),
            Conv2DParams(inC: 40, inH: 9, inW: 130, outC: 13, outH: 9, outW: 130, kH: 1, kW: 1),
            Conv2DParams(
                inC: 3, inH: 37, inW: 71, outC: 32, outH: 19, outW: 36, kH: 3, kW: 3, strideH: 2, strideW: 2,
                padTop: 1, padLeft: 1, padBottom: 1, padRight: 1),
            Conv2DParams(
                inC: 24, inH: 15, inW: 41, outC: 13, outH: 15, outW: 41, kH: 3, kW: 3, padTop: 1, padLeft: 1,
                padBottom: 1, padRight: 1),
        ]
        for p in cases {
            let n = 2
            let k = (p.inC / p.groups) * p.kH * p.kW
            let x = randomFloats(n * p.inC * p.inH * p.inW, seed: 7)
            let w = randomFloats(p.outC * k, seed: 8)
            let bias = randomFloats(p.outC, seed: 9)
            var packed = [Float](repeating: 0, count: AVX2Kernels.packedPointwiseCount(m: p.outC, k: k))
            if p.groups == 1 { AVX2Kernels.packPointwise(w, m: p.outC, k: k, into: &packed) }
            var scratch = [Float](repeating: 0, count: Kernels.conv2dScratchCount(p))
            var fast = [Float](repeating: .nan, count: n * p.outC * p.outH * p.outW)
            var portable = fast
            packed.withUnsafeBufferPointer { pp in
                Kernels.conv2d(
                    p, n: n, input: x, weight: w, bias: bias, output: &fast, scratch: &scratch, activation: .relu,
                    kernels: .avx2, packed: p.groups == 1 ? pp.baseAddress : nil)
            }
            Kernels.conv2d(
                p, n: n, input: x, weight: w, bias: bias, output: &portable, scratch: &scratch, activation: .relu)
            #expect(!fast.contains { $0.isNaN })
            #expect(maxAbsDifference(fast, portable) <= 1e-5, "\(p), \(threads) workers")
        }
    }

}

@Suite("KernelSet")
struct KernelSetTests {
    @Test func avx2NeedsBothFlags() {
        #expect(KernelSet.isSupported(.portable, cpuFlags: []))
        #expect(!KernelSet.isSupported(.avx2, cpuFlags: ["avx2"]))
        #expect(!KernelSet.isSupported(.avx2, cpuFlags: ["fma", "sse4_2"]))
        #if arch(x86_64)
            #expect(KernelSet.isSupported(.avx2, cpuFlags: ["avx2", "fma"]))
        #endif
    }

    @Test func leakyReluSteeperThanOneHasNoClamp() {
        #expect(Kernels.Activation.leakyRelu(alpha: 2).clamp == nil)
        #expect(Kernels.Activation.leakyRelu(alpha: 0.2).clamp == AVX2Kernels.Clamp(slope: 0.2))
    }
}
