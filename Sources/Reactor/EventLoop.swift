import CSystem
#if canImport(Glibc)
import Glibc
#endif

/// One epoll instance driven by one thread. Channels are registered edge-triggered for reading
/// and writing once, so the hot path makes no epoll_ctl calls: a channel remembers whether its
/// socket may be read or written and acts on that.
public final class EventLoop {
    public let epfd: Int32
    /// Monotonic time in ns, refreshed once per iteration (as nginx caches its clock).
    public private(set) var now: UInt64
    private var timerQueues: [TimerQueue] = []
    private var events: UnsafeMutablePointer<epoll_event>
    private let maxEvents = 512
    /// Channels closed during this iteration: kept alive until its events are all dispatched.
    private var closedThisIteration: [Channel] = []
    private var running = false
    private let mailbox: Mailbox
    /// Work to run at the end of each iteration (flushing logs, etc.).
    public var afterIteration: (() -> Void)?

    public init() {
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        precondition(epfd >= 0, "epoll_create1 failed: errno \(errno)")
        now = portico_now_ns()
        events = .allocate(capacity: maxEvents)
        mailbox = Mailbox()
        register(mailbox, events: EPOLLIN.rawValue)
    }

    deinit {
        events.deallocate()
        if mailbox.fd >= 0 { Glibc.close(mailbox.fd) }
        Glibc.close(epfd)
    }

    /// A queue for deadlines of `nanos`; queues with the same duration are shared.
    public func timerQueue(nanos: UInt64) -> TimerQueue {
        if let q = timerQueues.first(where: { $0.durationNanos == nanos }) { return q }
        let q = TimerQueue(durationNanos: nanos, loop: self)
        timerQueues.append(q)
        return q
    }

    /// Registers a channel (edge-triggered unless `edgeTriggered` is false); the loop holds a
    /// reference until `close(_:)`.
    public func register(_ channel: Channel,
                         events bits: UInt32 = EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue,
                         edgeTriggered: Bool = true) {
        var ev = epoll_event()
        ev.events = bits | (edgeTriggered ? EPOLLET.rawValue : 0)
        ev.data.ptr = Unmanaged.passRetained(channel).toOpaque()
        channel.loop = self
        channel.isClosed = false
        if epoll_ctl(epfd, EPOLL_CTL_ADD, channel.fd, &ev) != 0 {
            Unmanaged.passUnretained(channel).release()
            channel.loop = nil
        }
    }

    /// Changes the event mask of a registered channel (for level-triggered listeners).
    public func modify(_ channel: Channel, events bits: UInt32, edgeTriggered: Bool = true) {
        var ev = epoll_event()
        ev.events = bits | (edgeTriggered ? EPOLLET.rawValue : 0)
        ev.data.ptr = Unmanaged.passUnretained(channel).toOpaque()
        _ = epoll_ctl(epfd, EPOLL_CTL_MOD, channel.fd, &ev)
    }

    /// Deregisters and closes the channel's descriptor; its pending timer is cancelled.
    public func close(_ channel: Channel) {
        guard !channel.isClosed else { return }
        channel.isClosed = true
        channel.cancelTimer()
        if channel.loop != nil {
            // Closing the fd removes it from the epoll set; the loop's reference is dropped after
            // this iteration, since an event for it may still be waiting in `events`.
            closedThisIteration.append(channel)
        }
        if channel.fd >= 0 { Glibc.close(channel.fd) }
        channel.fd = -1
    }

    /// Removes a channel from the loop without closing its descriptor.
    public func detach(_ channel: Channel) {
        guard channel.loop != nil, !channel.isClosed else { return }
        channel.cancelTimer()
        _ = epoll_ctl(epfd, EPOLL_CTL_DEL, channel.fd, nil)
        channel.isClosed = true
        closedThisIteration.append(channel)
    }

    /// Runs `work` on this loop's thread soon; callable from any thread.
    public func execute(_ work: @escaping () -> Void) { mailbox.post(work) }

    public func stop() { running = false }

    public func refreshClock() { now = portico_now_ns() }

    /// Runs until `stop()`.
    public func run() {
        running = true
        while running {
            var timeoutMs: Int32 = -1
            var earliest = UInt64.max
            for q in timerQueues { if let d = q.nextDeadline, d < earliest { earliest = d } }
            if earliest != .max {
                let n = portico_now_ns()
                timeoutMs = earliest <= n ? 0 : Int32(min((earliest - n + 999_999) / 1_000_000, 60_000))
            }
            let count = epoll_wait(epfd, events, Int32(maxEvents), timeoutMs)
            now = portico_now_ns()
            if count > 0 {
                for i in 0..<Int(count) {
                    let ev = events[i]
                    let channel = Unmanaged<Channel>.fromOpaque(ev.data.ptr).takeUnretainedValue()
                    if !channel.isClosed { channel.handleEvent(ev.events) }
                }
            }
            for q in timerQueues { q.expire(now: now) }
            afterIteration?()
            if !closedThisIteration.isEmpty {
                for c in closedThisIteration {
                    c.loop = nil
                    Unmanaged.passUnretained(c).release()
                }
                closedThisIteration.removeAll(keepingCapacity: true)
            }
        }
    }
}

/// Cross-thread work queue for an event loop: an eventfd wakes the loop, a mutex guards the list.
/// Used only for rare things (a new RouteTable, a metrics snapshot, shutdown), never per request.
final class Mailbox: Channel {
    private var lock = pthread_mutex_t()
    private var pending: [() -> Void] = []

    init() {
        pthread_mutex_init(&lock, nil)
        super.init(fd: eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC)))
    }

    func post(_ work: @escaping () -> Void) {
        pthread_mutex_lock(&lock)
        pending.append(work)
        pthread_mutex_unlock(&lock)
        var one: UInt64 = 1
        _ = write(fd, &one, 8)
    }

    override func handleEvent(_ events: UInt32) {
        var value: UInt64 = 0
        while read(fd, &value, 8) == 8 {}
        pthread_mutex_lock(&lock)
        let work = pending
        pending.removeAll()
        pthread_mutex_unlock(&lock)
        for w in work { w() }
    }
}
