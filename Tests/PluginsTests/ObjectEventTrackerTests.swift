import Foundation
import Testing

@testable import Plugins

/// The mqtt stage's event logic on hand-made detection sequences, without a broker.
@Suite struct ObjectEventTrackerTests {
    private func box(_ id: Int?, x: Float, y: Float = 10, size: Float = 20, score: Float = 0.8, label: String? = nil)
        -> Detection
    {
        Detection(x0: x, y0: y, x1: x + size, y1: y + size, score: score, label: label, trackID: id)
    }

    /// Feeds `frames` (time = frame index) and then ends the stream; every output in order.
    private func run(_ frames: [[Detection]], _ settings: ObjectEventTracker.Settings) -> [ObjectEventTracker.Output] {
        var tracker = ObjectEventTracker(pipeline: "door", settings: settings)
        var outputs = frames.enumerated().map { tracker.observe($1, time: Double($0)) }
        outputs.append(tracker.finish(time: Double(frames.count)))
        return outputs
    }

    /// (frame, type, track ID) of every event; the track ID is the part of `id` after the start time.
    private func events(_ outputs: [ObjectEventTracker.Output]) -> [(Int, ObjectEvent.Kind, String)] {
        outputs.enumerated().flatMap { frame, output in
            output.events.map { (frame, $0.type, String($0.after.id.split(separator: "-").last ?? "")) }
        }
    }

    @Test func anObjectGetsOneNewThenUpdatesThenOneEndAfterItHasBeenAbsentLongEnough() throws {
        // Object 7 drifts 1 px a frame for 10 frames, then is gone; ends after 3 absent frames (frame 12).
        let frames = (0..<10).map { [box(7, x: Float($0))] } + Array(repeating: [], count: 5)
        let outputs = run(frames, .init(endAfter: 3, updateEvery: 4))
        let seen = events(outputs)
        #expect(seen.map(\.1) == [.new, .update, .update, .end])
        #expect(seen.map(\.0) == [0, 4, 8, 12])
        #expect(Set(seen.map(\.2)) == ["7"])
        let end = try #require(outputs[12].events.first)
        #expect(end.after.endTime == 9, "end_time is when it was last seen")
        #expect(end.after.box == [9, 10, 29, 30])
        #expect(end.before.box == [8, 10, 28, 30], "before: the state last published")
        #expect(outputs[0].events[0].before == outputs[0].events[0].after)
        #expect(outputs[0].events[0].after.endTime == nil)
        #expect(outputs.last?.events.isEmpty == true, "nothing left to end")
    }

    @Test func aJumpIsPublishedAtOnceAndAnUnchangedObjectNever() {
        // Frames 1–3 identical (no update); frame 4 jumps by a box width (IoU 0 < 0.5) before update-every is due.
        let frames = [[box(1, x: 0)], [box(1, x: 0)], [box(1, x: 0)], [box(1, x: 0)], [box(1, x: 40)]]
        let seen = events(run(frames, .init(endAfter: 30, updateEvery: 100)))
        #expect(seen.map(\.1) == [.new, .update, .end])
        #expect(seen.map(\.0) == [0, 4, 5])
    }

    @Test func theEndOfTheStreamEndsEveryLiveObjectAndZeroesItsCounts() throws {
        let frames = [[box(1, x: 0), box(2, x: 50, label: "person"), box(nil, x: 90)]]
        let outputs = run(frames, .init(endAfter: 30))
        let last = try #require(outputs.last)
        #expect(last.events.map(\.type) == [.end, .end])
        #expect(last.events.allSatisfy { $0.after.endTime == 0 })
        #expect(last.counts == [.init(label: "face", count: 0), .init(label: "person", count: 0)])
    }

    @Test func countsPerLabelAreLiveTrackedObjectsPlusUntrackedDetectionsAndChangeOnlyWhenTheyChange() {
        let frames: [[Detection]] = [
            [box(1, x: 0, label: "car"), box(2, x: 40, label: "car"), box(nil, x: 80)],
            [box(1, x: 0, label: "car"), box(2, x: 40, label: "car"), box(nil, x: 80)],
            // Car 2 is missing but not yet ended (end-after 2): still counted; the untracked face is gone.
            [box(1, x: 0, label: "car")],
            [box(1, x: 0, label: "car")],
            [box(1, x: 0, label: "car"), Detection(x0: 0, y0: 0, x1: 5, y1: 5, score: 0.9, classIndex: 3)],
        ]
        let outputs = run(frames, .init(endAfter: 2))
        #expect(outputs[0].counts == [.init(label: "car", count: 2), .init(label: "face", count: 1)])
        #expect(outputs[1].counts.isEmpty)
        #expect(outputs[2].counts == [.init(label: "face", count: 0)])
        #expect(outputs[3].counts == [.init(label: "car", count: 1)], "car 2 ended")
        #expect(outputs[3].events.map(\.type) == [.end])
        #expect(outputs[4].counts == [.init(label: "class3", count: 1)])
        #expect(outputs[5].counts == [.init(label: "car", count: 0), .init(label: "class3", count: 0)])
    }

    @Test func anIDSeenTwiceInAFrameCountsOnceWithItsBestScoreAndAReturningIDIsANewObject() throws {
        let frames: [[Detection]] = [
            [box(4, x: 0, score: 0.5), box(4, x: 60, score: 0.9)], [], [box(4, x: 0)],
        ]
        let outputs = run(frames, .init(endAfter: 1))
        let first = try #require(outputs[0].events.first)
        #expect(outputs[0].events.count == 1 && first.after.score == 0.9 && first.after.box[0] == 60)
        #expect(outputs[0].counts == [.init(label: "face", count: 1)])
        #expect(outputs[1].events.map(\.type) == [.end])
        let again = try #require(outputs[2].events.first)
        #expect(again.type == .new && again.after.id != first.after.id, "\(again.after.id)")
    }

    /// Random appearances and absences of 12 IDs over 400 frames: per ID, events always run new, updates, end.
    @Test func randomSequencesAlwaysBalanceNewAndEndPerObject() {
        var rng = SplitMix64(seed: 42)
        var present = Set<Int>()
        var frames: [[Detection]] = []
        for _ in 0..<400 {
            for id in 0..<12 where rng.below(20) == 0 {
                if present.contains(id) { present.remove(id) } else { present.insert(id) }
            }
            frames.append(
                present.sorted().map { box($0, x: Float(rng.below(200)), score: Float(rng.below(100)) / 100) })
        }
        var byObject: [String: [ObjectEvent.Kind]] = [:]
        var order: [String] = []
        for output in run(frames, .init(endAfter: 4, updateEvery: 3)) {
            for event in output.events {
                if byObject[event.after.id] == nil { order.append(event.after.id) }
                byObject[event.after.id, default: []].append(event.type)
                #expect(event.before.id == event.after.id)
            }
        }
        #expect(order.count > 12, "IDs came back as new objects")
        for id in order {
            let kinds = byObject[id] ?? []
            #expect(kinds.first == .new && kinds.last == .end, "\(id): \(kinds)")
            #expect(kinds.dropFirst().dropLast().allSatisfy { $0 == .update }, "\(id): \(kinds)")
        }
    }

    /// The payload as a consumer decodes it (JSONSerialization, not the stage's own types).
    @Test func eventPayloadsHaveFrigatesShape() throws {
        var tracker = ObjectEventTracker(pipeline: "door", settings: .init(endAfter: 1))
        let new = try #require(
            tracker.observe([box(3, x: 1.5, score: 0.75, label: "person")], time: 1000.25).events.first)
        _ = tracker.observe([box(3, x: 30, score: 0.5, label: "person")], time: 1001)
        let end = try #require(tracker.observe([], time: 1002).events.first)
        let encoder = JSONEncoder()
        func decode(_ event: ObjectEvent) throws -> [String: Any] {
            try #require(JSONSerialization.jsonObject(with: try encoder.encode(event)) as? [String: Any])
        }
        let newJSON = try decode(new)
        #expect(newJSON["type"] as? String == "new")
        let after = try #require(newJSON["after"] as? [String: Any])
        #expect(after["id"] as? String == "1000.250000-3")
        #expect(after["pipeline"] as? String == "door" && after["camera"] as? String == "door")
        #expect(after["label"] as? String == "person")
        #expect(after["score"] as? Double == 0.75 && after["top_score"] as? Double == 0.75)
        #expect(after["box"] as? [Double] == [1.5, 10, 21.5, 30])
        #expect(after["start_time"] as? Double == 1000.25 && after["frame_time"] as? Double == 1000.25)
        #expect(after["end_time"] is NSNull, "end_time is null, not missing, until the object ends")
        #expect((newJSON["before"] as? [String: Any])?["id"] as? String == "1000.250000-3")

        let endJSON = try decode(end)
        #expect(endJSON["type"] as? String == "end")
        let ended = try #require(endJSON["after"] as? [String: Any])
        #expect(ended["end_time"] as? Double == 1001)
        #expect(ended["score"] as? Double == 0.5 && ended["top_score"] as? Double == 0.75)
        #expect(ended["box"] as? [Double] == [30, 10, 50, 30])
    }
}
