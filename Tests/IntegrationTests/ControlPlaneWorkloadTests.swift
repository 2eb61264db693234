// End to end: the update strategies of Deployments and StatefulSets as the processes show them.

import Foundation
import Glibc
import XCTest

final class ControlPlaneWorkloadTests: ControlPlaneTestCase {

    /// Recreate: every old pod's process is gone before a new pod's process starts.
    func testRecreateStopsOldPodsBeforeStartingNewOnes() throws {
        let n = names("rec")
        let deploy = CPManifest.deployment(n, replicas: 2).replacingOccurrences(
            of: "    type: RollingUpdate\n    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}\n", with: "    type: Recreate\n")
        XCTAssertTrue(deploy.contains("type: Recreate"))
        let m = try fx.dir.write("rec.yaml", Manifest.join([deploy, CPManifest.service(n), CPManifest.ingress(n)]))
        let (_, k) = try start([m])
        let before = try waitForReady(k, n.app, count: 2)
        let oldHash = before[0].labels["pod-template-hash"] ?? "?"
        let oldPrefix = "\(n.app)-\(oldHash)-"

        try k.ok(["set", "env", "deployment/\(n.app)", "VERSION=2"])
        var overlap: [String] = []
        var newNames = Set<String>()
        let done = waitUntil(timeout: 30, interval: 0.01) {
            let procs = PodProcesses.echoes(prefix: n.app + "-").map { $0.pod }
            let old = procs.filter { $0.hasPrefix(oldPrefix) }
            let new = procs.filter { !$0.hasPrefix(oldPrefix) }
            if !old.isEmpty && !new.isEmpty && overlap.isEmpty { overlap = procs }
            newNames = Set(new)
            return old.isEmpty && new.count == 2
        }
        XCTAssertTrue(done, "the new pods' processes replace the old ones within 30 s: \(PodProcesses.echoes(prefix: n.app + "-"))")
        XCTAssertEqual(overlap, [], "Recreate: no new pod runs while an old one does")
        let rollout = try k.run(["rollout", "status", "deployment/\(n.app)", "--timeout=30s"], timeout: 40)
        XCTAssertEqual(rollout.exitCode, 0, rollout.stderr)
        let after = try waitForReady(k, n.app, count: 2)
        XCTAssertEqual(Set(after.map { $0.name }), newNames)
    }

    /// StatefulSet RollingUpdate: highest ordinal first, down to the partition; each recreated
    /// ordinal keeps its name and IP; lowering the partition updates the rest.
    func testStatefulSetRollingUpdateInReverseOrdinalOrderWithPartition() throws {
        let n = names("ssu")
        let sts = CPManifest.statefulSet(n, replicas: 3).replacingOccurrences(
            of: "  podManagementPolicy: OrderedReady\n",
            with: "  podManagementPolicy: OrderedReady\n  updateStrategy:\n    type: RollingUpdate\n    rollingUpdate: {partition: 1}\n")
        XCTAssertTrue(sts.contains("partition: 1"))
        let m = try fx.dir.write("sts.yaml", Manifest.join([CPManifest.service(n, headless: true), sts]))
        let (s, k) = try start([m])
        let before = Dictionary(uniqueKeysWithValues: try waitForReady(k, n.app, count: 3).map { ($0.name, $0) })
        let name = { (i: Int) in "\(n.app)-\(i)" }
        guard before.count == 3, let old0 = before[name(0)], let old1 = before[name(1)], let old2 = before[name(2)] else {
            return XCTFail("pods NAME-0..2: \(before.keys.sorted())")
        }
        let oldRevision = old0.labels["controller-revision-hash"] ?? ""
        XCTAssertFalse(oldRevision.isEmpty, "pods carry controller-revision-hash: \(old0.labels)")

        try k.ok(["set", "env", "statefulset/\(n.app)", "VERSION=2"])
        var pods: [String: KPod] = [:]
        let updated = try waitUntil(timeout: 30, interval: 0.2) {
            pods = Dictionary(uniqueKeysWithValues: try k.pods("app=\(n.app)", terminating: true).map { ($0.name, $0) })
            return pods.count == 3 && pods.values.allSatisfy { $0.ready }
                && pods[name(1)]?.uid != old1.uid && pods[name(2)]?.uid != old2.uid
        }
        XCTAssertTrue(updated, "ordinals 2 and 1 recreated: \(pods.mapValues { "\($0.uid) ready=\($0.ready)" })")
        XCTAssertEqual(pods[name(0)]?.uid, old0.uid, "the partition keeps ordinal 0 on the old revision")
        XCTAssertEqual(pods[name(0)]?.labels["controller-revision-hash"], oldRevision)
        let newRevision = pods[name(2)]?.labels["controller-revision-hash"] ?? ""
        XCTAssertNotEqual(newRevision, oldRevision)
        XCTAssertEqual(pods[name(1)]?.labels["controller-revision-hash"], newRevision)
        XCTAssertEqual(pods[name(1)]?.ip, old1.ip, "ordinal 1 keeps its IP")
        XCTAssertEqual(pods[name(2)]?.ip, old2.ip, "ordinal 2 keeps its IP")
        // Reverse ordinal order, from the agent's log: the new pod-2 starts before the new pod-1.
        let log = s.process.stderr
        if let uid2 = pods[name(2)]?.uid, let uid1 = pods[name(1)]?.uid,
           let start2 = log.range(of: "pod default/\(name(2)) (\(uid2)) starting"),
           let start1 = log.range(of: "pod default/\(name(1)) (\(uid1)) starting") {
            XCTAssertLessThan(start2.lowerBound, start1.lowerBound, "ordinal 2 is updated before ordinal 1")
        } else {
            XCTFail("the agent's start lines of the new pods are in the log")
        }

        try k.ok(["patch", "statefulset", n.app, "-p", #"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}"#])
        let rollout = try k.run(["rollout", "status", "statefulset/\(n.app)", "--timeout=40s"], timeout: 50)
        XCTAssertEqual(rollout.exitCode, 0, "rollout status: \(rollout.stdout) \(rollout.stderr)")
        let final = Dictionary(uniqueKeysWithValues: try waitForReady(k, n.app, count: 3).map { ($0.name, $0) })
        XCTAssertNotEqual(final[name(0)]?.uid, old0.uid, "ordinal 0 updated once the partition is 0")
        XCTAssertEqual(final[name(0)]?.ip, old0.ip, "ordinal 0 keeps its IP")
        XCTAssertEqual(Set(final.values.map { $0.labels["controller-revision-hash"] ?? "" }), [newRevision])
        XCTAssertEqual(PodProcesses.countByPod(prefix: n.app + "-"), [name(0): 1, name(1): 1, name(2): 1], "one process per ordinal")
        let status = try k.json(["statefulset", n.app])["status"] as? [String: Any] ?? [:]
        XCTAssertEqual(status["updateRevision"] as? String, status["currentRevision"] as? String, "\(status)")
        XCTAssertEqual(status["updatedReplicas"] as? Int, 3, "\(status)")
    }

    /// The server killed (-9) in the middle of a rolling update: on restart the controllers
    /// converge — the rollout completes, one process per pod, none left of the old pods.
    func testServerKilledMidRolloutConvergesOnRestart() throws {
        let n = names("mid")
        let m = try fx.dir.write("web.yaml", CPManifest.web(n))
        let (s1, k1) = try start([m])
        let before = try waitForReady(k1, n.app, count: 3)
        let oldHash = before[0].labels["pod-template-hash"] ?? "?"
        try k1.ok(["set", "env", "deployment/\(n.app)", "VERSION=2"])
        // Kill it once the new ReplicaSet has started (at least one new pod), before it is done.
        waitUntil(timeout: 10, interval: 0.02) {
            PodProcesses.echoes(prefix: n.app + "-").contains { !$0.pod.hasPrefix("\(n.app)-\(oldHash)-") }
        }
        s1.process.signal(SIGKILL)
        XCTAssertNotNil(s1.process.waitForExit(timeout: 10))

        let (s2, k2) = try start([m])
        let rollout = try k2.run(["rollout", "status", "deployment/\(n.app)", "--timeout=40s"], timeout: 50)
        XCTAssertEqual(rollout.exitCode, 0, "the rollout completes after the restart: \(rollout.stdout) \(rollout.stderr)")
        let after = try waitForReady(k2, n.app, count: 3)
        XCTAssertFalse(after.contains { $0.labels["pod-template-hash"] == oldHash }, "all pods on the new template: \(after.map { $0.name })")
        XCTAssertTrue(waitUntil(timeout: 15, interval: 0.1) {
            PodProcesses.countByPod(prefix: n.app + "-") == Dictionary(uniqueKeysWithValues: after.map { ($0.name, 1) })
        }, "one process per pod, none for old pods: \(PodProcesses.countByPod(prefix: n.app + "-")) vs \(after.map { $0.name })")
        var seen = Set<String>()
        waitUntil(timeout: 10, interval: 0.1) {
            if let p = get(s2, host: n.host).pod { seen.insert(p) }
            return seen.count == 3
        }
        XCTAssertEqual(seen, Set(after.map { $0.name }), "traffic reaches the new pods")
    }
    /// The server killed (-9) after spawning a pod's process but before its pid reached the pod
    /// record: the restarted agent finds the process by the PORTICO_* variables in its
    /// environment. A pod whose record names no pid is adopted (same process); a pod with no
    /// record at all is stopped and started afresh. Either way each pod runs exactly once.
    func testServerKilledBeforeRecordingAPodsProcessRunsEachPodOnce() throws {
        let n = names("rec")
        let m = try fx.dir.write("web.yaml", CPManifest.web(n, replicas: 2))
        let (s1, k1) = try start([m])
        let pods = try waitForReady(k1, n.app, count: 2).sorted { $0.name < $1.name }
        let before = Dictionary(PodProcesses.echoes(prefix: n.app + "-").map { ($0.pod, $0.pid) }, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(Set(before.keys), Set(pods.map(\.name)))
        let node = URL(fileURLWithPath: fx.dir.file("serve.data") + "/node").resolvingSymlinksInPath().path
        for p in pods {
            let env = PodProcesses.environment(before[p.name] ?? 0)
            XCTAssertEqual(env["PORTICO_NODE"], node, p.name)
            XCTAssertEqual(env["PORTICO_POD_UID"], p.uid, p.name)
            XCTAssertEqual(env["PORTICO_CONTAINER"], "echo", p.name)
        }
        s1.process.signal(SIGKILL)
        XCTAssertNotNil(s1.process.waitForExit(timeout: 10))
        // What the records look like when the kill came between the spawn and the pid's write
        // (pods[0]), or when there is no record at all (pods[1]).
        let record = { (p: KPod) in "\(node)/pods/default_\(p.name)_\(p.uid)/pod.json" }
        let data = try XCTUnwrap(FileManager.default.contents(atPath: record(pods[0])))
        var json = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        var containers = try XCTUnwrap(json["containers"] as? [String: [String: Any]])
        for name in containers.keys { containers[name]?["pid"] = 0; containers[name]?["startTicks"] = 0 }
        json["containers"] = containers
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: record(pods[0])))
        try FileManager.default.removeItem(atPath: record(pods[1]))
        // And a process of this node for a pod the store no longer has: killed at start.
        let ghost = Process()
        ghost.executableURL = URL(fileURLWithPath: "/bin/sleep")
        ghost.arguments = ["30"]
        ghost.environment = ["PORTICO_NODE": node, "PORTICO_POD_UID": UUID().uuidString.lowercased(), "PORTICO_CONTAINER": "echo"]
        try ghost.run()
        defer { if ghost.isRunning { ghost.terminate() } }

        let (s2, k2) = try start([m])
        XCTAssertTrue(waitUntil(timeout: 10, interval: 0.05) { !ghost.isRunning }, "the marked process of no pod is killed")
        XCTAssertEqual(ghost.terminationReason, .uncaughtSignal)
        XCTAssertEqual(ghost.terminationStatus, SIGTERM)
        let after = try waitForReady(k2, n.app, count: 2)
        XCTAssertEqual(Set(after.map(\.uid)), Set(pods.map(\.uid)), "the same pods")
        XCTAssertTrue(waitUntil(timeout: 15, interval: 0.1) {
            PodProcesses.countByPod(prefix: n.app + "-") == [pods[0].name: 1, pods[1].name: 1]
        }, "one process per pod: \(PodProcesses.echoes(prefix: n.app + "-"))")
        let now = Dictionary(PodProcesses.echoes(prefix: n.app + "-").map { ($0.pod, $0.pid) }, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(now[pods[0].name], before[pods[0].name], "adopted: the same process")
        XCTAssertNotEqual(now[pods[1].name], before[pods[1].name], "no record: a new process")
        // (Its zombie may linger: the killed server's orphans are reaped by pid 1, whenever it does.)
        XCTAssertFalse(PodProcesses.echoes(prefix: n.app + "-").contains { $0.pid == before[pods[1].name] }, "the unrecorded one is gone")
        var seen = Set<String>()
        waitUntil(timeout: 10, interval: 0.1) {
            if let p = get(s2, host: n.host).pod { seen.insert(p) }
            return seen.count == 2
        }
        XCTAssertEqual(seen, Set(pods.map(\.name)), "traffic reaches both pods")
    }
}
