import PipelineKit

/// What the `mqtt` stage did with its messages since the previous frame, attached to each frame so `skipd serve`
/// can sum it into `/metrics` (as it sums ``ComputeCost``): messages the broker acknowledged (QoS 1) or that were
/// written to it (QoS 0), messages dropped unsent (the queue was full while the broker was away), and how many wait
/// now. Messages of the last frame's events and the stream's end are delivered after the last frame: not counted.
public struct MQTTDelivery: Sendable, Encodable, Equatable {
    public var published: Int
    public var dropped: Int
    public var queued: Int

    public init(published: Int, dropped: Int, queued: Int) {
        self.published = published
        self.dropped = dropped
        self.queued = queued
    }

    public enum Key: FrameMetadataKey {
        public typealias Value = MQTTDelivery
        public static let name = "mqtt"
    }
}
