import Foundation
import PipelineKit
import Synchronization
import Testing

/// The supervisor against real GStreamer sources that end, fall silent or cannot connect.
@Suite struct PipelineSupervisorTests {
    static let registry = StageRegistry([Pass.self, Slow.self])
    static let caps = "video/x-raw,width=32,height=24,framerate=50/1,format=GRAY8"

    private func supervisor(
        _ source: String, watchdog: Duration = .seconds(2), teardown: Duration = .seconds(5)
    ) throws -> PipelineSupervisor {
        let plan = try PipelinePlanner(registry: Self.registry).plan(text: "\(source) ! pass", file: "t.pipeline")
        var settings = PipelineSupervisor.Settings()
        settings.watchdog = watchdog
        settings.teardownTimeout = teardown
        settings.minimumBackoff = .milliseconds(50)
        settings.maximumBackoff = .milliseconds(200)
        return PipelineSupervisor(plan: plan, settings: settings)
    }

    /// Runs the supervisor until `done` holds (checked every 50 ms, at most `limit`), then stops it.
    private func run(
        _ supervisor: PipelineSupervisor, limit: Duration = .seconds(20), until done: (FrameCollector) -> Bool
    ) async -> FrameCollector {
        let stop = StopSignal()
        let collected = FrameCollector()
        let task = Task { await supervisor.run(stop: stop, onOutput: collected.append) }
        let deadline = ContinuousClock.now + limit
        while !done(collected), ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
        stop.request()
        await task.value
        return collected
    }

    @Test func stagesLearnThePipelinesNameFromItsFile() {
        #expect(StageContext.pipelineName(file: "/etc/skipd/pipelines/door.pipeline") == "door")
        #expect(StageContext.pipelineName(file: "lobby") == "lobby")
        #expect(StageContext.pipelineName(file: "<stages>") == "default")
    }

    @Test func backoffDoublesUpToTheMaximum() {
        let settings = PipelineSupervisor.Settings()
        #expect((1...7).map { settings.backoff(attempt: $0) } == [1, 2, 4, 8, 16, 30, 30].map { .seconds($0) })
    }

    /// A live stream that ends (a camera server that went away gives EOS over TCP) is rebuilt: each rebuild is a
    /// fresh stream whose frames count from 0 again.
    @Test func aLiveSourceThatEndsIsRebuilt() async throws {
        let s = try supervisor("videotestsrc is-live=true num-buffers=5 ! \(Self.caps)")
        let out = await run(s) { $0.frames.filter { $0.index == 0 }.count >= 3 }
        #expect(out.frames.filter { $0.index == 0 }.count >= 3)
        #expect(s.reconnects >= 2)
        #expect(s.state == .finished)
    }

    /// A source that delivers nothing and reports nothing (a hung camera) trips the watchdog, again and again,
    /// with the attempt count rising while no frame arrives.
    @Test func aSilentSourceTripsTheWatchdog() async throws {
        let s = try supervisor(
            "videotestsrc is-live=true ! \(Self.caps) ! valve drop=true", watchdog: .milliseconds(300))
        let states = Mutex<[PipelineSupervisor.State]>([])
        let out = await run(s) { _ in
            let state = s.state
            states.withLock { if $0.last != state { $0.append(state) } }
            if case .reconnecting(let attempt, _) = state { return attempt >= 3 }
            return false
        }
        #expect(out.count == 0)
        let seen = states.withLock { $0 }
        let attempts = seen.compactMap { state -> Int? in
            if case .reconnecting(let attempt, let reason) = state, reason.contains("watchdog") { return attempt }
            return nil
        }
        #expect(attempts.starts(with: [1, 2, 3]), "\(seen)")
    }

    /// A GStreamer teardown that hangs cannot hold up supervision. `identity` sleeps 20 s on its first buffer, so
    /// no frame arrives, and stopping the pipeline waits for that sleep (the state change to NULL needs the
    /// streaming thread). With a 500 ms watchdog and a 1 s teardown limit, each stuck teardown is abandoned and the
    /// pipeline rebuilt: three failed attempts well within the 20 s the first teardown alone would take.
    @Test func aHungTeardownDoesNotStopSupervision() async throws {
        let s = try supervisor(
            "videotestsrc is-live=true ! \(Self.caps) ! identity sleep-time=20000000", watchdog: .milliseconds(500),
            teardown: .seconds(1))
        let start = ContinuousClock.now
        _ = await run(s, limit: .seconds(15)) { _ in
            if case .reconnecting(let attempt, _) = s.state { return attempt >= 3 }
            return false
        }
        #expect(s.reconnects >= 3)
        // Stopping did not wait for the last hung teardown either.
        #expect(ContinuousClock.now - start < .seconds(15))
    }

    /// A file source ahead of a slow stage waits on a full link: backpressure, not silence. With a 200 ms watchdog
    /// and 300 ms a frame, every frame still comes through without one rebuild.
    @Test func backpressureIsNotSilence() async throws {
        let plan = try PipelinePlanner(registry: Self.registry).plan(
            text: "videotestsrc num-buffers=12 ! \(Self.caps) ! slow", file: "t.pipeline")
        var settings = PipelineSupervisor.Settings()
        settings.watchdog = .milliseconds(200)
        let s = PipelineSupervisor(plan: plan, settings: settings)
        let out = await run(s, limit: .seconds(15)) { _ in s.state == .finished }
        #expect(out.frames.map(\.index) == Array(0..<12))
        #expect(s.reconnects == 0)
    }

    /// An unreachable camera at start-up is a state, not a crash: the supervisor keeps retrying.
    @Test func anUnreachableCameraIsRetried() async throws {
        let s = try supervisor(
            "rtspsrc location=rtsp://127.0.0.1:9/none protocols=tcp latency=200 ! rtph264depay ! avdec_h264 "
                + "! videoconvert ! video/x-raw,format=GRAY8")
        _ = await run(s) { _ in s.reconnects >= 2 }
        #expect(s.reconnects >= 2)
    }

    @Test func aFileThatEndsHasFinished() async throws {
        let s = try supervisor("videotestsrc num-buffers=5 ! \(Self.caps)")
        let collected = FrameCollector()
        await s.run(stop: StopSignal(), onOutput: collected.append)
        #expect(collected.frames.map(\.index) == [0, 1, 2, 3, 4])
        #expect(s.reconnects == 0 && s.state == .finished)
    }

    @Test func aRestartRebuildsAtOnceWithoutCountingAReconnect() async throws {
        let s = try supervisor("videotestsrc is-live=true ! \(Self.caps)")
        let stop = StopSignal()
        let task = Task { await s.run(stop: stop) }
        defer { stop.request() }
        func wait(_ done: () -> Bool) async {
            let deadline = ContinuousClock.now + .seconds(20)
            while !done(), ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        }
        await wait { s.monitor.snapshot().framesOut >= 5 }
        let before = s.monitor.snapshot().framesOut
        let asked = ContinuousClock.now
        s.restart()
        await wait { s.monitor.snapshot().runs == 2 && s.monitor.snapshot().framesOut > before + 5 }
        #expect(s.monitor.snapshot().runs == 2)
        #expect(ContinuousClock.now - asked < .seconds(5), "no backoff before a restart")
        #expect(s.reconnects == 0 && s.state == .running)
        stop.request()
        await task.value
    }
}

/// Passes frames on unchanged.
/// Takes 300 ms a frame (a slow model).
struct Slow: Stage {
    static let info = StageInfo(name: "slow", summary: "passes frames on, 300 ms each", example: "slow")
    init(properties: StageProperties, context: StageContext) {}
    mutating func process(_ frame: Frame) async throws -> Frame? {
        try await Task.sleep(for: .milliseconds(300))
        return frame
    }
}

struct Pass: Stage {
    static let info = StageInfo(name: "pass", summary: "passes frames on", example: "pass")
    init(properties: StageProperties, context: StageContext) {}
    mutating func process(_ frame: Frame) async throws -> Frame? { frame }
}
