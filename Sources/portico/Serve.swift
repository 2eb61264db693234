import ArgumentParser
import Foundation
import CSystem
import Dataplane
import Objects
import Reactor
import RouteCompiler
import ControlPlane
import Server
import TLS
#if canImport(Glibc)
import Glibc
#endif

/// `portico serve`: load Kubernetes manifests and proxy HTTP according to their Ingresses.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the control plane and the proxy for Kubernetes manifests.",
        discussion: """
        Applies the objects in the files and folders given with -f into the store (--data), runs
        the controllers and pods they describe, serves the Kubernetes API (--api), and proxies
        HTTP/1.1 and HTTPS per the Ingresses. A change to any of those files, or SIGHUP, applies
        them again (objects removed from the files are deleted); an invalid change is reported and
        nothing of it is applied. SIGTERM or SIGINT stops accepting, finishes in-flight requests,
        stops the pods, and exits.
        """)

    @Option(name: .customShort("f"), help: "A manifest file or folder (repeatable).")
    var file: [String] = []

    @Option(help: "Address of the HTTP listener.")
    var http: String = "0.0.0.0:8080"

    @Option(help: "Address of the HTTPS listener (certificates from the Ingresses' spec.tls Secrets), or 'off'.")
    var https: String = "0.0.0.0:8443"

    @Option(name: .customLong("default-cert"), help: "PEM certificate (chain) served when no Ingress certificate matches the SNI name; default: a self-signed one made at start.")
    var defaultCert: String?

    @Option(name: .customLong("default-key"), help: "PEM private key of --default-cert.")
    var defaultKey: String?

    @Option(name: .customLong("tls-protocols"), help: "TLS versions the HTTPS listener accepts, as nginx's ssl_protocols: 'TLSv1.2 TLSv1.3', 'TLSv1.3' or 'TLSv1.2'.")
    var tlsProtocols: String = "TLSv1.2 TLSv1.3"

    @Option(help: "Address of the Kubernetes API server (kubectl --server http://ADDR).")
    var api: String = "127.0.0.1:8001"

    @Option(name: .customLong("token-file"), help: "A file holding a bearer token the API and admin listeners require (needed to bind either to a non-loopback address).")
    var tokenFile: String?

    @Option(help: "Directory for the store, pod logs and state.")
    var data: String = ".portico"

    @Option(help: "Address of the admin listener (/healthz, /readyz, /metrics, /routes).")
    var admin: String = "127.0.0.1:9901"

    @Option(help: "Worker threads (event loops); default: one per core.")
    var workers: Int?

    @Option(name: .customLong("ingress-class"), help: "Serve Ingresses of this class (and those with none).")
    var ingressClass: String = "portico"

    @Option(name: .customLong("access-log"), help: "Access log: a file path, 'stdout', or 'off'.")
    var accessLog: String = "stdout"

    @Option(name: .customLong("access-log-format"), help: "Access log format: text or json.")
    var accessLogFormat: String = "text"

    @Option(name: .customLong("event-ttl"), help: "How long Events are kept after they were last seen (kube-apiserver's --event-ttl).")
    var eventTTL: Duration = Duration(argument: "1h")!

    @Option(name: .customLong("client-header-timeout"), help: "Time allowed to send a request head.")
    var clientHeaderTimeout: Duration = Duration(argument: "60s")!

    @Option(name: .customLong("client-body-timeout"), help: "Time allowed between two reads of a request body.")
    var clientBodyTimeout: Duration = Duration(argument: "60s")!

    @Option(name: .customLong("keepalive-timeout"), help: "How long an idle client connection is kept.")
    var keepaliveTimeout: Duration = Duration(argument: "75s")!

    @Option(name: .customLong("send-timeout"), help: "How long a client may stop reading a response.")
    var sendTimeout: Duration = Duration(argument: "60s")!

    @Option(name: .customLong("upstream-connect-timeout"), help: "Time allowed to connect to an endpoint.")
    var upstreamConnectTimeout: Duration = Duration(argument: "5s")!

    @Option(name: .customLong("upstream-timeout"), help: "Time allowed for the response head, and between reads of its body.")
    var upstreamTimeout: Duration = Duration(argument: "60s")!

    @Option(name: .customLong("upstream-idle-timeout"), help: "How long an idle upstream keep-alive connection is kept.")
    var upstreamIdleTimeout: Duration = Duration(argument: "60s")!

    @Option(name: .customLong("upstream-keepalive"), help: "Idle keep-alive connections kept per endpoint and worker.")
    var upstreamKeepalive: Int = 32

    @Option(name: .customLong("drain-timeout"), help: "On SIGTERM, how long in-flight requests may take to finish.")
    var drainTimeout: Duration = Duration(argument: "10s")!

    @Option(name: .customLong("max-body-size"), help: "Largest request body (0 = unlimited), e.g. 10m, 1g.")
    var maxBodySize: ByteSize = ByteSize(argument: "1g")!

    @Option(name: .customLong("max-connections"), help: "Client connections per worker (0 = unlimited).")
    var maxConnections: Int = 0

    @Option(help: "Tries per request: the first plus retries on another endpoint (idempotent, bodiless requests that failed before any response byte).")
    var tries: Int = 2

    @Option(name: .customLong("eject-after"), help: "Consecutive failures (connect errors, 5xx) that eject an endpoint; 0 disables.")
    var ejectAfter: Int = 3

    @Option(name: .customLong("eject-time"), help: "First ejection period (doubles with each ejection, up to 5m).")
    var ejectTime: Duration = Duration(argument: "10s")!

    @Option(name: .customLong("log-level"), help: "debug, info, warn or error.")
    var logLevel: String = "info"

    func validate() throws {
        if file.isEmpty { throw ValidationError("at least one -f PATH is required") }
        if SocketAddress(parsing: http) == nil { throw ValidationError("--http: '\(http)' is not an IP:PORT address") }
        if https != "off" && SocketAddress(parsing: https) == nil { throw ValidationError("--https: '\(https)' is not an IP:PORT address (or 'off')") }
        if (defaultCert == nil) != (defaultKey == nil) { throw ValidationError("--default-cert and --default-key go together") }
        do { _ = try TLSProtocols(parsing: tlsProtocols) } catch { throw ValidationError("--tls-protocols: \(error)") }
        if SocketAddress(parsing: api) == nil { throw ValidationError("--api: '\(api)' is not an IP:PORT address") }
        if tokenFile == nil {
            for (flag, value) in [("--api", api), ("--admin", admin)] {
                if let a = SocketAddress(parsing: value), !Serve.isLoopback(a) {
                    throw ValidationError("\(flag) \(value) is not a loopback address: it needs --token-file (a bearer token every request must carry)")
                }
            }
        }
        if SocketAddress(parsing: admin) == nil { throw ValidationError("--admin: '\(admin)' is not an IP:PORT address") }
        if let w = workers, w < 1 || w > 256 { throw ValidationError("--workers must be between 1 and 256") }
        if !["text", "json"].contains(accessLogFormat) { throw ValidationError("--access-log-format must be text or json") }
        if tries < 1 || tries > 10 { throw ValidationError("--tries must be between 1 and 10") }
        if !["debug", "info", "warn", "error"].contains(logLevel) { throw ValidationError("--log-level must be debug, info, warn or error") }
    }

    static func isLoopback(_ a: SocketAddress) -> Bool {
        let ip = a.ipString
        return ip.hasPrefix("127.") || ip == "::1"
    }

    /// The token in `--token-file` (surrounding whitespace removed), or nil.
    func loadToken() throws -> [UInt8]? {
        guard let path = tokenFile else { return nil }
        guard let bytes = readFile(path) else { throw ValidationError("--token-file: cannot read '\(path)'") }
        let token = Array(String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines).utf8)
        guard token.count >= 16 else { throw ValidationError("--token-file: the token in '\(path)' is shorter than 16 bytes") }
        return token
    }

    func run() throws {
        Log.minimumLevel = ["debug": .debug, "info": .info, "warn": .warning, "error": .error][logLevel] ?? .info
        let log = Log("serve")
        var config = ProxyConfig(httpAddress: SocketAddress(parsing: http)!)
        config.httpsAddress = https == "off" ? nil : SocketAddress(parsing: https)
        config.workers = workers ?? Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        config.clientHeaderTimeout = clientHeaderTimeout.nanos
        config.clientBodyTimeout = clientBodyTimeout.nanos
        config.keepaliveTimeout = keepaliveTimeout.nanos
        config.sendTimeout = sendTimeout.nanos
        config.upstreamConnectTimeout = upstreamConnectTimeout.nanos
        config.upstreamTimeout = upstreamTimeout.nanos
        config.upstreamIdleTimeout = upstreamIdleTimeout.nanos
        config.upstreamKeepalive = upstreamKeepalive
        config.drainTimeout = drainTimeout.nanos
        config.maxBodySize = maxBodySize.bytes
        config.maxConnections = maxConnections
        config.tries = tries
        config.health.consecutiveFailures = ejectAfter
        config.health.baseEjectionNanos = ejectTime.nanos

        // Signals are read from a signalfd on the main loop: block them before any thread starts.
        signal(SIGPIPE, SIG_IGN)
        var mask = sigset_t()
        let signals: [Int32] = [SIGTERM, SIGINT, SIGHUP]
        _ = portico_block_signals(signals, Int32(signals.count), &mask)

        let token = try loadToken()
        let loop = EventLoop()
        let source = ManifestSource(paths: file, ingressClass: ingressClass)
        let manifests: [LoadedObject]
        switch source.load() {
        case .success(let objects): manifests = objects
        case .failure(let problems):
            for p in problems { log.error(p) }
            throw ExitCode(1)
        }
        let host: ControlPlaneHost
        do {
            host = try ControlPlaneHost(loop: loop, dataDirectory: data, apiAddress: SocketAddress(parsing: api)!,
                                        ingressClass: ingressClass, eventTTL: Double(eventTTL.nanos) / 1e9)
            host.api.bearerToken = token
            let problems = host.apply(manifests)
            if !problems.isEmpty {
                for p in problems { log.error(p) }
                throw ExitCode(1)
            }
            try host.start()
        } catch let e as ExitCode {
            throw e
        } catch {
            log.error("control plane (--data \(data), --api \(api)): \(error)")
            throw ExitCode(1)
        }
        let initial = source.compile(host.routingObjects(), generation: 1)

        let logFD: Int32?
        switch accessLog {
        case "off": logFD = nil
        case "stdout": logFD = 1
        default:
            let fd = open(accessLog, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw ValidationError("--access-log: cannot open '\(accessLog)': \(String(cString: strerror(errno)))") }
            logFD = fd
        }
        let format = AccessLogFormat(rawValue: accessLogFormat) ?? .text

        var tlsContext: TLSServerContext? = nil
        if config.httpsAddress != nil {
            do {
                var fallback: CertificateSource? = nil
                if let certPath = defaultCert, let keyPath = defaultKey {
                    guard let cert = readFile(certPath) else { throw ValidationError("--default-cert: cannot read '\(certPath)'") }
                    guard let key = readFile(keyPath) else { throw ValidationError("--default-key: cannot read '\(keyPath)'") }
                    fallback = CertificateSource(name: "--default-cert", hosts: [], certPEM: cert, keyPEM: key)
                }
                let protocols = try TLSProtocols(parsing: tlsProtocols)  // checked in validate()
                let ctx = try TLSServerContext(defaultCertificate: fallback, protocols: protocols) { warning in Log("tls").warning(warning) }
                source.reportTLS(ctx.update(initial.certificates))
                tlsContext = ctx
            } catch let e as ValidationError {
                throw e
            } catch {
                log.error("TLS: \(error)")
                throw ExitCode(1)
            }
        }

        let proxy: ProxyServer
        do {
            proxy = try ProxyServer(config: config, table: initial, tls: tlsContext) { _ in
                logFD.map { AccessLog(fd: $0, format: format) }
            }
        } catch {
            log.error("cannot listen on \(http): \(error)")
            throw ExitCode(1)
        }

        let control = ControlLoop(loop: loop, proxy: proxy, source: source, host: host, signalMask: mask)
        control.adminToken = token
        host.onRoutingChange = { [unowned control] in control.recompile(reason: "objects changed") }
        let adminServer: HTTPServer
        do {
            adminServer = try HTTPServer(loop: loop, address: SocketAddress(parsing: admin)!, name: "admin") { request in
                control.admin(request)
            }
        } catch {
            log.error("cannot listen on \(admin) (admin): \(error)")
            throw ExitCode(1)
        }
        control.watch()
        control.startHousekeeping()
        proxy.start()
        let httpsText = proxy.boundTLSAddress.map { " https=\($0)" } ?? ""
        log.info("listening http=\(proxy.boundAddress) admin=\(adminServer.boundAddress)\(httpsText) api=\(host.api.boundAddress) workers=\(config.workers) routes=\(initial.ingresses.count) ingress(es), \(initial.backends.count) backend(s)")
        loop.run()
        proxy.wait()
        log.info("stopped")
    }
}

/// The bytes of a file, or nil when it cannot be read.
func readFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, 65536) }
        if n < 0 { return nil }
        if n == 0 { return out }
        out.append(contentsOf: chunk[0..<n])
    }
}
