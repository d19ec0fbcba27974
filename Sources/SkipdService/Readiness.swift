import Synchronization

/// Whether `skipd serve` has started its pipelines and is not stopping (`/ready`).
public final class Readiness: Sendable {
    private let ready = Atomic<Bool>(false)
    public init() {}
    public var isReady: Bool { ready.load(ordering: .relaxed) }
    public func set(_ value: Bool) { ready.store(value, ordering: .relaxed) }
}
