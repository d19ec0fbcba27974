import PipelineKit
import Testing

/// The monitor a runner reports into: counts summed over runs, links by name, steps holding a frame.
@Suite struct PipelineMonitorTests {
    static let registry = StageRegistry([Pass.self, Hold.self])
    static let source = "videotestsrc num-buffers=10 ! video/x-raw,width=32,height=24,format=GRAY8"

    private func runner(_ stages: String, monitor: PipelineMonitor) throws -> PipelineRunner {
        var runner = PipelineRunner(
            plan: try PipelinePlanner(registry: Self.registry).plan(text: "\(Self.source) ! \(stages)", file: "m"))
        runner.monitor = monitor
        return runner
    }

    @Test func countsSumOverRunsAndLinksKeepTheirNames() async throws {
        let monitor = PipelineMonitor()
        for _ in 0..<2 { _ = try await runner("pass ! pass", monitor: monitor).run() }
        let snapshot = monitor.snapshot()
        #expect(snapshot.runs == 2)
        #expect(snapshot.framesIn == 20 && snapshot.framesOut == 20)
        #expect(snapshot.links.map(\.name) == ["source→pass0", "pass0→pass1", "pass1→sink"])
        for link in snapshot.links {
            #expect(link.stats.sent == 20 && link.stats.received == 20 && link.stats.dropped == 0, "\(link.name)")
            #expect(link.stats.depth == 0, "nothing waits between runs: \(link.name)")
        }
        #expect(snapshot.busy.isEmpty && snapshot.lastFrame != nil)
    }

    @Test func aStageHoldingAFrameIsReportedUntilItLetsGo() async throws {
        let monitor = PipelineMonitor()
        let runner = try runner("pass ! hold", monitor: monitor)
        let run = Task { try await runner.run() }
        var seen: [String] = []
        let deadline = ContinuousClock.now + .seconds(10)
        while seen.isEmpty, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
            seen = monitor.snapshot().stuck(longerThan: .milliseconds(500))
        }
        #expect(seen == ["hold0"])
        #expect(monitor.snapshot().stuck(longerThan: .seconds(30)).isEmpty)
        _ = try await run.value
        #expect(monitor.snapshot().busy.isEmpty)
        #expect(monitor.snapshot().framesOut == 10)
    }
}

/// Holds frame 3 for 1.5 s (a stage that hangs for a while).
struct Hold: Stage {
    static let info = StageInfo(name: "hold", summary: "holds frame 3 for 1.5 s", example: "hold")
    init(properties: StageProperties, context: StageContext) {}
    mutating func process(_ frame: Frame) async throws -> Frame? {
        if frame.index == 3 { try await Task.sleep(for: .milliseconds(1500)) }
        return frame
    }
}
