import Dispatch
import Synchronization
import Testing

@testable import PipelineKit

// MARK: - Test support

/// A serial task executor that knows whether it has work queued or running.
///
/// Tasks started with `Task(executorPreference: probe)` run every job here. `send` has exactly one suspension
/// point on a full `block` channel (the park continuation) and `next()` one on an empty channel (the consumer
/// continuation), so "the probe is idle and the operation has not returned" means "the task is parked inside
/// the channel": a deterministic way to wait for parking without guessing a sleep.
private final class ProbeExecutor: TaskExecutor {
    private let queue = DispatchQueue(label: "BoundedChannelTests.probe")
    private let pending = Atomic<Int>(0)

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        pending.add(1, ordering: .sequentiallyConsistent)
        queue.async {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
            self.pending.subtract(1, ordering: .sequentiallyConsistent)
        }
    }

    /// No job queued or running: every task on this executor is suspended (or done).
    var isIdle: Bool { pending.load(ordering: .sequentiallyConsistent) == 0 }
}

/// A flag shared between tasks.
private final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .sequentiallyConsistent) }
    var isSet: Bool { value.load(ordering: .sequentiallyConsistent) }
}

/// A task on a probe executor that sends elements one after the other.
private struct PendingSend {
    let task: Task<Void, any Error>
    /// Set once the last `send` has returned, or one has thrown.
    let returned: Flag

    init(_ elements: [Int], into channel: BoundedChannel<Int>, on probe: ProbeExecutor) {
        let returned = Flag()
        self.returned = returned
        task = Task(executorPreference: probe) {
            defer { returned.set() }
            for element in elements { try await channel.send(element) }
        }
    }

    init(_ element: Int, into channel: BoundedChannel<Int>, on probe: ProbeExecutor) {
        self.init([element], into: channel, on: probe)
    }
}

/// One `next()` running in its own task on a probe executor.
private struct PendingNext {
    let task: Task<Int?, Never>
    /// Set once `next()` has returned.
    let returned: Flag

    init(from channel: BoundedChannel<Int>, on probe: ProbeExecutor) {
        let returned = Flag()
        self.returned = returned
        task = Task(executorPreference: probe) {
            defer { returned.set() }
            return await channel.next()
        }
    }
}

/// Polls `condition` until it holds, at most `iterations` times (about a millisecond apart). Never hangs.
private func eventually(iterations: Int = 5_000, _ condition: () -> Bool) async -> Bool {
    for _ in 0..<iterations {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(1))
    }
    return condition()
}

/// Waits (bounded) until every task on `probe` is suspended and none of `flags` is set, i.e. they are all parked
/// inside the channel.
private func parked(_ probe: ProbeExecutor, _ flags: Flag...) async -> Bool {
    await eventually { probe.isIdle && flags.allSatisfy { !$0.isSet } }
}

/// Runs `body`; if it has not finished after `limit`, closes `channel`, which releases every parked producer and
/// the waiting consumer, so a broken channel makes the test fail instead of hanging. This bounds waits only; it
/// asserts nothing about speed.
private func withWatchdog<R>(
    on channel: BoundedChannel<Int>, limit: Duration = .seconds(60), _ body: () async throws -> R
) async rethrows -> R {
    let watchdog = Task {
        try await Task.sleep(for: limit)
        channel.close()
        return true
    }
    let result: R
    do {
        result = try await body()
    } catch {
        watchdog.cancel()
        throw error
    }
    watchdog.cancel()
    let fired = (try? await watchdog.value) ?? false
    #expect(!fired, "the watchdog had to close the channel: an operation never completed")
    return result
}

/// Reads until the channel ends.
private func drain(_ channel: BoundedChannel<Int>) async -> [Int] {
    var out: [Int] = []
    for await x in channel { out.append(x) }
    return out
}

/// Where `actual` first differs from `expected`, or `nil` if they are equal. Keeps failure messages short for
/// long streams.
private func firstDifference(_ actual: [Int], _ expected: [Int]) -> String? {
    if let i = actual.indices.first(where: { $0 < expected.count && actual[$0] != expected[$0] }) {
        let around = actual[max(0, i - 2)..<min(actual.count, i + 3)]
        return "at index \(i): expected \(expected[i]), got \(actual[i]) (received … \(Array(around)) …)"
    }
    if actual.count != expected.count { return "received \(actual.count) elements, expected \(expected.count)" }
    return nil
}

private func stats(sent: Int, dropped: Int = 0, received: Int, highWater: Int, depth: Int) -> LinkStats {
    var s = LinkStats()
    s.sent = sent
    s.dropped = dropped
    s.received = received
    s.highWater = highWater
    s.depth = depth
    return s
}

// MARK: - Tests

@Suite struct BoundedChannelTests {
    // MARK: Ordering

    @Test func bufferedElementsComeOutInSendOrder() async throws {
        let channel = BoundedChannel<Int>(capacity: 5, policy: .block)
        for x in [3, 1, 4, 1, 5] { try await channel.send(x) }
        channel.finish()
        #expect(await drain(channel) == [3, 1, 4, 1, 5])
        #expect(channel.stats == stats(sent: 5, received: 5, highWater: 5, depth: 0))
    }

    @Test(arguments: [1, 2, 7])
    func concurrentProducerAndConsumerPreserveOrder(capacity: Int) async throws {
        let channel = BoundedChannel<Int>(capacity: capacity, policy: .block)
        let received = try await withWatchdog(on: channel) {
            let producer = Task {
                defer { channel.finish() }
                for x in 0..<2_000 { try await channel.send(x) }
            }
            let out = await drain(channel)
            try await producer.value
            return out
        }
        #expect(firstDifference(received, Array(0..<2_000)) == nil)
        let s = channel.stats
        #expect(s.sent == 2_000)
        #expect(s.received == 2_000)
        #expect(s.dropped == 0)
        #expect(s.depth == 0)
        #expect(s.highWater <= capacity)
    }

    @Test func sendHandsElementStraightToAWaitingConsumer() async throws {
        let channel = BoundedChannel<Int>(capacity: 2, policy: .block)
        let probe = ProbeExecutor()
        try await withWatchdog(on: channel) {
            let consumer = PendingNext(from: channel, on: probe)
            #expect(await parked(probe, consumer.returned), "the consumer never started waiting")
            try await channel.send(42)
            #expect(await consumer.task.value == 42)
        }
        // Handed over directly: never buffered.
        #expect(channel.stats == stats(sent: 1, received: 1, highWater: 0, depth: 0))
    }

    // MARK: Capacity and the block policy

    @Test func blockPolicyAcceptsCapacityThenParksTheProducer() async throws {
        let channel = BoundedChannel<Int>(capacity: 3, policy: .block)
        let probe = ProbeExecutor()
        try await withWatchdog(on: channel) {
            // Up to capacity: accepted without waiting (the sends return with nobody reading).
            let filler = PendingSend([0, 1, 2], into: channel, on: probe)
            _ = await eventually { probe.isIdle }
            #expect(filler.returned.isSet, "a send waited although the buffer had room")
            try await filler.task.value
            #expect(channel.stats == stats(sent: 3, received: 0, highWater: 3, depth: 3))

            // One more: the producer waits and the element is not counted as sent yet.
            let fourth = PendingSend(3, into: channel, on: probe)
            #expect(await parked(probe, fourth.returned), "the fourth send did not wait for room")
            #expect(channel.stats == stats(sent: 3, received: 0, highWater: 3, depth: 3))

            // Reading one makes room: the parked element moves into the buffer and its producer returns.
            #expect(await channel.next() == 0)
            try await fourth.task.value
            #expect(channel.stats == stats(sent: 4, received: 1, highWater: 3, depth: 3))

            channel.finish()
            #expect(await drain(channel) == [1, 2, 3])
        }
        #expect(channel.stats == stats(sent: 4, received: 4, highWater: 3, depth: 0))
    }

    @Test func parkedProducersAreReleasedInArrivalOrder() async throws {
        let channel = BoundedChannel<Int>(capacity: 1, policy: .block)
        let probe = ProbeExecutor()
        try await withWatchdog(on: channel) {
            try await channel.send(0)
            var sends: [PendingSend] = []
            for x in 1...3 {
                let send = PendingSend(x, into: channel, on: probe)
                #expect(await parked(probe, send.returned), "producer \(x) did not park")
                sends.append(send)
            }
            for x in 0...3 { #expect(await channel.next() == x) }
            for send in sends { try await send.task.value }
            #expect(channel.stats == stats(sent: 4, received: 4, highWater: 1, depth: 0))
        }
    }

    // MARK: The drop-oldest policy

    @Test func dropOldestKeepsTheNewestAndNeverWaits() async throws {
        let channel = BoundedChannel<Int>(capacity: 3, policy: .dropOldest)
        let probe = ProbeExecutor()
        try await withWatchdog(on: channel) {
            // Nobody reads: every send must return anyway.
            let producer = PendingSend(Array(0..<10), into: channel, on: probe)
            _ = await eventually { probe.isIdle }
            #expect(producer.returned.isSet, "a drop-oldest send waited")
            try await producer.task.value
            #expect(channel.stats == stats(sent: 10, dropped: 7, received: 0, highWater: 3, depth: 3))
            channel.finish()
            #expect(await drain(channel) == [7, 8, 9])
        }
        #expect(channel.stats == stats(sent: 10, dropped: 7, received: 3, highWater: 3, depth: 0))
    }

    @Test func dropOldestWithAConsumerKeepsOrderAndTheCountersAddUp() async throws {
        let channel = BoundedChannel<Int>(capacity: 2, policy: .dropOldest)
        let count = 5_000
        let received = try await withWatchdog(on: channel) {
            let producer = Task {
                defer { channel.finish() }
                for x in 0..<count { try await channel.send(x) }
            }
            let out = await drain(channel)
            try await producer.value
            return out
        }
        // What arrives is an ordered subset ending with the newest element (the newest is never dropped).
        #expect(zip(received, received.dropFirst()).allSatisfy { $0 < $1 })
        #expect(received.last == count - 1)
        let s = channel.stats
        #expect(s.sent == count)
        #expect(s.received == received.count)
        #expect(s.dropped == count - received.count)
        #expect(s.depth == 0)
        #expect(s.highWater <= 2)
    }

    // MARK: Cancellation

    @Test func cancelledParkedProducerThrowsAndItsElementIsNotDelivered() async throws {
        let channel = BoundedChannel<Int>(capacity: 1, policy: .block)
        let probe = ProbeExecutor()
        try await withWatchdog(on: channel) {
            try await channel.send(0)
            let cancelled = PendingSend(1, into: channel, on: probe)
            #expect(await parked(probe, cancelled.returned), "producer 1 did not park")
            let kept = PendingSend(2, into: channel, on: probe)
            #expect(await parked(probe, cancelled.returned, kept.returned), "producer 2 did not park")

            cancelled.task.cancel()
            await #expect(throws: CancellationError.self) { try await cancelled.task.value }
            // Only the cancelled producer left the queue: the other one is still parked.
            #expect(await parked(probe, kept.returned))
            #expect(channel.stats == stats(sent: 1, received: 0, highWater: 1, depth: 1))

            channel.finish()
            #expect(await drain(channel) == [0, 2])
            try await kept.task.value
        }
        #expect(channel.stats == stats(sent: 2, received: 2, highWater: 1, depth: 0))
    }

    @Test func producerCancelledBeforeItWouldWaitThrowsCancellation() async throws {
        let channel = BoundedChannel<Int>(capacity: 1, policy: .block)
        try await withWatchdog(on: channel) {
            try await channel.send(0)
            let producer = Task {
                // Cancelled before reaching `send`, which then finds the buffer full.
                withUnsafeCurrentTask { $0?.cancel() }
                try await channel.send(1)
            }
            await #expect(throws: CancellationError.self) { try await producer.value }
            channel.finish()
            #expect(await drain(channel) == [0])
        }
        #expect(channel.stats == stats(sent: 1, received: 1, highWater: 1, depth: 0))
    }

    @Test func cancellingAWaitingConsumerClosesTheChannel() async {
        let channel = BoundedChannel<Int>(capacity: 2, policy: .block)
        let probe = ProbeExecutor()
        await withWatchdog(on: channel) {
            let consumer = PendingNext(from: channel, on: probe)
            #expect(await parked(probe, consumer.returned), "the consumer never started waiting")
            consumer.task.cancel()
            #expect(await consumer.task.value == nil)
            // The consumer is gone: producers are told so instead of filling a buffer nobody reads.
            await #expect(throws: ChannelClosedError.self) { try await channel.send(1) }
            #expect(await channel.next() == nil)
        }
        #expect(channel.stats == stats(sent: 0, received: 0, highWater: 0, depth: 0))
    }

    /// `next()` documents "`nil` once … the task is cancelled (cancelling the consumer closes the channel)" and
    /// `close()` "every parked or later producer gets ``ChannelClosedError``". Here the consumer's task is
    /// cancelled while it is busy (not inside `next()`), with elements buffered and a producer parked.
    @Test func cancelledConsumerClosesTheChannelForParkedAndLaterProducers() async throws {
        let channel = BoundedChannel<Int>(capacity: 1, policy: .block)
        let probe = ProbeExecutor()
        try await withWatchdog(on: channel) {
            try await channel.send(0)
            let parkedSend = PendingSend(1, into: channel, on: probe)
            #expect(await parked(probe, parkedSend.returned), "producer 1 did not park")

            let consumer = Task {
                // Busy until cancelled, then asks for the next element.
                _ = await eventually { Task.isCancelled }
                return await channel.next()
            }
            consumer.cancel()
            #expect(await consumer.value == nil, "a cancelled consumer was handed an element")
            await #expect(throws: ChannelClosedError.self) { try await parkedSend.task.value }

            // A later producer must be turned away, not left waiting for a consumer that is gone.
            let later = PendingSend(2, into: channel, on: probe)
            _ = await eventually { probe.isIdle }
            #expect(later.returned.isSet, "a producer is waiting on a channel whose consumer was cancelled")
            channel.close()  // releases `later` if it is stuck
            await #expect(throws: ChannelClosedError.self) { try await later.task.value }
        }
    }

    // MARK: Finishing

    @Test func finishEndsAWaitingConsumer() async {
        let channel = BoundedChannel<Int>(capacity: 2, policy: .block)
        let probe = ProbeExecutor()
        await withWatchdog(on: channel) {
            let consumer = PendingNext(from: channel, on: probe)
            #expect(await parked(probe, consumer.returned), "the consumer never started waiting")
            channel.finish()
            #expect(await consumer.task.value == nil)
            #expect(await channel.next() == nil)
        }
    }

    @Test func finishDeliversBufferedAndParkedElementsThenNil() async throws {
        let channel = BoundedChannel<Int>(capacity: 2, policy: .block)
        let probe = ProbeExecutor()
        try await withWatchdog(on: channel) {
            try await channel.send(0)
            try await channel.send(1)
            var sends: [PendingSend] = []
            for x in 10...13 {
                let send = PendingSend(x, into: channel, on: probe)
                #expect(await parked(probe, send.returned), "producer \(x) did not park")
                sends.append(send)
            }
            #expect(channel.stats == stats(sent: 2, received: 0, highWater: 2, depth: 2))

            channel.finish()
            // Finishing does not cancel anyone: every parked producer's element still arrives, then the end.
            #expect(await drain(channel) == [0, 1, 10, 11, 12, 13])
            for send in sends { try await send.task.value }
            #expect(await channel.next() == nil)
        }
        #expect(channel.stats == stats(sent: 6, received: 6, highWater: 2, depth: 0))
    }

    @Test func finishWithParkedProducersAndAConcurrentConsumer() async throws {
        let channel = BoundedChannel<Int>(capacity: 3, policy: .block)
        let probe = ProbeExecutor()
        try await withWatchdog(on: channel) {
            for x in 0..<3 { try await channel.send(x) }
            var sends: [PendingSend] = []
            for x in 3..<8 {
                let send = PendingSend(x, into: channel, on: probe)
                #expect(await parked(probe, send.returned), "producer \(x) did not park")
                sends.append(send)
            }
            // The consumer runs while another task finishes the channel.
            let consumer = Task { await drain(channel) }
            await Task { channel.finish() }.value
            #expect(await consumer.value == Array(0..<8))
            for send in sends { try await send.task.value }
        }
        #expect(channel.stats == stats(sent: 8, received: 8, highWater: 3, depth: 0))
    }

    @Test(arguments: OverflowPolicy.allCases)
    func sendAfterFinishThrowsChannelClosed(policy: OverflowPolicy) async throws {
        let channel = BoundedChannel<Int>(capacity: 2, policy: policy)
        try await withWatchdog(on: channel) {
            try await channel.send(1)
            channel.finish()
            await #expect(throws: ChannelClosedError.self) { try await channel.send(2) }
            // What was sent before finishing is still delivered; the rejected element is not.
            #expect(await drain(channel) == [1])
            await #expect(throws: ChannelClosedError.self) { try await channel.send(3) }
        }
        #expect(channel.stats == stats(sent: 1, received: 1, highWater: 1, depth: 0))
    }

    // MARK: close()

    @Test func closeDiscardsTheBufferAndFailsParkedProducers() async throws {
        let channel = BoundedChannel<Int>(capacity: 2, policy: .block)
        let probe = ProbeExecutor()
        try await withWatchdog(on: channel) {
            try await channel.send(0)
            try await channel.send(1)
            let first = PendingSend(2, into: channel, on: probe)
            #expect(await parked(probe, first.returned), "producer 2 did not park")
            let second = PendingSend(3, into: channel, on: probe)
            #expect(await parked(probe, first.returned, second.returned), "producer 3 did not park")

            channel.close()
            await #expect(throws: ChannelClosedError.self) { try await first.task.value }
            await #expect(throws: ChannelClosedError.self) { try await second.task.value }
            #expect(channel.stats.depth == 0)
            #expect(await channel.next() == nil, "buffered elements must be discarded")
            await #expect(throws: ChannelClosedError.self) { try await channel.send(4) }
        }
        #expect(channel.stats == stats(sent: 2, received: 0, highWater: 2, depth: 0))
    }

    @Test func closeEndsAWaitingConsumer() async {
        let channel = BoundedChannel<Int>(capacity: 1, policy: .dropOldest)
        let probe = ProbeExecutor()
        await withWatchdog(on: channel) {
            let consumer = PendingNext(from: channel, on: probe)
            #expect(await parked(probe, consumer.returned), "the consumer never started waiting")
            channel.close()
            #expect(await consumer.task.value == nil)
            await #expect(throws: ChannelClosedError.self) { try await channel.send(1) }
        }
    }

    @Test func closeAfterFinishDiscardsWhatWasLeft() async throws {
        let channel = BoundedChannel<Int>(capacity: 3, policy: .block)
        try await withWatchdog(on: channel) {
            for x in 0..<3 { try await channel.send(x) }
            channel.finish()
            #expect(await channel.next() == 0)
            channel.close()
            #expect(await channel.next() == nil)
            #expect(channel.stats.depth == 0)
            #expect(channel.stats.received == 1)
        }
    }

    // MARK: Stress

    @Test func manyProducersThroughASmallBlockingChannel() async throws {
        let producers = 4
        let perProducer = 1_000
        let capacity = 3
        let channel = BoundedChannel<Int>(capacity: capacity, policy: .block)
        let received = try await withWatchdog(on: channel) {
            let production = Task {
                defer { channel.finish() }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for p in 0..<producers {
                        group.addTask {
                            for i in 0..<perProducer { try await channel.send(p * perProducer + i) }
                        }
                    }
                    try await group.waitForAll()
                }
            }
            let out = await drain(channel)
            try await production.value
            return out
        }
        // Every element exactly once, and each producer's elements in the order it sent them.
        #expect(received.count == producers * perProducer)
        #expect(Set(received).count == received.count, "an element arrived twice")
        #expect(received.allSatisfy { (0..<producers * perProducer).contains($0) })
        for p in 0..<producers {
            let mine = received.filter { $0 / perProducer == p }
            let difference = firstDifference(mine, Array(p * perProducer..<(p + 1) * perProducer))
            #expect(difference == nil, "producer \(p)")
        }
        let s = channel.stats
        #expect(s.sent == producers * perProducer)
        #expect(s.received == producers * perProducer)
        #expect(s.dropped == 0)
        #expect(s.depth == 0)
        #expect(s.highWater <= capacity)
        #expect(s.highWater >= 1)
    }

    /// One producer racing one consumer through a one-slot channel, many rounds: every element must arrive, in
    /// order, and the stream must end. Exercises the window in which a producer has found the buffer full but the
    /// consumer empties it and starts waiting before the producer parks.
    @Test func producerRacingAConsumerNeverStrandsAnElement() async {
        let count = 20_000
        for round in 0..<20 {
            let channel = BoundedChannel<Int>(capacity: 1, policy: .block)
            let received = await withWatchdog(on: channel) {
                let producer = Task {
                    defer { channel.finish() }
                    for x in 0..<count { try await channel.send(x) }
                }
                let out = await drain(channel)
                try? await producer.value
                return out
            }
            if let difference = firstDifference(received, Array(0..<count)) {
                Issue.record("round \(round): \(difference)")
                break
            }
            #expect(channel.stats == stats(sent: count, received: count, highWater: 1, depth: 0))
        }
    }
}
