import PipelineKit

/// Follows the objects a decoder found from frame to frame and gives each a stable ID (SORT: a constant-velocity
/// Kalman filter per object, IoU matching), and moves the boxes on frames where the model reused its outputs.
///
/// ```
/// … ! gate ! interval n=3 ! skipconv model=assets/centerface.onnx ! centerface ! track max-age=30 min-hits=3
///   ! jsonsink location=out/faces.jsonl
/// ```
/// On an inferred frame the ``Detections`` are matched to the tracks' predicted boxes (``MultiObjectTracker``:
/// Hungarian assignment, IoU at least `iou` between boxes grown by `buffer`, never across classes); a detection
/// without a match starts a track. A
/// track is reported once matched on `min-hits` consecutive inferred frames after its first (during the stream's
/// first `min-hits` inferred frames, at once), with the detection as the decoder gave it plus its
/// ``Detection/trackID``; the others are left out. A track unmatched on more than `max-age` inferred frames ends;
/// its ID is never used again in the run (IDs count from 1 in each run: a supervised rebuild starts over).
///
/// A frame marked skipped (by `gate`, `interval` or `policy`) carries the detections of an earlier frame: they are
/// not matched again. Instead every track moves one frame on and the tracks reported on the last inferred frame are
/// output at their predicted boxes (clipped to the frame), as DeepStream's and DL Streamer's trackers do between
/// inference intervals. A skipped frame counts as inferred when a model stage ran on it anyway (its
/// ``ComputeCost`` executed MACs: a model with nothing to reuse yet). Gaps in frame indices (frames dropped on the
/// way) move the tracks that many frames.
public struct Track: Stage {
    public static let info = StageInfo(
        name: "track",
        summary:
            "Stable IDs for detected objects across frames (SORT); moves their boxes on frames that reused results",
        example: "centerface ! track iou=0.3 max-age=30 min-hits=3",
        properties: [
            .double(
                "iou", default: 0.3, range: 0...1, "least IoU of a detection with a track's predicted box to match"),
            .int("max-age", default: 30, range: 0...1_000_000, "inferred frames a track survives without a match"),
            .int(
                "min-hits", default: 3, range: 0...1_000_000,
                "matches after its first detection before a track is reported"),
            .double(
                "buffer", default: 0, range: 0...10,
                "boxes grow by this fraction of their size on each side before matching (small, fast objects)"),
        ],
        requires: ["faces"])

    /// The most frames one gap moves tracks: after a longer stall the same tracks are as lost either way.
    static let maxSteps = 300

    private var tracker: MultiObjectTracker
    private var lastIndex: Int?

    public init(properties: StageProperties, context: StageContext) {
        tracker = MultiObjectTracker(
            .init(
                iou: Float(properties.double("iou")), maxAge: properties.int("max-age"),
                minHits: properties.int("min-hits"), buffer: Float(properties.double("buffer"))))
    }

    public mutating func process(_ frame: Frame) async throws -> Frame? {
        guard let detections = frame.metadata[Detections.Key.self] else { throw TrackError.noDetections }
        // Wrapping: indices come from the source, but an absurd one must not trap.
        let gap = lastIndex.map { frame.index &- $0 } ?? 1
        let steps = gap > 0 ? min(gap, Self.maxSteps) : 1
        lastIndex = frame.index
        let reused = frame.skipped && (frame.metadata[ComputeCost.Key.self]?.executedMACs ?? 0) == 0
        var frame = frame
        frame.metadata[Detections.Key.self] = Detections(
            reused
                ? tracker.coast(steps: steps, width: frame.image.width, height: frame.image.height)
                : tracker.update(detections.items, steps: steps))
        return frame
    }
}

public enum TrackError: Error, CustomStringConvertible {
    case noDetections

    public var description: String {
        switch self {
        case .noDetections:
            "track needs a decoder before it (… ! centerface ! track, or … ! detect ! track)"
        }
    }
}
