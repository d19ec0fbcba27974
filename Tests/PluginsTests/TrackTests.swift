import Foundation
import PipelineKit
import Testing

@testable import Plugins

/// `track` on hand-made detections whose true motion is known, so every expected ID and box is worked out by hand.
@Suite struct TrackTests {
    static let width = 400
    static let height = 300

    /// A `size`-pixel square box with its top-left corner at (x, y).
    private func box(_ x: Float, _ y: Float, size: Float = 40, classIndex: Int? = nil) -> Detection {
        Detection(x0: x, y0: y, x1: x + size, y1: y + size, score: 0.9, classIndex: classIndex)
    }

    /// Frames carrying `detections[i]`; a `skipped` frame carries the last inferred frame's detections instead, as a
    /// model stage that reused its outputs leaves them.
    private func frames(_ detections: [[Detection]], skipped: Set<Int> = []) -> [Frame] {
        var carried: [Detection] = []
        return detections.enumerated().map { i, found in
            var frame = flat(i, width: Self.width, height: Self.height, value: 0)
            frame.skipped = skipped.contains(i)
            if !frame.skipped { carried = found }
            frame.metadata[Detections.Key.self] = Detections(carried)
            return frame
        }
    }

    private func track(_ properties: String, _ detections: [[Detection]], skipped: Set<Int> = []) async throws
        -> [[Detection]]
    {
        let out = try await StageChain("track \(properties)", registry: .standard)
            .run(frames(detections, skipped: skipped))
        try #require(out.map(\.index) == Array(detections.indices))
        return try out.map { try #require($0.metadata[Detections.Key.self]).items }
    }

    private func expectNear(_ d: Detection, _ expected: Detection, within tolerance: Float, _ note: String) {
        let error = [d.x0 - expected.x0, d.y0 - expected.y0, d.x1 - expected.x1, d.y1 - expected.y1].map(abs).max()
        #expect(error.map { $0 <= tolerance } == true, "\(note): \(d) expected \(expected)")
    }

    /// A 40-pixel box moving (3, 2) pixels a frame: one ID throughout (reported from the first frame: the stream's
    /// first min-hits frames report at once), the decoder's boxes passed through untouched; on the three reused
    /// frames after it, the box where constant velocity puts it, (20 + 3k, 30 + 2k), not the stale frame-29 one.
    @Test func constantVelocityKeepsOneIDAndPredictsReusedFrames() async throws {
        let at = { (k: Int) in self.box(20 + 3 * Float(k), 30 + 2 * Float(k)) }
        let out = try await track("", (0..<33).map { [at($0)] }, skipped: [30, 31, 32])
        for k in 0..<30 {
            var expected = at(k)
            expected.trackID = 1
            #expect(out[k] == [expected], "frame \(k)")
        }
        for k in 30..<33 {
            try #require(out[k].count == 1, "frame \(k)")
            #expect(out[k][0].trackID == 1 && out[k][0].score == 0.9)
            expectNear(out[k][0], at(k), within: 0.5, "reused frame \(k)")
        }
    }

    /// Inference on one frame in three (interval n=3): the two frames between carry stale detections, and the
    /// boxes move on them anyway, within half a pixel of the true motion once the filter has seen a few frames.
    @Test func boxesMoveBetweenInferences() async throws {
        let at = { (k: Int) in self.box(10 + 3 * Float(k), 200 - 2 * Float(k), size: 30) }
        let skipped = Set((0..<60).filter { $0 % 3 != 0 })
        let out = try await track("", (0..<60).map { [at($0)] }, skipped: skipped)
        #expect(out.allSatisfy { $0.map(\.trackID) == [1] })
        for k in 15..<60 { expectNear(out[k][0], at(k), within: 0.5, "frame \(k)") }
    }

    /// Two boxes moving 15 pixels a frame towards each other on crossing diagonals, passing 10 pixels apart at frame
    /// 10: without the velocity the left box's last position overlaps the right box's next detection more than its
    /// own (IoU 0.71 against 0.42), so only prediction keeps the IDs. The detections' order flips every frame, so
    /// an ID cannot follow a position in the list.
    @Test func crossingBoxesKeepTheirIDs() async throws {
        let right = { (k: Int) in self.box(20 + 15 * Float(k), 100 + 2 * Float(k)) }
        let left = { (k: Int) in self.box(330 - 15 * Float(k), 140 - 2 * Float(k)) }
        let detections = (0..<21).map { k in k % 2 == 0 ? [right(k), left(k)] : [left(k), right(k)] }
        let out = try await track("min-hits=0", detections)
        for k in 0..<21 {
            let byX0 = Dictionary(uniqueKeysWithValues: out[k].map { ($0.x0, $0.trackID) })
            #expect(byX0[right(k).x0] == 1 && byX0[left(k).x0] == 2, "frame \(k): \(out[k])")
        }
    }

    /// A 14-pixel face moving 16 pixels a frame overlaps nothing of its previous box: without a buffer every frame
    /// starts a new track; with boxes grown by their size on each side (buffer=1: IoU 0.45 between frames) it keeps
    /// one ID, and once the filter has its velocity, the plain overlap of its prediction does the rest.
    @Test func bufferedIoUFollowsSmallFastObjects() async throws {
        let at = { (k: Int) in self.box(10 + 16 * Float(k), 50, size: 14) }
        let detections = (0..<20).map { [at($0)] }
        let plain = try await track("min-hits=0", detections)
        #expect(Set(plain.flatMap { $0.map(\.trackID) }).count == 20)
        let buffered = try await track("min-hits=0 buffer=1", detections)
        #expect(buffered.allSatisfy { $0.map(\.trackID) == [1] })
    }

    /// max-age=5: a still box missing for 5 inferred frames keeps its ID when it comes back; missing for 6, its
    /// track has ended and it gets a new ID, and a box appearing later a third, never one already used.
    @Test func lostTracksEndAfterMaxAgeAndIDsAreNeverReused() async throws {
        let still = box(100, 100)
        let other = box(300, 200)
        var detections: [[Detection]] = Array(repeating: [still], count: 5)  // 0…4
        detections += Array(repeating: [], count: 5)  // 5…9: 5 misses
        detections += Array(repeating: [still], count: 2)  // 10, 11: back
        detections += Array(repeating: [], count: 6)  // 12…17: 6 misses
        detections += [[still], [still, other]]  // 18, 19
        let out = try await track("max-age=5 min-hits=0", detections)
        let ids = out.map { $0.map { $0.trackID ?? -1 } }
        #expect(ids[0..<5].allSatisfy { $0 == [1] })
        #expect(ids[5..<10].allSatisfy(\.isEmpty) && ids[12..<18].allSatisfy(\.isEmpty))
        #expect(ids[10] == [1] && ids[11] == [1])
        #expect(ids[18] == [2] && ids[19] == [2, 3])
    }

    /// Reused frames are no evidence that an object left: 12 of them in a row (more than max-age=2) end no track.
    @Test func reusedFramesDoNotAgeTracks() async throws {
        let still = box(100, 100)
        let out = try await track(
            "max-age=2 min-hits=0", Array(repeating: [still], count: 15), skipped: Set(2..<14))
        #expect(out.allSatisfy { $0.map(\.trackID) == [1] })
    }

    /// min-hits=3 (the default): after the stream's first 3 inferred frames, a detection seen on one frame only is
    /// never reported; a new object is reported from its 4th frame on (matched on 3 frames after the first).
    @Test func minHitsHidesOneFrameFalsePositives() async throws {
        let steady = box(20, 20)
        let blip = box(200, 100)
        let late = box(300, 200)
        var detections: [[Detection]] = Array(repeating: [steady], count: 12)
        detections[5] = [steady, blip]
        for k in 6..<12 { detections[k].append(late) }
        let out = try await track("", detections)
        #expect(out.allSatisfy { $0.first.map { $0.x0 == 20 && $0.trackID == 1 } == true })
        #expect(out.joined().allSatisfy { $0.x0 != 200 }, "the one-frame box was reported")
        let lateFrames = out.indices.filter { k in out[k].contains { $0.x0 == 300 } }
        #expect(lateFrames == [9, 10, 11])
        // Its ID was given when its track started (after the blip's 2), whether reported yet or not.
        #expect(out[9].last?.trackID == 3)
    }

    /// Boxes of different classes at the same place are two tracks; a class change at the same place is a new one.
    @Test func classesNeverShareATrack() async throws {
        let detections: [[Detection]] =
            Array(repeating: [box(50, 50, classIndex: 0), box(50, 50, classIndex: 1)], count: 3)
            + Array(repeating: [box(200, 50, classIndex: 2)], count: 2) + [[box(200, 50, classIndex: 3)]]
        let out = try await track("min-hits=0", detections)
        for k in 0..<3 { #expect(out[k].map(\.trackID) == [1, 2] && out[k].map(\.classIndex) == [0, 1]) }
        #expect(out[3].map(\.trackID) == [3] && out[4].map(\.trackID) == [3])
        #expect(out[5].map(\.trackID) == [4] && out[5].map(\.classIndex) == [3])
    }

    /// A skipped frame that a model stage ran anyway (it had nothing to reuse yet) is an inferred frame.
    @Test func skippedFrameWithAModelRunIsInferred() async throws {
        var input = frames([[box(10, 10)]])
        input[0].skipped = true
        input[0].metadata[ComputeCost.Key.self] = ComputeCost(executedMACs: 5, denseMACs: 5, input: (400, 300))
        let out = try await StageChain("track", registry: .standard).run(input)
        #expect(out.first?.metadata[Detections.Key.self]?.items.map(\.trackID) == [1])
    }

    /// Out-of-range properties and a missing decoder are one error each, at plan time, before any frame; a frame
    /// without detections (a chain the planner did not check) is a stage error.
    @Test func badConfigurationIsOneClearError() async throws {
        let cases = [
            ("track max-age=-1", "bad value for 'track max-age': -1 is out of range 0…1000000"),
            ("track iou=1.5", "bad value for 'track iou': 1.5 is out of range 0.0…1.0"),
            ("track iou=-0.1", "bad value for 'track iou': -0.1 is out of range 0.0…1.0"),
            ("track min-hits=x", "bad value for 'track min-hits': expected an integer, got 'x'"),
        ]
        for (text, message) in cases {
            do {
                _ = try StageChain(text, registry: .standard)
                Issue.record("\(text) was accepted")
            } catch {
                #expect("\(error)".contains(message), "\(text): \(error)")
            }
        }
        do {
            _ = try PipelinePlanner(registry: .standard).plan(text: "videotestsrc ! track", file: "t.pipeline")
            Issue.record("track without a decoder was accepted")
        } catch {
            #expect("\(error)".contains("stage 'track' needs 'faces' from a stage before it (… ! centerface ! track"))
        }
        await #expect {
            _ = try await StageChain("track", registry: .standard).run([flat(0, width: 2, height: 2, value: 0)])
        } throws: { error in
            "\(error)".contains("track needs a decoder before it")
        }
    }

    /// jsonsink writes the ID as `id`; untracked detections have none (their lines are unchanged).
    @Test func jsonsinkWritesTheID() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("track-\(UUID()).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try await StageChain("track ! jsonsink location=\(path)", registry: .standard)
            .run(frames([[box(10, 20, size: 30)]]))
        let line = try String(contentsOfFile: path, encoding: .utf8)
        #expect(line.contains(#""faces":[{"box":[10,20,40,50],"id":1,"landmarks":[],"score":0.9}]"#), "\(line)")
    }

    /// A box with a NaN corner cannot be tracked: it is dropped, the others are tracked as usual.
    @Test func nonFiniteBoxesAreDropped() async throws {
        var bad = box(10, 10)
        bad.x1 = .nan
        let out = try await track("min-hits=0", [[bad, box(100, 100)], [box(100, 100)]])
        #expect(out.map { $0.map(\.trackID) } == [[1], [1]])
    }

    /// IoU T0–D0 0.6, T0–D1 0.5, T1–D0 0.5, T1–D1 0 as costs 1 − IoU: a greedy best-first match would take T0–D0
    /// and leave T1 without a partner; the optimum pairs T0–D1 and T1–D0.
    @Test func assignmentIsOptimalWhereGreedyIsNot() {
        #expect(Assignment.solve([[0.4, 0.5], [0.5, 1]]) == [1, 0])
        // Non-finite costs count as the worst finite one (1 here) instead of stalling the search.
        #expect(Assignment.solve([[.nan, 1], [.infinity, 0.5]]) == [0, 1])
        #expect(Assignment.solve([]) == [])
    }

    /// Random matrices up to 5×5, wide and tall: as many pairs as the smaller side, each column at most once, and
    /// the least total cost an exhaustive search finds.
    @Test func assignmentMatchesExhaustiveSearch() {
        var rng = SplitMix64(seed: 7)
        for _ in 0..<300 {
            let rows = 1 + rng.below(5)
            let columns = 1 + rng.below(5)
            let cost = (0..<rows).map { _ in (0..<columns).map { _ in Double(rng.below(100)) / 10 } }
            let result = Assignment.solve(cost)
            let assigned = result.compactMap { $0 }
            #expect(assigned.count == min(rows, columns) && Set(assigned).count == assigned.count, "\(cost)")
            let total = result.indices.reduce(0.0) { sum, r in sum + (result[r].map { cost[r][$0] } ?? 0) }
            #expect(abs(total - leastTotal(cost)) < 1e-9, "\(cost): \(result)")
        }
    }

    /// The least total cost of pairing min(rows, columns) rows with distinct columns, by trying every way.
    private func leastTotal(_ cost: [[Double]], row: Int = 0, used: Set<Int> = []) -> Double {
        guard row < cost.count else { return 0 }
        let columns = cost[0].count
        // A row may go without a column only while the rows left outnumber the free columns.
        var best = cost.count - row > columns - used.count ? leastTotal(cost, row: row + 1, used: used) : .infinity
        for c in 0..<columns where !used.contains(c) {
            best = min(best, cost[row][c] + leastTotal(cost, row: row + 1, used: used.union([c])))
        }
        return best
    }

    /// Real footage: carphone (one face, moving and turning, docs/test-data.md) through CenterFace at 192×160 on
    /// every other frame (interval n=2) and `track`. The decoder's boxes jitter from frame to frame and the frames
    /// between inferences are predicted, yet the face keeps one ID. (The plaza clip's faces are too small for
    /// CenterFace at a size that runs in seconds.)
    @Test func realFootageKeepsOneID() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let model = root.appendingPathComponent("assets/centerface.onnx").path
        let clip = root.appendingPathComponent("assets/carphone_pristine.mp4").path
        let present = [model, clip].allSatisfy { FileManager.default.fileExists(atPath: $0) }
        try #require(present, "run scripts/fetch-assets")
        let plan = try PipelinePlanner(registry: .standard).plan(
            text: """
                filesrc location=\(clip) ! qtdemux ! h264parse ! avdec_h264 ! videoconvert
                  ! video/x-raw,format=RGB ! identity eos-after=60
                  ! interval n=2 ! model model=\(model) input-size=192x160 ! centerface ! track
                """, file: "t.pipeline")
        let collected = FrameCollector()
        _ = try await PipelineRunner(plan: plan).run(onOutput: collected.append)
        let frames = collected.frames
        // identity's eos-after lets a frame or two more through: a limit, not an exact count.
        try #require(frames.count >= 60)
        let faces = try frames.map { try #require($0.metadata[Detections.Key.self]).items }
        let ids = Set(faces.joined().map { $0.trackID ?? -1 })
        #expect(ids == [1], "\(ids)")
        #expect(faces.filter { $0.count == 1 }.count >= frames.count * 9 / 10)
        // On the frames between inferences the box moves on instead of repeating the last inferred one.
        let moved = frames.indices.dropFirst().filter { k in
            frames[k].skipped && faces[k].first.map { f in faces[k - 1].first.map { $0.x0 != f.x0 } ?? false } == true
        }
        #expect(moved.count >= 20, "\(moved)")
    }

    @Test func isAStandardStage() {
        #expect(StageRegistry.standard.names.contains("track"))
        #expect(Track.info.properties.map(\.name) == ["iou", "max-age", "min-hits", "buffer"])
    }
}
