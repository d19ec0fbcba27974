import Foundation
import Logging
import PipelineKit
import Testing

@testable import SkipdService

/// A pipeline that delivered frames and then fell silent is never shown `running`: past the watchdog, while its
/// teardown is still under way, `/pipelines` says `stalled` with the silence in its reason. The camera sends a frame
/// every 5 s and `identity` holds each for 2 s: the first frame (out at 2 s) makes the pipeline running, the 3-s
/// watchdog fires at 5 s, and stopping waits until 7 s for the sleep that holds the second frame.
@Suite struct StalledStateTests {
    @Test func silencePastTheWatchdogIsStalled() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("stalled-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try """
        videotestsrc is-live=true ! video/x-raw,width=32,height=24,framerate=1/5,format=GRAY8
          ! identity sleep-time=2000000 ! residual
        """.write(to: dir.appendingPathComponent("slow.pipeline"), atomically: true, encoding: .utf8)
        var settings = PipelineSupervisor.Settings()
        settings.watchdog = .seconds(3)
        settings.teardownTimeout = .seconds(10)
        let fleet = PipelineFleet(directory: dir.path, settings: settings, logger: Logger(label: "test"))
        _ = await fleet.reload()
        var seen: [String] = []
        var stalled: PipelineStatus?
        let deadline = ContinuousClock.now + .seconds(20)
        while stalled == nil, ContinuousClock.now < deadline {
            let row = try #require(await fleet.status().first)
            if seen.last != row.state { seen.append(row.state) }
            if row.state == "stalled" { stalled = row }
            try await Task.sleep(for: .milliseconds(100))
        }
        await fleet.stopAll()
        let row = try #require(stalled, "states seen: \(seen)")
        #expect(seen.contains("running"), "\(seen)")
        #expect(row.reason?.hasPrefix("no frame for") == true, "\(row.reason ?? "")")
        #expect((row.lastFrameAge ?? 0) >= 3)
    }
}
