/// A set of positions of one H×W plane: which outputs a layer recomputes, which inputs it commits, where a value
/// changed this frame. One byte per position (cheap next to the C floats each position carries) plus the count,
/// so "nothing" and "everything" are O(1) to test.
public final class SpatialMask {
    public let width: Int
    public let height: Int
    public private(set) var bits: [UInt8]
    public private(set) var count = 0
    private var tileHits: [Bool] = []

    public init(width: Int, height: Int) {
        self.width = width
        self.height = height
        bits = Array(repeating: 0, count: width * height)
    }

    public var area: Int { width * height }
    public var isEmpty: Bool { count == 0 }
    public var isFull: Bool { count == area }
    public var density: Double { area == 0 ? 0 : Double(count) / Double(area) }

    public subscript(x: Int, y: Int) -> Bool { bits[y * width + x] != 0 }

    public func set(x: Int, y: Int) {
        let i = y * width + x
        if bits[i] == 0 {
            bits[i] = 1
            count += 1
        }
    }

    public func clear() {
        if count == 0 { return }
        bits.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        count = 0
    }

    public func fill() {
        if isFull { return }
        bits.withUnsafeMutableBufferPointer { $0.update(repeating: 1) }
        count = area
    }

    /// Sets every position of `other` (same size) too.
    public func formUnion(_ other: SpatialMask) {
        precondition(other.width == width && other.height == height, "mask sizes differ")
        if other.isEmpty || isFull { return }
        if other.isFull { return fill() }
        bits.withUnsafeMutableBufferPointer { b in
            other.bits.withUnsafeBufferPointer { o in orRow(b.baseAddress!, o.baseAddress!, b.count) }
        }
        count = Self.setCount(bits)
    }

    /// Keeps only the positions `other` (same size) also holds.
    public func formIntersection(_ other: SpatialMask) {
        precondition(other.width == width && other.height == height, "mask sizes differ")
        if isEmpty || other.isFull { return }
        if other.isEmpty { return clear() }
        bits.withUnsafeMutableBufferPointer { b in
            other.bits.withUnsafeBufferPointer { o in andRow(b.baseAddress!, o.baseAddress!, b.count) }
        }
        count = Self.setCount(bits)
    }

    /// Clears every `tile`×`tile` block holding fewer than `minimum` set positions: isolated positions (a codec's
    /// noise) go, a block where many changed (something moved) stays.
    public func dropSparseTiles(tile: Int, minimum: Int) {
        if minimum <= 1 || tile < 1 || isEmpty { return }
        let (w, h) = (width, height)
        withBits { b in
            for ty in stride(from: 0, to: h, by: tile) {
                let rows = ty..<Swift.min(h, ty + tile)
                for tx in stride(from: 0, to: w, by: tile) {
                    let columns = tx..<Swift.min(w, tx + tile)
                    var n = 0
                    for y in rows { for x in columns { n += Int(b[y * w + x]) } }
                    if n > 0 && n < minimum { for y in rows { for x in columns { b[y * w + x] = 0 } } }
                }
            }
        }
    }

    /// Set positions, 8 at a time: each byte is 0 or 1, so multiplying a word by 0x0101…01 sums its bytes into the
    /// top byte (at most 8: no carry). `nonzeroBitCount` would be a software popcount in a baseline x86-64 build.
    private static func setCount(_ bits: [UInt8]) -> Int {
        bits.withUnsafeBufferPointer { b in
            var n = 0
            var i = 0
            while i + 8 <= b.count {
                n += Int(
                    (UnsafeRawPointer(b.baseAddress! + i).loadUnaligned(as: UInt64.self) &* 0x0101_0101_0101_0101) >> 56
                )
                i += 8
            }
            while i < b.count {
                n += Int(b[i])
                i += 1
            }
            return n
        }
    }

    /// Copies `other` (same size), into this mask's own storage (sharing it would copy on the next write anyway).
    public func assign(_ other: SpatialMask) {
        precondition(other.width == width && other.height == height, "mask sizes differ")
        if other.isEmpty { return clear() }
        if other.isFull { return fill() }
        bits.withUnsafeMutableBufferPointer { b in
            other.bits.withUnsafeBufferPointer { o in b.baseAddress!.update(from: o.baseAddress!, count: o.count) }
        }
        count = other.count
    }

    /// Recounts after writes through ``withBits(_:)``.
    public func withBits<R>(_ body: (UnsafeMutableBufferPointer<UInt8>) -> R) -> R {
        let r = bits.withUnsafeMutableBufferPointer { body($0) }
        count = Self.setCount(bits)
        return r
    }

    /// Maximal horizontal runs of set positions, row by row: the unit every sparse loop walks (a run is contiguous
    /// in each channel plane of an NCHW tensor).
    public func runs(into runs: inout [MaskRun]) {
        runs.removeAll(keepingCapacity: true)
        if isEmpty { return }
        if isFull {
            for y in 0..<height { runs.append(MaskRun(y: y, x0: 0, x1: width)) }
            return
        }
        bits.withUnsafeBufferPointer { b in
            for y in 0..<height {
                forEachRun(of: b.baseAddress! + y * width, count: width, set: true) { x0, x1 in
                    runs.append(MaskRun(y: y, x0: x0, x1: x1))
                }
            }
        }
    }

    /// Sets every position of each `tile`×`tile` block that holds a set position: a block runs or skips whole.
    public func tileUp(_ tile: Int) {
        if tile <= 1 || isEmpty || isFull { return }
        let (tw, th) = ((width + tile - 1) / tile, (height + tile - 1) / tile)
        var hit: [Bool] = []
        swap(&hit, &tileHits)
        defer { swap(&hit, &tileHits) }
        if hit.count != tw * th { hit = Array(repeating: false, count: tw * th) }
        hit.withUnsafeMutableBufferPointer { $0.update(repeating: false) }
        bits.withUnsafeBufferPointer { b in
            for y in 0..<height {
                let row = b.baseAddress! + y * width
                let trow = (y / tile) * tw
                for tx in 0..<tw where !hit[trow + tx] {
                    for x in tx * tile..<Swift.min(width, (tx + 1) * tile) where row[x] != 0 {
                        hit[trow + tx] = true
                        break
                    }
                }
            }
        }
        var n = 0
        bits.withUnsafeMutableBufferPointer { b in
            for y in 0..<height {
                let row = b.baseAddress! + y * width
                let trow = (y / tile) * tw
                for tx in 0..<tw {
                    let (x0, x1) = (tx * tile, Swift.min(width, (tx + 1) * tile))
                    let on = hit[trow + tx]
                    (row + x0).update(repeating: on ? 1 : 0, count: x1 - x0)
                    if on { n += x1 - x0 }
                }
            }
        }
        count = n
    }
}

extension Array where Element == MaskRun {
    /// Joins runs of the same row separated by at most `gap` positions: recomputing a few extra outputs (exact for
    /// the same input, so harmless) costs less than another run's per-channel loop setup.
    mutating func merge(gap: Int) {
        guard gap > 0, count > 1 else { return }
        var out = 0
        for i in 1..<count {
            if self[i].y == self[out].y && self[i].x0 - self[out].x1 <= gap {
                self[out].x1 = self[i].x1
            } else {
                out += 1
                self[out] = self[i]
            }
        }
        removeLast(count - out - 1)
    }

    var positions: Int { reduce(0) { $0 + $1.length } }
}

/// Positions `x0..<x1` of row `y`.
public struct MaskRun: Sendable, Equatable {
    public var y: Int
    public var x0: Int
    public var x1: Int

    public init(y: Int, x0: Int, x1: Int) {
        self.y = y
        self.x0 = x0
        self.x1 = x1
    }

    public var length: Int { x1 - x0 }
}

extension SpatialMask {
    /// Grows every set position to the (2·radius+1)² square around it.
    public func dilate(_ radius: Int) {
        if radius <= 0 || isEmpty || isFull { return }
        let (w, h) = (width, height)
        var rows = [UInt8](repeating: 0, count: w * h)
        bits.withUnsafeBufferPointer { b in
            for y in 0..<h {
                for x in 0..<w where b[y * w + x] != 0 {
                    for xx in Swift.max(0, x - radius)...Swift.min(w - 1, x + radius) { rows[y * w + xx] = 1 }
                }
            }
        }
        withBits { b in
            for y in 0..<h {
                for x in 0..<w where rows[y * w + x] != 0 {
                    for yy in Swift.max(0, y - radius)...Swift.min(h - 1, y + radius) { b[yy * w + x] = 1 }
                }
            }
        }
    }
}

// Byte rows OR-ed / AND-ed a 64-bit word at a time: `SIMD32<UInt8>` operators compile here to a per-lane loop
// through the stack (measured: 90 % of `footprint`'s time).
@inline(__always)
func orRow(_ d: UnsafeMutablePointer<UInt8>, _ s: UnsafePointer<UInt8>, _ n: Int) { combineRows(d, s, n, |) }

@inline(__always)
func andRow(_ d: UnsafeMutablePointer<UInt8>, _ s: UnsafePointer<UInt8>, _ n: Int) { combineRows(d, s, n, &) }

/// `d[i] = op(d[i], s[i])` for i < n, eight bytes at a time (`op` must act bytewise, as `|` and `&` do).
@inline(__always)
private func combineRows(
    _ d: UnsafeMutablePointer<UInt8>, _ s: UnsafePointer<UInt8>, _ n: Int, _ op: (UInt64, UInt64) -> UInt64
) {
    var i = 0
    while i + 8 <= n {
        let v = op(
            UnsafeRawPointer(d + i).loadUnaligned(as: UInt64.self),
            UnsafeRawPointer(s + i).loadUnaligned(as: UInt64.self))
        UnsafeMutableRawPointer(d + i).storeBytes(of: v, as: UInt64.self)
        i += 8
    }
    while i < n {
        d[i] = UInt8(truncatingIfNeeded: op(UInt64(d[i]), UInt64(s[i])))
        i += 1
    }
}
