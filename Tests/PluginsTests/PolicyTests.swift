import Foundation
import PipelineKit
import Plugins
import Testing

/// The `policy` stage's decisions on hand-made residual statistics and board values.
@Suite struct PolicyTests {
    /// A 1×1 grey frame carrying a 10×10-block residual map with `changed` of its blocks changed.
    private func frame(_ index: Int, changed: Int, energy: Float = 2) -> Frame {
        var f = flat(index, width: 1, height: 1, value: 0)
        f.metadata[ResidualMap.Key.self] = ResidualMap(
            block: 16, columns: 10, rows: 10, energy: Array(repeating: energy, count: 100),
            peak: Array(repeating: 0, count: 100), changed: (0..<100).map { $0 < changed })
        return f
    }

    private func policy(_ line: String, context: StageContext = .detached()) throws -> Policy {
        let plan = try PipelinePlanner(registry: .standard).planStages("policy \(line)")
        return try Policy(properties: plan.stages[0].properties, context: context)
    }

    /// Runs `changes` (changed blocks of 100 per frame) through the policy; `face(i)` is posted before frame i.
    private func actions(
        _ policy: inout Policy, _ changes: [Int], board: FeedbackBoard? = nil, face: (Int) -> Double? = { _ in nil }
    ) async throws -> [String] {
        var out: [String] = []
        for (i, c) in changes.enumerated() {
            board?.post(PolicyFeatures.smallestFaceKey, face(i))
            let f = try #require(try await policy.process(frame(i, changed: c)))
            let decision = try #require(f.metadata[PolicyDecision.Key.self])
            #expect(f.skipped == decision.action.skips)
            out.append(decision.carried ? "carried" : decision.action.description)
        }
        return out
    }

    @Test func quietFramesSkipButNotForever() async throws {
        var p = try policy("scales=1 skip=2 skip-below=0.05 max-skips=2")
        // 1 of 100 blocks changed is below 0.05: skip 2 frames (the second rides along), twice, then one must run.
        let got = try await actions(&p, [1, 1, 1, 1, 1, 1, 1, 30])
        #expect(got == ["skip2", "carried", "skip2", "carried", "1", "skip2", "carried", "1"])
    }

    @Test func sceneCutRunsFullSizeAtOnce() async throws {
        let board = FeedbackBoard()
        var p = try policy("scales=1,0.5 skip=0 dwell=1 cut=0.6", context: .detached(board: board))
        // A large face allows half size (after the first frame, which runs at full size); a 70 % change overrides it.
        let got = try await actions(&p, [10, 10, 70, 10], board: board, face: { _ in 200 })
        #expect(got == ["1", "0.5", "1", "0.5"])
    }

    @Test func smallFacesKeepFullSizeAndShrinkingWaitsForTheDwell() async throws {
        let board = FeedbackBoard()
        var p = try policy("scales=1,0.5 skip=0 min-face=24 dwell=3 hold=1", context: .detached(board: board))
        // Faces 60 px: 30 px at half size is enough, but only after 3 frames at full size; a 40 px face (20 at
        // half) brings full size back at once.
        let faces: [Double] = [60, 60, 60, 60, 60, 40, 60, 60, 60, 60]
        let got = try await actions(&p, Array(repeating: 10, count: 10), board: board, face: { faces[$0] })
        #expect(got == ["1", "1", "1", "0.5", "0.5", "1", "1", "1", "0.5", "0.5"])
    }

    /// The decoder reports faces several frames after the policy decided them: a face is kept in mind for `hold`
    /// frames, and the board's value is taken once (a value the decoder posted is not read again).
    @Test func aFaceSeenStaysInMindForHoldFrames() async throws {
        let board = FeedbackBoard()
        var p = try policy("scales=1,0.5 skip=0 dwell=1 hold=3 probe=100", context: .detached(board: board))
        let faces: [Double?] = [nil, 20, nil, nil, nil, nil]
        let got = try await actions(&p, Array(repeating: 10, count: 6), board: board, face: { faces[$0] })
        #expect(got == ["1", "1", "1", "1", "0.5", "0.5"])
        #expect(board.take(PolicyFeatures.smallestFaceKey) == nil)
    }

    @Test func withNoFaceItProbesFullSizePeriodically() async throws {
        let board = FeedbackBoard()
        var p = try policy("scales=1,0.75,0.5 skip=0 dwell=1 probe=3", context: .detached(board: board))
        let got = try await actions(&p, Array(repeating: 10, count: 7), board: board)
        #expect(got == ["1", "0.5", "0.5", "1", "0.5", "0.5", "1"])
    }

    @Test func aFullLinkOnALiveSourceShedsLoad() async throws {
        let board = FeedbackBoard()
        let full = StageContext(outputDepth: { 4 }, outputCapacity: 4, live: true, board: board)
        var p = try policy("scales=1,0.5 skip=2 skip-below=0.001 dwell=1", context: full)
        let got = try await actions(&p, [10, 10], board: board, face: { _ in 30 })
        // 30 px faces need full size, but the link is full: one step cheaper; from half size, skip one frame.
        #expect(got == ["0.5", "0.5"])
        var q = try policy("scales=0.5 skip=2 skip-below=0.001", context: full)
        #expect(try await actions(&q, [10]) == ["skip1"])
        // A file source never sheds: a full link just means the model is busy.
        let file = StageContext(outputDepth: { 4 }, outputCapacity: 4, live: false, board: board)
        var r = try policy("scales=1,0.5 dwell=1 skip-below=0.001", context: file)
        #expect(try await actions(&r, [10], board: board, face: { _ in 30 }) == ["1"])
    }

    @Test func aLearnedPolicyIsAnArgmaxOverItsFeatures() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("policy-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        // Scores: full = 10·changed, half = 0.5, skip = 0.2 − changed (features: bias, changed, …).
        let model = LinearPolicy(
            actions: ["1", "0.5", "skip3"],
            weights: [[0, 10, 0, 0, 0, 0], [0.5, 0, 0, 0, 0, 0], [0.2, -1, 0, 0, 0, 0]])
        let path = dir.appendingPathComponent("p.json").path
        try JSONEncoder().encode(model).write(to: URL(fileURLWithPath: path))
        var p = try policy("model=\(path)")
        // changed 0.01: scores 0.1, 0.5, 0.19 → half; 0.2: 2.0 → full; 0.0 on a fresh policy needs a skip row to win.
        #expect(try await actions(&p, [1, 20, 1]) == ["0.5", "1", "0.5"])
        let skipper = LinearPolicy(actions: ["1", "skip3"], weights: [[0, 1, 0, 0, 0, 0], [0.5, 0, 0, 0, 0, 0]])
        try JSONEncoder().encode(skipper).write(to: URL(fileURLWithPath: path))
        var s = try policy("model=\(path)")
        #expect(try await actions(&s, [1, 1, 1, 100]) == ["skip3", "carried", "carried", "1"])
        let decision = try #require(try await s.process(frame(4, changed: 1))?.metadata[PolicyDecision.Key.self])
        #expect(decision.macs == 2 * PolicyFeatures.names.count)
    }

    @Test(arguments: [
        (
            #"{"actions": ["1", "half"], "features": ["bias", "changed", "energy", "has_face", "face_log2", "queue"], "weights": [[0,0,0,0,0,0],[0,0,0,0,0,0]]}"#,
            "unknown action 'half'"
        ),
        (
            #"{"actions": ["1"], "features": ["bias", "changed", "energy", "has_face", "face_log2", "queue"], "weights": [[0,0]]}"#,
            "needs 1 rows of 6 finite weights"
        ),
        (#"{"actions": ["1"], "features": ["bias"], "weights": [[0]]}"#, "refit with skipd fit-policy"),
        ("not json", "not a policy file"),
    ])
    func badPolicyFilesAreOneClearError(text: String, message: String) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID()).json").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect {
            _ = try policy("model=\(path)")
        } throws: { error in
            "\(error)".contains(message) && "\(error)".contains(path)
        }
    }

    @Test func badScalesAndAMissingResidualAreErrors() async throws {
        // The planner rejects a scale outside (0, 1] with its column.
        #expect { _ = try policy("scales=1,1.5") } throws: {
            "\($0)".contains("<stages>:1:15: error: bad value for 'policy scales'")
        }
        var p = try policy("scales=1")
        await #expect(throws: PolicyError.self) { _ = try await p.process(flat(0, width: 1, height: 1, value: 0)) }
    }
}
