import DequeModule

/// One message for the broker.
struct MQTTMessage: Sendable, Equatable {
    var topic: String
    var payload: [UInt8]
    var retain: Bool

    init(_ topic: String, _ payload: String, retain: Bool = false) {
        self.topic = topic
        self.payload = Array(payload.utf8)
        self.retain = retain
    }
}

/// What the `mqtt` stage has waiting for the broker, and how much it has lost: a bounded queue that drops its
/// oldest message when full, plus a window of messages handed to libmosquitto and not yet acknowledged.
///
/// The pipeline only ever appends (never waits). Messages leave the queue only while connected and while fewer
/// than `window` are in flight: libmosquitto keeps its own unbounded queue of QoS 1 messages, so handing it
/// everything would make the bound meaningless while a broker stalls. A single drainer at a time (``beginDrain()``
/// … ``take()`` returning nil) keeps messages in order whichever thread drains: the stage's task or libmosquitto's
/// network thread on a connection or an acknowledgement.
struct MQTTOutbox: Sendable {
    let capacity: Int
    let window: Int
    private(set) var waiting = Deque<MQTTMessage>()
    private(set) var inFlight = 0
    /// Messages dropped unsent: the oldest, on overflow; and those libmosquitto rejected.
    private(set) var dropped = 0
    /// Messages acknowledged (QoS 1) or written (QoS 0).
    private(set) var delivered = 0
    /// Counts the connections, so a publish that failed in an earlier one cannot mark a newer one as lost.
    private(set) var session = 0
    private(set) var connected = false
    /// Messages of an earlier connection that libmosquitto resends, still unacknowledged.
    private(set) var carried = 0
    private var announcement: MQTTMessage?
    private var draining = false

    init(capacity: Int, window: Int = 20) {
        self.capacity = max(1, capacity)
        self.window = max(1, window)
    }

    /// Nothing waits and nothing is in flight.
    var isIdle: Bool { waiting.isEmpty && inFlight == 0 }

    mutating func append(_ message: MQTTMessage) {
        if waiting.count >= capacity {
            waiting.removeFirst()
            dropped += 1
        }
        waiting.append(message)
    }

    /// A new connection: `announcement` (the availability message) goes first. QoS 0 messages in flight on the
    /// old connection are gone without an acknowledgement; QoS 1 ones are resent by libmosquitto after this
    /// callback returns, so nothing new leaves until they are acknowledged, which keeps every message in order.
    mutating func connected(qos: Int, announcement: MQTTMessage) {
        session += 1
        connected = true
        if qos == 0 { inFlight = 0 }
        carried = inFlight
        self.announcement = announcement
    }

    mutating func disconnected() { connected = false }

    /// Whether the caller is the drainer now (else the current drainer will see what changed).
    mutating func beginDrain() -> Bool {
        guard !draining else { return false }
        draining = true
        return true
    }

    /// The next message to publish, counted in flight; nil (and draining ends) when disconnected, resent messages
    /// are unacknowledged, the window is full or nothing waits.
    mutating func take() -> MQTTMessage? {
        guard connected, carried == 0, inFlight < window, let message = announcement ?? waiting.popFirst() else {
            draining = false
            return nil
        }
        if announcement != nil { announcement = nil }
        inFlight += 1
        return message
    }

    /// libmosquitto did not take a message: without a connection it goes back to the front (unless full), else
    /// (a message it rejects) it is dropped.
    mutating func failed(_ message: MQTTMessage, session: Int, noConnection: Bool) {
        inFlight = max(0, inFlight - 1)
        guard noConnection, waiting.count < capacity else {
            dropped += 1
            return
        }
        waiting.prepend(message)
        if session == self.session { connected = false }
    }

    mutating func acknowledged() {
        inFlight = max(0, inFlight - 1)
        carried = max(0, carried - 1)
        delivered += 1
    }
}
