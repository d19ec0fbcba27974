import PipelineKit
import Plugins

/// A frame over hand-written bytes: `rows` are the visible pixel bytes of each row, padded to `stride` with `pad`.
func frame(
    _ index: Int, format: String = "GRAY8", width: Int, stride: Int? = nil, pad: UInt8 = 0, rows: [[UInt8]]
) -> Frame {
    let bpp = VideoFormat(pixelFormat: format, width: width, height: 1, stride: 0).bytesPerPixel!
    let stride = stride ?? width * bpp
    var bytes: [UInt8] = []
    for row in rows {
        precondition(row.count == width * bpp)
        bytes += row + Array(repeating: pad, count: stride - row.count)
    }
    let format = VideoFormat(pixelFormat: format, width: width, height: rows.count, stride: stride, framerate: (10, 1))
    return Frame(index: index, pts: UInt64(index) * 100_000_000, image: VideoImage(format: format, bytes: bytes))
}

/// A uniform grey frame.
func flat(_ index: Int, width: Int, height: Int, value: UInt8) -> Frame {
    frame(index, width: width, rows: Array(repeating: Array(repeating: value, count: width), count: height))
}

/// Max-abs difference over max-abs value of each output, the largest over the outputs (infinite when names or
/// shapes differ).
func relativeDifference(_ a: ModelOutputs, _ b: ModelOutputs) -> Float {
    zip(a.tensors, b.tensors).map { x, y in
        guard x.name == y.name, x.shape == y.shape else { return Float.infinity }
        let scale = y.data.map(abs).max() ?? 0
        let diff = zip(x.data, y.data).map { abs($0 - $1) }.max() ?? 0
        return diff / max(scale, .leastNormalMagnitude)
    }.max() ?? .infinity
}

/// A small seeded generator (SplitMix64), so random sequences are the same on every run and machine.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in 0..<n.
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(1, n))) }
}
