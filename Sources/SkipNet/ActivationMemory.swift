#if canImport(Darwin)
    import Darwin
#else
    import Glibc
#endif

/// Activation buffers of at least 2 MB, 2 MB-aligned and marked for transparent huge pages where the kernel
/// offers them (`madvise` mode, as on Debian 12). A 1536×1152 frame's tensors are tens of MB each, and the skip
/// executor touches a run of a few dozen floats per channel plane, so with 4 KB pages nearly every run is a TLB
/// miss; with 2 MB pages a whole channel plane is one entry. Smaller buffers are plain allocations.
enum ActivationMemory {
    static let hugePage = 2 << 20

    /// `count` floats; free with `release`.
    static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        guard bytes >= hugePage else { return .allocate(capacity: max(count, 1)) }
        let rounded = (bytes + hugePage - 1) / hugePage * hugePage
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, hugePage, rounded) == 0, let raw else {
            return .allocate(capacity: max(count, 1))
        }
        #if os(Linux)
            _ = madvise(raw, rounded, MADV_HUGEPAGE)  // advice only: without THP these stay 4 KB pages
        #endif
        return raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    /// Frees a buffer from `allocate` (both kinds come from malloc's heap).
    static func release(_ pointer: UnsafeMutablePointer<Float>) { free(pointer) }
}
