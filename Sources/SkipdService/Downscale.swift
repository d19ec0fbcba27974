import PipelineKit

extension VideoImage {
    /// The image at most `maxWidth` pixels wide, aspect ratio kept, each pixel the mean of the source pixels it
    /// covers (a box filter, which does not alias the way dropping pixels does). Images that are not wider, and
    /// formats other than packed 8-bit ones (which the encoder refuses anyway), come back as they are.
    func downscaled(toWidth maxWidth: Int) -> VideoImage {
        guard maxWidth > 0, width > maxWidth, height > 0, let size = format.bytesPerPixel, stride >= width * size,
            offset >= 0, offset + (height - 1) * stride + width * size <= pixels.count
        else { return self }
        let (w, h) = (maxWidth, max(1, (height * maxWidth + width / 2) / width))
        // Output pixel (x, y) covers source columns xs[x]..<xs[x+1] and rows ys[y]..<ys[y+1]; none is empty,
        // since w < width and h ≤ height.
        let xs = (0...w).map { $0 * width / w }
        let ys = (0...h).map { $0 * height / h }
        var out = [UInt8](repeating: 0, count: w * h * size)
        var sums = [Int](repeating: 0, count: w * size)
        out.withUnsafeMutableBufferPointer { out in
            sums.withUnsafeMutableBufferPointer { sums in
                for y in 0..<h {
                    for k in 0..<sums.count { sums[k] = 0 }
                    for sy in ys[y]..<ys[y + 1] {
                        let row = self.row(sy).assumingMemoryBound(to: UInt8.self)
                        for x in 0..<w {
                            for sx in xs[x]..<xs[x + 1] {
                                for c in 0..<size { sums[x * size + c] += Int(row[sx * size + c]) }
                            }
                        }
                    }
                    let rows = ys[y + 1] - ys[y]
                    for x in 0..<w {
                        let count = (xs[x + 1] - xs[x]) * rows
                        for c in 0..<size {
                            out[(y * w + x) * size + c] = UInt8((sums[x * size + c] + count / 2) / count)
                        }
                    }
                }
            }
        }
        var scaled = format
        (scaled.width, scaled.height, scaled.stride) = (w, h, w * size)
        return VideoImage(format: scaled, bytes: out)
    }
}
