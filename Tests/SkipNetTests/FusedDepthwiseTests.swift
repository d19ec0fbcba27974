// The fused pointwise → depthwise 3×3 → pointwise kernel (DenseExecutor runs MobileNet blocks with it) must equal the
// three convs run one after the other, for every band split, stride, padding and worker count.

import SkipNetAVX2
import Testing

@testable import SkipNet

@Suite("KernelTests.FusedDepthwise")
struct KernelTestsFusedDepthwise {
    /// Sizes give several bands of about 1 MB each (so bands, kept rows and the worker split are exercised).
    struct Case {
        var inC = 5, mid = 160, outC = 7, h = 41, w = 45, stride = 1, pad = 1, n = 1
        var expand = true, project = true
    }

    static let cases: [Case] = [
        Case(),
        Case(stride: 2),
        Case(h: 64, w: 96, stride: 2, n: 2),
        Case(h: 50, w: 33, stride: 1, pad: 0),
        Case(h: 61, w: 20, stride: 2, pad: 0),
        Case(mid: 8, h: 9, w: 7),
        Case(inC: 160, expand: false),
        Case(stride: 2, project: false),
        Case(inC: 160, h: 60, w: 24, stride: 2, expand: false),
        Case(h: 30, w: 48, project: false),
        // Stride 2 on even widths: the AVX2 kernels' parity-split rows, with tiles overlapping at a row's end (40)
        // and the narrowest row they take (16).
        Case(h: 33, w: 40, stride: 2, project: false),
        Case(mid: 24, h: 20, w: 16, stride: 2),
        // Tall enough that a worker's plane of expanded rows fills and the kept rows move back to its top.
        Case(h: 150, w: 45),
        Case(h: 300, w: 40, stride: 2, project: false),
    ]

    /// The kernel sets this CPU runs.
    static let kernelSets = KernelSet.allCases.filter { KernelSet.isSupported($0, cpuFlags: BLASCoreType.cpuFlags()) }

    @Test(
        "fused block equals pointwise, depthwise and pointwise convs run apart",
        arguments: [1, 2], kernelSets)
    func matchesSeparateConvs(threads: Int, kernels: KernelSet) {
        Kernels.setThreads(threads)
        defer { Kernels.setThreads(1) }
        for (index, t) in Self.cases.enumerated() {
            let dwC = t.expand ? t.mid : t.inC
            let e = Conv2DParams(inC: t.inC, inH: t.h, inW: t.w, outC: dwC, outH: t.h, outW: t.w, kH: 1, kW: 1)
            let oh = Conv2DParams.outputSize(
                input: t.h, kernel: 3, stride: t.stride, padBegin: t.pad, padEnd: t.pad, dilation: 1)
            let ow = Conv2DParams.outputSize(
                input: t.w, kernel: 3, stride: t.stride, padBegin: t.pad, padEnd: t.pad, dilation: 1)
            let d = Conv2DParams(
                inC: dwC, inH: t.h, inW: t.w, outC: dwC, outH: oh, outW: ow, kH: 3, kW: 3, strideH: t.stride,
                strideW: t.stride, padTop: t.pad, padLeft: t.pad, padBottom: t.pad, padRight: t.pad, groups: dwC)
            let q = Conv2DParams(inC: dwC, inH: oh, inW: ow, outC: t.outC, outH: oh, outW: ow, kH: 1, kW: 1)
            let x = randomFloats(t.n * (t.expand ? t.inC : dwC) * t.h * t.w, seed: 11)
            let we = randomFloats(dwC * t.inC, seed: 12)
            let be = randomFloats(dwC, seed: 13)
            let wd = randomFloats(dwC * 9, seed: 14)
            let bd = randomFloats(dwC, seed: 15)
            let wq = randomFloats(t.outC * dwC, seed: 16)
            let bq = randomFloats(t.outC, seed: 17)
            let outC = t.project ? t.outC : dwC
            var fused = [Float](repeating: .nan, count: t.n * outC * oh * ow)
            var apart = fused
            var expanded = [Float](repeating: .nan, count: t.n * dwC * t.h * t.w)
            var middle = [Float](repeating: .nan, count: t.n * dwC * oh * ow)
            let scratchCount = Kernels.fusedDepthwiseScratchCount(
                expand: t.expand ? e : nil, depthwise: d, project: t.project ? q : nil)
            var scratch = [Float](repeating: .nan, count: max(1, scratchCount))
            withPointers(x, we) { px, pwe in
                withPointers(be, wd) { pbe, pwd in
                    withPointers(bd, wq) { pbd, pwq in
                        bq.withUnsafeBufferPointer { pbq in
                            var sq = Kernels.ConvStage(
                                params: q, weight: pwq, bias: pbq.baseAddress, activation: .leakyRelu(alpha: 0.1))
                            var se = Kernels.ConvStage(params: e, weight: pwe, bias: pbe, activation: .relu)
                            let sd = Kernels.ConvStage(
                                params: d, weight: pwd, bias: pbd, activation: .clip(min: -0.5, max: 0.75))
                            // The AVX2 kernels run pointwise stages from packed weights.
                            let packedE = UnsafeMutablePointer<Float>.allocate(
                                capacity: AVX2Kernels.packedPointwiseCount(m: e.outC, k: e.inC))
                            let packedQ = UnsafeMutablePointer<Float>.allocate(
                                capacity: AVX2Kernels.packedPointwiseCount(m: q.outC, k: q.inC))
                            defer {
                                packedE.deallocate()
                                packedQ.deallocate()
                            }
                            if kernels == .avx2 {
                                AVX2Kernels.packPointwise(pwe, m: e.outC, k: e.inC, into: packedE)
                                AVX2Kernels.packPointwise(pwq, m: q.outC, k: q.inC, into: packedQ)
                                se.packed = UnsafePointer(packedE)
                                sq.packed = UnsafePointer(packedQ)
                            }
                            Kernels.fusedDepthwise(
                                expand: t.expand ? se : nil, depthwise: sd, project: t.project ? sq : nil, n: t.n,
                                input: px, output: &fused, scratch: &scratch, kernels: kernels)
                        }
                    }
                }
            }
            if t.expand {
                withPointers(x, we) { px, pwe in
                    be.withUnsafeBufferPointer { pbe in
                        Kernels.conv2d(
                            e, n: t.n, input: px, weight: pwe, bias: pbe.baseAddress, output: &expanded, scratch: nil,
                            activation: .relu)
                    }
                }
            }
            withPointers(t.expand ? expanded : x, wd) { pin, pwd in
                withPointers(bd, wq) { pbd, pwq in
                    if t.project {
                        Kernels.conv2d(
                            d, n: t.n, input: pin, weight: pwd, bias: pbd, output: &middle, scratch: nil,
                            activation: .clip(min: -0.5, max: 0.75))
                        withPointers(middle, bq) { pm, pbq in
                            Kernels.conv2d(
                                q, n: t.n, input: pm, weight: pwq, bias: pbq, output: &apart, scratch: nil,
                                activation: .leakyRelu(alpha: 0.1))
                        }
                    } else {
                        Kernels.conv2d(
                            d, n: t.n, input: pin, weight: pwd, bias: pbd, output: &apart, scratch: nil,
                            activation: .clip(min: -0.5, max: 0.75))
                    }
                }
            }
            #expect(!fused.contains { $0.isNaN }, "case \(index): output fully written")
            #expect(maxAbsDifference(fused, apart) <= 1e-5, "case \(index), \(threads) workers, \(kernels) kernels")
        }
    }
}
