/// Something with a file descriptor registered on an `EventLoop`: a listener, a connection, a
/// signalfd. Subclasses override `handleEvent` and `handleTimeout`; the loop calls them through
/// the class vtable (no existential), using the object pointer stored in the epoll event.
open class Channel {
    public internal(set) var fd: Int32
    /// Set when the channel has been closed: events already fetched for it are then ignored.
    public internal(set) var isClosed = false
    /// The loop this channel is registered on, if any.
    public internal(set) unowned(unsafe) var loop: EventLoop?

    // Intrusive timer links (see TimerQueue): one pending deadline per channel.
    var timerDeadline: UInt64 = 0
    public internal(set) unowned(unsafe) var timerQueue: TimerQueue? = nil
    var timerNext: Channel? = nil
    unowned(unsafe) var timerPrev: Channel? = nil

    public init(fd: Int32) { self.fd = fd }

    /// Called with the epoll event bits (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, EPOLLRDHUP).
    open func handleEvent(_ events: UInt32) {}

    /// Called when the deadline set with `TimerQueue.arm` passes.
    open func handleTimeout() {}

    /// True while a deadline is pending.
    public var hasTimer: Bool { timerQueue != nil }

    /// Cancels the pending deadline, if any.
    @inline(__always) public func cancelTimer() {
        if let q = timerQueue { q.remove(self) }
    }
}

/// Deadlines of one fixed duration. Because every channel armed on a queue gets `now + duration`,
/// deadlines are appended in non-decreasing order, so the queue is a linked list: arming,
/// re-arming and cancelling are O(1) and expiry pops from the head. The loop keeps one queue per
/// distinct timeout (header, body, idle, connect, upstream…).
public final class TimerQueue {
    public let durationNanos: UInt64
    unowned(unsafe) let loop: EventLoop
    var head: Channel? = nil
    unowned(unsafe) var tail: Channel? = nil

    init(durationNanos: UInt64, loop: EventLoop) {
        self.durationNanos = durationNanos
        self.loop = loop
    }

    /// Sets `channel`'s deadline to now + duration (moving it from any other queue).
    @inline(__always) public func arm(_ channel: Channel) {
        if let q = channel.timerQueue { q.remove(channel) }
        channel.timerDeadline = loop.now &+ durationNanos
        channel.timerQueue = self
        channel.timerNext = nil
        channel.timerPrev = tail
        if let t = tail { t.timerNext = channel } else { head = channel }
        tail = channel
    }

    @inline(__always) func remove(_ channel: Channel) {
        let next = channel.timerNext
        if let p = channel.timerPrev { p.timerNext = next } else { head = next }
        if let n = next { n.timerPrev = channel.timerPrev } else { tail = channel.timerPrev }
        channel.timerNext = nil
        channel.timerPrev = nil
        channel.timerQueue = nil
    }

    /// Fires every expired deadline.
    func expire(now: UInt64) {
        while let h = head, h.timerDeadline <= now {
            remove(h)
            if !h.isClosed { h.handleTimeout() }
        }
    }

    var nextDeadline: UInt64? { head?.timerDeadline }
}
