/// One video frame on its way through the stages: its pixels, where it sits in the stream, and what earlier
/// stages found out about it.
public struct Frame: Sendable {
    /// 0-based position in the stream, counted at the source (dropped frames leave gaps).
    public var index: Int
    /// Presentation time in nanoseconds, as GStreamer reported it; `nil` if the buffer had none.
    public var pts: UInt64?
    public var image: VideoImage
    /// Set by a gate when nothing worth recomputing changed: later stages reuse their previous result.
    public var skipped: Bool
    public var metadata: FrameMetadata

    public init(index: Int, pts: UInt64?, image: VideoImage, skipped: Bool = false, metadata: FrameMetadata = .init()) {
        self.index = index
        self.pts = pts
        self.image = image
        self.skipped = skipped
        self.metadata = metadata
    }
}

/// Geometry and layout of a video frame as negotiated with GStreamer.
public struct VideoFormat: Sendable, Equatable {
    /// GStreamer format name: `RGB`, `BGRx`, `GRAY8`, `I420`, …
    public var pixelFormat: String
    public var width: Int
    public var height: Int
    /// Bytes from one row of the first plane to the next; GStreamer pads rows (RGB rows to 4 bytes).
    public var stride: Int
    public var framerate: (numerator: Int, denominator: Int)

    public init(pixelFormat: String, width: Int, height: Int, stride: Int, framerate: (Int, Int) = (0, 1)) {
        self.pixelFormat = pixelFormat
        self.width = width
        self.height = height
        self.stride = stride
        self.framerate = (framerate.0, framerate.1)
    }

    /// Bytes per pixel of packed 8-bit formats, `nil` for planar or deeper ones.
    public var bytesPerPixel: Int? {
        switch pixelFormat {
        case "GRAY8": 1
        case "RGB", "BGR": 3
        case "RGBA", "BGRA", "ARGB", "ABGR", "RGBx", "BGRx", "xRGB", "xBGR": 4
        default: nil
        }
    }

    /// Caps describing this format, for an appsrc.
    public var caps: String {
        "video/x-raw,format=\(pixelFormat),width=\(width),height=\(height),"
            + "framerate=\(framerate.numerator)/\(framerate.denominator)"
    }

    public static func == (a: VideoFormat, b: VideoFormat) -> Bool {
        a.pixelFormat == b.pixelFormat && a.width == b.width && a.height == b.height && a.stride == b.stride
            && a.framerate == b.framerate
    }
}

/// A frame's pixels: the format plus read-only bytes, shared (not copied) between stages.
public struct VideoImage: Sendable {
    public var format: VideoFormat
    public var pixels: PixelStorage
    /// Byte offset of the first row of the first plane within ``pixels``.
    public var offset: Int

    public init(format: VideoFormat, pixels: PixelStorage, offset: Int = 0) {
        self.format = format
        self.pixels = pixels
        self.offset = offset
    }

    /// Row `y` of the first plane (`stride` bytes, of which `width × bytesPerPixel` are pixels).
    public func row(_ y: Int) -> UnsafeRawPointer {
        pixels.baseAddress + offset + y * format.stride
    }

    /// An image over Swift-owned bytes (tests, generated frames). `bytes.count` must cover `stride × height`.
    public init(format: VideoFormat, bytes: [UInt8]) {
        precondition(bytes.count >= format.stride * format.height, "pixel buffer smaller than stride × height")
        self.init(format: format, pixels: PixelStorage(bytes: bytes))
    }

    public var width: Int { format.width }
    public var height: Int { format.height }
    public var stride: Int { format.stride }
}
