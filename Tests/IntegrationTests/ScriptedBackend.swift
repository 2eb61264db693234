// The one raw TCP backend of the integration tests, for what a real server will not do on
// demand: answer with exact bytes, cut a response, reset, hang, answer before the request.

import Foundation
import Glibc

/// A listening TCP socket on 127.0.0.1: `port` 0 lets the kernel choose.
func listenOnLoopback(port: UInt16 = 0) throws -> (fd: Int32, port: UInt16) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw HarnessError("socket: errno \(errno)") }
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    var addr = loopback(port: port)
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc == 0, listen(fd, 128) == 0 else { let e = errno; close(fd); throw HarnessError("bind/listen: errno \(e)") }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
    }
    return (fd, UInt16(bigEndian: addr.sin_port))
}

/// A blocking TCP backend in the test process, a thread per connection. It counts what it saw
/// (connections, request heads, requests by path and by method), and `stop()` behaves as a
/// crashed process (the listener and every connection closed: connects are refused), after
/// which `restart()` listens again on the same port.
final class ScriptedBackend: @unchecked Sendable {
    enum Mode {
        /// HTTP/1.1 with keep-alive, each request (head and Content-Length body) behaving by path:
        ///   /cut-body  200 with Content-Length 100000, 1000 body bytes, then close
        ///   /cut-head  half a status line, then close
        ///   /close     close without a byte
        ///   /reset     close with RST (SO_LINGER 0)
        ///   /hang      never answer
        ///   /garbage   bytes that are not HTTP, then close
        ///   otherwise  200 "ok PATH", keep-alive
        case byPath
        /// As `byPath`, every request behaving as `path`.
        case always(String)
        /// Every connection: wait for the request head (with `afterFirstBytes`, only for the first
        /// bytes), write `reply` in one write, then keep reading and dropping for `linger` seconds
        /// (so the proxy, not the backend, decides what happens to extra bytes) and close.
        case exact([UInt8], afterFirstBytes: Bool = false, linger: TimeInterval = 1)
        /// Every connection: read until the peer's end of file, send all of it back, close (what a
        /// half-closing tunnel must carry both ways).
        case echoAfterEndOfFile
        /// Every connection: accepted and held open, never read from nor answered (a pod that
        /// stopped reading), until `stop()`.
        case silent
    }

    let mode: Mode
    private(set) var port: UInt16 = 0
    private var listenFD: Int32 = -1
    private var open = Set<Int32>()
    private var accepted = 0
    private var heads: [String] = []
    private var byPath: [String: Int] = [:]
    private var byMethod: [String: Int] = [:]
    private var total = 0
    /// Connection threads still running.
    private var serving = 0
    private var stopping = false
    private let lock = NSLock()
    private var acceptDone = DispatchSemaphore(value: 0)

    init(_ mode: Mode) throws {
        self.mode = mode
        try start(port: 0)
    }

    var address: String { "127.0.0.1:\(port)" }
    /// Connections accepted since the start.
    var connections: Int { lock.lock(); defer { lock.unlock() }; return accepted }
    /// Every request head read, in order (with `afterFirstBytes`, the first bytes read).
    var requestHeads: [String] { lock.lock(); defer { lock.unlock() }; return heads }
    func seen(_ path: String) -> Int { lock.lock(); defer { lock.unlock() }; return byPath[path] ?? 0 }
    func seen(method: String) -> Int { lock.lock(); defer { lock.unlock() }; return byMethod[method] ?? 0 }
    var seenTotal: Int { lock.lock(); defer { lock.unlock() }; return total }
    private var isStopping: Bool { lock.lock(); defer { lock.unlock() }; return stopping }

    private func start(port wanted: UInt16) throws {
        let (fd, port) = try listenOnLoopback(port: wanted)
        setSocketTimeouts(fd, 0.1)  // accept wakes up to notice stop()
        lock.lock()
        listenFD = fd
        self.port = port
        stopping = false
        acceptDone = DispatchSemaphore(value: 0)
        let done = acceptDone
        lock.unlock()
        Thread.detachNewThread { [self] in
            while !isStopping {
                let c = accept(fd, nil, nil)
                guard c >= 0 else { continue }
                lock.lock()
                if stopping { lock.unlock(); close(c); break }
                open.insert(c)
                accepted += 1
                if case .silent = mode { lock.unlock(); continue }
                serving += 1
                lock.unlock()
                Thread.detachNewThread { [self] in self.serve(c) }
            }
            done.signal()
        }
    }

    /// Listens again on the same port (after `stop()`): the endpoint comes back.
    func restart() throws {
        try start(port: port)
    }

    /// Closes the listener and every connection, and waits (a few seconds at most) for the
    /// connections' threads to end.
    func stop() {
        lock.lock()
        if stopping || listenFD < 0 { lock.unlock(); return }
        stopping = true
        let done = acceptDone
        lock.unlock()
        _ = done.wait(timeout: .now() + 3)
        lock.lock()
        close(listenFD)
        listenFD = -1
        for c in open { shutdown(c, Int32(SHUT_RDWR)) }
        if case .silent = mode {
            for c in open { close(c) }  // no thread of their own
            open = []
        }
        lock.unlock()
        _ = waitUntil(timeout: 3) { lock.lock(); defer { lock.unlock() }; return serving == 0 }
    }

    private func serve(_ c: Int32) {
        var reset = false
        switch mode {
        case .byPath, .always:
            reset = serveHTTP(c)
        case .exact(let reply, let afterFirstBytes, let linger):
            answer(c, reply, afterFirstBytes: afterFirstBytes, linger: linger)
        case .echoAfterEndOfFile:
            echoAfterEndOfFile(c)
        case .silent:
            return  // never spawned (see the accept loop)
        }
        if reset {
            var l = linger(l_onoff: 1, l_linger: 0)
            setsockopt(c, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
        }
        lock.lock(); open.remove(c); serving -= 1; lock.unlock()
        close(c)
    }

    private func record(head: [UInt8]) {
        let text = String(decoding: head, as: UTF8.self)
        let requestLine = text.prefix { $0 != "\r" && $0 != "\n" }.split(separator: " ")
        lock.lock()
        heads.append(text)
        if requestLine.count >= 2 {
            byPath[String(requestLine[1]), default: 0] += 1
            byMethod[String(requestLine[0]), default: 0] += 1
            total += 1
        }
        lock.unlock()
    }

    // MARK: exact bytes

    private func answer(_ c: Int32, _ reply: [UInt8], afterFirstBytes: Bool, linger: TimeInterval) {
        setSocketTimeouts(c, 3)
        var got: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while got.firstRange(of: Array("\r\n\r\n".utf8)) == nil {
            let n = chunk.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return }
            got += chunk[0..<n]
            if afterFirstBytes { break }
        }
        record(head: got)
        guard sendAll(c, reply) else { return }
        let until = Date().addingTimeInterval(linger)
        setSocketTimeouts(c, 0.1)
        while Date() < until && !isStopping {
            let n = chunk.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
            if n == 0 { return }
        }
    }

    // MARK: echo after the end of file

    private func echoAfterEndOfFile(_ c: Int32) {
        setSocketTimeouts(c, 10)
        var got: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return }  // no end of file within 10 s: close without an answer
            if n == 0 { break }
            got += chunk[0..<n]
        }
        sendAll(c, got)
    }

    // MARK: HTTP by path

    /// Serves requests until one ends the connection; true when it ends with a reset.
    private func serveHTTP(_ c: Int32) -> Bool {
        setSocketTimeouts(c, 10)
        var buf: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            // One request head (and its Content-Length body).
            var headEnd: Int?
            while headEnd == nil {
                if let r = buf.firstRange(of: Array("\r\n\r\n".utf8)) { headEnd = r.lowerBound; break }
                let n = chunk.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
                if n <= 0 { return false }
                buf += chunk[0..<n]
            }
            let head = String(decoding: buf[0..<headEnd!], as: UTF8.self)
            let lines = head.split(separator: "\r\n")
            let requestLine = lines.first.map { $0.split(separator: " ") } ?? []
            guard requestLine.count >= 2 else { return false }
            let path = String(requestLine[1])
            var length = 0
            for l in lines.dropFirst() where l.lowercased().hasPrefix("content-length:") {
                length = Int(l.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
            }
            let total = headEnd! + 4 + length
            while buf.count < total {
                let n = chunk.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
                if n <= 0 { return false }
                buf += chunk[0..<n]
            }
            record(head: Array(buf[0..<(headEnd! + 4)]))
            buf.removeFirst(total)

            let behaviour: String
            switch mode {
            case .always(let p): behaviour = p
            default: behaviour = path
            }
            switch behaviour {
            case "/cut-body":
                sendAll(c, Array("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".utf8))
                sendAll(c, [UInt8](repeating: 0x7A, count: 1000))
                return false
            case "/cut-head":
                sendAll(c, Array("HTTP/1.1 200 OK\r\nContent-Le".utf8))
                return false
            case "/close":
                return false
            case "/reset":
                return true
            case "/hang":
                // Until the proxy gives up (its close wakes recv) or 10 s pass.
                _ = chunk.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
                return false
            case "/garbage":
                sendAll(c, Array("garbage\r\n\r\n".utf8))
                return false
            default:
                let body = "ok \(path)"
                sendAll(c, Array("HTTP/1.1 200 OK\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)".utf8))
            }
        }
    }
}
