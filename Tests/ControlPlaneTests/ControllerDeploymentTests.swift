import Foundation
import Objects
import Reactor
import XCTest
@testable import ControlPlane

final class ControllerDeploymentTests: XCTestCase {
    func testDeploymentRunsReplicasThroughAHashedReplicaSetAndScales() throws {
        let h = try ControllerHarness()
        defer { h.finish() }
        try h.apply(.deployments, deploymentJSON("web", replicas: 3))
        h.waitUntil("3 ready pods") { h.readyPods("app=web").count == 3 }
        let rsList = try h.store.list(.replicaSets, namespace: "default").items
        XCTAssertEqual(rsList.count, 1)
        let rs = try XCTUnwrap(rsList.first)
        let hash = try XCTUnwrap(rs.labels["pod-template-hash"])
        XCTAssertEqual(rs.name, "web-\(hash)")
        XCTAssertEqual(ObjectFields.controllerRef(rs)?["kind"]?.stringValue, "Deployment")
        XCTAssertEqual(rs[path: ["metadata", "annotations", "deployment.kubernetes.io/revision"]]?.stringValue, "1")
        XCTAssertEqual(rs[path: ["spec", "selector", "matchLabels", "pod-template-hash"]]?.stringValue, hash)
        let pods = h.pods("app=web")
        XCTAssertEqual(Set(pods.compactMap { $0[path: ["status", "podIP"]]?.stringValue }).count, 3, "distinct pod IPs")
        for p in pods {
            XCTAssertTrue(p.name.hasPrefix("web-\(hash)-"), p.name)
            XCTAssertEqual(p.name.count, "web-\(hash)-".count + 5)
            XCTAssertEqual(p.labels["pod-template-hash"], hash)
            XCTAssertEqual(ObjectFields.controllerUID(p), rs.uid)
            XCTAssertEqual(p[path: ["spec", "nodeName"]]?.stringValue, "portico")
            XCTAssertEqual(ObjectFields.condition(p, "PodScheduled")?["status"]?.stringValue, "True")
            XCTAssertNotNil(p[path: ["status", "startTime"]])
        }
        h.waitUntil("deployment status") {
            let s = h.get(.deployments, "web")?["status"]
            return s?["readyReplicas"]?.intValue == 3 && s?["availableReplicas"]?.intValue == 3 && s?["updatedReplicas"]?.intValue == 3
                && s?["observedGeneration"]?.intValue == 1 && s?["unavailableReplicas"]?.intValue == 0
        }
        let d = try XCTUnwrap(h.get(.deployments, "web"))
        XCTAssertEqual(ObjectFields.condition(d, "Available")?["status"]?.stringValue, "True")
        XCTAssertEqual(ObjectFields.condition(d, "Progressing")?["reason"]?.stringValue, "NewReplicaSetAvailable")
        XCTAssertTrue(h.events(for: "web").contains("ScalingReplicaSet: Scaled up replica set web-\(hash) from 0 to 3"), "\(h.events(for: "web"))")
        XCTAssertEqual(h.events(for: rs.name).filter { $0.hasPrefix("SuccessfulCreate: Created pod: web-") }.count, 3)
        XCTAssertEqual(h.runningPods.count, 3)
        let podEvents = h.events(for: pods[0].name)
        XCTAssertTrue(podEvents.contains("Scheduled: Successfully assigned default/\(pods[0].name) to portico"), "\(podEvents)")
        XCTAssertTrue(podEvents.contains("Started: Started container main"), "\(podEvents)")

        try h.edit(.deployments, "web") { $0[path: ["spec", "replicas"]] = .int(5) }
        h.waitUntil("5 ready pods") { h.readyPods("app=web").count == 5 }
        try h.edit(.deployments, "web") { $0[path: ["spec", "replicas"]] = .int(1) }
        h.waitUntil("1 pod left, 1 process group") { h.pods("app=web").count == 1 && h.runningPods.count == 1 }
        h.waitUntil("status replicas 1") { h.get(.deployments, "web")?[path: ["status", "replicas"]]?.intValue == 1 }
        XCTAssertEqual(try h.store.list(.replicaSets).items.count, 1)

        // Deleting the Deployment deletes its ReplicaSet and pods, and their processes stop.
        try h.store.delete(.deployments, namespace: "default", name: "web")
        h.waitUntil("everything gone") {
            try h.store.list(.replicaSets).items.isEmpty && h.pods().isEmpty && h.runningPods.isEmpty
        }
    }

    func testScaleDownRemovesNotReadyPodsFirst() {
        let ready = try! JSONValue.parse(#"{"metadata":{"name":"a","creationTimestamp":"2024-01-01T00:00:00Z"},"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}"#)
        let newer = try! JSONValue.parse(#"{"metadata":{"name":"b","creationTimestamp":"2024-01-01T00:00:05Z"},"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}"#)
        let notReady = try! JSONValue.parse(#"{"metadata":{"name":"c","creationTimestamp":"2023-01-01T00:00:00Z"},"status":{"phase":"Running","conditions":[{"type":"Ready","status":"False"}]}}"#)
        XCTAssertEqual(ReplicaSetController.deletionOrder([ready, newer, notReady]).map(\.name), ["c", "b", "a"])
    }

    func testRollingUpdateKeepsReadyPodsAndEndsWithOnlyNewPods() throws {
        let h = try ControllerHarness()
        defer { h.finish() }
        let probe = #"{"exec":{"command":["true"]},"initialDelaySeconds":1,"periodSeconds":1}"#
        // 4 replicas, maxSurge 1, maxUnavailable 1: never fewer than 3 ready.
        let strategy = #"{"type":"RollingUpdate","rollingUpdate":{"maxSurge":1,"maxUnavailable":"25%"}}"#
        try h.apply(.deployments, deploymentJSON("roll", replicas: 4, strategy: strategy, probe: probe))
        h.waitUntil("4 ready") { h.readyPods("app=roll").count == 4 }
        let oldHash = try XCTUnwrap(h.pods("app=roll").first?.labels["pod-template-hash"])

        var minReady = Int.max, maxPods = 0
        let done = Latch(count: 1)
        var stop = false
        let sampler = OSThread(name: "sampler") {
            while !stop {
                let pods = h.pods("app=roll")
                minReady = min(minReady, pods.filter(ObjectFields.isReady).count)
                maxPods = max(maxPods, pods.count)
                usleep(5_000)
            }
            done.countDown()
        }
        try h.apply(.deployments, deploymentJSON("roll", replicas: 4, env: "v2", strategy: strategy, probe: probe))
        h.waitUntil("rollout complete", timeout: 15) {
            let pods = h.pods("app=roll")
            let s = h.get(.deployments, "roll")?["status"]
            return pods.count == 4 && pods.allSatisfy { $0.labels["pod-template-hash"] != oldHash && ObjectFields.isReady($0) }
                && s?["updatedReplicas"]?.intValue == 4 && s?["replicas"]?.intValue == 4 && s?["availableReplicas"]?.intValue == 4
        }
        stop = true
        done.wait()
        sampler.join()
        XCTAssertGreaterThanOrEqual(minReady, 3, "ready pods never below replicas - maxUnavailable")
        XCTAssertLessThanOrEqual(maxPods, 5, "pods never above replicas + maxSurge")
        let rsList = try h.store.list(.replicaSets).items.sorted { $0.name < $1.name }
        XCTAssertEqual(rsList.count, 2)
        let old = try XCTUnwrap(rsList.first { $0.labels["pod-template-hash"] == oldHash })
        let new = try XCTUnwrap(rsList.first { $0.labels["pod-template-hash"] != oldHash })
        XCTAssertEqual(old[path: ["spec", "replicas"]]?.intValue, 0)
        XCTAssertEqual(new[path: ["metadata", "annotations", "deployment.kubernetes.io/revision"]]?.stringValue, "2")
        XCTAssertEqual(h.get(.deployments, "roll")?[path: ["metadata", "annotations", "deployment.kubernetes.io/revision"]]?.stringValue, "2")
        h.waitUntil("only new pods run") { h.runningPods.count == 4 }

        // Back to the first template: the old ReplicaSet is reused as revision 3.
        try h.apply(.deployments, deploymentJSON("roll", replicas: 4, strategy: strategy, probe: probe))
        h.waitUntil("rolled back") { h.readyPods("app=roll").count == 4 && h.pods("app=roll").allSatisfy { $0.labels["pod-template-hash"] == oldHash } }
        XCTAssertEqual(h.get(.replicaSets, old.name)?[path: ["metadata", "annotations", "deployment.kubernetes.io/revision"]]?.stringValue, "3")
    }

    func testProgressDeadlineExceededWhenPodsNeverBecomeReady() throws {
        let h = try ControllerHarness()
        defer { h.finish() }
        var json = try JSONValue.parse(deploymentJSON("stuck", replicas: 1, probe: #"{"exec":{"command":["false"]},"periodSeconds":1}"#))
        json[path: ["spec", "progressDeadlineSeconds"]] = .int(1)
        try h.store.create(.deployments, json)
        h.waitUntil("deadline exceeded", timeout: 8) {
            guard let d = h.get(.deployments, "stuck"), let c = ObjectFields.condition(d, "Progressing") else { return false }
            return c["status"]?.stringValue == "False" && c["reason"]?.stringValue == "ProgressDeadlineExceeded"
        }
        XCTAssertEqual(ObjectFields.condition(h.get(.deployments, "stuck")!, "Available")?["status"]?.stringValue, "False")
        XCTAssertTrue(h.events(for: "stuck").contains("ProgressDeadlineExceeded: Deployment \"stuck\" has timed out progressing."))
    }

    func testRecreateStopsOldPodsBeforeStartingNewOnes() throws {
        let h = try ControllerHarness()
        defer { h.finish() }
        try h.apply(.deployments, deploymentJSON("rec", replicas: 2, strategy: #"{"type":"Recreate"}"#))
        h.waitUntil("2 ready") { h.readyPods("app=rec").count == 2 }
        let oldHash = try XCTUnwrap(h.pods("app=rec").first?.labels["pod-template-hash"])
        var mixed = false
        let watch = try h.store.watch(.pods) { _ in
            let hashes = Set(h.pods("app=rec").compactMap { $0.labels["pod-template-hash"] })
            if hashes.count > 1 { mixed = true }
        }
        try h.apply(.deployments, deploymentJSON("rec", replicas: 2, env: "v2", strategy: #"{"type":"Recreate"}"#))
        h.waitUntil("new pods ready") {
            let pods = h.pods("app=rec")
            return pods.count == 2 && pods.allSatisfy { $0.labels["pod-template-hash"] != oldHash && ObjectFields.isReady($0) }
        }
        watch.cancel()
        XCTAssertFalse(mixed, "old and new pods never exist together")
        h.waitUntil("2 processes") { h.runningPods.count == 2 }
    }
}
