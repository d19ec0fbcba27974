import Synchronization

/// Runs frames from Swift through a chain of stages and collects what comes out: an array source, the stages,
/// a collecting sink. It makes stage tests (and embedding) read like pipeline files:
///
/// ```swift
/// let out = try await StageChain("residual threshold=4 block=2 ! gate", registry: .standard).run(frames)
/// ```
public struct StageChain: Sendable {
    public let plan: PipelinePlan

    public init(_ stages: String, registry: StageRegistry) throws(PipelineDiagnostic) {
        plan = try PipelinePlanner(registry: registry).planStages(stages)
    }

    /// `onOutput` also sees each frame as it leaves the last stage (a benchmark's clock).
    public func run(_ frames: [Frame], onOutput: @escaping @Sendable (Frame) -> Void = { _ in })
        async throws(PipelineRunError) -> [Frame]
    {
        let collected = FrameCollector()
        _ = try await PipelineRunner(plan: plan).run(frames: frames) { frame in
            collected.append(frame)
            onOutput(frame)
        }
        return collected.frames
    }
}

/// A thread-safe list of frames, filled by a runner's `onOutput`.
public final class FrameCollector: Sendable {
    private let storage = Mutex<[Frame]>([])
    public init() {}
    public func append(_ frame: Frame) { storage.withLock { $0.append(frame) } }
    public var frames: [Frame] { storage.withLock { $0 } }
    public var count: Int { storage.withLock { $0.count } }
}
