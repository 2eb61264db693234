import CSystem
import Reactor
import TLS
#if canImport(Glibc)
import Glibc
#endif

/// A worker's SO_REUSEPORT listening socket. Accepts until EAGAIN on each edge; when descriptors
/// run out (EMFILE/ENFILE) or `--max-connections` is reached it stops and retries after a short
/// timer instead of spinning, and existing connections keep being served. Clients that arrive
/// meanwhile wait in the kernel's listen queue and are accepted once room is made.
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
        self.retryQueue = worker.loop.timerQueue(nanos: 100_000_000)
        super.init(fd: fd)
    }

    override func handleEvent(_ events: UInt32) { acceptAll() }

    override func handleTimeout() {
        paused = false
        acceptAll()
    }

    func acceptAll() {
        guard !isClosed, !paused else { return }
        while true {
            if worker.atConnectionLimit { worker.enterConnectionLimit(); pause(); return }
            // Descriptors kept for the upstream side come first: a client accepted with none
            // left could not be proxied anywhere.
            if !worker.hasSpareDescriptors && !worker.refillSpareDescriptors() { pause(); return }
            do {
                guard let fd = try Socket.accept(self.fd, peer: &peer) else { return }
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
