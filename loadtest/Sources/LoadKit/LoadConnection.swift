import CSystem
import HTTP1
import Reactor
import TLS
#if canImport(Glibc)
import Glibc
#endif

/// The TCP connection a `LoadConnection` currently uses: a thin channel that hands its events
/// to the owner (a reconnect makes a new one, since a channel keeps its descriptor).
final class LoadSocket: Channel {
    unowned(unsafe) let owner: LoadConnection

    init(fd: Int32, owner: LoadConnection) {
        self.owner = owner
        super.init(fd: fd)
    }

    override func handleEvent(_ events: UInt32) { owner.socketEvent(events) }
    override func handleTimeout() { owner.fail(.timeout) }
}

/// One virtual user: sends a request, reads the whole response, records its latency, and goes
/// again (closed loop) or waits for its next scheduled send time (open loop). Reconnects after
/// errors, `Connection: close` and in new-connection mode. The hot path writes prebuilt bytes,
/// parses with `ResponseParser` into a reused head and allocates nothing.
final class LoadConnection {
    enum State { case idle, waiting, connecting, handshaking, writing, reading, done }
    enum BodyPhase { case head, length, chunked, untilClose }

    unowned(unsafe) let worker: Worker
    let index: Int
    var socket: LoadSocket?
    var tls: TLSSession?
    /// The `Worker.serverNames` index the socket's TLS session was (or is being) opened with.
    var socketServerName: Int32 = 0
    var state: State = .idle
    var canRead = false
    var canWrite = false
    /// The peer's FIN (or an error) was signalled: read until EOF, whatever the read sizes.
    var peerClosed = false

    let inBuf = Buffer(capacity: 16384)
    var parser = ResponseParser()
    var head = ResponseHead()
    var chunked = ChunkedDecoder()
    var phase: BodyPhase = .head
    var remaining: UInt64 = 0

    var request = UnsafeRawBufferPointer(start: nil, count: 0)
    var requestMethod: HTTPMethod = .get
    var written = 0
    /// Latency origin of the request in flight: its intended send time in an open loop (so a
    /// stall counts against every request it delays), the actual start otherwise.
    var startNanos: UInt64 = 0
    /// Idle mode: this connection has had its response.
    var answered = false
    /// Open loop: when the next request is due.
    var nextIntended: UInt64 = 0

    static let connectBackoff: UInt64 = 10_000_000

    init(worker: Worker, index: Int) {
        self.worker = worker
        self.index = index
        head.fields.reserveCapacity(32)
    }

    // MARK: Scheduling

    /// Starts the next request now, or waits for its scheduled time, or ends this connection when
    /// the run's quota is used up.
    func startNext() {
        if worker.holdIdle && answered {
            state = .idle  // idle mode: one answered request, then hold the connection
            return
        }
        if worker.interval > 0 && !worker.stopping {
            if nextIntended > portico_now_ns() {
                state = .waiting
                worker.pacer.schedule(index, at: nextIntended)
                return
            }
        }
        guard worker.takeAttempt() else {
            if state != .done {
                state = .done
                closeSocket()
                if !worker.stopping { worker.slotFinished() }
            }
            return
        }
        let t = worker.entries[worker.picker.next()]
        request = t.bytes
        requestMethod = t.method
        written = 0
        if worker.interval > 0 {
            startNanos = nextIntended
            nextIntended &+= worker.interval
        } else {
            startNanos = portico_now_ns()
        }
        if let s = socket {
            // Always equal for http and one-name runs. Otherwise the TLS session is bound to the
            // name it was opened with: reopen with this request's name (as a browser would).
            if t.serverName == socketServerName {
                worker.timeouts.arm(s)
                state = .writing
                send()
                return
            }
            closeSocket()
        }
        socketServerName = t.serverName
        connect()
    }

    /// The pacer's deadline passed.
    func wake() {
        if state == .waiting { startNext() }
    }

    func connect() {
        let fd: Int32
        do {
            fd = try Socket.connect(to: worker.address)
        } catch {
            fail(.connect)
            return
        }
        let s = LoadSocket(fd: fd, owner: self)
        socket = s
        canRead = false
        canWrite = false
        state = .connecting
        worker.loop.register(s)
        worker.timeouts.arm(s)
    }

    // MARK: Events

    func socketEvent(_ events: UInt32) {
        if events & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 { canRead = true }
        if events & (EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 { peerClosed = true }
        if events & (EPOLLOUT.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 { canWrite = true }
        switch state {
        case .connecting:
            guard canWrite, let s = socket else { return }
            if Socket.connectResult(s.fd) != 0 { fail(.connect); return }
            if let client = worker.tls {
                tls = client.session(fd: s.fd, serverName: worker.serverNames[Int(socketServerName)])
                state = .handshaking
                handshake()
            } else {
                // Counted once usable, so a dead target shows 0 opened next to its connect errors.
                worker.add(Counter.connections, 1)
                state = .writing
                send()
            }
        case .handshaking:
            handshake()
        case .writing:
            if canWrite || tls != nil { send() }
        case .reading:
            if canRead || tls != nil { readResponse() }
        case .idle, .waiting:
            if canRead { checkIdle() }
        case .done:
            break
        }
    }

    func handshake() {
        guard let t = tls else { return }
        switch t.handshake() {
        case .done:
            worker.add(Counter.connections, 1)  // a failed handshake is a connect error instead
            state = .writing
            send()
        case .wantRead, .wantWrite:
            return
        case .plainHTTP:
            worker.noteTLSFailure("the server is not speaking TLS")
            fail(.connect)
        case .failed(let why):
            worker.noteTLSFailure(why)
            fail(.connect)
        }
    }

    func send() {
        guard let s = socket else { return }
        while written < request.count {
            let rest = UnsafeRawBufferPointer(rebasing: request[written...])
            let r: IOResult
            if let t = tls { r = t.write(rest) } else { r = Socket.write(s.fd, rest) }
            switch r {
            case .bytes(let n):
                written &+= n
            case .wouldBlock:
                canWrite = false
                return
            case .eof:
                fail(.closed)
                return
            case .error:
                fail(.reset)
                return
            }
        }
        state = .reading
        if canRead || tls != nil { readResponse() }
    }

    func readResponse() {
        guard let s = socket else { return }
        while true {
            if inBuf.writableCount < 4096 { inBuf.reserve(4096) }
            let space = inBuf.writableCount
            switch receive(s.fd) {
            case .bytes(let n):
                worker.add(Counter.bytesRead, UInt64(n))
                // Edge-triggered: a short read drained the socket, so new bytes bring a new event
                // (saves the read that would only say EAGAIN). Not so for a FIN that came with
                // the same event (it brings no new one), nor for bytes OpenSSL holds: read on.
                if n < space && tls == nil && !peerClosed { canRead = false }
                if process() { return }
                if !canRead { return }
            case .wouldBlock:
                canRead = false
                return
            case .eof:
                canRead = false
                if phase == .untilClose { complete() } else { fail(.closed) }
                return
            case .error(let e):
                fail(e == ETIMEDOUT ? .timeout : .reset)
                return
            }
        }
    }

    @inline(__always)
    func receive(_ fd: Int32) -> IOResult {
        if let t = tls { return t.read(into: inBuf, minSpace: 4096) }
        return Socket.read(fd, into: inBuf, minSpace: 4096)
    }

    /// Parses what has arrived; true when this response ended (complete or failed).
    @inline(__always)
    func process() -> Bool {
        while true {
            switch phase {
            case .head:
                switch parser.parse(inBuf.readable, requestMethod: requestMethod, into: &head) {
                case .incomplete:
                    return false
                case .failed:
                    fail(.malformed)
                    return true
                case .complete:
                    inBuf.consume(head.headLength)
                    if head.status < 200 && head.status != 101 {
                        parser.reset()  // 1xx: the real response follows
                        continue
                    }
                    switch head.framing {
                    case .none:
                        complete()
                        return true
                    case .contentLength(let n):
                        remaining = n
                        phase = .length
                    case .chunked:
                        chunked.reset()
                        phase = .chunked
                    case .untilClose:
                        phase = .untilClose
                    }
                }
            case .length:
                let take = Swift.min(UInt64(inBuf.readableCount), remaining)
                inBuf.consume(Int(take))
                remaining &-= take
                if remaining == 0 { complete(); return true }
                return false
            case .chunked:
                switch chunked.consume(inBuf.readable) {
                case .success(let k):
                    inBuf.consume(k)
                    if chunked.isComplete { complete(); return true }
                    return false
                case .failure:
                    fail(.malformed)
                    return true
                }
            case .untilClose:
                inBuf.clear()
                return false
            }
        }
    }

    /// A whole response arrived: record it, then go again.
    func complete() {
        let latency = portico_now_ns() &- startNanos
        worker.record(latency: latency)
        worker.count(status: head.status)
        answered = true
        let keep = head.keepAlive && !head.upgrade && phase != .untilClose && inBuf.isEmpty
            && !worker.newConnectionPerRequest
        resetResponse()
        if keep, let s = socket {
            s.cancelTimer()
            state = .idle
        } else {
            closeSocket()
        }
        startNext()
    }

    /// The attempt failed: count it, drop the connection, and go again (after a short back-off
    /// when the connect itself failed, so a dead target is not hammered in a busy loop).
    func fail(_ kind: ErrorKind) {
        worker.count(error: kind)
        closeSocket()
        resetResponse()
        if worker.stopping { return }
        if kind == .connect {
            state = .waiting
            let retry = portico_now_ns() &+ LoadConnection.connectBackoff
            worker.pacer.schedule(index, at: Swift.max(retry, nextIntended))
        } else {
            startNext()
        }
    }

    /// Bytes or a close on a connection with no request in flight: the server closed it (idle
    /// timeout); reconnect when the next request is due.
    func checkIdle() {
        guard let s = socket else { return }
        if receive(s.fd) == .wouldBlock { canRead = false; return }
        closeSocket()
    }

    func resetResponse() {
        parser.reset()
        phase = .head
        remaining = 0
    }

    func closeSocket() {
        if let s = socket {
            worker.loop.close(s)
            socket = nil
        }
        tls = nil
        canRead = false
        canWrite = false
        peerClosed = false
        inBuf.clear()
    }

    /// End of the run: drop the connection (responses in flight are not counted).
    func shutdown() {
        closeSocket()
        state = .done
    }
}
