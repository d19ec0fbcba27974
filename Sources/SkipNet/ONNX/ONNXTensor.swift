import Foundation

extension Tensor {
    /// Decodes an ONNX tensor; integer and double data become floats (shapes, sizes and scales are small).
    init(onnx proto: Onnx_TensorProto, context: String) throws(ModelError) {
        let shape = proto.dims.map { Int($0) }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw ModelError("\(context): negative dimension in \(shape)") }
        guard let count = Tensor.elementCount(shape) else {
            throw ModelError("\(context): shape \(shape) holds more values than any model could")
        }
        let raw = proto.rawData
        func fromRaw<T>(_ type: T.Type, _ convert: (T) -> Float) throws(ModelError) -> [Float] {
            guard raw.count == count * MemoryLayout<T>.size else {
                throw ModelError(
                    "\(context): raw data holds \(raw.count) bytes, shape \(shape) needs \(count * MemoryLayout<T>.size)"
                )
            }
            return raw.withUnsafeBytes { bytes in
                (0..<count).map { convert(bytes.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self)) }
            }
        }
        let data: [Float]
        var kind = Tensor.Kind.integer
        switch proto.dataType {
        case 1:  // FLOAT
            data = raw.isEmpty ? proto.floatData : try fromRaw(Float.self) { $0 }
            kind = .float
        case 11:  // DOUBLE
            data = raw.isEmpty ? proto.doubleData.map { Float($0) } : try fromRaw(Double.self) { Float($0) }
            kind = .float
        case 9:  // BOOL (one byte each; int32_data when not raw)
            data = raw.isEmpty ? proto.int32Data.map { $0 != 0 ? 1 : 0 } : try fromRaw(UInt8.self) { $0 != 0 ? 1 : 0 }
            kind = .boolean
        case 2:  // UINT8
            data = raw.isEmpty ? proto.int32Data.map { Float($0) } : try fromRaw(UInt8.self) { Float($0) }
        case 3:  // INT8
            data = raw.isEmpty ? proto.int32Data.map { Float($0) } : try fromRaw(Int8.self) { Float($0) }
        case 7:  // INT64
            data = raw.isEmpty ? proto.int64Data.map { Float($0) } : try fromRaw(Int64.self) { Float($0) }
        case 6:  // INT32
            data = raw.isEmpty ? proto.int32Data.map { Float($0) } : try fromRaw(Int32.self) { Float($0) }
        default:
            throw ModelError(
                "\(context): tensor data type \(proto.dataType) is not supported "
                    + "(float, double, int8/32/64, uint8, bool)")
        }
        guard data.count == count else {
            throw ModelError("\(context): tensor holds \(data.count) values, shape \(shape) needs \(count)")
        }
        self.init(shape: shape, data: data, kind: kind)
    }
}
