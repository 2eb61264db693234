import CSystem
import Reactor
import TLS
#if canImport(Glibc)
import Glibc
#endif

/// A connection from a worker to one endpoint. While an exchange uses it, its events go to the
/// owning client connection; between exchanges it waits in its backend's idle pool, where any
/// event (the upstream closing, or sending unasked-for bytes) or the idle timeout closes it.
final class UpstreamConnection: Channel {
    unowned(unsafe) let worker: Worker
    var backendState: BackendState
    var endpointIndex: Int
    /// The exchange using this connection; nil while idle in the pool.
    unowned(unsafe) var owner: ClientConnection?
    var connected = false
    var canRead = false
    var canWrite = false
    var inPool = false
    /// Bytes the proxy generated for this upstream (the request head, chunk framing).
    let out: Buffer
    /// Bytes received from the upstream.
    let inBuf: Buffer
    /// Whether this connection has already served an exchange (a reused keep-alive connection).
    var reused = false
    /// The upstream has closed its side (EPOLLRDHUP/EPOLLHUP): a short read did not drain the
    /// socket, an end of file is still to be read (edge-triggered: no further event announces it).
    var peerClosed = false
    /// TLS towards the pod, for backends with `portico.io/backend-protocol: HTTPS`.
    var tls: TLSSession?

    @inline(__always) func read(minSpace: Int) -> IOResult { transportRead(into: inBuf, minSpace: minSpace) }

    @inline(__always) func write(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> IOResult { transportWrite(a, b) }

    init(fd: Int32, worker: Worker, backendState: BackendState, endpointIndex: Int) {
        self.worker = worker
        self.backendState = backendState
        self.endpointIndex = endpointIndex
        self.out = Buffer(capacity: 4096)
        self.inBuf = worker.pool.take()
        super.init(fd: fd)
    }

    var endpoint: Endpoint { backendState.backend.endpoints[endpointIndex] }

    override func handleEvent(_ events: UInt32) {
        if events & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 { canRead = true }
        if events & (EPOLLRDHUP.rawValue | EPOLLHUP.rawValue) != 0 { peerClosed = true }
        if events & (EPOLLOUT.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 { canWrite = true }
        if tls != nil { canRead = true; canWrite = true }
        if inPool {
            // An idle upstream has nothing to say: this is a close (or garbage). Drop it.
            removeFromPool()
            closeIdle()
            return
        }
        guard let owner = owner else { return }
        if !connected {
            guard canWrite else { return }
            if tls == nil {
                let err = Socket.connectResult(fd)
                if err != 0 {
                    owner.upstreamFailed(self, reason: .connect(err))
                    owner.drive()
                    return
                }
                if let ctx = backendState.tlsClient {
                    tls = TLSSession(client: ctx, fd: fd, serverName: backendState.backend.upstreamTLS?.serverName)
                }
            }
            if let t = tls {
                // The handshake runs under the connect timeout.
                switch t.handshake() {
                case .done: break
                case .wantRead, .wantWrite, .plainHTTP: return
                case .failed(let reason):
                    owner.upstreamFailed(self, reason: .tls(reason))
                    owner.drive()
                    return
                }
            }
            connected = true
            cancelTimer()
            owner.upstreamConnected(self)
            return
        }
        owner.upstreamReady(self)
    }

    override func handleTimeout() {
        if inPool {
            removeFromPool()
            closeIdle()
            return
        }
        owner?.upstreamTimedOut(self)
    }

    /// Puts the connection back into its endpoint's idle pool, or closes it if the pool is full.
    func release() {
        owner = nil
        reused = true
        out.clear()
        if !inBuf.isEmpty || peerClosed || worker.draining || isClosed {
            closeIdle(); return
        }
        // A connection whose backend was replaced by a newer RouteTable is not pooled.
        if backendState.retired { closeIdle(); return }
        // In place: a local copy of the list would make the append copy the whole array (one
        // allocation per request under callgrind).
        if backendState.idle[endpointIndex].count >= worker.config.upstreamKeepalive { closeIdle(); return }
        inPool = true
        backendState.idle[endpointIndex].append(self)
        worker.upstreamIdleTimer.arm(self)
    }

    /// Takes the connection out of the pool for a new exchange.
    func acquire(owner: ClientConnection) {
        inPool = false
        cancelTimer()
        self.owner = owner
    }

    private func removeFromPool() {
        inPool = false
        guard !backendState.retired else { return }
        if let i = backendState.idle[endpointIndex].firstIndex(where: { $0 === self }) {
            backendState.idle[endpointIndex].remove(at: i)
        }
    }

    /// Closes the connection (idle or not) and returns its buffer.
    func closeIdle() {
        guard !isClosed else { return }
        inPool = false
        owner = nil
        worker.pool.give(inBuf)
        tls = nil
        worker.loop.close(self)
    }
}

/// The upstream end of an Upgrade tunnel: plain or TLS (`backend-protocol: HTTPS`).
extension UpstreamConnection: PlainOrTLSTunnelEnd {}

/// Why an upstream attempt failed (decides retry and status).
enum UpstreamFailure {
    case connect(Int32)
    case connectTimeout
    case reset(Int32)
    case closedEarly
    case timeout
    case invalidResponse
    case tls(String)

    var status: Int {
        switch self {
        case .connectTimeout, .timeout: return 504
        default: return 502
        }
    }

    var text: String {
        switch self {
        case .connect(let e): return "connect failed: \(String(cString: strerror(e)))"
        case .connectTimeout: return "connect timed out"
        case .reset(let e): return "connection error: \(String(cString: strerror(e)))"
        case .closedEarly: return "upstream closed the connection before a complete response"
        case .timeout: return "upstream timed out"
        case .invalidResponse: return "invalid response from upstream"
        case .tls(let reason): return "TLS to upstream failed: \(reason)"
        }
    }
}
