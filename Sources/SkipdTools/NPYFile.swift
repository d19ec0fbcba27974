import Foundation

/// NumPy `.npy` files, format version 1.0 (numpy.lib.format): float32 little-endian, C order.
enum NPYFile {
    /// The magic, the version, the header length and the header dict, padded with spaces to a 64-byte multiple
    /// and ended by a newline, as the format requires for aligned data.
    static func header(shape: [Int]) -> Data {
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(dims)), }"
        // 6 magic + 2 version + 2 length bytes precede the dict.
        let unpadded = 10 + dict.utf8.count + 1
        dict += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        let length = UInt16(clamping: dict.utf8.count)
        data.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8)])
        data.append(contentsOf: Array(dict.utf8))
        return data
    }

    /// A whole file: the header, then `values` (as many as `shape` holds) as little-endian float32.
    static func contents(shape: [Int], values: UnsafeBufferPointer<Float>) -> Data {
        var data = header(shape: shape)
        #if _endian(little)
            data.append(values)
        #else
            data.reserveCapacity(data.count + values.count * 4)
            for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        #endif
        return data
    }

    /// `name` usable as part of a file name on any file system: every character but ASCII letters, digits, `.`,
    /// `-` and `_` becomes `_` (a `/` would name a directory), at most 100 characters, never empty.
    static func safeName(_ name: String) -> String {
        let safe = String(
            name.unicodeScalars.prefix(100).map { s in
                s.isASCII && (CharacterSet.alphanumerics.contains(s) || "._-".unicodeScalars.contains(s))
                    ? Character(s) : "_"
            })
        return safe.isEmpty ? "_" : safe
    }

    /// The file stem of every output: its safe name, made unique by its position where two names collide.
    static func stems(_ names: [String]) -> [String] {
        let safe = names.map(safeName)
        return safe.enumerated().map { k, s in safe.filter { $0 == s }.count > 1 ? "\(s)_\(k)" : s }
    }
}
