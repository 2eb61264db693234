import CSystem
import HTTP1
import Reactor
#if canImport(Glibc)
import Glibc
#endif

/// A small HTTP/1.1 server on one event loop, for the built-in echo backend and the admin
/// listener: keep-alive, pipelining, Content-Length and chunked request bodies (counted, and
/// collected up to a limit), delayed answers, large generated bodies with backpressure, and a
/// WebSocket echo mode.
public final class HTTPServer: Channel {
    public typealias Handler = (ServerRequest) -> ServerReply
    let handler: Handler
    let collectLimit: Int
    public private(set) var boundAddress: SocketAddress
    let idleTimer: TimerQueue
    var peer = sockaddr_storage()
    let log: Log

    public init(loop: EventLoop, address: SocketAddress, collectLimit: Int = 1 << 20, name: String,
                handler: @escaping Handler) throws {
        self.handler = handler
        self.collectLimit = collectLimit
        self.log = Log(name)
        let fd = try Socket.listen(address, reusePort: false)
        boundAddress = Socket.localAddress(fd) ?? address
        idleTimer = loop.timerQueue(nanos: 120_000_000_000)
        super.init(fd: fd)
        loop.register(self, events: EPOLLIN.rawValue)
    }

    /// Out of descriptors, accepting stops for `retryNanos` (the backlog holds the clients) and
    /// the condition is logged once per episode, instead of once per failed accept.
    private lazy var retryQueue = loop!.timerQueue(nanos: 100_000_000)
    private var paused = false
    private var shortageLogged = false

    override public func handleEvent(_ events: UInt32) { acceptAll() }

    override public func handleTimeout() {
        paused = false
        acceptAll()
    }

    private func acceptAll() {
        while !paused && !isClosed {
            do {
                guard let cfd = try Socket.accept(fd, peer: &peer) else { return }
                if shortageLogged {
                    shortageLogged = false
                    log.info("accepting again")
                }
                Socket.setNoDelay(cfd)
                let address = withUnsafeBytes(of: &peer) { SocketAddress(storage: $0.baseAddress!, length: MemoryLayout<sockaddr_storage>.size) }
                let conn = ServerConnection(fd: cfd, server: self, peer: address)
                loop!.register(conn)
                idleTimer.arm(conn)
            } catch let e as SocketError where e.errno == EMFILE || e.errno == ENFILE || e.errno == ENOBUFS || e.errno == ENOMEM {
                if !shortageLogged {
                    shortageLogged = true
                    log.warning("out of file descriptors (\(e)): accepts wait until some are free")
                }
                paused = true
                retryQueue.arm(self)
                return
            } catch let e as SocketError where e.errno == ECONNABORTED || e.errno == EINTR || e.errno == EPROTO {
                continue
            } catch {
                log.warning("accept: \(error)")
                return
            }
        }
    }

    public func shutdown() {
        loop?.close(self)
    }
}

final class ServerConnection: Channel {
    unowned let server: HTTPServer
    let peer: SocketAddress?
    let inBuf = Buffer(capacity: 16384)
    let out = Buffer(capacity: 16384)
    // Generous limits: behind a proxy a request arrives with the proxy's fields added.
    var parser = RequestParser(limits: { var l = ParseLimits(); l.maxFields = 1000; l.maxHeadBytes = 256 * 1024; return l }())
    var head = RequestHead()
    var canRead = false
    var canWrite = true
    enum State { case head, body, waiting, writing, webSocket, streaming }
    var state: State = .head
    var request = ServerRequest()
    var chunked = ChunkedDecoder()
    var isChunked = false
    var remaining: UInt64 = 0
    var collecting = false
    var pendingPattern: UInt64 = 0
    var patternChunked = false
    var closeAfter = false
    var delayed: ServerResponse?
    var delayTimer: TimerQueue?
    var stream: ResponseStream?

    init(fd: Int32, server: HTTPServer, peer: SocketAddress?) {
        self.server = server
        self.peer = peer
        super.init(fd: fd)
    }

    override func handleEvent(_ events: UInt32) {
        if events & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 { canRead = true }
        if events & (EPOLLOUT.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 { canWrite = true }
        drive()
    }

    override func handleTimeout() {
        if state == .waiting, let r = delayed {
            delayed = nil
            send(r)
            drive()
        } else {
            finish()
        }
    }

    func finish() {
        loop?.close(self)
        if let s = stream { stream = nil; s.closed() }
    }

    func drive() {
        while !isClosed {
            switch state {
            case .head:
                if !inBuf.isEmpty {
                    switch parser.parse(inBuf.readable, into: &head) {
                    case .complete:
                        beginRequest()
                        continue
                    case .failed(let f):
                        closeAfter = true
                        send(.text(f.status, "\(f.reason)\n"))
                        continue
                    case .incomplete:
                        break
                    }
                }
                if !readMore() { return }
            case .body:
                consumeBody()
                if state == .body && !readMore() { return }
            case .waiting:
                return
            case .writing:
                if !flush() { return }
                if pendingPattern > 0 { continue }
                if closeAfter { finish(); return }
                state = .head
                parser.reset()
                server.idleTimer.arm(self)
            case .webSocket:
                webSocketEcho()
                return
            case .streaming:
                // Written by the ResponseStream; reading only notices the client going away.
                if !flush() { return }
                inBuf.consume(inBuf.readableCount)
                if !readMore() { return }
            }
        }
    }

    /// Reads what is available; false when nothing more can be read now.
    func readMore() -> Bool {
        guard canRead else { return false }
        inBuf.reserve(4096)
        switch Socket.read(fd, into: inBuf) {
        case .bytes: return true
        case .wouldBlock: canRead = false; return false
        case .eof, .error: finish(); return false
        }
    }

    func beginRequest() {
        let b = inBuf.readable
        func text(_ r: Range<Int>) -> String { String(decoding: UnsafeRawBufferPointer(rebasing: b[r]), as: UTF8.self) }
        var r = ServerRequest()
        r.method = text(head.methodRange)
        r.target = text(head.target)
        r.path = head.path.isEmpty ? "/" : text(head.path)
        r.query = text(head.query)
        r.host = head.host.map(text) ?? ""
        r.versionMinor = head.versionMinor
        r.headers = head.fields.map { (text($0.name), text($0.value)) }
        r.peer = peer
        request = r
        closeAfter = !head.keepAlive
        inBuf.consume(head.headLength)
        switch head.framing {
        case .contentLength(let n):
            remaining = n; isChunked = false
            collecting = n <= UInt64(server.collectLimit)
        case .chunked:
            isChunked = true; chunked.reset(); collecting = false
        default:
            remaining = 0; isChunked = false; collecting = false
        }
        if head.expectContinue && (isChunked || remaining > 0) {
            out.append("HTTP/1.1 100 Continue\r\n\r\n")
        }
        state = .body
    }

    func consumeBody() {
        if isChunked {
            switch chunked.consume(inBuf.readable) {
            case .success(let n):
                inBuf.consume(n)
                request.bodyLength = chunked.payloadBytes
                if chunked.isComplete { respond() }
            case .failure(let f):
                closeAfter = true
                send(.text(f.status, "\(f.reason)\n"))
            }
        } else {
            let take = Int(min(UInt64(inBuf.readableCount), remaining))
            if take > 0 {
                if collecting { request.body.append(contentsOf: UnsafeRawBufferPointer(rebasing: inBuf.readable[0..<take])) }
                inBuf.consume(take)
                remaining -= UInt64(take)
                request.bodyLength += UInt64(take)
            }
            if remaining == 0 { respond() }
        }
        // Write a pending 100 Continue.
        if state == .body && !out.isEmpty { _ = flush() }
    }

    func respond() {
        switch server.handler(request) {
        case .now(let r):
            send(r)
        case .after(let nanos, let r):
            delayed = r
            state = .waiting
            let q = loop!.timerQueue(nanos: nanos)
            q.arm(self)
        case .stream(let r, let start):
            out.append(string: "HTTP/1.1 \(r.status) \(HTTPStatus.reasonPhrase(r.status))\r\n")
            for (n, v) in r.headers { out.append(string: "\(n): \(v)\r\n") }
            out.append("Transfer-Encoding: chunked\r\n\r\n")
            cancelTimer()
            state = .streaming
            let s = ResponseStream(connection: self)
            stream = s
            start(s)
        case .webSocketEcho(let accept):
            out.append(string: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: \(accept)\r\n\r\n")
            cancelTimer()
            state = .webSocket
        }
    }

    func send(_ r: ServerResponse) {
        if r.close { closeAfter = true }
        out.append(string: "HTTP/1.1 \(r.status) \(HTTPStatus.reasonPhrase(r.status))\r\n")
        for (n, v) in r.headers { out.append(string: "\(n): \(v)\r\n") }
        let length: UInt64
        switch r.body {
        case .bytes(let b): length = UInt64(b.count)
        case .pattern(let n): length = n
        }
        let bodyless = request.method == "HEAD" || r.status == 204 || r.status == 304
        if r.chunked && !bodyless {
            out.append("Transfer-Encoding: chunked\r\n")
        } else if r.status != 204 && r.status != 304 {
            out.append(string: "Content-Length: \(length)\r\n")
        }
        if closeAfter { out.append("Connection: close\r\n") }
        out.append("\r\n")
        if !bodyless {
            switch r.body {
            case .bytes(let b):
                if r.chunked {
                    if !b.isEmpty { out.appendHex(UInt64(b.count)); out.append("\r\n"); out.append(b); out.append("\r\n") }
                    out.append("0\r\n\r\n")
                } else {
                    out.append(b)
                }
                pendingPattern = 0
            case .pattern(let n):
                pendingPattern = n
                patternChunked = r.chunked
            }
        }
        state = .writing
    }

    /// Writes `out`, generating pattern bytes as room frees; true when everything is written.
    func flush() -> Bool {
        while true {
            if out.isEmpty && pendingPattern > 0 {
                let n = Int(min(pendingPattern, 65536))
                if patternChunked { out.appendHex(UInt64(n)); out.append("\r\n") }
                out.reserve(n)
                let w = out.writable
                for i in 0..<n { w[i] = UInt8(0x61 + (i % 26)) }
                out.didWrite(n)
                pendingPattern -= UInt64(n)
                if patternChunked {
                    out.append("\r\n")
                    if pendingPattern == 0 { out.append("0\r\n\r\n") }
                }
            }
            if out.isEmpty { return true }
            guard canWrite else { return false }
            switch Socket.write(fd, out.readable) {
            case .bytes(let n):
                out.consume(n)
                if !out.isEmpty { canWrite = false; return false }
            case .wouldBlock:
                canWrite = false
                return false
            case .error, .eof:
                finish()
                return false
            }
        }
    }

    /// RFC 6455 frames: unmask each client frame and send it back unmasked; answer ping with pong
    /// and close with close.
    func webSocketEcho() {
        while !isClosed {
            if !flush() { return }
            var progressed = false
            while let frame = nextFrame() {
                progressed = true
                var opcode = frame.opcode
                if opcode == 0x9 { opcode = 0xA }
                out.append(byte: 0x80 | opcode)
                let n = frame.payload.count
                if n < 126 { out.append(byte: UInt8(n)) }
                else if n < 65536 { out.append(byte: 126); out.append(byte: UInt8(n >> 8)); out.append(byte: UInt8(n & 0xFF)) }
                else { out.append(byte: 127); for s in stride(from: 56, through: 0, by: -8) { out.append(byte: UInt8((n >> s) & 0xFF)) } }
                out.append(frame.payload)
                if frame.opcode == 0x8 { _ = flush(); finish(); return }
            }
            if progressed { continue }
            if !readMore() { return }
        }
    }

    func nextFrame() -> (opcode: UInt8, payload: [UInt8])? {
        let b = inBuf.readable
        guard b.count >= 2 else { return nil }
        let opcode = b[0] & 0x0F
        let masked = b[1] & 0x80 != 0
        var len = UInt64(b[1] & 0x7F)
        var off = 2
        if len == 126 {
            guard b.count >= 4 else { return nil }
            len = UInt64(b[2]) << 8 | UInt64(b[3]); off = 4
        } else if len == 127 {
            guard b.count >= 10 else { return nil }
            len = 0
            for i in 2..<10 { len = len << 8 | UInt64(b[i]) }
            off = 10
        }
        var mask: [UInt8] = [0, 0, 0, 0]
        if masked {
            guard b.count >= off + 4 else { return nil }
            mask = [b[off], b[off + 1], b[off + 2], b[off + 3]]; off += 4
        }
        guard len <= 16 << 20 else { finish(); return nil }
        guard UInt64(b.count) >= UInt64(off) + len else { return nil }
        var payload = [UInt8](repeating: 0, count: Int(len))
        for i in 0..<Int(len) { payload[i] = b[off + i] ^ mask[i & 3] }
        inBuf.consume(off + Int(len))
        return (opcode, payload)
    }
}
