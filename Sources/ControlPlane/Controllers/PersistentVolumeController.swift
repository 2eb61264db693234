import Foundation
import Objects
import Reactor
#if canImport(Glibc)
import Glibc
#endif

/// PersistentVolumeClaims ↔ PersistentVolumes, as Kubernetes' PV controller, its `portico.io/local`
/// provisioner and the pvc/pv-protection controllers do it on one machine.
///
/// A Pending claim binds to the smallest Available volume that fits (same class, access modes
/// ⊇, capacity ≥ request, `spec.volumeName` and `spec.selector` honoured); without one, a class
/// whose provisioner is `portico.io/local` gets a directory `<volumes>/pvc-<claim uid>` and a
/// hostPath volume `pvc-<claim uid>` for it. A claim without a class gets the default class
/// first (as the DefaultStorageClass admission and the retroactive default assignment do).
/// A volume whose claim is gone is Released and reclaimed: Delete removes the directory (only
/// one this provisioner made) and the volume, Retain keeps both.
///
/// Keys: `namespace/name` for a claim, `/name` for a volume (cluster-scoped).
final class PersistentVolumeController: Controller {
    let name = "persistentvolume"
    unowned let m: ControllerManager
    let log = Log("volumes")

    static let component = "persistentvolume-controller"
    static let provisioner = "portico.io/local"
    static let defaultClassName = "local-path"
    static let defaultClassAnnotation = "storageclass.kubernetes.io/is-default-class"
    static let claimProtection = "kubernetes.io/pvc-protection"
    static let volumeProtection = "kubernetes.io/pv-protection"
    static let provisionedBy = "pv.kubernetes.io/provisioned-by"
    static let bindCompleted = "pv.kubernetes.io/bind-completed"
    static let boundByController = "pv.kubernetes.io/bound-by-controller"
    /// Mode of a provisioned volume's directory: pods run as Portico's own user, so the owner
    /// writing is enough; the volumes directory above it is 0700, which keeps other users out.
    static let volumeMode: Int16 = 0o755

    init(manager: ControllerManager) { m = manager }
    var store: Store { m.store }

    /// Where provisioned volumes live, as an absolute path (a volume's hostPath must be one): the
    /// option, else `volumes` beside the agent's data directory (`<data>/volumes` for
    /// `portico serve --data <data>`, whose agent has `<data>/node`).
    var volumesDirectory: String {
        let d = m.options.volumesDirectory
            ?? ((m.agent.configuration.dataDirectory as NSString).deletingLastPathComponent as NSString).appendingPathComponent("volumes")
        let absolute = d.hasPrefix("/") ? d : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(d)
        return (absolute as NSString).standardizingPath
    }

    /// Creates the default StorageClass `local-path` when no class is marked default.
    func start() {
        let classes = (try? store.list(.storageClasses).items) ?? []
        if classes.contains(where: Self.isDefault) || classes.contains(where: { $0.name == Self.defaultClassName }) { return }
        do {
            try store.create(.storageClasses, .object([
                "metadata": .object(["name": .string(Self.defaultClassName),
                                     "annotations": .object([Self.defaultClassAnnotation: .string("true")])]),
                "provisioner": .string(Self.provisioner), "reclaimPolicy": .string("Delete"),
                "volumeBindingMode": .string("Immediate"), "allowVolumeExpansion": .bool(true),
            ]))
            log.info("created the default StorageClass \(Self.defaultClassName) (provisioner \(Self.provisioner), volumes in \(volumesDirectory))")
        } catch let e as StoreError where e.reason == .alreadyExists {
        } catch {
            log.error("cannot create the default StorageClass: \(error)")
        }
    }

    // MARK: - Events to keys

    func route(_ e: WatchEvent) {
        let o = e.object
        switch e.resource {
        case .persistentVolumeClaims:
            m.enqueue(name, o.namespace, o.name)
            if let v = o[path: ["spec", "volumeName"]]?.stringValue, !v.isEmpty { m.enqueue(name, "", v) }
        case .persistentVolumes:
            m.enqueue(name, "", o.name)
            if let ref = o[path: ["spec", "claimRef"]], let n = ref["name"]?.stringValue, let ns = ref["namespace"]?.stringValue {
                m.enqueue(name, ns, n)
            }
        case .storageClasses:
            for c in (try? store.list(.persistentVolumeClaims).items) ?? [] where Self.phase(c) == "Pending" {
                m.enqueue(name, c.namespace, c.name)
            }
        default:
            break
        }
    }

    /// A pod changed: its claims may now be used (WaitForFirstConsumer) or free (protection).
    func podChanged(_ pod: JSONValue) {
        for claim in Self.claimNames(pod[path: ["spec", "volumes"]]?.arrayValue) { m.enqueue(name, pod.namespace, claim) }
    }

    func sync(namespace: String, name: String) throws -> SyncResult {
        namespace.isEmpty ? try syncVolume(name) : try syncClaim(namespace, name)
    }

    // MARK: - Claims

    private func syncClaim(_ namespace: String, _ name: String) throws -> SyncResult {
        guard var claim = try? store.get(.persistentVolumeClaims, namespace: namespace, name: name) else { return .done }
        if claim[path: ["metadata", "deletionTimestamp"]] != nil { return try finishDeletion(claim) }
        var finalizers = claim[path: ["metadata", "finalizers"]]?.arrayValue ?? []
        if !finalizers.contains(.string(Self.claimProtection)) {
            finalizers.append(.string(Self.claimProtection))
            claim[path: ["metadata", "finalizers"]] = .array(finalizers)
            claim = try store.update(.persistentVolumeClaims, claim)
        }
        let phase = claim[path: ["status", "phase"]]?.stringValue ?? ""
        let volumeName = claim[path: ["spec", "volumeName"]]?.stringValue ?? ""
        if phase == "Bound" || phase == "Lost" {
            guard let pv = try? store.get(.persistentVolumes, namespace: "", name: volumeName),
                  pv[path: ["spec", "claimRef", "uid"]]?.stringValue == claim.uid else {
                if phase == "Bound" {
                    try setStatus(claim, ["phase": .string("Lost")])
                    m.event(claim, "Warning", "ClaimLost", "Bound claim has lost its PersistentVolume. Data on the volume is lost!", component: Self.component)
                }
                return .done
            }
            try expandIfAsked(claim, pv)
            return .done
        }
        if phase.isEmpty { claim = try setStatus(claim, ["phase": .string("Pending")]) }

        // A claim without a class gets the default one (not one with "" : that asks for none).
        if claim[path: ["spec", "storageClassName"]] == nil || claim[path: ["spec", "storageClassName"]] == .null,
           let def = defaultClass() {
            claim[path: ["spec", "storageClassName"]] = .string(def.name)
            claim = try store.update(.persistentVolumeClaims, claim)
        }
        let className = claim[path: ["spec", "storageClassName"]]?.stringValue ?? ""

        if !volumeName.isEmpty {
            // Asked for one volume by name: that one or none.
            guard let pv = try? store.get(.persistentVolumes, namespace: "", name: volumeName) else {
                m.event(claim, "Warning", "FailedBinding", "volume \"\(volumeName)\" not found", component: Self.component)
                return .done
            }
            if let problem = mismatch(pv, claim) {
                m.event(claim, "Warning", "FailedBinding", "Cannot bind to requested volume \"\(volumeName)\": \(problem)", component: Self.component)
                return .done
            }
            try bind(claim, pv)
            return .done
        }
        if let pv = bestVolume(for: claim) {
            try bind(claim, pv)
            return .done
        }
        if className.isEmpty {
            m.event(claim, "Normal", "FailedBinding", "no persistent volumes available for this claim and no storage class is set", component: Self.component)
            return .done
        }
        guard let cls = try? store.get(.storageClasses, namespace: "", name: className) else {
            m.event(claim, "Warning", "ProvisioningFailed", "storageclass.storage.k8s.io \"\(className)\" not found", component: Self.component)
            return .done
        }
        let provisioner = cls["provisioner"]?.stringValue ?? ""
        guard provisioner == Self.provisioner else {
            m.event(claim, "Normal", "ExternalProvisioning",
                    "Waiting for a volume to be created either by the external provisioner '\(provisioner)' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.",
                    component: Self.component)
            return .done
        }
        // As Kubernetes' provisioners: a claim that selects volumes by label gets none made.
        if ObjectFields.selector(claim[path: ["spec", "selector"]]) != nil {
            m.event(claim, "Warning", "ProvisioningFailed", "failed to provision volume with StorageClass \"\(cls.name)\": claim Selector is not supported", component: Self.component)
            return .done
        }
        if cls["volumeBindingMode"]?.stringValue == "WaitForFirstConsumer" && usersInStore(claim).isEmpty {
            m.event(claim, "Normal", "WaitForFirstConsumer", "waiting for first consumer to be created before binding", component: Self.component)
            return .done
        }
        let pv = try provision(claim, cls)
        try bind(claim, pv)
        return .done
    }

    /// A Terminating claim loses its protection finalizer (and so goes) once no pod uses it:
    /// none in the store that is not finished, none the agent still runs.
    private func finishDeletion(_ claim: JSONValue) throws -> SyncResult {
        var finalizers = claim[path: ["metadata", "finalizers"]]?.arrayValue ?? []
        guard finalizers.contains(.string(Self.claimProtection)) else { return .done }
        let users = usersInStore(claim)
        if !users.isEmpty {
            log.info("persistentvolumeclaim \(claim.namespace)/\(claim.name) is in use by pod(s) \(users.joined(separator: ", ")): kept until they are gone")
            return .done
        }
        // Pods already deleted from the store that the agent is still stopping: look again soon.
        if usedByAgent(claim) { return .requeue(after: 0.5) }
        finalizers.removeAll { $0 == .string(Self.claimProtection) }
        var c = claim
        c[path: ["metadata", "finalizers"]] = finalizers.isEmpty ? nil : .array(finalizers)
        try store.update(.persistentVolumeClaims, c)
        return .done
    }

    /// Store pods (not Succeeded or Failed) with a volume from this claim.
    func usersInStore(_ claim: JSONValue) -> [String] {
        ((try? store.list(.pods, namespace: claim.namespace).items) ?? []).filter { pod in
            !ObjectFields.isTerminal(pod) && Self.claimNames(pod[path: ["spec", "volumes"]]?.arrayValue).contains(claim.name)
        }.map(\.name)
    }

    private func usedByAgent(_ claim: JSONValue) -> Bool {
        m.agent.pods.values.contains { rt in
            rt.id.namespace == claim.namespace && Self.claimNames(rt.pod.spec?.volumes).contains(claim.name)
        }
    }

    static func claimNames(_ volumes: [JSONValue]?) -> [String] {
        (volumes ?? []).compactMap { $0[path: ["persistentVolumeClaim", "claimName"]]?.stringValue }
    }

    /// The newest StorageClass annotated as the default (Kubernetes picks the newest too).
    func defaultClass() -> JSONValue? {
        ((try? store.list(.storageClasses).items) ?? []).filter(Self.isDefault).max {
            ($0[path: ["metadata", "creationTimestamp"]]?.stringValue ?? "", $0.name) < ($1[path: ["metadata", "creationTimestamp"]]?.stringValue ?? "", $1.name)
        }
    }

    static func isDefault(_ cls: JSONValue) -> Bool {
        ObjectFields.annotations(cls)[defaultClassAnnotation] == "true"
    }

    static func phase(_ o: JSONValue) -> String { o[path: ["status", "phase"]]?.stringValue ?? "Pending" }

    static func request(_ claim: JSONValue) -> Double {
        StorageValidation.quantity(claim[path: ["spec", "resources", "requests", "storage"]]) ?? 0
    }

    static func capacity(_ pv: JSONValue) -> Double {
        StorageValidation.quantity(pv[path: ["spec", "capacity", "storage"]]) ?? 0
    }

    /// Why `pv` cannot hold `claim`, or nil when it can.
    func mismatch(_ pv: JSONValue, _ claim: JSONValue) -> String? {
        if pv[path: ["metadata", "deletionTimestamp"]] != nil { return "volume is being deleted" }
        if let ref = pv[path: ["spec", "claimRef"]], ref != .null {
            let ours = ref["namespace"]?.stringValue == claim.namespace && ref["name"]?.stringValue == claim.name
                && [nil, "", claim.uid].contains(ref["uid"]?.stringValue)
            if !ours { return "volume already bound to a different claim." }
        } else if !["", "Available"].contains(pv[path: ["status", "phase"]]?.stringValue ?? "") {
            return "volume is \(pv[path: ["status", "phase"]]?.stringValue ?? "")"
        }
        let pvClass = pv[path: ["spec", "storageClassName"]]?.stringValue ?? ""
        let claimClass = claim[path: ["spec", "storageClassName"]]?.stringValue ?? ""
        if pvClass != claimClass { return "storageClassName does not match" }
        let pvModes = Set((pv[path: ["spec", "accessModes"]]?.arrayValue ?? []).compactMap(\.stringValue))
        let wanted = Set((claim[path: ["spec", "accessModes"]]?.arrayValue ?? []).compactMap(\.stringValue))
        if !wanted.isSubset(of: pvModes) { return "incompatible accessMode" }
        if Self.capacity(pv) < Self.request(claim) { return "requested PV is too small" }
        if let sel = claim[path: ["spec", "selector"]], sel != .null {
            guard let s = ObjectFields.selector(sel), s.matches(pv.labels) else {
                if sel["matchLabels"]?.objectValue?.isEmpty ?? true, sel["matchExpressions"]?.arrayValue?.isEmpty ?? true { return nil }
                return "volume labels do not match the claim's selector"
            }
        }
        return nil
    }

    /// The Available volume for `claim`: one pre-bound to it first, else the smallest that fits.
    private func bestVolume(for claim: JSONValue) -> JSONValue? {
        let fits = ((try? store.list(.persistentVolumes).items) ?? []).filter { mismatch($0, claim) == nil }
        if let pre = fits.first(where: { $0[path: ["spec", "claimRef", "name"]]?.stringValue == claim.name }) { return pre }
        return fits.min { (Self.capacity($0), $0.name) < (Self.capacity($1), $1.name) }
    }

    /// Binds in Kubernetes' order: the volume's claimRef, the volume Bound, the claim's
    /// volumeName, the claim Bound. Each step is checked again by the next sync if one fails.
    private func bind(_ claim: JSONValue, _ volume: JSONValue) throws {
        var pv = volume
        let ref: JSONValue = .object([
            "kind": .string("PersistentVolumeClaim"), "apiVersion": .string("v1"), "namespace": .string(claim.namespace),
            "name": .string(claim.name), "uid": .string(claim.uid), "resourceVersion": .string(claim.resourceVersion),
        ])
        if pv[path: ["spec", "claimRef", "uid"]]?.stringValue != claim.uid {
            if pv[path: ["spec", "claimRef"]] == nil { pv[path: ["metadata", "annotations", Self.boundByController]] = .string("yes") }
            pv[path: ["spec", "claimRef"]] = ref
            pv = try store.update(.persistentVolumes, pv)
        }
        if pv[path: ["status", "phase"]]?.stringValue != "Bound" {
            pv["status"] = .object(["phase": .string("Bound")])
            pv = try store.updateStatus(.persistentVolumes, pv)
        }
        var c = claim
        if c[path: ["spec", "volumeName"]]?.stringValue != pv.name {
            c[path: ["spec", "volumeName"]] = .string(pv.name)
            c[path: ["metadata", "annotations", Self.boundByController]] = .string("yes")
        }
        c[path: ["metadata", "annotations", Self.bindCompleted]] = .string("yes")
        c = try store.update(.persistentVolumeClaims, c)
        var status: [String: JSONValue] = ["phase": .string("Bound")]
        status["accessModes"] = pv[path: ["spec", "accessModes"]]
        status["capacity"] = pv[path: ["spec", "capacity"]]
        try setStatus(c, status)
        log.info("persistentvolumeclaim \(claim.namespace)/\(claim.name) bound to persistentvolume \(pv.name)")
    }

    @discardableResult
    private func setStatus(_ o: JSONValue, _ status: [String: JSONValue]) throws -> JSONValue {
        var c = o
        c["status"] = .object(status)
        return try store.updateStatus(o.namespace.isEmpty ? .persistentVolumes : .persistentVolumeClaims, c)
    }

    /// The `portico.io/local` provisioner: a directory `<volumes>/pvc-<uid>` and a hostPath
    /// volume of that name, already claimed by `claim`. Idempotent (an interrupted attempt is
    /// finished, not repeated).
    private func provision(_ claim: JSONValue, _ cls: JSONValue) throws -> JSONValue {
        let pvName = "pvc-\(claim.uid)"
        if let existing = try? store.get(.persistentVolumes, namespace: "", name: pvName) { return existing }
        let root = volumesDirectory
        let path = (root as NSString).appendingPathComponent(pvName)
        do {
            try Self.makeDirectory(root, mode: 0o700)
            try Self.makeDirectory(path, mode: Self.volumeMode)
        } catch {
            m.event(claim, "Warning", "ProvisioningFailed", "failed to provision volume with StorageClass \"\(cls.name)\": \(error)", component: Self.provisioner)
            throw error
        }
        var pv: JSONValue = .object([
            "metadata": .object(["name": .string(pvName),
                                 "annotations": .object([Self.provisionedBy: .string(Self.provisioner)]),
                                 "finalizers": .array([.string(Self.volumeProtection)])]),
            "spec": .object([
                "capacity": .object(["storage": .string(StorageValidation.quantityText(claim[path: ["spec", "resources", "requests", "storage"]]))]),
                "accessModes": claim[path: ["spec", "accessModes"]] ?? .array([]),
                "hostPath": .object(["path": .string(path), "type": .string("Directory")]),
                "persistentVolumeReclaimPolicy": .string(cls["reclaimPolicy"]?.stringValue ?? "Delete"),
                "storageClassName": .string(cls.name),
                "volumeMode": .string("Filesystem"),
                "claimRef": .object([
                    "kind": .string("PersistentVolumeClaim"), "apiVersion": .string("v1"), "namespace": .string(claim.namespace),
                    "name": .string(claim.name), "uid": .string(claim.uid), "resourceVersion": .string(claim.resourceVersion),
                ]),
            ]),
        ])
        do {
            pv = try store.create(.persistentVolumes, pv)
        } catch let e as StoreError where e.reason == .alreadyExists {
            return try store.get(.persistentVolumes, namespace: "", name: pvName)
        }
        m.event(claim, "Normal", "ProvisioningSucceeded", "Successfully provisioned volume \(pvName) at \(path)", component: Self.provisioner)
        return pv
    }

    /// mkdir with exactly `mode` (not narrowed by the umask); an existing directory is kept as it is.
    static func makeDirectory(_ path: String, mode: Int16) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir) {
            if isDir.boolValue { return }
            throw StoreError(.internalError, "\(path) exists and is not a directory")
        }
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        guard chmod(path, mode_t(mode)) == 0 else {
            throw StoreError(.internalError, "chmod \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// A bound claim that asks for more than its volume has: a class that allows expansion gets
    /// the larger capacity at once (a directory has no size to grow).
    private func expandIfAsked(_ claim: JSONValue, _ pv: JSONValue) throws {
        let wanted = Self.request(claim)
        guard wanted > Self.capacity(pv) else { return }
        let className = claim[path: ["spec", "storageClassName"]]?.stringValue ?? ""
        let cls = try? store.get(.storageClasses, namespace: "", name: className)
        guard cls?["allowVolumeExpansion"] == .bool(true) else {
            m.event(claim, "Warning", "VolumeResizeFailed", "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize", component: Self.component)
            return
        }
        let size = JSONValue.string(StorageValidation.quantityText(claim[path: ["spec", "resources", "requests", "storage"]]))
        var v = pv
        v[path: ["spec", "capacity", "storage"]] = size
        try store.update(.persistentVolumes, v)
        var status = claim["status"] ?? .object([:])
        status[path: ["capacity", "storage"]] = size
        var c = claim
        c["status"] = status
        try store.updateStatus(.persistentVolumeClaims, c)
        m.event(claim, "Normal", "VolumeResizeSuccessful", "resize volume \"\(pv.name)\" to \(size.stringValue ?? "") successful", component: Self.component)
    }

    // MARK: - Volumes

    private func syncVolume(_ name: String) throws -> SyncResult {
        guard var pv = try? store.get(.persistentVolumes, namespace: "", name: name) else { return .done }
        let phase = pv[path: ["status", "phase"]]?.stringValue ?? ""
        var finalizers = pv[path: ["metadata", "finalizers"]]?.arrayValue ?? []
        if pv[path: ["metadata", "deletionTimestamp"]] != nil {
            // pv-protection: a Terminating volume goes once no claim is bound to it.
            if phase != "Bound" || claimOf(pv) == nil, finalizers.contains(.string(Self.volumeProtection)) {
                finalizers.removeAll { $0 == .string(Self.volumeProtection) }
                pv[path: ["metadata", "finalizers"]] = finalizers.isEmpty ? nil : .array(finalizers)
                try store.update(.persistentVolumes, pv)
            }
            return .done
        }
        if !finalizers.contains(.string(Self.volumeProtection)) {
            pv[path: ["metadata", "finalizers"]] = .array(finalizers + [.string(Self.volumeProtection)])
            pv = try store.update(.persistentVolumes, pv)
        }
        guard let ref = pv[path: ["spec", "claimRef"]], ref != .null, !(ref["name"]?.stringValue ?? "").isEmpty else {
            if phase != "Available" { try setStatus(pv, ["phase": .string("Available")]) }
            return .done
        }
        let refUID = ref["uid"]?.stringValue ?? ""
        if let claim = claimOf(pv) {
            if refUID.isEmpty {
                // Pre-bound to a claim by name: Available until that claim binds it.
                if phase != "Available" { try setStatus(pv, ["phase": .string("Available")]) }
                m.enqueue(self.name, claim.namespace, claim.name)
                return .done
            }
            let claimVolume = claim[path: ["spec", "volumeName"]]?.stringValue ?? ""
            if claimVolume == pv.name || claimVolume.isEmpty {
                if phase != "Bound" { try setStatus(pv, ["phase": .string("Bound")]) }
                if claimVolume.isEmpty { m.enqueue(self.name, claim.namespace, claim.name) }
                return .done
            }
        } else if refUID.isEmpty {
            if phase != "Available" { try setStatus(pv, ["phase": .string("Available")]) }
            return .done
        }
        // The claim it was bound to is gone: Released, then reclaimed.
        if phase == "Failed" { return .done }
        if phase != "Released" {
            pv = try setStatus(pv, ["phase": .string("Released")])
        }
        return try reclaim(pv)
    }

    /// The claim `pv.spec.claimRef` names, when it still exists with that uid (any uid when the
    /// reference has none).
    private func claimOf(_ pv: JSONValue) -> JSONValue? {
        guard let ref = pv[path: ["spec", "claimRef"]], let ns = ref["namespace"]?.stringValue, let n = ref["name"]?.stringValue,
              let claim = try? store.get(.persistentVolumeClaims, namespace: ns, name: n) else { return nil }
        let uid = ref["uid"]?.stringValue ?? ""
        return uid.isEmpty || uid == claim.uid ? claim : nil
    }

    private func reclaim(_ pv: JSONValue) throws -> SyncResult {
        let policy = pv[path: ["spec", "persistentVolumeReclaimPolicy"]]?.stringValue ?? "Retain"
        switch policy {
        case "Retain":
            return .done
        case "Delete":
            let path = pv[path: ["spec", "hostPath", "path"]]?.stringValue ?? pv[path: ["spec", "local", "path"]]?.stringValue ?? ""
            let ours = ObjectFields.annotations(pv)[Self.provisionedBy] == Self.provisioner
                && path == (volumesDirectory as NSString).appendingPathComponent(pv.name) && pv.name.hasPrefix("pvc-")
            guard ours else {
                try failed(pv, "VolumeFailedDelete", "error getting deleter volume plugin for volume \"\(pv.name)\": no deletable volume plugin matched (Portico deletes only the directories its portico.io/local provisioner made)")
                return .done
            }
            do {
                if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
            } catch {
                try failed(pv, "VolumeFailedDelete", "cannot remove \(path): \(error)")
                return .done
            }
            try store.delete(.persistentVolumes, namespace: "", name: pv.name)
            log.info("persistentvolume \(pv.name) deleted with its directory \(path) (reclaimPolicy Delete)")
            return .done
        default:
            try failed(pv, "VolumeFailedRecycle", "reclaimPolicy \(policy) is not supported by Portico (use Retain or Delete)")
            return .done
        }
    }

    private func failed(_ pv: JSONValue, _ reason: String, _ message: String) throws {
        try setStatus(pv, ["phase": .string("Failed"), "message": .string(message)])
        m.event(pv, "Warning", reason, message, component: Self.component)
        log.warning("persistentvolume \(pv.name): \(message)")
    }
}
