import CSystem
import Foundation
import XCTest
import Objects
@testable import ControlPlane

final class StoreTests: XCTestCase {
    private var dir: String!
    private var store: Store!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "portico-store-\(UUID().uuidString)"
        store = try Store(directory: dir)
    }

    override func tearDownWithError() throws {
        store?.close()
        try? FileManager.default.removeItem(atPath: dir)
    }

    static func deployment(_ name: String, replicas: Int = 1, image: String = "echo:1") throws -> JSONValue {
        try JSONValue.parse("""
            {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"\(name)","labels":{"app":"\(name)"}},
             "spec":{"replicas":\(replicas),"selector":{"matchLabels":{"app":"\(name)"}},
              "template":{"metadata":{"labels":{"app":"\(name)"}},
               "spec":{"containers":[{"name":"web","image":"\(image)","ports":[{"containerPort":8080}],
                                      "env":[{"name":"A","value":"1"},{"name":"B","value":"2"}]},
                                     {"name":"side","image":"side:1"}]}}}}
            """)
    }

    static func configMap(_ name: String, labels: [String: String] = [:], namespace: String = "default") -> JSONValue {
        .object(["metadata": .object(["name": .string(name), "namespace": .string(namespace),
                                      "labels": .object(labels.mapValues { .string($0) })]),
                 "data": .object(["k": .string("v")])])
    }

    func testCreateSetsMetadataAndGetReturnsIt() throws {
        let created = try store.create(.deployments, try Self.deployment("web"))
        XCTAssertEqual(created.name, "web")
        XCTAssertEqual(created.namespace, "default")
        XCTAssertEqual(created.uid.count, 36)
        XCTAssertEqual(created[path: ["metadata", "generation"]], .int(1))
        XCTAssertNotNil(created[path: ["metadata", "creationTimestamp"]]?.stringValue?.hasSuffix("Z"))
        XCTAssertEqual(created.resourceVersion, String(store.revision))
        XCTAssertEqual(try store.get(.deployments, namespace: "default", name: "web"), created)
    }

    func testErrorsCarryKubernetesReasons() throws {
        try store.create(.deployments, try Self.deployment("web"))
        XCTAssertThrowsError(try store.create(.deployments, try Self.deployment("web"))) {
            XCTAssertEqual(($0 as? StoreError)?.reason, .alreadyExists)
            XCTAssertEqual(($0 as? StoreError)?.code, 409)
        }
        XCTAssertThrowsError(try store.get(.deployments, namespace: "default", name: "nope")) {
            XCTAssertEqual(($0 as? StoreError)?.code, 404)
        }
        XCTAssertThrowsError(try store.create(.configMaps, Self.configMap("Bad_Name"))) {
            let e = $0 as? StoreError
            XCTAssertEqual(e?.code, 422)
            XCTAssertEqual(e?.causes.first?.field, "metadata.name")
        }
        XCTAssertThrowsError(try store.create(.configMaps, Self.configMap("x", namespace: "missing"))) {
            XCTAssertEqual(($0 as? StoreError)?.code, 404)
        }
    }

    func testWorkloadValidationNamesTheField() throws {
        var d = try Self.deployment("web")
        d[path: ["spec", "template", "metadata", "labels"]] = .object(["app": .string("other")])
        XCTAssertThrowsError(try store.create(.deployments, d)) {
            XCTAssertEqual(($0 as? StoreError)?.causes.map(\.field), ["spec.template.metadata.labels"])
        }
    }

    func testReplicasBeyondIntAreInvalidNotACrash() throws {
        // Found with fuzz/fuzz-api: a JSON number such as 1e300 is a whole Double that Int cannot
        // hold; converting it trapped, so one `kubectl apply` could stop the whole server.
        for replicas in ["1e300", "-1e300", "9.3e18"] {
            var d = try Self.deployment("web")
            d[path: ["spec", "replicas"]] = try JSONValue.parse(replicas)
            XCTAssertThrowsError(try store.create(.deployments, d, dryRun: true), "replicas \(replicas)") {
                XCTAssertEqual(($0 as? StoreError)?.code, 422)
                XCTAssertTrue(($0 as? StoreError)?.causes.contains { $0.field == "spec.replicas" } ?? false, "\($0)")
            }
        }
        XCTAssertEqual(JSONValue.double(1e300).intValue, nil)
        XCTAssertEqual(JSONValue.double(3.0).intValue, 3)
    }

    func testTypedKindsRejectUnknownFields() throws {
        let svc = try JSONValue.parse(#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},"spec":{"selector":{"app":"web"},"ports":[{"port":80}],"bogus":1}}"#)
        XCTAssertThrowsError(try store.create(.services, svc)) {
            let e = $0 as? StoreError
            XCTAssertEqual(e?.code, 422)
            XCTAssertEqual(e?.causes.first?.field, "spec.bogus")
        }
    }

    func testRevisionIsMonotonicAcrossKinds() throws {
        let a = try store.create(.configMaps, Self.configMap("a"))
        let b = try store.create(.deployments, try Self.deployment("b"))
        let c = try store.update(.configMaps, a.with(["data", "k"], "w"))
        let revisions = [a, b, c].map { Int($0.resourceVersion)! }
        XCTAssertEqual(revisions, revisions.sorted())
        XCTAssertEqual(Set(revisions).count, 3)
    }

    func testUpdateWithStaleResourceVersionConflicts() throws {
        let a = try store.create(.configMaps, Self.configMap("a"))
        let b = try store.update(.configMaps, a.with(["data", "k"], "2"))
        XCTAssertThrowsError(try store.update(.configMaps, a.with(["data", "k"], "3"))) {
            XCTAssertEqual(($0 as? StoreError)?.reason, .conflict)
        }
        XCTAssertEqual(try store.get(.configMaps, namespace: "default", name: "a"), b)
        XCTAssertEqual(b.uid, a.uid)
    }

    func testGenerationGrowsOnSpecChangesOnlyAndStatusGoesThroughItsSubresource() throws {
        let d = try store.create(.deployments, try Self.deployment("web"))
        let labelled = try store.update(.deployments, d.with(["metadata", "labels", "x"], "y"))
        XCTAssertEqual(labelled[path: ["metadata", "generation"]], .int(1))
        let scaled = try store.update(.deployments, labelled.with(["spec", "replicas"], .int(3)))
        XCTAssertEqual(scaled[path: ["metadata", "generation"]], .int(2))
        let ignored = try store.update(.deployments, scaled.with(["status", "replicas"], .int(3)))
        XCTAssertNil(ignored["status"])
        let status = try store.updateStatus(.deployments, scaled.with(["status", "replicas"], .int(3)))
        XCTAssertEqual(status[path: ["status", "replicas"]], .int(3))
        XCTAssertEqual(status[path: ["spec", "replicas"]], .int(3))
        XCTAssertEqual(status[path: ["metadata", "generation"]], .int(2))
        XCTAssertEqual(try store.update(.deployments, status), status, "a no-op update makes no new revision")
    }

    func testListFiltersByNamespaceAndSelectors() throws {
        try store.create(.namespaces, .object(["metadata": .object(["name": "other"])]))
        try store.create(.configMaps, Self.configMap("a", labels: ["app": "web", "tier": "front"]))
        try store.create(.configMaps, Self.configMap("b", labels: ["app": "db"]))
        try store.create(.configMaps, Self.configMap("c", labels: ["app": "web"], namespace: "other"))
        func names(_ ns: String?, _ l: String? = nil, _ f: String? = nil) throws -> [String] {
            try store.list(.configMaps, namespace: ns, labelSelector: l, fieldSelector: f).items.map(\.name)
        }
        XCTAssertEqual(try names("default"), ["a", "b"])
        XCTAssertEqual(try names(nil), ["a", "b", "c"])
        XCTAssertEqual(try names(nil, "app=web"), ["a", "c"])
        XCTAssertEqual(try names(nil, "app==web,tier"), ["a"])
        XCTAssertEqual(try names(nil, "app!=web"), ["b"])
        XCTAssertEqual(try names(nil, "app in (db, web),!tier"), ["b", "c"])
        XCTAssertEqual(try names(nil, "app notin (web)"), ["b"])
        XCTAssertEqual(try names(nil, nil, "metadata.name=b"), ["b"])
        XCTAssertEqual(try names(nil, nil, "metadata.namespace=other"), ["c"])
        XCTAssertEqual(try names(nil, nil, "metadata.name!=b,metadata.namespace==default"), ["a"])
        XCTAssertThrowsError(try names(nil, nil, "spec.x=1")) { XCTAssertEqual(($0 as? StoreError)?.code, 400) }
    }

    func testJSONMergePatchFollowsRFC7386() throws {
        try store.create(.configMaps, .object(["metadata": .object(["name": "a"]), "data": .object(["x": "1", "y": "2"])]))
        let p = try store.patch(.configMaps, namespace: "default", name: "a",
                                patch: try JSONValue.parse(#"{"data":{"x":null,"z":"3"}}"#), as: .merge)
        XCTAssertEqual(p["data"], .object(["y": "2", "z": "3"]))
    }

    func testStrategicMergePatchMergesContainersByName() throws {
        try store.create(.deployments, try Self.deployment("web"))
        let patch = try JSONValue.parse("""
            {"spec":{"template":{"spec":{
              "$setElementOrder/containers":[{"name":"web"},{"name":"side"}],
              "containers":[{"name":"web","image":"echo:2","env":[{"name":"B","value":"3"},{"name":"A","$patch":"delete"}]},
                            {"name":"side","$patch":"delete"},
                            {"name":"new","image":"new:1"}]}}}}
            """)
        let p = try store.patch(.deployments, namespace: "default", name: "web", patch: patch, as: .strategic)
        let containers = p[path: ["spec", "template", "spec", "containers"]]?.arrayValue ?? []
        XCTAssertEqual(containers.map { $0.name(field: "name") }, ["web", "new"])
        XCTAssertEqual(containers[0]["image"], "echo:2")
        XCTAssertEqual(containers[0]["ports"], try JSONValue.parse(#"[{"containerPort":8080}]"#), "fields absent from the patch are kept")
        XCTAssertEqual(containers[0]["env"], try JSONValue.parse(#"[{"name":"B","value":"3"}]"#))
        XCTAssertEqual(p[path: ["metadata", "generation"]], .int(2))
    }

    func testStrategicMergePatchReplacesOtherListsAndMergesMaps() throws {
        try store.create(.deployments, try Self.deployment("web"))
        let patch = try JSONValue.parse(#"{"metadata":{"labels":{"new":"1"}},"spec":{"template":{"spec":{"containers":[{"name":"web","args":["a"]}]}}}}"#)
        let p = try store.patch(.deployments, namespace: "default", name: "web", patch: patch, as: .strategic)
        XCTAssertEqual(p.labels, ["app": "web", "new": "1"])
        XCTAssertEqual(p[path: ["spec", "template", "spec", "containers"]]?.arrayValue?.count, 2)
    }

    func testDeleteCascadesToDependentsThroughOwnerReferences() throws {
        let d = try store.create(.deployments, try Self.deployment("web"))
        func owned(_ name: String, by owner: JSONValue, kind: String) -> JSONValue {
            var o = Self.configMap(name)
            o[path: ["metadata", "ownerReferences"]] = .array([.object(["apiVersion": "apps/v1", "kind": .string(kind), "name": .string(owner.name), "uid": .string(owner.uid)])])
            return o
        }
        let rs = try JSONValue.parse(#"{"metadata":{"name":"web-1"},"spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c"}]}}}}"#)
        var rsOwned = rs
        rsOwned[path: ["metadata", "ownerReferences"]] = .array([.object(["uid": .string(d.uid), "name": "web", "kind": "Deployment", "apiVersion": "apps/v1"])])
        let createdRS = try store.create(.replicaSets, rsOwned)
        try store.create(.configMaps, owned("grandchild", by: createdRS, kind: "ReplicaSet"))
        try store.create(.configMaps, Self.configMap("unrelated"))
        var deleted: [String] = []
        let h = try store.watch(nil, fromResourceVersion: String(store.revision)) { if $0.type == .deleted { deleted.append($0.object.name) } }
        try store.delete(.deployments, namespace: "default", name: "web")
        h.cancel()
        XCTAssertEqual(deleted, ["web", "web-1", "grandchild"])
        XCTAssertEqual(try store.list(.configMaps).items.map(\.name), ["unrelated"])
        XCTAssertThrowsError(try store.delete(.deployments, namespace: "default", name: "web")) { XCTAssertEqual(($0 as? StoreError)?.code, 404) }
    }

    func testOrphanDeletionKeepsDependentsAndDropsTheirOwnerReference() throws {
        let owner = try store.create(.configMaps, Self.configMap("owner"))
        var child = Self.configMap("child")
        child[path: ["metadata", "ownerReferences"]] = .array([.object(["apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": .string(owner.uid)])])
        try store.create(.configMaps, child)
        try store.delete(.configMaps, namespace: "default", name: "owner", propagation: .orphan)
        let kept = try store.get(.configMaps, namespace: "default", name: "child")
        XCTAssertNil(kept[path: ["metadata", "ownerReferences"]])
        XCTAssertThrowsError(try store.delete(.configMaps, namespace: "default", name: "child", resourceVersion: "1")) {
            XCTAssertEqual(($0 as? StoreError)?.reason, .conflict, "a stale precondition does not delete")
        }
    }

    func testTypedObjectsRoundTripThroughTheStore() throws {
        let svc = try JSONValue.parse(#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},"spec":{"selector":{"app":"web"},"ports":[{"port":80}]}}"#)
        let stored = try store.create(.services, svc)
        let typed = try stored.decode(as: Service.self)
        XCTAssertEqual(typed.metadata.uid, stored.uid)
        XCTAssertEqual(typed.metadata.name, "web")
        let back = try JSONValue(encoding: typed)
        XCTAssertEqual(back.name, "web")
        XCTAssertEqual(try store.update(.services, back).resourceVersion, stored.resourceVersion, "an unchanged object makes no new revision")
    }

    func testWatchReplaysFromARevisionThenFollowsLiveChanges() throws {
        let a = try store.create(.configMaps, Self.configMap("a"))
        let from = store.revision
        try store.update(.configMaps, a.with(["data", "k"], "2"))
        var events: [String] = []
        let h = try store.watch(.configMaps, namespace: "default", fromResourceVersion: String(from)) {
            events.append("\($0.type.rawValue) \($0.object.name) \($0.object.resourceVersion)")
        }
        try store.create(.configMaps, Self.configMap("b"))
        try store.create(.deployments, try Self.deployment("ignored"))
        try store.delete(.configMaps, namespace: "default", name: "a")
        h.cancel()
        try store.create(.configMaps, Self.configMap("after-cancel"))
        XCTAssertEqual(events, ["MODIFIED a \(from + 1)", "ADDED b \(from + 2)", "DELETED a \(from + 4)"])

        var initial: [String] = []
        _ = try store.watch(.configMaps) { initial.append("\($0.type.rawValue) \($0.object.name)") }
        XCTAssertEqual(initial, ["ADDED after-cancel", "ADDED b"], "a watch without a resourceVersion starts with the current objects")
    }

    func testWatchFromAnExpiredRevisionIsGone() throws {
        store.close()
        store = try Store(directory: dir, windowCapacity: 3)
        let start = store.revision
        for i in 0..<5 { try store.create(.configMaps, Self.configMap("m\(i)")) }
        XCTAssertThrowsError(try store.watch(.configMaps, fromResourceVersion: String(start)) { _ in }) {
            XCTAssertEqual(($0 as? StoreError)?.code, 410)
            XCTAssertEqual(($0 as? StoreError)?.reason, .gone)
        }
        var seen = 0
        _ = try store.watch(.configMaps, fromResourceVersion: String(store.revision - 3)) { _ in seen += 1 }
        XCTAssertEqual(seen, 3)
    }

    /// Events also leave the window with age (as kube-apiserver compacts etcd's history), so the
    /// old object versions it holds do not pile up on a busy store.
    func testWatchWindowDropsEventsOlderThanItsMaxAge() throws {
        store.close()
        store = try Store(directory: dir, windowCapacity: 1000, windowMaxAge: 0.2)
        let start = store.revision
        for i in 0..<3 { try store.create(.configMaps, Self.configMap("old\(i)")) }
        var seen = 0
        _ = try store.watch(.configMaps, fromResourceVersion: String(start)) { _ in seen += 1 }
        XCTAssertEqual(seen, 3, "young events are replayed")
        Thread.sleep(forTimeInterval: 0.3)
        let middle = store.revision
        try store.create(.configMaps, Self.configMap("new"))
        XCTAssertThrowsError(try store.watch(.configMaps, fromResourceVersion: String(start)) { _ in }) {
            XCTAssertEqual(($0 as? StoreError)?.code, 410, "events older than the max age are gone")
        }
        var replayed: [String] = []
        _ = try store.watch(.configMaps, fromResourceVersion: String(middle)) { replayed.append($0.object.name) }
        XCTAssertEqual(replayed, ["new"])
    }

    /// An event dropped from the window lets go of its object at once. It used to stay in the
    /// array until half of it was dropped events, so up to the window's worth of old object
    /// versions again stayed in memory (the soak's RSS grew for twice the max age).
    func testEventsDroppedFromTheWindowReleaseTheirObjectsAtOnce() throws {
        store.close()
        store = try Store(directory: dir, windowCapacity: 10_000, windowMaxAge: 2)
        let versions = 40, size = 256 << 10
        let heapBefore = Int(portico_heap_bytes())
        // Old versions of one big ConfigMap: 10 MiB held by the window only.
        var big = try store.create(.configMaps, Self.configMap("big"))
        for i in 0..<versions {
            big["data"] = .object(["k": .string(String(repeating: Character(String(i % 10)), count: size))])
            big = try store.update(.configMaps, big)
        }
        let bigWritten = DispatchTime.now().uptimeNanoseconds
        Thread.sleep(forTimeInterval: 1.0)
        // Younger events, more of them than the old ones: the array is not compacted when the old ones go.
        let young = store.revision
        for i in 0..<(versions + 10) { try store.create(.configMaps, Self.configMap("small\(i)")) }
        let youngWritten = DispatchTime.now().uptimeNanoseconds
        XCTAssertLessThan(youngWritten - bigWritten, 1_700_000_000, "the young events were written too slowly for the test's timing")
        let wake = bigWritten + 2_200_000_000
        let now = DispatchTime.now().uptimeNanoseconds
        if wake > now { Thread.sleep(forTimeInterval: Double(wake - now) / 1e9) }
        try store.create(.configMaps, Self.configMap("trigger"))
        XCTAssertThrowsError(try store.watch(.configMaps, fromResourceVersion: String(young - 1)) { _ in }) {
            XCTAssertEqual(($0 as? StoreError)?.code, 410, "the big versions are out of the window")
        }
        var replayed = 0
        _ = try store.watch(.configMaps, fromResourceVersion: String(young)) { _ in replayed += 1 }
        XCTAssertEqual(replayed, versions + 11, "the young events are still in the window")
        let held = Int(portico_heap_bytes()) - heapBefore
        // The current version (256 KiB) and SQLite's page cache (at most 2 MiB) stay; 10 MiB must not.
        XCTAssertLessThan(held, 4 << 20, "\(held) bytes still held after \(versions) versions of \(size) bytes left the window")
    }

    func testReopenedStoreHasEveryObjectAndTheSameRevision() throws {
        try store.create(.deployments, try Self.deployment("web"))
        let cm = try store.create(.configMaps, Self.configMap("a"))
        try store.update(.configMaps, cm.with(["data", "k"], "2"))
        try store.create(.configMaps, Self.configMap("gone"))
        try store.delete(.configMaps, namespace: "default", name: "gone")
        let revision = store.revision
        let before = try ResourceType.all.map { try store.list($0).items }
        store.close()
        store = try Store(directory: dir)
        XCTAssertEqual(store.revision, revision)
        XCTAssertEqual(try ResourceType.all.map { try store.list($0).items }, before)
        XCTAssertThrowsError(try store.watch(nil, fromResourceVersion: String(revision - 1)) { _ in }) {
            XCTAssertEqual(($0 as? StoreError)?.code, 410, "events before the reopen are not kept")
        }
        let next = try store.create(.configMaps, Self.configMap("b"))
        XCTAssertEqual(next.resourceVersion, String(revision + 1))
    }
}

extension JSONValue {
    func with(_ path: [String], _ value: JSONValue) -> JSONValue {
        var o = self
        o[path: path] = value
        return o
    }

    func name(field: String) -> String { self[field]?.stringValue ?? "" }
}


extension JSONValue: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
}
