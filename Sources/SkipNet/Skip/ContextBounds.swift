/// Bounded context (``SkipSettings/context``): on a frame, a layer past the first may recompute only the positions
/// whose image area lies within `radius` input pixels of what the first layer recomputed, plus the rolling refresh
/// band. Exact propagation grows a change's footprint by the kernel at every layer, so at stride 16–32 it covers
/// nearly the whole image; clipped here, each layer's work follows the changed area instead, and what lies beyond the
/// radius keeps its value until the band passes over it (every `rollingRefresh` frames).
///
/// Both sides of a layer are limited: its changed input (``clip(_:)``), so a dense step's "changed everywhere" does
/// not spread, and the outputs it recomputes (``limit(_:)``), so the kernel's reach does not grow the region layer
/// after layer: a layer's outputs stay within the region even where its window reads a changed input outside it.
///
/// Each plane's positions are mapped to image pixels by the plane's own stride (image size / plane size), so the
/// same radius holds at every depth. One instance per executor; ``begin(changed:band:)`` starts a frame from the conv
/// that reads the image (a model with several such convs takes its bounds from the last one run).
final class ContextBounds {
    let radius: Int
    let imageWidth: Int
    let imageHeight: Int
    /// Σ of the first layer's changed positions over `[0, y) × [0, x)`, `(baseWidth + 1)` per row.
    private var prefix: [Int32] = []
    private var baseWidth = 0
    private var baseHeight = 0
    /// Image rows the rolling refresh recomputes this frame.
    private var band: Range<Int> = 0..<0
    /// Allowed positions by plane size, built on first use in a frame.
    private var allowed: [PlaneSize: SpatialMask] = [:]
    private var built: Set<PlaneSize> = []

    private struct PlaneSize: Hashable {
        var width: Int
        var height: Int
    }

    init(radius: Int, imageWidth: Int, imageHeight: Int) {
        self.radius = radius
        self.imageWidth = imageWidth
        self.imageHeight = imageHeight
    }

    /// Starts a frame: `changed` is what the first layer recomputes (any plane of the image), `band` the image rows
    /// refreshed whatever changed.
    func begin(changed: SpatialMask, band: Range<Int>) {
        self.band = band
        built.removeAll(keepingCapacity: true)
        // Without a radius only the band is used (`addBand`): no per-frame prefix sum to build.
        guard radius > 0 else { return }
        (baseWidth, baseHeight) = (changed.width, changed.height)
        let stride = baseWidth + 1
        if prefix.count != stride * (baseHeight + 1) { prefix = Array(repeating: 0, count: stride * (baseHeight + 1)) }
        changed.bits.withUnsafeBufferPointer { b in
            prefix.withUnsafeMutableBufferPointer { p in
                for y in 0..<baseHeight {
                    var row: Int32 = 0
                    for x in 0..<baseWidth {
                        row &+= Int32(b[y * baseWidth + x])
                        p[(y + 1) * stride + x + 1] = p[y * stride + x + 1] &+ row
                    }
                }
            }
        }
    }

    /// Limits `mask` (where a layer's input changed) to the allowed positions of its plane, then adds the band.
    func clip(_ mask: SpatialMask) {
        limit(mask)
        addBand(to: mask)
    }

    /// Limits `mask` (the outputs a layer would recompute) to the allowed positions of its plane and the band.
    func limit(_ mask: SpatialMask) {
        let size = PlaneSize(width: mask.width, height: mask.height)
        if !built.contains(size) {
            build(size)
            built.insert(size)
        }
        mask.formIntersection(allowed[size]!)
    }

    /// The image rows of the rolling refresh on frame `frame` of a rotation over `bands` frames: band `frame mod
    /// bands` of `bands` equal bands (none when `bands` is 0).
    static func band(_ frame: Int, of bands: Int, imageHeight: Int) -> Range<Int> {
        guard bands > 0 else { return 0..<0 }
        let k = frame % bands
        return (k * imageHeight / bands)..<((k + 1) * imageHeight / bands)
    }

    /// The rows of a plane `height` high that hold image rows of the band.
    func bandRows(height: Int) -> Range<Int> {
        if band.isEmpty { return 0..<0 }
        let s = Double(imageHeight) / Double(height)
        let lo = Int((Double(band.lowerBound) / s).rounded(.down))
        let hi = Int((Double(band.upperBound) / s).rounded(.up))
        return max(0, lo)..<min(height, max(hi, lo + 1))
    }

    func addBand(to mask: SpatialMask) {
        let rows = bandRows(height: mask.height)
        if rows.isEmpty || mask.isFull { return }
        mask.withBits { b in
            (b.baseAddress! + rows.lowerBound * mask.width).update(repeating: 1, count: rows.count * mask.width)
        }
    }

    /// A position is allowed when the first layer changed something within `radius` image pixels of its area, or
    /// when it lies in the band.
    private func build(_ size: PlaneSize) {
        let mask = allowed[size] ?? SpatialMask(width: size.width, height: size.height)
        allowed[size] = mask
        let (sx, sy) = (Double(imageWidth) / Double(size.width), Double(imageHeight) / Double(size.height))
        let (bx, by) = (Double(imageWidth) / Double(baseWidth), Double(imageHeight) / Double(baseHeight))
        let r = Double(radius)
        // Base columns (rows) whose image area meets [x·s − r, (x + 1)·s + r).
        func span(_ i: Int, _ s: Double, _ b: Double, _ n: Int) -> (Int, Int) {
            let lo = Int(((Double(i) * s - r) / b).rounded(.down))
            let hi = Int(((Double(i + 1) * s + r) / b).rounded(.up))
            return (max(0, lo), min(n, hi))
        }
        let columns = (0..<size.width).map { span($0, sx, bx, baseWidth) }
        let stride = baseWidth + 1
        prefix.withUnsafeBufferPointer { p in
            mask.withBits { out in
                for y in 0..<size.height {
                    let (y0, y1) = span(y, sy, by, baseHeight)
                    for x in 0..<size.width {
                        let (x0, x1) = columns[x]
                        let hit =
                            y1 > y0 && x1 > x0
                            && p[y1 * stride + x1] &- p[y0 * stride + x1] &- p[y1 * stride + x0] &+ p[y0 * stride + x0]
                                > 0
                        out[y * size.width + x] = hit ? 1 : 0
                    }
                }
            }
        }
        addBand(to: mask)
    }
}
