import Foundation
import PipelineKit
import Testing

@testable import Plugins

/// Objects walking through a scene: track k is in frames 6k ..< 6k + 20, moving 3 px a frame (so some updates are
/// due, none is a jump), labelled `person`; an untracked face on even frames feeds the `face` count only.
func walkingScene(frames: Range<Int>) -> [[Detection]] {
    frames.map { f in
        var detections = (0...(f / 6)).filter { f < 6 * $0 + 20 }.map { k in
            let x = Float(3 * (f - 6 * k))
            return Detection(x0: x, y0: 10, x1: x + 40, y1: 50, score: 0.9, label: "person", trackID: k)
        }
        if f % 2 == 0 { detections.append(Detection(x0: 300, y0: 10, x1: 320, y1: 30, score: 0.7)) }
        return detections
    }
}

/// Frames carrying `detections`, numbered from `start`.
func framesCarrying(_ detections: [[Detection]], from start: Int = 0) -> [Frame] {
    detections.enumerated().map { k, items in
        var frame = flat(start + k, width: 2, height: 2, value: 0)
        frame.metadata[Detections.Key.self] = Detections(items)
        return frame
    }
}

/// The mqtt stage against a real Debian `mosquitto`, subscribed to with `mosquitto_sub`.
@Suite(.serialized) struct MQTTSinkBrokerTests {
    /// A whole run through the stage chain: events balanced per object in the order the tracker made them, counts
    /// as they changed, `online` before the first event and `offline` (published by the stage, retained) after the
    /// last; a client connecting afterwards sees the retained end state.
    @Test func aRunPublishesBalancedEventsCountsAndAvailability() async throws {
        let broker = try MosquittoBroker()
        try broker.start()
        let subscriber = try MQTTSubscriber(port: broker.port, prefix: "t")
        let scene = walkingScene(frames: 0..<40)
        let settings = ObjectEventTracker.Settings(endAfter: 5, updateEvery: 4)

        let out = try await StageChain(
            "mqtt port=\(broker.port) prefix=t end-after=5 update-every=4", registry: .standard
        ).run(framesCarrying(scene))
        #expect(out.count == 40)

        let finished = subscriber.wait { $0.last == .init(retained: false, topic: "t/available", payload: "offline") }
        #expect(finished, "\(subscriber.messages.suffix(3))")
        let received = subscriber.events()
        let expected = expectedEvents(scene, settings)
        #expect(received.map(\.type) == expected.map(\.type))
        #expect(received.map(\.track) == expected.map(\.track))
        #expect(Set(received.map(\.track)) == Set((0...6).map(String.init)))
        for track in Set(received.map(\.track)) {
            let types = received.filter { $0.track == track }.map(\.type)
            #expect(types.first == "new" && types.last == "end", "\(track): \(types)")
            #expect(types.filter { $0 == "new" }.count == 1 && types.filter { $0 == "end" }.count == 1)
        }
        #expect(received.contains { $0.type == "update" })

        let messages = subscriber.messages
        let online = try #require(messages.firstIndex { $0.topic == "t/available" })
        #expect(messages[online].payload == "online")
        #expect(online < (messages.firstIndex { $0.topic == "t/events" } ?? -1))
        #expect(subscriber.payloads("t/available") == ["online", "offline"])

        var twin = ObjectEventTracker(pipeline: "default", settings: settings)
        var counts: [String: [String]] = [:]
        for (k, detections) in scene.enumerated() {
            for c in twin.observe(detections, time: Double(k)).counts {
                counts[c.label, default: []].append("\(c.count)")
            }
        }
        for c in twin.finish(time: 40).counts { counts[c.label, default: []].append("\(c.count)") }
        #expect(subscriber.payloads("t/default/person") == counts["person"])
        #expect(subscriber.payloads("t/default/face") == counts["face"])
        #expect(counts["face"]?.count ?? 0 > 10, "the untracked face comes and goes")

        #expect(
            try MQTTSubscriber.retained(port: broker.port, prefix: "t")
                == ["t/available": "offline", "t/default/person": "0", "t/default/face": "0"])
        subscriber.stop()
    }

    /// QoS 0 (written, never acknowledged) delivers the same events on a healthy connection.
    @Test func qos0DeliversTheSameEvents() async throws {
        let broker = try MosquittoBroker()
        try broker.start()
        let subscriber = try MQTTSubscriber(port: broker.port, prefix: "q")
        let scene = walkingScene(frames: 0..<30)
        let out = try await StageChain(
            "mqtt port=\(broker.port) prefix=q qos=0 end-after=5 update-every=4", registry: .standard
        ).run(framesCarrying(scene))
        #expect(out.count == 30)
        #expect(subscriber.wait { $0.last?.payload == "offline" })
        let expected = expectedEvents(scene, .init(endAfter: 5, updateEvery: 4))
        #expect(subscriber.events().map(\.type) == expected.map(\.type))
        #expect(subscriber.events().map(\.track) == expected.map(\.track))
    }

    /// While running, a client that connects late reads the current counts and `online` from retained messages.
    @Test func countsAndAvailabilityAreRetainedWhileRunning() async throws {
        let broker = try MosquittoBroker()
        try broker.start()
        let spec = try #require(
            try StageChain("mqtt port=\(broker.port) prefix=r", registry: .standard).plan.stages.first)
        var sink = try MQTTSink(properties: spec.properties, context: .detached())
        let two = [
            Detection(x0: 0, y0: 0, x1: 10, y1: 10, score: 0.9, trackID: 1),
            Detection(x0: 50, y0: 0, x1: 60, y1: 10, score: 0.9, trackID: 2),
        ]
        for frame in framesCarrying(Array(repeating: two, count: 3)) { _ = try await sink.process(frame) }
        var retained: [String: String] = [:]
        for _ in 0..<50 where retained["r/default/face"] != "2" {
            retained = try MQTTSubscriber.retained(port: broker.port, prefix: "r")
        }
        #expect(retained == ["r/available": "online", "r/default/face": "2"])
        try await sink.finish()
        #expect(
            try MQTTSubscriber.retained(port: broker.port, prefix: "r")
                == ["r/available": "offline", "r/default/face": "0"])
    }

    /// A `skipd run` killed with SIGKILL cannot say `offline`: the broker does, from the stage's last will, as soon
    /// as the connection drops.
    @Test func aKilledProcessIsAnnouncedOfflineByItsLastWill() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let model = root.appendingPathComponent("assets/centerface.onnx")
        try #require(FileManager.default.fileExists(atPath: model.path), "run scripts/setup (assets)")
        // Built beside the test bundle: skipdTests depends on it.
        let skipd = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("skipd")
        try #require(
            FileManager.default.isExecutableFile(atPath: skipd.path), "build the tests (swift build --build-tests)")
        let broker = try MosquittoBroker()
        try broker.start()
        let subscriber = try MQTTSubscriber(port: broker.port, prefix: "w")
        let file = broker.directory.appendingPathComponent("door.pipeline")
        try """
        videotestsrc is-live=true ! video/x-raw,format=RGB,width=64,height=64,framerate=10/1
          ! model model=\(model.path) ! centerface ! mqtt port=\(broker.port) prefix=w
        """.write(to: file, atomically: true, encoding: .utf8)
        let run = try Spawned(skipd.path, ["run", file.path])
        #expect(subscriber.wait { $0.contains { $0.topic == "w/available" && $0.payload == "online" } })
        run.waitForExit(signal: SIGKILL)
        #expect(subscriber.wait(timeout: 10) { $0.last?.payload == "offline" }, "\(subscriber.messages)")
        #expect(subscriber.payloads("w/available") == ["online", "offline"])
        #expect(try MQTTSubscriber.retained(port: broker.port, prefix: "w") == ["w/available": "offline"])
    }
}
