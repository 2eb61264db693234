import CSystem
import Foundation
import Objects
import Reactor
#if canImport(Glibc)
import Glibc
#endif

/// Processes an earlier agent started that carry this node's marker (`ProcessMarker`) but that
/// no record names: it was killed (-9) between a spawn and the record write, or the record is
/// gone. Found once, when the agent starts; each is adopted or killed when its pod is run or
/// stopped.
extension NodeAgent {
    /// Kubernetes' default `terminationGracePeriodSeconds`, for processes of a pod the agent knows
    /// nothing else about.
    static let defaultGracePeriod: Double = 30

    /// Takes over the processes found for `rt`'s containers and kills the rest, then starts the
    /// containers `toStart` (at once if nothing is to be killed, else once all of it is gone, so a
    /// pod never runs twice and its ports are free). A container is adopted from a marked process
    /// only when the pod has a record: it holds the address and restart count the process was
    /// started with (the record is written before each spawn).
    func adoptOrKill(_ found: [ProcessMarker.Found], for rt: PodRuntime, record: PodRecord?, adopted: Set<String>,
                     toStart: [ContainerRuntime]) {
        var adopted = adopted
        var toStart = toStart
        if let record {
            for c in toStart where !adopted.contains(c.spec.name) {
                guard let p = Self.containerProcess(c.spec.name, in: found),
                      ChildProcess.isAlive(p.pid, startTime: p.startTicks) else { continue }
                // A record naming no pid was written just before this spawn, with its restartCount;
                // one naming an older (dead) pid holds the instance before.
                let rec = record.containers[c.spec.name]
                let count = rec.map { $0.pid == 0 ? $0.restartCount : $0.restartCount + 1 } ?? 0
                let started = ProcessMarker.startSeconds(ticks: p.startTicks).map(Self.timestamp) ?? Self.timestamp()
                log.info("pod \(rt.id) container \(c.spec.name): pid \(p.pid) is not in the record; found by its PORTICO_* variables")
                adopt(c, in: rt, record: .init(pid: p.pid, startTicks: p.startTicks, startedAt: started, restartCount: count))
                adopted.insert(c.spec.name)
                toStart.removeAll { $0 === c }
            }
        }
        // What is not an adopted container's (or is an exec probe) belongs to nothing running.
        let left = found.filter { $0.execProbe || !adopted.contains($0.container) }
        guard !left.isEmpty else {
            for c in toStart { start(c, in: rt) }
            return
        }
        for c in toStart {
            c.state = ContainerState(waiting: .init(
                reason: "ContainerCreating",
                message: "waiting for \(left.count) process(es) an earlier agent left for this pod to exit"))
        }
        let starting = toStart
        rt.leftoverKills += 1
        killLeftovers(left, pod: "\(rt.id)", gracePeriod: rt.gracePeriod) { [weak self, weak rt] in
            guard let self, let rt else { return }
            rt.leftoverKills -= 1
            if rt.terminating {
                self.finishIfGone(rt)
                return
            }
            for c in starting where c.pid == 0 && !c.finished && c.restartTimer == nil { self.start(c, in: rt) }
            self.saveRecord(rt)
            self.publish(rt)
        }
    }

    /// The process to adopt as container `name`: a process group leader (each container leads
    /// its own), not an exec probe, whose parent is no marked process of the pod (a container's
    /// child may lead a group of its own); the earliest started if several.
    static func containerProcess(_ name: String, in found: [ProcessMarker.Found]) -> ProcessMarker.Found? {
        let pids = Set(found.map(\.pid))
        return found.filter { $0.container == name && !$0.execProbe && $0.group == $0.pid && !pids.contains($0.parent) }
            .min { $0.startTicks < $1.startTicks }
    }

    /// Stops processes that belong to no running container: SIGTERM to each (to its process group
    /// when it leads one: a container's group holds only its processes), SIGKILL after
    /// `gracePeriod`; `completion` once all are gone.
    func killLeftovers(_ procs: [ProcessMarker.Found], pod: String, gracePeriod: Double, completion: @escaping () -> Void) {
        var remaining = 1
        let one = {
            remaining -= 1
            if remaining == 0 { completion() }
        }
        for p in procs where orphanWatches[p.pid] == nil {
            let fd = ChildProcess.pidfdOpen(p.pid)
            guard fd >= 0 else { continue }
            // Checked once the pidfd pins the process: the pid cannot name another process since.
            guard ChildProcess.isAlive(p.pid, startTime: p.startTicks) else {
                close(fd)
                continue
            }
            remaining += 1
            let what = p.execProbe ? "an exec probe" : "container \(p.container.isEmpty ? "?" : p.container)"
            log.info("pod \(pod): killing pid \(p.pid) (\(what)) left running by an earlier agent without a record")
            terminateOrphan(p.pid, pidfd: fd, group: p.group == p.pid, gracePeriod: gracePeriod, gone: one)
        }
        one()
    }

    /// Stops a process that is not this agent's child: watched through its pidfd (`fd`, owned
    /// from here on), SIGTERM to its process group when `group` (else to it alone), SIGKILL after
    /// `gracePeriod` if it is still there; `gone` once it has exited.
    func terminateOrphan(_ pid: pid_t, pidfd fd: Int32, group: Bool, gracePeriod: Double, gone: @escaping () -> Void) {
        let w = ProcessWatch(pid: pid, pidfd: fd) { [weak self] w in
            _ = ChildProcess.reapContainer(w.pid)
            self?.orphanWatches[w.pid] = nil
            gone()
        }
        orphanWatches[pid] = w
        loop.register(w, events: EPOLLIN.rawValue, edgeTriggered: false)
        if !group || kill(-pid, SIGTERM) != 0 { _ = kill(pid, SIGTERM) }
        timers.after(gracePeriod) { [weak w] in
            guard w != nil else { return }
            if !group || kill(-pid, SIGKILL) != 0 { _ = kill(pid, SIGKILL) }
        }
    }
}
