import CSystem
import Reactor
#if canImport(Glibc)
import Glibc
#endif

/// Deadlines of any length for the node agent (back-off, probe periods, grace periods): a
/// min-heap of callbacks behind one timerfd armed at the earliest deadline. The reactor's
/// TimerQueue keeps fixed durations only; the agent's delays vary per pod.
final class AgentTimers: Channel {
    /// Cancel by setting `cancelled`; a cancelled entry is dropped when it reaches the top.
    final class Handle {
        var cancelled = false
        func cancel() { cancelled = true }
    }

    private struct Entry {
        let deadline: UInt64
        let seq: UInt64
        let handle: Handle
        let body: () -> Void
        func before(_ o: Entry) -> Bool { deadline != o.deadline ? deadline < o.deadline : seq < o.seq }
    }

    private var heap: [Entry] = []
    /// Entries waiting, cancelled ones included until their deadline (for tests).
    var count: Int { heap.count }
    private var seq: UInt64 = 0
    private var armedAt: UInt64 = 0

    init() {
        super.init(fd: timerfd_create(CLOCK_MONOTONIC, Int32(TFD_NONBLOCK | TFD_CLOEXEC)))
    }

    /// Runs `body` on the loop after `seconds`.
    @discardableResult
    func after(_ seconds: Double, _ body: @escaping () -> Void) -> Handle {
        let h = Handle()
        seq += 1
        let deadline = portico_now_ns() &+ UInt64(max(0, seconds) * 1e9)
        push(Entry(deadline: deadline, seq: seq, handle: h, body: body))
        rearm()
        return h
    }

    override func handleEvent(_ events: UInt32) {
        var expirations: UInt64 = 0
        _ = read(fd, &expirations, 8)
        armedAt = 0
        let now = portico_now_ns()
        while let top = heap.first, top.deadline <= now {
            let e = pop()
            if !e.handle.cancelled { e.body() }
        }
        rearm()
    }

    private func rearm() {
        while let top = heap.first, top.handle.cancelled { _ = pop() }
        guard let top = heap.first else { return }
        if armedAt == top.deadline { return }
        armedAt = top.deadline
        var spec = itimerspec()
        let d = max(top.deadline, 1)
        spec.it_value.tv_sec = Int(d / 1_000_000_000)
        spec.it_value.tv_nsec = Int(d % 1_000_000_000)
        timerfd_settime(fd, Int32(TFD_TIMER_ABSTIME), &spec, nil)
    }

    private func push(_ e: Entry) {
        heap.append(e)
        var i = heap.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            guard heap[i].before(heap[p]) else { break }
            heap.swapAt(i, p); i = p
        }
    }

    private func pop() -> Entry {
        let top = heap[0]
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < heap.count && heap[l].before(heap[m]) { m = l }
                if r < heap.count && heap[r].before(heap[m]) { m = r }
                if m == i { break }
                heap.swapAt(i, m); i = m
            }
        }
        return top
    }
}

/// Calls `onExit` once when the process behind a pidfd exits; the loop owns it until then.
final class ProcessWatch: Channel {
    let pid: pid_t
    private var onExit: ((ProcessWatch) -> Void)?

    init(pid: pid_t, pidfd: Int32, onExit: @escaping (ProcessWatch) -> Void) {
        self.pid = pid
        self.onExit = onExit
        super.init(fd: pidfd)
    }

    override func handleEvent(_ events: UInt32) {
        guard let f = onExit else { return }
        onExit = nil
        loop?.close(self)
        f(self)
    }

    func cancel() {
        onExit = nil
        if let l = loop { l.close(self) } else if !closedHere { closedHere = true; Glibc.close(fd) }
    }
    private var closedHere = false
}
