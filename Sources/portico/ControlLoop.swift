import CSystem
import Dataplane
import Objects
import Reactor
import RouteCompiler
import Server
#if canImport(Glibc)
import Glibc
#endif

/// Where routes come from when serving static manifests: the files and folders given with -f.
struct ManifestSource {
    let paths: [String]
    let ingressClass: String

    enum Outcome { case success(RouteTable), failure([String]) }

    /// Loads and compiles every manifest. Any problem rejects the whole set, so a half-edited
    /// file never replaces routes that work.
    func compile(generation: UInt64) -> Outcome {
        let loaded = ManifestLoader.load(paths: paths)
        if !loaded.problems.isEmpty {
            return .failure(loaded.problems.map { $0.description })
        }
        let options = CompileOptions(ingressClass: ingressClass, generation: generation)
        let (table, problems) = RouteCompiler.compile(loaded.objects.map { $0.object }, options: options)
        for p in problems { Log("routes").warning(p.description) }
        return .success(table)
    }
}

/// The main thread's loop: signals, file watching and reloads, and the admin endpoints.
final class ControlLoop {
    let loop: EventLoop
    let proxy: ProxyServer
    let source: ManifestSource
    let log = Log("control")
    private var generation: UInt64 = 1
    private var draining = false
    private var signalChannel: SignalChannel?
    private var watcher: FileWatcher?
    private var drainWaiter: Channel?

    init(loop: EventLoop, proxy: ProxyServer, source: ManifestSource, signalMask: sigset_t) {
        self.loop = loop
        self.proxy = proxy
        self.source = source
        var mask = signalMask
        let fd = signalfd(-1, &mask, Int32(SFD_NONBLOCK | SFD_CLOEXEC))
        let channel = SignalChannel(fd: fd, control: self)
        signalChannel = channel
        loop.register(channel, events: EPOLLIN.rawValue)
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

    func reload(reason: String) {
        guard !draining else { return }
        let next = generation + 1
        switch source.compile(generation: next) {
        case .success(let table):
            generation = next
            if let ctx = proxy.tls {
                // New handshakes use the new certificates at once; open connections keep theirs.
                for p in ctx.update(table.certificates) { p.isWarning ? log.warning(p.description) : log.error(p.description) }
            }
            proxy.publish(table)
            log.info("reloaded (\(reason)): \(table.ingresses.count) ingress(es), \(table.backends.count) backend(s), generation \(next)")
        case .failure(let problems):
            for p in problems { log.error(p) }
            log.error("reload (\(reason)) rejected: the previous routes keep serving")
        }
    }

    func admin(_ r: ServerRequest) -> ServerReply {
        switch r.path {
        case "/healthz":
            return .now(.text(200, "ok\n"))
        case "/readyz":
            return .now(draining ? .text(503, "draining\n") : .text(200, "ready\n"))
        case "/metrics":
            let text = proxy.snapshot().prometheusText()
            return .now(.text(200, text, contentType: "text/plain; version=0.0.4; charset=utf-8"))
        case "/routes":
            return .now(.text(200, proxy.routeTable.jsonDescription(), contentType: "application/json"))
        default:
            return .now(.text(404, "not found: try /healthz, /readyz, /metrics or /routes\n"))
        }
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
        if control.workersStopped() { control.loop.stop() } else { queue.arm(self) }
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
