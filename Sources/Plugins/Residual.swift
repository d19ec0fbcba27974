import PipelineKit

/// Per-pixel residual of each frame against a reference frame, summarised per block.
///
/// ```
/// filesrc location=assets/vtest.avi ! decodebin ! videoconvert ! video/x-raw,format=RGB
///   ! residual threshold=12 block=16 ! gate ! jsonsink location=out/vtest.jsonl
/// ```
/// A block is *changed* when any channel of any of its pixels differs from the reference by more than
/// `threshold`. Only changed blocks update the reference (their change is passed on to later stages); elsewhere
/// the residual keeps accumulating, so a slow drift is reported once it adds up instead of being lost
/// (docs/skip-convolutions.md §1). The first frame, and any change of size or format, resets the reference: every block
/// is changed. Attaches a ``ResidualMap``. Needs packed 8-bit video (RGB, BGR, RGBx, GRAY8, …).
public struct Residual: Stage {
    public static let info = StageInfo(
        name: "residual",
        summary: "Per-block residual against a reference frame that only committed changes update",
        example: "videoconvert ! video/x-raw,format=RGB ! residual threshold=12 block=16 ! gate",
        properties: [
            .int("threshold", default: 12, range: 0...255, "a pixel changed if some channel moved by more than this"),
            .int("block", default: 16, range: 1...512, "block size in pixels (square)"),
        ],
        provides: ["residual"])

    private let threshold: Int
    private let block: Int
    private var reference: [UInt8] = []
    private var referenceFormat: VideoFormat?

    public init(properties: StageProperties, context: StageContext) {
        threshold = properties.int("threshold")
        block = properties.int("block")
    }

    public mutating func process(_ frame: Frame) async throws -> Frame? {
        let format = frame.image.format
        guard let bpp = format.bytesPerPixel else {
            throw ResidualError.unsupportedFormat(format.pixelFormat)
        }
        var frame = frame
        let columns = (format.width + block - 1) / block
        let rows = (format.height + block - 1) / block
        var map = ResidualMap(
            block: block, columns: columns, rows: rows,
            energy: Array(repeating: 0, count: columns * rows), peak: Array(repeating: 0, count: columns * rows),
            changed: Array(repeating: false, count: columns * rows))
        let rowBytes = format.width * bpp
        if referenceFormat != format {
            reference = Array(repeating: 0, count: rowBytes * format.height)
            for y in 0..<format.height {
                reference.withUnsafeMutableBytes { ref in
                    (ref.baseAddress! + y * rowBytes).copyMemory(from: frame.image.row(y), byteCount: rowBytes)
                }
            }
            referenceFormat = format
            map.changed = Array(repeating: true, count: columns * rows)
            map.peak = Array(repeating: 255, count: columns * rows)
        } else {
            compare(frame.image, bpp: bpp, rowBytes: rowBytes, into: &map)
        }
        frame.metadata[ResidualMap.Key.self] = map
        return frame
    }

    /// Fills the map block by block and copies changed blocks into the reference.
    private mutating func compare(_ image: VideoImage, bpp: Int, rowBytes: Int, into map: inout ResidualMap) {
        let threshold = threshold
        let block = block
        reference.withUnsafeMutableBufferPointer { ref in
            for by in 0..<map.rows {
                let y0 = by * block
                let y1 = min(y0 + block, image.height)
                for bx in 0..<map.columns {
                    let x0 = bx * block * bpp
                    let x1 = min((bx + 1) * block, image.width) * bpp
                    var sum = 0
                    var peak = 0
                    for y in y0..<y1 {
                        let src = image.row(y).assumingMemoryBound(to: UInt8.self)
                        let base = y * rowBytes
                        for i in x0..<x1 {
                            let d = abs(Int(src[i]) - Int(ref[base + i]))
                            sum += d
                            peak = max(peak, d)
                        }
                    }
                    let index = by * map.columns + bx
                    map.energy[index] = Float(sum) / Float((y1 - y0) * (x1 - x0))
                    map.peak[index] = UInt8(peak)
                    if peak > threshold {
                        map.changed[index] = true
                        for y in y0..<y1 {
                            let src = image.row(y) + x0
                            UnsafeMutableRawPointer(ref.baseAddress! + y * rowBytes + x0)
                                .copyMemory(from: src, byteCount: x1 - x0)
                        }
                    }
                }
            }
        }
    }
}

enum ResidualError: Error, CustomStringConvertible {
    case unsupportedFormat(String)

    var description: String {
        switch self {
        case .unsupportedFormat(let f):
            "residual needs packed 8-bit video (RGB, BGR, RGBx, GRAY8, …), got \(f): "
                + "put 'videoconvert ! video/x-raw,format=RGB' before it"
        }
    }
}
