/// A Swift processing step between GStreamer segments: frames in, frames out.
///
/// A stage runs in its own task; the runner reads frames from its input channel, calls ``process(_:)`` and sends
/// what it returns to the output channel. A stage therefore owns its state outright (no locks) and never sees
/// another stage. Return `nil` to drop a frame; throw to stop the pipeline with an error naming the stage.
///
/// ```swift
/// /// Counts frames.  `… ! counter ! jsonsink location=out.jsonl`
/// struct Counter: Stage {
///     static let info = StageInfo(name: "counter", summary: "Counts frames", example: "counter")
///     var seen = 0
///     init(properties: StageProperties, context: StageContext) {}
///     mutating func process(_ frame: Frame) async throws -> Frame? {
///         seen += 1
///         return frame
///     }
/// }
/// ```
public protocol Stage: SendableMetatype {
    /// Name, summary and properties, as listed by `skipd stages`.
    static var info: StageInfo { get }

    /// Builds the stage for a run from properties already checked against ``StageInfo/properties``; `context` is
    /// what the running pipeline offers beyond them (its output link, the feedback board, the results store),
    /// which most stages leave alone. `StageContext.detached()` serves tools that drive a stage directly.
    init(properties: StageProperties, context: StageContext) throws

    /// Handles one frame.
    mutating func process(_ frame: Frame) async throws -> Frame?

    /// Called once at end of stream, after the last frame: flush and close here.
    mutating func finish() async throws
}

extension Stage {
    public mutating func finish() async throws {}

}

/// What a running pipeline offers a stage beyond its properties.
public struct StageContext: Sendable {
    /// Frames waiting in the link after this stage: a stage in front of slow work sheds load when it fills.
    public var outputDepth: @Sendable () -> Int
    public var outputCapacity: Int
    /// Whether the source is live (a camera): only then does a full link mean falling behind; a file just waits.
    public var live: Bool
    /// Values later stages publish for earlier ones, one board per run.
    public var board: FeedbackBoard
    /// The pipeline's name: its file's name without directory and `.pipeline` (`door` for
    /// `/etc/skipd/pipelines/door.pipeline`), for results that must say where they came from.
    public var pipeline: String
    /// The daemon's results database (`store` in `skipd serve`'s config): where a results sink writes when its
    /// file does not say; nil: the stage's own default.
    public var store: String?

    public init(
        outputDepth: @escaping @Sendable () -> Int, outputCapacity: Int, live: Bool, board: FeedbackBoard,
        pipeline: String = "default", store: String? = nil
    ) {
        self.outputDepth = outputDepth
        self.outputCapacity = outputCapacity
        self.live = live
        self.board = board
        self.pipeline = pipeline
        self.store = store
    }

    /// A context with an always-empty output and a board of its own (tools that drive a stage directly).
    public static func detached(board: FeedbackBoard = FeedbackBoard()) -> StageContext {
        StageContext(outputDepth: { 0 }, outputCapacity: 1, live: false, board: board)
    }

    /// `door` for `/etc/skipd/pipelines/door.pipeline`; `default` for text without a file.
    public static func pipelineName(file: String) -> String {
        let base = file.split(separator: "/").last.map(String.init) ?? file
        let name = base.hasSuffix(".pipeline") ? String(base.dropLast(".pipeline".count)) : base
        return name.isEmpty || name.hasPrefix("<") ? "default" : name
    }
}

/// What `skipd stages` shows about a stage.
public struct StageInfo: Sendable {
    public var name: String
    public var summary: String
    /// A pipeline line that uses the stage, for the docs.
    public var example: String
    public var properties: [PropertySpec]
    /// Results an earlier stage must attach (e.g. `residual`): the planner rejects an order that lacks one.
    public var requires: [String]
    /// Results this stage attaches, by the names other stages require.
    public var provides: [String]

    public init(
        name: String, summary: String, example: String, properties: [PropertySpec] = [], requires: [String] = [],
        provides: [String] = []
    ) {
        self.name = name
        self.summary = summary
        self.example = example
        self.properties = properties
        self.requires = requires
        self.provides = provides
    }
}

/// The stages a pipeline file may name, by name.
public struct StageRegistry: Sendable {
    private var factories: [String: any Stage.Type]

    public init(_ stages: [any Stage.Type]) {
        factories = [:]
        for stage in stages { factories[stage.info.name] = stage }
    }

    public func stage(named name: String) -> (any Stage.Type)? { factories[name] }

    public var all: [any Stage.Type] { factories.values.sorted { info(of: $0).name < info(of: $1).name } }

    /// Stage names, sorted.
    public var names: [String] { all.map { info(of: $0).name } }

    /// The stage's info (a plain function: opening the metatype inline in typed-throws code crashed swiftc 6.3.1).
    public func info(of stage: any Stage.Type) -> StageInfo { stage.info }
}
