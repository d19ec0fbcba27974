import PipelineKit

extension StageRegistry {
    /// Every stage that ships with skipd.
    public static let standard = StageRegistry([
        Residual.self, Gate.self, Model.self, SkipConv.self, JSONSink.self, CenterFaceDecoder.self, Overlay.self,
        Fusion.self, Interval.self, Policy.self, SQLiteSink.self, Regions.self, YOLODecoder.self, Track.self,
        PostgresSink.self, MQTTSink.self,
    ])
}
