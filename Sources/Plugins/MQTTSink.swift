import Foundation
import Logging
import PipelineKit

/// Publishes tracked objects as events, and live counts per label, to an MQTT broker; frames pass on unchanged.
///
/// ```
/// … ! skipconv model=assets/centerface.onnx ! centerface ! track ! mqtt host=127.0.0.1 prefix=skipd
/// ```
/// Topics, with `PREFIX` the `prefix` property and `PIPELINE` the pipeline's name:
/// - `PREFIX/events`: `{"type": "new"|"update"|"end", "before": {…}, "after": {…}}` per tracked object, as Frigate
///   publishes them (``ObjectEventTracker`` has the rules, ``ObjectState`` the fields). Only detections with a
///   track ID (a tracking stage before this one) make events.
/// - `PREFIX/PIPELINE/LABEL` (retained): how many objects with that label are live — tracked ones not yet ended
///   plus the frame's untracked detections — published when it changes, 0 when the last one ends. The label is the
///   decoder's label, `face` for `centerface`, else `class<N>`.
/// - `PREFIX/available` (retained): `online` on each connection; `offline` at the end of the stream, or from the
///   broker (the last will) when the process dies without saying so. Pipelines sharing a prefix share it.
///
/// The pipeline never waits for the broker: messages go to a bounded queue (`queue`) that libmosquitto's network
/// thread drains while connected. While the broker is away they wait there and are delivered on reconnection
/// (in order); when it is full the oldest is dropped and counted. A broker that is down when the pipeline starts is
/// an outage, not an error: the stage connects in the background and keeps retrying (1, 4, 9 … up to
/// `reconnect-max` seconds). At end of stream every live object ends and the queue gets up to 2 s to drain.
/// Each frame carries ``MQTTDelivery``: messages published and dropped since the previous one, and the queue's
/// depth (`skipd serve` sums them into `/metrics`).
public struct MQTTSink: Stage {
    public static let info = StageInfo(
        name: "mqtt",
        summary: "Publishes tracked objects' new/update/end events and per-label counts to an MQTT broker",
        example: "centerface ! track ! mqtt host=127.0.0.1 prefix=skipd",
        properties: [
            .string("host", default: "127.0.0.1", "broker host name or address"),
            .int("port", default: 1883, range: 1...65535, "broker port"),
            .string("prefix", default: "skipd", "topic prefix: PREFIX/events, PREFIX/available, PREFIX/PIPELINE/LABEL"),
            .string("client-id", default: "skipd-PIPELINE", "MQTT client id (default: skipd- and the pipeline's name)"),
            .string("username", default: "", "user name; empty: anonymous"),
            .file("password-file", optional: true, "file holding the password (one line); never logged"),
            .string("password-env", default: "", "environment variable holding the password, instead of a file"),
            .int("qos", default: 1, range: 0...1, "MQTT QoS of every message (1: acknowledged, resent after a drop)"),
            .int(
                "queue", default: 1000, range: 1...1_000_000, "messages kept while the broker is away; oldest dropped"),
            .int("keepalive", default: 60, range: 5...65535, "seconds between pings; the will fires after 1.5×"),
            .int(
                "reconnect-max", default: 30, range: 1...3600, "longest wait in seconds between reconnection attempts"),
            .int("end-after", default: 30, range: 1...1_000_000, "frames an object may be absent before its end event"),
            .int(
                "update-every", default: 15, range: 1...1_000_000,
                "frames between updates of an object that changed a little (a jump is sent at once)"),
        ],
        requires: ["faces"], provides: ["mqtt"])

    private let client: MQTTClient
    private var tracker: ObjectEventTracker
    private let prefix: String
    private let encoder = JSONEncoder()
    /// Totals already reported on frames.
    private var counted = (published: 0, dropped: 0)

    public init(properties: StageProperties, context: StageContext) throws {
        prefix = try Self.prefix(properties.string("prefix"))
        let username = properties.string("username")
        let password = try Self.password(
            file: properties.string("password-file"), variable: properties.string("password-env"),
            environment: ProcessInfo.processInfo.environment)
        if password != nil && username.isEmpty { throw MQTTError("a password needs username= as well") }
        let settings = MQTTClient.Settings(
            host: properties.string("host"), port: properties.int("port"),
            clientID: properties.isSet("client-id") ? properties.string("client-id") : "skipd-\(context.pipeline)",
            username: username.isEmpty ? nil : username, password: password, qos: properties.int("qos"),
            queue: properties.int("queue"), keepalive: properties.int("keepalive"),
            reconnectMax: properties.int("reconnect-max"), availability: "\(prefix)/available")
        var logger = Logger(label: "skipd.mqtt")
        logger[metadataKey: "pipeline"] = "\(context.pipeline)"
        client = try MQTTClient(settings, logger: logger)
        tracker = ObjectEventTracker(
            pipeline: context.pipeline,
            settings: .init(endAfter: properties.int("end-after"), updateEvery: properties.int("update-every")))
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        // A NaN score would otherwise fail the encoding and lose an event (and with it new/end balance).
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
    }

    public mutating func process(_ frame: Frame) async throws -> Frame? {
        let detections = frame.metadata[Detections.Key.self]?.items ?? []
        client.send(messages(tracker.observe(detections, time: Date().timeIntervalSince1970)))
        let stats = client.stats
        var frame = frame
        frame.metadata[MQTTDelivery.Key.self] = MQTTDelivery(
            published: stats.delivered - counted.published, dropped: stats.dropped - counted.dropped,
            queued: stats.waiting)
        counted = (stats.delivered, stats.dropped)
        return frame
    }

    public mutating func finish() async throws {
        client.send(messages(tracker.finish(time: Date().timeIntervalSince1970)))
        await client.close(within: .seconds(3))
    }

    /// What the client has queued, sent and dropped so far (for tests).
    var stats: MQTTClient.Stats { client.stats }

    private func messages(_ output: ObjectEventTracker.Output) -> [MQTTMessage] {
        guard !output.isEmpty else { return [] }
        var messages: [MQTTMessage] = []
        for event in output.events {
            // Strings, finite or named numbers and arrays: encoding cannot fail.
            guard let json = try? encoder.encode(event) else { continue }
            messages.append(MQTTMessage("\(prefix)/events", String(decoding: json, as: UTF8.self)))
        }
        let pipeline = Self.topicLevel(tracker.pipeline)
        for count in output.counts {
            messages.append(
                MQTTMessage("\(prefix)/\(pipeline)/\(Self.topicLevel(count.label))", "\(count.count)", retain: true))
        }
        return messages
    }

    /// The prefix without trailing slashes; wildcards cannot be published to.
    static func prefix(_ text: String) throws(MQTTError) -> String {
        var prefix = Substring(text)
        while prefix.hasSuffix("/") { prefix = prefix.dropLast() }
        guard !prefix.isEmpty, !prefix.contains(where: { $0 == "+" || $0 == "#" || $0 == "\0" }) else {
            throw MQTTError("prefix '\(text)' must be a topic without wildcards (+, #), e.g. skipd or home/skipd")
        }
        return String(prefix)
    }

    /// One topic level from a name: `/` would split it and `+`, `#` are wildcards.
    static func topicLevel(_ name: String) -> String {
        String(name.map { "/+#\0".contains($0) ? "_" : $0 })
    }

    /// The password from `password-file` (its first line) or the variable `password-env` names; nil for none.
    /// Errors name the file or the variable, never the password.
    static func password(file: String, variable: String, environment: [String: String]) throws(MQTTError) -> String? {
        switch (file.isEmpty, variable.isEmpty) {
        case (true, true):
            return nil
        case (false, false):
            throw MQTTError("set password-file or password-env, not both")
        case (false, true):
            var directory: ObjCBool = false
            let exists = FileManager.default.fileExists(atPath: file, isDirectory: &directory)
            let data = exists && !directory.boolValue ? FileManager.default.contents(atPath: file) : nil
            guard let data else {
                let reason = !exists ? "it does not exist" : directory.boolValue ? "it is a directory" : "no permission"
                throw MQTTError("cannot read password-file '\(file)': \(reason)")
            }
            guard let text = String(data: data, encoding: .utf8) else {
                throw MQTTError("password-file '\(file)' is not UTF-8 text")
            }
            return text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).first.map(String.init)
                ?? ""
        case (true, false):
            guard let value = environment[variable] else {
                throw MQTTError("password-env names '\(variable)', which is not set in the environment")
            }
            return value
        }
    }
}
