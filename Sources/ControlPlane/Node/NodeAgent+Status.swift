import Objects

/// PodStatus as the kubelet computes it.
extension NodeAgent {
    func computeStatus(_ rt: PodRuntime) -> PodStatus {
        let statuses = rt.containers.map { c in
            var s = ContainerStatus(name: c.spec.name, ready: c.ready && c.pid > 0, started: c.pid > 0 && c.started,
                                    restartCount: c.restartCount, state: c.state, lastState: c.lastState,
                                    image: c.spec.image)
            // kubectl shows `<runtime>://<id>`; here the id is the process.
            if c.pid > 0 { s.containerID = "portico://\(c.pid)" }
            return s
        }
        let phase = Self.phase(rt)
        let done = phase == "Succeeded" || phase == "Failed"
        let allReady = !statuses.isEmpty && statuses.allSatisfy(\.ready)
        let unready = statuses.filter { !$0.ready }.map(\.name)
        let readyReason = done ? "PodCompleted" : (allReady ? nil : "ContainersNotReady")
        let readyMessage = done || allReady ? nil : "containers with unready status: [\(unready.joined(separator: " "))]"
        var wanted: [(String, Bool, String?, String?)] = [
            ("PodScheduled", rt.unschedulable == nil, rt.unschedulable.map { _ in "Unschedulable" },
             rt.unschedulable.map { "0/1 nodes are available: \($0)." }),
            ("Initialized", true, nil, nil),
            ("ContainersReady", allReady && !done, readyReason, readyMessage),
            ("Ready", allReady && !done, readyReason, readyMessage),
        ]
        if let m = rt.eviction {
            // Kubernetes marks a pod the kubelet evicts so disruption budgets can tell.
            wanted.insert(("DisruptionTarget", true, "TerminationByKubelet", m), at: 0)
        }
        var conditions: [PodCondition] = []
        for (type, ok, reason, message) in wanted {
            let value = ok ? "True" : "False"
            if rt.transitions[type]?.0 != value { rt.transitions[type] = (value, Self.timestamp()) }
            conditions.append(PodCondition(type: type, status: value, lastTransitionTime: rt.transitions[type]!.1,
                                           reason: reason, message: message))
        }
        var s = PodStatus(phase: phase, podIP: rt.ip, conditions: conditions, containerStatuses: statuses,
                          startTime: rt.startTime)
        s.podIPs = [PodIP(ip: rt.ip)]
        s.hostIP = "127.0.0.1"
        if let m = rt.eviction { s.reason = "Evicted"; s.message = m }
        return s
    }

    /// Pending until every container has run; Succeeded or Failed once all have stopped for good
    /// (every exit 0, or not); Running otherwise.
    static func phase(_ rt: PodRuntime) -> String {
        if rt.eviction != nil { return "Failed" }
        if rt.containers.contains(where: { !$0.everRan }) { return "Pending" }
        if rt.containers.allSatisfy({ $0.finished }) {
            return rt.containers.allSatisfy({ $0.state.terminated?.exitCode == 0 }) ? "Succeeded" : "Failed"
        }
        return "Running"
    }

    /// Reports the pod's status if it changed.
    func publish(_ rt: PodRuntime) {
        let s = computeStatus(rt)
        guard s != rt.lastPublished else { return }
        rt.lastPublished = s
        onStatusChange?(rt.id, s)
    }
}
