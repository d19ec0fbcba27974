import Testing

@testable import SkipNet

extension OutputFidelity {
    fileprivate mutating func add(_ y: [Float], dense: [Float]) {
        y.withUnsafeBufferPointer { y in dense.withUnsafeBufferPointer { add(y, dense: $0) } }
    }
}

extension PeakAgreement {
    fileprivate mutating func add(_ y: [Float], reference: [Float], width: Int, height: Int) {
        y.withUnsafeBufferPointer { y in
            reference.withUnsafeBufferPointer { add(y, reference: $0, width: width, height: height) }
        }
    }
}

/// A `width`×`height` map of zeros with the given cells set.
private func heatmap(width: Int, height: Int, _ cells: [(x: Int, y: Int, value: Float)]) -> [Float] {
    var map = [Float](repeating: 0, count: width * height)
    for cell in cells { map[cell.y * width + cell.x] = cell.value }
    return map
}

private func peaks(_ map: [Float], width: Int, height: Int) -> [[Int]] {
    map.withUnsafeBufferPointer { PeakAgreement.peaks($0, width: width, height: height, threshold: 0.5) }
        .map { [$0.x, $0.y] }
}

/// A deterministic frame that changes with `t`, with values that are not small integers.
private func frame(_ t: Int, count: Int = 1000) -> [Float] {
    (0..<count).map { Float((($0 * 7 + t * 13) % 17) - 8) * 0.37 + Float(t) * 0.011 }
}

@Suite struct FidelityTests {
    @Test func relativeL2OnHandVectors() {
        var fidelity = OutputFidelity()
        fidelity.add([0, 4, 0, 0], dense: [3, 4, 0, 0])  // ‖(3,0,0,0)‖ / ‖(3,4,0,0)‖ = 3/5
        fidelity.add([1, 2, 2, 0], dense: [1, 2, 2, 0])  // identical
        fidelity.add([0, 0, 0, 0], dense: [0, 0, 0, 0])  // both zero
        fidelity.add([2, 2, 2, 1], dense: [1, 2, 2, 0])  // ‖(1,0,0,1)‖ / ‖(1,2,2,0)‖ = √2/3
        #expect(fidelity.relativeL2.count == 4)
        #expect(abs(fidelity.relativeL2[0] - 0.6) < 1e-12)
        #expect(fidelity.relativeL2[1] == 0)
        #expect(fidelity.relativeL2[2] == 0)
        #expect(abs(fidelity.relativeL2[3] - 2.0.squareRoot() / 3) < 1e-12)
        #expect(abs(fidelity.meanRelativeL2 - (0.6 + 2.0.squareRoot() / 3) / 4) < 1e-12)

        var zeroDense = OutputFidelity()
        zeroDense.add([1, 0], dense: [0, 0])
        #expect(zeroDense.relativeL2 == [.infinity])
        #expect(OutputFidelity().meanRelativeL2 == 0)
    }

    @Test func reusingThePreviousDenseOutputScoresExactlyOne() {
        var fidelity = OutputFidelity()
        fidelity.add(frame(0), dense: frame(0))
        for t in 1..<5 { fidelity.add(frame(t - 1), dense: frame(t)) }
        #expect(fidelity.relativeL2.count == 5)
        #expect(fidelity.missedChangeRatio == 1.0)
    }

    @Test func matchingTheDenseOutputScoresZero() {
        var fidelity = OutputFidelity()
        for t in 0..<5 { fidelity.add(frame(t), dense: frame(t)) }
        #expect(fidelity.missedChangeRatio == 0)
        #expect(fidelity.meanRelativeL2 == 0)
    }

    @Test func missedChangeRatioIntermediateCase() {
        var fidelity = OutputFidelity()
        fidelity.add([1, 1], dense: [0, 0])  // frame 0 enters neither sum despite its error
        fidelity.add([2, 0], dense: [3, 0])  // error² 1, change² 9
        fidelity.add([3, 2], dense: [3, 4])  // error² 4, change² 16
        #expect(abs(fidelity.missedChangeRatio - (5.0 / 25.0).squareRoot()) < 1e-12)
    }

    @Test func restartLeavesTheJumpBetweenStretchesOut() {
        var fidelity = OutputFidelity()
        fidelity.add([0, 0], dense: [0, 0])
        fidelity.add([2, 0], dense: [3, 0])  // error² 1, change² 9
        fidelity.restart()
        fidelity.add([9, 9], dense: [50, 50])  // a new stretch's first frame: neither sum, though far from [3, 0]
        fidelity.add([50, 52], dense: [50, 54])  // error² 4, change² 16
        #expect(abs(fidelity.missedChangeRatio - (5.0 / 25.0).squareRoot()) < 1e-12)
        #expect(fidelity.relativeL2.count == 4)
    }

    @Test func missedChangeRatioWithoutChange() {
        var single = OutputFidelity()
        single.add([5], dense: [1])
        #expect(single.missedChangeRatio == 0)  // no frame t ≥ 1: both sums empty

        var staticExact = OutputFidelity()
        for _ in 0..<3 { staticExact.add([1, 2], dense: [1, 2]) }
        #expect(staticExact.missedChangeRatio == 0)

        var staticWrong = OutputFidelity()
        for _ in 0..<3 { staticWrong.add([1, 3], dense: [1, 2]) }
        #expect(staticWrong.missedChangeRatio == .infinity)
    }

    @Test func firstAndLastFollowGrowingError() {
        var fidelity = OutputFidelity()
        // Relative error of frame t is 0.25·t: 0, 0.25, 0.5, 0.75, 1, 1.25.
        for t in 0..<6 { fidelity.add([1 + 0.25 * Float(t), 0], dense: [1, 0]) }
        #expect(fidelity.relativeL2 == [0, 0.25, 0.5, 0.75, 1, 1.25])
        #expect(fidelity.firstAndLast(2) == (first: 0.125, last: 1.125))
        #expect(fidelity.firstAndLast(10) == (first: 0.25, last: 1.0))  // clamped to 3 = 6/2
        #expect(fidelity.firstAndLast(0) == (first: 0, last: 0))
        #expect(OutputFidelity().firstAndLast(3) == (first: 0, last: 0))
    }

    @Test func peaksOnAHandMadeMap() {
        // 6 wide, 5 high.
        let map: [Float] = [
            0.9, 0.2, 0.0, 0.0, 0.0, 0.0,  // (0,0): corner peak, compared with in-bounds neighbours only
            0.3, 0.1, 0.0, 0.7, 0.7, 0.0,  // (3,1), (4,1): plateau, both count
            0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
            0.4, 0.0, 0.0, 0.6, 0.0, 0.3,  // (0,3) local max below threshold; (3,3) above but next to 0.8
            0.0, 0.0, 0.8, 0.0, 0.0, 0.5,  // (2,4): bottom-border peak; (5,4) equals the threshold, not above
        ]
        #expect(peaks(map, width: 6, height: 5) == [[0, 0], [3, 1], [4, 1], [2, 4]])
    }

    @Test func shiftedPeakMatchesWithinTheRadiusOnly() {
        let reference = heatmap(width: 8, height: 7, [(1, 3, 0.9)])

        var two = PeakAgreement()
        two.add(heatmap(width: 8, height: 7, [(3, 3, 0.9)]), reference: reference, width: 8, height: 7)
        two.add(heatmap(width: 8, height: 7, [(3, 5, 0.9)]), reference: reference, width: 8, height: 7)  // diagonal
        #expect((two.matched, two.predicted, two.expected) == (2, 2, 2))
        #expect(two.recall == 1 && two.precision == 1)

        var three = PeakAgreement()
        three.add(heatmap(width: 8, height: 7, [(4, 3, 0.9)]), reference: reference, width: 8, height: 7)
        #expect((three.matched, three.predicted, three.expected) == (0, 1, 1))
        #expect(three.recall == 0 && three.precision == 0)

        var clip = two
        clip.add(heatmap(width: 8, height: 7, [(4, 3, 0.9)]), reference: reference, width: 8, height: 7)
        #expect((clip.matched, clip.predicted, clip.expected) == (2, 3, 3))
    }

    @Test func matchingIsOneToOne() {
        let reference = heatmap(width: 7, height: 5, [(2, 2, 0.9), (4, 2, 0.8)])
        let y = heatmap(width: 7, height: 5, [(3, 2, 0.9)])  // distance 1 from both
        var agreement = PeakAgreement()
        agreement.add(y, reference: reference, width: 7, height: 5)
        #expect((agreement.matched, agreement.predicted, agreement.expected) == (1, 1, 2))
        #expect(agreement.recall == 0.5)
        #expect(agreement.precision == 1)
    }

    @Test func matchingIsGreedyByDistanceThenRowMajor() {
        // Pairs: y(3,2)–r(4,2) at 1, y(5,2)–r(4,2) at 1, y(3,2)–r(1,2) at 2. The first distance-1 pair in
        // row-major order takes r(4,2); y(5,2) then has no free reference within 2, y(3,2) is already taken.
        let reference = heatmap(width: 7, height: 5, [(1, 2, 0.9), (4, 2, 0.9)])
        let y = heatmap(width: 7, height: 5, [(3, 2, 0.9), (5, 2, 0.9)])
        var agreement = PeakAgreement()
        agreement.add(y, reference: reference, width: 7, height: 5)
        #expect((agreement.matched, agreement.predicted, agreement.expected) == (1, 2, 2))
    }

    @Test func emptyMapsAgreeFully() {
        var agreement = PeakAgreement()
        let zeros = heatmap(width: 4, height: 4, [])
        agreement.add(zeros, reference: zeros, width: 4, height: 4)
        #expect((agreement.matched, agreement.predicted, agreement.expected) == (0, 0, 0))
        #expect(agreement.recall == 1 && agreement.precision == 1)
    }
}
