import CGStreamer

/// Read-only pixel bytes that outlive the stage that received them, without copying.
///
/// Frames from GStreamer keep the `GstBuffer` mapped for as long as any stage holds the frame; the sink segment
/// pushes that same buffer on, so decoded pixels are never copied on their way through skipd.
public final class PixelStorage: @unchecked Sendable {
    // Immutable after init, and the mapped memory is never written: safe to share across tasks.
    private enum Owner {
        case gstreamer(buffer: UnsafeMutablePointer<GstBuffer>, map: GstMapInfo)
        case allocated(UnsafeMutableRawPointer)
    }

    private let owner: Owner
    public let baseAddress: UnsafeRawPointer
    public let count: Int

    public init(bytes: [UInt8]) {
        let memory = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
        bytes.withUnsafeBytes {
            memory.copyMemory(from: $0.baseAddress ?? UnsafeRawPointer(memory), byteCount: $0.count)
        }
        owner = .allocated(memory)
        baseAddress = UnsafeRawPointer(memory)
        count = bytes.count
    }

    /// Takes a reference to `buffer` and maps it for reading; `nil` if the buffer cannot be mapped.
    init?(gstBuffer buffer: UnsafeMutablePointer<GstBuffer>) {
        var map = GstMapInfo()
        let ref = swgst_buffer_ref(buffer)!
        guard gst_buffer_map(ref, &map, GST_MAP_READ) != 0, let data = map.data else {
            swgst_buffer_unref(ref)
            return nil
        }
        owner = .gstreamer(buffer: ref, map: map)
        baseAddress = UnsafeRawPointer(data)
        count = Int(map.size)
    }

    deinit {
        switch owner {
        case .gstreamer(let buffer, var map):
            gst_buffer_unmap(buffer, &map)
            swgst_buffer_unref(buffer)
        case .allocated(let memory):
            memory.deallocate()
        }
    }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: baseAddress, count: count) }

    /// A new reference to the GStreamer buffer behind these pixels (which keeps its own timestamps, and takes
    /// `duration` only if it has none), or a new buffer holding a copy of them stamped with `pts` and `duration`.
    func makeGstBuffer(pts: UInt64?, duration: UInt64?) -> UnsafeMutablePointer<GstBuffer>? {
        switch owner {
        case .gstreamer(let buffer, _):
            let ref = swgst_buffer_ref(buffer)!
            guard let duration, ref.pointee.duration == GstClockTime.max else { return ref }
            // Shared, so not writable: make_writable copies the metadata and shares the memory (no pixel copy).
            let object = gst_mini_object_make_writable(UnsafeMutablePointer(OpaquePointer(ref)))
            let writable = UnsafeMutablePointer<GstBuffer>(OpaquePointer(object))
            writable?.pointee.duration = GstClockTime(duration)
            return writable
        case .allocated:
            let buffer = gst_buffer_new_memdup(baseAddress, gsize(count))
            buffer?.pointee.pts = pts.map { GstClockTime($0) } ?? GstClockTime.max
            buffer?.pointee.duration = duration.map { GstClockTime($0) } ?? GstClockTime.max
            return buffer
        }
    }
}
