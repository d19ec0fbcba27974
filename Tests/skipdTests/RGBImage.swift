import Foundation
import Testing

/// A picture file decoded by GStreamer (`filesrc ! decodebin ! videoconvert`, nothing of skipd's) into packed RGB,
/// for tests that look at pixels.
struct RGBImage {
    let width: Int
    let height: Int
    let pixels: [UInt8]

    /// Decodes `file`, which must be `width`×`height` (`width` a multiple of 4: GStreamer pads RGB rows to 4 bytes).
    init(decoding file: URL, width: Int, height: Int) throws {
        let raw = file.deletingPathExtension().appendingPathExtension("rgb")
        defer { try? FileManager.default.removeItem(at: raw) }
        let decoder = try ChildProcess(
            URL(fileURLWithPath: "/usr/bin/gst-launch-1.0"),
            [
                "-q", "filesrc", "location=\(file.path)", "!", "decodebin", "!", "videoconvert", "!",
                "video/x-raw,format=RGB,width=\(width),height=\(height)", "!", "filesink", "location=\(raw.path)",
            ])
        let status = decoder.waitForExit(timeout: 60)
        try #require(status == 0, "gst-launch cannot decode \(file.path): \(decoder.stderr.all())")
        pixels = Array(try Data(contentsOf: raw))
        try #require(pixels.count == width * height * 3, "\(pixels.count) bytes, not \(width)×\(height) RGB")
        (self.width, self.height) = (width, height)
    }

    func color(_ x: Int, _ y: Int) -> SIMD3<Int> {
        let at = (y * width + x) * 3
        return SIMD3(Int(pixels[at]), Int(pixels[at + 1]), Int(pixels[at + 2]))
    }

    /// Colours in `xs`×`ys`, each channel cut to 5 bits: a page of text and flat panels has a few dozen, a photo
    /// thousands.
    func distinctColors(_ xs: Range<Int>, _ ys: Range<Int>) -> Int {
        var seen = Set<Int>()
        for y in ys {
            for x in xs {
                let c = color(x, y)
                seen.insert((c.x >> 3) << 10 | (c.y >> 3) << 5 | c.z >> 3)
            }
        }
        return seen.count
    }
}
