import Foundation
import Reactor
import TLS
#if canImport(Glibc)
import Glibc
#endif

/// A tiny blocking HTTP/1.1 server on 127.0.0.1 (random port), one thread per connection, with a
/// misbehaviour per mode, and a count of requests by path. With `tls`, every connection is TLS
/// and the server records the SNI name it was opened with next to each request's Host.
final class TestServer {
    enum Mode {
        /// 200 "ok" (500 for paths starting with /fail), keep-alive.
        case normal
        /// Reads the request, never answers.
        case silent
        /// Reads the request, then closes with RST.
        case reset
        /// Answers bytes that are not HTTP.
        case garbage
        /// Answers exactly these bytes to every request, closing afterwards when `close`.
        case custom(String, close: Bool)
        /// Answers 400 and closes as soon as any bytes arrive, as an HTTP server does to a TLS
        /// ClientHello (which has no request line to wait for).
        case rejectAnything
    }

    /// One request as it arrived: its Host header and the SNI name of its connection (nil on a
    /// plain connection or without SNI).
    struct Arrival: Equatable { var sni: String?; var host: String }

    let mode: Mode
    let tls: TLSServerContext?
    let listener: Int32
    let port: UInt16
    private let lock = NSLock()
    private var counts: [String: Int] = [:]
    private var open: [Int32] = []
    private var arrivalList: [Arrival] = []
    private var established = 0

    init(mode: Mode = .normal, tls: TLSServerContext? = nil) throws {
        self.mode = mode
        self.tls = tls
        // OpenSSL writes with send(2) without MSG_NOSIGNAL: a client gone mid-reply must not kill the test.
        if tls != nil { signal(SIGPIPE, SIG_IGN) }
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0, listen(listener, 512) == 0 else { throw NSError(domain: "TestServer", code: Int(errno)) }
        var bound = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &len) }
        }
        port = UInt16(bigEndian: bound.sin_port)
        let t = Thread { [self] in acceptLoop() }
        t.start()
    }

    var url: String { "http://127.0.0.1:\(port)" }

    func count(_ path: String) -> Int { lock.lock(); defer { lock.unlock() }; return counts[path] ?? 0 }
    var total: Int { lock.lock(); defer { lock.unlock() }; return counts.values.reduce(0, +) }
    var arrivals: [Arrival] { lock.lock(); defer { lock.unlock() }; return arrivalList }
    /// Connections accepted (with `tls`: whose handshake completed).
    var connections: Int { lock.lock(); defer { lock.unlock() }; return established }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        lock.lock()
        for fd in open { shutdown(fd, Int32(SHUT_RDWR)) }
        lock.unlock()
    }

    private func acceptLoop() {
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 { return }
            // TLS 1.3 tickets then the reply are small writes: without it, Nagle waits ~40 ms for
            // the client's delayed ACK on every new connection.
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            lock.lock(); open.append(fd); lock.unlock()
            let t = Thread { [self] in serve(fd) }
            t.start()
        }
    }

    private func serve(_ fd: Int32) {
        defer { close(fd) }
        var session: TLSSession? = nil
        if let context = tls {
            let s = TLSSession(server: context, fd: fd)
            // A blocking socket: the handshake finishes or fails in one call; the bound only
            // guards against a spurious want-read.
            var status = TLSHandshakeStatus.wantRead
            for _ in 0..<100 where status == .wantRead || status == .wantWrite { status = s.handshake() }
            guard status == .done else { return }
            session = s
        }
        lock.lock(); established += 1; lock.unlock()
        let sni = session?.serverName
        let tlsBuffer = Buffer(capacity: 16384)
        var buf = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 16384)
        // Reads some bytes into `buf` (through TLS when on); false at EOF or on an error.
        func fill() -> Bool {
            guard let s = session else {
                let n = read(fd, &chunk, chunk.count)
                if n <= 0 { return false }
                buf += chunk[0..<n]
                return true
            }
            for _ in 0..<100 {
                switch s.read(into: tlsBuffer) {
                case .bytes(let n):
                    buf += tlsBuffer.readable.prefix(n)
                    tlsBuffer.consume(n)
                    return true
                case .wouldBlock: continue
                case .eof, .error: return false
                }
            }
            return false
        }
        func reply(_ bytes: [UInt8]) -> Bool {
            guard let s = session else { return writeAll(fd, bytes) }
            var off = 0
            for _ in 0..<1000 where off < bytes.count {
                let r = bytes[off...].withUnsafeBytes { s.write($0) }
                switch r {
                case .bytes(let n): off += n
                case .wouldBlock: continue
                case .eof, .error: return false
                }
            }
            return off == bytes.count
        }
        if case .rejectAnything = mode {
            if fill() { _ = reply(Array("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8)) }
            return
        }
        while true {
            // One request head (and its Content-Length body).
            var headEnd: Int? = nil
            while headEnd == nil {
                if let r = find(buf) { headEnd = r; break }
                if !fill() { return }
            }
            let head = String(decoding: buf[0..<headEnd!], as: UTF8.self)
            var bodyLength = 0
            var host = ""
            for line in head.split(separator: "\r\n") {
                let lower = line.lowercased()
                if lower.hasPrefix("content-length:") {
                    bodyLength = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) ?? 0
                } else if lower.hasPrefix("host:") {
                    host = line.dropFirst(5).trimmingCharacters(in: .whitespaces)
                }
            }
            while buf.count < headEnd! + 4 + bodyLength {
                if !fill() { return }
            }
            buf.removeFirst(headEnd! + 4 + bodyLength)
            let path = head.split(separator: " ").dropFirst().first.map(String.init) ?? ""
            lock.lock(); counts[path, default: 0] += 1; arrivalList.append(Arrival(sni: sni, host: host)); lock.unlock()
            switch mode {
            case .normal:
                let status = path.hasPrefix("/fail") ? "500 Internal Server Error" : "200 OK"
                let closing = head.lowercased().contains("connection: close")
                let response = "HTTP/1.1 \(status)\r\nContent-Length: 3\r\n\(closing ? "Connection: close\r\n" : "")\r\nok\n"
                if !reply(Array(response.utf8)) || closing { return }
            case .silent:
                while read(fd, &chunk, chunk.count) > 0 {}
                return
            case .reset:
                var l = linger(l_onoff: 1, l_linger: 0)
                setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
                return
            case .garbage:
                _ = reply(Array("SSH-2.0-OpenSSH\r\n\r\n".utf8))
            case .custom(let bytes, let close):
                if !reply(Array(bytes.utf8)) || close { return }
            case .rejectAnything:
                return
            }
        }
    }

    private func find(_ b: [UInt8]) -> Int? {
        guard b.count >= 4 else { return nil }
        for i in 0...(b.count - 4) where b[i] == 13 && b[i + 1] == 10 && b[i + 2] == 13 && b[i + 3] == 10 { return i }
        return nil
    }

    private func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            off += n
        }
        return true
    }
}
