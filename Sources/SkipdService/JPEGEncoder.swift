import CJPEG
import Foundation
import PipelineKit

/// Frames as JPEG for the live view, by libjpeg-turbo (`Sources/CJPEG`): rows are read where the frame's stride
/// puts them and every packed RGB byte order and GRAY8 go in as they are, so nothing is converted or repacked
/// first. Chroma is not subsampled (4:4:4), so the overlay's 2-pixel coloured lines keep their colour.
enum JPEGEncoder {
    /// Formats the encoder takes, with libjpeg's colour space for each.
    static func colorSpace(of format: String) -> (space: J_COLOR_SPACE, components: Int)? {
        switch format {
        case "RGB": (JCS_EXT_RGB, 3)
        case "BGR": (JCS_EXT_BGR, 3)
        case "RGBx", "RGBA": (JCS_EXT_RGBX, 4)
        case "BGRx", "BGRA": (JCS_EXT_BGRX, 4)
        case "xRGB", "ARGB": (JCS_EXT_XRGB, 4)
        case "xBGR", "ABGR": (JCS_EXT_XBGR, 4)
        case "GRAY8": (JCS_GRAYSCALE, 1)
        default: nil
        }
    }

    /// Encodes the image at `quality` (1–100).
    static func encode(_ image: VideoImage, quality: Int = 80) throws(LiveViewError) -> [UInt8] {
        let format = image.format
        guard let (space, components) = colorSpace(of: format.pixelFormat) else {
            throw .unsupportedFormat(format.pixelFormat)
        }
        // Every row the encoder reads must lie inside the buffer: a format that claims more is refused, not read.
        let needed = image.offset + (format.height - 1) * format.stride + format.width * components
        guard format.width > 0, format.height > 0, format.stride >= format.width * components, image.offset >= 0,
            needed <= image.pixels.count
        else {
            throw .encoding("the frame's buffer does not hold \(format.width)×\(format.height) \(format.pixelFormat)")
        }
        var output: UnsafeMutablePointer<UInt8>?
        var size: UInt = 0
        var message = [CChar](repeating: 0, count: Int(JMSG_LENGTH_MAX))
        let status = message.withUnsafeMutableBufferPointer { text in
            skipd_jpeg_compress(
                image.row(0).assumingMemoryBound(to: UInt8.self), UInt32(format.width), UInt32(format.height),
                format.stride, Int32(space.rawValue), Int32(components), Int32(min(max(quality, 1), 100)), &output,
                &size, text.baseAddress)
        }
        defer { free(output) }
        guard status == 0, let output else {
            throw .encoding(String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return Array(UnsafeBufferPointer(start: output, count: Int(size)))
    }
}

/// Why a frame cannot be shown.
enum LiveViewError: Error, Equatable, CustomStringConvertible {
    /// A planar or deeper format: the live view shows packed RGB orders and GRAY8.
    case unsupportedFormat(String)
    case encoding(String)

    var description: String {
        switch self {
        case .unsupportedFormat(let format):
            "frames are \(format); the live view shows packed RGB (RGB, BGR, RGBx, …) and GRAY8"
        case .encoding(let message): "JPEG encoding failed: \(message)"
        }
    }
}
