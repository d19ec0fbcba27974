import Testing

@testable import SkipNet

/// `PathTimer`'s choice between the dense kernel and the sparse path, on timings given by hand.
@Suite struct PathTimerTests {
    /// Decisions at `density` over one probe interval: how many chose dense.
    static func denseChoices(_ timer: inout PathTimer, density: Double) -> Int {
        (0..<PathTimer.probeInterval).filter { _ in timer.choosesDense(density: density, otherwise: 0.5) }.count
    }

    @Test func choosesTheFasterPathAndProbesTheOther() {
        var timer = PathTimer(positions: 100)
        // Until both paths are timed: the fallback density (0.5), still probing the other path once an interval.
        #expect(Self.denseChoices(&timer, density: 0.7) == PathTimer.probeInterval - 1)
        // A cold first dense run (10× its real cost) and a sparse rate: d* = 1 / (0.001 × 100) = 10: sparse wins.
        timer.recordDense(1.0)
        timer.recordSparse(0.1, positions: 100)
        #expect(timer.breakEven == 10)
        #expect(Self.denseChoices(&timer, density: 0.7) == 1, "one probe of the dense path per interval")
        // The probe's warm time replaces the cold first sample (not blended with it): d* = 0.1 / 0.1 = 1 … and
        // with a second sparse sample (0.002 s a position, replacing the first) d* = 0.1 / 0.2 = 0.5:
        // dense wins at 0.7.
        timer.recordDense(0.1)
        #expect(timer.breakEven == 1)
        timer.recordSparse(0.2, positions: 100)
        #expect(timer.breakEven == 0.5)
        #expect(Self.denseChoices(&timer, density: 0.7) == PathTimer.probeInterval - 1)
        #expect(Self.denseChoices(&timer, density: 0.3) == 1)
        // Later samples are blended (0.8 old + 0.2 new), so one disturbed run moves the estimate only a fifth.
        timer.recordDense(0.6)
        #expect(abs((timer.dense ?? 0) - 0.2) < 1e-12)
    }

    @Test func tinyUpdatesDoNotSetTheSparseRate() {
        var timer = PathTimer(positions: 6400)
        timer.recordSparse(1.0, positions: 99)  // under 1/64 of the positions: overhead, not a rate
        #expect(timer.perPosition == nil)
        timer.recordSparse(1.0, positions: 100)
        #expect(timer.perPosition == 0.01)
    }
}
