import PipelineKit

/// One detected object in frame pixel coordinates: a box, a score, (for faces) landmarks and (for a multi-class
/// detector) its class.
public struct Detection: Sendable, Equatable, Encodable {
    /// Left, top, right, bottom, in pixels of the frame as it entered the pipeline.
    public var x0: Float
    public var y0: Float
    public var x1: Float
    public var y1: Float
    public var score: Float
    /// Landmark points (x, y) in frame pixels; for faces: left eye, right eye, nose, left and right mouth corner.
    public var landmarks: [SIMD2<Float>]
    /// The class's position in the model's class scores, and its name when a labels file gave one; nil for
    /// single-class decoders (faces).
    public var classIndex: Int?
    public var label: String?
    /// The object's identity across frames, given by a tracker; nil until one runs.
    public var trackID: Int?

    public init(
        x0: Float, y0: Float, x1: Float, y1: Float, score: Float, landmarks: [SIMD2<Float>] = [],
        classIndex: Int? = nil, label: String? = nil, trackID: Int? = nil
    ) {
        self.x0 = x0
        self.y0 = y0
        self.x1 = x1
        self.y1 = y1
        self.score = score
        self.landmarks = landmarks
        self.classIndex = classIndex
        self.label = label
        self.trackID = trackID
    }

    public var width: Float { max(0, x1 - x0) }
    public var height: Float { max(0, y1 - y0) }
    public var area: Float { width * height }

    /// Intersection over union of two boxes; 0 when either is empty.
    public func iou(_ other: Detection) -> Float {
        let w = min(x1, other.x1) - max(x0, other.x0)
        let h = min(y1, other.y1) - max(y0, other.y0)
        guard w > 0, h > 0 else { return 0 }
        let inter = w * h
        let union = area + other.area - inter
        return union > 0 ? inter / union : 0
    }

    private enum CodingKeys: String, CodingKey {
        case box, score, landmarks
        case classIndex = "class"
        case label
        case trackID = "id"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode([x0, y0, x1, y1], forKey: .box)
        try c.encode(score, forKey: .score)
        try c.encode(landmarks.map { [$0.x, $0.y] }, forKey: .landmarks)
        // Only when present: face lines stay as they were.
        try c.encodeIfPresent(classIndex, forKey: .classIndex)
        try c.encodeIfPresent(label, forKey: .label)
        try c.encodeIfPresent(trackID, forKey: .trackID)
    }
}

/// The detections a decoder (`centerface`, `detect`) found in one frame, written by `jsonsink` under `faces` (the
/// name the first decoder gave it, kept so existing consumers read every decoder's lines).
public struct Detections: Sendable, Encodable {
    public var items: [Detection]

    public init(_ items: [Detection]) { self.items = items }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(items)
    }

    public enum Key: FrameMetadataKey {
        public typealias Value = Detections
        public static let name = "faces"
    }
}

/// How far one frame's detections agree with a reference's: greedy one-to-one matching by score at an IoU
/// threshold (docs/skip-convolutions.md §10), counted so that sums over frames give precision and recall.
public struct DetectionAgreement: Sendable, Equatable {
    public var matched = 0
    /// Candidate detections with no reference partner.
    public var extra = 0
    /// Reference detections with no candidate partner.
    public var missed = 0
    public var iouSum: Double = 0

    public init() {}

    public init(reference: [Detection], candidate: [Detection], iou threshold: Float = 0.5) {
        var free = Array(repeating: true, count: reference.count)
        for c in candidate.sorted(by: { $0.score > $1.score }) {
            var best = -1
            var bestIoU = threshold
            for (k, r) in reference.enumerated() where free[k] {
                let v = c.iou(r)
                if v >= bestIoU {
                    best = k
                    bestIoU = v
                }
            }
            if best >= 0 {
                free[best] = false
                matched += 1
                iouSum += Double(bestIoU)
            } else {
                extra += 1
            }
        }
        missed = free.filter { $0 }.count
    }

    public static func + (a: Self, b: Self) -> Self {
        var s = a
        s.matched += b.matched
        s.extra += b.extra
        s.missed += b.missed
        s.iouSum += b.iouSum
        return s
    }

    /// Matched / candidates (1 when there were none).
    public var precision: Double { matched + extra == 0 ? 1 : Double(matched) / Double(matched + extra) }
    /// Matched / reference detections (1 when there were none).
    public var recall: Double { matched + missed == 0 ? 1 : Double(matched) / Double(matched + missed) }
    public var meanIoU: Double { matched == 0 ? 1 : iouSum / Double(matched) }
}
