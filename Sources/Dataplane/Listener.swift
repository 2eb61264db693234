import CSystem
import Reactor
import TLS
#if canImport(Glibc)
import Glibc
#endif

/// A worker's SO_REUSEPORT listening socket. Accepts until EAGAIN, a few per turn of the loop
/// (`acceptsPerEvent`); when descriptors run out (EMFILE/ENFILE) or `--max-connections` is
/// reached it stops and retries after a short timer instead of spinning, and existing
/// connections keep being served. Clients that arrive meanwhile wait in the kernel's listen
/// queue and are accepted once room is made.
final class Listener: Channel {
    unowned(unsafe) let worker: Worker
    /// The TLS context for an https listener (nil: plain HTTP).
    let tls: TLSServerContext?
    private var retryQueue: TimerQueue
    private(set) var paused = false
    private var peer = sockaddr_storage()

    init(fd: Int32, worker: Worker, tls: TLSServerContext?) {
        self.worker = worker
        self.tls = tls
        self.acceptsPerEvent = tls == nil ? 16 : 1
        self.retryQueue = worker.loop.timerQueue(nanos: 100_000_000)
        super.init(fd: fd)
    }

    override func handleEvent(_ events: UInt32) { acceptAll() }

    override func handleTimeout() {
        paused = false
        acceptAll()
    }

    /// Connections accepted per readiness event before the loop gets back to the others. A TLS
    /// handshake costs ~0.2 ms of CPU, and accepting a whole queue and starting every handshake
    /// before answering requests already waiting made the handshake row's p99 twice nginx's
    /// (nginx accepts one per event): an https listener takes one per turn, a plain one 16 (its
    /// connections cost little, and each turn costs an epoll_ctl and an epoll_wait). The rest of
    /// the queue is taken on the next turns (the listener is re-armed, so epoll reports it again).
    let acceptsPerEvent: Int

    func acceptAll() {
        guard !isClosed, !paused else { return }
        var budget = acceptsPerEvent
        while true {
            if budget == 0 {
                // Edge-triggered: EPOLL_CTL_MOD re-checks readiness and queues an event for
                // the next epoll_wait if connections are still waiting.
                worker.loop.modify(self, events: EPOLLIN.rawValue)
                return
            }
            if worker.atConnectionLimit { worker.enterConnectionLimit(); pause(); return }
            // Descriptors kept for the upstream side come first: a client accepted with none
            // left could not be proxied anywhere.
            if !worker.hasSpareDescriptors && !worker.refillSpareDescriptors() { pause(); return }
            do {
                guard let fd = try Socket.accept(self.fd, peer: &peer) else { return }
                budget -= 1
                worker.acceptResumed()
                worker.accepted(fd: fd, peer: &peer, tls: tls)
            } catch let e as SocketError {
                if e.errno == EMFILE || e.errno == ENFILE || e.errno == ENOBUFS || e.errno == ENOMEM {
                    worker.enterDescriptorShortage("\(e)")
                    pause()
                } else if e.errno != ECONNABORTED && e.errno != EINTR && e.errno != EPROTO {
                    worker.log.warning("accept: \(e)")
                    return
                }
                // A connection reset while queued (ECONNABORTED) is skipped: accept the next one.
                if paused { return }
            } catch { return }
        }
    }

    private func pause() {
        paused = true
        retryQueue.arm(self)
    }

    /// Called when a connection closes, so a listener paused at the limit resumes at once.
    func connectionFreed() {
        if paused && !worker.atConnectionLimit {
            cancelTimer()
            paused = false
            acceptAll()
        }
    }
}
