import Foundation
import Objects

/// StatefulSet → pods `<sts>-0 … <sts>-(N-1)`: hostname and subdomain set, the same name (and,
/// through the agent's stable key, the same IP) when recreated; OrderedReady creates each only
/// once the one before is Running and Ready and removes from the highest ordinal one at a
/// time; Parallel does both at once. RollingUpdate replaces pods whose
/// `controller-revision-hash` is not the update revision, highest ordinal first, down to
/// `partition`. The current revision lives in `status.currentRevision`.
final class StatefulSetController: Controller {
    let name = "statefulset"
    unowned let m: ControllerManager
    static let component = "statefulset-controller"
    static let podNameLabel = "statefulset.kubernetes.io/pod-name"
    static let podIndexLabel = "apps.kubernetes.io/pod-index"

    init(manager: ControllerManager) { m = manager }
    var store: Store { m.store }

    static func ordinal(_ pod: String, of sts: String) -> Int? {
        guard pod.hasPrefix(sts + "-"), let n = Int(pod.dropFirst(sts.count + 1)), n >= 0,
              String(n) == String(pod.dropFirst(sts.count + 1)) else { return nil }
        return n
    }

    private func healthy(_ pod: JSONValue) -> Bool { ObjectFields.phase(pod) == "Running" && ObjectFields.isReady(pod) }

    func sync(namespace: String, name: String) throws -> SyncResult {
        guard let sts = try? store.get(.statefulSets, namespace: namespace, name: name) else { return .done }
        let replicas = ObjectFields.int(sts[path: ["spec", "replicas"]], default: 1)
        let parallel = sts[path: ["spec", "podManagementPolicy"]]?.stringValue == "Parallel"
        let template = sts[path: ["spec", "template"]] ?? .object([:])
        let updateRevision = "\(name)-\(ObjectFields.templateHash(template))"
        let storedCurrent = sts[path: ["status", "currentRevision"]]?.stringValue ?? ""
        let currentRevision = storedCurrent.isEmpty ? updateRevision : storedCurrent
        let rolling = (sts[path: ["spec", "updateStrategy", "type"]]?.stringValue ?? "RollingUpdate") == "RollingUpdate"
        let partition = rolling ? ObjectFields.int(sts[path: ["spec", "updateStrategy", "rollingUpdate", "partition"]], default: 0) : Int.max

        // The pods this set controls, by ordinal (adopting orphans with its ordinal names).
        var byOrdinal: [Int: JSONValue] = [:]
        for var pod in try store.list(.pods, namespace: namespace).items {
            guard let ord = Self.ordinal(pod.name, of: name) else { continue }
            let owner = ObjectFields.controllerUID(pod)
            if owner == nil, ObjectFields.selector(sts[path: ["spec", "selector"]])?.matches(pod.labels) == true {
                pod[path: ["metadata", "ownerReferences"]] = .array((pod[path: ["metadata", "ownerReferences"]]?.arrayValue ?? []) + [ObjectFields.ownerReference(sts)])
                pod = try store.update(.pods, pod)
            } else if owner != sts.uid {
                continue
            }
            byOrdinal[ord] = pod
        }

        func revision(_ pod: JSONValue) -> String { pod.labels[ObjectFields.revisionHashLabel] ?? "" }
        let retention = Self.retention(sts)

        /// The template of a revision: the set's own for the update revision, else one
        /// read back from a pod still at that revision.
        func templateFor(_ rev: String) -> JSONValue {
            if rev == updateRevision { return template }
            guard let p = byOrdinal.values.first(where: { revision($0) == rev }) else { return template }
            var t: JSONValue = .object(["metadata": .object([:]), "spec": p["spec"] ?? .object([:])])
            var labels = p.labels
            for k in [ObjectFields.revisionHashLabel, Self.podNameLabel, Self.podIndexLabel] { labels[k] = nil }
            t[path: ["metadata", "labels"]] = ObjectFields.json(labels)
            t[path: ["metadata", "annotations"]] = p[path: ["metadata", "annotations"]]
            for k in ["nodeName", "hostname", "subdomain"] { t[path: ["spec", k]] = nil }
            return t
        }

        /// A claim of a pod to create is still being deleted: look again soon.
        var claimsTerminating = false

        func create(_ ord: Int) throws {
            let podName = "\(name)-\(ord)"
            // The previous pod of this name still has the address: wait until it is gone.
            if m.agent.runningPods.contains(where: { $0.namespace == namespace && $0.name == podName }) { return }
            // OnDelete: a pod the user deleted comes back at the update revision.
            let rev = rolling && ord < partition ? currentRevision : updateRevision
            let t = templateFor(rev)
            var labels = t[path: ["metadata", "labels"]]?.stringMap ?? [:]
            labels[ObjectFields.revisionHashLabel] = rev
            labels[Self.podNameLabel] = podName
            labels[Self.podIndexLabel] = String(ord)
            var meta: JSONValue = .object(["name": .string(podName), "namespace": .string(namespace)])
            meta["labels"] = ObjectFields.json(labels)
            meta["annotations"] = t[path: ["metadata", "annotations"]]
            meta["ownerReferences"] = .array([ObjectFields.ownerReference(sts)])
            var spec = t["spec"] ?? .object([:])
            guard try claims(for: podName, ordinal: ord) else { claimsTerminating = true; return }
            var volumes = spec["volumes"]?.arrayValue ?? []
            for c in sts[path: ["spec", "volumeClaimTemplates"]]?.arrayValue ?? [] where !volumes.contains(where: { $0["name"] == c[path: ["metadata", "name"]] }) {
                volumes.append(.object(["name": c[path: ["metadata", "name"]] ?? .string(""),
                                        "persistentVolumeClaim": .object(["claimName": .string("\(c.name)-\(podName)")])]))
            }
            if !volumes.isEmpty { spec["volumes"] = .array(volumes) }
            spec["hostname"] = .string(podName)
            if let svc = sts[path: ["spec", "serviceName"]]?.stringValue, !svc.isEmpty { spec["subdomain"] = .string(svc) }
            do {
                let pod = try store.create(.pods, .object(["metadata": meta, "spec": spec]))
                byOrdinal[ord] = pod
                m.event(sts, "Normal", "SuccessfulCreate", "create Pod \(podName) in StatefulSet \(name) successful", component: Self.component)
            } catch let e as StoreError where e.reason == .alreadyExists {
                return
            }
        }

        /// One PersistentVolumeClaim per volumeClaimTemplate and ordinal (`<claim>-<pod>`), made
        /// Pending before the pod (the volume controller binds it) and kept after the pod and
        /// after a scale-down (Kubernetes' default retention, Retain/Retain), so the ordinal
        /// finds the same claim, and data, when it comes back. False (no pod yet) while a claim
        /// is Terminating: a new pod would keep it from going, and then lose it.
        func claims(for podName: String, ordinal: Int) throws -> Bool {
            for c in sts[path: ["spec", "volumeClaimTemplates"]]?.arrayValue ?? [] {
                let claimName = "\(c.name)-\(podName)"
                if let existing = try? store.get(.persistentVolumeClaims, namespace: namespace, name: claimName) {
                    if existing[path: ["metadata", "deletionTimestamp"]] != nil {
                        m.event(sts, "Warning", "FailedCreate", "create Pod \(podName) in StatefulSet \(name) failed error: pvc \(claimName) is being deleted", component: Self.component)
                        return false
                    }
                    continue
                }
                var labels = c[path: ["metadata", "labels"]]?.stringMap ?? [:]
                for (k, v) in sts[path: ["spec", "selector", "matchLabels"]]?.stringMap ?? [:] { labels[k] = v }
                var meta: JSONValue = .object(["name": .string(claimName), "namespace": .string(namespace), "labels": ObjectFields.json(labels)])
                meta["annotations"] = c[path: ["metadata", "annotations"]]
                if retention.whenDeleted == "Delete" { meta["ownerReferences"] = .array([Self.claimOwner(sts)]) }
                let pvc: JSONValue = .object(["metadata": meta, "spec": c["spec"] ?? .object([:])])
                do {
                    try store.create(.persistentVolumeClaims, pvc)
                } catch let e as StoreError where e.reason == .alreadyExists {
                    continue
                } catch {
                    m.event(sts, "Warning", "FailedCreate", "create Claim \(claimName) for Pod \(podName) in StatefulSet \(name) failed error: \(error)", component: Self.component)
                    throw error
                }
                m.event(sts, "Normal", "SuccessfulCreate", "create Claim \(claimName) Pod \(podName) in StatefulSet \(name) success", component: Self.component)
            }
            return true
        }

        func delete(_ pod: JSONValue, _ why: String) {
            _ = try? store.delete(.pods, namespace: namespace, name: pod.name)
            byOrdinal[Self.ordinal(pod.name, of: name)!] = nil
            m.event(sts, "Normal", "SuccessfulDelete", "delete Pod \(pod.name) in StatefulSet \(name) successful\(why)", component: Self.component)
        }

        // persistentVolumeClaimRetentionPolicy: the claims' owners say when they go (with the set,
        // or with their pod once it is scaled away).
        for (ord, pod) in byOrdinal { try claimOwners(sts, pod: pod, podName: "\(name)-\(ord)", condemned: ord >= replicas, retention) }

        var waiting = false
        // Create or replace the pods 0..N-1, in order unless Parallel.
        for ord in 0..<replicas {
            if let pod = byOrdinal[ord], ObjectFields.isTerminal(pod) {
                delete(pod, " (pod \(ObjectFields.phase(pod)))")
            }
            if byOrdinal[ord] == nil {
                try create(ord)
                if !parallel { waiting = true; break }
            } else if !parallel, !healthy(byOrdinal[ord]!) || m.pods.isTerminating(namespace: namespace, name: "\(name)-\(ord)") {
                waiting = true
                break
            }
        }
        // Scale down from the highest ordinal: one at a time, after the rest is healthy, unless Parallel.
        let condemned = byOrdinal.keys.filter { $0 >= replicas }.sorted(by: >)
        if !condemned.isEmpty && (parallel || !waiting) {
            let terminating = byOrdinal.keys.contains { m.pods.isTerminating(namespace: namespace, name: "\(name)-\($0)") }
            if parallel {
                for ord in condemned { delete(byOrdinal[ord]!, "") }
            } else if !terminating {
                delete(byOrdinal[condemned[0]]!, "")
            }
            waiting = true
        }
        // Rolling update: replace the highest-ordinal pod not at the update revision, once all are healthy.
        if rolling && !waiting {
            let allHealthy = (0..<replicas).allSatisfy { byOrdinal[$0].map(healthy) ?? false }
                && !(0..<replicas).contains { m.pods.isTerminating(namespace: namespace, name: "\(name)-\($0)") }
            if allHealthy {
                for ord in (0..<replicas).reversed() where ord >= partition {
                    if let pod = byOrdinal[ord], revision(pod) != updateRevision {
                        delete(pod, " (update to revision \(updateRevision))")
                        break
                    }
                }
            }
        }
        try writeStatus(sts, byOrdinal, currentRevision: currentRevision, updateRevision: updateRevision, replicas: replicas)
        return claimsTerminating ? .requeue(after: 0.5) : .done
    }

    /// `spec.persistentVolumeClaimRetentionPolicy` (Retain/Retain when unset).
    static func retention(_ sts: JSONValue) -> (whenDeleted: String, whenScaled: String) {
        let p = sts[path: ["spec", "persistentVolumeClaimRetentionPolicy"]]
        return (p?["whenDeleted"]?.stringValue ?? "Retain", p?["whenScaled"]?.stringValue ?? "Retain")
    }

    /// An ownerReference that makes the garbage collector delete a claim with its owner (not a
    /// controller reference: the claim is not the owner's to manage).
    static func claimOwner(_ owner: JSONValue) -> JSONValue {
        var ref = ObjectFields.ownerReference(owner)
        ref["controller"] = .bool(false)
        return ref
    }

    /// Sets the owners of the pod's claims as Kubernetes does for the retention policy: the pod,
    /// when it is scaled away and `whenScaled` is Delete; else the set, when `whenDeleted` is
    /// Delete; else none of them.
    private func claimOwners(_ sts: JSONValue, pod: JSONValue, podName: String, condemned: Bool,
                             _ retention: (whenDeleted: String, whenScaled: String)) throws {
        for c in sts[path: ["spec", "volumeClaimTemplates"]]?.arrayValue ?? [] {
            guard var claim = try? store.get(.persistentVolumeClaims, namespace: sts.namespace, name: "\(c.name)-\(podName)"),
                  claim[path: ["metadata", "deletionTimestamp"]] == nil else { continue }
            let old = claim[path: ["metadata", "ownerReferences"]]?.arrayValue ?? []
            var refs = old.filter {
                $0["uid"]?.stringValue != sts.uid && !($0["kind"]?.stringValue == "Pod" && $0["name"]?.stringValue == podName)
            }
            if condemned && retention.whenScaled == "Delete" {
                refs.append(Self.claimOwner(pod))
            } else if retention.whenDeleted == "Delete" {
                refs.append(Self.claimOwner(sts))
            }
            guard refs != old else { continue }
            claim[path: ["metadata", "ownerReferences"]] = refs.isEmpty ? nil : .array(refs)
            try store.update(.persistentVolumeClaims, claim)
        }
    }

    private func writeStatus(_ sts: JSONValue, _ pods: [Int: JSONValue], currentRevision: String, updateRevision: String, replicas: Int) throws {
        guard let fresh = try? store.get(.statefulSets, namespace: sts.namespace, name: sts.name) else { return }
        let list = Array(pods.values)
        let updated = list.filter { $0.labels[ObjectFields.revisionHashLabel] == updateRevision }.count
        var current = currentRevision
        var currentCount = list.filter { $0.labels[ObjectFields.revisionHashLabel] == currentRevision }.count
        // Every pod at the update revision: it becomes the current one.
        if updated == replicas && list.count == replicas { current = updateRevision; currentCount = updated }
        var status = fresh["status"] ?? .object([:])
        status["observedGeneration"] = fresh[path: ["metadata", "generation"]] ?? .int(1)
        status["replicas"] = .int(list.count)
        status["readyReplicas"] = .int(list.filter(ObjectFields.isReady).count)
        status["availableReplicas"] = .int(list.filter(ObjectFields.isReady).count)
        status["currentReplicas"] = .int(currentCount)
        status["updatedReplicas"] = .int(updated)
        status["currentRevision"] = .string(current)
        status["updateRevision"] = .string(updateRevision)
        status["collisionCount"] = status["collisionCount"] ?? .int(0)
        guard status != fresh["status"] else { return }
        var o = fresh
        o["status"] = status
        try store.updateStatus(.statefulSets, o)
    }
}
