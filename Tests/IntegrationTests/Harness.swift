// The shared harness of the integration suite: it runs the built `portico` binary as a subprocess
// and drives it with real clients (curl, and a raw-socket client that sends and reads exact bytes).
// Everything is loopback-only, on ports the kernel picks, and every wait has a deadline.

import Foundation
import Glibc
import XCTest

// MARK: - Errors and waiting

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Polls `condition` every `interval` until it holds or `timeout` passes; returns whether it held.
@discardableResult
func waitUntil(timeout: TimeInterval = 10, interval: TimeInterval = 0.02, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        if try condition() { return true }
        if Date() >= deadline { return false }
        Thread.sleep(forTimeInterval: interval)
    }
}

// MARK: - Locating the binary

enum Binary {
    /// `PORTICO_BIN` if set, else `<package root>/.build/debug/portico` found from this file's path.
    static let path: String = {
        if let env = ProcessInfo.processInfo.environment["PORTICO_BIN"], !env.isEmpty { return env }
        let root = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()  // IntegrationTests
            .deletingLastPathComponent()  // Tests
            .deletingLastPathComponent()  // package root
        return root.appendingPathComponent(".build/debug/portico").path
    }()

    static func require() throws {
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw HarnessError("portico binary not found at \(path): run `swift build` first or set PORTICO_BIN")
        }
    }
}

// MARK: - Temporary directories

/// A private temp dir, removed by `remove()`.
final class TempDir {
    let path: String

    init(_ label: String = "portico-it") throws {
        var template = Array((NSTemporaryDirectory() + "/\(label)-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw HarnessError("mkdtemp failed: errno \(errno)") }
        path = String(cString: made)
    }

    func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        let p = file(name)
        // Write to a sibling and rename, so a watcher never sees a half-written manifest.
        let tmp = file(".\(name).tmp")
        try text.write(toFile: tmp, atomically: false, encoding: .utf8)
        guard rename(tmp, p) == 0 else { throw HarnessError("rename \(tmp) -> \(p): errno \(errno)") }
        return p
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

// MARK: - Processes

/// Every pid the harness started, killed at exit if a test forgot (or crashed before tearDown).
private var liveChildren = Set<Int32>()
private let liveChildrenLock = NSLock()
private let installExitHook: Void = {
    signal(SIGPIPE, SIG_IGN)
    atexit {
        liveChildrenLock.lock()
        for pid in liveChildren { kill(pid, SIGKILL) }
        liveChildrenLock.unlock()
    }
}()

/// A child process whose stdout and stderr go to files in `logDir`.
final class ManagedProcess {
    let name: String
    let process = Process()
    let stderrPath: String
    let stdoutPath: String
    private var stopped = false

    init(name: String, executable: String, arguments: [String], logDir: TempDir) throws {
        _ = installExitHook
        self.name = name
        stderrPath = logDir.file("\(name).stderr.log")
        stdoutPath = logDir.file("\(name).stdout.log")
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: stdoutPath))
        try process.run()
        liveChildrenLock.lock(); liveChildren.insert(process.processIdentifier); liveChildrenLock.unlock()
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }
    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }

    /// The last lines of stderr, for failure messages; after a crash, the start of the crash report.
    func stderrTail(_ lines: Int = 15) -> String {
        let all = stderr.split(separator: "\n", omittingEmptySubsequences: false)
        if let crash = all.firstIndex(where: { $0.contains("Fatal error") || $0.contains("Crash") || $0.contains("💣") }) {
            let from = max(all.startIndex, crash - 3)
            return all[from..<min(all.endIndex, crash + 40)].joined(separator: "\n")
        }
        return all.suffix(lines).joined(separator: "\n")
    }

    /// Waits for a stderr line matching `pattern` (a regular expression) and returns its capture groups.
    func waitForLine(matching pattern: String, timeout: TimeInterval = 10) throws -> [String] {
        let regex = try NSRegularExpression(pattern: pattern)
        var groups: [String]?
        waitUntil(timeout: timeout) {
            let text = stderr
            let range = NSRange(text.startIndex..., in: text)
            if let m = regex.firstMatch(in: text, range: range) {
                groups = (0..<m.numberOfRanges).map { i in
                    Range(m.range(at: i), in: text).map { String(text[$0]) } ?? ""
                }
                return true
            }
            return !isRunning
        }
        guard let found = groups else {
            throw HarnessError("\(name): no stderr line matching /\(pattern)/ within \(timeout)s "
                + "(running: \(isRunning)); stderr:\n\(stderrTail())")
        }
        return found
    }

    func signal(_ sig: Int32) { if isRunning { kill(pid, sig) } }

    /// Waits for exit up to `timeout`; returns the exit status, or nil if still running.
    func waitForExit(timeout: TimeInterval) -> Int32? {
        guard waitUntil(timeout: timeout, { !isRunning }) else { return nil }
        process.waitUntilExit()
        forget()
        return process.terminationStatus
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    func stop(grace: TimeInterval = 5) {
        guard !stopped else { return }
        stopped = true
        if isRunning {
            kill(pid, SIGTERM)
            if waitForExit(timeout: grace) == nil {
                kill(pid, SIGKILL)
                _ = waitForExit(timeout: 5)
            }
        }
        forget()
    }

    private func forget() {
        liveChildrenLock.lock(); liveChildren.remove(pid); liveChildrenLock.unlock()
    }
}

// MARK: - portico echo / portico serve

/// A running `portico echo` backend.
final class EchoBackend {
    let name: String
    let process: ManagedProcess
    let port: UInt16

    init(name: String, logDir: TempDir) throws {
        try Binary.require()
        self.name = name
        process = try ManagedProcess(name: "echo-\(name)", executable: Binary.path,
                                     arguments: ["echo", "--listen", "127.0.0.1:0", "--name", name], logDir: logDir)
        let g = try process.waitForLine(matching: #"echo \S+ listening on [0-9.]+:([0-9]+)"#)
        guard let p = UInt16(g[1]) else { throw HarnessError("echo \(name): bad port in \(g[0])") }
        port = p
    }

    var address: String { "127.0.0.1:\(port)" }
    func stop() { process.stop() }
}

/// A running `portico serve`.
final class PorticoServer {
    let process: ManagedProcess
    let httpPort: UInt16
    let adminPort: UInt16

    /// `manifests` are the `-f` paths; `extraArgs` are appended (timeouts, limits ...).
    init(manifests: [String], extraArgs: [String] = [], logDir: TempDir, name: String = "serve") throws {
        try Binary.require()
        var args = ["serve"]
        for m in manifests { args += ["-f", m] }
        args += ["--http", "127.0.0.1:0", "--https", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--workers", "2",
                 "--api", "127.0.0.1:0", "--data", logDir.file("\(name).data"),
                 "--access-log", logDir.file("\(name).access.log")]
        args += extraArgs
        process = try ManagedProcess(name: name, executable: Binary.path, arguments: args, logDir: logDir)
        let g = try process.waitForLine(matching: #"listening http=[0-9.]+:([0-9]+) admin=[0-9.]+:([0-9]+)"#)
        guard let h = UInt16(g[1]), let a = UInt16(g[2]) else { throw HarnessError("serve: bad ports in \(g[0])") }
        httpPort = h
        adminPort = a
    }

    var base: String { "http://127.0.0.1:\(httpPort)" }
    var adminBase: String { "http://127.0.0.1:\(adminPort)" }
    func stop() { process.stop(grace: 12) }

    /// Sums a Prometheus counter over every label set that contains all of `labels` (e.g. `reused="true"`).
    func metric(_ name: String, labels: [String] = []) throws -> Double? {
        let r = try Curl.run([adminBase + "/metrics"])
        guard r.status == 200 else { throw HarnessError("/metrics answered \(r.status)") }
        var sum: Double?
        for line in r.bodyText.split(separator: "\n") where !line.hasPrefix("#") {
            let s = String(line)
            guard s.hasPrefix(name + "{") || s.hasPrefix(name + " ") else { continue }
            guard labels.allSatisfy({ s.contains($0) }) else { continue }
            if let v = s.split(separator: " ").last.flatMap({ Double($0) }) { sum = (sum ?? 0) + v }
        }
        return sum
    }
}

// MARK: - Free ports

/// A port nobody listens on: bind 127.0.0.1:0, read the port, close.
func freePort() throws -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw HarnessError("socket: errno \(errno)") }
    defer { close(fd) }
    var addr = loopback(port: 0)
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc == 0 else { throw HarnessError("bind: errno \(errno)") }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
    }
    return UInt16(bigEndian: addr.sin_port)
}

func loopback(port: UInt16) -> sockaddr_in {
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = port.bigEndian
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    return addr
}

/// Receive and send timeouts on a socket.
func setSocketTimeouts(_ fd: Int32, _ seconds: TimeInterval) {
    var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1_000_000))
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
}

// MARK: - Raw HTTP client

/// A response as read off the wire by `RawClient`.
struct RawResponse {
    var status: Int
    var reason: String
    var headers: [(name: String, value: String)]
    var body: [UInt8]
    /// The exact bytes of the head, status line to the blank line.
    var rawHead: String

    func header(_ name: String) -> String? {
        let values = headers.filter { $0.name.lowercased() == name.lowercased() }.map { $0.value }
        return values.isEmpty ? nil : values.joined(separator: ", ")
    }
    func headerCount(_ name: String) -> Int { headers.filter { $0.name.lowercased() == name.lowercased() }.count }
    var bodyText: String { String(decoding: body, as: UTF8.self) }
    var isChunked: Bool { header("transfer-encoding")?.lowercased().contains("chunked") ?? false }
}

/// A blocking TCP client with receive/send timeouts that sends exact bytes and reads exact bytes.
final class RawClient {
    private(set) var fd: Int32
    private var buffer: [UInt8] = []
    private var eof = false

    init(host: String = "127.0.0.1", port: UInt16, timeout: TimeInterval = 10) throws {
        _ = installExitHook
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket: errno \(errno)") }
        setSocketTimeouts(fd, timeout)
        var addr = loopback(port: port)
        addr.sin_addr.s_addr = inet_addr(host)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let e = errno
            Glibc.close(fd); fd = -1
            throw HarnessError("connect \(host):\(port): errno \(e)")
        }
    }

    deinit { close() }

    func close() { if fd >= 0 { Glibc.close(fd); fd = -1 } }

    func setTimeout(_ seconds: TimeInterval) { setSocketTimeouts(fd, seconds) }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw HarnessError("send: errno \(errno)")
            }
            off += n
        }
    }

    /// Reads more bytes into the buffer; false at EOF (or reset). Throws on timeout.
    @discardableResult
    private func fill() throws -> Bool {
        if eof { return false }
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { buffer += chunk[0..<n]; return true }
            if n == 0 { eof = true; return false }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { throw HarnessError("read timed out") }
            if errno == ECONNRESET { eof = true; return false }
            throw HarnessError("recv: errno \(errno)")
        }
    }

    func readExactly(_ count: Int) throws -> [UInt8] {
        while buffer.count < count {
            guard try fill() else { throw HarnessError("connection closed after \(buffer.count) of \(count) bytes") }
        }
        let out = Array(buffer[0..<count])
        buffer.removeFirst(count)
        return out
    }

    /// Reads through the next CRLF and returns the line without it.
    func readLine() throws -> String {
        while true {
            if let i = findCRLF(from: 0) {
                let line = String(decoding: buffer[0..<i], as: UTF8.self)
                buffer.removeFirst(i + 2)
                return line
            }
            guard try fill() else { throw HarnessError("connection closed mid-line") }
        }
    }

    private func findCRLF(from start: Int) -> Int? {
        var i = start
        while i + 1 < buffer.count {
            if buffer[i] == 13 && buffer[i + 1] == 10 { return i }
            i += 1
        }
        return nil
    }

    /// True when the peer closed the connection (EOF or reset) before `timeout`, with nothing unread.
    func isClosedByPeer(within timeout: TimeInterval = 5) -> Bool {
        setTimeout(timeout)
        while true {
            if !buffer.isEmpty { return false }
            do { if try !fill() { return true } } catch { return false }
        }
    }

    /// Reads everything until the peer closes.
    func readToEOF() throws -> [UInt8] {
        while try fill() {}
        defer { buffer.removeAll() }
        return buffer
    }

    /// Reads one response. `toHEAD` means no body whatever the head says.
    func readResponse(toHEAD: Bool = false) throws -> RawResponse {
        let statusLine = try readLine()
        var headLines = [statusLine]
        var headers: [(String, String)] = []
        while true {
            let line = try readLine()
            if line.isEmpty { break }
            headLines.append(line)
            if let colon = line.firstIndex(of: ":") {
                headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
            }
        }
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw HarnessError("bad status line: \(statusLine.debugDescription)")
        }
        var r = RawResponse(status: status, reason: parts.count > 2 ? String(parts[2]) : "", headers: headers,
                            body: [], rawHead: headLines.joined(separator: "\r\n") + "\r\n\r\n")
        if toHEAD || (100..<200).contains(status) || status == 204 || status == 304 { return r }
        if r.isChunked {
            while true {
                let sizeLine = try readLine()
                let hex = sizeLine.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
                guard let size = Int(hex, radix: 16) else { throw HarnessError("bad chunk size line \(sizeLine.debugDescription)") }
                if size == 0 {
                    while try !readLine().isEmpty {}  // trailers
                    break
                }
                r.body += try readExactly(size)
                guard try readLine().isEmpty else { throw HarnessError("chunk not followed by CRLF") }
            }
        } else if let cl = r.header("content-length"), let n = Int(cl) {
            r.body = try readExactly(n)
        } else {
            r.body = try readToEOF()
        }
        return r
    }

    /// Connects, sends `request`, reads one response.
    static func exchange(port: UInt16, _ request: String, timeout: TimeInterval = 10) throws -> RawResponse {
        let c = try RawClient(port: port, timeout: timeout)
        defer { c.close() }
        try c.send(request)
        return try c.readResponse(toHEAD: request.hasPrefix("HEAD "))
    }
}

// MARK: - curl

struct CurlResult {
    var exitCode: Int32
    var status: Int
    var numConnects: Int
    var body: Data
    var stderr: String
    var bodyText: String { String(decoding: body, as: UTF8.self) }
    var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] }
}

private final class DataBox: @unchecked Sendable { var data = Data() }

enum Curl {
    /// Runs curl with `args` (URLs included) and returns the body on stdout and the status of the
    /// last transfer. Never waits more than `maxTime` (+ a margin).
    static func run(_ args: [String], maxTime: TimeInterval = 15, stdin: FileHandle? = nil) throws -> CurlResult {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        // curl keeps only the last -w: append our status report to the caller's format, if any.
        let report = "%{stderr}\nCURL_STATUS=%{http_code} CURL_CONNECTS=%{num_connects}\n"
        var args = args
        if let i = args.firstIndex(of: "-w"), i + 1 < args.count {
            args[i + 1] += report
        } else {
            args = ["-w", report] + args
        }
        p.arguments = ["-s", "-S", "--noproxy", "*", "--max-time", String(Int(maxTime))] + args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = stdin ?? FileHandle.nullDevice
        try p.run()
        // stderr is small; read it on the side so neither pipe can fill up and stall curl.
        let errBox = DataBox()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { errBox.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let body = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        p.waitUntilExit()
        let errText = String(decoding: errBox.data, as: UTF8.self)
        var status = 0, connects = 0
        for line in errText.split(separator: "\n") where line.hasPrefix("CURL_STATUS=") {
            for field in line.split(separator: " ") {
                let kv = field.split(separator: "=")
                if kv.count == 2, kv[0] == "CURL_STATUS" { status = Int(kv[1]) ?? 0 }
                if kv.count == 2, kv[0] == "CURL_CONNECTS" { connects += Int(kv[1]) ?? 0 }
            }
        }
        return CurlResult(exitCode: p.terminationStatus, status: status, numConnects: connects, body: body, stderr: errText)
    }

    /// GET (or `method`) `url` with a Host header and extra headers.
    static func request(_ url: String, host: String? = nil, method: String? = nil, headers: [String] = [],
                        extra: [String] = [], maxTime: TimeInterval = 15) throws -> CurlResult {
        var args: [String] = []
        if let h = host { args += ["-H", "Host: \(h)"] }
        if let m = method { args += ["-X", m] }
        for h in headers { args += ["-H", h] }
        return try run(args + extra + [url], maxTime: maxTime)
    }
}

// MARK: - The echo backend's reply

/// The JSON body `portico echo` answers with.
struct EchoReply {
    var name: String
    var method: String
    var path: String
    var query: String
    var host: String
    var headers: [String: String]
    var bodyLength: Int

    init(_ data: Data) throws {
        guard let o = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw HarnessError("not an echo JSON body: \(String(decoding: data.prefix(300), as: UTF8.self))")
        }
        name = o["name"] as? String ?? ""
        method = o["method"] as? String ?? ""
        path = o["path"] as? String ?? ""
        query = o["query"] as? String ?? ""
        host = o["host"] as? String ?? ""
        headers = o["headers"] as? [String: String] ?? [:]
        bodyLength = (o["body_length"] as? NSNumber)?.intValue ?? -1
    }

    init(_ bytes: [UInt8]) throws { try self.init(Data(bytes)) }
}

// MARK: - Manifests

/// Builders for the Kubernetes YAML the tests feed to `portico serve`.
enum Manifest {
    /// A selector-less Service with one port named `http` (80) and its Endpoints, one subset per address.
    static func service(_ name: String, endpoints: [String], namespace: String = "default",
                        clientIPAffinity: Bool = false) -> String {
        var s = """
        apiVersion: v1
        kind: Service
        metadata:
          name: \(name)
          namespace: \(namespace)
        spec:
        \(clientIPAffinity ? "  sessionAffinity: ClientIP\n" : "")  ports:
            - name: http
              port: 80
              protocol: TCP
        ---
        apiVersion: v1
        kind: Endpoints
        metadata:
          name: \(name)
          namespace: \(namespace)

        """
        if endpoints.isEmpty {
            s += "subsets: []\n"
        } else {
            s += "subsets:\n"
            for ep in endpoints {
                let parts = ep.split(separator: ":")
                s += """
                  - addresses:
                      - ip: \(parts[0])
                    ports:
                      - name: http
                        port: \(parts[1])
                        protocol: TCP

                """
            }
        }
        return s
    }

    /// A selector-less Service whose endpoints come from a discovery.k8s.io/v1 EndpointSlice
    /// (one slice per port, since a slice has a single port list for all its endpoints).
    static func serviceWithSlices(_ name: String, endpoints: [String], namespace: String = "default") -> String {
        var docs = ["""
        apiVersion: v1
        kind: Service
        metadata:
          name: \(name)
          namespace: \(namespace)
        spec:
          ports:
            - name: http
              port: 80

        """]
        for (i, ep) in endpoints.enumerated() {
            let parts = ep.split(separator: ":")
            docs.append("""
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata:
              name: \(name)-\(i)
              namespace: \(namespace)
              labels:
                kubernetes.io/service-name: \(name)
            addressType: IPv4
            ports:
              - name: http
                port: \(parts[1])
                protocol: TCP
            endpoints:
              - addresses:
                  - \(parts[0])
                conditions:
                  ready: true

            """)
        }
        return join(docs)
    }

    struct Path {
        var path: String
        var type: String
        var service: String
        var portName: String? = nil
        init(_ path: String, _ type: String, _ service: String, portName: String? = nil) {
            self.path = path; self.type = type; self.service = service; self.portName = portName
        }
    }

    struct Rule {
        var host: String?
        var paths: [Path]
        init(host: String?, _ paths: [Path]) { self.host = host; self.paths = paths }
    }

    static func ingress(_ name: String, className: String? = "portico", defaultBackend: String? = nil,
                        rules: [Rule], namespace: String = "default") -> String {
        var s = """
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata:
          name: \(name)
          namespace: \(namespace)
        spec:

        """
        if let c = className { s += "  ingressClassName: \(c)\n" }
        if let d = defaultBackend {
            s += "  defaultBackend:\n    service:\n      name: \(d)\n      port:\n        number: 80\n"
        }
        if !rules.isEmpty {
            s += "  rules:\n"
            for r in rules {
                if let h = r.host { s += "    - host: \"\(h)\"\n      http:\n" } else { s += "    - http:\n" }
                s += "        paths:\n"
                for p in r.paths {
                    let port = p.portName.map { "name: \($0)" } ?? "number: 80"
                    s += """
                              - path: \(p.path)
                                pathType: \(p.type)
                                backend:
                                  service:
                                    name: \(p.service)
                                    port:
                                      \(port)

                    """
                }
            }
        }
        return s
    }

    static func join(_ docs: [String]) -> String { docs.joined(separator: "---\n") }
}

// MARK: - /proc

/// Resident set size of `pid` in bytes (VmRSS), or nil if it cannot be read.
func residentBytes(pid: Int32) -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        if fields.count >= 2, let kb = Int(fields[1]) { return kb * 1024 }
    }
    return nil
}

// MARK: - Per-class fixtures

/// The processes and temp dir one test class shares: started once on first use, stopped in the
/// class's `tearDown()`.
final class Fixture {
    let dir: TempDir
    private(set) var echoes: [String: EchoBackend] = [:]
    private(set) var servers: [PorticoServer] = []
    private var scripted: [ScriptedBackend] = []

    init() throws { dir = try TempDir() }

    @discardableResult
    func echo(_ name: String) throws -> EchoBackend {
        if let e = echoes[name] { return e }
        let e = try EchoBackend(name: name, logDir: dir)
        echoes[name] = e
        return e
    }

    func serve(_ manifests: [String], _ extraArgs: [String] = [], name: String = "serve") throws -> PorticoServer {
        let s = try PorticoServer(manifests: manifests, extraArgs: extraArgs, logDir: dir, name: name)
        servers.append(s)
        return s
    }

    /// A raw TCP backend in this process (see `ScriptedBackend`), stopped after the proxies.
    func scripted(_ mode: ScriptedBackend.Mode) throws -> ScriptedBackend {
        let b = try ScriptedBackend(mode)
        scripted.append(b)
        return b
    }

    /// Stops the proxies first (they drain), then the backends, then removes the temp dir.
    func stop() {
        for s in servers { s.stop() }
        for e in echoes.values { e.stop() }
        for b in scripted { b.stop() }
        servers = []; echoes = [:]; scripted = []
        dir.remove()
    }
}

/// Holds a class's `Fixture`: `get` starts it once (remembering a failure, so later tests fail
/// fast instead of waiting again), `stop` tears it down.
final class SharedFixture<State> {
    private var fixture: Fixture?
    private var state: State?
    private var failure: Error?
    private let start: (Fixture) throws -> State

    init(_ start: @escaping (Fixture) throws -> State) { self.start = start }

    func get() throws -> State {
        if let s = state { return s }
        if let f = failure { throw f }
        do {
            let fx = try Fixture()
            fixture = fx
            do {
                let s = try start(fx)
                state = s
                return s
            } catch {
                fx.stop(); fixture = nil
                throw error
            }
        } catch {
            failure = error
            throw error
        }
    }

    func stop() {
        fixture?.stop()
        fixture = nil; state = nil; failure = nil
    }
}

// MARK: - The https listener

extension PorticoServer {
    /// The https port from the same `listening` line (`... https=IP:PORT ...`).
    func httpsPort() throws -> UInt16 {
        let g = try process.waitForLine(matching: #"listening http=\S+ admin=\S+ https=[0-9.]+:([0-9]+)"#)
        guard let p = UInt16(g[1]) else { throw HarnessError("serve: bad https port in \(g[0])") }
        return p
    }
}

// MARK: - The API listener

extension PorticoServer {
    /// The Kubernetes API port from the same `listening` line (`... api=IP:PORT ...`).
    func apiPort() throws -> UInt16 {
        let g = try process.waitForLine(matching: #"listening http=\S+ admin=\S+.* api=[0-9.]+:([0-9]+)"#)
        guard let p = UInt16(g[1]) else { throw HarnessError("serve: bad api port in \(g[0])") }
        return p
    }
}

// MARK: - Process accounting (reliability tests)

/// CPU time (user + system) `pid` has used so far, in seconds, from /proc/PID/stat fields 14 and 15.
func cpuSeconds(pid: Int32) -> Double? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = text.lastIndex(of: ")") else { return nil }
    // Fields after "(comm)" start at field 3 (state); utime and stime are fields 14 and 15.
    let rest = text[text.index(after: close)...].split(separator: " ")
    guard rest.count > 13, let u = Double(rest[11]), let s = Double(rest[12]) else { return nil }
    return (u + s) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// Number of open descriptors of `pid` (entries of /proc/PID/fd).
func openDescriptors(pid: Int32) -> Int? {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd"))?.count
}

/// Lowers (or raises) a running process's RLIMIT_NOFILE with `prlimit --pid`.
func setDescriptorLimit(pid: Int32, _ limit: Int) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/prlimit")
    p.arguments = ["--pid", String(pid), "--nofile=\(limit):\(limit)"]
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw HarnessError("prlimit --pid \(pid) --nofile=\(limit) failed") }
}

/// The number of stderr lines of `process` that contain every one of `fragments`.
func countLines(_ process: ManagedProcess, containing fragments: [String]) -> Int {
    process.stderr.split(separator: "\n").filter { line in fragments.allSatisfy { line.contains($0) } }.count
}

/// Samples `pid`'s VmRSS every 50 ms while `work` runs; returns the peak growth in bytes over the
/// value read just before (for tests that must show memory stays bounded).
func peakResidentGrowth(pid: Int32, during work: () throws -> Void) rethrows -> Int {
    let base = residentBytes(pid: pid) ?? 0
    let peak = PeakSample(base)
    let stop = DispatchSemaphore(value: 0)
    let done = DispatchSemaphore(value: 0)
    Thread.detachNewThread {
        while stop.wait(timeout: .now() + 0.05) == .timedOut {
            if let v = residentBytes(pid: pid) { peak.update(v) }
        }
        done.signal()
    }
    defer { stop.signal(); done.wait() }
    try work()
    if let v = residentBytes(pid: pid) { peak.update(v) }
    return peak.value - base
}

final class PeakSample: @unchecked Sendable {
    private let lock = NSLock()
    private var peak: Int
    init(_ v: Int) { peak = v }
    func update(_ v: Int) { lock.lock(); peak = max(peak, v); lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return peak }
}

// MARK: - portico-load

/// `portico-load` next to the portico binary (or `$PORTICO_LOAD_BIN`), run to completion; returns
/// its JSON report.
enum LoadTool {
    static let path: String = {
        if let env = ProcessInfo.processInfo.environment["PORTICO_LOAD_BIN"], !env.isEmpty { return env }
        return (Binary.path as NSString).deletingLastPathComponent + "/portico-load"
    }()

    struct Report {
        var json: [String: Any]
        var responses: Int { (json["responses"] as? NSNumber)?.intValue ?? 0 }
        var errors: Int { ((json["errors"] as? [String: Any])?["total"] as? NSNumber)?.intValue ?? -1 }
        var status: [String: Int] { (json["status"] as? [String: Any] ?? [:]).mapValues { ($0 as? NSNumber)?.intValue ?? 0 } }
        func latency(_ key: String) -> Double { ((json["latency_ms"] as? [String: Any])?[key] as? NSNumber)?.doubleValue ?? -1 }
        var p99: Double { latency("p99") }
    }

    static func run(_ args: [String], timeout: TimeInterval = 60) throws -> Report {
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw HarnessError("portico-load not found at \(path): run `swift build` first or set PORTICO_LOAD_BIN")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = ["--json"] + args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let errBox = DataBox()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { errBox.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let killer = DispatchWorkItem { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
        let body = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        p.waitUntilExit()
        killer.cancel()
        guard let o = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] else {
            throw HarnessError("portico-load \(args) exited \(p.terminationStatus) without a JSON report: "
                + String(decoding: errBox.data, as: UTF8.self))
        }
        return Report(json: o)
    }
}
