import Testing

@testable import Plugins

/// The mqtt stage's bounded queue and in-flight window, without a broker.
@Suite struct MQTTOutboxTests {
    private func message(_ n: Int) -> MQTTMessage { MQTTMessage("t/events", "\(n)") }
    private let online = MQTTMessage("t/available", "online", retain: true)

    private func drain(_ box: inout MQTTOutbox) -> [String] {
        guard box.beginDrain() else { return [] }
        var taken: [String] = []
        while let m = box.take() { taken.append(String(decoding: m.payload, as: UTF8.self)) }
        return taken
    }

    @Test func aFullQueueDropsItsOldestAndCountsIt() {
        var box = MQTTOutbox(capacity: 3)
        for n in 0..<5 { box.append(message(n)) }
        #expect(box.dropped == 2)
        #expect(box.waiting.map { String(decoding: $0.payload, as: UTF8.self) } == ["2", "3", "4"])
    }

    @Test func nothingLeavesWhileDisconnectedAndAtMostTheWindowIsInFlightAnnouncementFirst() {
        var box = MQTTOutbox(capacity: 10, window: 2)
        for n in 0..<5 { box.append(message(n)) }
        #expect(drain(&box).isEmpty, "not connected")
        box.connected(qos: 1, announcement: online)
        #expect(drain(&box) == ["online", "0"])
        box.acknowledged()
        #expect(drain(&box) == ["1"])
        #expect(box.inFlight == 2 && box.delivered == 1 && box.waiting.count == 3)
    }

    @Test func onlyOneDrainerAtATime() {
        var box = MQTTOutbox(capacity: 10)
        box.connected(qos: 1, announcement: online)
        let first = box.beginDrain()
        let second = box.beginDrain()
        #expect(first && !second, "a second thread leaves the draining to the first")
        let taken = [box.take(), box.take()]
        #expect(taken == [online, nil], "nothing more waits: draining ends")
        let again = box.beginDrain()
        #expect(again)
    }

    @Test func aMessageWithoutAConnectionGoesBackToTheFrontAndAStaleFailureKeepsTheNewConnection() {
        var box = MQTTOutbox(capacity: 10)
        for n in 0..<3 { box.append(message(n)) }
        box.connected(qos: 0, announcement: online)
        let old = box.session
        let draining = box.beginDrain()
        let taken = [box.take(), box.take()]
        #expect(draining && taken == [online, message(0)])
        // The connection drops and comes back before the publish call reports it.
        box.disconnected()
        box.connected(qos: 0, announcement: online)
        box.failed(message(0), session: old, noConnection: true)
        #expect(box.connected, "a failure from the old connection does not mark the new one lost")
        #expect(box.waiting.first == message(0) && box.inFlight == 0)
        let retaken = [box.take(), box.take()]
        #expect(retaken == [online, message(0)])
        box.failed(message(0), session: box.session, noConnection: false)
        #expect(box.dropped == 1, "a message libmosquitto rejects is dropped, not retried forever")
    }

    @Test func afterAReconnectionNothingNewLeavesBeforeTheResentMessagesAreAcknowledged() {
        var box = MQTTOutbox(capacity: 10)
        box.append(message(0))
        box.connected(qos: 1, announcement: online)
        #expect(drain(&box) == ["online", "0"])
        box.disconnected()
        box.append(message(1))
        box.connected(qos: 1, announcement: online)
        #expect(drain(&box).isEmpty, "libmosquitto resends online and 0 first")
        box.acknowledged()
        #expect(drain(&box).isEmpty)
        box.acknowledged()
        #expect(drain(&box) == ["online", "1"])
    }

    @Test func qos0MessagesInFlightAreForgottenOnReconnection() {
        var box = MQTTOutbox(capacity: 10)
        box.append(message(0))
        box.connected(qos: 0, announcement: online)
        #expect(drain(&box) == ["online", "0"])
        box.disconnected()
        box.append(message(1))
        box.connected(qos: 0, announcement: online)
        #expect(box.inFlight == 0)
        #expect(drain(&box) == ["online", "1"])
    }
}
