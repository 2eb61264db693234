import CSystem
import ControlPlane
import Dataplane
import Objects
import Reactor
import RouteCompiler
import Server
import TLS
#if canImport(Glibc)
import Glibc
#endif

/// The manifests given with -f: loaded and validated as a whole, so a half-edited file never
/// reaches the store; and the route compilation shared by every source of objects.
struct ManifestSource {
    let paths: [String]
    let ingressClass: String
    /// Problems found by the last compilation, so each is logged once, not on every recompile.
    let reported = ProblemLog()
    let reportedTLS = ProblemLog()

    enum Loaded { case success([LoadedObject]), failure([String]) }

    func load() -> Loaded {
        let loaded = ManifestLoader.load(paths: paths)
        if !loaded.problems.isEmpty { return .failure(loaded.problems.map { $0.description }) }
        return .success(loaded.objects)
    }

    func compile(_ objects: [KubeObject], generation: UInt64) -> RouteTable {
        let options = CompileOptions(ingressClass: ingressClass, generation: generation)
        let (table, problems) = RouteCompiler.compile(objects, options: options)
        reported.report(problems.map { (.warning, $0.description) }, as: "routes")
        return table
    }
}

extension ManifestSource {
    func reportTLS(_ problems: [TLSProblem]) {
        reportedTLS.report(problems.map { ($0.isWarning ? .warning : .error, $0.description) }, as: "tls")
    }
}

/// Logs each problem once: a line is written when it first appears in a report, and again only
/// if it went away and came back (recompiles happen on every object change).
final class ProblemLog {
    private var previous: Set<String> = []

    func report(_ problems: [(Log.Level, String)], as component: String) {
        let log = Log(component)
        var now: Set<String> = []
        for (level, text) in problems {
            now.insert(text)
            if previous.contains(text) { continue }
            switch level {
            case .error: log.error(text)
            case .warning: log.warning(text)
            default: log.info(text)
            }
        }
        previous = now
    }
}

/// The main thread's loop: signals, file watching and reloads, and the admin endpoints.
final class ControlLoop {
    let loop: EventLoop
    let proxy: ProxyServer
    let source: ManifestSource
    let host: ControlPlaneHost
    let log = Log("control")
    private var generation: UInt64 = 1
    private var draining = false
    /// Set once every pod has been stopped at shutdown (the loop runs until then).
    fileprivate var podsStopped = false
    private var signalChannel: SignalChannel?
    private var watcher: FileWatcher?
    private var drainWaiter: Channel?
    private var housekeeping: Channel?

    init(loop: EventLoop, proxy: ProxyServer, source: ManifestSource, host: ControlPlaneHost, signalMask: sigset_t) {
        self.loop = loop
        self.proxy = proxy
        self.source = source
        self.host = host
        var mask = signalMask
        let fd = signalfd(-1, &mask, Int32(SFD_NONBLOCK | SFD_CLOEXEC))
        let channel = SignalChannel(fd: fd, control: self)
        signalChannel = channel
        loop.register(channel, events: EPOLLIN.rawValue)
    }

    /// Every few seconds, give freed heap pages back to the kernel: connection buffers freed by
    /// thousands of idle or closed connections otherwise stay in the process's RSS.
    func startHousekeeping() {
        let trim = HousekeepingTimer(queue: loop.timerQueue(nanos: 5_000_000_000))
        housekeeping = trim
        trim.queue.arm(trim)
    }

    func watch() {
        let w = FileWatcher(paths: source.paths, loop: loop) { [unowned self] in self.reload(reason: "manifest change") }
        watcher = w
    }

    func handleSignal(_ signo: Int32) {
        switch signo {
        case SIGHUP:
            reload(reason: "SIGHUP")
        case SIGTERM, SIGINT:
            guard !draining else { return }
            draining = true
            log.info("received \(signo == SIGTERM ? "SIGTERM" : "SIGINT"): draining")
            proxy.drain()
            host.shutdown { [weak self] in
                self?.podsStopped = true
                self?.log.info("pods stopped")
            }
            // The control loop ends once the workers have drained (checked by a short timer).
            let waiter = DrainWaiter(control: self, queue: loop.timerQueue(nanos: 50_000_000))
            drainWaiter = waiter  // a timer queue does not retain what it holds
            waiter.queue.arm(waiter)
        default:
            break
        }
    }

    func workersStopped() -> Bool {
        proxy.isStopped
    }

    /// Re-reads the -f manifests into the store, then recompiles the routes.
    func reload(reason: String) {
        guard !draining else { return }
        switch source.load() {
        case .success(let objects):
            let problems = host.apply(objects)
            for p in problems { log.error(p) }
            host.cancelPendingRoutingChange()
            recompile(reason: reason)
        case .failure(let problems):
            for p in problems { log.error(p) }
            log.error("reload (\(reason)) rejected: the previous routes keep serving")
        }
    }

    /// Compiles the routes from the store's objects and hands them to the proxy.
    func recompile(reason: String) {
        guard !draining else { return }
        generation += 1
        let table = source.compile(host.routingObjects(), generation: generation)
        if let ctx = proxy.tls {
            // New handshakes use the new certificates at once; open connections keep theirs.
            source.reportTLS(ctx.update(table.certificates))
        }
        proxy.publish(table)
        log.info("reloaded (\(reason)): \(table.ingresses.count) ingress(es), \(table.backends.count) backend(s), generation \(generation)")
    }

    /// Process-wide gauges appended to the proxy's metrics: the malloc heap in use, which tells
    /// a growing structure (it grows) from pages the allocator keeps (RSS grows, it does not).
    static func processMetrics() -> String {
        "# HELP portico_heap_bytes Bytes allocated from the heap and not freed (glibc mallinfo2: uordblks + hblkhd).\n"
            + "# TYPE portico_heap_bytes gauge\n"
            + "portico_heap_bytes \(portico_heap_bytes())\n"
    }

    /// When set, admin requests must carry `Authorization: Bearer <token>`.
    var adminToken: [UInt8]?

    func admin(_ r: ServerRequest) -> ServerReply {
        if let token = adminToken, !BearerToken.matches(r.header("authorization"), token) {
            return .now(.text(401, "unauthorized: send Authorization: Bearer <token from --token-file>\n"))
        }
        switch r.path {
        case "/healthz":
            return .now(.text(200, "ok\n"))
        case "/readyz":
            return .now(draining ? .text(503, "draining\n") : .text(200, "ready\n"))
        case "/metrics":
            let text = proxy.snapshot().prometheusText() + ControlLoop.processMetrics()
            return .now(.text(200, text, contentType: "text/plain; version=0.0.4; charset=utf-8"))
        case "/routes":
            return .now(.text(200, proxy.routeTable.jsonDescription(), contentType: "application/json"))
        default:
            return .now(.text(404, "not found: try /healthz, /readyz, /metrics or /routes\n"))
        }
    }
}

private final class HousekeepingTimer: Channel {
    let queue: TimerQueue
    init(queue: TimerQueue) {
        self.queue = queue
        super.init(fd: -1)
    }
    override func handleTimeout() {
        _ = portico_malloc_trim()
        queue.arm(self)
    }
}

private final class DrainWaiter: Channel {
    unowned let control: ControlLoop
    let queue: TimerQueue
    init(control: ControlLoop, queue: TimerQueue) {
        self.control = control
        self.queue = queue
        super.init(fd: -1)
    }
    override func handleTimeout() {
        if control.workersStopped() && control.podsStopped { control.loop.stop() } else { queue.arm(self) }
    }
}

private final class SignalChannel: Channel {
    unowned let control: ControlLoop
    init(fd: Int32, control: ControlLoop) {
        self.control = control
        super.init(fd: fd)
    }
    override func handleEvent(_ events: UInt32) {
        var info = signalfd_siginfo()
        while read(fd, &info, MemoryLayout<signalfd_siginfo>.size) == MemoryLayout<signalfd_siginfo>.size {
            control.handleSignal(Int32(info.ssi_signo))
        }
    }
}

/// Watches the -f paths with inotify (the folder of each file, since editors replace files by
/// renaming) and calls back once changes have settled for 200 ms.
final class FileWatcher: Channel {
    private var watched: [Int32: (dir: String, only: String?)] = [:]
    private let onChange: () -> Void
    private let settle: TimerQueue
    private let log = Log("watch")

    init(paths: [String], loop: EventLoop, onChange: @escaping () -> Void) {
        self.onChange = onChange
        self.settle = loop.timerQueue(nanos: 200_000_000)
        super.init(fd: inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC)))
        let mask = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_MODIFY)
        for p in paths {
            var st = stat()
            var dir = p
            var only: String? = nil
            if stat(p, &st) == 0 && (st.st_mode & S_IFMT) != S_IFDIR {
                if let slash = p.lastIndex(of: "/") {
                    dir = String(p[..<slash]); only = String(p[p.index(after: slash)...])
                    if dir.isEmpty { dir = "/" }
                } else {
                    dir = "."; only = p
                }
            }
            let wd = inotify_add_watch(fd, dir, mask)
            if wd >= 0 { watched[wd] = (dir, only) } else { log.warning("cannot watch \(dir): \(String(cString: strerror(errno)))") }
        }
        loop.register(self, events: EPOLLIN.rawValue)
    }

    override func handleEvent(_ events: UInt32) {
        var buffer = [UInt8](repeating: 0, count: 8192)
        var relevant = false
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, 8192) }
            if n <= 0 { break }
            var off = 0
            buffer.withUnsafeBytes { raw in
                while off + MemoryLayout<inotify_event>.size <= n {
                    let ev = raw.load(fromByteOffset: off, as: inotify_event.self)
                    let nameStart = off + MemoryLayout<inotify_event>.size
                    let nameBytes = raw[nameStart..<(nameStart + Int(ev.len))].prefix { $0 != 0 }
                    let name = String(decoding: nameBytes, as: UTF8.self)
                    if let w = watched[ev.wd] {
                        let isManifest = name.hasSuffix(".yaml") || name.hasSuffix(".yml") || name.hasSuffix(".json")
                        if let only = w.only { if name == only { relevant = true } } else if isManifest { relevant = true }
                    }
                    off = nameStart + Int(ev.len)
                }
            }
        }
        if relevant { settle.arm(self) }
    }

    override func handleTimeout() { onChange() }
}
