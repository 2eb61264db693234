import Foundation
import Objects
import Reactor
import XCTest
@testable import ControlPlane

/// Kubernetes' PersistentVolume semantics (kubernetes.io/docs/concepts/storage/persistent-volumes):
/// binding, dynamic provisioning through a StorageClass, reclaim policies, storage object in use
/// protection, and StatefulSet claims that outlive their pods.
final class PersistentVolumeControllerTests: XCTestCase {
    func claimJSON(_ name: String, size: String = "1Gi", modes: String = #"["ReadWriteOnce"]"#, extra: String = "") -> String {
        #"{"metadata":{"name":"\#(name)"},"spec":{"accessModes":\#(modes),"resources":{"requests":{"storage":"\#(size)"}}\#(extra)}}"#
    }

    func volumeJSON(_ name: String, size: String, path: String, modes: String = #"["ReadWriteOnce"]"#, cls: String = "manual",
                    policy: String = "Retain", extra: String = "") -> String {
        #"{"metadata":{"name":"\#(name)"},"spec":{"capacity":{"storage":"\#(size)"},"accessModes":\#(modes),"storageClassName":"\#(cls)","persistentVolumeReclaimPolicy":"\#(policy)","hostPath":{"path":"\#(path)"}\#(extra)}}"#
    }

    func phase(_ h: ControllerHarness, _ type: ResourceType, _ name: String) -> String? {
        let o = type == .persistentVolumes ? try? h.store.get(type, namespace: "", name: name) : h.get(type, name)
        return o?[path: ["status", "phase"]]?.stringValue
    }

    func pv(_ h: ControllerHarness, _ name: String) -> JSONValue? { try? h.store.get(.persistentVolumes, namespace: "", name: name) }

    func mode(_ path: String) -> Int? {
        (try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue
    }

    func lookup(_ h: ControllerHarness, _ name: String) -> ClaimLookup {
        h.onLoop { h.manager.claimLookup(namespace: "default", name: name) }
    }

    func testDynamicProvisioningWithTheDefaultClassBindsAndMakesTheDirectory() throws {
        let h = try ControllerHarness()
        defer { h.finish() }
        h.waitUntil("the default class") { (try? h.store.get(.storageClasses, namespace: "", name: "local-path")) != nil }
        let cls = try h.store.get(.storageClasses, namespace: "", name: "local-path")
        XCTAssertEqual(cls[path: ["metadata", "annotations", "storageclass.kubernetes.io/is-default-class"]]?.stringValue, "true")
        XCTAssertEqual(cls["provisioner"]?.stringValue, "portico.io/local")
        XCTAssertEqual(cls["reclaimPolicy"]?.stringValue, "Delete")
        XCTAssertEqual(cls["volumeBindingMode"]?.stringValue, "Immediate")

        try h.store.create(.persistentVolumeClaims, try JSONValue.parse(claimJSON("data", size: "2Gi")))
        h.waitUntil("claim Bound") { self.phase(h, .persistentVolumeClaims, "data") == "Bound" }
        let claim = try XCTUnwrap(h.get(.persistentVolumeClaims, "data"))
        // The default class is set on a claim that names none, as the admission plugin does.
        XCTAssertEqual(claim[path: ["spec", "storageClassName"]]?.stringValue, "local-path")
        XCTAssertEqual(claim[path: ["spec", "volumeName"]]?.stringValue, "pvc-\(claim.uid)")
        XCTAssertEqual(claim[path: ["status", "capacity", "storage"]]?.stringValue, "2Gi")
        XCTAssertEqual(claim[path: ["status", "accessModes"]], .array([.string("ReadWriteOnce")]))
        XCTAssertEqual(claim[path: ["metadata", "finalizers"]], .array([.string("kubernetes.io/pvc-protection")]))

        let volume = try XCTUnwrap(pv(h, "pvc-\(claim.uid)"))
        let path = h.dir + "/volumes/pvc-\(claim.uid)"
        XCTAssertEqual(volume[path: ["spec", "hostPath", "path"]]?.stringValue, path)
        XCTAssertEqual(volume[path: ["spec", "capacity", "storage"]]?.stringValue, "2Gi")
        XCTAssertEqual(volume[path: ["spec", "persistentVolumeReclaimPolicy"]]?.stringValue, "Delete")
        XCTAssertEqual(volume[path: ["spec", "storageClassName"]]?.stringValue, "local-path")
        XCTAssertEqual(volume[path: ["spec", "claimRef", "uid"]]?.stringValue, claim.uid)
        XCTAssertEqual(volume[path: ["spec", "claimRef", "name"]]?.stringValue, "data")
        XCTAssertEqual(volume[path: ["spec", "claimRef", "namespace"]]?.stringValue, "default")
        h.waitUntil("volume Bound") { self.phase(h, .persistentVolumes, "pvc-\(claim.uid)") == "Bound" }
        var isDir: ObjCBool = false
        XCTAssertTrue(FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue, "the volume's directory exists")
        XCTAssertEqual(mode(path), 0o755)
        XCTAssertEqual(mode(h.dir + "/volumes"), 0o700)
        XCTAssertTrue(h.events(for: "data").contains { $0.hasPrefix("ProvisioningSucceeded: Successfully provisioned volume pvc-\(claim.uid)") },
                      "\(h.events(for: "data"))")
        XCTAssertEqual(lookup(h, "data"), .bound(path: path, readOnly: false))

        // Expansion: the class allows it, so the larger request becomes the capacity.
        try h.edit(.persistentVolumeClaims, "data") { $0[path: ["spec", "resources", "requests", "storage"]] = .string("5Gi") }
        h.waitUntil("expanded") { h.get(.persistentVolumeClaims, "data")?[path: ["status", "capacity", "storage"]]?.stringValue == "5Gi" }
        XCTAssertEqual(pv(h, "pvc-\(claim.uid)")?[path: ["spec", "capacity", "storage"]]?.stringValue, "5Gi")
    }

    func testStaticBindingTakesTheSmallestVolumeThatFitsAndHonoursVolumeName() throws {
        let h = try ControllerHarness()
        defer { h.finish() }
        for n in ["a", "b", "c", "d", "e"] { try FileManager.default.createDirectory(atPath: h.dir + "/static-\(n)", withIntermediateDirectories: true) }
        try h.store.create(.persistentVolumes, try JSONValue.parse(volumeJSON("pv-a", size: "1Gi", path: h.dir + "/static-a")))
        try h.store.create(.persistentVolumes, try JSONValue.parse(volumeJSON("pv-b", size: "5Gi", path: h.dir + "/static-b")))
        try h.store.create(.persistentVolumes, try JSONValue.parse(volumeJSON("pv-c", size: "10Gi", path: h.dir + "/static-c")))
        try h.store.create(.persistentVolumes, try JSONValue.parse(volumeJSON("pv-d", size: "3Gi", path: h.dir + "/static-d", modes: #"["ReadOnlyMany"]"#)))
        try h.store.create(.persistentVolumes, try JSONValue.parse(volumeJSON("pv-e", size: "3Gi", path: h.dir + "/static-e", cls: "other")))
        for n in ["pv-a", "pv-b", "pv-c", "pv-d", "pv-e"] {
            h.waitUntil("\(n) Available") { self.phase(h, .persistentVolumes, n) == "Available" }
        }
        // 2Gi RWO of class manual: a is too small, d has the wrong mode, e the wrong class; b before c.
        try h.store.create(.persistentVolumeClaims, try JSONValue.parse(claimJSON("want2", size: "2Gi", extra: #","storageClassName":"manual""#)))
        h.waitUntil("want2 Bound") { self.phase(h, .persistentVolumeClaims, "want2") == "Bound" }
        XCTAssertEqual(h.get(.persistentVolumeClaims, "want2")?[path: ["spec", "volumeName"]]?.stringValue, "pv-b")
        // The claim's status shows the volume's capacity, not the request.
        XCTAssertEqual(h.get(.persistentVolumeClaims, "want2")?[path: ["status", "capacity", "storage"]]?.stringValue, "5Gi")
        h.waitUntil("pv-b Bound") { self.phase(h, .persistentVolumes, "pv-b") == "Bound" }
        XCTAssertEqual(pv(h, "pv-b")?[path: ["spec", "claimRef", "name"]]?.stringValue, "want2")
        XCTAssertEqual(lookup(h, "want2"), .bound(path: h.dir + "/static-b", readOnly: false))

        // volumeName asks for one volume: c, though a smaller one would fit.
        try h.store.create(.persistentVolumeClaims, try JSONValue.parse(claimJSON("named", size: "1Gi", extra: #","storageClassName":"manual","volumeName":"pv-c""#)))
        h.waitUntil("named Bound") { self.phase(h, .persistentVolumeClaims, "named") == "Bound" }
        XCTAssertEqual(h.get(.persistentVolumeClaims, "named")?[path: ["spec", "volumeName"]]?.stringValue, "pv-c")
        // A ReadOnlyMany claim gets d, and the agent is told to mount it read-only.
        try h.store.create(.persistentVolumeClaims, try JSONValue.parse(claimJSON("ro", size: "1Gi", modes: #"["ReadOnlyMany"]"#, extra: #","storageClassName":"manual""#)))
        h.waitUntil("ro Bound") { self.phase(h, .persistentVolumeClaims, "ro") == "Bound" }
        XCTAssertEqual(lookup(h, "ro"), .bound(path: h.dir + "/static-d", readOnly: true))
        XCTAssertEqual(phase(h, .persistentVolumes, "pv-a"), "Available")
        XCTAssertEqual(phase(h, .persistentVolumes, "pv-e"), "Available")
        // A selector picks by label: only pv-l (labelled) though pv-a is as small; a claim
        // with a selector gets no volume provisioned.
        try FileManager.default.createDirectory(atPath: h.dir + "/static-l", withIntermediateDirectories: true)
        var labelled = try JSONValue.parse(volumeJSON("pv-l", size: "1Gi", path: h.dir + "/static-l"))
        labelled[path: ["metadata", "labels"]] = .object(["tier": .string("fast")])
        try h.store.create(.persistentVolumes, labelled)
        try h.store.create(.persistentVolumeClaims, try JSONValue.parse(claimJSON("sel", size: "1Gi", extra: #","storageClassName":"manual","selector":{"matchLabels":{"tier":"fast"}}"#)))
        h.waitUntil("sel Bound") { self.phase(h, .persistentVolumeClaims, "sel") == "Bound" }
        XCTAssertEqual(h.get(.persistentVolumeClaims, "sel")?[path: ["spec", "volumeName"]]?.stringValue, "pv-l")
        try h.store.create(.persistentVolumeClaims, try JSONValue.parse(claimJSON("sel2", size: "1Gi", extra: #","selector":{"matchLabels":{"tier":"fast"}}"#)))
        h.waitUntil("sel2 not provisioned") {
            h.events(for: "sel2").contains("ProvisioningFailed: failed to provision volume with StorageClass \"local-path\": claim Selector is not supported")
        }
        XCTAssertEqual(phase(h, .persistentVolumeClaims, "sel2"), "Pending")
        // A request given as a JSON number is a quantity too; the volume gets it as text.
        try h.store.create(.persistentVolumeClaims, try JSONValue.parse(
            #"{"metadata":{"name":"num"},"spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":1048576}}}}"#))
        h.waitUntil("num Bound") { self.phase(h, .persistentVolumeClaims, "num") == "Bound" }
        let num = try XCTUnwrap(h.get(.persistentVolumeClaims, "num"))
        XCTAssertEqual(pv(h, "pvc-\(num.uid)")?[path: ["spec", "capacity", "storage"]], .string("1048576"))
        XCTAssertEqual(APITable.table(.persistentVolumeClaims, [num], resourceVersion: "1")[path: ["rows"]]?.arrayValue?.first?["cells"]?.arrayValue?[3],
                       .string("1048576"), "CAPACITY column")

        // No class and no volume left that fits: Pending, no directory made for a static class.
        try h.store.create(.persistentVolumeClaims, try JSONValue.parse(claimJSON("none", size: "50Gi", extra: #","storageClassName":"manual""#)))
        h.waitUntil("ProvisioningFailed for a class that does not exist") {
            h.events(for: "none").contains("ProvisioningFailed: storageclass.storage.k8s.io \"manual\" not found")
        }
        XCTAssertEqual(phase(h, .persistentVolumeClaims, "none"), "Pending")
        XCTAssertEqual(lookup(h, "none"), .pending(reason: "persistentvolumeclaim \"none\" is Pending, not bound to a volume yet"))
        XCTAssertEqual(lookup(h, "nothing-here"), .missing)

        // Retain: the claim goes, the volume is Released with its data and not bound again.
        try "kept".write(toFile: h.dir + "/static-b/file", atomically: false, encoding: .utf8)
        try h.store.delete(.persistentVolumeClaims, namespace: "default", name: "want2")
        h.waitUntil("want2 gone") { h.get(.persistentVolumeClaims, "want2") == nil }
        h.waitUntil("pv-b Released") { self.phase(h, .persistentVolumes, "pv-b") == "Released" }
        XCTAssertEqual(try String(contentsOfFile: h.dir + "/static-b/file", encoding: .utf8), "kept")
        try h.store.create(.persistentVolumeClaims, try JSONValue.parse(claimJSON("again", size: "2Gi", extra: #","storageClassName":"manual""#)))
        h.waitUntil("again: no volume, event") { !h.events(for: "again").isEmpty }
        XCTAssertEqual(phase(h, .persistentVolumeClaims, "again"), "Pending", "a Released volume is not bound to a new claim")
    }

    func testDeleteReclaimRemovesTheDirectoryAndRetainKeepsIt() throws {
        let h = try ControllerHarness()
        defer { h.finish() }
        try h.store.create(.storageClasses, try JSONValue.parse(
            #"{"metadata":{"name":"keep"},"provisioner":"portico.io/local","reclaimPolicy":"Retain"}"#))
        try h.store.create(.persistentVolumeClaims, try JSONValue.parse(claimJSON("gone")))
        try h.store.create(.persistentVolumeClaims, try JSONValue.parse(claimJSON("kept", extra: #","storageClassName":"keep""#)))
        h.waitUntil("both Bound") {
            self.phase(h, .persistentVolumeClaims, "gone") == "Bound" && self.phase(h, .persistentVolumeClaims, "kept") == "Bound"
        }
        let goneUID = try XCTUnwrap(h.get(.persistentVolumeClaims, "gone")).uid
        let keptUID = try XCTUnwrap(h.get(.persistentVolumeClaims, "kept")).uid
        let gonePath = h.dir + "/volumes/pvc-\(goneUID)", keptPath = h.dir + "/volumes/pvc-\(keptUID)"
        try "a".write(toFile: gonePath + "/data", atomically: false, encoding: .utf8)
        try "b".write(toFile: keptPath + "/data", atomically: false, encoding: .utf8)
        XCTAssertEqual(pv(h, "pvc-\(keptUID)")?[path: ["spec", "persistentVolumeReclaimPolicy"]]?.stringValue, "Retain")

        try h.store.delete(.persistentVolumeClaims, namespace: "default", name: "gone")
        try h.store.delete(.persistentVolumeClaims, namespace: "default", name: "kept")
        h.waitUntil("Delete: volume and directory removed") {
            self.pv(h, "pvc-\(goneUID)") == nil && !FileManager.default.fileExists(atPath: gonePath)
        }
        h.waitUntil("Retain: volume Released") { self.phase(h, .persistentVolumes, "pvc-\(keptUID)") == "Released" }
        XCTAssertEqual(try String(contentsOfFile: keptPath + "/data", encoding: .utf8), "b", "Retain keeps the data")
        XCTAssertNil(h.get(.persistentVolumeClaims, "kept"))
        // Deleting the Released volume (pv-protection lets it go, it is not bound) keeps the data too.
        try h.store.delete(.persistentVolumes, namespace: "", name: "pvc-\(keptUID)")
        h.waitUntil("released volume deleted") { self.pv(h, "pvc-\(keptUID)") == nil }
        XCTAssertTrue(FileManager.default.fileExists(atPath: keptPath + "/data"))
    }

    func testUnknownProvisionerAndWaitForFirstConsumerStayPending() throws {
        let h = try ControllerHarness()
        defer { h.finish() }
        try h.store.create(.storageClasses, try JSONValue.parse(#"{"metadata":{"name":"nfs"},"provisioner":"example.com/nfs"}"#))
        try h.store.create(.storageClasses, try JSONValue.parse(
            #"{"metadata":{"name":"lazy"},"provisioner":"portico.io/local","volumeBindingMode":"WaitForFirstConsumer"}"#))
        try h.store.create(.persistentVolumeClaims, try JSONValue.parse(claimJSON("ext", extra: #","storageClassName":"nfs""#)))
        try h.store.create(.persistentVolumeClaims, try JSONValue.parse(claimJSON("later", extra: #","storageClassName":"lazy""#)))
        h.waitUntil("ExternalProvisioning event") {
            h.events(for: "ext").contains { $0.hasPrefix("ExternalProvisioning: Waiting for a volume to be created either by the external provisioner 'example.com/nfs'") }
        }
        h.waitUntil("WaitForFirstConsumer event") {
            h.events(for: "later").contains("WaitForFirstConsumer: waiting for first consumer to be created before binding")
        }
        XCTAssertEqual(phase(h, .persistentVolumeClaims, "ext"), "Pending")
        XCTAssertEqual(phase(h, .persistentVolumeClaims, "later"), "Pending")
        XCTAssertEqual((try h.store.list(.persistentVolumes).items).count, 0, "no volume made")
        XCTAssertFalse(FileManager.default.fileExists(atPath: h.dir + "/volumes/pvc-\(try XCTUnwrap(h.get(.persistentVolumeClaims, "ext")).uid)"))
        if case .pending = lookup(h, "ext") {} else { XCTFail("ext: \(lookup(h, "ext"))") }
        // The first pod that uses `later` gets it provisioned.
        try h.store.create(.pods, try JSONValue.parse(podJSON("consumer", claim: "later")))
        h.waitUntil("later Bound") { self.phase(h, .persistentVolumeClaims, "later") == "Bound" }
        XCTAssertEqual(phase(h, .persistentVolumeClaims, "ext"), "Pending")
    }

    func podJSON(_ name: String, claim: String) -> String {
        #"""
        {"metadata":{"name":"\#(name)"},"spec":{"terminationGracePeriodSeconds":1,
          "containers":[{"name":"main","image":"busybox","command":["/bin/sh","-c","exec sleep 60"]}],
          "volumes":[{"name":"d","persistentVolumeClaim":{"claimName":"\#(claim)"}}]}}
        """#
    }

    /// Storage Object in Use Protection: a claim a pod uses stays Terminating until the pod is gone.
    func testClaimUsedByAPodStaysTerminatingUntilThePodIsGone() throws {
        let h = try ControllerHarness()
        defer { h.finish() }
        try h.store.create(.persistentVolumeClaims, try JSONValue.parse(claimJSON("used")))
        h.waitUntil("Bound") { self.phase(h, .persistentVolumeClaims, "used") == "Bound" }
        let uid = try XCTUnwrap(h.get(.persistentVolumeClaims, "used")).uid
        try h.store.create(.pods, try JSONValue.parse(podJSON("user", claim: "used")))
        h.waitUntil("pod running") { ObjectFields.phase(h.get(.pods, "user") ?? .null) == "Running" }
        let after = try h.store.delete(.persistentVolumeClaims, namespace: "default", name: "used")
        XCTAssertNotNil(after[path: ["metadata", "deletionTimestamp"]], "the claim is Terminating")
        usleep(300_000)
        XCTAssertNotNil(h.get(.persistentVolumeClaims, "used"), "kept while the pod uses it")
        XCTAssertEqual(lookup(h, "used"), .pending(reason: "persistentvolumeclaim \"used\" is being deleted"))
        XCTAssertEqual(phase(h, .persistentVolumes, "pvc-\(uid)"), "Bound")
        // An update may not add a finalizer to a Terminating object.
        XCTAssertThrowsError(try h.edit(.persistentVolumeClaims, "used") {
            $0[path: ["metadata", "finalizers"]] = .array([.string("kubernetes.io/pvc-protection"), .string("example.com/x")])
        }) { XCTAssertEqual(($0 as? StoreError)?.causes.first?.field, "metadata.finalizers") }

        try h.store.delete(.pods, namespace: "default", name: "user")
        h.waitUntil("claim, volume and directory gone") {
            h.get(.persistentVolumeClaims, "used") == nil && self.pv(h, "pvc-\(uid)") == nil
                && !FileManager.default.fileExists(atPath: h.dir + "/volumes/pvc-\(uid)")
        }
        XCTAssertTrue(h.runningPods.isEmpty, "the pod had stopped before its claim went")
    }

    func testValidationNamesTheField() throws {
        let dir = NSTemporaryDirectory() + "portico-pvcval-\(getpid())-\(UUID().uuidString.prefix(8))"
        let store = try Store(directory: dir)
        defer { store.close(); try? FileManager.default.removeItem(atPath: dir) }
        func fields(_ type: ResourceType, _ json: String) -> [String] {
            do {
                try store.create(type, try JSONValue.parse(json))
                return []
            } catch let e as StoreError {
                XCTAssertEqual(e.code, 422, e.message)
                return e.causes.map(\.field)
            } catch {
                XCTFail("\(error)"); return []
            }
        }
        XCTAssertEqual(fields(.persistentVolumeClaims, #"{"metadata":{"name":"a"},"spec":{"resources":{"requests":{"storage":"1Gi"}}}}"#), ["spec.accessModes"])
        XCTAssertEqual(fields(.persistentVolumeClaims, claimJSON("b", modes: #"["ReadWriteSometimes"]"#)), ["spec.accessModes"])
        XCTAssertEqual(fields(.persistentVolumeClaims, claimJSON("c", modes: #"["ReadWriteOncePod","ReadOnlyMany"]"#)), ["spec.accessModes"])
        XCTAssertEqual(fields(.persistentVolumeClaims, #"{"metadata":{"name":"d"},"spec":{"accessModes":["ReadWriteOnce"]}}"#), ["spec.resources[storage]"])
        XCTAssertEqual(fields(.persistentVolumeClaims, claimJSON("e", size: "1Gx")), ["spec.resources.requests[storage]"])
        XCTAssertEqual(fields(.persistentVolumeClaims, claimJSON("f", size: "0")), ["spec.resources.requests[storage]"])
        XCTAssertEqual(fields(.persistentVolumes, #"{"metadata":{"name":"p"},"spec":{"capacity":{"storage":"1Gi"},"accessModes":["ReadWriteOnce"]}}"#), ["spec"])
        XCTAssertEqual(fields(.persistentVolumes, volumeJSON("q", size: "1Gi", path: "relative")), ["spec.hostPath.path"])
        XCTAssertEqual(fields(.persistentVolumes, volumeJSON("r", size: "1Gi", path: "/x", policy: "Shred")), ["spec.persistentVolumeReclaimPolicy"])
        XCTAssertEqual(fields(.storageClasses, #"{"metadata":{"name":"s"}}"#), ["provisioner"])
        var sts = try JSONValue.parse(statefulSetJSON("v", replicas: 1))
        sts[path: ["spec", "volumeClaimTemplates"]] = try JSONValue.parse(#"[{"metadata":{"name":"data"},"spec":{"resources":{"requests":{"storage":"1Gi"}}}}]"#)
        XCTAssertEqual(fields(.statefulSets, sts.jsonString), ["spec.volumeClaimTemplates[0].spec.accessModes"])
        XCTAssertEqual(fields(.storageClasses, #"{"metadata":{"name":"t"},"provisioner":"x","volumeBindingMode":"Later"}"#), ["volumeBindingMode"])
        do {
            try store.create(.persistentVolumeClaims, try JSONValue.parse(claimJSON("b", modes: #"["ReadWriteSometimes"]"#)))
        } catch let e as StoreError {
            XCTAssertEqual(e.message, #"PersistentVolumeClaim "b" is invalid: spec.accessModes: Unsupported value: "ReadWriteSometimes": supported values: "ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod""#)
        }
        XCTAssertEqual(StorageValidation.quantity("1Gi"), 1_073_741_824)
        XCTAssertEqual(StorageValidation.quantity("500M"), 500_000_000)
        XCTAssertEqual(StorageValidation.quantity("1.5Ki"), 1536)
        XCTAssertEqual(StorageValidation.quantity("2e3"), 2000)
        XCTAssertNil(StorageValidation.quantity("Gi"))
        XCTAssertNil(StorageValidation.quantity("1GiB"))

        // After creation the spec is immutable except resources.requests of a bound claim (and
        // volumeName / storageClassName while unset).
        var claim = try store.create(.persistentVolumeClaims, try JSONValue.parse(claimJSON("ok")))
        var changed = claim
        changed[path: ["spec", "accessModes"]] = .array([.string("ReadWriteMany")])
        XCTAssertThrowsError(try store.update(.persistentVolumeClaims, changed)) { e in
            XCTAssertEqual((e as? StoreError)?.causes.map(\.field), ["spec"])
            XCTAssertEqual((e as? StoreError)?.causes.first?.message, "Forbidden: spec is immutable after creation except resources.requests for bound claims")
        }
        changed = claim
        changed[path: ["spec", "resources", "requests", "storage"]] = .string("2Gi")
        XCTAssertThrowsError(try store.update(.persistentVolumeClaims, changed), "requests of an unbound claim are fixed")
        changed = claim
        changed[path: ["spec", "volumeName"]] = .string("pv-x")
        changed[path: ["spec", "storageClassName"]] = .string("local-path")
        claim = try store.update(.persistentVolumeClaims, changed)
        claim["status"] = .object(["phase": .string("Bound")])
        claim = try store.updateStatus(.persistentVolumeClaims, claim)
        changed = claim
        changed[path: ["spec", "volumeName"]] = .string("pv-y")
        XCTAssertThrowsError(try store.update(.persistentVolumeClaims, changed), "volumeName is set once")
        changed = claim
        changed[path: ["spec", "resources", "requests", "storage"]] = .string("500Mi")
        XCTAssertThrowsError(try store.update(.persistentVolumeClaims, changed)) { e in
            XCTAssertEqual((e as? StoreError)?.causes.map(\.field), ["spec.resources.requests.storage"])
        }
        changed[path: ["spec", "resources", "requests", "storage"]] = .string("3Gi")
        XCTAssertNoThrow(try store.update(.persistentVolumeClaims, changed), "a bound claim may grow")
        var sc = try store.create(.storageClasses, try JSONValue.parse(#"{"metadata":{"name":"fixed"},"provisioner":"a.example/x"}"#))
        sc["provisioner"] = .string("b.example/y")
        XCTAssertThrowsError(try store.update(.storageClasses, sc)) { XCTAssertEqual(($0 as? StoreError)?.causes.map(\.field), ["provisioner"]) }
    }

    /// Finalizers in the store, for any kind: delete marks, the update that empties them removes.
    func testStoreFinalizersDeferDeletion() throws {
        let dir = NSTemporaryDirectory() + "portico-fin-\(getpid())-\(UUID().uuidString.prefix(8))"
        let store = try Store(directory: dir)
        defer { store.close(); try? FileManager.default.removeItem(atPath: dir) }
        var seen: [String] = []
        let lock = NSLock()
        let w = try store.watch(.configMaps) { e in lock.lock(); seen.append(e.type.rawValue); lock.unlock() }
        defer { w.cancel() }
        try store.create(.configMaps, try JSONValue.parse(#"{"metadata":{"name":"f","finalizers":["example.com/hold"]},"data":{"k":"v"}}"#))
        let marked = try store.delete(.configMaps, namespace: "default", name: "f")
        XCTAssertNotNil(marked[path: ["metadata", "deletionTimestamp"]])
        let again = try store.delete(.configMaps, namespace: "default", name: "f")
        XCTAssertEqual(again.resourceVersion, marked.resourceVersion, "a second delete changes nothing")
        var o = try store.get(.configMaps, namespace: "default", name: "f")
        o[path: ["metadata", "deletionTimestamp"]] = nil
        o["data"] = .object(["k": .string("w")])
        o = try store.update(.configMaps, o)
        XCTAssertNotNil(o[path: ["metadata", "deletionTimestamp"]], "clients cannot clear deletionTimestamp")
        o[path: ["metadata", "finalizers"]] = nil
        try store.update(.configMaps, o)
        XCTAssertThrowsError(try store.get(.configMaps, namespace: "default", name: "f"))
        lock.lock()
        XCTAssertEqual(seen, ["ADDED", "MODIFIED", "MODIFIED", "DELETED"])
        lock.unlock()
        // Without finalizers delete is immediate, as before.
        try store.create(.configMaps, try JSONValue.parse(#"{"metadata":{"name":"plain"}}"#))
        try store.delete(.configMaps, namespace: "default", name: "plain")
        XCTAssertThrowsError(try store.get(.configMaps, namespace: "default", name: "plain"))
    }

    /// StatefulSet claims `TEMPLATE-STS-ORDINAL` are bound by the volume controller, kept when
    /// the set scales down (Retain/Retain) and the same claims, uid and directory, when it
    /// scales up again.
    func testStatefulSetClaimsAreBoundKeptOnScaleDownAndReused() throws {
        let h = try ControllerHarness()
        defer { h.finish() }
        var sts = try JSONValue.parse(statefulSetJSON("kv", replicas: 3, policy: "Parallel", probe: #"{"exec":{"command":["true"]},"periodSeconds":1}"#))
        sts[path: ["spec", "volumeClaimTemplates"]] = try JSONValue.parse(
            #"[{"metadata":{"name":"data"},"spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}}}}]"#)
        try h.store.create(.statefulSets, sts)
        let names = (0..<3).map { "data-kv-\($0)" }
        h.waitUntil("3 claims Bound") { names.allSatisfy { self.phase(h, .persistentVolumeClaims, $0) == "Bound" } }
        h.waitUntil("3 ready") { h.readyPods("app=kv").count == 3 }
        var before: [String: (uid: String, volume: String)] = [:]
        for n in names {
            let c = try XCTUnwrap(h.get(.persistentVolumeClaims, n))
            before[n] = (c.uid, c[path: ["spec", "volumeName"]]?.stringValue ?? "")
            XCTAssertEqual(c.labels["app"], "kv")
            guard case .bound(let path, false) = lookup(h, n) else { XCTFail("\(n): \(lookup(h, n))"); continue }
            XCTAssertEqual(path, h.dir + "/volumes/pvc-\(c.uid)")
        }
        try "ordinal 2".write(toFile: h.dir + "/volumes/pvc-\(before["data-kv-2"]!.uid)/marker", atomically: false, encoding: .utf8)

        try h.edit(.statefulSets, "kv") { $0[path: ["spec", "replicas"]] = .int(1) }
        h.waitUntil("1 pod") { h.pods("app=kv").count == 1 }
        for n in names {
            XCTAssertEqual(phase(h, .persistentVolumeClaims, n), "Bound", "\(n) kept after scale-down")
        }
        try h.edit(.statefulSets, "kv") { $0[path: ["spec", "replicas"]] = .int(3) }
        h.waitUntil("3 ready again") { h.readyPods("app=kv").count == 3 }
        for n in names {
            let c = try XCTUnwrap(h.get(.persistentVolumeClaims, n))
            XCTAssertEqual(c.uid, before[n]?.uid, "\(n) is the same claim")
            XCTAssertEqual(c[path: ["spec", "volumeName"]]?.stringValue, before[n]?.volume, "\(n) has the same volume")
        }
        XCTAssertEqual(try String(contentsOfFile: h.dir + "/volumes/pvc-\(before["data-kv-2"]!.uid)/marker", encoding: .utf8), "ordinal 2")
        XCTAssertEqual(try h.store.list(.persistentVolumes).items.count, 3, "no new volume made")
        XCTAssertEqual(try h.store.list(.persistentVolumeClaims).items.count, 3)
    }

    /// A StatefulSet pod is not recreated on a claim that is being deleted (it would keep the
    /// claim from going, then lose it): the set waits, then makes a new claim and the pod.
    func testStatefulSetWaitsForATerminatingClaimThenMakesANewOne() throws {
        let h = try ControllerHarness()
        defer { h.finish() }
        var sts = try JSONValue.parse(statefulSetJSON("one", replicas: 1, probe: #"{"exec":{"command":["true"]},"periodSeconds":1}"#))
        sts[path: ["spec", "volumeClaimTemplates"]] = try JSONValue.parse(
            #"[{"metadata":{"name":"data"},"spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}}}}]"#)
        try h.store.create(.statefulSets, sts)
        h.waitUntil("ready") { h.readyPods("app=one").count == 1 && self.phase(h, .persistentVolumeClaims, "data-one-0") == "Bound" }
        let oldClaim = try XCTUnwrap(h.get(.persistentVolumeClaims, "data-one-0"))
        let oldPod = try XCTUnwrap(h.get(.pods, "one-0"))
        // A second pod holds the claim, so it stays Terminating after one-0 is gone.
        try h.store.create(.pods, try JSONValue.parse(podJSON("holder", claim: "data-one-0")))
        h.waitUntil("holder running") { ObjectFields.phase(h.get(.pods, "holder") ?? .null) == "Running" }
        try h.store.delete(.persistentVolumeClaims, namespace: "default", name: "data-one-0")
        XCTAssertNotNil(h.get(.persistentVolumeClaims, "data-one-0")?[path: ["metadata", "deletionTimestamp"]], "Terminating: pods use it")
        try h.store.delete(.pods, namespace: "default", name: "one-0")
        h.waitUntil("the set waits for the claim") {
            h.events(for: "one").contains("FailedCreate: create Pod one-0 in StatefulSet one failed error: pvc data-one-0 is being deleted")
        }
        XCTAssertNil(h.get(.pods, "one-0"), "no pod on a Terminating claim")
        try h.store.delete(.pods, namespace: "default", name: "holder")
        h.waitUntil("a new claim and pod") {
            guard let c = h.get(.persistentVolumeClaims, "data-one-0"), let p = h.get(.pods, "one-0") else { return false }
            return c.uid != oldClaim.uid && p.uid != oldPod.uid && ObjectFields.isReady(p) && self.phase(h, .persistentVolumeClaims, "data-one-0") == "Bound"
        }
        XCTAssertNil(pv(h, "pvc-\(oldClaim.uid)"), "the old claim's volume was deleted (class local-path: Delete)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: h.dir + "/volumes/pvc-\(oldClaim.uid)"))
    }

    /// persistentVolumeClaimRetentionPolicy Delete/Delete: a scaled-away ordinal's claim goes
    /// after its pod, and every claim goes with the set.
    func testStatefulSetRetentionPolicyDeleteRemovesClaims() throws {
        let h = try ControllerHarness()
        defer { h.finish() }
        var sts = try JSONValue.parse(statefulSetJSON("ret", replicas: 2, policy: "Parallel", probe: #"{"exec":{"command":["true"]},"periodSeconds":1}"#))
        sts[path: ["spec", "volumeClaimTemplates"]] = try JSONValue.parse(
            #"[{"metadata":{"name":"data"},"spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}}}}]"#)
        var bad = sts
        bad[path: ["spec", "persistentVolumeClaimRetentionPolicy"]] = .object(["whenScaled": .string("Shred")])
        XCTAssertThrowsError(try h.store.create(.statefulSets, bad)) {
            XCTAssertEqual(($0 as? StoreError)?.causes.map(\.field), ["spec.persistentVolumeClaimRetentionPolicy.whenScaled"])
        }
        sts[path: ["spec", "persistentVolumeClaimRetentionPolicy"]] = .object(["whenDeleted": .string("Delete"), "whenScaled": .string("Delete")])
        let set = try h.store.create(.statefulSets, sts)
        h.waitUntil("2 ready, 2 claims Bound") {
            h.readyPods("app=ret").count == 2 && ["data-ret-0", "data-ret-1"].allSatisfy { self.phase(h, .persistentVolumeClaims, $0) == "Bound" }
        }
        let first0 = try XCTUnwrap(h.get(.persistentVolumeClaims, "data-ret-0"))
        let first1 = try XCTUnwrap(h.get(.persistentVolumeClaims, "data-ret-1"))
        XCTAssertEqual(first0[path: ["metadata", "ownerReferences"]]?.arrayValue?.map { $0["uid"] }, [.string(set.uid)])

        try h.edit(.statefulSets, "ret") { $0[path: ["spec", "replicas"]] = .int(1) }
        h.waitUntil("data-ret-1 and its directory gone") {
            h.get(.persistentVolumeClaims, "data-ret-1") == nil && !FileManager.default.fileExists(atPath: h.dir + "/volumes/pvc-\(first1.uid)")
        }
        XCTAssertEqual(h.get(.persistentVolumeClaims, "data-ret-0")?.uid, first0.uid, "the claim of a kept ordinal stays")

        try h.edit(.statefulSets, "ret") { $0[path: ["spec", "replicas"]] = .int(2) }
        h.waitUntil("a new data-ret-1 Bound") {
            (h.get(.persistentVolumeClaims, "data-ret-1").map { $0.uid != first1.uid } ?? false) && self.phase(h, .persistentVolumeClaims, "data-ret-1") == "Bound"
        }
        h.waitUntil("2 ready") { h.readyPods("app=ret").count == 2 }

        try h.store.delete(.statefulSets, namespace: "default", name: "ret")
        h.waitUntil("claims, volumes and pods gone with the set") {
            let claims = try h.store.list(.persistentVolumeClaims).items, volumes = try h.store.list(.persistentVolumes).items
            return claims.isEmpty && volumes.isEmpty && h.pods("app=ret").isEmpty && h.runningPods.isEmpty
        }
    }
}
