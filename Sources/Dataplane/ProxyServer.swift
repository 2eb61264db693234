import Reactor
import TLS
#if canImport(Glibc)
import Glibc
#endif

/// The running data plane: N workers, each an event-loop thread with its own SO_REUSEPORT
/// listener. The only way in from outside is `publish(_:)` (a new RouteTable, delivered to each
/// worker through its mailbox), `snapshot()` (metrics, computed by each worker on its own thread)
/// and `drain()`.
public final class ProxyServer {
    public let config: ProxyConfig
    public private(set) var workers: [Worker] = []
    private var threads: [OSThread] = []
    public private(set) var boundAddress: SocketAddress
    /// The https listener's address, when one was asked for.
    public private(set) var boundTLSAddress: SocketAddress?
    /// Certificates for the https listener (shared by the workers; swapped on reload).
    public let tls: TLSServerContext?
    private var current: RouteTable
    private let stopped: Latch

    /// Binds every worker's listener (so a bad address fails before anything runs).
    public init(config: ProxyConfig, table: RouteTable, tls: TLSServerContext? = nil,
                accessLog: (Int) -> AccessLog?) throws {
        self.config = config
        self.tls = tls
        self.current = table
        self.boundAddress = config.httpAddress
        self.stopped = Latch(count: config.workers)
        var address = config.httpAddress
        var tlsAddress = config.httpsAddress
        for i in 0..<max(1, config.workers) {
            let w = Worker(id: i, config: config)
            w.accessLog = accessLog(i)
            // The first bind resolves port 0; the rest share that port through SO_REUSEPORT.
            address = try w.bind(address: address)
            if let a = tlsAddress, let ctx = tls {
                tlsAddress = try w.bind(address: a, tls: ctx)
            }
            w.install(table)
            workers.append(w)
        }
        boundAddress = address
        boundTLSAddress = tls == nil ? nil : tlsAddress
    }

    public func start() {
        for w in workers {
            let stopped = self.stopped
            w.onStopped = { stopped.countDown() }
            threads.append(OSThread(name: "portico-w\(w.id)") { w.run() })
        }
    }

    /// The table the workers are serving (or about to, once their mailboxes run).
    public var routeTable: RouteTable { current }

    /// Hands a new table to every worker; each swaps it in between events.
    public func publish(_ table: RouteTable) {
        current = table
        for w in workers { w.loop.execute { w.install(table) } }
    }

    /// Sums every worker's counters; each worker computes its part on its own thread.
    public func snapshot() -> MetricsSnapshot {
        let latch = Latch(count: workers.count)
        let parts = SnapshotParts(count: workers.count)
        for (i, w) in workers.enumerated() {
            w.loop.execute {
                parts.set(i, w.stats.snapshot())
                latch.countDown()
            }
        }
        latch.wait()
        var total = MetricsSnapshot()
        for p in parts.values { total.merge(p) }
        return total
    }

    /// Stops accepting and lets in-flight requests finish (up to the drain timeout).
    public func drain() {
        for w in workers { w.loop.execute { w.drain() } }
    }

    /// True once every worker has stopped.
    public var isStopped: Bool { stopped.isDone }

    /// Waits until every worker has stopped.
    public func wait() {
        stopped.wait()
        for t in threads { t.join() }
    }
}

/// Results written by worker threads (under a mutex), read after the latch.
private final class SnapshotParts: @unchecked Sendable {
    private(set) var values: [MetricsSnapshot]
    private var mutex = pthread_mutex_t()
    init(count: Int) {
        values = Array(repeating: MetricsSnapshot(), count: count)
        pthread_mutex_init(&mutex, nil)
    }
    func set(_ i: Int, _ s: MetricsSnapshot) {
        pthread_mutex_lock(&mutex)
        values[i] = s
        pthread_mutex_unlock(&mutex)
    }
}
