import Foundation
import Hummingbird
import PipelineKit
import Synchronization
import Testing

@testable import SkipdService

/// A viewer that stops reading: its stream's write never returns, and the pipeline must not notice.
@Suite struct MJPEGStreamTests {
    /// What a stalled client's writer was given; every write after the first (the opening boundary) waits until
    /// released, as a write does once the socket's buffers are full.
    final class WriteLog: Sendable {
        private let state = Mutex<(writes: [[UInt8]], released: Bool)>(([], false))
        var writes: [[UInt8]] { state.withLock { $0.writes } }
        var released: Bool { state.withLock { $0.released } }
        func append(_ bytes: [UInt8]) { state.withLock { $0.writes.append(bytes) } }
        func release() { state.withLock { $0.released = true } }
    }

    final class Flag: Sendable {
        private let value = Atomic<Bool>(false)
        func raise() { value.store(true, ordering: .releasing) }
        var isRaised: Bool { value.load(ordering: .acquiring) }
    }

    struct StalledWriter: ResponseBodyWriter {
        let log: WriteLog

        mutating func write(_ buffer: ByteBuffer) async throws {
            log.append(Array(buffer.readableBytesView))
            while log.writes.count >= 2 && !log.released { try await Task.sleep(for: .milliseconds(5)) }
        }

        consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
    }

    private func gray(_ level: UInt8) -> Frame {
        Pictures.quadrants(
            Array(repeating: SIMD3(level, level, level), count: 4), width: 32, height: 24, format: "GRAY8")
    }

    /// Whether `condition` came true within `limit`.
    private func wait(_ limit: Duration = .seconds(10), until condition: () -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + limit
        while !condition(), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        return condition()
    }

    /// The JPEG of one written part.
    private func jpeg(_ part: [UInt8]) throws -> [UInt8] {
        let start = try #require(part.firstRange(of: [0xFF, 0xD8])).lowerBound
        let end = try #require(part.lastRange(of: [0xFF, 0xD9])).upperBound
        return Array(part[start..<end])
    }

    @Test(.timeLimit(.minutes(1))) func aViewerThatDoesNotReadNeverHoldsTheFramePathAndGetsTheLatestFrameNext()
        async throws
    {
        let tap = FrameTap()
        tap.publish(gray(40))
        var settings = LiveViewSettings()
        settings.fps = 50
        let stream = MJPEGStream(tap: tap, width: 1280, settings: settings)
        let log = WriteLog()
        let viewer = Task { try await stream.body(closeConnection: {}).write(StalledWriter(log: log)) }
        defer { viewer.cancel() }
        // The opening boundary, then the first part (the frame of level 40), whose write does not return.
        try #require(try await wait { log.writes.count == 2 })

        // Published from a thread of its own, as the runner's last task would: if a publish waited for the viewer,
        // the thread would not finish, and the test says so instead of hanging.
        let (middle, newest) = (gray(120), gray(200))
        let published = Flag()
        Thread.detachNewThread {
            for _ in 0..<10_000 { tap.publish(middle) }
            tap.publish(newest)
            published.raise()
        }
        // Publishing is a swap under a lock: it finishes while the viewer's write is still stalled (a publish that
        // waited for the viewer never would). The limit is generous: a loaded machine is slow, not blocked.
        _ = try await wait(.seconds(30)) { published.isRaised }
        #expect(published.isRaised, "publishing waited for the stalled viewer")
        #expect(tap.latest?.sequence == 10_002)
        try await Task.sleep(for: .milliseconds(100))
        #expect(log.writes.count == 2, "more writes behind the stalled one: nothing may queue for a viewer")

        // Released, the viewer's next part is the newest frame: the 10,000 in between were dropped for it.
        log.release()
        try #require(try await wait { log.writes.count >= 3 })
        let shown = try await Pictures.decode(try jpeg(log.writes[2]))
        #expect(Pictures.near(Pictures.color(shown, 16, 12), [200, 200, 200], tolerance: 3))
        let first = try await Pictures.decode(try jpeg(log.writes[1]))
        #expect(Pictures.near(Pictures.color(first, 16, 12), [40, 40, 40], tolerance: 3))
    }

    @Test func aStreamEndsWhenItsPipelineIsStopped() async throws {
        let tap = FrameTap()
        tap.publish(gray(40))
        var settings = LiveViewSettings()
        settings.fps = 50
        let log = WriteLog()
        log.release()
        let viewer = Task {
            try await MJPEGStream(tap: tap, width: 1280, settings: settings).body(closeConnection: {})
                .write(StalledWriter(log: log))
        }
        try #require(try await wait { log.writes.count >= 2 })
        tap.close()
        try await viewer.value
    }
}
