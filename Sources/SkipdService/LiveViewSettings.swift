/// How the live view sends pictures (`live-fps`, `live-max-width` in the serve config).
public struct LiveViewSettings: Sendable, Equatable {
    /// Pictures a second an MJPEG stream (and the page) sends at most; a pipeline's frames in between are dropped
    /// for that viewer, never held.
    public var fps = 5.0
    /// Frames wider than this are downscaled before an MJPEG stream encodes them.
    public var maxWidth = 1280
    /// JPEG quality, 1–100.
    public var quality = 80

    public init() {}

    /// Narrowest picture `?width=` may ask for, and widest frame width accepted as a limit.
    static let widths = 16...16384
}
