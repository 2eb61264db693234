import Foundation
import Objects

/// Deployment → ReplicaSets: one ReplicaSet per pod template (`<deploy>-<pod-template-hash>`),
/// scaled by the strategy — RollingUpdate within maxSurge/maxUnavailable, counting only
/// available (Ready) pods, or Recreate (old pods gone before new ones start) — with revision
/// numbers, history cleanup and the status `kubectl rollout status` reads.
final class DeploymentController: Controller {
    let name = "deployment"
    unowned let m: ControllerManager
    static let component = "deployment-controller"

    init(manager: ControllerManager) { m = manager }
    var store: Store { m.store }

    /// One ReplicaSet and what its pods are doing now.
    private struct Set_ {
        var rs: JSONValue
        var pods: [JSONValue]
        var available: Int
        var replicas: Int { ObjectFields.int(rs[path: ["spec", "replicas"]], default: 0) }
        var revision: Int { Int(ObjectFields.annotations(rs)[ObjectFields.revisionAnnotation] ?? "") ?? 0 }
    }

    func sync(namespace: String, name: String) throws -> SyncResult {
        guard let d = try? store.get(.deployments, namespace: namespace, name: name) else { return .done }
        guard let selector = ObjectFields.selector(d[path: ["spec", "selector"]]) else { return .done }
        let replicas = ObjectFields.int(d[path: ["spec", "replicas"]], default: 1)
        let minReady = ObjectFields.int(d[path: ["spec", "minReadySeconds"]], default: 0)
        let template = d[path: ["spec", "template"]] ?? .object([:])
        var wait: Double?
        var progressed = false

        func load(_ rs: JSONValue) throws -> Set_ {
            let pods = try m.replicaSets.pods(of: rs)
            var available = 0
            for p in pods {
                let (ok, w) = ObjectFields.isAvailable(p, minReadySeconds: minReady)
                if ok { available += 1 } else if let w { wait = min(wait ?? w, w) }
            }
            return Set_(rs: rs, pods: pods, available: available)
        }

        var sets: [Set_] = []
        for var rs in try store.list(.replicaSets, namespace: namespace).items {
            let owner = ObjectFields.controllerUID(rs)
            if owner == nil && selector.matches(rs.labels) {
                rs[path: ["metadata", "ownerReferences"]] = .array((rs[path: ["metadata", "ownerReferences"]]?.arrayValue ?? []) + [ObjectFields.ownerReference(d)])
                rs = try store.update(.replicaSets, rs)
            } else if owner != d.uid {
                continue
            }
            sets.append(try load(rs))
        }
        var newIndex = sets.firstIndex { Self.sameTemplate($0.rs[path: ["spec", "template"]], template) }
        let maxOldRevision = sets.indices.filter { $0 != newIndex }.map { sets[$0].revision }.max() ?? 0

        func scale(_ i: Int, to n: Int, _ why: String) throws {
            var rs = sets[i].rs
            let from = sets[i].replicas
            guard from != n else { return }
            rs[path: ["spec", "replicas"]] = .int(n)
            rs = try store.update(.replicaSets, rs)
            sets[i] = try load(rs)
            progressed = true
            m.event(d, "Normal", "ScalingReplicaSet", "Scaled \(n > from ? "up" : "down") replica set \(rs.name) from \(from) to \(n)\(why)", component: Self.component)
        }

        func createNew(_ n: Int) throws -> Int {
            let collisions = ObjectFields.int(d[path: ["status", "collisionCount"]], default: 0)
            let hash = ObjectFields.templateHash(template, collisionCount: collisions)
            var t = template
            t[path: ["metadata", "labels", ObjectFields.templateHashLabel]] = .string(hash)
            var sel = d[path: ["spec", "selector"]] ?? .object([:])
            sel[path: ["matchLabels", ObjectFields.templateHashLabel]] = .string(hash)
            var annotations: [String: JSONValue] = [ObjectFields.revisionAnnotation: .string(String(maxOldRevision + 1))]
            if let cause = ObjectFields.annotations(d)["kubernetes.io/change-cause"] { annotations["kubernetes.io/change-cause"] = .string(cause) }
            var labels = t[path: ["metadata", "labels"]] ?? .object([:])
            labels[ObjectFields.templateHashLabel] = .string(hash)
            let rs: JSONValue = .object([
                "metadata": .object([
                    "name": .string("\(d.name)-\(hash)"), "namespace": .string(namespace), "labels": labels,
                    "annotations": .object(annotations), "ownerReferences": .array([ObjectFields.ownerReference(d)]),
                ]),
                "spec": .object(["replicas": .int(n), "selector": sel, "template": t,
                                 "minReadySeconds": .int(minReady)]),
            ])
            let created: JSONValue
            do {
                created = try store.create(.replicaSets, rs)
            } catch let e as StoreError where e.reason == .alreadyExists {
                // Another template hashed to the same name: count the collision and try another hash.
                var o = try store.get(.deployments, namespace: namespace, name: name)
                o[path: ["status", "collisionCount"]] = .int(collisions + 1)
                try store.updateStatus(.deployments, o)
                throw e
            }
            sets.append(try load(created))
            progressed = true
            m.event(d, "Normal", "ScalingReplicaSet", "Scaled up replica set \(created.name) from 0 to \(n)", component: Self.component)
            return sets.count - 1
        }

        // A ReplicaSet brought back (rollback) becomes the newest revision again.
        if let i = newIndex, sets[i].revision <= maxOldRevision {
            var rs = sets[i].rs
            rs[path: ["metadata", "annotations", ObjectFields.revisionAnnotation]] = .string(String(maxOldRevision + 1))
            rs = try store.update(.replicaSets, rs)
            sets[i].rs = rs
        }

        let paused = d[path: ["spec", "paused"]] == .bool(true)
        let strategy = d[path: ["spec", "strategy", "type"]]?.stringValue ?? "RollingUpdate"
        var maxUnavailable = 0
        if paused {
            // Only scale while paused: the newest ReplicaSet takes the difference.
            if let i = newIndex ?? sets.indices.max(by: { sets[$0].revision < sets[$1].revision }) {
                let others = sets.indices.filter { $0 != i }.map { sets[$0].replicas }.reduce(0, +)
                try scale(i, to: max(0, replicas - others), "")
            }
        } else if strategy == "Recreate" {
            let olds = sets.indices.filter { $0 != newIndex }
            for i in olds where sets[i].replicas > 0 { try scale(i, to: 0, "") }
            let oldPods = olds.map { sets[$0].pods.count }.reduce(0, +)
            // Old pods leave the store at once, but their processes stop later: any process of an
            // old ReplicaSet's pod still on the node blocks the new pods, whatever its state.
            let terminating = m.agent.runningPods.contains { id in
                id.namespace == namespace && olds.contains { id.name.hasPrefix(sets[$0].rs.name + "-") }
            }
            if oldPods == 0 && !terminating {
                if let i = newIndex { try scale(i, to: replicas, "") } else { newIndex = try createNew(replicas) }
            }
        } else {
            let ru = d[path: ["spec", "strategy", "rollingUpdate"]]
            let maxSurge = ObjectFields.scaled(ru?["maxSurge"], default: "25%", total: replicas, roundUp: true)
            maxUnavailable = ObjectFields.scaled(ru?["maxUnavailable"], default: "25%", total: replicas, roundUp: false)
            if maxSurge == 0 && maxUnavailable == 0 { maxUnavailable = 1 }
            let total = { sets.map(\.replicas).reduce(0, +) }
            // Scale the new ReplicaSet up within maxSurge.
            if newIndex == nil {
                let room = sets.isEmpty ? replicas : min(max(0, replicas + maxSurge - total()), replicas)
                newIndex = try createNew(room)
            } else if let i = newIndex {
                let n = sets[i].replicas
                if n > replicas {
                    try scale(i, to: replicas, "")
                } else if n < replicas, total() < replicas + maxSurge {
                    try scale(i, to: n + min(replicas + maxSurge - total(), replicas - n), "")
                }
            }
            // Scale old ones down while at least replicas - maxUnavailable stay available.
            let ni = newIndex!
            let olds = sets.indices.filter { $0 != ni }.sorted { sets[$0].revision < sets[$1].revision }
            if olds.map({ sets[$0].replicas }).reduce(0, +) > 0 {
                let minAvailable = replicas - maxUnavailable
                let newUnavailable = max(0, sets[ni].replicas - sets[ni].available)
                var budget = total() - minAvailable - newUnavailable
                // Unhealthy old pods first: removing them costs no availability.
                for i in olds where budget > 0 {
                    let unhealthy = max(0, sets[i].replicas - sets[i].available)
                    let k = min(budget, unhealthy)
                    if k > 0 { try scale(i, to: sets[i].replicas - k, ""); budget -= k }
                }
                let available = sets.map(\.available).reduce(0, +)
                var room = min(max(0, available - minAvailable), max(0, budget))
                for i in olds where room > 0 {
                    let k = min(room, sets[i].replicas)
                    if k > 0 { try scale(i, to: sets[i].replicas - k, ""); room -= k }
                }
            }
        }

        // Keep the deployment's own revision annotation in step.
        if let i = newIndex, ObjectFields.annotations(d)[ObjectFields.revisionAnnotation] != String(sets[i].revision) {
            var o = d
            o[path: ["metadata", "annotations", ObjectFields.revisionAnnotation]] = .string(String(sets[i].revision))
            _ = try store.update(.deployments, o)
        }
        try cleanup(sets, newIndex: newIndex, limit: ObjectFields.int(d[path: ["spec", "revisionHistoryLimit"]], default: 10), d: d)
        if let deadline = try writeStatus(namespace, name, sets, newIndex: newIndex, replicas: replicas,
                                          maxUnavailable: maxUnavailable, progressed: progressed, paused: paused) {
            wait = min(wait ?? deadline, deadline)
        }
        return wait.map { .requeue(after: $0 + 0.05) } ?? .done
    }

    /// Templates equal apart from the pod-template-hash label (Kubernetes' EqualIgnoreHash).
    static func sameTemplate(_ a: JSONValue?, _ b: JSONValue) -> Bool {
        func strip(_ t: JSONValue?) -> JSONValue {
            var t = t ?? .object([:])
            t[path: ["metadata", "labels", ObjectFields.templateHashLabel]] = nil
            if t[path: ["metadata", "labels"]]?.objectValue?.isEmpty == true { t[path: ["metadata", "labels"]] = nil }
            if t["metadata"]?.objectValue?.isEmpty == true { t["metadata"] = nil }
            return t
        }
        return strip(a) == strip(b)
    }

    /// Deletes the oldest scaled-down ReplicaSets beyond revisionHistoryLimit.
    private func cleanup(_ sets: [Set_], newIndex: Int?, limit: Int, d: JSONValue) throws {
        let idle = sets.indices.filter { $0 != newIndex && sets[$0].replicas == 0 && sets[$0].pods.isEmpty }
            .sorted { sets[$0].revision < sets[$1].revision }
        guard idle.count > limit else { return }
        for i in idle.prefix(idle.count - limit) {
            _ = try? store.delete(.replicaSets, namespace: d.namespace, name: sets[i].rs.name)
        }
    }

    /// Writes the status; returns the seconds left before the progress deadline, if one runs.
    private func writeStatus(_ namespace: String, _ name: String, _ sets: [Set_], newIndex: Int?, replicas: Int, maxUnavailable: Int,
                             progressed: Bool, paused: Bool) throws -> Double? {
        guard let d = try? store.get(.deployments, namespace: namespace, name: name) else { return nil }
        let actual = sets.map(\.pods.count).reduce(0, +)
        let specTotal = sets.map(\.replicas).reduce(0, +)
        let available = sets.map(\.available).reduce(0, +)
        let ready = sets.map { $0.pods.filter(ObjectFields.isReady).count }.reduce(0, +)
        let updated = newIndex.map { sets[$0].pods.count } ?? 0
        var status: JSONValue = .object([:])
        status["observedGeneration"] = d[path: ["metadata", "generation"]] ?? .int(1)
        status["replicas"] = .int(actual)
        status["updatedReplicas"] = .int(updated)
        status["readyReplicas"] = .int(ready)
        status["availableReplicas"] = .int(available)
        status["unavailableReplicas"] = .int(max(0, specTotal - available))
        let old = d[path: ["status", "conditions"]]?.arrayValue ?? []
        func condition(_ type: String, _ ok: Bool, _ reason: String, _ message: String, touch: Bool = false) -> JSONValue {
            let now = ObjectFields.now()
            let prev = old.first { $0["type"]?.stringValue == type }
            let value = ok ? "True" : "False"
            let same = prev?["status"]?.stringValue == value
            let sameReason = !touch && same && prev?["reason"]?.stringValue == reason && prev?["message"]?.stringValue == message
            return .object([
                "type": .string(type), "status": .string(value), "reason": .string(reason), "message": .string(message),
                "lastUpdateTime": sameReason ? (prev?["lastUpdateTime"] ?? .string(now)) : .string(now),
                "lastTransitionTime": same ? (prev?["lastTransitionTime"] ?? .string(now)) : .string(now),
            ])
        }
        let minAvailable = available >= replicas - maxUnavailable
        let rsName = newIndex.map { sets[$0].rs.name } ?? ""
        let complete = updated == replicas && available >= replicas && actual == replicas
        // Progress: a ReplicaSet scaled, or more pods updated or available than last written.
        let moved = progressed || available > (d[path: ["status", "availableReplicas"]]?.intValue ?? 0)
            || updated > (d[path: ["status", "updatedReplicas"]]?.intValue ?? 0)
        let prev = old.first { $0["type"]?.stringValue == "Progressing" }
        let deadline = Double(ObjectFields.int(d[path: ["spec", "progressDeadlineSeconds"]], default: 600))
        var left: Double?
        let progressing: JSONValue
        if complete {
            progressing = condition("Progressing", true, "NewReplicaSetAvailable", "ReplicaSet \"\(rsName)\" has successfully progressed.")
        } else if paused {
            progressing = condition("Progressing", true, "DeploymentPaused", "Deployment is paused")
        } else if moved || prev?["status"]?.stringValue != "True" && prev?["reason"]?.stringValue != "ProgressDeadlineExceeded" {
            progressing = condition("Progressing", true, "ReplicaSetUpdated", "ReplicaSet \"\(rsName)\" is progressing.", touch: moved)
            left = deadline
        } else if prev?["reason"]?.stringValue == "ProgressDeadlineExceeded" {
            progressing = prev!
        } else {
            let since = (prev?["lastUpdateTime"]?.stringValue).flatMap(ObjectFields.parseTime) ?? Date()
            let remaining = since.addingTimeInterval(deadline).timeIntervalSinceNow
            if remaining <= 0 {
                progressing = condition("Progressing", false, "ProgressDeadlineExceeded", "ReplicaSet \"\(rsName)\" has timed out progressing.")
                m.event(d, "Warning", "ProgressDeadlineExceeded", "Deployment \"\(name)\" has timed out progressing.", component: Self.component)
            } else {
                progressing = condition("Progressing", true, "ReplicaSetUpdated", "ReplicaSet \"\(rsName)\" is progressing.")
                left = remaining
            }
        }
        status["conditions"] = .array([
            condition("Available", minAvailable, minAvailable ? "MinimumReplicasAvailable" : "MinimumReplicasUnavailable",
                      minAvailable ? "Deployment has minimum availability." : "Deployment does not have minimum availability."),
            progressing,
        ])
        if let c = d[path: ["status", "collisionCount"]] { status["collisionCount"] = c }
        guard status != d["status"] else { return left }
        var o = d
        o["status"] = status
        try store.updateStatus(.deployments, o)
        return left
    }
}
