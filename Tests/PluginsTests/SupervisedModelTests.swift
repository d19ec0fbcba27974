import Foundation
import PipelineKit
import Plugins
import Testing

/// A supervised pipeline whose model cannot run as configured. It runs with the suites that need the cooperative
/// pool responsive (scripts/test runs them after the CPU-heavy ones): a supervisor's tasks starved for a minute by
/// engine tests would look like a pipeline that never fails.
@Suite struct SupervisedModelTests {
    /// A size written in the pipeline is taken as it is: a model that rejects it fails with its own error (no
    /// rounding behind the user's back), which a supervisor reports as `failed`.
    @Test func aWrittenSizeTheModelRejectsIsAConfigurationError() async throws {
        let cf = try ModelStageTests.centerFace()
        let plan = try PipelinePlanner(registry: .standard).plan(
            text: """
                videotestsrc num-buffers=30 ! video/x-raw,width=320,height=240,format=RGB
                  ! model model=\(cf) input-size=320x240
                """, file: "t.pipeline")
        let supervisor = PipelineSupervisor(plan: plan, settings: PipelineSupervisor.Settings())
        let stop = StopSignal()
        let run = Task { await supervisor.run(stop: stop) }
        // Not live (no watchdog to race on a loaded machine): a failing file is retried too, unless it is `failed`.
        let deadline = ContinuousClock.now + .seconds(60)
        while !supervisor.state.isFinal && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        stop.request()
        await run.value
        guard case .failed(let reason) = supervisor.state else {
            Issue.record("expected failed, got \(supervisor.state)")
            return
        }
        #expect(reason.contains("cannot be broadcast together"), "\(reason)")
        #expect(supervisor.reconnects == 0)
    }
}
