import Foundation
import Reactor
@testable import TLS
import XCTest

/// Certificates made once per test run with the openssl command line in a temporary directory:
/// a test CA, an intermediate CA, and leaf certificates for the demo hosts.
final class TestCertificates: @unchecked Sendable {
    static let shared: TestCertificates = {
        do { return try TestCertificates() } catch { fatalError("making test certificates: \(error)") }
    }()

    let directory: URL

    private init() throws {
        signal(SIGPIPE, SIG_IGN)
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("portico-tls-tests-\(getpid())")
        try? FileManager.default.removeItem(at: directory)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try makeCA("ca", subject: "/CN=Portico Test CA")
        try makeCA("other-ca", subject: "/CN=Some Other CA")
        try makeCA("intermediate", subject: "/CN=Portico Test Intermediate", signedBy: "ca")
        try makeLeaf("demo", cn: "demo.localhost", sans: ["demo.localhost"], key: .ecdsa, signedBy: "ca")
        try makeLeaf("api", cn: "api.localhost", sans: ["api.localhost"], key: .rsa, signedBy: "ca")
        try makeLeaf("apps", cn: "*.apps.localhost", sans: ["*.apps.localhost"], key: .ecdsa, signedBy: "ca")
        try makeLeaf("demo2", cn: "demo.localhost rotated", sans: ["demo.localhost"], key: .ecdsa, signedBy: "ca")
        try makeLeaf("chained", cn: "chained.localhost", sans: ["chained.localhost"], key: .ecdsa, signedBy: "intermediate")
        try makeLeaf("default", cn: "test default", sans: ["default.invalid"], key: .ecdsa, signedBy: "ca")
    }

    enum KeyType { case ecdsa, rsa }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    func bytes(_ name: String) -> [UInt8] { Array(FileManager.default.contents(atPath: path(name)) ?? Data()) }

    /// A source for leaf `name`; with `withChain`, tls.crt is the leaf then its intermediate.
    func source(_ name: String, hosts: [String], withChain: Bool = false) -> CertificateSource {
        var cert = bytes("\(name).crt")
        if withChain { cert += bytes("intermediate.crt") }
        return CertificateSource(name: "default/\(name)-tls", hosts: hosts, certPEM: cert, keyPEM: bytes("\(name).key"))
    }

    private func keyArgs(_ type: KeyType) -> [String] {
        switch type {
        case .ecdsa: return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        case .rsa: return ["-newkey", "rsa:2048"]
        }
    }

    private func makeCA(_ name: String, subject: String, signedBy issuer: String? = nil) throws {
        let ext = path("\(name).ext")
        try "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n".write(toFile: ext, atomically: true, encoding: .utf8)
        if let issuer {
            try openssl(["req", "-new"] + keyArgs(.ecdsa) + ["-nodes", "-keyout", path("\(name).key"), "-out", path("\(name).csr"), "-subj", subject])
            try openssl(["x509", "-req", "-in", path("\(name).csr"), "-CA", path("\(issuer).crt"), "-CAkey", path("\(issuer).key"),
                         "-CAcreateserial", "-out", path("\(name).crt"), "-days", "2", "-extfile", ext])
        } else {
            try openssl(["req", "-x509"] + keyArgs(.ecdsa) + ["-nodes", "-keyout", path("\(name).key"), "-out", path("\(name).crt"),
                         "-subj", subject, "-days", "2", "-addext", "basicConstraints=critical,CA:TRUE",
                         "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        }
    }

    private func makeLeaf(_ name: String, cn: String, sans: [String], key: KeyType, signedBy issuer: String) throws {
        let ext = path("\(name).ext")
        let san = sans.map { "DNS:\($0)" }.joined(separator: ",")
        try "subjectAltName=\(san)\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n".write(toFile: ext, atomically: true, encoding: .utf8)
        try openssl(["req", "-new"] + keyArgs(key) + ["-nodes", "-keyout", path("\(name).key"), "-out", path("\(name).csr"), "-subj", "/CN=\(cn)"])
        try openssl(["x509", "-req", "-in", path("\(name).csr"), "-CA", path("\(issuer).crt"), "-CAkey", path("\(issuer).key"),
                     "-CAcreateserial", "-out", path("\(name).crt"), "-days", "2", "-extfile", ext])
    }

    private func openssl(_ args: [String]) throws {
        let result = runProcess("/usr/bin/openssl", args, input: nil, timeout: 30)
        if result.status != 0 { throw TLSError("openssl \(args.joined(separator: " ")): \(result.output)") }
    }
}

/// Runs a process, feeding `input` to stdin, and returns its exit status and stdout+stderr.
func runProcess(_ executable: String, _ args: [String], input: [UInt8]?, timeout: TimeInterval) -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = args
    let out = Pipe()
    let inPipe = Pipe()
    process.standardOutput = out
    process.standardError = out
    process.standardInput = inPipe
    do { try process.run() } catch { return (-1, "\(error)") }
    if let input { inPipe.fileHandleForWriting.write(Data(input)) }
    try? inPipe.fileHandleForWriting.close()
    let collected = OutputCollector()
    let reader = Thread { collected.set(out.fileHandleForReading.readDataToEndOfFile()) }
    reader.start()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { usleep(10_000) }
    if process.isRunning { process.terminate() }
    process.waitUntilExit()
    while !collected.done { usleep(1_000) }
    return (process.terminationStatus, String(decoding: collected.data, as: UTF8.self))
}

final class OutputCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var _data = Data()
    private var _done = false
    func set(_ d: Data) { lock.lock(); _data = d; _done = true; lock.unlock() }
    var done: Bool { lock.lock(); defer { lock.unlock() }; return _done }
    var data: Data { lock.lock(); defer { lock.unlock() }; return _data }
}

/// What the test server saw on one connection.
struct ServedConnection {
    var status: TLSHandshakeStatus
    var serverName: String?
    var alpn: String?
    var resumed: Bool
    var version: String
    var request: String
}

/// A one-connection-at-a-time HTTPS server on 127.0.0.1 (random port), on its own thread, using
/// TLSSession over a non-blocking socket with poll(): it answers one request with `200 ok`,
/// and a plain HTTP request with nginx's 400.
final class TestTLSServer: @unchecked Sendable {
    let context: TLSServerContext
    let port: UInt16
    private let listenFD: Int32
    private let lock = NSLock()
    private var _served: [ServedConnection] = []
    private var stopping = false
    private let finished = DispatchSemaphore(value: 0)

    init(context: TLSServerContext) throws {
        self.context = context
        listenFD = try Socket.listen(SocketAddress(ip: "127.0.0.1", port: 0)!, reusePort: false)
        port = Socket.localAddress(listenFD)!.port
        Thread { [self] in self.run() }.start()
    }

    var served: [ServedConnection] { lock.lock(); defer { lock.unlock() }; return _served }

    func stop() {
        lock.lock(); stopping = true; lock.unlock()
        finished.wait()
        close(listenFD)
    }

    private var isStopping: Bool { lock.lock(); defer { lock.unlock() }; return stopping }

    private func run() {
        defer { finished.signal() }
        while !isStopping {
            var p = pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 50) <= 0 { continue }
            var peer = sockaddr_storage()
            guard let fd = try? Socket.accept(listenFD, peer: &peer) else { continue }
            let record = serve(fd)
            // Recorded before the close: a client that reads to EOF then finds its record.
            lock.lock(); _served.append(record); lock.unlock()
            close(fd)
        }
    }

    /// Waits for `fd` to be readable (or writable); false on timeout.
    private func wait(_ fd: Int32, write: Bool, deadline: Date) -> Bool {
        let ms = Int32(max(0, deadline.timeIntervalSinceNow * 1000))
        var p = pollfd(fd: fd, events: Int16(write ? POLLOUT : POLLIN), revents: 0)
        return poll(&p, 1, ms) > 0
    }

    private func serve(_ fd: Int32) -> ServedConnection {
        let deadline = Date().addingTimeInterval(5)
        let session = TLSSession(server: context, fd: fd)
        var record = ServedConnection(status: .failed("timeout"), serverName: nil, alpn: nil, resumed: false, version: "", request: "")
        handshake: while true {
            let status = session.handshake()
            switch status {
            case .done:
                record.status = .done
                break handshake
            case .wantRead, .wantWrite:
                if !wait(fd, write: status == .wantWrite, deadline: deadline) { return record }
            case .plainHTTP:
                record.status = .plainHTTP
                let answer = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 48\r\nConnection: close\r\n\r\nThe plain HTTP request was sent to HTTPS port\r\n\r\n"
                _ = answer.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
                return record
            case .failed:
                record.status = status
                return record
            }
        }
        record.serverName = session.serverName
        record.alpn = session.negotiatedProtocol
        record.resumed = session.isResumed
        record.version = session.protocolVersion
        let buffer = Buffer(capacity: 4096)
        while !String(decoding: buffer.readable, as: UTF8.self).contains("\r\n\r\n") {
            switch session.read(into: buffer, minSpace: 1024) {
            case .bytes: continue
            case .wouldBlock:
                if !wait(fd, write: session.lastWantWrite, deadline: deadline) { return record }
            case .eof, .error:
                record.request = String(decoding: buffer.readable, as: UTF8.self)
                return record
            }
        }
        record.request = String(decoding: buffer.readable, as: UTF8.self)
        let head = Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n".utf8)
        let body = Array("ok".utf8)
        var headSent = 0, bodySent = 0
        while headSent < head.count || bodySent < body.count {
            let result = head.withUnsafeBytes { h in body.withUnsafeBytes { b in
                session.write(UnsafeRawBufferPointer(rebasing: h[headSent...]), UnsafeRawBufferPointer(rebasing: b[bodySent...]))
            } }
            switch result {
            case .bytes(let n):
                let fromHead = min(n, head.count - headSent)
                headSent += fromHead
                bodySent += n - fromHead
            case .wouldBlock:
                if !wait(fd, write: session.lastWantWrite, deadline: deadline) { return record }
            case .eof, .error:
                return record
            }
        }
        session.shutdown()
        return record
    }
}

/// `openssl s_client` against the test server: sends one HTTP/1.0 request and waits for the
/// server to close (so session tickets sent after the handshake are read).
func sClient(port: UInt16, _ extra: [String]) -> String {
    let args = ["s_client", "-connect", "127.0.0.1:\(port)", "-ign_eof"] + extra
    return runProcess("/usr/bin/openssl", args, input: Array("GET / HTTP/1.0\r\n\r\n".utf8), timeout: 15).output
}

/// The `subject=` line s_client prints for the served leaf certificate.
func servedSubject(_ output: String) -> String? {
    for line in output.split(separator: "\n") where line.hasPrefix("subject=") {
        return String(line.dropFirst("subject=".count)).trimmingCharacters(in: .whitespaces)
    }
    return nil
}
