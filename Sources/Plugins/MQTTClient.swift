import CMosquitto
import Foundation
import Logging
import Synchronization

/// A libmosquitto client that never makes its caller wait for the broker: ``send(_:)`` appends to a bounded
/// ``MQTTOutbox`` and returns; libmosquitto's own network thread (`mosquitto_loop_start`) connects, reconnects with
/// exponential backoff (1, 4, 9 … up to `reconnectMax` seconds) and reports connections and acknowledgements, on
/// which the outbox drains.
///
/// Availability: the last will is `offline` (retained) on `availability`, so the broker announces a client that
/// vanishes (killed, network lost) once its keepalive lapses; each connection publishes `online` (retained) first,
/// and ``close(within:)`` publishes `offline` itself before disconnecting cleanly (a clean disconnect discards the
/// will).
final class MQTTClient: Sendable {
    struct Settings: Sendable {
        var host: String
        var port: Int
        var clientID: String
        var username: String?
        var password: String?
        var qos: Int
        var queue: Int
        var keepalive: Int
        var reconnectMax: Int
        var availability: String
    }

    struct Stats: Sendable, Equatable {
        var connected: Bool
        var waiting: Int
        var inFlight: Int
        var dropped: Int
        var delivered: Int
    }

    private let connection: Connection

    init(_ settings: Settings, logger: Logger) throws(MQTTError) {
        connection = try Connection(settings, logger: logger)
        connection.start()
    }

    /// Error paths (a run torn down without ``close(within:)``) still say `offline` and free the client, on the
    /// teardown's own thread.
    deinit { connection.shutDown(drainFor: .seconds(1)) }

    /// Queues messages for the broker; never waits. Each is offered to libmosquitto at once, so while connected
    /// only a burst beyond the in-flight window and the queue together would drop any.
    func send(_ messages: [MQTTMessage]) {
        for message in messages {
            connection.state.withLock { $0.outbox.append(message) }
            connection.drain()
        }
    }

    /// Publishes `offline`, waits up to two thirds of `limit` for what is queued to be delivered, disconnects and
    /// frees the client; returns after `limit` at the latest (a network thread stuck in a TCP connect to an
    /// unreachable host finishes on its own later).
    func close(within limit: Duration) async {
        connection.shutDown(drainFor: limit * 2 / 3)
        let deadline = ContinuousClock.now + limit
        while !connection.closed.load(ordering: .acquiring) && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    var stats: Stats {
        connection.state.withLock { s in
            Stats(
                connected: s.outbox.connected, waiting: s.outbox.waiting.count, inFlight: s.outbox.inFlight,
                dropped: s.outbox.dropped, delivered: s.outbox.delivered)
        }
    }
}

/// A property the client cannot work with (the message never holds the password).
struct MQTTError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// `mosquitto_lib_init` is not thread-safe: a global's lazy initialiser runs it exactly once.
private let libraryReady: Int32 = mosquitto_lib_init()

/// libmosquitto's handle. The library (built with threads) locks its own state, so publishing from any thread
/// while its network thread runs is safe; only the teardown thread destroys it, after that thread has stopped.
private struct Handle: @unchecked Sendable {
    let pointer: OpaquePointer
}

private func ok(_ rc: Int32) -> Bool { rc == MOSQ_ERR_SUCCESS.rawValue }

/// The client's shared state, which libmosquitto's callbacks reach through their user-data pointer. libmosquitto
/// holds it retained (released when the handle is destroyed), so a callback can never outlive it.
private final class Connection: Sendable {
    struct State {
        var outbox: MQTTOutbox
        var shuttingDown = false
        /// Set just before `mosquitto_disconnect`: a connection completing after it is closed at once.
        var disconnecting = false
        var loopStarted = false
        var neverStarted = false
        /// Drops already logged.
        var reportedDrops = 0
        var everConnected = false
        var reportedUnreachable = false
    }

    let state: Mutex<State>
    let closed = Atomic<Bool>(false)
    private let handle: Handle
    private let settings: MQTTClient.Settings
    private let logger: Logger
    private let started = DispatchSemaphore(value: 0)

    init(_ settings: MQTTClient.Settings, logger: Logger) throws(MQTTError) {
        _ = libraryReady
        self.settings = settings
        self.logger = logger
        state = Mutex(State(outbox: MQTTOutbox(capacity: settings.queue)))
        guard let pointer = mosquitto_new(settings.clientID, true, nil) else {
            throw MQTTError("cannot create an MQTT client (client-id '\(settings.clientID)')")
        }
        handle = Handle(pointer: pointer)
        let offline = Array("offline".utf8)
        var rc = mosquitto_will_set(
            pointer, settings.availability, Int32(offline.count), offline, Int32(settings.qos), true)
        if ok(rc), let username = settings.username {
            rc = mosquitto_username_pw_set(pointer, username, settings.password)
        }
        if ok(rc) {
            rc = mosquitto_reconnect_delay_set(pointer, 1, UInt32(settings.reconnectMax), true)
        }
        guard ok(rc) else {
            mosquitto_destroy(pointer)
            // Never the password: libmosquitto's message names the kind of problem only.
            throw MQTTError("cannot configure the MQTT client: \(String(cString: mosquitto_strerror(rc)))")
        }
        mosquitto_user_data_set(pointer, Unmanaged.passRetained(self).toOpaque())
        mosquitto_connect_callback_set(pointer) { _, user, rc in Connection.from(user)?.connected(rc) }
        mosquitto_disconnect_callback_set(pointer) { _, user, rc in Connection.from(user)?.disconnected(rc) }
        mosquitto_publish_callback_set(pointer) { _, user, _ in Connection.from(user)?.acknowledged() }
    }

    private static func from(_ user: UnsafeMutableRawPointer?) -> Connection? {
        user.map { Unmanaged<Connection>.fromOpaque($0).takeUnretainedValue() }
    }

    private var broker: Logger.MetadataValue { "\(settings.host):\(settings.port)" }

    /// Starts the network thread, then connects, on a thread of its own: `mosquitto_connect_async` resolves the
    /// host name and starts the TCP connect before it returns, which must not hold up the pipeline. The order
    /// matters: connecting first writes the CONNECT packet at once, and a broker that refuses it leaves a client
    /// that the network thread then waits for forever instead of retrying.
    func start() {
        Thread.detachNewThread { [self] in
            defer { started.signal() }
            let loop = mosquitto_loop_start(handle.pointer)
            guard ok(loop) else {
                logger.error("cannot start the MQTT network thread", metadata: ["error": "\(Self.describe(loop))"])
                return
            }
            state.withLock { $0.loopStarted = true }
            let rc = mosquitto_connect_async(
                handle.pointer, settings.host, Int32(settings.port), Int32(settings.keepalive))
            if rc == MOSQ_ERR_INVAL.rawValue || rc == MOSQ_ERR_NOMEM.rawValue {
                // The client never left its initial state: the network thread waits for it until cancelled.
                state.withLock { $0.neverStarted = true }
                logger.error("cannot connect", metadata: ["broker": broker, "error": "\(Self.describe(rc))"])
            } else if !ok(rc) {
                state.withLock { $0.reportedUnreachable = true }
                logger.warning(
                    "broker not reachable yet; retrying in the background",
                    metadata: ["broker": broker, "error": "\(Self.describe(rc))"])
            }
        }
    }

    private static func describe(_ rc: Int32) -> String {
        rc == MOSQ_ERR_ERRNO.rawValue
            ? String(cString: strerror(errno)) : String(cString: mosquitto_strerror(rc))
    }

    /// Network thread: CONNACK arrived.
    private func connected(_ rc: Int32) {
        guard rc == 0 else {
            logger.warning(
                "broker refused the connection; retrying",
                metadata: ["broker": broker, "reason": "\(String(cString: mosquitto_connack_string(rc)))"])
            return
        }
        let online = MQTTMessage(settings.availability, "online", retain: true)
        let (closing, dropped, first) = state.withLock { s in
            guard !s.disconnecting else { return (true, 0, false) }
            s.outbox.connected(qos: settings.qos, announcement: online)
            defer {
                s.reportedDrops = s.outbox.dropped
                s.everConnected = true
            }
            return (false, s.outbox.dropped - s.reportedDrops, !s.everConnected)
        }
        if closing {
            mosquitto_disconnect(handle.pointer)
            return
        }
        logger.info(first ? "connected to the broker" : "reconnected to the broker", metadata: ["broker": broker])
        if dropped > 0 {
            logger.warning(
                "dropped messages while the broker was away (queue full)",
                metadata: ["broker": broker, "dropped": "\(dropped)"])
        }
        drain()
    }

    /// Network thread: the connection ended (rc 0: we asked for it), or the first attempt failed.
    private func disconnected(_ rc: Int32) {
        let (quiet, never) = state.withLock { s in
            s.outbox.disconnected()
            defer { s.reportedUnreachable = true }
            return (s.disconnecting || (!s.everConnected && s.reportedUnreachable), !s.everConnected)
        }
        guard rc != 0 && !quiet else { return }
        if never {
            logger.warning("broker not reachable yet; retrying in the background", metadata: ["broker": broker])
        } else {
            logger.warning("lost the broker; queueing and reconnecting", metadata: ["broker": broker])
        }
    }

    /// Network thread: a QoS 1 message was acknowledged, or a QoS 0 one written.
    private func acknowledged() {
        state.withLock { $0.outbox.acknowledged() }
        drain()
    }

    /// Hands waiting messages to libmosquitto while connected and the in-flight window has room. Any thread;
    /// never waits for the network (`mosquitto_publish` queues for the network thread and returns).
    func drain() {
        guard state.withLock({ $0.outbox.beginDrain() }) else { return }
        while let (message, session) = state.withLock({ s in s.outbox.take().map { ($0, s.outbox.session) } }) {
            let rc = publishStatus(message)
            guard !ok(rc) else { continue }
            let noConnection = rc == MOSQ_ERR_NO_CONN.rawValue
            state.withLock { $0.outbox.failed(message, session: session, noConnection: noConnection) }
            if !noConnection {
                logger.error(
                    "libmosquitto refused a message; dropped",
                    metadata: ["topic": "\(message.topic)", "error": "\(Self.describe(rc))"])
            }
        }
    }

    private func publishStatus(_ message: MQTTMessage) -> Int32 {
        message.payload.withUnsafeBytes { bytes in
            mosquitto_publish(
                handle.pointer, nil, message.topic, Int32(bytes.count), bytes.baseAddress, Int32(settings.qos),
                message.retain)
        }
    }

    /// Once: `offline`, up to `drain` for the queue to empty, a clean disconnect, then the network thread stops
    /// and the handle is freed, all on a thread of its own. `closed` is set when it is done.
    func shutDown(drainFor drain: Duration) {
        let first = state.withLock { s in
            defer { s.shuttingDown = true }
            return !s.shuttingDown
        }
        guard first else { return }
        Thread.detachNewThread { [self] in
            started.wait()
            state.withLock { $0.outbox.append(MQTTMessage(settings.availability, "offline", retain: true)) }
            self.drain()
            let deadline = ContinuousClock.now + drain
            while state.withLock({ !$0.outbox.isIdle }) && ContinuousClock.now < deadline {
                Thread.sleep(forTimeInterval: 0.01)
            }
            let (loopStarted, neverStarted) = state.withLock { s in
                s.disconnecting = true
                return (s.loopStarted, s.neverStarted)
            }
            mosquitto_disconnect(handle.pointer)
            // Cancelling is safe only for a thread still waiting for the first connection (no lock, no callback).
            if loopStarted { mosquitto_loop_stop(handle.pointer, neverStarted) }
            mosquitto_destroy(handle.pointer)
            Unmanaged.passUnretained(self).release()
            closed.store(true, ordering: .releasing)
        }
    }
}
