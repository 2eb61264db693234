import CSystem
import HTTP1
import Reactor
import TLS
#if canImport(Glibc)
import Glibc
#endif

/// Per-worker state for one backend of the current RouteTable: its balancer and the idle
/// keep-alive connections to each of its endpoints.
final class BackendState {
    let backend: Backend
    let index: Int32
    let picker: EndpointPicker
    /// Idle upstream connections per endpoint index (most recently used last).
    var idle: [[UpstreamConnection]]
    /// Set when a newer RouteTable replaced this state: exchanges still using it finish, but
    /// their connections are no longer pooled here.
    var retired = false
    /// The OpenSSL client context for a backend spoken to over TLS (`portico.io/backend-protocol: HTTPS`).
    let tlsClient: TLSClientContext?
    /// Why the client context could not be made (every request then answers 502).
    let tlsClientError: String?

    /// Counts a failure (connect error, reset, 5xx) against endpoint `i`; when that ejects it,
    /// counts the ejection and logs it once.
    func reportFailure(_ i: Int, on worker: Worker) {
        guard picker.reportFailure(i, now: worker.loop.now) else { return }
        worker.stats.recordEjection(backend: index)
        worker.log.warning("endpoint \(backend.endpoints[i].name) of \(backend.label) ejected after consecutive failures")
    }

    init(backend: Backend, index: Int32, health: HealthPolicy, seed: UInt64) {
        self.backend = backend
        self.index = index
        self.picker = EndpointPicker(backend: backend, health: health, seed: seed)
        self.idle = Array(repeating: [], count: backend.endpoints.count)
        if let u = backend.upstreamTLS {
            do {
                tlsClient = try TLSClientContext(verify: u.verify, caPEM: u.caPEM, caFile: u.caSource)
                tlsClientError = nil
            } catch {
                tlsClient = nil
                tlsClientError = "\(error)"
            }
        } else {
            tlsClient = nil
            tlsClientError = nil
        }
    }
}

/// One event-loop thread of the proxy: its listener, its connections, its upstream pools, its
/// counters. Nothing here is touched by another thread; a new RouteTable arrives through the
/// loop's mailbox.
public final class Worker {
    public let id: Int
    public let loop: EventLoop
    let config: ProxyConfig
    let log: Log
    let pool = BufferPool()
    public let stats: WorkerStats
    var accessLog: AccessLog?
    private(set) var table: RouteTable = .empty
    private(set) var backends: [BackendState] = []
    private var listeners: [Listener] = []
    /// Service addresses balanced at the TCP level, by address.
    private var tcpListeners: [SocketAddress: TCPServiceListener] = [:]
    private(set) var listenPort: UInt16 = 0
    var listenPortText: [UInt8] = []
    private(set) var httpsPort: UInt16 = 0
    var httpsPortText: [UInt8] = []

    // Live client connections (slot map: O(1) insert and remove), for draining.
    private var connections: [ClientConnection] = []
    public private(set) var draining = false
    /// Held here: a timer queue does not retain what it holds.
    private var drainTicker: Channel?
    private var drainDeadline: UInt64 = 0
    var onStopped: (() -> Void)?

    let headerTimer: TimerQueue
    let bodyTimer: TimerQueue
    let keepaliveTimer: TimerQueue
    let sendTimer: TimerQueue
    let connectTimer: TimerQueue
    let upstreamTimer: TimerQueue
    let upstreamIdleTimer: TimerQueue
    /// How long a connection closed by the proxy keeps draining client bytes (lingering close).
    let lingerTimer: TimerQueue

    private var requestCounter: UInt64 = 0
    private let requestIDSeed: UInt64
    /// The seed's 16 hex digits, the first half of every request id, computed once.
    private let requestIDSeedHex: (UInt64, UInt64)
    private var dateSecond: Int64 = 0
    private(set) var date: [UInt8] = []

    public init(id: Int, config: ProxyConfig) {
        self.id = id
        self.config = config
        self.loop = EventLoop()
        self.log = Log("worker-\(id)")
        self.stats = WorkerStats()
        headerTimer = loop.timerQueue(nanos: config.clientHeaderTimeout)
        bodyTimer = loop.timerQueue(nanos: config.clientBodyTimeout)
        keepaliveTimer = loop.timerQueue(nanos: config.keepaliveTimeout)
        sendTimer = loop.timerQueue(nanos: config.sendTimeout)
        connectTimer = loop.timerQueue(nanos: config.upstreamConnectTimeout)
        upstreamTimer = loop.timerQueue(nanos: config.upstreamTimeout)
        upstreamIdleTimer = loop.timerQueue(nanos: config.upstreamIdleTimeout)
        lingerTimer = loop.timerQueue(nanos: 2_000_000_000)
        requestIDSeed = portico_now_ns() &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(id) << 56
        requestIDSeedHex = (Buffer.hexDigits(UInt32(truncatingIfNeeded: requestIDSeed >> 32)),
                            Buffer.hexDigits(UInt32(truncatingIfNeeded: requestIDSeed)))
        refreshDate()
        _ = refillSpareDescriptors()
        loop.afterIteration = { [unowned self] in
            self.accessLog?.flush()
            if self.draining { self.checkDrained() }
        }
    }

    /// Binds one of this worker's listeners (SO_REUSEPORT, so each worker has its own accept
    /// queue); with a TLS context it is an https listener.
    public func bind(address: SocketAddress, tls: TLSServerContext? = nil) throws -> SocketAddress {
        let fd = try Socket.listen(address, reusePort: true)
        let bound = Socket.localAddress(fd) ?? address
        if tls == nil {
            listenPort = bound.port
            listenPortText = Array(String(bound.port).utf8)
        } else {
            httpsPort = bound.port
            httpsPortText = Array(String(bound.port).utf8)
        }
        let l = Listener(fd: fd, worker: self, tls: tls)
        listeners.append(l)
        loop.register(l, events: EPOLLIN.rawValue)
        return bound
    }

    /// Runs the event loop on the calling thread until the worker has drained.
    public func run() {
        loop.run()
        for fd in spareDescriptors { Glibc.close(fd) }
        spareDescriptors = []
        accessLog?.flush()
        onStopped?()
    }

    // MARK: routes

    /// Installs a new table (on this worker's thread). In-flight exchanges keep the backend state
    /// they started with; idle connections to endpoints that disappeared are closed.
    public func install(_ newTable: RouteTable) {
        var old: [String: BackendState] = [:]
        for b in backends { old[key(b.backend)] = b }
        var fresh: [BackendState] = []
        fresh.reserveCapacity(newTable.backends.count)
        for (i, b) in newTable.backends.enumerated() {
            let state = BackendState(backend: b, index: Int32(i), health: config.health,
                                     seed: requestIDSeed &+ UInt64(i))
            if let prev = old.removeValue(forKey: key(b)) {
                state.picker.inherit(from: prev.picker)
                // Move idle connections of endpoints that still exist.
                for (ei, conns) in prev.idle.enumerated() where !conns.isEmpty {
                    let addr = prev.backend.endpoints[ei].address
                    if let ni = b.endpoints.firstIndex(where: { $0.address == addr }) {
                        for c in conns { c.backendState = state; c.endpointIndex = ni }
                        state.idle[ni].append(contentsOf: conns)
                    } else {
                        for c in conns { c.closeIdle() }
                    }
                }
                prev.idle = []
                prev.retired = true
            }
            fresh.append(state)
        }
        for (_, gone) in old {
            for conns in gone.idle { for c in conns { c.closeIdle() } }
            gone.idle = []
            gone.retired = true
        }
        table = newTable
        backends = fresh
        installTCPServices(newTable.tcpServices)
        stats.configure(ingresses: newTable.ingresses, backends: newTable.backends.map { $0.label })
    }

    /// Opens listeners for new Service addresses, retargets kept ones, closes removed ones.
    private func installTCPServices(_ services: [TCPService]) {
        if draining { return }
        var wanted: [SocketAddress: Int32] = [:]
        for s in services { wanted[s.address] = s.backend }
        for (address, l) in tcpListeners where wanted[address] == nil {
            loop.close(l)
            tcpListeners[address] = nil
        }
        for (address, backend) in wanted {
            if let l = tcpListeners[address] { l.backend = backend; continue }
            do {
                let fd = try Socket.listen(address, reusePort: true)
                let l = TCPServiceListener(fd: fd, address: address, backend: backend, worker: self)
                tcpListeners[address] = l
                loop.register(l, events: EPOLLIN.rawValue)
            } catch {
                if id == 0 { log.warning("Service address \(address): \(error)") }
            }
        }
    }

    private func key(_ b: Backend) -> String { "\(b.label)|\(b.policy.rawValue)|\(b.affinity)" }

    // MARK: connections

    var atConnectionLimit: Bool {
        config.maxConnections > 0 && connections.count >= config.maxConnections
    }

    // MARK: running out of descriptors

    /// Descriptors (of /dev/null) held in reserve: when the process runs out (EMFILE), one is
    /// closed so a connection the proxy already has can still open its upstream connection, and
    /// the listeners accept again only once the reserve is whole.
    private var spareDescriptors: [Int32] = []
    static let spareDescriptorCount = 8
    /// Set while descriptors are short, so the condition is logged once, not once per accept.
    private var descriptorShortage = false
    private var connectionLimitReached = false

    var hasSpareDescriptors: Bool { spareDescriptors.count >= Worker.spareDescriptorCount }

    /// Tops the reserve up; false when the process is still out of descriptors.
    func refillSpareDescriptors() -> Bool {
        while spareDescriptors.count < Worker.spareDescriptorCount {
            let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
            if fd < 0 { return false }
            spareDescriptors.append(fd)
        }
        return true
    }

    /// An accept or an upstream connect failed for want of descriptors (`reason`: EMFILE,
    /// ENFILE...): logged the first time only, until accepting succeeds again.
    func enterDescriptorShortage(_ reason: String) {
        guard !descriptorShortage else { return }
        descriptorShortage = true
        log.warning("out of file descriptors (\(reason)): accepts wait until some are free, open connections are "
            + "still served; raise the limit (ulimit -n) or lower --max-connections")
    }

    /// `--max-connections` reached: logged the first time only.
    func enterConnectionLimit() {
        guard !connectionLimitReached else { return }
        connectionLimitReached = true
        log.warning("\(connections.count) client connections: at --max-connections \(config.maxConnections), accepts paused")
    }

    /// A connection was accepted: if accepting had been paused, say that it goes on.
    @inline(__always) func acceptResumed() {
        guard descriptorShortage || connectionLimitReached else { return }
        log.info("accepting again (\(connections.count) client connections)")
        descriptorShortage = false
        connectionLimitReached = false
    }

    /// Connects to an upstream endpoint; when the process is out of descriptors, spends one from
    /// the reserve so the request of a connection already accepted can still be proxied.
    func connectUpstream(to address: SocketAddress) throws -> Int32 {
        do {
            return try Socket.connect(to: address)
        } catch let e as SocketError where (e.errno == EMFILE || e.errno == ENFILE) && !spareDescriptors.isEmpty {
            Glibc.close(spareDescriptors.removeLast())
            return try Socket.connect(to: address)
        }
    }

    func accepted(fd: Int32, peer: inout sockaddr_storage, tls: TLSServerContext?) {
        if draining { Glibc.close(fd); return }
        Socket.setNoDelay(fd)
        let address = withUnsafeBytes(of: &peer) {
            SocketAddress(storage: $0.baseAddress!, length: MemoryLayout<sockaddr_storage>.size)
        }
        let conn = ClientConnection(fd: fd, peer: address, worker: self, tls: tls)
        conn.slot = connections.count
        connections.append(conn)
        stats.connectionOpened()
        loop.register(conn)
        conn.start()
    }

    func connectionClosed(_ conn: ClientConnection) {
        let slot = conn.slot
        guard slot >= 0, slot < connections.count, connections[slot] === conn else { return }
        let last = connections.removeLast()
        if slot < connections.count {
            connections[slot] = last
            last.slot = slot
        }
        conn.slot = -1
        stats.connectionClosed()
        for l in listeners { l.connectionFreed() }
    }

    func backendState(_ index: Int32) -> BackendState { backends[Int(index)] }

    // MARK: shutdown

    /// Stops accepting, closes idle connections, lets in-flight exchanges finish (their
    /// connections close after the response), and stops the loop when none remain or the drain
    /// timeout passes.
    public func drain() {
        guard !draining else { return }
        draining = true
        drainDeadline = loop.now &+ config.drainTimeout
        for l in listeners { loop.close(l) }
        listeners = []
        for (_, l) in tcpListeners { loop.close(l) }
        tcpListeners = [:]
        for c in connections where c.isIdle { c.close() }
        for b in backends { for conns in b.idle { for c in conns { c.closeIdle() } }; b.idle = [] }
        // A timer wakes the loop so the deadline is noticed even with no traffic.
        let tick = loop.timerQueue(nanos: 100_000_000)
        let ticker = DrainTicker(worker: self, queue: tick)
        drainTicker = ticker
        tick.arm(ticker)
        checkDrained()
    }

    fileprivate func checkDrained() {
        if connections.isEmpty {
            loop.stop()
        } else if loop.now >= drainDeadline {
            log.warning("drain timeout: closing \(connections.count) connection(s)")
            for c in connections { c.close() }
            loop.stop()
        }
    }

    // MARK: per-request helpers

    /// The current IMF-fixdate, refreshed at most once a second.
    func currentDate() -> [UInt8] {
        let now = portico_wall_seconds()
        if now != dateSecond { refreshDate(now) }
        return date
    }

    private func refreshDate(_ now: Int64 = portico_wall_seconds()) {
        dateSecond = now
        date = HTTPDate.imfFixdate(epochSeconds: now)
    }

    /// A new request id: 32 hex digits, unique per worker and process start.
    func nextRequestID(into buffer: Buffer) {
        requestCounter &+= 1
        buffer.reserve(32)
        let out = buffer.writable.baseAddress!
        out.storeBytes(of: requestIDSeedHex.0, as: UInt64.self)
        out.storeBytes(of: requestIDSeedHex.1, toByteOffset: 8, as: UInt64.self)
        buffer.didWrite(16)
        buffer.appendHexFixed(requestCounter &* 0xD6E8_FEB8_6659_FD93 ^ UInt64(id))
    }
}

/// Wakes a draining loop every 100 ms.
private final class DrainTicker: Channel {
    unowned let worker: Worker
    let queue: TimerQueue
    init(worker: Worker, queue: TimerQueue) {
        self.worker = worker
        self.queue = queue
        super.init(fd: -1)
    }
    override func handleTimeout() {
        worker.checkDrained()
        queue.arm(self)
    }
}

extension Buffer {
    /// Exactly 16 lowercase hex digits, written straight into the buffer.
    func appendHexFixed(_ v: UInt64) {
        reserve(16)
        let out = writable.baseAddress!
        out.storeBytes(of: Buffer.hexDigits(UInt32(truncatingIfNeeded: v >> 32)), as: UInt64.self)
        out.storeBytes(of: Buffer.hexDigits(UInt32(truncatingIfNeeded: v)), toByteOffset: 8, as: UInt64.self)
        didWrite(16)
    }

    /// The 8 lowercase hex digits of `v` as the bytes of a word stored in memory order (most
    /// significant digit first), computed in the register instead of a digit at a time (the
    /// byte loop was ~120 instructions per request id half under callgrind).
    @inline(__always)
    static func hexDigits(_ v: UInt32) -> UInt64 {
        // Spread the 8 nibbles into 8 bytes, the lowest nibble in the lowest byte.
        var x = UInt64(v)
        x = ((x & 0xFFFF_0000) << 16) | (x & 0xFFFF)
        x = ((x & 0x0000_FF00_0000_FF00) << 8) | (x & 0x0000_00FF_0000_00FF)
        x = ((x & 0x00F0_00F0_00F0_00F0) << 4) | (x & 0x000F_000F_000F_000F)
        // '0' + d, plus 0x27 more where d >= 10 (d + 6 carries into bit 4): 'a' + d - 10.
        let letters = ((x &+ 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101
        let ascii = x &+ 0x3030_3030_3030_3030 &+ letters &* 0x27
        // Most significant digit first in memory, whatever the machine's byte order.
        return UInt64(bigEndian: ascii)
    }
}
