import ArgumentParser
import ControlPlane
import Foundation
import Glibc
import Objects

/// Why a client command failed, and the exit status it ends with: 1 for server and object
/// errors, 2 for usage errors.
struct ClientFailure: Error {
    var message: String
    var exitCode: Int32
    /// The server could not be reached: no point trying the next object.
    var unreachable = false

    static func usage(_ message: String) -> ClientFailure { ClientFailure(message: "error: " + message, exitCode: 2) }
    static func failed(_ message: String) -> ClientFailure { ClientFailure(message: "error: " + message, exitCode: 1) }

    /// A Kubernetes `Status` answer: `Error from server (NotFound): deployments.apps "web" not found`,
    /// with one indented line per cause when the message does not already carry them.
    static func server(_ status: Int, _ body: [UInt8]) -> ClientFailure {
        guard let s = try? JSONValue.parse(body), s["kind"]?.stringValue == "Status" else {
            let text = String(decoding: body.prefix(500), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            return ClientFailure(message: "Error from server: HTTP \(status)" + (text.isEmpty ? "" : ": \(text)"), exitCode: 1)
        }
        let reason = s["reason"]?.stringValue ?? "Unknown"
        var message = "Error from server (\(reason)): \(s["message"]?.stringValue ?? "HTTP \(status)")"
        for c in s[path: ["details", "causes"]]?.arrayValue ?? [] {
            let field = c["field"]?.stringValue ?? "", text = c["message"]?.stringValue ?? ""
            let line = field.isEmpty ? text : "\(field): \(text)"
            if !message.contains(line) { message += "\n  " + line }
        }
        return ClientFailure(message: message, exitCode: 1)
    }
}

/// Runs a client command body, turning a `ClientFailure` into its message on stderr and its exit status.
func runClient(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let f as ClientFailure {
        if !f.message.isEmpty { FileHandle.standardError.write(Data((f.message + "\n").utf8)) }
        throw ExitCode(f.exitCode)
    }
}

/// An HTTP response read whole.
struct ClientResponse {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]

    var ok: Bool { (200..<300).contains(status) }
    func json() throws -> JSONValue {
        do { return try JSONValue.parse(body) } catch {
            throw ClientFailure.failed("the server answered HTTP \(status) with a body that is not JSON")
        }
    }
}

/// A small blocking HTTP/1.1 client for the API server: one connection per request
/// (`Connection: close`), connect and read timeouts, Content-Length, chunked, or read-to-close
/// bodies, and streamed bodies handed over line by line (watch streams).
struct APIClient {
    let server: String
    let host: String
    let port: UInt16
    let basePath: String
    /// Applies to connecting and to each read of a whole-body request; streams wait indefinitely.
    var timeout: TimeInterval = 30

    init(server: String) throws {
        self.server = server
        var rest = Substring(server)
        if rest.hasPrefix("http://") {
            rest = rest.dropFirst(7)
        } else if rest.hasPrefix("https://") {
            throw ClientFailure.usage("--server \(server): https is not supported; the Portico API server speaks plain HTTP")
        } else if rest.contains("://") {
            throw ClientFailure.usage("--server \(server): expected http://HOST:PORT")
        }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        var path = String(rest[slash...])
        while path.hasSuffix("/") { path.removeLast() }
        basePath = path
        if let colon = authority.lastIndex(of: ":"), !authority.hasSuffix("]") {
            guard let p = UInt16(authority[authority.index(after: colon)...]), p > 0 else {
                throw ClientFailure.usage("--server \(server): bad port")
            }
            host = String(authority[..<colon]); port = p
        } else {
            host = String(authority); port = 80
        }
        guard !host.isEmpty else { throw ClientFailure.usage("--server \(server): missing host") }
    }

    // MARK: Requests

    /// Sends a request and reads the whole response.
    func request(_ method: String, _ path: String, body: JSONValue? = nil,
                 contentType: String = "application/json") throws -> ClientResponse {
        let fd = try connect()
        defer { close(fd) }
        try send(fd, method, path, body: body.map(\.jsonBytes), contentType: contentType)
        let reader = SocketReader(fd: fd)
        let (status, headers) = try reader.readHead()
        var body: [UInt8] = []
        try reader.readBody(headers: headers, head: method == "HEAD") { body += $0; return true }
        return ClientResponse(status: status, headers: headers, body: body)
    }

    /// GETs `path` and hands each line of the body to `line` as it arrives, until the server ends
    /// the response or `line` returns false. A non-2xx answer is read whole and thrown.
    func stream(_ path: String, line: (String) throws -> Bool) throws {
        let fd = try connect()
        defer { close(fd) }
        try send(fd, "GET", path, body: nil, contentType: "application/json")
        let reader = SocketReader(fd: fd)
        let (status, headers) = try reader.readHead()
        if !(200..<300).contains(status) {
            var body: [UInt8] = []
            try reader.readBody(headers: headers, head: false) { body += $0; return true }
            throw ClientFailure.server(status, body)
        }
        setReadTimeout(fd, 0)
        var pending: [UInt8] = []
        try reader.readBody(headers: headers, head: false) { chunk in
            pending += chunk
            while let nl = pending.firstIndex(of: 0x0A) {
                let text = String(decoding: pending[..<nl], as: UTF8.self)
                pending.removeSubrange(...nl)
                if try !line(text) { return false }
            }
            return true
        }
        if !pending.isEmpty { _ = try line(String(decoding: pending, as: UTF8.self)) }
    }

    /// Sends a request and returns the JSON body of a 2xx answer; any other answer is thrown as
    /// the server's Status.
    func json(_ method: String, _ path: String, body: JSONValue? = nil,
              contentType: String = "application/json") throws -> JSONValue {
        let r = try request(method, path, body: body, contentType: contentType)
        guard r.ok else { throw ClientFailure.server(r.status, r.body) }
        return try r.json()
    }

    // MARK: Socket

    private func unreachable(_ reason: String) -> ClientFailure {
        var f = ClientFailure.failed("cannot reach the Portico API server at \(server): \(reason) (is `portico serve` running?)")
        f.unreachable = true
        return f
    }

    private func connect() throws -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let h = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        let rc = getaddrinfo(h, String(port), &hints, &list)
        guard rc == 0, let first = list else { throw unreachable("cannot resolve \(host): \(String(cString: gai_strerror(rc)))") }
        defer { freeaddrinfo(list) }
        var lastError: Int32 = ECONNREFUSED
        var ai: UnsafeMutablePointer<addrinfo>? = first
        while let a = ai {
            ai = a.pointee.ai_next
            let fd = socket(a.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            if fd < 0 { lastError = errno; continue }
            if connect(fd, a.pointee.ai_addr, a.pointee.ai_addrlen, timeout: timeout, error: &lastError) {
                var one: Int32 = 1
                setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                setReadTimeout(fd, timeout)
                return fd
            }
            close(fd)
        }
        throw unreachable(lastError == ETIMEDOUT ? "connection timed out" : String(cString: strerror(lastError)).lowercased())
    }

    /// A non-blocking connect bounded by `timeout`.
    private func connect(_ fd: Int32, _ addr: UnsafeMutablePointer<sockaddr>, _ len: socklen_t,
                         timeout: TimeInterval, error: inout Int32) -> Bool {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        defer { _ = fcntl(fd, F_SETFL, flags) }
        if Glibc.connect(fd, addr, len) == 0 { return true }
        guard errno == EINPROGRESS else { error = errno; return false }
        var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        let n = poll(&p, 1, Int32(timeout * 1000))
        if n == 0 { error = ETIMEDOUT; return false }
        if n < 0 { error = errno; return false }
        var soError: Int32 = 0
        var l = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &l)
        if soError != 0 { error = soError; return false }
        return true
    }

    private func setReadTimeout(_ fd: Int32, _ seconds: TimeInterval) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    private func send(_ fd: Int32, _ method: String, _ path: String, body: [UInt8]?, contentType: String) throws {
        var head = "\(method) \(basePath)\(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nUser-Agent: portico/\(PorticoVersion.string)\r\n"
        head += "Accept: application/json\r\nConnection: close\r\n"
        if let body { head += "Content-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n" }
        // A server started with --token-file wants the token: $PORTICO_TOKEN carries it.
        if let token = ProcessInfo.processInfo.environment["PORTICO_TOKEN"], !token.isEmpty {
            head += "Authorization: Bearer \(token)\r\n"
        }
        head += "\r\n"
        var bytes = Array(head.utf8)
        if let body { bytes += body }
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ClientFailure.failed("sending to the API server at \(server): \(String(cString: strerror(errno)))")
            }
            sent += n
        }
    }
}

/// Buffered reads from a socket: response heads, then bodies framed by Content-Length, chunked
/// transfer coding, or the end of the connection.
final class SocketReader {
    let fd: Int32
    private var buffer: [UInt8] = []
    private var start = 0

    init(fd: Int32) { self.fd = fd }

    /// Reads more bytes; false at the end of the stream.
    private func fill() throws -> Bool {
        if start > 0 && start == buffer.count { buffer.removeAll(keepingCapacity: true); start = 0 }
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { buffer += chunk[..<n]; return true }
            if n == 0 { return false }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { throw ClientFailure.failed("the API server did not answer in time") }
            throw ClientFailure.failed("reading from the API server: \(String(cString: strerror(errno)))")
        }
    }

    private func line() throws -> String {
        while true {
            if let nl = buffer[start...].firstIndex(of: 0x0A) {
                var end = nl
                if end > start && buffer[end - 1] == 0x0D { end -= 1 }
                let s = String(decoding: buffer[start..<end], as: UTF8.self)
                start = nl + 1
                return s
            }
            guard try fill() else { throw ClientFailure.failed("the API server closed the connection mid-response") }
        }
    }

    private func take(_ count: Int) throws -> [UInt8] {
        while buffer.count - start < count {
            guard try fill() else { throw ClientFailure.failed("the API server closed the connection mid-response") }
        }
        let out = Array(buffer[start..<start + count])
        start += count
        return out
    }

    /// Takes whatever is buffered, or reads some more; empty at the end of the stream.
    private func some() throws -> [UInt8] {
        if start == buffer.count { guard try fill() else { return [] } }
        let out = Array(buffer[start...])
        start = buffer.count
        return out
    }

    func readHead() throws -> (Int, [(String, String)]) {
        while true {
            let status = try line()
            let parts = status.split(separator: " ", maxSplits: 2)
            guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let code = Int(parts[1]) else {
                throw ClientFailure.failed("the API server sent a malformed status line: \(status.prefix(80))")
            }
            var headers: [(String, String)] = []
            while true {
                let l = try line()
                if l.isEmpty { break }
                guard let colon = l.firstIndex(of: ":") else { continue }
                headers.append((String(l[..<colon]).lowercased(), l[l.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
            }
            if (100..<200).contains(code) { continue }   // 100 Continue and friends carry no body
            return (code, headers)
        }
    }

    /// Hands body bytes to `sink` as they arrive; `sink` returns false to stop early.
    func readBody(headers: [(String, String)], head: Bool, sink: ([UInt8]) throws -> Bool) throws {
        if head { return }
        func header(_ n: String) -> String? { headers.first { $0.0 == n }?.1 }
        if header("transfer-encoding")?.lowercased().contains("chunked") == true {
            while true {
                let sizeLine = try line()
                let hex = sizeLine.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
                guard let size = Int(hex, radix: 16) else { throw ClientFailure.failed("the API server sent a malformed chunk size") }
                if size == 0 {
                    while try !line().isEmpty {}   // trailers
                    return
                }
                let data = try take(size)
                _ = try line()
                if try !sink(data) { return }
            }
        } else if let cl = header("content-length"), let length = Int(cl) {
            var remaining = length
            while remaining > 0 {
                var data = try some()
                if data.isEmpty { throw ClientFailure.failed("the API server closed the connection mid-response") }
                if data.count > remaining { data = Array(data[..<remaining]) }
                remaining -= data.count
                if try !sink(data) { return }
            }
        } else {
            while true {
                let data = try some()
                if data.isEmpty { return }
                if try !sink(data) { return }
            }
        }
    }
}
