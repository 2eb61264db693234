import CSystem
import Reactor
#if canImport(Glibc)
import Glibc
#endif

/// The kube-proxy role: a listener on a Service's ClusterIP:port (or nodePort) that balances
/// each TCP connection over the Service's ready endpoints, with the same per-worker pickers
/// (round-robin, ClientIP affinity, passive ejection) as HTTP.
final class TCPServiceListener: Channel {
    unowned(unsafe) let worker: Worker
    let address: SocketAddress
    /// Index into the worker's current backends; updated when a new RouteTable arrives.
    var backend: Int32
    private var peer = sockaddr_storage()

    init(fd: Int32, address: SocketAddress, backend: Int32, worker: Worker) {
        self.worker = worker
        self.address = address
        self.backend = backend
        super.init(fd: fd)
    }

    private lazy var retryQueue = worker.loop.timerQueue(nanos: 100_000_000)
    private var paused = false

    override func handleEvent(_ events: UInt32) { acceptAll() }

    override func handleTimeout() {
        paused = false
        acceptAll()
    }

    /// As the HTTP listener: out of descriptors, it waits (a timer, not a spin) with the queued
    /// clients in the kernel's backlog, logs the shortage once, and keeps the worker's reserve
    /// for the upstream side of the connections it accepts.
    private func acceptAll() {
        while !isClosed && !paused {
            if !worker.hasSpareDescriptors && !worker.refillSpareDescriptors() { pause(); return }
            do {
                guard let fd = try Socket.accept(self.fd, peer: &peer) else { return }
                worker.acceptResumed()
                Socket.setNoDelay(fd)
                let client = withUnsafeBytes(of: &peer) {
                    SocketAddress(storage: $0.baseAddress!, length: MemoryLayout<sockaddr_storage>.size)
                }
                let tunnel = TCPTunnel(fd: fd, peer: client, worker: worker, backend: worker.backendState(backend))
                worker.loop.register(tunnel)
                tunnel.start()
            } catch let e as SocketError where e.errno == EMFILE || e.errno == ENFILE || e.errno == ENOBUFS || e.errno == ENOMEM {
                worker.enterDescriptorShortage("\(e)")
                pause()
                return
            } catch let e as SocketError where e.errno == ECONNABORTED || e.errno == EINTR || e.errno == EPROTO {
                continue
            } catch {
                worker.log.warning("accept on \(address): \(error)")
                return
            }
        }
    }

    private func pause() {
        paused = true
        retryQueue.arm(self)
    }
}

/// One proxied TCP connection: the client side owns the pair.
final class TCPTunnel: Channel {
    unowned(unsafe) let worker: Worker
    let peer: SocketAddress?
    let backend: BackendState
    var upstream: TCPUpstream?
    var endpoint = -1
    var tries = 0
    var canRead = false
    var canWrite = true
    let inBuf: Buffer
    private var tunnel = ByteTunnel(onEndOfFile: .halfClose)

    init(fd: Int32, peer: SocketAddress?, worker: Worker, backend: BackendState) {
        self.worker = worker
        self.peer = peer
        self.backend = backend
        self.inBuf = worker.pool.take()
        super.init(fd: fd)
    }

    func start() {
        guard !backend.backend.endpoints.isEmpty else {
            worker.log.info("\(backend.backend.label): no ready endpoints for a TCP connection from \(peer?.description ?? "?")")
            close()
            return
        }
        connectUpstream()
    }

    private func connectUpstream() {
        tries += 1
        let key: UInt64? = backend.backend.affinity == .clientIP ? peer.map { Hashing.hash64($0.ipBytes) } : nil
        guard let ep = backend.picker.pick(hashKey: key, now: worker.loop.now, excluding: endpoint) else { close(); return }
        endpoint = ep
        backend.picker.requestStarted(ep)
        do {
            let fd = try worker.connectUpstream(to: backend.backend.endpoints[ep].address)
            let up = TCPUpstream(fd: fd, tunnel: self, worker: worker)
            upstream = up
            worker.loop.register(up)
            worker.connectTimer.arm(up)
        } catch let e as SocketError where e.errno == EMFILE || e.errno == ENFILE {
            // The proxy's shortage, not the endpoint's fault: no failure counted, no ejection.
            worker.enterDescriptorShortage("\(e)")
            backend.picker.requestFinished(ep)
            endpoint = -1
            close()
        } catch {
            upstreamFailed()
        }
    }

    func upstreamFailed() {
        if endpoint >= 0 {
            backend.picker.requestFinished(endpoint)
            backend.reportFailure(endpoint, on: worker)
        }
        if let up = upstream { upstream = nil; up.shut() }
        if tries < max(worker.config.tries, 2) && backend.backend.endpoints.count > 1 {
            connectUpstream()
        } else {
            close()
        }
    }

    override func handleEvent(_ events: UInt32) {
        if events & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 { canRead = true }
        if events & (EPOLLOUT.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 { canWrite = true }
        pump()
    }

    override func handleTimeout() { close() }

    /// Moves bytes both ways until neither side can make progress; an end of file from one side
    /// is passed on as a half-close, and the pair closes once both sides finished.
    func pump() {
        guard let up = upstream, up.connected, !isClosed else { return }
        if tunnel.pump(self, inBuf, up, up.inBuf) { close() }
    }

    func close() {
        guard !isClosed else { return }
        if let up = upstream {
            upstream = nil
            if up.connected { backend.picker.requestFinished(endpoint) }
            up.shut()
        }
        worker.pool.give(inBuf)
        worker.loop.close(self)
    }
}

final class TCPUpstream: Channel {
    unowned(unsafe) let tunnel: TCPTunnel
    unowned(unsafe) let worker: Worker
    var connected = false
    var canRead = false
    var canWrite = false
    let inBuf: Buffer

    init(fd: Int32, tunnel: TCPTunnel, worker: Worker) {
        self.tunnel = tunnel
        self.worker = worker
        self.inBuf = worker.pool.take()
        super.init(fd: fd)
    }

    override func handleEvent(_ events: UInt32) {
        if events & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 { canRead = true }
        if events & (EPOLLOUT.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 { canWrite = true }
        if !connected {
            guard canWrite else { return }
            if Socket.connectResult(fd) != 0 { tunnel.upstreamFailed(); return }
            connected = true
            cancelTimer()
            tunnel.backend.picker.reportSuccess(tunnel.endpoint)
        }
        tunnel.pump()
    }

    override func handleTimeout() { tunnel.upstreamFailed() }

    func shut() {
        guard !isClosed else { return }
        worker.pool.give(inBuf)
        worker.loop.close(self)
    }
}

/// Both ends of a TCP Service tunnel are plain sockets.
extension TCPTunnel: PlainSocketTunnelEnd {}
extension TCPUpstream: PlainSocketTunnelEnd {}
