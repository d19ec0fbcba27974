import Foundation

/// Turns each frame's tracked detections into object lifecycle events and per-label counts, in the shape Frigate
/// publishes (`new`, `update`, `end` with `before` and `after`). Pure: frames in, events out; the `mqtt` stage
/// publishes what it returns.
///
/// - `new`: a track ID appears (`before` and `after` are the same).
/// - `update`: the object's box, score or label differs from what was last published, and either `updateEvery`
///   frames have passed since its last event or the box moved far (IoU with the last published box below
///   `movedIoU`); jitter therefore costs at most one message per object per `updateEvery` frames, while a jump is
///   published at once.
/// - `end`: the ID has been absent for `endAfter` consecutive frames, or the stream ends (``finish(time:)``), so
///   every `new` gets exactly one `end`. `end_time` is the time the object was last seen.
///
/// Counts: per label, the tracked objects not yet ended plus this frame's detections without a track ID; a label's
/// count is reported when it changes (0 when its last object ends).
public struct ObjectEventTracker: Sendable {
    public struct Settings: Sendable {
        public var endAfter: Int
        public var updateEvery: Int
        public var movedIoU: Float

        public init(endAfter: Int = 30, updateEvery: Int = 15, movedIoU: Float = 0.5) {
            self.endAfter = max(1, endAfter)
            self.updateEvery = max(1, updateEvery)
            self.movedIoU = movedIoU
        }
    }

    /// What one frame produced: events in order (new and update by track ID, then ends), then changed counts.
    public struct Output: Sendable, Equatable {
        public var events: [ObjectEvent] = []
        public var counts: [LabelCount] = []
        public var isEmpty: Bool { events.isEmpty && counts.isEmpty }
    }

    public struct LabelCount: Sendable, Equatable {
        public var label: String
        public var count: Int
    }

    private struct Track {
        var published: ObjectState
        var current: ObjectState
        var lastSeen: Int
        var publishedFrame: Int
    }

    public let pipeline: String
    public let settings: Settings
    private var tracks: [Int: Track] = [:]
    private var frame = -1
    /// Counts as last reported, non-zero only.
    private var counts: [String: Int] = [:]

    public init(pipeline: String, settings: Settings = Settings()) {
        self.pipeline = pipeline
        self.settings = settings
    }

    /// The label an object is published under: the decoder's label, `face` for a single-class decoder
    /// (CenterFace), else `class<N>`.
    public static func label(of d: Detection) -> String {
        if let label = d.label { return label }
        return d.classIndex.map { "class\($0)" } ?? "face"
    }

    /// One frame's detections, at `time` (Unix seconds).
    public mutating func observe(_ detections: [Detection], time: Double) -> Output {
        frame += 1
        var output = Output()
        var untracked: [String: Int] = [:]
        // One detection per ID: a tracker should not repeat one, but if it does the best-scoring one counts.
        var byID: [Int: Detection] = [:]
        for d in detections {
            guard let id = d.trackID else {
                untracked[Self.label(of: d), default: 0] += 1
                continue
            }
            if let other = byID[id], other.score >= d.score { continue }
            byID[id] = d
        }
        for (id, d) in byID.sorted(by: { $0.key < $1.key }) {
            if let event = see(id, d, time: time) { output.events.append(event) }
        }
        for (id, track) in tracks.sorted(by: { $0.key < $1.key }) where frame - track.lastSeen >= settings.endAfter {
            output.events.append(end(id, track))
        }
        output.counts = recount(untracked: untracked)
        return output
    }

    /// End of stream: every live object ends, every reported count goes to 0.
    public mutating func finish(time: Double) -> Output {
        var output = Output()
        for (id, track) in tracks.sorted(by: { $0.key < $1.key }) { output.events.append(end(id, track)) }
        output.counts = recount(untracked: [:])
        return output
    }

    private mutating func see(_ id: Int, _ d: Detection, time: Double) -> ObjectEvent? {
        guard var track = tracks[id] else {
            let state = ObjectState(
                id: "\(String(format: "%.6f", time))-\(id)", pipeline: pipeline, label: Self.label(of: d),
                score: d.score,
                topScore: d.score, box: [d.x0, d.y0, d.x1, d.y1], startTime: time, endTime: nil, frameTime: time)
            tracks[id] = Track(published: state, current: state, lastSeen: frame, publishedFrame: frame)
            return ObjectEvent(type: .new, before: state, after: state)
        }
        track.current.label = Self.label(of: d)
        track.current.score = d.score
        track.current.topScore = max(track.current.topScore, d.score)
        track.current.box = [d.x0, d.y0, d.x1, d.y1]
        track.current.frameTime = time
        track.lastSeen = frame
        defer { tracks[id] = track }
        let (now, last) = (track.current, track.published)
        guard now.box != last.box || now.score != last.score || now.label != last.label else { return nil }
        let due = frame - track.publishedFrame >= settings.updateEvery
        let moved = Self.iou(now.box, last.box) < settings.movedIoU
        guard due || moved || now.label != last.label else { return nil }
        track.published = now
        track.publishedFrame = frame
        return ObjectEvent(type: .update, before: last, after: now)
    }

    private mutating func end(_ id: Int, _ track: Track) -> ObjectEvent {
        tracks[id] = nil
        var after = track.current
        after.endTime = after.frameTime
        return ObjectEvent(type: .end, before: track.published, after: after)
    }

    /// The counts that differ from those last reported, by label.
    private mutating func recount(untracked: [String: Int]) -> [LabelCount] {
        var now = untracked
        for track in tracks.values { now[track.current.label, default: 0] += 1 }
        let changed = Set(now.keys).union(counts.keys).sorted().filter { now[$0] != counts[$0] }
        counts = now
        return changed.map { LabelCount(label: $0, count: now[$0] ?? 0) }
    }

    static func iou(_ a: [Float], _ b: [Float]) -> Float {
        Detection(x0: a[0], y0: a[1], x1: a[2], y1: a[3], score: 0)
            .iou(Detection(x0: b[0], y0: b[1], x1: b[2], y1: b[3], score: 0))
    }
}

/// One object event: `{"type": "new"|"update"|"end", "before": {…}, "after": {…}}`.
public struct ObjectEvent: Sendable, Equatable, Encodable {
    public enum Kind: String, Sendable, Encodable { case new, update, end }
    public var type: Kind
    public var before: ObjectState
    public var after: ObjectState
}

/// An object as published: `id` (`<start_time>-<track ID>`, unique across runs), `pipeline` (also as `camera`,
/// Frigate's name for it), `label`, `score`, `top_score`, `box` [x0, y0, x1, y1] in frame pixels, `start_time`,
/// `end_time` (null until it ends) and `frame_time` (when `box` and `score` were seen), times in Unix seconds.
public struct ObjectState: Sendable, Equatable, Encodable {
    public var id: String
    public var pipeline: String
    public var label: String
    public var score: Float
    public var topScore: Float
    public var box: [Float]
    public var startTime: Double
    public var endTime: Double?
    public var frameTime: Double

    private enum CodingKeys: String, CodingKey {
        case id, pipeline, camera, label, score, box
        case topScore = "top_score"
        case startTime = "start_time"
        case endTime = "end_time"
        case frameTime = "frame_time"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(pipeline, forKey: .pipeline)
        try c.encode(pipeline, forKey: .camera)
        try c.encode(label, forKey: .label)
        try c.encode(score, forKey: .score)
        try c.encode(topScore, forKey: .topScore)
        try c.encode(box, forKey: .box)
        try c.encode(startTime, forKey: .startTime)
        // null, not absent: consumers read `after.end_time` to tell a live object from an ended one.
        if let endTime { try c.encode(endTime, forKey: .endTime) } else { try c.encodeNil(forKey: .endTime) }
        try c.encode(frameTime, forKey: .frameTime)
    }
}
