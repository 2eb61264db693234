import CSystem
import HTTP1
import Histogram
import Reactor
#if canImport(Glibc)
import Glibc
#endif

/// Why a request attempt failed.
public enum ErrorKind: Int, CaseIterable, Sendable {
    /// The TCP connect (or TLS handshake) failed.
    case connect
    /// No complete response within --timeout (measured from the send, connect included).
    case timeout
    /// The connection was reset (ECONNRESET, EPIPE or another socket error).
    case reset
    /// The server closed the connection before the response was complete.
    case closed
    /// The response could not be parsed (status line, fields, framing, chunked encoding).
    case malformed

    public var name: String {
        switch self {
        case .connect: return "connect"
        case .timeout: return "timeout"
        case .reset: return "reset"
        case .closed: return "closed"
        case .malformed: return "malformed"
        }
    }
}

/// A prebuilt request as the hot path sees it: plain values, no reference to retain.
struct RequestEntry {
    let bytes: UnsafeRawBufferPointer
    let method: HTTPMethod
    /// Index in `Worker.serverNames` of the TLS name its connection needs (always 0 for http).
    let serverName: Int32
}

/// Slots of a worker's counter block: written by the worker thread only, read by the main thread
/// for the progress line with relaxed loads (no lock, no atomic read-modify-write).
enum Counter {
    static let responses = 0
    static let bytesRead = 1
    static let errors = 2
    static let p99 = 3
    static let connections = 4
    static let openAtEnd = 5
    static let errorBase = 8  // + ErrorKind.rawValue
    static let count = 16
}

/// One thread's share of the run: an event loop, its connections, its histogram and counters.
/// Everything here is touched by the worker thread only, except the counter block.
final class Worker {
    let loop = EventLoop()
    let address: SocketAddress
    /// Keeps the request bytes alive; connections use `entries` (no reference counting per request).
    let templates: [RequestTemplate]
    let entries: ContiguousArray<RequestEntry>
    /// The distinct TLS names of the entries (https only; empty for http).
    let serverNames: [String]
    var picker: WeightedPicker
    /// Latencies in ns.
    var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: Worker.highestLatency,
                                      numberOfSignificantValueDigits: .three)
    static let highestLatency: UInt64 = 3_600_000_000_000
    let counters = UnsafeMutablePointer<UInt64>.allocate(capacity: Counter.count)
    /// Responses by status code (index 100...599).
    let statuses = UnsafeMutablePointer<UInt64>.allocate(capacity: 600)
    var slots: [LoadConnection] = []
    /// Attempts this worker may start; -1 when the run is timed.
    let quota: Int
    var issued = 0
    var active = 0
    var stopping = false
    /// When the worker stopped (ns, monotonic).
    var finishNanos: UInt64 = 0
    let timeouts: TimerQueue
    private(set) var pacer: Pacer!
    /// Open loop: ns between two requests of one connection; 0 in a closed loop.
    let interval: UInt64
    let newConnectionPerRequest: Bool
    let holdIdle: Bool
    let tls: TLSClient?

    /// `firstIndex`: the global index of this worker's first connection (staggers open-loop starts).
    init(config: LoadConfig, templates: [RequestTemplate], connections: Int, firstIndex: Int, quota: Int,
         start: UInt64, seed: UInt64, tls: TLSClient?) {
        address = config.address
        self.templates = templates
        var names: [String] = []
        if tls != nil { for t in templates where !names.contains(t.serverName) { names.append(t.serverName) } }
        serverNames = names
        entries = ContiguousArray(templates.map { t in
            RequestEntry(bytes: t.bytes, method: t.method, serverName: Int32(names.firstIndex(of: t.serverName) ?? 0))
        })
        picker = WeightedPicker(weights: templates.map { $0.weight }, seed: seed)
        self.quota = quota
        newConnectionPerRequest = config.newConnectionPerRequest
        holdIdle = config.holdIdle
        self.tls = tls
        counters.initialize(repeating: 0, count: Counter.count)
        statuses.initialize(repeating: 0, count: 600)
        timeouts = loop.timerQueue(nanos: config.timeoutNanos)
        interval = config.intervalNanos
        pacer = Pacer(worker: self, capacity: connections)
        for i in 0..<connections {
            let c = LoadConnection(worker: self, index: i)
            if interval > 0 {
                // Connection g of C starts at g/C of the interval, so the whole run sends evenly.
                c.nextIntended = start &+ interval * UInt64(firstIndex + i) / UInt64(config.connections)
            }
            slots.append(c)
        }
        active = connections
    }

    deinit {
        counters.deallocate()
        statuses.deallocate()
    }

    /// Runs the loop on the calling thread until the quota is done or `stop()`.
    func run() {
        loop.register(pacer, events: EPOLLIN.rawValue)
        if quota == 0 { finish() } else { for s in slots { s.startNext() } }
        if !stopping { loop.run() }
        loop.close(pacer)
    }

    /// Ends a timed run (called on the worker thread through `loop.execute`).
    func stop() {
        guard !stopping else { return }
        stopping = true
        finishNanos = portico_now_ns()
        var open: UInt64 = 0
        for s in slots where s.socket != nil && (s.state == .idle || s.state == .reading || s.state == .writing) { open += 1 }
        portico_counter_set(counters + Counter.openAtEnd, open)
        for s in slots { s.shutdown() }
        loop.stop()
    }

    /// A connection has nothing more to do (quota reached).
    func slotFinished() {
        active -= 1
        if active == 0 { finish() }
    }

    private func finish() {
        stopping = true
        finishNanos = portico_now_ns()
        for s in slots { s.shutdown() }
        loop.stop()
    }

    /// True when the quota allows one more attempt (and takes it).
    @inline(__always) func takeAttempt() -> Bool {
        if stopping { return false }
        if quota >= 0 && issued >= quota { return false }
        issued &+= 1
        return true
    }

    @inline(__always) func add(_ slot: Int, _ v: UInt64) {
        portico_counter_add(counters + slot, v)
    }

    @inline(__always) func record(latency: UInt64) {
        histogram.record(latency < Worker.highestLatency ? latency : Worker.highestLatency)
    }

    @inline(__always) func count(status: Int) {
        statuses[status] &+= 1
        add(Counter.responses, 1)
    }

    @inline(__always) func count(error kind: ErrorKind) {
        add(Counter.errors, 1)
        add(Counter.errorBase + kind.rawValue, 1)
    }

    /// The first TLS handshake failure's reason (reported once, not per attempt).
    var tlsFailure: String? = nil

    func noteTLSFailure(_ why: String) {
        if tlsFailure == nil { tlsFailure = TLSClient.explain(handshakeFailure: why) }
    }

    /// Publishes the p99 so far for the progress line (once a second, on the worker thread).
    func publishP99() {
        portico_counter_set(counters + Counter.p99, histogram.totalCount > 0 ? histogram.valueAtPercentile(99) : 0)
    }

    func load(_ slot: Int) -> UInt64 { portico_counter_load(counters + slot) }
}

/// Wakes connections at exact times: a timerfd armed at the earliest deadline of a binary
/// min-heap of waiting connections (open-loop schedule, back-off after a failed connect).
/// Fixed capacity (one entry per connection): no allocation while running.
final class Pacer: Channel {
    unowned(unsafe) let worker: Worker
    private var deadlines: [UInt64]
    private var members: [Int32]
    private var count = 0
    private var armedAt: UInt64 = .max

    init(worker: Worker, capacity: Int) {
        self.worker = worker
        deadlines = [UInt64](repeating: 0, count: capacity)
        members = [Int32](repeating: 0, count: capacity)
        super.init(fd: timerfd_create(CLOCK_MONOTONIC, Int32(TFD_NONBLOCK | TFD_CLOEXEC)))
        precondition(fd >= 0, "timerfd_create failed: errno \(errno)")
    }

    func schedule(_ slot: Int, at deadline: UInt64) {
        var i = count
        count += 1
        while i > 0 {
            let parent = (i - 1) >> 1
            if deadlines[parent] <= deadline { break }
            deadlines[i] = deadlines[parent]
            members[i] = members[parent]
            i = parent
        }
        deadlines[i] = deadline
        members[i] = Int32(slot)
        if deadline < armedAt { arm(deadline) }
    }

    private func popMin() -> Int {
        let top = Int(members[0])
        count -= 1
        if count > 0 {
            let d = deadlines[count]
            let m = members[count]
            var i = 0
            while true {
                var child = 2 * i + 1
                if child >= count { break }
                if child + 1 < count && deadlines[child + 1] < deadlines[child] { child += 1 }
                if deadlines[child] >= d { break }
                deadlines[i] = deadlines[child]
                members[i] = members[child]
                i = child
            }
            deadlines[i] = d
            members[i] = m
        }
        return top
    }

    private func arm(_ deadline: UInt64) {
        armedAt = deadline
        var spec = itimerspec()
        spec.it_value.tv_sec = Int(deadline / 1_000_000_000)
        spec.it_value.tv_nsec = Int(deadline % 1_000_000_000)
        timerfd_settime(fd, Int32(TFD_TIMER_ABSTIME), &spec, nil)
    }

    override func handleEvent(_ events: UInt32) {
        var expirations: UInt64 = 0
        _ = read(fd, &expirations, 8)
        armedAt = .max
        let now = portico_now_ns()
        while count > 0 && deadlines[0] <= now {
            let slot = popMin()
            worker.slots[slot].wake()
        }
        if count > 0 && deadlines[0] < armedAt { arm(deadlines[0]) }
    }
}
