import Foundation
import Objects

/// The kubelet's API side: every pod in the store (this machine is the only node) is bound to
/// the node and run by the agent; pods gone from the store are stopped (after leaving their
/// Endpoints); what the agent reports is written back to `status`.
final class PodController: Controller {
    let name = "pod"
    unowned let m: ControllerManager
    /// Pods whose stop was asked for by this manager (the completion is added once).
    private var stopping = Set<String>()

    init(manager: ControllerManager) { m = manager }

    var store: Store { m.store }
    var agent: NodeAgent { m.agent }

    /// Takes the agent's hooks and stops what it runs (or an earlier agent left) for pods the
    /// store no longer has.
    func attach() {
        agent.onStatusChange = { [weak self] id, status in self?.statusChanged(id, status) }
        agent.beforeTerminate = { [weak self] id in self?.m.endpoints.podTerminating(id) }
        agent.onEvent = { [weak self] id, e in self?.agentEvent(id, e) }
        agent.serviceEnvironment = { [weak self] pod in self?.m.services.environment(for: pod) ?? [] }
        let known = Set(((try? store.list(.pods).items) ?? []).map(\.uid))
        for id in agent.runningPods where !known.contains(id.uid) { stop(id) }
        for (uid, r) in agent.recorded where !known.contains(uid) {
            stop(PodIdentity(namespace: r.record.namespace, name: r.record.name, uid: uid))
        }
        // Processes of a pod that has neither a record nor an object any more: in no Endpoints.
        for uid in Array(agent.markedProcesses.keys) where !known.contains(uid) && agent.recorded[uid] == nil {
            agent.stop(podUID: uid)
        }
    }

    func detach() {
        agent.onStatusChange = nil
        agent.beforeTerminate = nil
        agent.onEvent = nil
        agent.serviceEnvironment = nil
    }

    func sync(namespace: String, name: String) throws -> SyncResult {
        let found = try? store.get(.pods, namespace: namespace, name: name)
        // Another pod of this name (deleted, or replaced by a StatefulSet) still runs: stop it.
        var older = false
        for id in agent.runningPods where id.namespace == namespace && id.name == name && id.uid != found?.uid {
            stop(id)
            older = true
        }
        guard var pod = found else { return .done }
        if agent.pods[pod.uid] == nil {
            if ObjectFields.isTerminal(pod) && agent.recorded[pod.uid] == nil {
                // A finished pod runs nothing: whatever of it an earlier agent left is killed.
                if agent.markedProcesses[pod.uid] != nil { agent.stop(podUID: pod.uid) }
                return .done
            }
            // The same name keeps the same IP for a StatefulSet pod: wait for the old processes.
            if older { return .requeue(after: 0.5) }
            if pod[path: ["spec", "nodeName"]]?.stringValue != m.options.nodeName {
                pod[path: ["spec", "nodeName"]] = .string(m.options.nodeName)
                pod = try store.update(.pods, pod)
                m.event(pod, "Normal", "Scheduled", "Successfully assigned \(namespace)/\(name) to \(m.options.nodeName)",
                        component: "default-scheduler")
            }
            guard let typed = ObjectFields.typedPod(pod) else {
                m.event(pod, "Warning", "Failed", "the pod spec cannot be read", component: "kubelet")
                return .done
            }
            let stableKey = ObjectFields.controllerRef(pod)?["kind"]?.stringValue == "StatefulSet" ? "\(namespace)/\(name)" : nil
            agent.run(typed, stableKey: stableKey)
        }
        // The agent may have reported (and written) already; compare with the stored object.
        if let s = agent.status(of: pod.uid), let now = try? store.get(.pods, namespace: namespace, name: name), now.uid == pod.uid {
            try writeStatus(now, s)
        }
        return .done
    }

    /// Pods out of their Endpoints, waiting `endpointDrainDelay` before the agent signals them.
    private(set) var draining = Set<String>()

    private func stop(_ id: PodIdentity) {
        guard stopping.insert(id.uid).inserted else { return }
        let delay = m.options.endpointDrainDelay
        if delay > 0 {
            draining.insert(id.uid)
            m.endpoints.podTerminating(id)
            m.timers.after(delay) { [weak self] in
                guard let self else { return }
                self.draining.remove(id.uid)
                self.signal(id)
            }
        } else {
            signal(id)
        }
    }

    private func signal(_ id: PodIdentity) {
        agent.stop(podUID: id.uid) { [weak self] in
            guard let self else { return }
            self.stopping.remove(id.uid)
            // A pod of the same name may be waiting for this one's address; its StatefulSet too.
            self.m.enqueue(self.name, id.namespace, id.name)
            for sts in (try? self.store.list(.statefulSets, namespace: id.namespace).items) ?? [] {
                self.m.enqueue(self.m.statefulSets.name, id.namespace, sts.name)
            }
            for d in (try? self.store.list(.deployments, namespace: id.namespace).items) ?? [] {
                self.m.enqueue(self.m.deployments.name, id.namespace, d.name)
            }
        }
    }

    /// True while the agent is terminating (or has not yet let go of) a pod of this name.
    func isTerminating(namespace: String, name: String) -> Bool {
        agent.runningPods.contains {
            $0.namespace == namespace && $0.name == name && (agent.pods[$0.uid]?.terminating == true || draining.contains($0.uid))
        }
    }

    private func statusChanged(_ id: PodIdentity, _ status: PodStatus) {
        guard let pod = try? store.get(.pods, namespace: id.namespace, name: id.name), pod.uid == id.uid else { return }
        do { try writeStatus(pod, status) } catch { m.enqueue(name, id.namespace, id.name) }
    }

    private func writeStatus(_ pod: JSONValue, _ status: PodStatus) throws {
        let s = ObjectFields.json(status)
        guard pod["status"] != s else { return }
        var p = pod
        p["status"] = s
        try store.updateStatus(.pods, p)
    }

    private func agentEvent(_ id: PodIdentity, _ e: PodEvent) {
        var involved: JSONValue
        if let pod = try? store.get(.pods, namespace: id.namespace, name: id.name), pod.uid == id.uid {
            involved = pod
        } else {
            involved = .object(["apiVersion": .string("v1"), "kind": .string("Pod"),
                                "metadata": .object(["name": .string(id.name), "namespace": .string(id.namespace), "uid": .string(id.uid)])])
        }
        involved["apiVersion"] = .string("v1")
        involved["kind"] = .string("Pod")
        m.event(involved, e.type, e.reason, e.message, component: "kubelet")
    }
}
