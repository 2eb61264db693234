import Foundation
import Objects

/// ReplicaSet → Pods: keeps `spec.replicas` active pods (name `<rs>-<5 random>`, the
/// template's labels, an owner reference to the ReplicaSet); scaling down removes not-ready
/// pods first, then the newest. Writes `status` (replicas, readyReplicas, availableReplicas).
final class ReplicaSetController: Controller {
    let name = "replicaset"
    unowned let m: ControllerManager

    init(manager: ControllerManager) { m = manager }
    var store: Store { m.store }

    /// The active pods a ReplicaSet controls (adopting orphans its selector matches).
    func pods(of rs: JSONValue) throws -> [JSONValue] {
        guard let selector = ObjectFields.selector(rs[path: ["spec", "selector"]]) else { return [] }
        var out: [JSONValue] = []
        for var pod in try store.list(.pods, namespace: rs.namespace).items {
            let owner = ObjectFields.controllerUID(pod)
            if owner == nil && selector.matches(pod.labels) && !ObjectFields.isTerminal(pod) {
                var refs = pod[path: ["metadata", "ownerReferences"]]?.arrayValue ?? []
                refs.append(ObjectFields.ownerReference(rs))
                pod[path: ["metadata", "ownerReferences"]] = .array(refs)
                pod = try store.update(.pods, pod)
            } else if owner != rs.uid {
                continue
            }
            if !ObjectFields.isTerminal(pod) { out.append(pod) }
        }
        return out
    }

    func sync(namespace: String, name: String) throws -> SyncResult {
        guard let rs = try? store.get(.replicaSets, namespace: namespace, name: name) else { return .done }
        let replicas = ObjectFields.int(rs[path: ["spec", "replicas"]], default: 1)
        var active = try pods(of: rs)
        if active.count < replicas {
            for _ in active.count..<replicas { active.append(try createPod(rs)) }
        } else if active.count > replicas {
            for pod in Self.deletionOrder(active).prefix(active.count - replicas) {
                _ = try? store.delete(.pods, namespace: namespace, name: pod.name)
                active.removeAll { $0.uid == pod.uid }
                m.event(rs, "Normal", "SuccessfulDelete", "Deleted pod: \(pod.name)", component: "replicaset-controller")
            }
        }
        return try writeStatus(rs, active)
    }

    /// Not ready before ready, then newest first (Kubernetes' ActivePods ranking, shortened).
    static func deletionOrder(_ pods: [JSONValue]) -> [JSONValue] {
        pods.sorted { a, b in
            let ra = ObjectFields.isReady(a), rb = ObjectFields.isReady(b)
            if ra != rb { return !ra }
            let pa = ObjectFields.phase(a) == "Running", pb = ObjectFields.phase(b) == "Running"
            if pa != pb { return !pa }
            return ObjectFields.olderFirst(b, a)
        }
    }

    private func createPod(_ rs: JSONValue) throws -> JSONValue {
        let template = rs[path: ["spec", "template"]] ?? .object([:])
        var meta: JSONValue = .object(["namespace": .string(rs.namespace)])
        meta["labels"] = template[path: ["metadata", "labels"]]
        meta["annotations"] = template[path: ["metadata", "annotations"]]
        meta["ownerReferences"] = .array([ObjectFields.ownerReference(rs)])
        var pod: JSONValue = .object(["metadata": meta, "spec": template["spec"] ?? .object([:])])
        for _ in 0..<8 {
            pod[path: ["metadata", "name"]] = .string("\(rs.name)-\(ObjectFields.randomSuffix())")
            do {
                let created = try store.create(.pods, pod)
                m.event(rs, "Normal", "SuccessfulCreate", "Created pod: \(created.name)", component: "replicaset-controller")
                return created
            } catch let e as StoreError where e.reason == .alreadyExists {
                continue
            } catch {
                m.event(rs, "Warning", "FailedCreate", "Error creating: \(error)", component: "replicaset-controller")
                throw error
            }
        }
        throw StoreError(.alreadyExists, "no free pod name for \(rs.name)")
    }

    private func writeStatus(_ rs: JSONValue, _ pods: [JSONValue]) throws -> SyncResult {
        let minReady = ObjectFields.int(rs[path: ["spec", "minReadySeconds"]], default: 0)
        var available = 0, wait: Double?
        for p in pods {
            let (ok, w) = ObjectFields.isAvailable(p, minReadySeconds: minReady)
            if ok { available += 1 } else if let w { wait = min(wait ?? w, w) }
        }
        let selector = ObjectFields.selector(rs[path: ["spec", "template", "metadata"]].map { _ in .object(["matchLabels": rs[path: ["spec", "template", "metadata", "labels"]] ?? .object([:])]) })
        let labeled = pods.filter { selector?.matches($0.labels) ?? true }.count
        var status = rs["status"] ?? .object([:])
        status["replicas"] = .int(pods.count)
        status["fullyLabeledReplicas"] = .int(labeled)
        status["readyReplicas"] = .int(pods.filter(ObjectFields.isReady).count)
        status["availableReplicas"] = .int(available)
        status["observedGeneration"] = rs[path: ["metadata", "generation"]] ?? .int(1)
        if status != rs["status"] {
            var o = rs
            o["status"] = status
            try store.updateStatus(.replicaSets, o)
        }
        return wait.map { .requeue(after: $0 + 0.05) } ?? .done
    }
}
