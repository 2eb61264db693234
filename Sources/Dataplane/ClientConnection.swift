import CSystem
import HTTP1
import Reactor
import TLS
#if canImport(Glibc)
import Glibc
#endif

/// One client connection and the exchange in progress on it. The life of a request, in order:
///
/// 1. `readHead`      — read until the request head parses (header timeout, limits → 4xx).
/// 2. `beginExchange` — body limits, route (404), backend with endpoints (503), affinity key.
/// 3. `attempt`       — pick an endpoint, take a pooled keep-alive connection or connect.
/// 4. `pumpRequest`   — write the rewritten head, then stream the body (Content-Length or
///                      chunked, passed through as validated) with backpressure.
/// 5. `pumpResponse`  — parse the response head (1xx forwarded), rewrite it, stream the body.
/// 6. `finishExchange`— return the upstream to its pool, count, log, and go back to 1 for the
///                      next (possibly pipelined) request; or close.
///
/// Failures before any response byte reached the client become a proxy response (502/503/504),
/// after one retry on another endpoint for idempotent bodiless requests. Both directions pass
/// bytes straight from one socket's read buffer to the other socket (writev with the generated
/// head), so a body is never copied and a slow reader stops reading on the other side.
final class ClientConnection: Channel {
    enum State { case handshaking, idle, readingHead, proxying, responding, lingering, tunnel }

    unowned(unsafe) let worker: Worker
    let peer: SocketAddress?
    var slot = -1
    var state: State = .idle
    var canRead = false
    var canWrite = true
    var peerClosed = false
    /// Bytes from the client; given back to the worker's pool while the connection is idle.
    var inBuf: Buffer?
    /// Bytes the proxy generated for the client (response heads, its own responses).
    let out = Buffer(capacity: 512)
    /// The TLS session of an https connection (nil for plain HTTP).
    private(set) var tls: TLSSession?
    private let isTLS: Bool
    private var parser: RequestParser
    private var head = RequestHead()
    private let peerIP: [UInt8]
    private let peerHash: UInt64

    // The exchange in progress.
    private var upstream: UpstreamConnection?
    private var backendState: BackendState?
    private var match = RouteMatch.notFound
    private var tableGeneration: UInt64 = 0
    private var endpointIndex = -1
    private var tries = 0
    private var affinityKey: UInt64? = nil
    private var setAffinityCookie = false
    /// Strict-Transport-Security for this response (https hosts with the annotation).
    private var hsts: (maxAge: Int, includeSubdomains: Bool)? = nil
    private var retainedHead = 0
    private var reqChunked: ChunkedDecoder
    private var reqRemaining: UInt64 = 0
    private var reqIsChunked = false
    private var reqBodyDone = true
    private var reqForwardable = 0
    private var requestSent = false
    private var respParser = ResponseParser()
    private var respHead = ResponseHead()
    private var respHeadDone = false
    private var respChunked: ChunkedDecoder
    private var respRemaining: UInt64 = 0
    private var respFraming: BodyFraming = .none
    private var respForwardable = 0
    private var respDone = false
    private var responseStarted = false
    private var upstreamEOF = false
    private var interimCount = 0
    private var keepAliveAfter = true
    private var closeAfterResponse = false
    private var status = 0
    private var startNanos: UInt64 = 0
    private var upstreamStartNanos: UInt64 = 0
    private var upstreamNanos: UInt64? = nil
    private var bytesIn: UInt64 = 0
    private var bytesOut: UInt64 = 0
    private var method: HTTPMethod = .get
    private var clientMinor: UInt8 = 1
    /// Method, host, target and request id of the current request, for the access log.
    private let logFields = Buffer(capacity: 256)
    private var logMethod = 0..<0, logHost = 0..<0, logTarget = 0..<0, logRequestID = 0..<0
    /// After a 101: the tunnel ends at the first end of file from either side.
    private var tunnel = ByteTunnel(onEndOfFile: .end)

    init(fd: Int32, peer: SocketAddress?, worker: Worker, tls: TLSServerContext? = nil) {
        self.worker = worker
        self.peer = peer
        self.isTLS = tls != nil
        self.tls = tls.map { TLSSession(server: $0, fd: fd) }
        self.parser = RequestParser(limits: worker.config.limits)
        self.reqChunked = ChunkedDecoder(maxExtension: worker.config.limits.maxChunkExtension)
        self.respChunked = ChunkedDecoder(maxExtension: worker.config.limits.maxChunkExtension)
        if let p = peer {
            peerIP = Array(p.ipString.utf8)
            peerHash = Hashing.hash64(p.ipBytes)
        } else {
            peerIP = Array("unknown".utf8)
            peerHash = 0
        }
        super.init(fd: fd)
    }

    var isIdle: Bool { state == .idle && (inBuf?.isEmpty ?? true) }

    func start() {
        if tls != nil {
            // The handshake has the header timeout: a client that stalls in it is dropped.
            state = .handshaking
            worker.headerTimer.arm(self)
        } else {
            worker.keepaliveTimer.arm(self)
        }
    }

    // MARK: transport (plain or TLS; one branch, no existential)

    @inline(__always) private func clientRead(_ buf: Buffer, minSpace: Int) -> IOResult {
        transportRead(into: buf, minSpace: minSpace)
    }

    @inline(__always) private func clientWrite(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> IOResult {
        transportWrite(a, b)
    }

    @inline(__always) private func clientWrite(_ a: UnsafeRawBufferPointer) -> IOResult {
        if let t = tls { return t.write(a) }
        return Socket.write(fd, a)
    }

    /// A read that filled less than the space offered drained a plain socket; with TLS, the
    /// socket is drained when OpenSSL's own last read(2) was short and it holds no further
    /// record (`TLSSession.drained`). Either way the next edge-triggered event resumes reading.
    @inline(__always) private func drainedAfterShortRead(_ n: Int, _ space: Int) -> Bool {
        if let t = tls { return t.drained }
        return n < space
    }

    private func continueHandshake() -> Bool {
        guard let t = tls else { state = .idle; return true }
        switch t.handshake() {
        case .done:
            worker.log.debug("\(peerText): TLS \(t.protocolVersion) handshake done, resumed: \(t.isResumed), SNI: \(t.serverName ?? "-")")
            state = .idle
            worker.keepaliveTimer.arm(self)
            return true
        case .wantRead, .wantWrite:
            return false
        case .plainHTTP:
            // As nginx: answer in plain text on the TLS port, then close.
            tls = nil
            state = .readingHead
            worker.log.info("\(peerText): plain HTTP request on the TLS port")
            respondError(400, "The plain HTTP request was sent to HTTPS port", close: true)
            return true
        case .failed(let reason):
            worker.log.info("\(peerText): TLS handshake failed: \(reason)")
            close()
            return false
        }
    }

    // MARK: events

    override func handleEvent(_ events: UInt32) {
        if events & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 { canRead = true }
        if events & EPOLLRDHUP.rawValue != 0 { peerClosed = true }
        if events & (EPOLLOUT.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 { canWrite = true }
        if let t = tls {
            if state == .handshaking {
                // The handshake reads and writes in turns of its own.
                canRead = true
                canWrite = true
            } else {
                // OpenSSL may need to write to read (answering a KeyUpdate) or read to write:
                // only then does the other direction's event resume it. Setting both on every
                // event, as before, cost a read(2) returning EAGAIN on most requests.
                if events & EPOLLOUT.rawValue != 0 && t.readWantsWrite { canRead = true }
                if events & EPOLLIN.rawValue != 0 && t.writeWantsRead { canWrite = true }
            }
        }
        drive()
    }

    /// Makes all the progress possible now. Loops (rather than recursing) so that a buffer of
    /// pipelined requests is worked through one exchange after another.
    func drive() {
        while !isClosed {
            switch state {
            case .handshaking:
                if !continueHandshake() { return }
            case .idle, .readingHead:
                if !readHead() { return }
            case .proxying:
                let before = exchangeSerial
                pumpResponse()
                if isClosed || state != .proxying || exchangeSerial != before { continue }
                pumpRequest()
                if isClosed || state != .proxying || exchangeSerial != before { continue }
                return
            case .responding:
                if !flushOut() { return }
                endExchange()
            case .lingering:
                linger()
                return
            case .tunnel:
                pumpTunnel()
                return
            }
        }
    }

    private var exchangeSerial: UInt64 = 0

    override func handleTimeout() {
        switch state {
        case .idle, .lingering, .tunnel, .handshaking:
            if state == .handshaking { worker.log.info("\(peerText): TLS handshake timed out") }
            close()
        case .readingHead:
            respondError(408, "request header timeout", close: true)
            drive()
        case .proxying:
            if !reqBodyDone && !responseStarted && canWrite {
                abortUpstream()
                respondError(408, "request body timeout", close: true)
                drive()
            } else {
                worker.log.info("closing \(peerText): client stopped reading the response")
                abortUpstream()
                close()
            }
        case .responding:
            close()
        }
    }

    // MARK: 1. request head

    /// Returns true when the state changed and `drive` should go on.
    private func readHead() -> Bool {
        while true {
            if let buf = inBuf, buf.readableCount > 0 {
                if state == .idle {
                    state = .readingHead
                    worker.headerTimer.arm(self)
                }
                switch parser.parse(buf.readable, into: &head) {
                case .complete:
                    beginExchange()
                    return true
                case .failed(let failure):
                    worker.log.info("\(peerText): \(failure.status) \(failure.reason)")
                    respondError(failure.status, failure.reason.description, close: true)
                    return true
                case .incomplete:
                    break
                }
            }
            guard canRead else {
                if peerClosed { close(); return false }
                return false
            }
            if inBuf == nil { inBuf = worker.pool.take() }
            let buf = inBuf!
            let space = max(buf.writableCount, 4096)
            switch clientRead(buf, minSpace: 4096) {
            case .bytes(let n):
                if drainedAfterShortRead(n, space) { canRead = false }
            case .wouldBlock:
                canRead = false
                if state == .idle { releaseInBuffer() }
                if peerClosed { close() }
                return false
            case .eof, .error:
                close()
                return false
            }
        }
    }

    // MARK: 2. route

    private func beginExchange() {
        exchangeSerial &+= 1
        cancelTimer()
        let buf = inBuf!
        let bytes = buf.readable
        state = .proxying
        startNanos = worker.loop.now
        status = 0; bytesIn = UInt64(head.headLength); bytesOut = 0
        tries = 0; endpointIndex = -1; upstreamNanos = nil
        responseStarted = false; respDone = false; respHeadDone = false; upstreamEOF = false
        requestSent = false; interimCount = 0; closeAfterResponse = false
        setAffinityCookie = false; affinityKey = nil
        method = head.method
        clientMinor = head.versionMinor
        keepAliveAfter = head.keepAlive && !worker.draining
        tableGeneration = worker.table.generation
        captureLogFields(bytes)
        // The head stays at the front of the buffer until it is forwarded or answered; a bodiless
        // request keeps it until the response starts, so a failed first try can be sent again.
        retainedHead = head.headLength

        // Body framing and its limit.
        reqForwardable = 0
        reqIsChunked = false
        switch head.framing {
        case .none, .untilClose:
            reqBodyDone = true
        case .contentLength(let n):
            if worker.config.maxBodySize > 0 && n > worker.config.maxBodySize {
                respondError(413, "request body larger than \(worker.config.maxBodySize) bytes", close: true)
                return
            }
            reqRemaining = n
            reqBodyDone = n == 0
        case .chunked:
            reqIsChunked = true
            reqChunked.reset()
            reqBodyDone = false
        }

        // Route.
        let hostBytes = head.host.map { UnsafeRawBufferPointer(rebasing: bytes[$0]) } ?? UnsafeRawBufferPointer(start: nil, count: 0)
        hsts = nil
        if worker.httpsPort != 0, let h = head.host {
            let policy = worker.table.tlsPolicy(host: hostBytes)
            if !isTLS && policy.redirectToHTTPS {
                redirectToHTTPS(bytes, host: h)
                return
            }
            if isTLS, let age = policy.hstsMaxAge { hsts = (age, policy.hstsIncludeSubdomains) }
        }
        let pathBytes = UnsafeRawBufferPointer(rebasing: bytes[head.path])
        match = worker.table.route(host: hostBytes, path: pathBytes)
        guard match.isFound else {
            respondError(404, "no route for this host and path", close: !reqBodyDone)
            return
        }
        let state = worker.backendState(match.backend)
        backendState = state
        if let e = state.tlsClientError {
            respondError(502, "cannot speak TLS to \(state.backend.label): \(e)", close: !reqBodyDone)
            return
        }
        guard !state.backend.endpoints.isEmpty else {
            respondError(503, "no endpoints available for service \(state.backend.namespace)/\(state.backend.service)", close: !reqBodyDone)
            return
        }
        switch state.backend.affinity {
        case .none: break
        case .clientIP: affinityKey = peerHash
        case .cookie(let name, _):
            if let value = cookieValue(named: name, in: bytes) {
                affinityKey = Hashing.hash64(UnsafeRawBufferPointer(rebasing: bytes[value]))
            } else {
                // A fresh key: the request id is unique and random enough to spread clients.
                affinityKey = Hashing.hash64(UnsafeRawBufferPointer(rebasing: logFields.readable[logRequestID]))
                setAffinityCookie = true
            }
        }

        attempt()
    }

    private func captureLogFields(_ bytes: UnsafeRawBufferPointer) {
        logFields.clear()
        logFields.append(bytes, head.methodRange)
        logMethod = 0..<logFields.readableCount
        var start = logFields.readableCount
        if let h = head.host { logFields.append(bytes, h) }
        logHost = start..<logFields.readableCount
        start = logFields.readableCount
        logFields.append(bytes, head.target)
        logTarget = start..<logFields.readableCount
        start = logFields.readableCount
        if let f = head.fields.first(where: { $0.kind == .xRequestID }), f.value.count > 0, f.value.count <= 200 {
            logFields.append(bytes, f.value)
        } else {
            worker.nextRequestID(into: logFields)
        }
        logRequestID = start..<logFields.readableCount
    }

    /// The value range of cookie `name` in the Cookie fields, if present.
    private func cookieValue(named name: String, in bytes: UnsafeRawBufferPointer) -> Range<Int>? {
        var name = name
        return name.withUTF8 { n -> Range<Int>? in
            for f in head.fields where f.kind == .cookie {
                var i = f.value.lowerBound
                let end = f.value.upperBound
                while i < end {
                    while i < end && (bytes[i] == 0x20 || bytes[i] == 0x3B) { i += 1 }
                    var j = i
                    while j < end && bytes[j] != 0x3B { j += 1 }
                    // pair is i..<j
                    if j - i > n.count && bytes[i + n.count] == 0x3D
                        && memcmp(bytes.baseAddress! + i, n.baseAddress!, n.count) == 0 {
                        return (i + n.count + 1)..<j
                    }
                    i = j + 1
                }
            }
            return nil
        }
    }

    // MARK: 3. upstream attempt

    private func attempt() {
        guard let state = backendState else { return }
        tries += 1
        guard let ep = state.picker.pick(hashKey: affinityKey, now: worker.loop.now, excluding: endpointIndex) else {
            respondError(503, "no endpoints available", close: !reqBodyDone)
            return
        }
        endpointIndex = ep
        state.picker.requestStarted(ep)
        upstreamStartNanos = worker.loop.now
        let up: UpstreamConnection
        // A backend replaced by a newer RouteTable (a retry after a swap) has no pool any more.
        if !state.retired, let pooled = state.idle[ep].popLast() {
            pooled.acquire(owner: self)
            up = pooled
            worker.stats.recordUpstreamConnect(reused: true)
        } else {
            let fd: Int32
            do {
                fd = try worker.connectUpstream(to: state.backend.endpoints[ep].address)
            } catch let e as SocketError where e.errno == EMFILE || e.errno == ENFILE {
                // The proxy's own shortage, not the endpoint's: no ejection, no retry elsewhere.
                state.picker.requestFinished(ep)
                worker.enterDescriptorShortage("\(e)")
                respondError(503, "proxy out of file descriptors", close: true)
                return
            } catch let e as SocketError {
                let fresh = UpstreamConnection(fd: -1, worker: worker, backendState: state, endpointIndex: ep)
                upstream = fresh
                upstreamFailed(fresh, reason: .connect(e.errno))
                return
            } catch { return }
            up = UpstreamConnection(fd: fd, worker: worker, backendState: state, endpointIndex: ep)
            up.owner = self
            worker.loop.register(up)
            worker.connectTimer.arm(up)
            worker.stats.recordUpstreamConnect(reused: false)
        }
        upstream = up
        // Per-try state: a retry sends the whole request again and reads a fresh response.
        requestSent = false
        respParser.reset()
        respHeadDone = false
        respDone = false
        respForwardable = 0
        upstreamEOF = false
        interimCount = 0
        writeRequestHead(into: up.out)
        // The head may already have carried a body that broke a limit: then the exchange is over.
        guard upstream === up else { return }
        if up.connected {
            worker.upstreamTimer.arm(up)
            pumpRequest()
        }
    }

    func upstreamConnected(_ up: UpstreamConnection) {
        worker.upstreamTimer.arm(up)
        drive()
    }

    func upstreamReady(_ up: UpstreamConnection) {
        guard up === upstream else { return }
        drive()
    }

    func upstreamTimedOut(_ up: UpstreamConnection) {
        guard up === upstream else { return }
        upstreamFailed(up, reason: up.connected ? .timeout : .connectTimeout)
        drive()
    }

    /// A failed attempt: count it against the endpoint, retry when that is safe, else answer.
    func upstreamFailed(_ up: UpstreamConnection, reason: UpstreamFailure) {
        guard up === upstream, let state = backendState else { return }
        let endpoint = state.backend.endpoints[up.endpointIndex]
        state.picker.requestFinished(up.endpointIndex)
        state.reportFailure(up.endpointIndex, on: worker)
        let wasReused = up.reused
        upstream = nil
        if up.fd >= 0 { up.closeIdle() }
        // Retry only what cannot have been processed twice: an idempotent, bodiless request
        // whose try failed to connect or was cut off before any response byte.
        var safeReason = true
        switch reason {
        case .timeout, .invalidResponse: safeReason = false
        default: break
        }
        let retryable = !responseStarted && retainedHead > 0 && method.isIdempotent && safeReason
        if retryable && (tries < worker.config.tries || (wasReused && tries <= worker.config.tries)) {
            worker.log.info("upstream \(endpoint.name) (\(state.backend.label)): \(reason.text); retrying \(methodText) \(targetText)")
            attempt()
            return
        }
        worker.log.warning("upstream \(endpoint.name) (\(state.backend.label)): \(reason.text) for \(methodText) \(hostText)\(targetText)")
        if responseStarted {
            upstreamNanos = worker.loop.now &- upstreamStartNanos
            record(status: status)
            close()
        } else {
            respondError(reason.status, reason.text, close: !reqBodyDone)
        }
    }

    private func abortUpstream() {
        guard let up = upstream else { return }
        upstream = nil
        backendState?.picker.requestFinished(up.endpointIndex)
        up.closeIdle()
    }

    // MARK: 4. request to the upstream

    private func writeRequestHead(into o: Buffer) {
        let bytes = inBuf!.readable
        o.clear()
        o.append(bytes, head.methodRange)
        o.append(byte: 0x20)
        if head.target.lowerBound == head.path.lowerBound || head.target.count == 1 {
            o.append(bytes, head.target)  // origin-form (or '*')
        } else {
            // absolute-form becomes origin-form towards the upstream
            if head.path.isEmpty { o.append(byte: 0x2F) } else { o.append(bytes, head.path) }
            if !head.query.isEmpty { o.append(byte: 0x3F); o.append(bytes, head.query) }
        }
        o.append(" HTTP/1.1\r\n")
        var sawHost = false
        var sawRequestID = false
        var sawXFF = false
        var upgradeField: HeaderField? = nil
        var run = 0..<0
        for f in head.fields {
            if f.hopByHop {
                if f.kind == .upgrade { upgradeField = f }
                continue
            }
            switch f.kind {
            case .contentLength, .xForwardedProto, .xForwardedHost, .xForwardedPort, .xRealIP:
                continue
            case .xForwardedFor:
                sawXFF = true
                continue
            case .host:
                sawHost = true
            case .xRequestID:
                sawRequestID = true
            default:
                break
            }
            FieldCopy.add(f, bytes, o, &run)
        }
        FieldCopy.flush(bytes, o, &run)
        if !sawHost {
            o.append("Host: ")
            if let h = head.host, !h.isEmpty { o.append(bytes, h) } else { o.append(string: backendState!.backend.endpoints[max(endpointIndex, 0)].address.description) }
            o.append("\r\n")
        }
        switch head.framing {
        case .contentLength(let n):
            o.append("Content-Length: "); o.appendDecimal(n); o.append("\r\n")
        case .chunked:
            ClientConnection.appendTransferEncoding(o, bytes, head.fields, chunked: true)
        default:
            break
        }
        if head.upgrade, let u = upgradeField {
            o.append("Connection: upgrade\r\nUpgrade: ")
            o.append(bytes, u.value)
            o.append("\r\n")
        }
        o.append("X-Forwarded-For: ")
        if sawXFF {
            for f in head.fields where f.kind == .xForwardedFor && !f.value.isEmpty {
                o.append(bytes, f.value)
                o.append(", ")
            }
        }
        o.append(peerIP)
        o.append(isTLS ? "\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: " : "\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: ")
        if let h = head.host { o.append(bytes, h) }
        o.append("\r\nX-Forwarded-Port: ")
        o.append(isTLS ? worker.httpsPortText : worker.listenPortText)
        o.append("\r\nX-Real-IP: ")
        o.append(peerIP)
        o.append("\r\n")
        if !sawRequestID {
            o.append("X-Request-Id: ")
            o.append(UnsafeRawBufferPointer(rebasing: logFields.readable[logRequestID]))
            o.append("\r\n")
        }
        o.append("\r\n")
        if !reqBodyDone {
            // A request with a body is never retried, so its head is not needed again.
            inBuf!.consume(retainedHead)
            retainedHead = 0
            accountRequestBody()
        }
    }

    /// Counts newly read body bytes as ready to forward, validating chunked framing.
    private func accountRequestBody() {
        guard !reqBodyDone, let buf = inBuf else { return }
        let available = buf.readableCount - reqForwardable
        guard available > 0 else { return }
        if reqIsChunked {
            let slice = UnsafeRawBufferPointer(start: buf.readable.baseAddress! + reqForwardable, count: available)
            switch reqChunked.consume(slice) {
            case .success(let n):
                reqForwardable += n
                if reqChunked.isComplete { reqBodyDone = true }
                let limit = worker.config.maxBodySize
                if limit > 0 && reqChunked.payloadBytes > limit {
                    failRequestBody(413, "request body larger than \(limit) bytes")
                }
            case .failure(let f):
                failRequestBody(f.status, f.reason.description)
            }
        } else {
            let take = Int(min(UInt64(available), reqRemaining))
            reqForwardable += take
            reqRemaining -= UInt64(take)
            if reqRemaining == 0 { reqBodyDone = true }
        }
    }

    private func failRequestBody(_ code: Int, _ reason: String) {
        worker.log.info("\(peerText): \(code) \(reason)")
        abortUpstream()
        reqForwardable = 0
        if responseStarted { close() } else { respondError(code, reason, close: true) }
    }

    private func pumpRequest() {
        guard let up = upstream, up.connected, !requestSent, state == .proxying else { return }
        while true {
            guard let buf = inBuf else { return }
            if up.out.readableCount > 0 || reqForwardable > 0 {
                guard up.canWrite else { return }
                let a = up.out.readable
                let b = UnsafeRawBufferPointer(start: buf.readable.baseAddress, count: reqForwardable)
                switch up.write(a, b) {
                case .bytes(let n):
                    let fromA = min(n, a.count)
                    up.out.consume(fromA)
                    let fromB = n - fromA
                    if fromB > 0 { buf.consume(fromB); reqForwardable -= fromB }
                    // A short plain write means the socket is full (an EPOLLOUT edge follows); a
                    // short TLS write may just be one record, so TLS writes go on until .wouldBlock.
                    if n < a.count + b.count {
                        if up.tls == nil { up.canWrite = false; return }
                        continue
                    }
                case .wouldBlock:
                    up.canWrite = false
                    return
                case .error(let e):
                    upstreamFailed(up, reason: .reset(e))
                    return
                case .eof:
                    return
                }
            }
            if reqBodyDone {
                requestSent = true
                if state == .proxying && !respHeadDone { worker.upstreamTimer.arm(up) }
                return
            }
            guard canRead else {
                worker.bodyTimer.arm(self)
                return
            }
            let space = max(buf.writableCount, 16384)
            switch clientRead(buf, minSpace: 16384) {
            case .bytes(let n):
                bytesIn &+= UInt64(n)
                if drainedAfterShortRead(n, space) { canRead = false }
                if hasTimer { cancelTimer() }
                accountRequestBody()
                if state != .proxying || upstream == nil { return }
            case .wouldBlock:
                canRead = false
                worker.bodyTimer.arm(self)
                return
            case .eof, .error:
                worker.log.info("\(peerText): client closed the connection during the request body")
                abortUpstream()
                close()
                return
            }
        }
    }

    // MARK: 5. response to the client

    private func pumpResponse() {
        guard let up = upstream, up.connected else {
            return
        }
        while true {
            if out.readableCount > 0 || respForwardable > 0 {
                guard canWrite else { worker.sendTimer.arm(self); return }
                let a = out.readable
                let b = UnsafeRawBufferPointer(start: up.inBuf.readable.baseAddress, count: respForwardable)
                switch clientWrite(a, b) {
                case .bytes(let n):
                    bytesOut &+= UInt64(n)
                    let fromA = min(n, a.count)
                    out.consume(fromA)
                    let fromB = n - fromA
                    if fromB > 0 { up.inBuf.consume(fromB); respForwardable -= fromB }
                    if n < a.count + b.count {
                        if tls == nil { canWrite = false; worker.sendTimer.arm(self); return }
                        continue  // TLS took one record: write the rest before anything else
                    }
                    if isTimer(on: worker.sendTimer) { cancelTimer() }
                case .wouldBlock:
                    canWrite = false
                    worker.sendTimer.arm(self)
                    return
                case .error, .eof:
                    abortUpstream()
                    record(status: status)
                    close()
                    return
                }
            }
            if respDone {
                finishExchange()
                return
            }
            guard up.canRead else { return }
            let space = max(up.inBuf.writableCount, 16384)
            switch up.read(minSpace: 16384) {
            case .bytes(let n):
                if n < space && up.tls == nil && !up.peerClosed { up.canRead = false }
                worker.upstreamTimer.arm(up)
                if !respHeadDone {
                    if !parseResponseHead(up) { return }
                } else {
                    accountResponseBody(up)
                }
                if state != .proxying { return }
            case .wouldBlock:
                up.canRead = false
                return
            case .eof:
                up.canRead = false
                if respHeadDone && respFraming == .untilClose {
                    respDone = true
                    upstreamEOF = true
                    continue
                }
                upstreamFailed(up, reason: .closedEarly)
                return
            case .error(let e):
                upstreamFailed(up, reason: .reset(e))
                return
            }
        }
    }

    /// Returns false when the exchange ended (an error was answered).
    private func parseResponseHead(_ up: UpstreamConnection) -> Bool {
        while true {
            switch respParser.parse(up.inBuf.readable, requestMethod: method, into: &respHead) {
            case .incomplete:
                return true
            case .failed(let f):
                worker.log.warning("upstream \(up.endpoint.name): \(f.reason)")
                upstreamFailed(up, reason: .invalidResponse)
                return false
            case .complete:
                break
            }
            let bytes = up.inBuf.readable
            if respHead.status < 200 && respHead.status != 101 {
                interimCount += 1
                if interimCount > 8 {
                    upstreamFailed(up, reason: .invalidResponse)
                    return false
                }
                writeResponseHead(bytes, interim: true)
                up.inBuf.consume(respHead.headLength)
                respParser.reset()
                responseStarted = true
                if up.inBuf.isEmpty { return true }
                continue
            }
            if respHead.status == 101 && !head.upgrade {
                upstreamFailed(up, reason: .invalidResponse)
                return false
            }
            // The final response.
            status = respHead.status
            respHeadDone = true
            upstreamNanos = worker.loop.now &- upstreamStartNanos
            if retainedHead > 0, let buf = inBuf {
                buf.consume(retainedHead)
                retainedHead = 0
            }
            if !reqBodyDone {
                // An early response: the rest of the request body will not be sent, so neither
                // connection can be reused.
                closeAfterResponse = true
            }
            respFraming = respHead.framing
            if respFraming == .untilClose { closeAfterResponse = true }
            if respHead.upgrade { closeAfterResponse = false }
            keepAliveAfter = keepAliveAfter && !closeAfterResponse
            writeResponseHead(bytes, interim: false)
            up.inBuf.consume(respHead.headLength)
            responseStarted = true
            if let state = backendState {
                if status >= 500 {
                    state.reportFailure(up.endpointIndex, on: worker)
                } else {
                    state.picker.reportSuccess(up.endpointIndex)
                }
            }
            if respHead.upgrade {
                state = .tunnel
                cancelTimer()
                up.cancelTimer()
                return false
            }
            switch respFraming {
            case .none:
                respDone = true
            case .contentLength(let n):
                respRemaining = n
                respDone = n == 0
            case .chunked:
                respChunked.reset()
            case .untilClose:
                break
            }
            accountResponseBody(up)
            return true
        }
    }

    /// Transfer-Encoding with the codings as received (the parsers checked the list: chunked, if
    /// present, is last and once). The body passes through undecoded, so a coding before chunked
    /// (gzip, chunked) must reach the other side too (RFC 9112 §6.1); chunked itself is re-sent
    /// lower-case, so no recipient can miss it. Nothing when there was no coding.
    static func appendTransferEncoding(_ o: Buffer, _ bytes: UnsafeRawBufferPointer, _ fields: [HeaderField], chunked: Bool) {
        var last = -1
        for i in fields.indices where fields[i].kind == .transferEncoding && hasCoding(bytes, fields[i].value) { last = i }
        var wrote = false
        for i in fields.indices where fields[i].kind == .transferEncoding {
            var r = fields[i].value
            if chunked && i == last {
                // Drop the final element (chunked): back to the last comma, then past OWS and commas.
                var e = r.upperBound
                while e > r.lowerBound && bytes[e &- 1] != 0x2C { e &-= 1 }
                while e > r.lowerBound && (bytes[e &- 1] == 0x2C || bytes[e &- 1] == 0x20 || bytes[e &- 1] == 0x09) { e &-= 1 }
                r = r.lowerBound..<e
            }
            guard hasCoding(bytes, r) else { continue }
            o.append(wrote ? ", " : "Transfer-Encoding: ")
            o.append(bytes, r)
            wrote = true
        }
        if chunked { o.append(wrote ? ", chunked" : "Transfer-Encoding: chunked"); wrote = true }
        if wrote { o.append("\r\n") }
    }

    /// Whether a list holds anything but commas and whitespace.
    static func hasCoding(_ bytes: UnsafeRawBufferPointer, _ r: Range<Int>) -> Bool {
        for i in r where bytes[i] != 0x2C && bytes[i] != 0x20 && bytes[i] != 0x09 { return true }
        return false
    }

    private func writeResponseHead(_ bytes: UnsafeRawBufferPointer, interim: Bool) {
        out.append("HTTP/1.1 ")
        out.appendDecimal(UInt64(respHead.status))
        out.append(byte: 0x20)
        if respHead.reason.isEmpty { out.append(HTTPStatus.reasonPhrase(respHead.status)) } else { out.append(bytes, respHead.reason) }
        out.append("\r\n")
        var upgradeField: HeaderField? = nil
        var run = 0..<0
        for f in respHead.fields {
            if f.hopByHop {
                if f.kind == .upgrade { upgradeField = f }
                continue
            }
            if f.kind == .contentLength && respHead.framing == .chunked { continue }
            FieldCopy.add(f, bytes, out, &run)
        }
        FieldCopy.flush(bytes, out, &run)
        if !interim {
            if respHead.upgrade {
                out.append("Connection: upgrade\r\n")
                if let u = upgradeField { out.append("Upgrade: "); out.append(bytes, u.value); out.append("\r\n") }
            } else {
                if respHead.framing == .chunked || respHead.framing == .untilClose {
                    ClientConnection.appendTransferEncoding(out, bytes, respHead.fields, chunked: respHead.framing == .chunked)
                }
                if !keepAliveAfter {
                    out.append("Connection: close\r\n")
                } else if clientMinor == 0 {
                    out.append("Connection: keep-alive\r\n")
                }
            }
            if let h = hsts {
                out.append("Strict-Transport-Security: max-age=")
                out.appendDecimal(UInt64(h.maxAge))
                if h.includeSubdomains { out.append("; includeSubDomains") }
                out.append("\r\n")
            }
            if setAffinityCookie, case .cookie(let name, let maxAge) = backendState!.backend.affinity, let key = affinityKey {
                out.append("Set-Cookie: ")
                out.append(string: name)
                out.append(byte: 0x3D)
                out.appendHexFixed(key)
                out.append("; Path=/; HttpOnly")
                if maxAge > 0 { out.append("; Max-Age="); out.appendDecimal(UInt64(maxAge)) }
                out.append("\r\n")
            }
        }
        out.append("\r\n")
    }

    private func accountResponseBody(_ up: UpstreamConnection) {
        guard !respDone else { return }
        let available = up.inBuf.readableCount - respForwardable
        guard available > 0 else { return }
        switch respFraming {
        case .contentLength:
            let take = Int(min(UInt64(available), respRemaining))
            respForwardable += take
            respRemaining -= UInt64(take)
            if respRemaining == 0 { respDone = true }
        case .chunked:
            let slice = UnsafeRawBufferPointer(start: up.inBuf.readable.baseAddress! + respForwardable, count: available)
            switch respChunked.consume(slice) {
            case .success(let n):
                respForwardable += n
                if respChunked.isComplete { respDone = true }
            case .failure(let f):
                worker.log.warning("upstream \(up.endpoint.name): \(f.reason) in response body")
                // Part of the response is on its way: the only honest thing is to close.
                respForwardable = 0
                abortUpstream()
                record(status: status)
                close()
            }
        case .untilClose:
            respForwardable += available
        case .none:
            respDone = true
        }
    }

    // MARK: 6. end of the exchange

    private func finishExchange() {
        guard let up = upstream, let state = backendState else { return }
        upstream = nil
        up.cancelTimer()
        state.picker.requestFinished(up.endpointIndex)
        if requestSent && respHead.keepAlive && !upstreamEOF && !closeAfterResponse {
            up.release()
        } else {
            up.closeIdle()
        }
        record(status: status)
        endExchange()
    }

    /// After a response is completely written: next request, or close.
    private func endExchange() {
        if !keepAliveAfter || worker.draining {
            lingeringClose()
            return
        }
        state = .idle
        parser.reset()
        backendState = nil
        if let buf = inBuf, buf.isEmpty {
            releaseInBuffer()
        }
        worker.keepaliveTimer.arm(self)
    }

    private func record(status: Int) {
        let generation = worker.table.generation
        let ingress = generation == tableGeneration ? match.ingress : -1
        let backend = generation == tableGeneration ? match.backend : -1
        worker.stats.recordRequest(ingress: ingress, backend: backend, status: status,
                                   upstreamNanos: upstreamNanos, bytesIn: bytesIn, bytesOut: bytesOut)
        if let log = worker.accessLog {
            let upstreamName: String? = endpointIndex >= 0 ? backendState?.backend.endpoints[endpointIndex].name : nil
            let fields = logFields.readable
let ms = portico_wall_millis()
            log.append(AccessLogEntry(
                epochSeconds: ms / 1000, milliseconds: Int(ms % 1000), client: peer,
                method: UnsafeRawBufferPointer(rebasing: fields[logMethod]),
                target: UnsafeRawBufferPointer(rebasing: fields[logTarget]), versionMinor: clientMinor,
                host: UnsafeRawBufferPointer(rebasing: fields[logHost]), status: status, bytesSent: bytesOut,
                upstream: upstreamName, upstreamNanos: upstreamNanos, totalNanos: worker.loop.now &- startNanos,
                requestID: UnsafeRawBufferPointer(rebasing: fields[logRequestID])))
        }
    }

    // MARK: the proxy's own responses

    /// Queues a response the proxy writes itself (Date, Server, Content-Length, a short reason).
    func respondError(_ code: Int, _ reason: String, close: Bool) {
        respond(code, reason, close: close, extraHeaders: nil)
    }

    /// `308` to the same URL on https (ingress controllers' default for a host with TLS).
    private func redirectToHTTPS(_ bytes: UnsafeRawBufferPointer, host: Range<Int>) {
        var lines: [UInt8] = Array("Location: https://".utf8)
        // The host without its port (an IPv6 literal keeps its brackets).
        var end = host.upperBound
        if let colon = host.reversed().first(where: { bytes[$0] == 0x3A }),
           bytes[host.lowerBound] != 0x5B || (colon > host.lowerBound && bytes[colon - 1] == 0x5D) {
            end = colon
        }
        lines.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[host.lowerBound..<end]))
        if worker.httpsPort != 443 { lines.append(0x3A); lines.append(contentsOf: worker.httpsPortText) }
        if head.target.lowerBound == head.path.lowerBound {
            lines.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[head.target]))
        } else {
            if head.path.isEmpty { lines.append(0x2F) } else { lines.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[head.path])) }
            if !head.query.isEmpty { lines.append(0x3F); lines.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[head.query])) }
        }
        lines.append(contentsOf: Array("\r\n".utf8))
        respond(308, "redirecting to https", close: !reqBodyDone, extraHeaders: lines)
    }

    private func respond(_ code: Int, _ reason: String, close: Bool, extraHeaders: [UInt8]?) {
        abortUpstream()
        status = code
        out.clear()
        out.append("HTTP/1.1 ")
        out.appendDecimal(UInt64(code))
        out.append(byte: 0x20)
        out.append(HTTPStatus.reasonPhrase(code))
        out.append("\r\nDate: ")
        out.append(worker.currentDate())
        out.append("\r\nServer: ")
        out.append(worker.config.serverName)
        out.append("\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ")
        out.appendDecimal(UInt64(reason.utf8.count + 1))
        if close || !keepAliveAfter {
            out.append("\r\nConnection: close")
            keepAliveAfter = false
        }
        out.append("\r\n")
        if let extra = extraHeaders { out.append(extra) }
        out.append("\r\n")
        if method != .head || state == .readingHead {
            out.append(string: reason)
            out.append(byte: 0x0A)
        }
        if state == .readingHead {
            // The request never parsed: log what we know.
            logFields.clear(); logMethod = 0..<0; logHost = 0..<0; logTarget = 0..<0; logRequestID = 0..<0
            startNanos = worker.loop.now
            match = .notFound
            endpointIndex = -1
            backendState = nil
        }
        if retainedHead > 0, let buf = inBuf { buf.consume(retainedHead); retainedHead = 0 }
        if !reqBodyDone || close { keepAliveAfter = false }
        bytesOut = UInt64(out.readableCount)
        record(status: code)
        cancelTimer()
        state = .responding
    }

    /// Writes `out`; true when all of it went.
    private func flushOut() -> Bool {
        while out.readableCount > 0 {
            guard canWrite else { worker.sendTimer.arm(self); return false }
            switch clientWrite(out.readable) {
            case .bytes(let n):
                out.consume(n)
                if out.readableCount > 0 && tls == nil { canWrite = false }
            case .wouldBlock:
                canWrite = false
            case .error, .eof:
                close()
                return false
            }
        }
        if isTimer(on: worker.sendTimer) { cancelTimer() }
        if !keepAliveAfter {
            lingeringClose()
            return false
        }
        return true
    }

    /// The end of a connection after a complete response: close_notify on TLS (RFC 8446 §6.1: a
    /// client reading to EOF otherwise sees a truncation and drops its session), then half-close
    /// and drain what the client still sends, so the response is not lost to a reset (nginx's
    /// lingering close).
    private func lingeringClose() {
        tls?.shutdown()
        shutdown(fd, Int32(SHUT_WR))
        state = .lingering
        worker.lingerTimer.arm(self)
        linger()
    }

    private func linger() {
        guard let buf = inBuf ?? Optional(worker.pool.take()) else { return }
        inBuf = buf
        while canRead {
            buf.clear()
            switch Socket.read(fd, into: buf, minSpace: 4096) {  // raw: after close_notify only draining
            case .bytes: continue
            case .wouldBlock: canRead = false
            case .eof, .error: close(); return
            }
        }
    }

    // MARK: tunnel (after 101 Switching Protocols)

    private func pumpTunnel() {
        guard let up = upstream else { close(); return }
        if inBuf == nil { inBuf = worker.pool.take() }
        // `out` holds the 101 head: it reaches the client before the upstream's first bytes.
        if tunnel.pump(self, inBuf!, up, up.inBuf, headForA: out) { endTunnel() }
    }

    private func endTunnel() {
        if let up = upstream {
            upstream = nil
            backendState?.picker.requestFinished(up.endpointIndex)
            up.closeIdle()
        }
        close()
    }

    // MARK: closing

    private func releaseInBuffer() {
        if let b = inBuf { worker.pool.give(b); inBuf = nil }
    }

    func close() {
        guard !isClosed else { return }
        if let up = upstream {
            upstream = nil
            backendState?.picker.requestFinished(up.endpointIndex)
            up.closeIdle()
        }
        releaseInBuffer()
        worker.loop.close(self)
        worker.connectionClosed(self)
    }

    // MARK: text for logs (cold)

    private var peerText: String { peer?.description ?? "client" }
    private var methodText: String { String(decoding: UnsafeRawBufferPointer(rebasing: logFields.readable[logMethod]), as: UTF8.self) }
    private var hostText: String { String(decoding: UnsafeRawBufferPointer(rebasing: logFields.readable[logHost]), as: UTF8.self) }
    private var targetText: String { String(decoding: UnsafeRawBufferPointer(rebasing: logFields.readable[logTarget]), as: UTF8.self) }
}

/// The client end of an Upgrade tunnel: plain or TLS, through the same branch as HTTP.
extension ClientConnection: PlainOrTLSTunnelEnd {}

/// Copies forwarded field lines into a head being written. Lines that follow each other in the
/// received head and end in CRLF right after the value (no trailing whitespace) are copied as
/// one run, with one copy instead of two appends per field.
enum FieldCopy {
    @inline(__always)
    static func add(_ f: HeaderField, _ bytes: UnsafeRawBufferPointer, _ o: Buffer, _ run: inout Range<Int>) {
        let end = f.value.upperBound
        if end &+ 1 < bytes.count && bytes[end] == 0x0D && bytes[end &+ 1] == 0x0A {
            if !run.isEmpty && run.upperBound == f.name.lowerBound {
                run = run.lowerBound..<(end &+ 2)
                return
            }
            flush(bytes, o, &run)
            run = f.name.lowerBound..<(end &+ 2)
            return
        }
        flush(bytes, o, &run)
        o.append(bytes, f.name.lowerBound..<end)
        o.append("\r\n")
    }

    @inline(__always)
    static func flush(_ bytes: UnsafeRawBufferPointer, _ o: Buffer, _ run: inout Range<Int>) {
        if !run.isEmpty { o.append(bytes, run); run = 0..<0 }
    }
}
