import PipelineKit

/// Draws what the stages found onto a copy of the frame, for a human to watch: detection boxes (2-pixel outlines),
/// landmarks (small filled squares), the blocks `gate` passed on for recomputation (tinted a quarter of the way
/// towards red) and a small square in the top-left corner of skipped frames. A detection with a track ID (after
/// `track`) is drawn in its track's colour, so one object keeps one colour from frame to frame.
///
/// ```
/// … ! skipconv model=assets/centerface.onnx ! centerface ! overlay
///   ! videoconvert ! video/x-raw,format=I420 ! x264enc ! mp4mux ! filesink location=out/vtest-faces.mp4
/// ```
/// (Without the I420 caps x264enc is given Y444 and writes High 4:4:4, which few players play.)
/// Packed RGB formats only (RGB, BGR, RGBx, BGRx and the other 4-byte orders; put `videoconvert !
/// video/x-raw,format=RGB` in the source segment). The frame's own pixels are never written: the drawing goes into
/// new bytes with the same format and stride, and every result attached to the frame passes on.
public struct Overlay: Stage {
    public static let info = StageInfo(
        name: "overlay",
        summary: "Draws detections, landmarks and recomputed blocks onto a copy of the frame",
        example: "centerface ! overlay color=green mask=true",
        properties: [
            .choice(
                "color", default: "green", Self.colors.map(\.name),
                "colour of boxes and landmarks (tracked ones: a colour per track ID)"),
            .bool("mask", default: true, "tint the blocks the gate passed on (what skipconv recomputed)"),
            .bool("landmarks", default: true, "draw landmark points"),
            .bool("skipped", default: true, "mark skipped frames with a square in the top-left corner"),
        ])

    static let colors: [(name: String, rgb: SIMD3<UInt8>)] = [
        ("green", [0, 255, 0]), ("red", [255, 0, 0]), ("blue", [0, 0, 255]), ("yellow", [255, 255, 0]),
        ("cyan", [0, 255, 255]), ("magenta", [255, 0, 255]), ("white", [255, 255, 255]), ("black", [0, 0, 0]),
    ]
    /// Track colours, told apart from each other and from the red tint; IDs cycle through them.
    static let trackColors: [SIMD3<UInt8>] = [
        [0, 255, 0], [0, 160, 255], [255, 200, 0], [255, 0, 255], [0, 255, 255], [255, 128, 0], [160, 96, 255],
        [255, 255, 255], [128, 255, 128], [0, 96, 160],
    ]
    static let tint: SIMD3<UInt8> = [255, 0, 0]
    static let skippedColor: SIMD3<UInt8> = [255, 255, 0]
    /// Outline width in pixels.
    static let thickness = 2

    private let color: SIMD3<UInt8>
    private let mask: Bool
    private let landmarks: Bool
    private let markSkipped: Bool

    public init(properties: StageProperties, context: StageContext) throws {
        let name = properties.string("color")
        // The planner has checked the choice; green stands in only if the list and the spec ever diverge.
        color = Self.colors.first { $0.name == name }?.rgb ?? [0, 255, 0]
        mask = properties.bool("mask")
        landmarks = properties.bool("landmarks")
        markSkipped = properties.bool("skipped")
    }

    public mutating func process(_ frame: Frame) async throws -> Frame? {
        let image = frame.image
        guard let channels = Self.channels(of: image.format.pixelFormat) else {
            throw OverlayError.unsupportedFormat(image.format.pixelFormat)
        }
        var canvas = Canvas(image, channels: channels)
        if mask, let blocks = frame.metadata[BlockMask.Key.self] { canvas.tint(blocks, toward: Self.tint) }
        for face in frame.metadata[Detections.Key.self]?.items ?? [] {
            let color = face.trackID.map(Self.trackColor) ?? self.color
            canvas.outline(face, color: color, thickness: Self.thickness)
            guard landmarks else { continue }
            // Sized by the face, so five points never fill a small one: 3×3 up to 47 pixels, at most 7×7.
            let radius = min(3, max(1, Int(min(face.width, face.height).clamped(0, 1000)) / 24))
            for point in face.landmarks { canvas.square(at: point, radius: radius, color: color) }
        }
        if markSkipped, frame.skipped {
            let side = max(4, min(image.width, image.height) / 40)
            canvas.fill(x: 0..<side, y: 0..<side, color: Self.skippedColor)
        }
        var out = frame
        out.image = VideoImage(format: image.format, bytes: canvas.bytes)
        return out
    }

    static func trackColor(_ id: Int) -> SIMD3<UInt8> {
        let n = trackColors.count
        return trackColors[(id % n + n) % n]
    }

    /// Byte offsets of red, green and blue within a pixel, and the pixel size; nil for formats it cannot draw on.
    static func channels(of format: String) -> (r: Int, g: Int, b: Int, size: Int)? {
        switch format {
        case "RGB": (0, 1, 2, 3)
        case "BGR": (2, 1, 0, 3)
        case "RGBx", "RGBA": (0, 1, 2, 4)
        case "BGRx", "BGRA": (2, 1, 0, 4)
        case "xRGB", "ARGB": (1, 2, 3, 4)
        case "xBGR", "ABGR": (3, 2, 1, 4)
        default: nil
        }
    }
}

extension Float {
    /// Clamped to `lo…hi`; NaN becomes `lo` (to convert to Int safely).
    fileprivate func clamped(_ lo: Float, _ hi: Float) -> Float { self >= lo ? min(self, hi) : lo }
}

/// A writable copy of a packed RGB image, clipped drawing primitives on it.
private struct Canvas {
    var bytes: [UInt8]
    let width: Int
    let height: Int
    let stride: Int
    let channels: (r: Int, g: Int, b: Int, size: Int)

    init(_ image: VideoImage, channels: (r: Int, g: Int, b: Int, size: Int)) {
        width = image.width
        height = image.height
        stride = image.stride
        self.channels = channels
        let count = stride * height
        // A buffer may end right after the last row's pixels: copy what exists, pad the rest.
        let available = max(0, min(count, image.pixels.count - image.offset))
        var bytes = [UInt8](repeating: 0, count: count)
        bytes.withUnsafeMutableBytes { dst in
            if let base = dst.baseAddress, available > 0 {
                base.copyMemory(from: image.pixels.baseAddress + image.offset, byteCount: available)
            }
        }
        self.bytes = bytes
    }

    mutating func fill(x: Range<Int>, y: Range<Int>, color: SIMD3<UInt8>) {
        let xs = x.clamped(to: 0..<width)
        let ys = y.clamped(to: 0..<height)
        guard !xs.isEmpty, !ys.isEmpty else { return }
        let c = channels
        bytes.withUnsafeMutableBufferPointer { p in
            for row in ys {
                var i = row * stride + xs.lowerBound * c.size
                for _ in xs {
                    p[i + c.r] = color.x
                    p[i + c.g] = color.y
                    p[i + c.b] = color.z
                    i += c.size
                }
            }
        }
    }

    /// A `thickness`-pixel outline just inside the box's pixel rectangle: columns `round(x0) ..< round(x1)`, rows
    /// `round(y0) ..< round(y1)`, clipped to the image.
    mutating func outline(_ box: Detection, color: SIMD3<UInt8>, thickness t: Int) {
        guard let x = Self.pixels(box.x0, box.x1), let y = Self.pixels(box.y0, box.y1) else { return }
        fill(x: x, y: y.lowerBound..<min(y.upperBound, y.lowerBound + t), color: color)
        fill(x: x, y: max(y.lowerBound, y.upperBound - t)..<y.upperBound, color: color)
        fill(x: x.lowerBound..<min(x.upperBound, x.lowerBound + t), y: y, color: color)
        fill(x: max(x.lowerBound, x.upperBound - t)..<x.upperBound, y: y, color: color)
    }

    mutating func square(at point: SIMD2<Float>, radius: Int, color: SIMD3<UInt8>) {
        guard point.x.isFinite, point.y.isFinite, abs(point.x) < 1e9, abs(point.y) < 1e9 else { return }
        let cx = Int(point.x.rounded(.down))
        let cy = Int(point.y.rounded(.down))
        fill(x: cx - radius..<cx + radius + 1, y: cy - radius..<cy + radius + 1, color: color)
    }

    /// Blends every pixel of the mask's active blocks a quarter of the way toward `target` (rounded).
    mutating func tint(_ mask: BlockMask, toward target: SIMD3<UInt8>) {
        guard mask.block > 0, mask.active.count == mask.columns * mask.rows else { return }
        let c = channels
        let (tr, tg, tb) = (Int(target.x), Int(target.y), Int(target.z))
        bytes.withUnsafeMutableBufferPointer { p in
            for row in 0..<mask.rows {
                let ys = (row * mask.block..<(row + 1) * mask.block).clamped(to: 0..<height)
                for column in 0..<mask.columns where mask.active[row * mask.columns + column] {
                    let xs = (column * mask.block..<(column + 1) * mask.block).clamped(to: 0..<width)
                    for y in ys {
                        var i = y * stride + xs.lowerBound * c.size
                        for _ in xs {
                            p[i + c.r] = UInt8((3 * Int(p[i + c.r]) + tr + 2) / 4)
                            p[i + c.g] = UInt8((3 * Int(p[i + c.g]) + tg + 2) / 4)
                            p[i + c.b] = UInt8((3 * Int(p[i + c.b]) + tb + 2) / 4)
                            i += c.size
                        }
                    }
                }
            }
        }
    }

    /// `round(a) ..< round(b)` as pixel indices; nil for non-finite or absurd coordinates.
    private static func pixels(_ a: Float, _ b: Float) -> Range<Int>? {
        guard a.isFinite, b.isFinite, abs(a) < 1e9, abs(b) < 1e9 else { return nil }
        let lo = Int(a.rounded())
        let hi = Int(b.rounded())
        return lo < hi ? lo..<hi : nil
    }
}

enum OverlayError: Error, CustomStringConvertible {
    case unsupportedFormat(String)

    var description: String {
        switch self {
        case .unsupportedFormat(let format):
            "overlay draws on packed RGB frames (RGB, BGR, RGBx, BGRx, …), not \(format): add "
                + "`videoconvert ! video/x-raw,format=RGB` before the stages"
        }
    }
}
