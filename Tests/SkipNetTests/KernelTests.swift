// Per-operator tests of SkipNet's kernels against onnxruntime (one-node models built by Reference/single_op.py).
// Tolerance everywhere: max |actual − reference| ≤ 1e-4 · max(1, max |reference|) (see KernelTestsSupport.swift).

import Foundation
import SkipNet
import Testing

// MARK: - Conv

struct ConvSpec {
    var name: String
    var n = 1
    var inC: Int, inH: Int, inW: Int, outC: Int
    var kH: Int, kW: Int
    var stride = (1, 1)
    var pads = (0, 0, 0, 0)  // top, left, bottom, right
    var dilation = (1, 1)
    var groups = 1
    var bias = true
    var activation: Kernels.Activation = .none

    var params: Conv2DParams {
        let outH = Conv2DParams.outputSize(
            input: inH, kernel: kH, stride: stride.0, padBegin: pads.0, padEnd: pads.2, dilation: dilation.0)
        let outW = Conv2DParams.outputSize(
            input: inW, kernel: kW, stride: stride.1, padBegin: pads.1, padEnd: pads.3, dilation: dilation.1)
        return Conv2DParams(
            inC: inC, inH: inH, inW: inW, outC: outC, outH: outH, outW: outW, kH: kH, kW: kW, strideH: stride.0,
            strideW: stride.1, padTop: pads.0, padLeft: pads.1, padBottom: pads.2, padRight: pads.3,
            dilationH: dilation.0, dilationW: dilation.1, groups: groups)
    }
}

/// Applies a fused activation to a reference output (the activation alone is tested against onnxruntime below).
func applyActivation(_ x: [Float], _ act: Kernels.Activation) -> [Float] {
    x.map { v in
        switch act {
        case .none: return v
        case .relu: return max(v, 0)
        case .leakyRelu(let a): return v < 0 ? v * a : v
        case .clip(let lo, let hi): return min(max(v, lo), hi)
        case .silu: return Float(Double(v) / (1 + Foundation.exp(-Double(v))))
        case .hardSwish: return v * min(max(v / 6 + 0.5, 0), 1)
        }
    }
}

@Suite("KernelTests.Conv")
struct KernelTestsConv {
    static let specs: [ConvSpec] = [
        ConvSpec(name: "pointwise 13→7 7×5", inC: 13, inH: 7, inW: 5, outC: 7, kH: 1, kW: 1),
        ConvSpec(name: "pointwise n2 relu", n: 2, inC: 3, inH: 9, inW: 11, outC: 13, kH: 1, kW: 1, activation: .relu),
        ConvSpec(
            name: "pointwise groups2 no bias", inC: 6, inH: 7, inW: 5, outC: 4, kH: 1, kW: 1, groups: 2,
            bias: false),
        ConvSpec(name: "1×1 stride 2", inC: 5, inH: 7, inW: 5, outC: 3, kH: 1, kW: 1, stride: (2, 2)),
        ConvSpec(name: "3×3 pad1 3→13", inC: 3, inH: 7, inW: 5, outC: 13, kH: 3, kW: 3, pads: (1, 1, 1, 1)),
        ConvSpec(
            name: "3×3 stride2 asym pads leaky", inC: 4, inH: 9, inW: 7, outC: 5, kH: 3, kW: 3, stride: (2, 2),
            pads: (0, 1, 2, 1), activation: .leakyRelu(alpha: 0.1)),
        ConvSpec(
            name: "3×3 dilation2 pad2 clip", n: 2, inC: 3, inH: 11, inW: 9, outC: 4, kH: 3, kW: 3,
            pads: (2, 2, 2, 2), dilation: (2, 2), activation: .clip(min: -0.5, max: 0.7)),
        ConvSpec(name: "3×3 groups2", inC: 6, inH: 7, inW: 5, outC: 4, kH: 3, kW: 3, pads: (1, 1, 1, 1), groups: 2),
        ConvSpec(
            name: "5×3 stride(2,1) groups3", inC: 6, inH: 13, inW: 8, outC: 9, kH: 5, kW: 3, stride: (2, 1),
            pads: (2, 0, 1, 1), groups: 3),
        ConvSpec(
            name: "7×7 stride2 pad3", inC: 3, inH: 17, inW: 19, outC: 8, kH: 7, kW: 7, stride: (2, 2),
            pads: (3, 3, 3, 3)),
        ConvSpec(
            name: "depthwise 3×3 13ch 7×5", inC: 13, inH: 7, inW: 5, outC: 13, kH: 3, kW: 3,
            pads: (1, 1, 1, 1), groups: 13),
        ConvSpec(
            name: "depthwise 3×3 wide relu", n: 2, inC: 5, inH: 9, inW: 45, outC: 5, kH: 3, kW: 3,
            pads: (1, 1, 1, 1), groups: 5, activation: .relu),
        ConvSpec(
            name: "depthwise 3×3 stride2 wide", inC: 3, inH: 11, inW: 77, outC: 3, kH: 3, kW: 3,
            stride: (2, 2), pads: (1, 1, 1, 1), groups: 3),
        ConvSpec(
            name: "depthwise 3×3 stride2 even wide", inC: 2, inH: 10, inW: 64, outC: 2, kH: 3, kW: 3,
            stride: (2, 2), pads: (0, 0, 1, 1), groups: 2, activation: .clip(min: 0, max: 6)),
        ConvSpec(
            name: "depthwise 3×3 dilation2", inC: 4, inH: 12, inW: 40, outC: 4, kH: 3, kW: 3,
            pads: (2, 2, 2, 2), dilation: (2, 2), groups: 4, bias: false),
        ConvSpec(
            name: "depthwise 5×5 asym pads", inC: 3, inH: 8, inW: 37, outC: 3, kH: 5, kW: 5,
            pads: (1, 2, 3, 0), groups: 3, activation: .leakyRelu(alpha: 0.2)),
        ConvSpec(
            name: "depthwise 3×3 stride3", inC: 3, inH: 10, inW: 50, outC: 3, kH: 3, kW: 3, stride: (3, 3),
            pads: (1, 1, 1, 1), groups: 3),
        ConvSpec(name: "depthwise no pad narrow", inC: 3, inH: 4, inW: 3, outC: 3, kH: 3, kW: 3, groups: 3),
        ConvSpec(
            name: "3×3 stride2 pad1 wide rows (vector im2col)", inC: 3, inH: 9, inW: 43, outC: 5, kH: 3, kW: 3,
            stride: (2, 2), pads: (1, 1, 1, 1), activation: .relu),
        // K·outW large enough that the im2col runs in several row bands (last band partial).
        ConvSpec(
            name: "3×3 64→5 banded im2col", inC: 64, inH: 31, inW: 40, outC: 5, kH: 3, kW: 3, pads: (1, 1, 1, 1)),
        // SiLU epilogues (YOLO): pointwise, 3×3 stride 2 (a stem the AVX2 kernel declines), depthwise.
        ConvSpec(name: "pointwise silu", inC: 24, inH: 9, inW: 37, outC: 17, kH: 1, kW: 1, activation: .silu),
        ConvSpec(
            name: "3×3 stride2 silu stem", inC: 3, inH: 20, inW: 34, outC: 16, kH: 3, kW: 3, stride: (2, 2),
            pads: (1, 1, 1, 1), activation: .silu),
        ConvSpec(
            name: "depthwise silu", inC: 8, inH: 12, inW: 21, outC: 8, kH: 3, kW: 3, pads: (1, 1, 1, 1), groups: 8,
            activation: .silu),
        ConvSpec(name: "pointwise hardswish", inC: 16, inH: 7, inW: 19, outC: 24, kH: 1, kW: 1, activation: .hardSwish),
    ]

    @Test("Conv matches onnxruntime (pointwise, im2col, groups, depthwise, pads, strides, dilations, activations)")
    func conv() throws {
        var cases: [RefCase] = []
        var data: [(x: [Float], w: [Float], b: [Float])] = []
        for (i, s) in Self.specs.enumerated() {
            let x = randomFloats(s.n * s.inC * s.inH * s.inW, seed: UInt64(100 + i))
            let wShape = [s.outC, s.inC / s.groups, s.kH, s.kW]
            let w = randomFloats(product(wShape), seed: UInt64(200 + i))
            let b = randomFloats(s.outC, seed: UInt64(300 + i))
            data.append((x, w, b))
            var inputs: [RefInput] = [.floats(x, shape: [s.n, s.inC, s.inH, s.inW]), .floats(w, shape: wShape)]
            if s.bias { inputs.append(.floats(b, shape: [s.outC])) }
            cases.append(
                RefCase(
                    name: s.name, op: "Conv", opset: 13,
                    attrs: [
                        "kernel_shape": .ints([s.kH, s.kW]), "strides": .ints([s.stride.0, s.stride.1]),
                        "pads": .ints([s.pads.0, s.pads.1, s.pads.2, s.pads.3]),
                        "dilations": .ints([s.dilation.0, s.dilation.1]), "group": .i(s.groups),
                    ], inputs: inputs))
        }
        let ref = try runReference(cases)
        for (i, s) in Self.specs.enumerated() {
            let p = s.params
            var y = [Float](repeating: .nan, count: s.n * p.outC * p.outH * p.outW)
            var scratch = [Float](repeating: .nan, count: max(1, Kernels.conv2dScratchCount(p)))
            let (x, w, b) = data[i]
            withPointers(x, w) { px, pw in
                b.withUnsafeBufferPointer { pb in
                    Kernels.conv2d(
                        p, n: s.n, input: px, weight: pw, bias: s.bias ? pb.baseAddress! : nil,
                        output: &y, scratch: &scratch, activation: s.activation)
                }
            }
            var r = ref[s.name]?.first
            if let raw = r?.data { r?.data = applyActivation(raw, s.activation) }
            expectMatches(y, shape: [s.n, p.outC, p.outH, p.outW], r, "Conv \(s.name)")
        }
    }

    @Test("Conv2DParams classifies pointwise and depthwise")
    func classification() {
        #expect(Self.specs[0].params.isPointwise)
        #expect(!Self.specs[3].params.isPointwise)
        #expect(Self.specs[10].params.isDepthwise)
        #expect(!Self.specs[7].params.isDepthwise)
        #expect(Kernels.conv2dScratchCount(Self.specs[0].params) == 0)
        #expect(Kernels.conv2dScratchCount(Self.specs[10].params) == 0)
        let banded = Self.specs[Self.specs.count - 1].params
        #expect(Kernels.conv2dScratchCount(banded) < 64 * 9 * banded.outH * banded.outW, "im2col runs in bands")
    }
}

// MARK: - ConvTranspose

struct ConvTransposeSpec {
    var name: String
    var n = 1
    var inC: Int, inH: Int, inW: Int, outC: Int
    var kH: Int, kW: Int
    var stride = (1, 1)
    var pads = (0, 0, 0, 0)
    var outputPadding = (0, 0)
    var dilation = (1, 1)
    var groups = 1
    var bias = true
    var activation: Kernels.Activation = .none

    var params: ConvTranspose2DParams {
        let outH = ConvTranspose2DParams.outputSize(
            input: inH, kernel: kH, stride: stride.0, padBegin: pads.0, padEnd: pads.2, dilation: dilation.0,
            outputPadding: outputPadding.0)
        let outW = ConvTranspose2DParams.outputSize(
            input: inW, kernel: kW, stride: stride.1, padBegin: pads.1, padEnd: pads.3, dilation: dilation.1,
            outputPadding: outputPadding.1)
        return ConvTranspose2DParams(
            inC: inC, inH: inH, inW: inW, outC: outC, outH: outH, outW: outW, kH: kH, kW: kW, strideH: stride.0,
            strideW: stride.1, padTop: pads.0, padLeft: pads.1, dilationH: dilation.0, dilationW: dilation.1,
            groups: groups)
    }
}

@Suite("KernelTests.ConvTranspose")
struct KernelTestsConvTranspose {
    static let specs: [ConvTransposeSpec] = [
        ConvTransposeSpec(name: "k2 s2 (upsample)", inC: 13, inH: 7, inW: 5, outC: 3, kH: 2, kW: 2, stride: (2, 2)),
        ConvTransposeSpec(
            name: "k4 s2 p1", n: 2, inC: 3, inH: 7, inW: 5, outC: 4, kH: 4, kW: 4, stride: (2, 2),
            pads: (1, 1, 1, 1), activation: .relu),
        ConvTransposeSpec(
            name: "k3 s2 p1 outpad1", inC: 4, inH: 5, inW: 6, outC: 5, kH: 3, kW: 3, stride: (2, 2),
            pads: (1, 1, 1, 1), outputPadding: (1, 1)),
        ConvTransposeSpec(
            name: "groups2 asym pads", inC: 6, inH: 5, inW: 7, outC: 4, kH: 3, kW: 3, stride: (2, 1),
            pads: (0, 1, 2, 0), groups: 2),
        ConvTransposeSpec(
            name: "dilation2 no bias", inC: 3, inH: 6, inW: 5, outC: 2, kH: 3, kW: 3,
            stride: (1, 2), pads: (1, 0, 0, 2), dilation: (2, 2), bias: false),
        ConvTransposeSpec(
            name: "depthwise-like groups3 k4 s2", inC: 3, inH: 7, inW: 9, outC: 3, kH: 4, kW: 4,
            stride: (2, 2), pads: (1, 1, 1, 1), groups: 3),
        ConvTransposeSpec(name: "1×1 stride1", inC: 5, inH: 7, inW: 5, outC: 13, kH: 1, kW: 1),
    ]

    @Test("ConvTranspose matches onnxruntime (strides, pads, output_padding, dilations, groups)")
    func convTranspose() throws {
        var cases: [RefCase] = []
        var data: [(x: [Float], w: [Float], b: [Float])] = []
        for (i, s) in Self.specs.enumerated() {
            let x = randomFloats(s.n * s.inC * s.inH * s.inW, seed: UInt64(400 + i))
            let wShape = [s.inC, s.outC / s.groups, s.kH, s.kW]
            let w = randomFloats(product(wShape), seed: UInt64(500 + i))
            let b = randomFloats(s.outC, seed: UInt64(600 + i))
            data.append((x, w, b))
            var inputs: [RefInput] = [.floats(x, shape: [s.n, s.inC, s.inH, s.inW]), .floats(w, shape: wShape)]
            if s.bias { inputs.append(.floats(b, shape: [s.outC])) }
            cases.append(
                RefCase(
                    name: s.name, op: "ConvTranspose", opset: 13,
                    attrs: [
                        "kernel_shape": .ints([s.kH, s.kW]), "strides": .ints([s.stride.0, s.stride.1]),
                        "pads": .ints([s.pads.0, s.pads.1, s.pads.2, s.pads.3]),
                        "output_padding": .ints([s.outputPadding.0, s.outputPadding.1]),
                        "dilations": .ints([s.dilation.0, s.dilation.1]), "group": .i(s.groups),
                    ], inputs: inputs))
        }
        let ref = try runReference(cases)
        for (i, s) in Self.specs.enumerated() {
            let p = s.params
            var y = [Float](repeating: .nan, count: s.n * p.outC * p.outH * p.outW)
            var scratch = [Float](repeating: .nan, count: Kernels.convTranspose2dScratchCount(p))
            let (x, w, b) = data[i]
            withPointers(x, w) { px, pw in
                b.withUnsafeBufferPointer { pb in
                    Kernels.convTranspose2d(
                        p, n: s.n, input: px, weight: pw, bias: s.bias ? pb.baseAddress! : nil, output: &y,
                        scratch: &scratch, activation: s.activation)
                }
            }
            var r = ref[s.name]?.first
            if let raw = r?.data { r?.data = applyActivation(raw, s.activation) }
            expectMatches(y, shape: [s.n, p.outC, p.outH, p.outW], r, "ConvTranspose \(s.name)")
        }
    }
}

// MARK: - BatchNormalization and unary ops

@Suite("KernelTests.Elementwise")
struct KernelTestsElementwise {
    @Test("BatchNormalization (inference) matches onnxruntime")
    func batchNorm() throws {
        let shapes: [[Int]] = [[2, 13, 7, 5], [1, 3, 17, 19], [3, 4, 1, 1]]
        var cases: [RefCase] = []
        var data: [[[Float]]] = []
        for (i, sh) in shapes.enumerated() {
            let c = sh[1]
            let x = randomFloats(product(sh), seed: UInt64(700 + i), lo: -3, hi: 3)
            let scale = randomFloats(c, seed: UInt64(710 + i))
            let bias = randomFloats(c, seed: UInt64(720 + i))
            let mean = randomFloats(c, seed: UInt64(730 + i))
            let variance = randomFloats(c, seed: UInt64(740 + i), lo: 0.05, hi: 2)
            data.append([x, scale, bias, mean, variance])
            cases.append(
                RefCase(
                    name: "bn\(i)", op: "BatchNormalization", opset: 15, attrs: ["epsilon": .f(1e-3)],
                    inputs: [
                        .floats(x, shape: sh), .floats(scale, shape: [c]), .floats(bias, shape: [c]),
                        .floats(mean, shape: [c]), .floats(variance, shape: [c]),
                    ]))
        }
        let ref = try runReference(cases)
        for (i, sh) in shapes.enumerated() {
            let d = data[i]
            var y = [Float](repeating: .nan, count: product(sh))
            withPointers(d[0], d[1]) { x, scale in
                withPointers(d[2], d[3]) { bias, mean in
                    d[4].withUnsafeBufferPointer { v in
                        Kernels.batchNorm(
                            n: sh[0], channels: sh[1], spatial: sh[2] * sh[3], input: x, scale: scale, bias: bias,
                            mean: mean, variance: v.baseAddress!, epsilon: 1e-3, output: &y)
                    }
                }
            }
            expectMatches(y, shape: sh, ref["bn\(i)"]?.first, "BatchNormalization \(sh)")
        }
    }

    @Test("Unary activations match onnxruntime")
    func unary() throws {
        let shape = [2, 3, 7, 5]
        let x = randomFloats(product(shape), seed: 800, lo: -8, hi: 8)
        let ops: [(String, Kernels.UnaryOp, RefCase)] = [
            ("Relu", .relu, RefCase(name: "Relu", op: "Relu", opset: 14, inputs: [.floats(x, shape: shape)])),
            (
                "LeakyRelu", .leakyRelu(alpha: 0.07),
                RefCase(
                    name: "LeakyRelu", op: "LeakyRelu", opset: 16, attrs: ["alpha": .f(0.07)],
                    inputs: [.floats(x, shape: shape)])
            ),
            (
                "Clip", .clip(min: -1.5, max: 2.25),
                RefCase(
                    name: "Clip", op: "Clip", opset: 13,
                    inputs: [.floats(x, shape: shape), .floats([-1.5], shape: []), .floats([2.25], shape: [])])
            ),
            (
                "Clip6", .clip(min: 0, max: 6),
                RefCase(
                    name: "Clip6", op: "Clip", opset: 6, attrs: ["min": .f(0), "max": .f(6)],
                    inputs: [.floats(x, shape: shape)])
            ),
            (
                "Sigmoid", .sigmoid,
                RefCase(name: "Sigmoid", op: "Sigmoid", opset: 13, inputs: [.floats(x, shape: shape)])
            ),
            (
                "HardSigmoid", .hardSigmoid(alpha: 0.3, beta: 0.4),
                RefCase(
                    name: "HardSigmoid", op: "HardSigmoid", opset: 6, attrs: ["alpha": .f(0.3), "beta": .f(0.4)],
                    inputs: [.floats(x, shape: shape)])
            ),
            (
                "HardSigmoidDefault", .hardSigmoid(alpha: 0.2, beta: 0.5),
                RefCase(name: "HardSigmoidDefault", op: "HardSigmoid", opset: 6, inputs: [.floats(x, shape: shape)])
            ),
            (
                "HardSwish", .hardSwish,
                RefCase(name: "HardSwish", op: "HardSwish", opset: 14, inputs: [.floats(x, shape: shape)])
            ),
            ("Tanh", .tanh, RefCase(name: "Tanh", op: "Tanh", opset: 13, inputs: [.floats(x, shape: shape)])),
        ]
        let ref = try runReference(ops.map { $0.2 })
        for (name, op, _) in ops {
            var y = [Float](repeating: .nan, count: x.count)
            x.withUnsafeBufferPointer { Kernels.unary(op, input: $0.baseAddress!, output: &y, count: x.count) }
            expectMatches(y, shape: shape, ref[name]?.first, "Unary \(name)")
            // In place gives the same result.
            var z = x
            z.withUnsafeMutableBufferPointer {
                Kernels.unary(op, input: $0.baseAddress!, output: $0.baseAddress!, count: x.count)
            }
            #expect(z == y, "Unary \(name) in place")
        }
    }

    @Test("PRelu with per-channel, full and broadcast slopes matches onnxruntime")
    func prelu() throws {
        let xShape = [2, 13, 7, 5]
        let x = randomFloats(product(xShape), seed: 900)
        let slopes: [[Int]] = [[13, 1, 1], [1, 13, 1, 1], [13, 7, 5], [1], [5], [2, 13, 7, 5]]
        var cases: [RefCase] = []
        var slopeData: [[Float]] = []
        for (i, s) in slopes.enumerated() {
            let sl = randomFloats(product(s), seed: UInt64(910 + i), lo: 0, hi: 0.5)
            slopeData.append(sl)
            cases.append(
                RefCase(
                    name: "prelu\(i)", op: "PRelu", opset: 16,
                    inputs: [.floats(x, shape: xShape), .floats(sl, shape: s)]))
        }
        let ref = try runReference(cases)
        for (i, s) in slopes.enumerated() {
            var y = [Float](repeating: .nan, count: x.count)
            withPointers(x, slopeData[i]) { px, ps in
                Kernels.prelu(input: px, shape: xShape, slope: ps, slopeShape: s, output: &y)
            }
            expectMatches(y, shape: xShape, ref["prelu\(i)"]?.first, "PRelu slope \(s)")
        }
    }
}

// MARK: - Binary broadcasting

@Suite("KernelTests.Binary")
struct KernelTestsBinary {
    static let pairs: [([Int], [Int])] = [
        ([2, 13, 7, 5], [2, 13, 7, 5]),  // same shape
        ([2, 13, 7, 5], [1, 13, 1, 1]),  // per channel
        ([1, 13, 1, 1], [2, 13, 7, 5]),  // per channel, swapped
        ([2, 13, 7, 5], [13, 1, 1]),  // per channel, lower rank
        ([2, 3, 7, 5], []),  // scalar
        ([], [2, 3, 7, 5]),  // scalar first
        ([2, 3, 7, 5], [5]),  // last dim
        ([2, 1, 7, 1], [1, 3, 1, 5]),  // both broadcast
        ([3, 1, 5], [2, 1, 4, 1]),  // odd ranks
        ([1], [1]),  // single element
        ([4, 1], [1, 37]),  // outer product, wide
        ([2, 3, 1, 17], [2, 3, 9, 17]),  // broadcast middle
        ([6, 40], [6, 40]),  // same shape, SIMD tail
    ]

    @Test("Add, Sub, Mul, Div with numpy broadcasting match onnxruntime")
    func binary() throws {
        let ops: [(String, Kernels.BinaryOp)] = [("Add", .add), ("Sub", .sub), ("Mul", .mul), ("Div", .div)]
        var cases: [RefCase] = []
        var data: [([Float], [Float])] = []
        for (i, (sa, sb)) in Self.pairs.enumerated() {
            let a = randomFloats(product(sa), seed: UInt64(1000 + i), lo: -4, hi: 4)
            // Keep |b| ≥ 0.5 so Div is well conditioned.
            let b = randomFloats(product(sb), seed: UInt64(1100 + i)).map { $0 < 0 ? $0 - 0.5 : $0 + 0.5 }
            data.append((a, b))
            for (name, _) in ops {
                cases.append(
                    RefCase(
                        name: "\(name)\(i)", op: name, opset: 14,
                        inputs: [.floats(a, shape: sa), .floats(b, shape: sb)]))
            }
        }
        let ref = try runReference(cases)
        for (i, (sa, sb)) in Self.pairs.enumerated() {
            let outShape = try #require(Kernels.broadcastShape(sa, sb))
            for (name, op) in ops {
                var y = [Float](repeating: .nan, count: product(outShape))
                withPointers(data[i].0, data[i].1) { pa, pb in
                    Kernels.binary(op, a: pa, aShape: sa, b: pb, bShape: sb, output: &y)
                }
                expectMatches(y, shape: outShape, ref["\(name)\(i)"]?.first, "\(name) \(sa) with \(sb)")
            }
        }
    }

    @Test("broadcastShape rejects incompatible shapes")
    func incompatible() {
        #expect(Kernels.broadcastShape([2, 3], [4, 3]) == nil)
        #expect(Kernels.broadcastShape([3], [2, 1]) == [2, 3])
        #expect(Kernels.broadcastShape([0, 1], [1, 5]) == [0, 5])
    }
}

// MARK: - Concat, Split, Transpose

@Suite("KernelTests.Layout")
struct KernelTestsLayout {
    @Test("Concat matches onnxruntime on several axes")
    func concat() throws {
        let specs: [(shapes: [[Int]], axis: Int)] = [
            ([[2, 3, 7, 5], [2, 13, 7, 5], [2, 1, 7, 5]], 1),
            ([[1, 3, 7, 5], [2, 3, 7, 5]], 0),
            ([[2, 3, 7, 5], [2, 3, 7, 2], [2, 3, 7, 1]], 3),
            ([[2, 3, 4, 5], [2, 3, 1, 5]], 2),
            ([[3, 4], [3, 0], [3, 2]], 1),
            ([[7]], 0),
        ]
        var cases: [RefCase] = []
        var data: [[[Float]]] = []
        for (i, s) in specs.enumerated() {
            let xs = s.shapes.enumerated().map {
                randomFloats(product($0.element), seed: UInt64(1200 + 10 * i + $0.offset))
            }
            data.append(xs)
            cases.append(
                RefCase(
                    name: "concat\(i)", op: "Concat", opset: 13, attrs: ["axis": .i(s.axis)],
                    inputs: zip(xs, s.shapes).map { .floats($0.0, shape: $0.1) }))
        }
        let ref = try runReference(cases)
        for (i, s) in specs.enumerated() {
            var outShape = s.shapes[0]
            outShape[s.axis] = s.shapes.reduce(0) { $0 + $1[s.axis] }
            var y = [Float](repeating: .nan, count: product(outShape))
            // Keep every input alive while its pointer is used.
            let bufs = data[i].map { arr -> UnsafeMutablePointer<Float> in
                let p = UnsafeMutablePointer<Float>.allocate(capacity: max(1, arr.count))
                p.initialize(from: arr, count: arr.count)
                return p
            }
            defer { bufs.forEach { $0.deallocate() } }
            Kernels.concat(inputs: bufs.map { UnsafePointer($0) }, shapes: s.shapes, axis: s.axis, output: &y)
            expectMatches(y, shape: outShape, ref["concat\(i)"]?.first, "Concat axis \(s.axis) \(s.shapes)")
        }
    }

    @Test("Split matches onnxruntime")
    func split() throws {
        let specs: [(shape: [Int], axis: Int, sizes: [Int])] = [
            ([2, 13, 7, 5], 1, [3, 4, 6]),
            ([2, 3, 7, 5], 2, [1, 6]),
            ([2, 3, 7, 5], 3, [2, 2, 1]),
            ([4, 3, 5], 0, [1, 3]),
        ]
        var cases: [RefCase] = []
        var data: [[Float]] = []
        for (i, s) in specs.enumerated() {
            let x = randomFloats(product(s.shape), seed: UInt64(1300 + i))
            data.append(x)
            cases.append(
                RefCase(
                    name: "split\(i)", op: "Split", opset: 13, attrs: ["axis": .i(s.axis)],
                    inputs: [.floats(x, shape: s.shape), .int64(s.sizes, shape: [s.sizes.count])],
                    numOutputs: s.sizes.count))
        }
        let ref = try runReference(cases)
        for (i, s) in specs.enumerated() {
            let shapes = s.sizes.map { sz -> [Int] in
                var sh = s.shape
                sh[s.axis] = sz
                return sh
            }
            let outs = shapes.map { UnsafeMutablePointer<Float>.allocate(capacity: product($0)) }
            defer { outs.forEach { $0.deallocate() } }
            data[i].withUnsafeBufferPointer {
                Kernels.split(input: $0.baseAddress!, shape: s.shape, axis: s.axis, sizes: s.sizes, outputs: outs)
            }
            for (k, sh) in shapes.enumerated() {
                let y = Array(UnsafeBufferPointer(start: outs[k], count: product(sh)))
                expectMatches(y, shape: sh, ref["split\(i)"]?[k], "Split \(s.shape) axis \(s.axis) part \(k)")
            }
        }
    }

    @Test("Transpose matches onnxruntime for several perms")
    func transpose() throws {
        let specs: [(shape: [Int], perm: [Int])] = [
            ([2, 13, 7, 5], [0, 2, 3, 1]),
            ([2, 7, 5, 13], [0, 3, 1, 2]),
            ([13, 37], [1, 0]),
            ([3, 4, 5], [2, 0, 1]),
            ([2, 3, 1, 4, 5], [4, 2, 0, 3, 1]),
            ([2, 3, 4], [0, 1, 2]),
            ([1, 6, 1, 5], [2, 0, 3, 1]),
        ]
        var cases: [RefCase] = []
        var data: [[Float]] = []
        for (i, s) in specs.enumerated() {
            let x = randomFloats(product(s.shape), seed: UInt64(1400 + i))
            data.append(x)
            cases.append(
                RefCase(
                    name: "tr\(i)", op: "Transpose", opset: 13, attrs: ["perm": .ints(s.perm)],
                    inputs: [.floats(x, shape: s.shape)]))
        }
        let ref = try runReference(cases)
        for (i, s) in specs.enumerated() {
            let outShape = s.perm.map { s.shape[$0] }
            var y = [Float](repeating: .nan, count: data[i].count)
            data[i].withUnsafeBufferPointer {
                Kernels.transpose(input: $0.baseAddress!, shape: s.shape, perm: s.perm, output: &y)
            }
            expectMatches(y, shape: outShape, ref["tr\(i)"]?.first, "Transpose \(s.shape) perm \(s.perm)")
        }
    }
}
