// Resize, pooling, Softmax, Gemm and MatMul kernels against onnxruntime.
// Tolerance everywhere: max |actual − reference| ≤ 1e-4 · max(1, max |reference|) (see KernelTestsSupport.swift).

import SkipNet
import Testing

// MARK: - Resize

@Suite("KernelTests.Resize")
struct KernelTestsResize {
    enum Target {
        case scales(Float, Float)
        case sizes(Int, Int)
    }

    @Test("Resize nearest (all nearest modes) and linear under every coordinate transform match onnxruntime")
    func resize() throws {
        let inShape = [2, 3, 7, 5]
        let x = randomFloats(product(inShape), seed: 1500)
        let coords: [(String, Kernels.CoordinateTransform)] = [
            ("half_pixel", .halfPixel), ("asymmetric", .asymmetric), ("align_corners", .alignCorners),
            ("pytorch_half_pixel", .pytorchHalfPixel), ("half_pixel_symmetric", .halfPixelSymmetric),
        ]
        let nearestModes: [(String, Kernels.NearestMode)] = [
            ("round_prefer_floor", .roundPreferFloor), ("round_prefer_ceil", .roundPreferCeil), ("floor", .floor),
            ("ceil", .ceil),
        ]
        let targets: [Target] = [
            .scales(2, 2), .scales(1.7, 2.5), .scales(0.5, 0.6), .sizes(11, 13), .sizes(3, 4), .sizes(1, 9),
            .scales(3, 1),
        ]
        var modes: [(String, Kernels.ResizeMode, [String: RefAttr])] = []
        for (nn, nm) in nearestModes {
            modes.append(("nearest/\(nn)", .nearest(nm), ["mode": .s("nearest"), "nearest_mode": .s(nn)]))
        }
        modes.append(("linear", .linear, ["mode": .s("linear")]))

        struct Item {
            var name: String
            var mode: Kernels.ResizeMode
            var coord: Kernels.CoordinateTransform
            var outH: Int, outW: Int
            var scaleH: Float, scaleW: Float
        }
        var items: [Item] = []
        var cases: [RefCase] = []
        for (mName, mode, mAttrs) in modes {
            for (cName, coord) in coords {
                for (ti, t) in targets.enumerated() {
                    let name = "\(mName) \(cName) target\(ti)"
                    var attrs = mAttrs
                    attrs["coordinate_transformation_mode"] = .s(cName)
                    var inputs: [RefInput] = [.floats(x, shape: inShape), .omitted]
                    let item: Item
                    switch t {
                    case .scales(let sh, let sw):
                        inputs.append(.floats([1, 1, sh, sw], shape: [4]))
                        // onnxruntime: output = floor(input · scale).
                        let oh = Int((Float(inShape[2]) * sh).rounded(.down))
                        let ow = Int((Float(inShape[3]) * sw).rounded(.down))
                        item = Item(name: name, mode: mode, coord: coord, outH: oh, outW: ow, scaleH: sh, scaleW: sw)
                    case .sizes(let oh, let ow):
                        inputs.append(.omitted)
                        inputs.append(.int64([inShape[0], inShape[1], oh, ow], shape: [4]))
                        item = Item(
                            name: name, mode: mode, coord: coord, outH: oh, outW: ow,
                            scaleH: Float(oh) / Float(inShape[2]), scaleW: Float(ow) / Float(inShape[3]))
                    }
                    items.append(item)
                    cases.append(RefCase(name: name, op: "Resize", opset: 19, attrs: attrs, inputs: inputs))
                }
            }
        }
        let ref = try runReference(cases)
        for it in items {
            var y = [Float](repeating: .nan, count: inShape[0] * inShape[1] * it.outH * it.outW)
            x.withUnsafeBufferPointer {
                Kernels.resize2d(
                    n: inShape[0], c: inShape[1], inH: inShape[2], inW: inShape[3], outH: it.outH, outW: it.outW,
                    scaleH: it.scaleH, scaleW: it.scaleW, mode: it.mode, coordinate: it.coord,
                    input: $0.baseAddress!, output: &y)
            }
            expectMatches(
                y, shape: [inShape[0], inShape[1], it.outH, it.outW], ref[it.name]?.first, "Resize \(it.name)")
        }
    }

    @Test("Upsample (opset 9, nearest and linear scales) matches onnxruntime")
    func upsample() throws {
        let inShape = [1, 13, 7, 5]
        let x = randomFloats(product(inShape), seed: 1550)
        let cases = [
            RefCase(
                name: "up nearest", op: "Upsample", opset: 9, attrs: ["mode": .s("nearest")],
                inputs: [.floats(x, shape: inShape), .floats([1, 1, 2, 2], shape: [4])]),
            RefCase(
                name: "up linear", op: "Upsample", opset: 9, attrs: ["mode": .s("linear")],
                inputs: [.floats(x, shape: inShape), .floats([1, 1, 2, 3], shape: [4])]),
        ]
        let ref = try runReference(cases)
        // Upsample (opset 9) = Resize with asymmetric coordinates, nearest_mode floor.
        for (name, mode, sh, sw) in [
            ("up nearest", Kernels.ResizeMode.nearest(.floor), Float(2), Float(2)),
            ("up linear", .linear, 2, 3),
        ] {
            let oh = Int(Float(inShape[2]) * sh)
            let ow = Int(Float(inShape[3]) * sw)
            var y = [Float](repeating: .nan, count: inShape[1] * oh * ow)
            x.withUnsafeBufferPointer {
                Kernels.resize2d(
                    n: 1, c: inShape[1], inH: inShape[2], inW: inShape[3], outH: oh, outW: ow, scaleH: sh, scaleW: sw,
                    mode: mode, coordinate: .asymmetric, input: $0.baseAddress!, output: &y)
            }
            expectMatches(y, shape: [1, inShape[1], oh, ow], ref[name]?.first, "Upsample \(name)")
        }
    }
}

// MARK: - Pooling

@Suite("KernelTests.Pool")
struct KernelTestsPool {
    struct Spec {
        var name: String
        var shape: [Int]
        var k: (Int, Int)
        var stride: (Int, Int)
        var pads = (0, 0, 0, 0)
        var dilation = (1, 1)
        var ceil = false
        var includePad = false
    }

    static let specs: [Spec] = [
        Spec(name: "k3 s2 p1", shape: [2, 3, 7, 5], k: (3, 3), stride: (2, 2), pads: (1, 1, 1, 1)),
        Spec(name: "k3 s2 p1 ceil", shape: [2, 3, 7, 5], k: (3, 3), stride: (2, 2), pads: (1, 1, 1, 1), ceil: true),
        Spec(name: "k2 s2 ceil odd", shape: [1, 13, 7, 5], k: (2, 2), stride: (2, 2), ceil: true),
        Spec(name: "k2 s2 floor odd", shape: [1, 13, 7, 5], k: (2, 2), stride: (2, 2)),
        Spec(name: "k3 s1 asym pads", shape: [1, 3, 7, 5], k: (3, 2), stride: (1, 1), pads: (0, 1, 2, 0)),
        Spec(name: "k5 s1 p2 (SPPF)", shape: [1, 4, 9, 37], k: (5, 5), stride: (1, 1), pads: (2, 2, 2, 2)),
        Spec(
            name: "k3 s2 include pad", shape: [2, 3, 9, 8], k: (3, 3), stride: (2, 2), pads: (1, 1, 1, 1),
            includePad: true),
        Spec(
            name: "k3 s2 include pad ceil", shape: [1, 3, 8, 7], k: (3, 3), stride: (2, 2), pads: (1, 1, 1, 1),
            ceil: true, includePad: true),
        Spec(name: "k5 s3 ceil", shape: [1, 2, 11, 13], k: (5, 4), stride: (3, 3), pads: (2, 1, 2, 1), ceil: true),
    ]

    @Test("MaxPool and AveragePool match onnxruntime (pads, ceil_mode, count_include_pad, dilations)")
    func pools() throws {
        var cases: [RefCase] = []
        var data: [[Float]] = []
        var maxDilated: [Spec] = [
            Spec(
                name: "max dilation2", shape: [1, 3, 11, 9], k: (3, 3), stride: (1, 2), pads: (2, 1, 2, 1),
                dilation: (2, 2)),
            Spec(
                name: "max dilation2 ceil", shape: [1, 3, 10, 9], k: (2, 3), stride: (2, 2), pads: (0, 1, 0, 1),
                dilation: (2, 2), ceil: true),
        ]
        maxDilated.append(contentsOf: Self.specs)
        for (i, s) in maxDilated.enumerated() {
            let x = randomFloats(product(s.shape), seed: UInt64(1600 + i), lo: -2, hi: 2)
            data.append(x)
            let pads = RefAttr.ints([s.pads.0, s.pads.1, s.pads.2, s.pads.3])
            cases.append(
                RefCase(
                    name: "max\(i)", op: "MaxPool", opset: 12,
                    attrs: [
                        "kernel_shape": .ints([s.k.0, s.k.1]), "strides": .ints([s.stride.0, s.stride.1]), "pads": pads,
                        "dilations": .ints([s.dilation.0, s.dilation.1]), "ceil_mode": .i(s.ceil ? 1 : 0),
                    ], inputs: [.floats(x, shape: s.shape)]))
            if s.dilation == (1, 1) {
                cases.append(
                    RefCase(
                        name: "avg\(i)", op: "AveragePool", opset: 11,
                        attrs: [
                            "kernel_shape": .ints([s.k.0, s.k.1]), "strides": .ints([s.stride.0, s.stride.1]),
                            "pads": pads, "ceil_mode": .i(s.ceil ? 1 : 0),
                            "count_include_pad": .i(s.includePad ? 1 : 0),
                        ], inputs: [.floats(x, shape: s.shape)]))
            }
        }
        let ref = try runReference(cases)
        for (i, s) in maxDilated.enumerated() {
            let oh = Pool2DParams.outputSize(
                input: s.shape[2], kernel: s.k.0, stride: s.stride.0, padBegin: s.pads.0, padEnd: s.pads.2,
                dilation: s.dilation.0, ceilMode: s.ceil)
            let ow = Pool2DParams.outputSize(
                input: s.shape[3], kernel: s.k.1, stride: s.stride.1, padBegin: s.pads.1, padEnd: s.pads.3,
                dilation: s.dilation.1, ceilMode: s.ceil)
            let p = Pool2DParams(
                inH: s.shape[2], inW: s.shape[3], outH: oh, outW: ow, kH: s.k.0, kW: s.k.1, strideH: s.stride.0,
                strideW: s.stride.1, padTop: s.pads.0, padLeft: s.pads.1, padBottom: s.pads.2, padRight: s.pads.3,
                dilationH: s.dilation.0, dilationW: s.dilation.1)
            let planes = s.shape[0] * s.shape[1]
            let outShape = [s.shape[0], s.shape[1], oh, ow]
            var y = [Float](repeating: .nan, count: planes * oh * ow)
            data[i].withUnsafeBufferPointer { Kernels.maxPool2d(p, planes: planes, input: $0.baseAddress!, output: &y) }
            expectMatches(y, shape: outShape, ref["max\(i)"]?.first, "MaxPool \(s.name)")
            if s.dilation == (1, 1) {
                var z = [Float](repeating: .nan, count: planes * oh * ow)
                data[i].withUnsafeBufferPointer {
                    Kernels.averagePool2d(
                        p, planes: planes, countIncludePad: s.includePad, input: $0.baseAddress!, output: &z)
                }
                expectMatches(z, shape: outShape, ref["avg\(i)"]?.first, "AveragePool \(s.name)")
            }
        }
    }

    @Test("GlobalAveragePool and GlobalMaxPool match onnxruntime")
    func globalPools() throws {
        let shapes: [[Int]] = [[2, 13, 7, 5], [1, 3, 1, 1], [1, 4, 17, 19]]
        var cases: [RefCase] = []
        var data: [[Float]] = []
        for (i, sh) in shapes.enumerated() {
            let x = randomFloats(product(sh), seed: UInt64(1700 + i))
            data.append(x)
            cases.append(RefCase(name: "gap\(i)", op: "GlobalAveragePool", opset: 13, inputs: [.floats(x, shape: sh)]))
            cases.append(RefCase(name: "gmp\(i)", op: "GlobalMaxPool", opset: 13, inputs: [.floats(x, shape: sh)]))
        }
        let ref = try runReference(cases)
        for (i, sh) in shapes.enumerated() {
            let planes = sh[0] * sh[1]
            var y = [Float](repeating: .nan, count: planes)
            var z = [Float](repeating: .nan, count: planes)
            data[i].withUnsafeBufferPointer {
                Kernels.globalAveragePool(planes: planes, spatial: sh[2] * sh[3], input: $0.baseAddress!, output: &y)
                Kernels.globalMaxPool(planes: planes, spatial: sh[2] * sh[3], input: $0.baseAddress!, output: &z)
            }
            expectMatches(y, shape: [sh[0], sh[1], 1, 1], ref["gap\(i)"]?.first, "GlobalAveragePool \(sh)")
            expectMatches(z, shape: [sh[0], sh[1], 1, 1], ref["gmp\(i)"]?.first, "GlobalMaxPool \(sh)")
        }
    }
}

// MARK: - Softmax

@Suite("KernelTests.Softmax")
struct KernelTestsSoftmax {
    @Test("Softmax over one axis matches onnxruntime (opset 13 and the opset 11 2D coercion)")
    func softmax() throws {
        let shape = [2, 13, 7, 5]
        let x = randomFloats(product(shape), seed: 1800, lo: -6, hi: 6)
        let specs: [(String, Int, Int)] = [
            ("s13 axis1", 13, 1), ("s13 axis3", 13, 3), ("s13 axis0", 13, 0),
            ("s13 axis-1", 13, -1), ("s11 axis1", 11, 1), ("s11 axis2", 11, 2),
        ]
        let cases = specs.map {
            RefCase(
                name: $0.0, op: "Softmax", opset: $0.1, attrs: ["axis": .i($0.2)], inputs: [.floats(x, shape: shape)])
        }
        let ref = try runReference(cases)
        for (name, opset, a) in specs {
            let axis = a < 0 ? a + shape.count : a
            let outer = product(Array(shape[..<axis]))
            let axisSize = opset >= 13 ? shape[axis] : product(Array(shape[axis...]))
            let inner = opset >= 13 ? product(Array(shape[(axis + 1)...])) : 1
            var y = [Float](repeating: .nan, count: x.count)
            x.withUnsafeBufferPointer {
                Kernels.softmax(input: $0.baseAddress!, output: &y, outer: outer, axisSize: axisSize, inner: inner)
            }
            expectMatches(y, shape: shape, ref[name]?.first, "Softmax \(name)")
        }
    }
}

// MARK: - Gemm and MatMul

@Suite("KernelTests.Gemm")
struct KernelTestsGemm {
    @Test("Gemm (transA, transB, alpha, beta, C broadcast) matches onnxruntime")
    func gemm() throws {
        let (m, n, k) = (7, 13, 5)
        let cShapes: [[Int]?] = [nil, [], [n], [1, n], [m, 1], [m, n], [1]]
        var cases: [RefCase] = []
        struct Item {
            var name: String
            var ta: Bool, tb: Bool, alpha: Float, beta: Float
            var cShape: [Int]?
            var a: [Float], b: [Float], c: [Float]
        }
        var items: [Item] = []
        var idx = 0
        for ta in [false, true] {
            for tb in [false, true] {
                for cs in cShapes {
                    idx += 1
                    let a = randomFloats(m * k, seed: UInt64(1900 + idx))
                    let b = randomFloats(k * n, seed: UInt64(1950 + idx))
                    let c = randomFloats(product(cs ?? [1]), seed: UInt64(1990 + idx))
                    let alpha: Float = idx % 2 == 0 ? 1 : 0.75
                    let beta: Float = idx % 3 == 0 ? 1 : -1.25
                    let name = "gemm\(idx)"
                    var inputs: [RefInput] = [
                        .floats(a, shape: ta ? [k, m] : [m, k]), .floats(b, shape: tb ? [n, k] : [k, n]),
                    ]
                    if let cs { inputs.append(.floats(c, shape: cs)) }
                    cases.append(
                        RefCase(
                            name: name, op: "Gemm", opset: 13,
                            attrs: [
                                "transA": .i(ta ? 1 : 0), "transB": .i(tb ? 1 : 0), "alpha": .f(alpha),
                                "beta": .f(beta),
                            ],
                            inputs: inputs))
                    items.append(
                        Item(name: name, ta: ta, tb: tb, alpha: alpha, beta: beta, cShape: cs, a: a, b: b, c: c))
                }
            }
        }
        let ref = try runReference(cases)
        for it in items {
            var y = [Float](repeating: .nan, count: m * n)
            withPointers(it.a, it.b) { pa, pb in
                it.c.withUnsafeBufferPointer { pc in
                    Kernels.gemm(
                        a: pa, b: pb, c: it.cShape == nil ? nil : pc.baseAddress!, cShape: it.cShape ?? [], m: m, n: n,
                        k: k, transA: it.ta, transB: it.tb, alpha: it.alpha, beta: it.beta, output: &y)
                }
            }
            expectMatches(
                y, shape: [m, n], ref[it.name]?.first,
                "Gemm transA \(it.ta) transB \(it.tb) alpha \(it.alpha) beta \(it.beta) C \(String(describing: it.cShape))"
            )
        }
    }

    @Test("MatMul (2D, batched, broadcast batch dims, 1D operands) matches onnxruntime")
    func matmul() throws {
        let pairs: [([Int], [Int])] = [
            ([7, 5], [5, 13]),
            ([2, 3, 4, 5], [5, 6]),
            ([3, 1, 4, 5], [2, 5, 6]),
            ([2, 4, 5], [2, 5, 3]),
            ([4, 5], [3, 5, 2]),
            ([5], [5, 3]),
            ([4, 5], [5]),
            ([5], [2, 5, 3]),
            ([2, 3, 4, 5], [5]),
            ([1, 4, 5], [3, 5, 2]),
        ]
        var cases: [RefCase] = []
        var data: [([Float], [Float])] = []
        for (i, (sa, sb)) in pairs.enumerated() {
            let a = randomFloats(product(sa), seed: UInt64(2100 + i))
            let b = randomFloats(product(sb), seed: UInt64(2200 + i))
            data.append((a, b))
            cases.append(
                RefCase(
                    name: "mm\(i)", op: "MatMul", opset: 13, inputs: [.floats(a, shape: sa), .floats(b, shape: sb)]))
        }
        let ref = try runReference(cases)
        for (i, (sa, sb)) in pairs.enumerated() {
            let outShape = try #require(Kernels.matmulShape(sa, sb))
            var y = [Float](repeating: .nan, count: product(outShape))
            withPointers(data[i].0, data[i].1) { pa, pb in
                Kernels.matmul(a: pa, aShape: sa, b: pb, bShape: sb, output: &y)
            }
            expectMatches(y, shape: outShape, ref["mm\(i)"]?.first, "MatMul \(sa) × \(sb)")
        }
    }
}
