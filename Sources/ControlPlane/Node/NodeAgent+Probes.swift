import CSystem
import Foundation
import Objects
import Reactor
#if canImport(Glibc)
import Glibc
#endif

/// Startup, liveness and readiness probes of running containers.
extension NodeAgent {
    func startProbes(_ c: ContainerRuntime, in rt: PodRuntime) {
        c.stopProbes()
        if let p = c.spec.startupProbe {
            c.started = false
            schedule(ProbeWorker(kind: .startup, probe: p), c, rt)
        } else {
            c.started = true
            startMainProbes(c, rt)
        }
    }

    private func startMainProbes(_ c: ContainerRuntime, _ rt: PodRuntime) {
        if let p = c.spec.livenessProbe { schedule(ProbeWorker(kind: .liveness, probe: p), c, rt) }
        if let p = c.spec.readinessProbe {
            c.ready = false
            schedule(ProbeWorker(kind: .readiness, probe: p), c, rt)
        } else {
            c.ready = c.started
        }
    }

    private func schedule(_ w: ProbeWorker, _ c: ContainerRuntime, _ rt: PodRuntime) {
        c.probes.append(w)
        w.timer = timers.after(w.initialDelay) { [weak self, weak w, weak c, weak rt] in
            guard let self, let w, let c, let rt else { return }
            self.probeOnce(w, c, rt)
        }
    }

    private func probeOnce(_ w: ProbeWorker, _ c: ContainerRuntime, _ rt: PodRuntime) {
        guard !w.stopped else { return }
        let began = portico_now_ns()
        runProbe(w.probe, timeout: w.timeout, container: c, pod: rt) { [weak self, weak w, weak c, weak rt] ok in
            guard let self, let w, let c, let rt, !w.stopped else { return }
            self.probeResult(ok, w, c, rt)
            guard !w.stopped else { return }
            let elapsed = Double(portico_now_ns() &- began) / 1e9
            w.timer = self.timers.after(max(0, w.period - elapsed)) { [weak self, weak w, weak c, weak rt] in
                guard let self, let w, let c, let rt else { return }
                self.probeOnce(w, c, rt)
            }
        }
    }

    private func probeResult(_ ok: Bool, _ w: ProbeWorker, _ c: ContainerRuntime, _ rt: PodRuntime) {
        let crossed = w.record(ok)
        if !ok { event(rt, "Warning", "Unhealthy", "\(w.kind.rawValue.prefix(1).uppercased() + w.kind.rawValue.dropFirst()) probe failed") }
        switch w.kind {
        case .readiness:
            // Stays at the last decided value between thresholds.
            if crossed && c.ready != ok {
                c.ready = ok
                log.info("pod \(rt.id) container \(c.spec.name): readiness \(ok ? "passed" : "failed")")
                publish(rt)
            }
        case .startup:
            if crossed && ok {
                w.stop()
                c.probes.removeAll { $0 === w }
                c.started = true
                startMainProbes(c, rt)
                publish(rt)
            } else if crossed {
                log.info("pod \(rt.id) container \(c.spec.name): startup probe failed \(w.failures) times, restarting")
                event(rt, "Normal", "Killing", "Container \(c.spec.name) failed startup probe, will be restarted")
                killForRestart(c, rt)
            }
        case .liveness:
            if crossed && !ok {
                log.info("pod \(rt.id) container \(c.spec.name): liveness probe failed \(w.failures) times, restarting")
                event(rt, "Normal", "Killing", "Container \(c.spec.name) failed liveness probe, will be restarted")
                killForRestart(c, rt)
            }
        }
    }

    /// The kubelet kills an unhealthy container (SIGTERM, SIGKILL after the grace period); its
    /// exit then follows restartPolicy like any other.
    private func killForRestart(_ c: ContainerRuntime, _ rt: PodRuntime) {
        c.stopProbes()
        c.ready = false
        publish(rt)
        signal(c, SIGTERM)
        let pid = c.pid
        c.killTimer = timers.after(rt.gracePeriod) { [weak self, weak c] in
            guard let self, let c, c.pid == pid else { return }
            self.signal(c, SIGKILL)
        }
    }

    /// One attempt of `probe`; `done` is called exactly once.
    func runProbe(_ probe: Pod.Probe, timeout: Double, container c: ContainerRuntime, pod rt: PodRuntime,
                  done: @escaping (Bool) -> Void) {
        if let h = probe.httpGet {
            guard let port = resolvePort(h.port, c) else { done(false); return }
            ProbeAttempt.connect(host: h.host ?? rt.ip, port: port, path: h.path ?? "/", headers: h.httpHeaders ?? [],
                                 loop: loop, timers: timers,
                                 timeout: timeout, done: done)
        } else if let t = probe.tcpSocket {
            guard let port = resolvePort(t.port, c) else { done(false); return }
            ProbeAttempt.connect(host: t.host ?? rt.ip, port: port, path: nil, loop: loop, timers: timers,
                                 timeout: timeout, done: done)
        } else if let cmd = probe.exec?.command, !cmd.isEmpty {
            execProbe(cmd, timeout: timeout, c, rt, done)
        } else {
            done(false)
        }
    }

    /// A port number, or the `containerPort` of the container's port with that name.
    func resolvePort(_ p: IntOrString, _ c: ContainerRuntime) -> Int? {
        switch p {
        case .int(let n): return n
        case .string(let s): return Int(s) ?? c.spec.ports?.first { $0.name == s }?.containerPort
        }
    }

    /// Spawns the command with the container's environment; success is exit 0 before the timeout.
    private func execProbe(_ cmd: [String], timeout: Double, _ c: ContainerRuntime, _ rt: PodRuntime,
                           _ done: @escaping (Bool) -> Void) {
        guard let env = try? environment(for: c, in: rt) else { done(false); return }
        // Marked as a probe: a new agent that finds it after a crash kills it, never adopts it.
        let argv = cmd.map { Self.expand($0, env) }, envp = env.map { "\($0.0)=\($0.1)" } + ["\(ProcessMarker.execProbe)=1"]
        // A container with volume mounts is probed inside its mount namespace, where it sees them.
        let inNamespace = !(c.spec.volumeMounts ?? []).isEmpty && c.pid > 0
        guard let pid = inNamespace
            ? try? ChildProcess.spawnInMountNamespace(argv: argv, environment: envp, workingDir: c.spec.workingDir,
                                                      logPath: "/dev/null", binds: [], joinMountNamespaceOf: c.pid)
            : try? ChildProcess.spawn(argv: argv, environment: envp, workingDir: c.spec.workingDir, logPath: "/dev/null") else {
            done(false); return
        }
        let fd = ChildProcess.pidfdOpen(pid)
        guard fd >= 0 else {
            _ = kill(-pid, SIGKILL)
            var s: Int32 = 0
            _ = waitpid(pid, &s, 0)
            done(false); return
        }
        var finished = false
        let timer = timers.after(timeout) {
            if !finished { _ = kill(-pid, SIGKILL) }
        }
        let w = ProcessWatch(pid: pid, pidfd: fd) { w in
            finished = true
            timer.cancel()
            let status = ChildProcess.reapContainer(w.pid)
            done(status.map { ChildProcess.exitCode(fromWaitStatus: $0).code == 0 } ?? false)
        }
        loop.register(w, events: EPOLLIN.rawValue, edgeTriggered: false)
    }
}
