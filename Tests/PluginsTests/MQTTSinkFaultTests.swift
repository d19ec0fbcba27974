import Foundation
import PipelineKit
import Testing

@testable import Plugins

/// The mqtt stage while the broker is away: the pipeline never waits for it, messages wait in the bounded queue
/// and reach a persistent subscriber once the broker is back, and what overflows is dropped oldest first and
/// counted. The broker is stopped with SIGTERM, which closes every connection as a crash would for the client.
@Suite(.serialized) struct MQTTSinkFaultTests {
    /// Longest a frame may take in the stage: far below anything that waits on the network (a TCP connect, a
    /// reconnection delay of 1 s).
    private let bound = Duration.milliseconds(100)

    private func sink(_ broker: MosquittoBroker, _ properties: String) throws -> MQTTSink {
        let text = "mqtt port=\(broker.port) prefix=f reconnect-max=1 \(properties)"
        let spec = try #require(try StageChain(text, registry: .standard).plan.stages.first)
        return try MQTTSink(properties: spec.properties, context: .detached())
    }

    /// Feeds `frames`; how many came out, the slowest call and the drops the frames reported (``MQTTDelivery``).
    private func feed(_ sink: inout MQTTSink, _ frames: [Frame]) async throws -> (
        out: Int, slowest: Duration, dropped: Int
    ) {
        var (out, dropped) = (0, 0)
        var slowest = Duration.zero
        for frame in frames {
            let start = ContinuousClock.now
            let result = try await sink.process(frame)
            slowest = max(slowest, ContinuousClock.now - start)
            if let result {
                out += 1
                dropped += result.metadata[MQTTDelivery.Key.self]?.dropped ?? 0
            }
        }
        return (out, slowest, dropped)
    }

    /// A broker that knows the subscriber `watcher` (a persistent session saved on stop), then stopped.
    private func brokerWithSession() throws -> MosquittoBroker {
        let broker = try MosquittoBroker()
        try broker.start()
        try MQTTSubscriber(port: broker.port, prefix: "f", id: "watcher").stop()
        broker.stop()
        return broker
    }

    private func waitConnected(_ sink: MQTTSink) async -> Bool {
        for _ in 0..<500 where !sink.stats.connected { try? await Task.sleep(for: .milliseconds(20)) }
        return sink.stats.connected
    }

    /// Connected, with every queued message acknowledged by the broker.
    private func waitFlushed(_ sink: MQTTSink) async -> Bool {
        func flushed() -> Bool {
            let stats = sink.stats
            return stats.connected && stats.waiting == 0 && stats.inFlight == 0
        }
        for _ in 0..<500 where !flushed() { try? await Task.sleep(for: .milliseconds(20)) }
        return flushed()
    }

    @Test func aBrokerDownAtStartIsNoErrorAndTheQueuedEventsArriveOnceItStarts() async throws {
        let broker = try brokerWithSession()
        let scene = walkingScene(frames: 0..<60)
        var sink = try sink(broker, "end-after=5 update-every=4")
        let early = try await feed(&sink, framesCarrying(Array(scene[..<30])))
        #expect(early.out == 30)
        #expect(early.slowest < bound, "\(early.slowest)")
        #expect(!sink.stats.connected && sink.stats.waiting > 0 && sink.stats.dropped == 0)

        try broker.start()
        // The subscriber comes back only once the queue is flushed: what it gets was queued, not published live.
        #expect(await waitFlushed(sink))
        let subscriber = try MQTTSubscriber(port: broker.port, prefix: "f", id: "watcher")
        #expect(subscriber.wait { $0.contains { $0.topic == "f/events" } }, "queued events arrive")
        let late = try await feed(&sink, framesCarrying(Array(scene[30...]), from: 30))
        #expect(late.out == 30)
        try await sink.finish()

        #expect(subscriber.wait { $0.last?.payload == "offline" })
        let received = subscriber.events()
        let expected = expectedEvents(scene, .init(endAfter: 5, updateEvery: 4))
        #expect(received.map(\.type) == expected.map(\.type))
        #expect(received.map(\.track) == expected.map(\.track))
    }

    @Test func aBrokerKilledAndRestartedMidRunNeverHoldsUpTheStageAndEventsResume() async throws {
        let broker = try brokerWithSession()
        try broker.start()
        let subscriber = try MQTTSubscriber(port: broker.port, prefix: "f", id: "watcher")
        let scene = walkingScene(frames: 0..<90)
        var sink = try sink(broker, "end-after=5 update-every=4")
        #expect(await waitConnected(sink))

        let before = try await feed(&sink, framesCarrying(Array(scene[..<30])))
        #expect(subscriber.wait { $0.contains { $0.payload.contains(#""type":"end""#) } }, "events flow")
        broker.stop()
        let during = try await feed(&sink, framesCarrying(Array(scene[30..<60]), from: 30))
        #expect(during.slowest < bound, "a frame waited \(during.slowest) for the broker")
        #expect(!sink.stats.connected && sink.stats.waiting > 0)

        try broker.start()
        #expect(await waitConnected(sink), "reconnected")
        let after = try await feed(&sink, framesCarrying(Array(scene[60...]), from: 60))
        #expect(before.out + during.out + after.out == 90, "frames out equal frames in")
        try await sink.finish()
        #expect(sink.stats.dropped == 0)

        #expect(subscriber.wait { $0.last?.payload == "offline" }, "\(subscriber.messages.suffix(3))")
        let received = subscriber.events()
        let expected = expectedEvents(scene, .init(endAfter: 5, updateEvery: 4))
        // Every event, once and in order: those made while the broker was away were queued, not lost.
        #expect(received.map(\.type) == expected.map(\.type))
        #expect(received.map(\.track) == expected.map(\.track))
        #expect(Set(received.map(\.track)).count == 15, "tracks 0–14, the last ones started after the restart")
    }

    @Test func aFullQueueDropsTheOldestMessagesAndCountsThem() async throws {
        let broker = try brokerWithSession()
        // Ten objects appear in one frame: ten `new` events and the count, eleven messages for a queue of four.
        let ten = (0..<10).map {
            Detection(x0: Float(30 * $0), y0: 0, x1: Float(30 * $0 + 20), y1: 20, score: 0.9, trackID: $0)
        }
        var sink = try sink(broker, "queue=4")
        let fed = try await feed(&sink, framesCarrying(Array(repeating: ten, count: 5)))
        #expect(fed.out == 5 && fed.slowest < bound)
        #expect(sink.stats.dropped == 7 && sink.stats.waiting == 4)
        #expect(fed.dropped == 7, "the frames report the drops (for /metrics)")

        try broker.start()
        #expect(await waitFlushed(sink))
        let subscriber = try MQTTSubscriber(port: broker.port, prefix: "f", id: "watcher")
        #expect(subscriber.wait { $0.contains { $0.topic == "f/default/face" } })
        #expect(subscriber.events().map(\.track) == ["7", "8", "9"], "the newest survive")
        // Once from its session; a retained copy also comes with its new subscription.
        #expect(subscriber.messages.filter { $0.topic == "f/default/face" && !$0.retained }.map(\.payload) == ["10"])
        try await sink.finish()
        #expect(sink.stats.dropped == 7, "connected, the end events all fit")
        #expect(subscriber.wait { $0.last?.payload == "offline" })
        #expect(subscriber.events().filter { $0.type == "end" }.count == 10)
    }
}
