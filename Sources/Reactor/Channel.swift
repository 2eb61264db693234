/// Something with a file descriptor registered on an `EventLoop`: a listener, a connection, a
/// signalfd. Subclasses override `handleEvent` and `handleTimeout`; the loop calls them through
/// the class vtable (no existential), using the object pointer stored in the epoll event.
open class Channel {
    public internal(set) var fd: Int32
    /// Set when the channel has been closed: events already fetched for it are then ignored.
    public internal(set) var isClosed = false
    /// The loop this channel is registered on, if any.
    public internal(set) unowned(unsafe) var loop: EventLoop?

    // Intrusive timer links (see TimerQueue): one pending deadline per channel. The links are
    // unretained (Unmanaged): a channel with a deadline is kept alive by its owner (the loop holds
    // every registered channel until it is closed, and closing cancels the deadline), so arming
    // and cancelling a timer costs no reference counting on the hot path.
    var timerDeadline: UInt64 = 0
    var timerQueueRef: Unmanaged<TimerQueue>? = nil
    var timerNext: Unmanaged<Channel>? = nil
    var timerPrev: Unmanaged<Channel>? = nil

    /// The queue holding this channel's deadline, if any.
    public var timerQueue: TimerQueue? { timerQueueRef?.takeUnretainedValue() }

    public init(fd: Int32) { self.fd = fd }

    /// Called with the epoll event bits (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, EPOLLRDHUP).
    open func handleEvent(_ events: UInt32) {}

    /// Called when the deadline set with `TimerQueue.arm` passes.
    open func handleTimeout() {}

    /// True while a deadline is pending.
    @inline(__always) public var hasTimer: Bool { timerQueueRef != nil }

    /// True while the pending deadline is on `queue`.
    @inline(__always) public func isTimer(on queue: TimerQueue) -> Bool {
        timerQueueRef?.toOpaque() == Unmanaged.passUnretained(queue).toOpaque()
    }

    /// Cancels the pending deadline, if any.
    @inline(__always) public func cancelTimer() {
        if let q = timerQueueRef { q._withUnsafeGuaranteedRef { $0.remove(self) } }
    }
}

/// Deadlines of one fixed duration. A channel that is not registered on the loop (a pure
/// timer) must be retained by its owner while armed. Because every channel armed on a queue gets `now + duration`,
/// deadlines are appended in non-decreasing order, so the queue is a linked list: arming,
/// re-arming and cancelling are O(1) and expiry pops from the head. The loop keeps one queue per
/// distinct timeout (header, body, idle, connect, upstream…).
public final class TimerQueue {
    public let durationNanos: UInt64
    unowned(unsafe) let loop: EventLoop
    var head: Unmanaged<Channel>? = nil
    var tail: Unmanaged<Channel>? = nil

    init(durationNanos: UInt64, loop: EventLoop) {
        self.durationNanos = durationNanos
        self.loop = loop
    }

    /// Sets `channel`'s deadline to now + duration (moving it from any other queue).
    @inline(__always) public func arm(_ channel: Channel) {
        // A closed channel is about to be released by the loop: it must not be linked anywhere.
        if channel.isClosed { return }
        if let q = channel.timerQueueRef { q._withUnsafeGuaranteedRef { $0.remove(channel) } }
        let me = Unmanaged.passUnretained(channel)
        channel.timerDeadline = loop.now &+ durationNanos
        channel.timerQueueRef = Unmanaged.passUnretained(self)
        channel.timerNext = nil
        channel.timerPrev = tail
        if let t = tail { t._withUnsafeGuaranteedRef { $0.timerNext = me } } else { head = me }
        tail = me
    }

    @inline(__always) func remove(_ channel: Channel) {
        let next = channel.timerNext
        let prev = channel.timerPrev
        if let p = prev { p._withUnsafeGuaranteedRef { $0.timerNext = next } } else { head = next }
        if let n = next { n._withUnsafeGuaranteedRef { $0.timerPrev = prev } } else { tail = prev }
        channel.timerNext = nil
        channel.timerPrev = nil
        channel.timerQueueRef = nil
    }

    /// Fires every expired deadline.
    func expire(now: UInt64) {
        while let h = head {
            let channel = h.takeUnretainedValue()  // retained for the handler, which may close it
            if channel.timerDeadline > now { return }
            remove(channel)
            if !channel.isClosed { channel.handleTimeout() }
        }
    }

    var nextDeadline: UInt64? { head.map { $0._withUnsafeGuaranteedRef { $0.timerDeadline } } }
}
