import DequeModule
import Synchronization

/// What a link does when its consumer falls behind and the buffer is full.
public enum OverflowPolicy: String, Sendable, CaseIterable {
    /// The producer waits: backpressure reaches the source. The default for files: no frame is lost.
    case block
    /// The oldest buffered frame is dropped to make room: latency stays bounded. The default for live sources.
    case dropOldest = "drop-oldest"
}

/// Counters of one link, read while the pipeline runs.
public struct LinkStats: Sendable, Equatable {
    /// Elements accepted into the buffer (including those later dropped).
    public var sent = 0
    /// Elements removed unread by `drop-oldest`.
    public var dropped = 0
    /// Elements handed to the consumer.
    public var received = 0
    /// Largest number of elements buffered at once.
    public var highWater = 0
    /// Elements buffered now.
    public var depth = 0

    public init() {}
}

/// Thrown by ``BoundedChannel/send(_:)`` when the consumer has gone (cancelled or closed).
public struct ChannelClosedError: Error, Sendable {}

/// A bounded, multi-producer single-consumer async channel with an overflow policy and counters.
///
/// swift-async-algorithms' channels cannot express this link: `MultiProducerSingleConsumerAsyncChannel` only
/// applies backpressure (no drop-oldest) and may exceed its high watermark by one per producer;
/// `AsyncChannel` + `buffer(policy:)` either blocks or drops, is lazy and exposes neither depth nor drop counts.
/// So this is the one hand-written synchronisation primitive in skipd; `BoundedChannelTests` cover ordering,
/// capacity, both policies, cancellation from both ends and finishing with parked producers.
public final class BoundedChannel<Element: Sendable>: Sendable, AsyncSequence {
    public let capacity: Int
    public let policy: OverflowPolicy

    private struct Parked {
        var id: UInt64
        var element: Element
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var buffer: Deque<Element> = []
        var consumer: CheckedContinuation<Element?, Never>?
        var parked: Deque<Parked> = []
        var nextID: UInt64 = 0
        var finished = false
        var closed = false
        var stats = LinkStats()

        mutating func accepted() {
            stats.sent += 1
            stats.highWater = Swift.max(stats.highWater, buffer.count)
            stats.depth = buffer.count
        }
    }

    private let state = Mutex(State())

    public init(capacity: Int, policy: OverflowPolicy) {
        precondition(capacity >= 1, "a channel needs room for at least one element")
        self.capacity = capacity
        self.policy = policy
    }

    public var stats: LinkStats { state.withLock { $0.stats } }

    /// Sends one element. With `block` this waits while the buffer is full; with `drop-oldest` it never waits.
    /// Throws ``ChannelClosedError`` once the consumer has gone and `CancellationError` if the calling task is
    /// cancelled while waiting (the element is then not sent).
    public func send(_ element: Element) async throws {
        let step: SendStep = state.withLock { s in
            if s.closed || s.finished { return .closed }
            if let consumer = s.consumer {
                s.consumer = nil
                s.stats.sent += 1
                s.stats.received += 1
                return .handOff(consumer)
            }
            if s.buffer.count < capacity {
                s.buffer.append(element)
                s.accepted()
                return .done
            }
            switch policy {
            case .dropOldest:
                s.buffer.removeFirst()
                s.stats.dropped += 1
                s.buffer.append(element)
                s.accepted()
                return .done
            case .block:
                return .wait
            }
        }
        switch step {
        case .done: return
        case .handOff(let consumer): consumer.resume(returning: element)
        case .closed: throw ChannelClosedError()
        case .wait: try await park(element)
        }
    }

    private enum SendStep {
        case done
        case handOff(CheckedContinuation<Element?, Never>)
        case closed
        case wait
    }

    private enum ParkStep {
        case accepted
        case handOff(CheckedContinuation<Element?, Never>)
        case parked
        case failed(any Error)
    }

    private func park(_ element: Element) async throws {
        let id = state.withLock { s in
            s.nextID += 1
            return s.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let step: ParkStep = state.withLock { s in
                    if Task.isCancelled { return .failed(CancellationError()) }
                    if s.closed || s.finished { return .failed(ChannelClosedError()) }
                    // The consumer may have drained the buffer and started waiting since the first look.
                    if let consumer = s.consumer {
                        s.consumer = nil
                        s.stats.sent += 1
                        s.stats.received += 1
                        return .handOff(consumer)
                    }
                    if s.buffer.count < capacity {
                        // The consumer made room between the first look and now.
                        s.buffer.append(element)
                        s.accepted()
                        return .accepted
                    }
                    s.parked.append(Parked(id: id, element: element, continuation: continuation))
                    return .parked
                }
                switch step {
                case .accepted: continuation.resume()
                case .handOff(let consumer):
                    consumer.resume(returning: element)
                    continuation.resume()
                case .parked: break
                case .failed(let error): continuation.resume(throwing: error)
                }
            }
        } onCancel: {
            let parked: Parked? = state.withLock { s in
                guard let i = s.parked.firstIndex(where: { $0.id == id }) else { return nil }
                return s.parked.remove(at: i)
            }
            parked?.continuation.resume(throwing: CancellationError())
        }
    }

    /// The producer side is done: the consumer receives what is buffered (and what parked producers hold), then
    /// `nil`. Sending after `finish()` throws ``ChannelClosedError``.
    public func finish() {
        let consumer: CheckedContinuation<Element?, Never>? = state.withLock { s in
            s.finished = true
            guard s.buffer.isEmpty, s.parked.isEmpty else { return nil }
            defer { s.consumer = nil }
            return s.consumer
        }
        consumer?.resume(returning: nil)
    }

    /// The consumer is gone: buffered elements are discarded and every parked or later producer gets
    /// ``ChannelClosedError``.
    public func close() {
        let (parked, consumer) = state.withLock { s in
            s.closed = true
            s.buffer.removeAll()
            s.stats.depth = 0
            defer {
                s.parked.removeAll()
                s.consumer = nil
            }
            return (s.parked, s.consumer)
        }
        for p in parked { p.continuation.resume(throwing: ChannelClosedError()) }
        consumer?.resume(returning: nil)
    }

    private enum Take {
        case element(Element, resume: CheckedContinuation<Void, any Error>?)
        case end
        case wait
    }

    /// Takes the next element under the lock; a parked producer's element moves into the freed slot.
    private func take(_ s: inout State) -> Take {
        if s.closed { return .end }
        if let first = s.buffer.popFirst() {
            var resume: CheckedContinuation<Void, any Error>?
            if let p = s.parked.popFirst() {
                s.buffer.append(p.element)
                s.stats.sent += 1
                resume = p.continuation
            }
            s.stats.received += 1
            s.stats.depth = s.buffer.count
            return .element(first, resume: resume)
        }
        if let p = s.parked.popFirst() {
            s.stats.sent += 1
            s.stats.received += 1
            return .element(p.element, resume: p.continuation)
        }
        return s.finished ? .end : .wait
    }

    /// The next element, or `nil` once the channel is finished and drained, closed, or the task is cancelled
    /// (cancelling the consumer closes the channel).
    public func next() async -> Element? {
        if Task.isCancelled {
            close()
            return nil
        }
        switch state.withLock({ take(&$0) }) {
        case .element(let e, let resume):
            resume?.resume()
            return e
        case .end:
            return nil
        case .wait:
            break
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Element?, Never>) in
                let step: Take = state.withLock { s in
                    if Task.isCancelled { return .end }
                    let step = take(&s)
                    if case .wait = step { s.consumer = continuation }
                    return step
                }
                switch step {
                case .element(let e, let resume):
                    resume?.resume()
                    continuation.resume(returning: e)
                case .end: continuation.resume(returning: nil)
                case .wait: break
                }
            }
        } onCancel: {
            close()
        }
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let channel: BoundedChannel
        public mutating func next() async -> Element? { await channel.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(channel: self) }
}
