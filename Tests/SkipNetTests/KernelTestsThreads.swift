// Conv with several workers (setThreads > 1: column blocks / bands / channels split across Dispatch workers) must give
// bit-for-bit the result of one worker.

import SkipNet
import Testing

@Suite("KernelTests.ConvThreads")
struct KernelTestsConvThreads {
    @Test("Conv with 2 and 3 workers equals 1 worker bit for bit")
    func workersAreBitExact() {
        var specs = KernelTestsConv.specs
        specs.append(ConvSpec(name: "pointwise big", inC: 16, inH: 40, inW: 96, outC: 24, kH: 1, kW: 1))
        specs.append(
            ConvSpec(
                name: "depthwise big s2", inC: 6, inH: 40, inW: 96, outC: 6, kH: 3, kW: 3, stride: (2, 2),
                pads: (1, 1, 1, 1), groups: 6, activation: .relu))
        specs.append(
            ConvSpec(
                name: "im2col big s2", inC: 3, inH: 80, inW: 96, outC: 8, kH: 3, kW: 3, stride: (2, 2),
                pads: (1, 1, 1, 1), activation: .relu))
        func run(_ s: ConvSpec, _ threads: Int) -> [Float] {
            let p = s.params
            let x = randomFloats(s.n * s.inC * s.inH * s.inW, seed: 7)
            let w = randomFloats(s.outC * (s.inC / s.groups) * s.kH * s.kW, seed: 8)
            let b = randomFloats(s.outC, seed: 9)
            var y = [Float](repeating: .nan, count: s.n * p.outC * p.outH * p.outW)
            var scratch = [Float](repeating: .nan, count: max(1, Kernels.conv2dScratchCount(p)))
            Kernels.setThreads(threads)
            defer { Kernels.setThreads(1) }
            withPointers(x, w) { px, pw in
                b.withUnsafeBufferPointer { pb in
                    Kernels.conv2d(
                        p, n: s.n, input: px, weight: pw, bias: s.bias ? pb.baseAddress! : nil,
                        output: &y, scratch: &scratch, activation: s.activation)
                }
            }
            return y
        }
        for s in specs {
            let one = run(s, 1)
            #expect(!one.contains { $0.isNaN }, "\(s.name): output fully written")
            for t in [2, 3] {
                #expect(run(s, t) == one, "\(s.name): \(t) workers")
            }
        }
    }
}
