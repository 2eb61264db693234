import Foundation
import Reactor
#if canImport(Glibc)
import Glibc
#endif

/// The command line's values before checking (kept free of ArgumentParser so tests can build
/// configurations the way the CLI does).
public struct LoadArguments {
    public var url: String?
    public var connections = 10
    public var threads = 1
    public var duration: String?
    public var requests: Int?
    public var rate: Double?
    public var headers: [String] = []
    public var method = "GET"
    public var bodyFile: String?
    public var newConnection = false
    public var idle = false
    public var timeout = "5s"
    public var connectTo: String?
    public var insecure = false
    public var cacert: String?
    public var scenario: String?
    /// Files written after the run (--hist-out, --svg): checked here, before it.
    public var histOut: String?
    public var svg: String?

    public init() {}

    /// Checks everything and builds the run's configuration (resolving names; no connection yet).
    public func makeConfig() throws -> LoadConfig {
        if let p = histOut { try LoadArguments.checkWritable(p, flag: "--hist-out") }
        if let p = svg { try LoadArguments.checkWritable(p, flag: "--svg") }
        let base = try url.map { try LoadURL(parsing: $0) }
        var specs: [RequestSpec]
        if let path = scenario {
            guard bodyFile == nil, method.uppercased() == "GET" else {
                throw UsageError("-m and --body do not apply with --scenario: set method and body per request in the scenario")
            }
            specs = try Scenario.load(path: path, baseURL: base)
            if !headers.isEmpty {
                let extra = try headers.map { try Parse.header($0) }
                for i in specs.indices { specs[i].headers += extra }
            }
        } else {
            guard let u = base else { throw UsageError("give a URL (http://HOST:PORT/PATH) or --scenario FILE") }
            let m = method.uppercased()
            guard RequestTemplate.isValidMethod(m) else { throw UsageError("bad method '\(method)'") }
            var body: [UInt8] = []
            if let f = bodyFile {
                guard let d = FileManager.default.contents(atPath: f) else { throw UsageError("cannot read --body file '\(f)'") }
                body = Array(d)
            }
            specs = [RequestSpec(name: "\(m) \(u.target)", method: m, url: u,
                                 headers: try headers.map { try Parse.header($0) }, body: body)]
        }
        let target = base ?? specs[0].url
        var address: SocketAddress
        if let ct = connectTo {
            let (h, p) = try Parse.hostPort(ct)
            address = try LoadURL.resolve(host: h, port: p)
        } else {
            for s in specs where s.url.host != target.host || s.url.port != target.port || s.url.isTLS != target.isTLS {
                throw UsageError("request '\(s.name)' goes to \(s.url.scheme)://\(s.url.authority), not \(target.scheme)://\(target.authority): one run uses one address (add --connect-to HOST:PORT to send every request there)")
            }
            address = try target.resolve()
        }
        var config = LoadConfig(requests: specs, address: address)
        config.connections = connections
        config.threads = threads
        if let n = requests {
            guard n >= 1 else { throw UsageError("-n must be at least 1") }
            guard duration == nil else { throw UsageError("give either -d or -n, not both") }
            config.totalRequests = n
        } else {
            config.durationNanos = try Parse.duration(duration ?? "10s")
            guard config.durationNanos >= 1_000_000 else { throw UsageError("-d must be at least 1ms") }
        }
        if let r = rate {
            guard r > 0, r.isFinite else { throw UsageError("-R must be a positive number of requests per second") }
            config.rate = r
        }
        config.timeoutNanos = try Parse.duration(timeout)
        config.newConnectionPerRequest = newConnection
        config.holdIdle = idle
        // The requests' scheme, not the base URL's: a scenario's target: wins over the URL, and
        // validate() below refuses a run that mixes the two schemes.
        if specs[0].url.isTLS {
            if let ca = cacert, !FileManager.default.isReadableFile(atPath: ca) {
                throw UsageError("cannot read --cacert '\(ca)'")
            }
            config.tls = TLSOptions(insecure: insecure, caFile: cacert)
            // A --cacert without a usable certificate is a usage error found now, before any connect.
            if cacert != nil { _ = try TLSClient(config.tls!) }
        } else if insecure || cacert != nil {
            throw UsageError("--insecure and --cacert need an https:// target")
        }
        try config.validate()
        return config
    }

    /// Fails when `path` could not be written after the run, so a bad path is a usage error before
    /// it rather than an exit 2 that replaces the run's own status. Writes nothing: the file is
    /// written atomically (a temporary file in the same directory, renamed), so the directory
    /// must be writable.
    static func checkWritable(_ path: String, flag: String) throws {
        let problem = { (why: String) in UsageError("cannot write \(flag) '\(path)': \(why)") }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw problem("it is a directory")
        }
        var dir = (path as NSString).deletingLastPathComponent
        if dir.isEmpty { dir = "." }
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw problem("no directory '\(dir)'")
        }
        guard access(dir, W_OK | X_OK) == 0 else { throw problem("directory '\(dir)' is not writable") }
    }

    /// The target as shown in reports.
    public var title: String {
        if let s = scenario { return "scenario \(s)" + (url.map { " on \($0)" } ?? "") }
        return url ?? ""
    }
}
