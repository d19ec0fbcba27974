import Foundation
import PipelineKit
import Testing

/// Teardowns that never return, made on purpose: the source reads a named pipe (through a symlink the test
/// points at a new pipe for every run) that the test keeps open for writing. After a few frames the pipe stays
/// empty, so GStreamer's streaming thread blocks in `read` and stopping the pipeline waits for it for good — the
/// hung-rtspsrc case, deterministic. The supervisor must abandon each such teardown and bring frames back from the
/// next pipe; 20 in a row must leave threads, descriptors and memory bounded, and give them back once the pipes
/// are closed (the blocked reads return, the abandoned teardowns finish).
@Suite(.serialized) struct HungTeardownTests {
    static let registry = StageRegistry([Pass.self])
    static let (width, height) = (32, 24)
    static let frameBytes = width * height * 3

    /// Named pipes under a temporary directory, each held open for writing (read-write, so opening never blocks)
    /// until `closeAll`, and the symlink the pipeline reads.
    final class Pipes: @unchecked Sendable {
        let dir: URL
        let link: URL
        private(set) var writers: [FileHandle] = []

        init() throws {
            dir = FileManager.default.temporaryDirectory.appendingPathComponent("skipd-hang-\(UUID())")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            link = dir.appendingPathComponent("camera")
        }

        /// A new pipe holding `frames` frames, and the symlink pointed at it.
        func next(frames: Int) throws {
            let path = dir.appendingPathComponent("pipe\(writers.count)").path
            guard mkfifo(path, 0o600) == 0 else { throw CocoaError(.fileWriteUnknown) }
            let fd = open(path, O_RDWR)
            guard fd >= 0 else { throw CocoaError(.fileWriteUnknown) }
            let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
            // Frames fit the pipe's 64 KiB buffer, so the write returns before anyone reads.
            handle.write(Data(repeating: 0x80, count: HungTeardownTests.frameBytes * frames))
            writers.append(handle)
            let temporary = dir.appendingPathComponent("camera.new")
            try? FileManager.default.removeItem(at: temporary)
            try FileManager.default.createSymbolicLink(atPath: temporary.path, withDestinationPath: path)
            guard rename(temporary.path, link.path) == 0 else { throw CocoaError(.fileWriteUnknown) }
        }

        /// Closes every pipe: blocked reads see end of stream and return.
        func closeAll() {
            for w in writers { try? w.close() }
            writers = []
        }

        deinit {
            closeAll()
            try? FileManager.default.removeItem(at: dir)
        }
    }

    static func count(_ directory: String) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: directory).count) ?? 0
    }

    static func residentMB() -> Double {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return (Double(line.split(separator: " ").dropFirst().first ?? "") ?? 0) / 1024
    }

    @Test func twentyHungTeardownsInARowStayBounded() async throws {
        let pipes = try Pipes()
        try pipes.next(frames: 3)
        let plan = try PipelinePlanner(registry: Self.registry).plan(
            // One frame per read: filesrc fills its whole block before pushing, which would hold frames back.
            text:
                "filesrc location=\(pipes.link.path) blocksize=\(Self.frameBytes) ! rawvideoparse width=\(Self.width) height=\(Self.height) "
                + "format=rgb framerate=50/1 ! video/x-raw,format=RGB ! pass",
            file: "hang.pipeline")
        var settings = PipelineSupervisor.Settings()
        settings.watchdog = .milliseconds(400)
        settings.teardownTimeout = .milliseconds(500)
        settings.minimumBackoff = .milliseconds(50)
        settings.maximumBackoff = .milliseconds(100)
        let supervisor = PipelineSupervisor(plan: plan, settings: settings)
        let (threads0, fds0, rss0) = (Self.count("/proc/self/task"), Self.count("/proc/self/fd"), Self.residentMB())

        let stop = StopSignal()
        let task = Task { await supervisor.run(stop: stop) }
        var recoveries: [Duration] = []
        var peak = (threads: threads0, fds: fds0)
        func framesOut() -> Int { supervisor.monitor.snapshot().framesOut }
        for hang in 1...20 {
            // Each pipe holds 3 frames: run `hang` is done once 3·hang frames are out. Then point the camera at the
            // next pipe and let this one fall silent.
            let deadline = ContinuousClock.now + .seconds(10)
            while framesOut() < 3 * hang, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            try #require(framesOut() >= 3 * hang, "run \(hang) got its frames")
            try pipes.next(frames: 3)
            let silent = ContinuousClock.now
            // The hung run is abandoned, and the next one brings the next pipe's first frame.
            while supervisor.monitor.snapshot().abandonedTeardowns < hang || framesOut() <= 3 * hang,
                ContinuousClock.now - silent < .seconds(10)
            {
                try await Task.sleep(for: .milliseconds(20))
            }
            recoveries.append(ContinuousClock.now - silent)
            peak = (max(peak.threads, Self.count("/proc/self/task")), max(peak.fds, Self.count("/proc/self/fd")))
        }
        let snapshot = supervisor.monitor.snapshot()
        #expect(snapshot.abandonedTeardowns >= 20, "every silent run's teardown hung and was abandoned")
        // Frames flowed again within 10 s of every hang (watchdog + teardown limit + backoff is about 1 s).
        #expect(recoveries.count == 20 && recoveries.allSatisfy { $0 < .seconds(10) }, "\(recoveries)")

        // While hung: each abandoned teardown holds the blocked GStreamer thread and the worker waiting on it, the
        // pipe's reader and GStreamer's wake-up pipes; the stated bound is 4 threads and 4 descriptors per hang,
        // besides the test's own write end of each pipe.
        print("20 hung teardowns: threads \(threads0) → \(peak.threads), descriptors \(fds0) → \(peak.fds)")
        #expect(peak.threads <= threads0 + 4 * 20, "threads \(threads0) → \(peak.threads)")
        #expect(peak.fds <= fds0 + 20 + 4 * 20, "descriptors \(fds0) → \(peak.fds)")

        stop.request()
        await task.value
        // Closing the pipes ends the blocked reads: the abandoned teardowns finish and give everything back.
        pipes.closeAll()
        let settle = ContinuousClock.now
        while Self.count("/proc/self/task") > threads0 + 4, ContinuousClock.now - settle < .seconds(10) {
            try await Task.sleep(for: .milliseconds(100))
        }
        print(
            "after closing the pipes: threads \(Self.count("/proc/self/task")), descriptors "
                + "\(Self.count("/proc/self/fd")), resident \(rss0) → \(Self.residentMB()) MB")
        #expect(Self.count("/proc/self/task") <= threads0 + 4, "threads back to \(Self.count("/proc/self/task"))")
        #expect(Self.count("/proc/self/fd") <= fds0 + 4, "descriptors back to \(Self.count("/proc/self/fd"))")
        #expect(Self.residentMB() <= rss0 + 64, "resident \(rss0) → \(Self.residentMB()) MB")
    }
}
