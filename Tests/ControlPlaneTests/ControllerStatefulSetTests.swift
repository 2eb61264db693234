import Foundation
import Objects
import Reactor
import XCTest
@testable import ControlPlane

func statefulSetJSON(_ name: String, replicas: Int, policy: String = "OrderedReady", env: String = "v1", partition: Int = 0,
                     probe: String = #"{"exec":{"command":["true"]},"initialDelaySeconds":1,"periodSeconds":1}"#) -> String {
    #"""
    {"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"\#(name)"},
     "spec":{"replicas":\#(replicas),"serviceName":"\#(name)","podManagementPolicy":"\#(policy)",
       "updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"partition":\#(partition)}},
       "selector":{"matchLabels":{"app":"\#(name)"}},
       "template":{"metadata":{"labels":{"app":"\#(name)"}},
         "spec":{"terminationGracePeriodSeconds":1,"containers":[{"name":"main","image":"busybox",
           "command":["/bin/sh","-c","exec sleep 60"],"env":[{"name":"VERSION","value":"\#(env)"}],
           "readinessProbe":\#(probe)}]}}}}
    """#
}

final class ControllerStatefulSetTests: XCTestCase {
    /// Records, from the store's watch, when each pod was created, became Ready and was deleted.
    final class Timeline {
        let lock = NSLock()
        var created: [String: Date] = [:]
        var ready: [String: Date] = [:]
        var deleted: [(String, Date)] = []
        func record(_ e: WatchEvent) {
            lock.lock(); defer { lock.unlock() }
            let n = e.object.name
            switch e.type {
            case .added: created[n] = created[n] ?? Date()
            case .modified: if ObjectFields.isReady(e.object) && ready[n] == nil { ready[n] = Date() }
            case .deleted: deleted.append((n, Date())); created[n] = nil; ready[n] = nil
            }
        }
    }

    func testOrderedReadyIdentityAndScaleDownFromTheTop() throws {
        let h = try ControllerHarness()
        defer { h.finish() }
        let t = Timeline()
        let watch = try h.store.watch(.pods) { t.record($0) }
        defer { watch.cancel() }
        try h.apply(.services, #"{"metadata":{"name":"db"},"spec":{"clusterIP":"None","selector":{"app":"db"},"ports":[{"port":5432}]}}"#)
        try h.apply(.statefulSets, statefulSetJSON("db", replicas: 3))
        h.waitUntil("3 ready") { h.readyPods("app=db").count == 3 }
        t.lock.lock()
        let c1 = try XCTUnwrap(t.created["db-1"]), c2 = try XCTUnwrap(t.created["db-2"])
        let r0 = try XCTUnwrap(t.ready["db-0"]), r1 = try XCTUnwrap(t.ready["db-1"])
        t.lock.unlock()
        XCTAssertGreaterThanOrEqual(c1, r0, "db-1 is created only after db-0 is Ready")
        XCTAssertGreaterThanOrEqual(c2, r1, "db-2 is created only after db-1 is Ready")
        let pod1 = try XCTUnwrap(h.get(.pods, "db-1"))
        XCTAssertEqual(pod1[path: ["spec", "hostname"]]?.stringValue, "db-1")
        XCTAssertEqual(pod1[path: ["spec", "subdomain"]]?.stringValue, "db")
        XCTAssertEqual(pod1.labels["statefulset.kubernetes.io/pod-name"], "db-1")
        let rev = try XCTUnwrap(pod1.labels["controller-revision-hash"])
        XCTAssertTrue(rev.hasPrefix("db-"))
        h.waitUntil("status") {
            let s = h.get(.statefulSets, "db")?["status"]
            return s?["readyReplicas"]?.intValue == 3 && s?["currentRevision"]?.stringValue == rev
                && s?["updateRevision"]?.stringValue == rev && s?["currentReplicas"]?.intValue == 3 && s?["updatedReplicas"]?.intValue == 3
        }
        // The headless Service lists every pod with its hostname.
        h.waitUntil("headless endpoints") {
            let addrs = h.get(.endpoints, "db")?[path: ["subsets"]]?.arrayValue?.first?["addresses"]?.arrayValue ?? []
            return Set(addrs.compactMap { $0["hostname"]?.stringValue }) == ["db-0", "db-1", "db-2"]
        }
        XCTAssertEqual(h.get(.services, "db")?[path: ["spec", "clusterIP"]]?.stringValue, "None")

        // A deleted pod comes back with the same name and address.
        let ip1 = try XCTUnwrap(pod1[path: ["status", "podIP"]]?.stringValue)
        try h.store.delete(.pods, namespace: "default", name: "db-1")
        h.waitUntil("db-1 back and ready") {
            guard let p = h.get(.pods, "db-1") else { return false }
            return p.uid != pod1.uid && ObjectFields.isReady(p)
        }
        XCTAssertEqual(h.get(.pods, "db-1")?[path: ["status", "podIP"]]?.stringValue, ip1)

        // Scale down removes db-2 before db-1.
        t.lock.lock(); t.deleted = []; t.lock.unlock()
        try h.edit(.statefulSets, "db") { $0[path: ["spec", "replicas"]] = .int(1) }
        h.waitUntil("1 pod") { h.pods("app=db").count == 1 && h.runningPods.count == 1 }
        t.lock.lock()
        XCTAssertEqual(t.deleted.map(\.0), ["db-2", "db-1"])
        t.lock.unlock()
        XCTAssertNotNil(h.get(.pods, "db-0"))
    }

    func testVolumeClaimTemplatesMakeOneClaimPerOrdinal() throws {
        let h = try ControllerHarness()
        defer { h.finish() }
        var sts = try JSONValue.parse(statefulSetJSON("vol", replicas: 2, policy: "Parallel", probe: #"{"exec":{"command":["true"]},"periodSeconds":1}"#))
        sts[path: ["spec", "volumeClaimTemplates"]] = try JSONValue.parse(
            #"[{"metadata":{"name":"data"},"spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}}}}]"#)
        try h.store.create(.statefulSets, sts)
        h.waitUntil("2 ready") { h.readyPods("app=vol").count == 2 }
        for n in ["vol-0", "vol-1"] {
            // The volume controller binds it (the StatefulSet controller creates it Pending).
            h.waitUntil("data-\(n) Bound") { h.get(.persistentVolumeClaims, "data-\(n)")?[path: ["status", "phase"]]?.stringValue == "Bound" }
            let pvc = try XCTUnwrap(h.get(.persistentVolumeClaims, "data-\(n)"))
            XCTAssertEqual(pvc.labels["app"], "vol")
            let volumes = h.get(.pods, n)?[path: ["spec", "volumes"]]?.arrayValue ?? []
            XCTAssertEqual(volumes.first?[path: ["persistentVolumeClaim", "claimName"]]?.stringValue, "data-\(n)")
        }
        // Claims outlive a scale-down.
        try h.edit(.statefulSets, "vol") { $0[path: ["spec", "replicas"]] = .int(1) }
        h.waitUntil("1 pod") { h.pods("app=vol").count == 1 }
        XCTAssertNotNil(h.get(.persistentVolumeClaims, "data-vol-1"))
    }

    func testParallelAndRollingUpdateInReverseOrderWithPartition() throws {
        let h = try ControllerHarness()
        defer { h.finish() }
        let t = Timeline()
        let watch = try h.store.watch(.pods) { t.record($0) }
        defer { watch.cancel() }
        let fast = #"{"exec":{"command":["true"]},"periodSeconds":1}"#
        try h.apply(.statefulSets, statefulSetJSON("kv", replicas: 3, policy: "Parallel", probe: fast))
        h.waitUntil("3 ready") { h.readyPods("app=kv").count == 3 }
        let oldRev = try XCTUnwrap(h.get(.pods, "kv-0")?.labels["controller-revision-hash"])
        t.lock.lock(); t.deleted = []; t.lock.unlock()
        try h.apply(.statefulSets, statefulSetJSON("kv", replicas: 3, policy: "Parallel", env: "v2", partition: 1, probe: fast))
        h.waitUntil("kv-1 and kv-2 updated") {
            let pods = h.pods("app=kv")
            return pods.count == 3 && pods.allSatisfy(ObjectFields.isReady)
                && ["kv-1", "kv-2"].allSatisfy { n in pods.first { $0.name == n }?.labels["controller-revision-hash"] != oldRev }
        }
        XCTAssertEqual(h.get(.pods, "kv-0")?.labels["controller-revision-hash"], oldRev, "below the partition")
        t.lock.lock()
        XCTAssertEqual(t.deleted.map(\.0), ["kv-2", "kv-1"], "reverse ordinal order")
        t.lock.unlock()
        h.waitUntil("status") {
            let s = h.get(.statefulSets, "kv")?["status"]
            return s?["updatedReplicas"]?.intValue == 2 && s?["currentRevision"]?.stringValue == oldRev
        }
    }
}
