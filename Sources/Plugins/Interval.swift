import PipelineKit

/// Infers one frame in `n`: the 1st, the n+1-th, …; the others are marked skipped, so a later `model` or
/// `skipconv` reuses its previous outputs. The fixed-rate baseline of DeepStream's `interval` (skipd's n is their
/// interval + 1) and DL Streamer's `inference-interval` (the same n).
///
/// ```
/// … ! residual ! gate refresh=300 ! interval n=3 ! skipconv model=assets/centerface.onnx ! jsonsink …
/// ```
/// The count is of frames since the last frame this stage let through to inference. A frame already skipped
/// upstream stays skipped and does not reset the count: when it was due, the next frame that is not skipped is
/// inferred instead, so inferences stay at least n frames apart without being postponed by a further n.
///
/// Place it after `gate`, never before: `gate` sets `skipped` on every frame and would overwrite its decisions.
/// A skipped frame keeps its ``BlockMask``: `skipconv` keeps the blocks of frames it did not run and adds them to
/// the next run's mask, so no committed change is lost.
public struct Interval: Stage {
    public static let info = StageInfo(
        name: "interval",
        summary: "Infers every n-th frame; marks the others skipped so model stages reuse their outputs",
        example: "gate refresh=300 ! interval n=3 ! model model=assets/centerface.onnx",
        properties: [
            .int("n", default: 2, range: 1...1000, "infer one frame in n (the 1st, the n+1-th, …); 1: every frame")
        ])

    private let n: Int
    /// Frames since the last inferred one, this one included; the first frame is due.
    private var since: Int

    public init(properties: StageProperties, context: StageContext) {
        n = max(1, properties.int("n"))
        since = n - 1
    }

    public mutating func process(_ frame: Frame) async throws -> Frame? {
        since += 1
        if frame.skipped { return frame }
        var frame = frame
        if since >= n {
            since = 0
        } else {
            frame.skipped = true
        }
        return frame
    }
}
