/// A checked pipeline, ready to run: GStreamer source segment → stages joined by links → optional GStreamer sink
/// segment.
public struct PipelinePlan: Sendable {
    /// A GStreamer part of the pipeline, as a gst-launch description (without the appsink/appsrc skipd adds).
    public struct Segment: Sendable {
        public var description: String
        public var location: SourceLocation
    }

    public var file: String
    public var source: Segment?
    public var stages: [StageSpec]
    /// `links[k]` feeds `stages[k]`; the last link carries the last stage's output to the sink segment.
    public var links: [LinkSpec]
    public var sink: Segment?
}

extension PipelinePlan {
    /// A plan that only decodes: the GStreamer source segment straight to the runner's output (no stages).
    /// For tools that want frames in memory, such as `skipd bench`.
    public static func decoding(_ source: String) -> PipelinePlan {
        PipelinePlan(
            file: "<decode>", source: Segment(description: source, location: SourceLocation(line: 1, column: 1)),
            stages: [], links: [LinkSpec()], sink: nil)
    }
}

/// One stage instance of a plan.
public struct StageSpec: Sendable {
    /// Instance name used in errors and metrics: `name=` from the file, else the stage name and its position.
    public var name: String
    public var stage: any Stage.Type
    public var properties: StageProperties
    public var location: SourceLocation
}

/// Settings of one link, from a `channel` element in the file; `nil` fields take the runner's defaults.
public struct LinkSpec: Sendable, Equatable {
    public var capacity: Int?
    public var policy: OverflowPolicy?

    public init(capacity: Int? = nil, policy: OverflowPolicy? = nil) {
        self.capacity = capacity
        self.policy = policy
    }
}

/// The `channel` element: configures the link it stands on, between stages (or at either end of them).
///
/// `… ! residual ! channel capacity=2 overflow=drop-oldest ! gate ! …`
public enum ChannelElement {
    public static let defaultCapacity = 4
    public static let info = StageInfo(
        name: "channel",
        summary: "Sets the capacity and overflow policy of the link it stands on (not a stage: no task of its own)",
        example: "residual ! channel capacity=2 overflow=drop-oldest ! gate",
        properties: [
            .int("capacity", default: defaultCapacity, range: 1...1024, "frames the link buffers"),
            .choice(
                "overflow", default: "auto", ["auto", "block", "drop-oldest"],
                "when full: block the producer, or drop the oldest frame; auto: block for files, drop-oldest for live"),
        ])
}
