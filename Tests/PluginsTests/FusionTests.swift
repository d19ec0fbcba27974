import PipelineKit
import Testing

@testable import Plugins

/// `fusion` against an offline causal convolution written out independently below (docs/skip-convolutions.md §10: the
/// streaming output equals the offline causal conv on the same frames).
@Suite struct FusionTests {
    /// A 2×2 grey frame carrying model outputs: "heat" (position 0, the one fused by default) and "other".
    private func withOutputs(_ index: Int, heat: [Float], shape: [Int], skipped: Bool = false) -> Frame {
        var frame = flat(index, width: 2, height: 2, value: 0)
        frame.skipped = skipped
        frame.metadata[ModelOutputs.Key.self] = ModelOutputs(
            tensors: [
                .init(name: "heat", shape: shape, data: heat),
                .init(name: "other", shape: [3], data: [7, 8, 9]),
            ], inputSize: (8, 8), frameSize: (2, 2))
        return frame
    }

    /// `count` random tensors of `size` values in 0…1, the same every run.
    private func sequence(_ count: Int, size: Int, seed: UInt64 = 42) -> [[Float]] {
        var random = SplitMix64(seed: seed)
        return (0..<count).map { _ in (0..<size).map { _ in Float.random(in: 0...1, using: &random) } }
    }

    /// y_t[i] = Σ_j w_j · x_{max(0, t−j)}[i], in Double: plain loops over the whole sequence, left padding with
    /// the first frame.
    private func offlineCausal(_ xs: [[Float]], weights: [Double]) -> [[Double]] {
        var ys: [[Double]] = []
        for t in xs.indices {
            var y = Array(repeating: 0.0, count: xs[t].count)
            for i in y.indices {
                for j in weights.indices { y[i] += weights[j] * Double(xs[max(0, t - j)][i]) }
            }
            ys.append(y)
        }
        return ys
    }

    private func fused(_ frames: [Frame], through stages: String) async throws -> [[Float]] {
        let out = try await StageChain(stages, registry: .standard).run(frames)
        #expect(out.map(\.index) == frames.map(\.index))
        return try out.map { frame in
            let outputs = try #require(frame.metadata[ModelOutputs.Key.self])
            #expect(outputs.tensors[1].data == [7, 8, 9], "frame \(frame.index): other tensors are untouched")
            return outputs.tensors[0].data
        }
    }

    private func maxDifference(_ a: [[Float]], _ b: [[Double]]) -> Double {
        guard a.count == b.count else { return .infinity }
        var worst = 0.0
        for (x, y) in zip(a, b) {
            guard x.count == y.count else { return .infinity }
            for (u, v) in zip(x, y) { worst = max(worst, abs(Double(u) - v)) }
        }
        return worst
    }

    @Test func streamingTemporalUnitEqualsOfflineCausalConvolution() async throws {
        let xs = sequence(12, size: 12)
        let frames = xs.enumerated().map { withOutputs($0.offset, heat: $0.element, shape: [1, 1, 3, 4]) }
        let ys = try await fused(frames, through: "fusion unit=st taps=3 weights=0.5,0.3,0.2")
        let expected = offlineCausal(xs, weights: [0.5, 0.3, 0.2])
        #expect(ys.count == 12)
        #expect(maxDifference(ys, expected) <= 1e-6)
    }

    @Test func spatialPlusTemporalIsHalfTheSum() async throws {
        let xs = sequence(10, size: 6, seed: 7)
        let frames = xs.enumerated().map { withOutputs($0.offset, heat: $0.element, shape: [1, 1, 2, 3]) }
        let ys = try await fused(frames, through: "fusion unit=s+st weights=0.5,0.3,0.2")
        let st = offlineCausal(xs, weights: [0.5, 0.3, 0.2])
        let expected = zip(xs, st).map { x, s in zip(x, s).map { 0.5 * (Double($0) + $1) } }
        #expect(maxDifference(ys, expected) <= 1e-6)
        // Scores in 0…1 stay in 0…1: a decoder's 0.5 threshold keeps its meaning.
        #expect(ys.allSatisfy { $0.allSatisfy { (0...1).contains($0) } })
    }

    @Test func spatialUnitPassesThrough() async throws {
        let xs = sequence(10, size: 4, seed: 3)
        let frames = xs.enumerated().map { withOutputs($0.offset, heat: $0.element, shape: [4]) }
        #expect(try await fused(frames, through: "fusion unit=s taps=5") == xs)
    }

    @Test func defaultWeightsDecayAndSumToOne() async throws {
        let w = CausalFusion.defaultWeights(taps: 3, decay: 0.5)
        #expect(w.count == 3)
        #expect(abs(w.reduce(0, +) - 1) <= 1e-6)
        #expect(zip(w, w.dropFirst()).allSatisfy { $0 > $1 })
        let exact: [Double] = [4.0 / 7, 2.0 / 7, 1.0 / 7]
        #expect(maxDifference([w], [exact]) <= 1e-6)
        #expect(CausalFusion.defaultWeights(taps: 4, decay: 1) == [0.25, 0.25, 0.25, 0.25])
        #expect(CausalFusion.defaultWeights(taps: 3, decay: 0) == [1, 0, 0])

        // The stage's default is the same filter.
        let xs = sequence(10, size: 5, seed: 11)
        let frames = xs.enumerated().map { withOutputs($0.offset, heat: $0.element, shape: [5]) }
        let ys = try await fused(frames, through: "fusion taps=4 decay=0.25")
        let expected = offlineCausal(xs, weights: CausalFusion.defaultWeights(taps: 4, decay: 0.25).map(Double.init))
        #expect(maxDifference(ys, expected) <= 1e-6)
    }

    /// A skipped frame carries the model's reused tensor; fusion pushes it, so the skip gets the fused value of a
    /// still scene and later taps stay one frame apart.
    @Test func skippedFrameGetsTheFusedCarryForward() async throws {
        let x = sequence(3, size: 4, seed: 5)
        let pushed = [x[0], x[1], x[1], x[2]]  // frame 2 is skipped: the model reused frame 1's outputs
        let frames = pushed.enumerated().map {
            withOutputs($0.offset, heat: $0.element, shape: [2, 2], skipped: $0.offset == 2)
        }
        let out = try await StageChain("fusion weights=0.5,0.3,0.2", registry: .standard).run(frames)
        #expect(out.map(\.skipped) == [false, false, true, false])
        let ys = try out.map { try #require($0.metadata[ModelOutputs.Key.self]).tensors[0].data }
        let expected = offlineCausal(pushed, weights: [0.5, 0.3, 0.2])
        #expect(maxDifference(ys, expected) <= 1e-6)
        // The skip's value: 0.8 · x1 + 0.2 · x0, not the raw reused x1.
        let carry = zip(x[1], x[0]).map { 0.8 * Double($0) + 0.2 * Double($1) }
        #expect(maxDifference([ys[2]], [carry]) <= 1e-6)
        #expect(ys[2] != x[1])
    }

    /// A policy changed the model's input size: the ring restarts from the new tensor.
    @Test func shapeChangeRefillsTheRing() async throws {
        let small = sequence(3, size: 4, seed: 1)
        let large = sequence(3, size: 9, seed: 2)
        let frames =
            small.enumerated().map { withOutputs($0.offset, heat: $0.element, shape: [1, 1, 2, 2]) }
            + large.enumerated().map { withOutputs(3 + $0.offset, heat: $0.element, shape: [1, 1, 3, 3]) }
        let ys = try await fused(frames, through: "fusion weights=0.5,0.3,0.2")
        let w = [0.5, 0.3, 0.2]
        #expect(maxDifference(Array(ys.prefix(3)), offlineCausal(small, weights: w)) <= 1e-6)
        #expect(maxDifference(Array(ys.suffix(3)), offlineCausal(large, weights: w)) <= 1e-6)
        #expect(maxDifference([ys[3]], [large[0].map(Double.init)]) <= 1e-6)  // Σw = 1 over a full ring of x3
    }

    @Test func ringBufferWrapsAroundOverManyFrames() throws {
        // The arithmetic alone, over more frames than slots and a 1-tap filter's identity.
        let xs = sequence(40, size: 3, seed: 9)
        var fusion = try CausalFusion(unit: .st, weights: [0.4, 0.3, 0.2, 0.1])
        let ys = xs.map { fusion.push($0, shape: [3]) }
        #expect(maxDifference(ys, offlineCausal(xs, weights: [0.4, 0.3, 0.2, 0.1])) <= 1e-6)
        var identity = try CausalFusion(unit: .st, weights: [1])
        #expect(xs.map { identity.push($0, shape: [3]) } == xs)
    }

    @Test func outputByName() async throws {
        var frame = withOutputs(0, heat: [1, 2], shape: [2])
        let out = try await StageChain("fusion output=other weights=1,0", registry: .standard).run([frame])
        frame = try #require(out.first)
        let outputs = try #require(frame.metadata[ModelOutputs.Key.self])
        #expect(outputs.tensors.map(\.data) == [[1, 2], [7, 8, 9]])
    }

    @Test func missingOutputIsAnError() async throws {
        let frame = withOutputs(0, heat: [1], shape: [1])
        await #expect {
            _ = try await StageChain("fusion output=537", registry: .standard).run([frame])
        } throws: { error in
            let text = "\(error)"
            return text.contains("fusion0") && text.contains("'537'") && text.contains("heat, other")
        }
        await #expect {
            _ = try await StageChain("fusion", registry: .standard).run([flat(0, width: 2, height: 2, value: 0)])
        } throws: { error in
            "\(error)".contains("fusion0") && "\(error)".contains("model")
        }
    }

    @Test func badWeightsAreErrors() async throws {
        let frame = withOutputs(0, heat: [1], shape: [1])
        for (stages, message) in [
            ("fusion taps=2 weights=0.5,0.3,0.2", "taps=2"), ("fusion weights=0.5,x", "'x' is not a number"),
            ("fusion weights=0.5,,0.5", "'' is not a number"),
        ] {
            await #expect {
                _ = try await StageChain(stages, registry: .standard).run([frame])
            } throws: { error in
                "\(error)".contains(message)
            }
        }
        #expect(throws: FusionError.self) { try CausalFusion(unit: .st, weights: []) }
    }

    @Test func isAStandardStage() {
        #expect(StageRegistry.standard.names.contains("fusion"))
        #expect(Fusion.info.properties.map(\.name) == ["output", "unit", "taps", "weights", "decay"])
    }
}
