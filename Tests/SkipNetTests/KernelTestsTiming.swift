// Rough kernel timings (not a benchmark): runs only with SKIPNET_KERNEL_TIMING=1, prints milliseconds.
// Use a release build and OPENBLAS_CORETYPE matching the CPU (e.g. SkylakeX) for meaningful numbers.

import Foundation
import SkipNet
import Testing

@Suite("KernelTests.Timing", .enabled(if: ProcessInfo.processInfo.environment["SKIPNET_KERNEL_TIMING"] != nil))
struct KernelTestsTiming {
    static func time(_ name: String, macs: Int, reps: Int = 10, _ body: () -> Void) {
        body()  // warm-up
        var best = Double.infinity
        for _ in 0..<reps {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
        }
        let gflops = Double(2 * macs) / (best * 1e6)
        print(
            "timing \(name): \(String(format: "%.3f", best)) ms (best of \(reps)), \(String(format: "%.1f", gflops)) GFLOP/s"
        )
    }

    static func conv(_ name: String, _ p: Conv2DParams, activation: Kernels.Activation = .none) {
        let x = randomFloats(p.inC * p.inH * p.inW, seed: 1)
        let w = randomFloats(p.outC * (p.inC / p.groups) * p.kH * p.kW, seed: 2)
        let b = randomFloats(p.outC, seed: 3)
        var y = [Float](repeating: 0, count: p.outC * p.outH * p.outW)
        var scratch = [Float](repeating: 0, count: max(1, Kernels.conv2dScratchCount(p)))
        withPointers(x, w) { px, pw in
            b.withUnsafeBufferPointer { pb in
                y.withUnsafeMutableBufferPointer { py in
                    scratch.withUnsafeMutableBufferPointer { ps in
                        time(name, macs: p.macs) {
                            Kernels.conv2d(
                                p, input: px, weight: pw, bias: pb.baseAddress!, output: py.baseAddress!,
                                scratch: ps.baseAddress!, activation: activation)
                        }
                    }
                }
            }
        }
    }

    @Test("Timing of representative CenterFace-sized convs")
    func timings() {
        Kernels.setThreads(1)
        print("timing: OpenBLAS core \(Kernels.blasCoreName()), threads \(Kernels.threads())")
        Self.conv(
            "conv 1x1 64->128 144x192",
            Conv2DParams(inC: 64, inH: 144, inW: 192, outC: 128, outH: 144, outW: 192, kH: 1, kW: 1))
        Self.conv(
            "conv 1x1 64->128 144x192 +relu",
            Conv2DParams(inC: 64, inH: 144, inW: 192, outC: 128, outH: 144, outW: 192, kH: 1, kW: 1),
            activation: .relu)
        Self.conv(
            "depthwise 3x3 128ch 144x192 s1",
            Conv2DParams(
                inC: 128, inH: 144, inW: 192, outC: 128, outH: 144, outW: 192, kH: 3, kW: 3,
                padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, groups: 128))
        Self.conv(
            "depthwise 3x3 128ch 144x192 s2",
            Conv2DParams(
                inC: 128, inH: 144, inW: 192, outC: 128, outH: 72, outW: 96, kH: 3, kW: 3, strideH: 2,
                strideW: 2, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, groups: 128))
        Self.conv(
            "conv 3x3 32->32 144x192",
            Conv2DParams(
                inC: 32, inH: 144, inW: 192, outC: 32, outH: 144, outW: 192, kH: 3, kW: 3,
                padTop: 1, padLeft: 1, padBottom: 1, padRight: 1))
    }
}
