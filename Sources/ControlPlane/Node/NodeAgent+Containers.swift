import CSystem
import Foundation
import Objects
import Reactor
#if canImport(Glibc)
import Glibc
#endif

/// A container's life: start, watch, exit, back-off, restart.
extension NodeAgent {
    func start(_ c: ContainerRuntime, in rt: PodRuntime) {
        guard !rt.terminating, rt.eviction == nil else { return }
        guard let command = c.spec.command, !command.isEmpty else {
            let image = c.spec.image.map { " (image \"\($0)\" is recorded only)" } ?? ""
            c.state = ContainerState(waiting: .init(
                reason: "CreateContainerConfigError",
                message: "container \"\(c.spec.name)\" has no command: Portico runs containers as local processes and has no image entrypoint\(image); set spec.containers[].command"))
            c.finished = true
            log.warning("pod \(rt.id) container \(c.spec.name): no command")
            event(rt, "Warning", "Failed", "Error: \(c.state.waiting!.message!)")
            return
        }
        let binds: [ChildProcess.Bind]
        do {
            try prepareVolumes(rt)
            binds = try self.binds(for: c, in: rt)
        } catch let e as VolumeError {
            volumeNotReady(c, in: rt, e)
            return
        } catch {
            volumeNotReady(c, in: rt, VolumeError.mount("\(error)"))
            return
        }
        let env: [(String, String)]
        do {
            env = try environment(for: c, in: rt)
        } catch {
            // As the kubelet does, try again later: the ConfigMap or Secret may yet be created.
            let message = "\(error)"
            if c.state.waiting?.message != message {
                log.warning("pod \(rt.id) container \(c.spec.name): \(message)")
                event(rt, "Warning", "Failed", "Error: \(message)")
            }
            c.state = ContainerState(waiting: .init(reason: "CreateContainerConfigError", message: message))
            c.restartTimer = timers.after(max(configuration.backOffBase, 0.1)) { [weak self, weak rt, weak c] in
                guard let self, let rt, let c, !rt.terminating else { return }
                c.restartTimer = nil
                self.start(c, in: rt)
                self.saveRecord(rt)
                self.publish(rt)
            }
            return
        }
        let argv = (command + (c.spec.args ?? [])).map { Self.expand($0, env) }
        let logPath = rt.dir + "/\(c.spec.name).log"
        if c.restartCount > 0 || c.lastState != nil {
            // Keep the previous instance's output for `logs --previous`.
            _ = rename(logPath, rt.dir + "/\(c.spec.name).previous.log")
        }
        // The record exists (with this instance's restartCount and the pod IP) before the process
        // does: a new agent that finds the process by its markers then knows how to adopt it.
        saveRecord(rt)
        let pid: pid_t
        do {
            // Without volume mounts a container starts exactly as before: no mount namespace.
            if binds.isEmpty {
                pid = try ChildProcess.spawn(argv: argv, environment: env.map { "\($0.0)=\($0.1)" },
                                             workingDir: c.spec.workingDir, logPath: logPath)
            } else {
                pid = try ChildProcess.spawnInMountNamespace(argv: argv, environment: env.map { "\($0.0)=\($0.1)" },
                                                             workingDir: c.spec.workingDir, logPath: logPath, binds: binds)
            }
        } catch {
            let now = Self.timestamp()
            // The message names the command as written: once expanded, `$(VAR)` may hold a Secret's value.
            var message = "\(error)"
            if let written = command.first, argv[0] != written, !argv[0].isEmpty {
                message = message.replacingOccurrences(of: argv[0], with: written)
            }
            log.warning("pod \(rt.id) container \(c.spec.name): \(message)")
            event(rt, "Warning", "Failed", "Error: failed to start container \(c.spec.name): \(message)")
            c.everRan = true
            c.startedAtMonotonic = portico_now_ns()
            exited(c, in: rt, state: ContainerState(terminated: .init(
                exitCode: 128, reason: "StartError", message: message, startedAt: now, finishedAt: now)))
            return
        }
        c.pid = pid
        c.startTicks = ChildProcess.startTime(pid) ?? 0
        // Recorded at once: a server killed (-9) between the spawn and the record leaves a process
        // the next agent cannot adopt, and the pod would run twice.
        saveRecord(rt)
        c.startedAtMonotonic = portico_now_ns()
        c.everRan = true
        c.state = ContainerState(running: .init(startedAt: Self.timestamp()))
        event(rt, "Normal", "Started", "Started container \(c.spec.name)")
        watch(c, in: rt)
        startProbes(c, in: rt)
    }

    /// A volume of the pod is not ready for `c`: a spec error stops the container for good
    /// (CreateContainerConfigError); a missing ConfigMap/Secret (CreateContainerConfigError), a
    /// failed mount (FailedMount) or an unbound claim (FailedScheduling) is retried.
    func volumeNotReady(_ c: ContainerRuntime, in rt: PodRuntime, _ e: VolumeError) {
        let message = e.message
        let changed = c.state.waiting?.message != message
        switch e.kind {
        case .invalid:
            c.state = ContainerState(waiting: .init(reason: "CreateContainerConfigError", message: message))
            c.finished = true
            if changed {
                log.warning("pod \(rt.id) container \(c.spec.name): \(message)")
                event(rt, "Warning", "Failed", "Error: \(message)")
            }
            return
        case .config:
            c.state = ContainerState(waiting: .init(reason: "CreateContainerConfigError", message: message))
            if changed { event(rt, "Warning", "Failed", "Error: \(message)") }
        case .mount:
            c.state = ContainerState(waiting: .init(reason: "ContainerCreating", message: message))
            if changed { event(rt, "Warning", "FailedMount", message) }
        case .unschedulable:
            c.state = ContainerState(waiting: .init(reason: "ContainerCreating", message: message))
            if changed { event(rt, "Warning", "FailedScheduling", "0/1 nodes are available: \(message).") }
        }
        if changed { log.warning("pod \(rt.id) container \(c.spec.name): \(message)") }
        let delay = e.kind == .config ? configuration.backOffBase : configuration.volumeRetryInterval
        c.restartTimer = timers.after(max(delay, 0.1)) { [weak self, weak rt, weak c] in
            guard let self, let rt, let c, !rt.terminating else { return }
            c.restartTimer = nil
            self.start(c, in: rt)
            self.saveRecord(rt)
            self.publish(rt)
        }
    }

    /// Takes over a process an earlier agent started (same pid and kernel start time).
    func adopt(_ c: ContainerRuntime, in rt: PodRuntime, record: PodRecord.ContainerRecord) {
        c.pid = record.pid
        c.startTicks = record.startTicks
        c.restartCount = record.restartCount
        c.startedAtMonotonic = portico_now_ns()
        c.everRan = true
        c.state = ContainerState(running: .init(startedAt: record.startedAt))
        log.info("pod \(rt.id) container \(c.spec.name): adopted pid \(record.pid)")
        event(rt, "Normal", "Adopted", "Adopted running container \(c.spec.name) (pid \(record.pid)) after an agent restart")
        watch(c, in: rt)
        startProbes(c, in: rt)
    }

    private func watch(_ c: ContainerRuntime, in rt: PodRuntime) {
        let fd = ChildProcess.pidfdOpen(c.pid)
        guard fd >= 0 else {
            // Gone between spawn/record and here (or no pidfd): treat as exited now.
            let status = ChildProcess.reapContainer(c.pid)
            processExited(c, in: rt, waitStatus: status)
            return
        }
        let w = ProcessWatch(pid: c.pid, pidfd: fd) { [weak self, weak rt, weak c] w in
            guard let self, let rt, let c, c.watch === w else {
                _ = ChildProcess.reapContainer(w.pid)
                return
            }
            self.processExited(c, in: rt, waitStatus: ChildProcess.reapContainer(w.pid))
        }
        c.watch = w
        loop.register(w, events: EPOLLIN.rawValue, edgeTriggered: false)
    }

    /// The process is gone (`waitStatus` nil when it was not our child: adopted after a restart).
    private func processExited(_ c: ContainerRuntime, in rt: PodRuntime, waitStatus: Int32?) {
        let startedAt = c.state.running?.startedAt
        c.pid = 0
        c.watch = nil
        c.killTimer?.cancel()
        c.killTimer = nil
        let finishedAt = Self.timestamp()
        let state: ContainerState
        if let s = waitStatus {
            let (code, sig) = ChildProcess.exitCode(fromWaitStatus: s)
            state = ContainerState(terminated: .init(exitCode: code, signal: sig, reason: code == 0 ? "Completed" : "Error",
                                                     startedAt: startedAt, finishedAt: finishedAt))
        } else {
            state = ContainerState(terminated: .init(exitCode: 255, reason: "Error",
                                                     message: "exit status unknown: the process was adopted from an earlier agent",
                                                     startedAt: startedAt, finishedAt: finishedAt))
        }
        log.info("pod \(rt.id) container \(c.spec.name) exited with \(state.terminated!.exitCode)")
        exited(c, in: rt, state: state)
    }

    /// Decides between restart (after back-off) and staying terminated.
    private func exited(_ c: ContainerRuntime, in rt: PodRuntime, state: ContainerState) {
        c.stopProbes()
        c.ready = false
        c.started = false
        let code = state.terminated?.exitCode ?? 1
        let restart: Bool
        switch rt.restartPolicy {
        case "Never": restart = false
        case "OnFailure": restart = code != 0
        default: restart = true
        }
        if rt.terminating || rt.eviction != nil || !restart {
            c.state = state
            c.finished = true
            saveRecord(rt)
            publish(rt)
            finishIfGone(rt)
            return
        }
        c.lastState = state
        let ranFor = Double(portico_now_ns() &- c.startedAtMonotonic) / 1e9
        // As kubelet: the first exit (no back-off entry yet, or a container that ran long enough
        // to reset it) restarts at once; from the second on, the delay starts at the base and
        // doubles up to the cap (CrashLoopBackOff).
        let delay: Double
        if c.backOff == 0 || (c.startedAtMonotonic > 0 && ranFor >= configuration.backOffReset) {
            c.backOff = configuration.backOffBase
            delay = 0
        } else {
            delay = c.backOff
            c.backOff = min(c.backOff * 2, configuration.backOffMax)
        }
        if delay > 0 {
            c.state = ContainerState(waiting: .init(
                reason: "CrashLoopBackOff",
                message: "back-off \(Self.seconds(delay)) restarting failed container=\(c.spec.name) pod=\(rt.id.name)_\(rt.id.namespace)(\(rt.id.uid))"))
            event(rt, "Warning", "BackOff", "Back-off restarting failed container \(c.spec.name) in pod \(rt.id.name)_\(rt.id.namespace)(\(rt.id.uid))")
        } else {
            c.state = state
        }
        c.restartTimer = timers.after(delay) { [weak self, weak rt, weak c] in
            guard let self, let rt, let c, !rt.terminating else { return }
            c.restartTimer = nil
            c.restartCount += 1
            self.start(c, in: rt)
            self.saveRecord(rt)
            self.publish(rt)
        }
        saveRecord(rt)
        publish(rt)
    }

    static func seconds(_ d: Double) -> String {
        d >= 1 && d == d.rounded() ? "\(Int(d))s" : "\(Int(d * 1000))ms"
    }

    /// Signals a container's process group (and the process, in case it left the group).
    func signal(_ c: ContainerRuntime, _ sig: Int32) {
        guard c.pid > 0 else { return }
        if kill(-c.pid, sig) != 0 { _ = kill(c.pid, sig) }
    }

    /// Forgets a terminating pod once none of its processes is left.
    func finishIfGone(_ rt: PodRuntime) {
        guard rt.terminating, rt.containers.allSatisfy({ $0.pid == 0 }), rt.leftoverKills == 0, pods[rt.id.uid] === rt else { return }
        for c in rt.containers { c.restartTimer?.cancel(); c.killTimer?.cancel(); c.stopProbes() }
        publish(rt)
        pods[rt.id.uid] = nil
        if NodeAgent.stableKey(of: rt.pod) == nil { ips.release(rt.ip) }
        cleanUpVolumes(podDirectory: rt.dir)
        try? FileManager.default.removeItem(atPath: rt.dir)
        log.info("pod \(rt.id) terminated")
        let done = rt.onGone
        rt.onGone = []
        for d in done { d() }
    }

    /// Kills what an earlier agent left running for a pod nobody wants any more.
    func killRecorded(_ record: PodRecord, dir: String, gracePeriod: Double, completion: (() -> Void)?) {
        var remaining = 1
        let one = { [weak self] in
            remaining -= 1
            if remaining == 0 {
                self?.cleanUpVolumes(podDirectory: dir)
                try? FileManager.default.removeItem(atPath: dir)
                completion?()
            }
        }
        // Marked processes no record names (a spawn the agent died before recording) go too.
        let recordedPIDs = Set(record.containers.values.map(\.pid))
        let unrecorded = (markedProcesses.removeValue(forKey: record.uid) ?? []).filter { !recordedPIDs.contains($0.pid) }
        if !unrecorded.isEmpty {
            remaining += 1
            killLeftovers(unrecorded, pod: "\(record.namespace)/\(record.name)", gracePeriod: gracePeriod) { one() }
        }
        for (name, c) in record.containers where ChildProcess.isAlive(c.pid, startTime: c.startTicks) {
            let fd = ChildProcess.pidfdOpen(c.pid)
            guard fd >= 0 else { continue }
            remaining += 1
            log.info("pod \(record.namespace)/\(record.name) container \(name): killing leftover pid \(c.pid)")
            terminateOrphan(c.pid, pidfd: fd, group: true, gracePeriod: gracePeriod, gone: one)
        }
        ips.release(record.podIP)
        one()
    }

    // MARK: - Environment

    /// Kubernetes' order: service variables, then the pod's identity, then the container's
    /// `env` (later names win), then the agent's PORTICO_* markers. PATH starts with the directory
    /// of the portico binary.
    func environment(for c: ContainerRuntime, in rt: PodRuntime) throws -> [(String, String)] {
        var names: [String] = []
        var values: [String: String] = [:]
        func set(_ k: String, _ v: String) {
            if values[k] == nil { names.append(k) }
            values[k] = v
        }
        let inherited = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        set("PATH", binDirectory + ":" + inherited)
        set("HOME", "/")
        set("HOSTNAME", rt.pod.spec?.hostname ?? rt.id.name)
        for (k, v) in serviceEnvironment?(rt.pod) ?? [] { set(k, v) }
        for (k, v) in rt.environment { set(k, v) }
        set("POD_NAME", rt.id.name)
        set("POD_NAMESPACE", rt.id.namespace)
        set("POD_IP", rt.ip)
        for source in c.spec.envFrom ?? [] {
            let (kind, ref) = source.configMapRef.map { ("ConfigMap", $0) } ?? source.secretRef.map { ("Secret", $0) } ?? ("", nil)
            guard let ref else { continue }
            guard let data = configData?(rt.id.namespace, kind, ref.name) else {
                if ref.optional == true { continue }
                throw ConfigError(message: "\(kind.lowercased()) \"\(ref.name)\" not found")
            }
            for k in data.keys.sorted() { set((source.prefix ?? "") + k, data[k]!) }
        }
        for e in c.spec.env ?? [] {
            if let path = e.valueFrom?.fieldRef?.fieldPath {
                set(e.name, fieldValue(path, rt) ?? "")
            } else if let sel = e.valueFrom?.configMapKeyRef ?? e.valueFrom?.secretKeyRef {
                let kind = e.valueFrom?.configMapKeyRef != nil ? "ConfigMap" : "Secret"
                guard let data = configData?(rt.id.namespace, kind, sel.name) else {
                    if sel.optional == true { continue }
                    throw ConfigError(message: "\(kind.lowercased()) \"\(sel.name)\" not found")
                }
                guard let v = data[sel.key] else {
                    if sel.optional == true { continue }
                    throw ConfigError(message: "couldn't find key \(sel.key) in \(kind) \(rt.id.namespace)/\(sel.name)")
                }
                set(e.name, v)
            } else {
                // $(VAR) refers to variables defined before this one.
                set(e.name, Self.expand(e.value ?? "", names.map { ($0, values[$0]!) }))
            }
        }
        // Last, so a spec cannot change them: how a new agent finds this process without its record.
        set(ProcessMarker.node, nodeMarker)
        set(ProcessMarker.podUID, rt.id.uid)
        set(ProcessMarker.container, c.spec.name)
        return names.map { ($0, values[$0]!) }
    }

    struct ConfigError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    /// The downward API's `fieldRef.fieldPath` values.
    func fieldValue(_ path: String, _ rt: PodRuntime) -> String? {
        let m = rt.pod.metadata
        switch path {
        case "metadata.name": return rt.id.name
        case "metadata.namespace": return rt.id.namespace
        case "metadata.uid": return rt.id.uid
        case "status.podIP": return rt.ip
        case "status.podIPs": return rt.ip
        case "status.hostIP", "status.hostIPs": return "127.0.0.1"
        case "spec.nodeName": return rt.pod.spec?.nodeName ?? configuration.nodeName
        case "spec.serviceAccountName": return rt.pod.spec?.serviceAccountName ?? "default"
        default:
            for (prefix, map) in [("metadata.labels['", m.labels), ("metadata.annotations['", m.annotations)]
            where path.hasPrefix(prefix) && path.hasSuffix("']") {
                return map?[String(path.dropFirst(prefix.count).dropLast(2))]
            }
            return nil
        }
    }

    /// Kubernetes' `$(VAR)` expansion: defined names are replaced, `$$` is a literal `$`,
    /// anything else is left as written.
    static func expand(_ s: String, _ env: [(String, String)]) -> String {
        guard s.contains("$") else { return s }
        var map: [String: String] = [:]
        for (k, v) in env { map[k] = v }
        var out = ""
        var i = s.startIndex
        while i < s.endIndex {
            let ch = s[i]
            let next = s.index(after: i)
            if ch == "$", next < s.endIndex {
                if s[next] == "$" { out.append("$"); i = s.index(after: next); continue }
                if s[next] == "(", let close = s[next...].firstIndex(of: ")") {
                    let name = String(s[s.index(after: next)..<close])
                    if let v = map[name] { out += v; i = s.index(after: close); continue }
                }
            }
            out.append(ch)
            i = next
        }
        return out
    }

    // MARK: - Records and logs

    func saveRecord(_ rt: PodRuntime) {
        var containers: [String: PodRecord.ContainerRecord] = [:]
        // Containers without a process are kept too (pid 0): their restartCount carries over.
        for c in rt.containers {
            containers[c.spec.name] = .init(pid: c.pid, startTicks: c.startTicks,
                                             startedAt: c.state.running?.startedAt ?? "", restartCount: c.restartCount)
        }
        PodRecord(namespace: rt.id.namespace, name: rt.id.name, uid: rt.id.uid, podIP: rt.ip, startTime: rt.startTime,
                  gracePeriodSeconds: rt.gracePeriod, containers: containers, eviction: rt.eviction).save(rt.dir + "/pod.json")
    }

    func scheduleLogCheck() {
        timers.after(configuration.logCheckInterval) { [weak self] in
            guard let self else { return }
            for rt in self.pods.values { for c in rt.containers { self.rotateIfNeeded(rt.dir + "/\(c.spec.name).log") } }
            self.scheduleLogCheck()
        }
    }

    /// copytruncate: the process keeps its O_APPEND descriptor, so the file is copied to `.1`
    /// and truncated in place (lines written between the two steps are lost, as with logrotate).
    func rotateIfNeeded(_ path: String) {
        var st = stat()
        guard stat(path, &st) == 0, Int(st.st_size) > configuration.logMaxBytes else { return }
        let old = path + ".1"
        guard let data = FileManager.default.contents(atPath: path),
              FileManager.default.createFile(atPath: old, contents: data) else { return }
        _ = truncate(path, 0)
    }
}
