import CSystem
import Reactor

/// Keys waiting for a controller's `sync`, deduplicated (a key queued twice is synced once),
/// drained on the loop a batch at a time so the API server's requests interleave. Failing
/// keys come back after an exponential back-off. Lives only in memory: on restart every key
/// is queued again from the initial list.
final class WorkQueue {
    struct Item: Hashable {
        var controller: String
        var key: String
    }

    private let loop: EventLoop
    private let timers: AgentTimers
    private let backoffBase: Double
    private let backoffMax: Double
    private var pending: [Item] = []
    private var head = 0
    private var queued = Set<Item>()
    private var failures: [Item: Int] = [:]
    /// Items waiting in `add(after:)`, by the deadline of their timer (monotonic nanoseconds).
    private var waiting: [Item: UInt64] = [:]
    private var drainScheduled = false
    private(set) var stopped = false
    /// Runs one item; returns nil when done, or seconds after which to look again; throws to retry with back-off.
    var process: ((Item) throws -> Double?)?
    let log = Log("controllers")

    init(loop: EventLoop, timers: AgentTimers, backoffBase: Double, backoffMax: Double) {
        self.loop = loop; self.timers = timers; self.backoffBase = backoffBase; self.backoffMax = backoffMax
    }

    /// Queues `item` (a no-op if it is already waiting). Loop thread only.
    func add(_ item: Item) {
        guard !stopped, queued.insert(item).inserted else { return }
        pending.append(item)
        scheduleDrain()
    }

    /// Queues `item` after `seconds`, unless it already waits to be queued sooner (as client-go's
    /// delaying queue keeps the earliest time): a Deployment requeued for its progress deadline
    /// on every sync otherwise left a timer per sync, each living up to 10 minutes.
    func add(after seconds: Double, _ item: Item) {
        guard !stopped else { return }
        let deadline = portico_now_ns() &+ UInt64(max(0, seconds) * 1e9)
        if let at = waiting[item], at <= deadline { return }
        waiting[item] = deadline
        timers.after(seconds) { [weak self] in
            // A timer replaced by an earlier one does nothing.
            guard let self, self.waiting[item] == deadline else { return }
            self.waiting[item] = nil
            self.add(item)
        }
    }

    func stop() { stopped = true; pending = []; head = 0; queued = []; waiting = [:] }

    var isEmpty: Bool { head >= pending.count }

    private func scheduleDrain() {
        guard !drainScheduled else { return }
        drainScheduled = true
        loop.execute { [weak self] in self?.drain() }
    }

    private func drain() {
        drainScheduled = false
        var n = 0
        while head < pending.count && n < 64 && !stopped {
            let item = pending[head]
            head += 1
            queued.remove(item)
            n += 1
            do {
                if let again = try process?(item) { add(after: again, item) }
                failures[item] = nil
            } catch {
                let count = (failures[item] ?? 0) + 1
                failures[item] = count
                let delay = min(backoffMax, backoffBase * Double(1 << min(count - 1, 20)))
                log.warning("\(item.controller) \(item.key): \(error) (retry in \(delay)s)")
                add(after: delay, item)
            }
        }
        if head >= pending.count { pending.removeAll(keepingCapacity: true); head = 0 }
        if head < pending.count { scheduleDrain() }
    }
}
