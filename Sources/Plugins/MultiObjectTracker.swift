/// SORT (Bewley et al. 2016) over ``BoxKalmanFilter`` tracks: each inferred frame predicts every track, pairs tracks
/// with detections by IoU, updates the matched tracks, starts a track per unmatched detection and ends tracks
/// unmatched for more than `maxAge` inferred frames.
///
/// Pairing is the Hungarian method on 1 − IoU (``Assignment``), class by class, keeping pairs with IoU ≥ `iou`
/// (and above 0), the IoU taken of the boxes grown by `buffer`. A greedy best-IoU-first match is simpler but lets one pair take the partner another pair needed,
/// which is what happens when two objects cross; the optimal assignment keeps both, at a cost that is nothing next
/// to the model that produced the boxes.
struct MultiObjectTracker: Sendable {
    struct Settings: Sendable {
        var iou: Float = 0.3
        var maxAge = 30
        var minHits = 3
        /// Each box grows by this fraction of its width and height on every side before the IoU is taken
        /// (buffered IoU, as C-BIoU does): small, fast objects — a face 14 px wide moving 8 px a frame — have
        /// no overlap between frames otherwise.
        var buffer: Float = 0
    }

    struct Tracked: Sendable {
        let id: Int
        let classIndex: Int?
        var filter: BoxKalmanFilter
        /// The detection last matched: its score, landmarks and label ride along on predicted boxes.
        var last: Detection
        /// Consecutive inferred frames matched since the one that started it (SORT's hit streak).
        var streak = 0
        /// Inferred frames since it was last matched (SORT's time since update).
        var misses = 0
        /// Reported on the last inferred frame: reused frames report the same tracks.
        var reported = false
    }

    let settings: Settings
    private(set) var tracks: [Tracked] = []
    /// IDs count up from 1 and are never handed out twice.
    private var nextID = 1
    /// Inferred frames so far: during the first `minHits` every matched track is reported, as SORT does.
    private var inferred = 0

    init(_ settings: Settings) { self.settings = settings }

    /// An inferred frame, `steps` frames after the previous one: returns the detections whose track is reported,
    /// in their order, with its ID. Detections whose box is not finite cannot be tracked and are dropped.
    mutating func update(_ detections: [Detection], steps: Int) -> [Detection] {
        inferred += 1
        predict(steps)
        let usable = detections.indices.filter {
            let d = detections[$0]
            return d.x0.isFinite && d.y0.isFinite && d.x1.isFinite && d.y1.isFinite
        }
        var trackOf = [Int: Int]()  // detection → track index
        var matched = Set<Int>()
        for classIndex in Set(usable.map { detections[$0].classIndex }) {
            let ds = usable.filter { detections[$0].classIndex == classIndex }
            let ts = tracks.indices.filter { tracks[$0].classIndex == classIndex }
            guard !ds.isEmpty, !ts.isEmpty else { continue }
            let iou = ts.map { t in
                let box = buffered(predictedBox(tracks[t]))
                return ds.map { box.iou(buffered(detections[$0])) }
            }
            let accepted = iou.map { $0.map { $0 >= settings.iou && $0 > 0 } }
            let cost = ts.indices.map { r in ds.indices.map { c in accepted[r][c] ? 1 - Double(iou[r][c]) : 1 } }
            for (r, c) in Assignment.solve(cost).enumerated() {
                guard let c, accepted[r][c] else { continue }
                trackOf[ds[c]] = ts[r]
                matched.insert(ts[r])
            }
        }
        for t in tracks.indices {
            if matched.contains(t) {
                tracks[t].streak += 1
                tracks[t].misses = 0
            } else {
                tracks[t].streak = 0
                tracks[t].misses += 1
            }
        }
        for d in usable {
            if let t = trackOf[d] {
                tracks[t].filter.update(detections[d])
                tracks[t].last = detections[d]
            } else {
                trackOf[d] = tracks.count
                tracks.append(
                    Tracked(
                        id: nextID, classIndex: detections[d].classIndex, filter: BoxKalmanFilter(detections[d]),
                        last: detections[d]))
                nextID += 1
            }
        }
        for t in tracks.indices {
            tracks[t].reported =
                tracks[t].misses == 0 && (tracks[t].streak >= settings.minHits || inferred <= settings.minHits)
        }
        let reported = usable.compactMap { d -> Detection? in
            guard let t = trackOf[d], tracks[t].reported else { return nil }
            var out = detections[d]
            out.trackID = tracks[t].id
            return out
        }
        tracks.removeAll { $0.misses > settings.maxAge }
        return reported
    }

    /// A frame whose detections were reused, `steps` frames after the previous one: every track moves on and the
    /// ones reported on the last inferred frame are returned at their predicted boxes, clipped to the frame (a box
    /// that left it is left out). Ages do not change: a reused frame is no evidence that an object is gone.
    mutating func coast(steps: Int, width: Int, height: Int) -> [Detection] {
        predict(steps)
        return tracks.filter(\.reported).compactMap { t in
            var box = predictedBox(t)
            box.x0 = max(box.x0, 0)
            box.y0 = max(box.y0, 0)
            box.x1 = min(box.x1, Float(width))
            box.y1 = min(box.y1, Float(height))
            return box.x1 > box.x0 && box.y1 > box.y0 ? box : nil
        }
    }

    private func buffered(_ d: Detection) -> Detection {
        guard settings.buffer > 0 else { return d }
        let (dx, dy) = (d.width * settings.buffer, d.height * settings.buffer)
        return Detection(x0: d.x0 - dx, y0: d.y0 - dy, x1: d.x1 + dx, y1: d.y1 + dy, score: d.score)
    }

    private mutating func predict(_ steps: Int) {
        for t in tracks.indices {
            for _ in 0..<max(1, steps) { tracks[t].filter.predict() }
        }
    }

    /// The track's current estimate as a detection: the last match's score, class and label, its ID, and its
    /// landmarks carried along with the box (same place relative to the box's centre and size).
    private func predictedBox(_ t: Tracked) -> Detection {
        let (x0, y0, x1, y1) = t.filter.box
        let old = t.last
        let oldCentre = SIMD2((old.x0 + old.x1) / 2, (old.y0 + old.y1) / 2)
        let newCentre = SIMD2((x0 + x1) / 2, (y0 + y1) / 2)
        let scale = SIMD2(old.width > 0 ? (x1 - x0) / old.width : 1, old.height > 0 ? (y1 - y0) / old.height : 1)
        return Detection(
            x0: x0, y0: y0, x1: x1, y1: y1, score: old.score,
            landmarks: old.landmarks.map { ($0 - oldCentre) * scale + newCentre }, classIndex: old.classIndex,
            label: old.label, trackID: t.id)
    }
}
