import Testing

@testable import SkipNet

/// `WindowMap`'s footprint and commit sets against their definitions evaluated position by position (every
/// output's window listed from the conv's geometry), on seeded random masks and geometries: strides beyond the
/// kernel (inputs no output reads), padding, dilation (windows with holes), tiled and scattered masks.
@Suite struct WindowMapTests {
    /// (kernel, stride, pad, dilation) on both axes.
    @Test(arguments: [
        (3, 1, 1, 1), (3, 2, 1, 1), (1, 1, 0, 1), (1, 2, 0, 1), (2, 4, 0, 1), (5, 2, 2, 1), (3, 1, 2, 2), (4, 3, 3, 1),
    ])
    func footprintAndCommitMatchTheirDefinitions(kernel: Int, stride: Int, pad: Int, dilation: Int) {
        let g = (kernel: kernel, stride: stride, pad: pad, dilation: dilation)
        let (inH, inW) = (23, 37)
        let outH = Conv2DParams.outputSize(
            input: inH, kernel: g.kernel, stride: g.stride, padBegin: g.pad, padEnd: g.pad, dilation: g.dilation)
        let outW = Conv2DParams.outputSize(
            input: inW, kernel: g.kernel, stride: g.stride, padBegin: g.pad, padEnd: g.pad, dilation: g.dilation)
        let p = Conv2DParams(
            inC: 1, inH: inH, inW: inW, outC: 1, outH: outH, outW: outW, kH: g.kernel, kW: g.kernel,
            strideH: g.stride, strideW: g.stride, padTop: g.pad, padLeft: g.pad, padBottom: g.pad, padRight: g.pad,
            dilationH: g.dilation, dilationW: g.dilation)
        // window(o) along one axis, straight from the geometry.
        func window(_ o: Int, _ size: Int) -> [Int] {
            (0..<g.kernel).map { o * g.stride - g.pad + $0 * g.dilation }.filter { $0 >= 0 && $0 < size }
        }
        // The outputs reading each input, from the windows.
        var readersOf = [[(Int, Int)]](repeating: [], count: inH * inW)
        for oy in 0..<outH {
            for ox in 0..<outW {
                for iy in window(oy, inH) {
                    for ix in window(ox, inW) { readersOf[iy * inW + ix].append((oy, ox)) }
                }
            }
        }
        var map = WindowMap(p)
        var rng = SeededGenerator(seed: UInt64(g.kernel * 100 + g.stride * 10 + g.dilation))
        for density in [0.02, 0.2, 0.6, 0.95] {
            for tiled in [false, true] {
                let input = SpatialMask(width: inW, height: inH)
                let active = SpatialMask(width: outW, height: outH)
                for y in 0..<inH {
                    for x in 0..<inW where Double.random(in: 0..<1, using: &rng) < density { input.set(x: x, y: y) }
                }
                for y in 0..<outH {
                    for x in 0..<outW where Double.random(in: 0..<1, using: &rng) < density { active.set(x: x, y: y) }
                }
                if tiled {
                    input.tileUp(4)
                    active.tileUp(3)
                }
                let footprint = SpatialMask(width: outW, height: outH)
                map.footprint(of: input, into: footprint)
                var expected = 0
                for oy in 0..<outH {
                    for ox in 0..<outW {
                        let reads = window(oy, inH).contains { iy in window(ox, inW).contains { input[$0, iy] } }
                        #expect(footprint[ox, oy] == reads, "footprint at \(ox),\(oy), density \(density)")
                        if reads { expected += 1 }
                    }
                }
                #expect(footprint.count == expected)
                let commit = SpatialMask(width: inW, height: inH)
                map.committable(active, into: commit)
                expected = 0
                for iy in 0..<inH {
                    for ix in 0..<inW {
                        let readers = readersOf[iy * inW + ix]
                        let committable = !readers.isEmpty && readers.allSatisfy { active[$0.1, $0.0] }
                        #expect(commit[ix, iy] == committable, "commit at \(ix),\(iy), density \(density)")
                        if committable { expected += 1 }
                    }
                }
                #expect(commit.count == expected)
            }
        }
    }
}
