import ArgumentParser
import ControlPlane
import Foundation
import Objects

struct Rollout: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Watch, restart, undo and list the rollouts of a Deployment (status also for StatefulSets).",
        subcommands: [RolloutStatus.self, RolloutRestart.self, RolloutUndo.self, RolloutHistory.self])
}

let revisionAnnotation = "deployment.kubernetes.io/revision"

/// A Deployment's ReplicaSets (those it owns) by revision, oldest first.
func ownedReplicaSets(_ api: APIClient, _ deployment: JSONValue) throws -> [(Int, JSONValue)] {
    let list = try api.json("GET", ResourceType.replicaSets.path(namespace: deployment.namespace))
    let owned = (list["items"]?.arrayValue ?? []).filter { rs in
        (rs[path: ["metadata", "ownerReferences"]]?.arrayValue ?? []).contains { $0["uid"]?.stringValue == deployment.uid }
    }
    return owned.map { (Int($0[path: ["metadata", "annotations", revisionAnnotation]]?.stringValue ?? "") ?? 0, $0) }
        .sorted { $0.0 < $1.0 }
}

func requireDeployment(_ args: [String], _ command: String) throws -> String {
    let (type, name) = try kindAndName(args, command: command)
    guard type == .deployments else { throw ClientFailure.usage("\(command): only deployments are supported, not \(type.resource)") }
    return name
}

struct RolloutStatus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Wait until a rollout finishes, printing its progress.",
        discussion: "Done when the controller has observed the latest spec and every replica is updated and available.")

    @OptionGroup var options: ClientOptions

    @Option(help: "Give up after this long (e.g. 60s, 5m); 0 waits forever.")
    var timeout: Duration = Duration(argument: "0")!

    @Flag(name: .customLong("watch"), inversion: .prefixedNo, help: "Wait for the rollout (--no-watch prints the state once).")
    var watch = true

    @Argument(help: "deploy/NAME or sts/NAME")
    var args: [String] = []

    func run() throws {
        try runClient {
            let (type, name) = try kindAndName(args, command: "rollout status")
            guard type == .deployments || type == .statefulSets else {
                throw ClientFailure.usage("rollout status: only deployments and statefulsets are supported")
            }
            let api = try options.client()
            let deadline = timeout.nanos == 0 ? nil : Date().addingTimeInterval(Double(timeout.nanos) / 1e9)
            var last = ""
            while true {
                let o = try api.json("GET", type.path(namespace: options.namespace, name: name))
                let (message, done) = type == .deployments ? try deploymentStatus(o, name) : statefulSetStatus(o, name)
                if message != last { writeOut(message + "\n"); last = message }
                if done { return }
                guard watch else { return }
                if let deadline, Date() >= deadline { throw ClientFailure.failed("timed out waiting for the condition") }
                Thread.sleep(forTimeInterval: 0.25)
            }
        }
    }

    /// kubectl's DeploymentStatusViewer.
    func deploymentStatus(_ o: JSONValue, _ name: String) throws -> (String, Bool) {
        func int(_ p: String...) -> Int { o[path: p]?.intValue ?? 0 }
        let generation = int("metadata", "generation"), observed = int("status", "observedGeneration")
        guard generation <= observed else { return ("Waiting for deployment spec update to be observed...", false) }
        for c in o[path: ["status", "conditions"]]?.arrayValue ?? []
        where c["type"]?.stringValue == "Progressing" && c["reason"]?.stringValue == "ProgressDeadlineExceeded" {
            throw ClientFailure.failed("deployment \"\(name)\" exceeded its progress deadline")
        }
        let desired = o[path: ["spec", "replicas"]]?.intValue ?? 1
        let updated = int("status", "updatedReplicas"), total = int("status", "replicas"), available = int("status", "availableReplicas")
        if updated < desired {
            return ("Waiting for deployment \"\(name)\" rollout to finish: \(updated) out of \(desired) new replicas have been updated...", false)
        }
        if total > updated {
            return ("Waiting for deployment \"\(name)\" rollout to finish: \(total - updated) old replicas are pending termination...", false)
        }
        if available < updated {
            return ("Waiting for deployment \"\(name)\" rollout to finish: \(available) of \(updated) updated replicas are available...", false)
        }
        return ("deployment \"\(name)\" successfully rolled out", true)
    }

    /// kubectl's StatefulSetStatusViewer (RollingUpdate strategy).
    func statefulSetStatus(_ o: JSONValue, _ name: String) -> (String, Bool) {
        func int(_ p: String...) -> Int { o[path: p]?.intValue ?? 0 }
        let generation = int("metadata", "generation"), observed = int("status", "observedGeneration")
        guard observed != 0 && generation <= observed else { return ("Waiting for statefulset spec update to be observed...", false) }
        let desired = o[path: ["spec", "replicas"]]?.intValue ?? 1
        let ready = int("status", "readyReplicas")
        if ready < desired {
            return ("Waiting for \(desired - ready) pods to be ready...", false)
        }
        let partition = o[path: ["spec", "updateStrategy", "rollingUpdate", "partition"]]?.intValue ?? 0
        let update = o[path: ["status", "updateRevision"]]?.stringValue ?? ""
        if partition > 0 {
            let updated = int("status", "updatedReplicas")
            if updated < desired - partition {
                return ("Waiting for partitioned roll out to finish: \(updated) out of \(desired - partition) new pods have been updated...", false)
            }
            return ("partitioned roll out complete: \(updated) new pods have been updated...", true)
        }
        if let current = o[path: ["status", "currentRevision"]]?.stringValue, !update.isEmpty, current != update {
            return ("waiting for statefulset rolling update to complete \(int("status", "updatedReplicas")) pods at revision \(update)...", false)
        }
        return ("statefulset rolling update complete \(int("status", "currentReplicas")) pods at revision \(update)...", true)
    }
}

struct RolloutRestart: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restart",
        abstract: "Replace every pod of a Deployment through a rolling update (sets the template annotation kubectl.kubernetes.io/restartedAt).")

    @OptionGroup var options: ClientOptions

    @Argument(help: "deploy/NAME")
    var args: [String] = []

    func run() throws {
        try runClient {
            let name = try requireDeployment(args, "rollout restart")
            let api = try options.client()
            let patch: JSONValue = .object(["spec": .object(["template": .object(["metadata": .object([
                "annotations": .object(["kubectl.kubernetes.io/restartedAt": .string(ClientTime.now())]),
            ])])])])
            _ = try api.json("PATCH", ResourceType.deployments.path(namespace: options.namespace, name: name), body: patch,
                             contentType: "application/merge-patch+json")
            writeOut("deployment.apps/\(name) restarted\n")
        }
    }
}

struct RolloutUndo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "undo",
        abstract: "Roll a Deployment back to its previous revision (or --to-revision N).",
        discussion: "The pod template of the ReplicaSet holding that revision is copied into the Deployment, which then rolls out as any update.")

    @OptionGroup var options: ClientOptions

    @Option(name: .customLong("to-revision"), help: "The revision to roll back to; 0 means the previous one.")
    var toRevision: Int = 0

    @Argument(help: "deploy/NAME")
    var args: [String] = []

    func run() throws {
        try runClient {
            let name = try requireDeployment(args, "rollout undo")
            let api = try options.client()
            let path = ResourceType.deployments.path(namespace: options.namespace, name: name)
            var deployment = try api.json("GET", path)
            let sets = try ownedReplicaSets(api, deployment)
            let current = Int(deployment[path: ["metadata", "annotations", revisionAnnotation]]?.stringValue ?? "") ?? sets.last?.0 ?? 0
            let target: (Int, JSONValue)?
            if toRevision > 0 {
                target = sets.first { $0.0 == toRevision }
                if target == nil { throw ClientFailure.failed("unable to find the specified revision \(toRevision)") }
            } else {
                target = sets.last { $0.0 < current && $0.0 > 0 }
                if target == nil { throw ClientFailure.failed("no rollout history found for deployment \"\(name)\"") }
            }
            var template = target!.1[path: ["spec", "template"]] ?? .object([:])
            var labels = template[path: ["metadata", "labels"]]?.objectValue ?? [:]
            labels["pod-template-hash"] = nil
            template[path: ["metadata", "labels"]] = .object(labels)
            if template == deployment[path: ["spec", "template"]] {
                writeOut("deployment.apps/\(name) skipped rollback (current template already matches revision \(target!.0))\n")
                return
            }
            deployment[path: ["spec", "template"]] = template
            _ = try api.json("PUT", path, body: deployment)
            writeOut("deployment.apps/\(name) rolled back\n")
        }
    }
}

struct RolloutHistory: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "List a Deployment's revisions (or show one with --revision N).")

    @OptionGroup var options: ClientOptions

    @Option(help: "Show the pod template of this revision.")
    var revision: Int = 0

    @Argument(help: "deploy/NAME")
    var args: [String] = []

    func run() throws {
        try runClient {
            let name = try requireDeployment(args, "rollout history")
            let api = try options.client()
            let deployment = try api.json("GET", ResourceType.deployments.path(namespace: options.namespace, name: name))
            let sets = try ownedReplicaSets(api, deployment).filter { $0.0 > 0 }
            if revision > 0 {
                guard let rs = sets.first(where: { $0.0 == revision }) else {
                    throw ClientFailure.failed("unable to find the specified revision")
                }
                writeOut("deployment.apps/\(name) with revision #\(revision)\nPod Template:\n")
                writeOut(ClientYAML.emit(rs.1[path: ["spec", "template"]] ?? .object([:])).split(separator: "\n").map { "  " + $0 }.joined(separator: "\n") + "\n")
                return
            }
            var rows = [["REVISION", "CHANGE-CAUSE"]]
            for (rev, rs) in sets {
                rows.append(["\(rev)", rs[path: ["metadata", "annotations", "kubernetes.io/change-cause"]]?.stringValue ?? "<none>"])
            }
            writeOut("deployment.apps/\(name) \n" + formatTable(rows) + "\n")
        }
    }
}
