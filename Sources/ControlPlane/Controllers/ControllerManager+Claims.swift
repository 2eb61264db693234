import Foundation
import Objects

extension ControllerManager {
    /// Where the claim `namespace/name` has its data, for the node agent's volume hook: the
    /// directory of its PersistentVolume once the claim is Bound, `.pending` with why while it is
    /// not (or is being deleted: as the kubelet does, a pod does not start on a Terminating
    /// claim), `.missing` when there is no such claim.
    public func claimLookup(namespace: String, name: String) -> ClaimLookup {
        guard let claim = try? store.get(.persistentVolumeClaims, namespace: namespace, name: name) else { return .missing }
        if claim[path: ["metadata", "deletionTimestamp"]] != nil {
            return .pending(reason: "persistentvolumeclaim \"\(name)\" is being deleted")
        }
        let phase = claim[path: ["status", "phase"]]?.stringValue ?? "Pending"
        let volumeName = claim[path: ["spec", "volumeName"]]?.stringValue ?? ""
        guard phase == "Bound", !volumeName.isEmpty else {
            return .pending(reason: "persistentvolumeclaim \"\(name)\" is \(phase), not bound to a volume yet")
        }
        guard let pv = try? store.get(.persistentVolumes, namespace: "", name: volumeName),
              pv[path: ["spec", "claimRef", "uid"]]?.stringValue == claim.uid else {
            return .pending(reason: "persistentvolume \"\(volumeName)\" of claim \"\(name)\" not found")
        }
        let path = pv[path: ["spec", "hostPath", "path"]]?.stringValue ?? pv[path: ["spec", "local", "path"]]?.stringValue ?? ""
        guard !path.isEmpty else {
            return .pending(reason: "persistentvolume \"\(volumeName)\" has no hostPath or local path")
        }
        func modes(_ o: JSONValue) -> Set<String> {
            Set(((o[path: ["spec", "accessModes"]]?.arrayValue) ?? []).compactMap(\.stringValue))
        }
        let readOnly = modes(claim) == ["ReadOnlyMany"] || modes(pv) == ["ReadOnlyMany"]
        return .bound(path: path, readOnly: readOnly)
    }
}
