import CSystem
import Objects
import Reactor
#if canImport(Glibc)
import Glibc
#endif

/// One probe attempt, on the event loop: a non-blocking TCP connect (tcpSocket), an HTTP/1.1 GET
/// whose status must be 200–399 (httpGet), or a spawned command that must exit 0 (exec). Each
/// attempt reports once, through `done`, within `timeout` seconds.
final class ProbeAttempt: Channel {
    enum Mode { case tcp, http(request: [UInt8]) }
    private let mode: Mode
    private var done: ((Bool) -> Void)?
    private var timer: AgentTimers.Handle?
    private var response: [UInt8] = []
    private var sent = false

    private init(fd: Int32, mode: Mode) {
        self.mode = mode
        super.init(fd: fd)
    }

    /// Starts a tcpSocket or httpGet attempt against `host:port`.
    static func connect(host: String, port: Int, path: String?, headers: [Pod.HTTPHeader] = [], loop: EventLoop, timers: AgentTimers,
                        timeout: Double, done: @escaping (Bool) -> Void) {
        guard let address = SocketAddress(ip: host, port: UInt16(clamping: port)),
              let fd = try? Socket.connect(to: address) else { done(false); return }
        let mode: Mode
        if let path {
            let p = path.isEmpty ? "/" : (path.hasPrefix("/") ? path : "/" + path)
            // Kubernetes' defaults, each replaced by an `httpHeaders` entry of the same name.
            var fields = [("Host", "\(host):\(port)"), ("User-Agent", "kube-probe/portico"), ("Accept", "*/*")]
            for h in headers {
                fields.removeAll { $0.0.lowercased() == h.name.lowercased() }
                fields.append((h.name, h.value))
            }
            var req = "GET \(p) HTTP/1.1\r\n"
            for (name, value) in fields { req += "\(name): \(value)\r\n" }
            req += "Connection: close\r\n\r\n"
            mode = .http(request: Array(req.utf8))
        } else {
            mode = .tcp
        }
        let attempt = ProbeAttempt(fd: fd, mode: mode)
        attempt.done = done
        loop.register(attempt)
        attempt.timer = timers.after(timeout) { [weak attempt] in attempt?.finish(false) }
    }

    private func finish(_ ok: Bool) {
        guard let d = done else { return }
        done = nil
        timer?.cancel()
        if let l = loop { l.close(self) } else { Glibc.close(fd) }
        d(ok)
    }

    override func handleEvent(_ events: UInt32) {
        guard done != nil else { return }
        if !sent {
            if events & (EPOLLOUT.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) == 0 { return }
            guard Socket.connectResult(fd) == 0 else { finish(false); return }
            guard case let .http(request) = mode else { finish(true); return }
            sent = true
            let r = request.withUnsafeBytes { Socket.write(fd, $0) }
            guard case let .bytes(n) = r, n == request.count else { finish(false); return }
        }
        var chunk = [UInt8](repeating: 0, count: 4096)
        while done != nil {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                response.append(contentsOf: chunk[0..<n])
                if let ok = Self.statusOK(response) { finish(ok); return }
                if response.count > 8192 { finish(false); return }
            } else if n == 0 {
                finish(Self.statusOK(response) ?? false); return
            } else {
                if errno == EAGAIN || errno == EINTR { return }
                finish(false); return
            }
        }
    }

    /// nil until the status line is complete; then whether its code is 200–399.
    static func statusOK(_ bytes: [UInt8]) -> Bool? {
        guard let end = bytes.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let line = String(decoding: bytes[..<end], as: UTF8.self)
        let parts = line.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let code = Int(parts[1]) else { return false }
        return (200...399).contains(code)
    }
}

/// The schedule and thresholds of one probe of one container (Kubernetes' prober worker).
final class ProbeWorker {
    enum Kind: String { case readiness, liveness, startup }
    let kind: Kind
    let probe: Pod.Probe
    var successes = 0
    var failures = 0
    var timer: AgentTimers.Handle?
    var stopped = false

    init(kind: Kind, probe: Pod.Probe) { self.kind = kind; self.probe = probe }

    var period: Double { Double(max(1, probe.periodSeconds ?? 10)) }
    var timeout: Double { Double(max(1, probe.timeoutSeconds ?? 1)) }
    var initialDelay: Double { Double(max(0, probe.initialDelaySeconds ?? 0)) }
    /// Kubernetes requires 1 for liveness and startup probes.
    var successThreshold: Int { kind == .readiness ? max(1, probe.successThreshold ?? 1) : 1 }
    var failureThreshold: Int { max(1, probe.failureThreshold ?? 3) }

    func stop() {
        stopped = true
        timer?.cancel()
        timer = nil
    }

    /// Counts one result; returns true when the result crosses a threshold (the caller acts).
    func record(_ ok: Bool) -> Bool {
        if ok {
            failures = 0; successes += 1
            return successes == successThreshold
        }
        successes = 0; failures += 1
        return failures == failureThreshold
    }
}
