import Foundation
import Objects

/// Kubernetes' validation of the storage kinds (PersistentVolumeClaim, PersistentVolume,
/// StorageClass, a StatefulSet's claim retention policy), on create and, with the stored object as `old`, on update: the field rules of
/// `ValidatePersistentVolumeClaim`, `ValidatePersistentVolume`, `ValidateStorageClass` and their
/// update variants, with the same field paths and messages.
enum StorageValidation {
    static let accessModes = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]
    static let quantityPattern = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"

    static func validate(_ type: ResourceType, _ o: JSONValue, old: JSONValue?) -> [StoreError.Cause] {
        var causes: [StoreError.Cause] = []
        func add(_ field: String, _ reason: String, _ message: String) {
            causes.append(StoreError.Cause(field: field, reason: reason, message: message))
        }
        switch type {
        case .persistentVolumeClaims:
            claim(o, old: old, add)
        case .persistentVolumes:
            volume(o, old: old, add)
        case .storageClasses:
            storageClass(o, old: old, add)
        case .statefulSets:
            // Each volumeClaimTemplate must make a valid claim (checked here, not at each
            // ordinal's claim creation).
            for (i, t) in (o[path: ["spec", "volumeClaimTemplates"]]?.arrayValue ?? []).enumerated() {
                let prefix = "spec.volumeClaimTemplates[\(i)]"
                if (t[path: ["metadata", "name"]]?.stringValue ?? "").isEmpty {
                    add("\(prefix).metadata.name", "FieldValueRequired", "Required value")
                }
                claim(t, old: nil) { field, reason, message in add("\(prefix).\(field)", reason, message) }
            }
            for when in ["whenDeleted", "whenScaled"] {
                if let v = o[path: ["spec", "persistentVolumeClaimRetentionPolicy", when]], v != .null, v != .string("Retain"), v != .string("Delete") {
                    add("spec.persistentVolumeClaimRetentionPolicy.\(when)", "FieldValueNotSupported",
                        "Unsupported value: \(v.stringValue.map { "\"\($0)\"" } ?? v.jsonString): supported values: \"Retain\", \"Delete\"")
                }
            }
        default:
            break
        }
        return causes
    }

    typealias Add = (String, String, String) -> Void

    static func claim(_ o: JSONValue, old: JSONValue?, _ add: Add) {
        let spec = o["spec"] ?? .object([:])
        modes(spec["accessModes"], field: "spec.accessModes", add)
        let requested = spec[path: ["resources", "requests", "storage"]]
        if requested == nil || requested == .null {
            add("spec.resources[storage]", "FieldValueRequired", "Required value")
        } else {
            positiveQuantity(requested, field: "spec.resources.requests[storage]", add)
        }
        if let mode = spec["volumeMode"]?.stringValue, mode != "Filesystem" {
            add("spec.volumeMode", "FieldValueNotSupported",
                "Unsupported value: \"\(mode)\": supported values: \"Filesystem\" (Portico's volumes are directories)")
        }
        if let cls = spec["storageClassName"]?.stringValue, !cls.isEmpty, !NameValidation.isDNS1123Subdomain(cls) {
            add("spec.storageClassName", "FieldValueInvalid", "Invalid value: \"\(cls)\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character")
        }
        guard let old, let oldSpec = old["spec"] else { return }
        // What may change after creation: the volume a claim is bound to (once, from empty), the
        // class of a claim without one (the default class, set afterwards), and for a bound
        // claim its requests (expansion, never below what it had).
        var was = oldSpec, now = spec
        if (was["volumeName"]?.stringValue ?? "").isEmpty { was["volumeName"] = now["volumeName"] }
        if was["storageClassName"] == nil || was["storageClassName"] == .null { was["storageClassName"] = now["storageClassName"] }
        let bound = old[path: ["status", "phase"]]?.stringValue == "Bound"
        if bound {
            was[path: ["resources", "requests"]] = nil
            now[path: ["resources", "requests"]] = nil
        }
        if was != now {
            add("spec", "FieldValueForbidden", "Forbidden: spec is immutable after creation except resources.requests for bound claims")
        } else if bound, let before = quantity(oldSpec[path: ["resources", "requests", "storage"]]),
                  let after = quantity(requested), after < before {
            add("spec.resources.requests.storage", "FieldValueForbidden", "Forbidden: field can not be less than previous value")
        }
    }

    static func volume(_ o: JSONValue, old: JSONValue?, _ add: Add) {
        let spec = o["spec"] ?? .object([:])
        modes(spec["accessModes"], field: "spec.accessModes", add)
        let capacity = spec[path: ["capacity", "storage"]]
        if spec["capacity"]?.objectValue?.isEmpty ?? true {
            add("spec.capacity", "FieldValueRequired", "Required value")
        } else if capacity == nil {
            let keys = (spec["capacity"]?.objectValue ?? [:]).keys.sorted()
            add("spec.capacity", "FieldValueNotSupported", "Unsupported value: \"\(keys.joined(separator: ","))\": supported values: \"storage\"")
        } else {
            positiveQuantity(capacity, field: "spec.capacity[storage]", add)
        }
        let sources = volumeSources.filter { spec[$0] != nil && spec[$0] != .null }
        if sources.isEmpty {
            add("spec", "FieldValueRequired", "Required value: must specify a volume type (Portico's volumes are hostPath or local directories)")
        } else if sources.count > 1 {
            add("spec.\(sources[1])", "FieldValueForbidden", "Forbidden: may not specify more than 1 volume type")
        } else if !["hostPath", "local"].contains(sources[0]) {
            add("spec.\(sources[0])", "FieldValueNotSupported", "Unsupported value: \"\(sources[0])\": supported values: \"hostPath\", \"local\" (Portico's volumes are directories on this machine)")
        } else {
            let path = spec[path: [sources[0], "path"]]?.stringValue ?? ""
            if path.isEmpty {
                add("spec.\(sources[0]).path", "FieldValueRequired", "Required value")
            } else if !path.hasPrefix("/") {
                add("spec.\(sources[0]).path", "FieldValueInvalid", "Invalid value: \"\(path)\": must be an absolute path")
            } else if path.split(separator: "/").contains("..") {
                add("spec.\(sources[0]).path", "FieldValueInvalid", "Invalid value: \"\(path)\": must not contain '..'")
            }
        }
        if let policy = spec["persistentVolumeReclaimPolicy"]?.stringValue, !["Delete", "Recycle", "Retain"].contains(policy) {
            add("spec.persistentVolumeReclaimPolicy", "FieldValueNotSupported", "Unsupported value: \"\(policy)\": supported values: \"Delete\", \"Recycle\", \"Retain\"")
        }
        if let ref = spec["claimRef"], ref != .null, (ref["name"]?.stringValue ?? "").isEmpty {
            add("spec.claimRef.name", "FieldValueRequired", "Required value")
        }
        if let mode = spec["volumeMode"]?.stringValue, mode != "Filesystem" {
            add("spec.volumeMode", "FieldValueNotSupported", "Unsupported value: \"\(mode)\": supported values: \"Filesystem\" (Portico's volumes are directories)")
        }
        guard let old, let oldSpec = old["spec"] else { return }
        if volumeSources.contains(where: { oldSpec[$0] != spec[$0] }) {
            add("spec.persistentvolumesource", "FieldValueForbidden", "Forbidden: spec.persistentvolumesource is immutable after creation")
        }
    }

    /// The volume sources of a PersistentVolumeSpec (one of them must be given).
    static let volumeSources = ["hostPath", "local", "nfs", "csi", "iscsi", "fc", "rbd", "cephfs", "glusterfs",
                                "awsElasticBlockStore", "gcePersistentDisk", "azureDisk", "azureFile", "cinder",
                                "flexVolume", "flocker", "vsphereVolume", "quobyte", "portworxVolume", "scaleIO",
                                "storageos", "photonPersistentDisk"]

    static func storageClass(_ o: JSONValue, old: JSONValue?, _ add: Add) {
        let provisioner = o["provisioner"]?.stringValue ?? ""
        if provisioner.isEmpty { add("provisioner", "FieldValueRequired", "Required value") }
        if let p = o["reclaimPolicy"]?.stringValue, !["Delete", "Retain"].contains(p) {
            add("reclaimPolicy", "FieldValueNotSupported", "Unsupported value: \"\(p)\": supported values: \"Delete\", \"Retain\"")
        }
        if let m = o["volumeBindingMode"]?.stringValue, !["Immediate", "WaitForFirstConsumer"].contains(m) {
            add("volumeBindingMode", "FieldValueNotSupported", "Unsupported value: \"\(m)\": supported values: \"Immediate\", \"WaitForFirstConsumer\"")
        }
        guard let old else { return }
        if old["parameters"] != o["parameters"] { add("parameters", "FieldValueForbidden", "Forbidden: updates to parameters are forbidden.") }
        if old["provisioner"] != o["provisioner"] { add("provisioner", "FieldValueForbidden", "Forbidden: updates to provisioner are forbidden.") }
        if old["reclaimPolicy"] != o["reclaimPolicy"] { add("reclaimPolicy", "FieldValueForbidden", "Forbidden: updates to reclaimPolicy are forbidden.") }
        if old["volumeBindingMode"] != o["volumeBindingMode"] { add("volumeBindingMode", "FieldValueInvalid", "Invalid value: field is immutable") }
    }

    static func modes(_ value: JSONValue?, field: String, _ add: Add) {
        let list = value?.arrayValue ?? []
        if list.isEmpty {
            add(field, "FieldValueRequired", "Required value: at least 1 access mode is required")
            return
        }
        let supported = accessModes.map { "\"\($0)\"" }.joined(separator: ", ")
        for m in list {
            guard let s = m.stringValue, accessModes.contains(s) else {
                add(field, "FieldValueNotSupported", "Unsupported value: \(m.stringValue.map { "\"\($0)\"" } ?? m.jsonString): supported values: \(supported)")
                continue
            }
        }
        if list.count > 1 && list.contains(.string("ReadWriteOncePod")) {
            add(field, "FieldValueForbidden", "Forbidden: may not use ReadWriteOncePod with other access modes")
        }
    }

    /// A quantity as text (`1Gi`; a JSON number as its digits), for tables and copies.
    static func quantityText(_ value: JSONValue?) -> String {
        switch value {
        case .string(let s)?: return s
        case .int(let i)?: return String(i)
        case .double(let d)?: return d == d.rounded() && abs(d) < 1e18 ? String(Int(d)) : String(d)
        default: return ""
        }
    }

    static func positiveQuantity(_ value: JSONValue?, field: String, _ add: Add) {
        guard let q = quantity(value) else {
            let text = value?.stringValue ?? value?.jsonString ?? ""
            add(field, "FieldValueInvalid", "Invalid value: \"\(text)\": quantities must match the regular expression '\(quantityPattern)'")
            return
        }
        if q <= 0 {
            add(field, "FieldValueInvalid", "Invalid value: \"\(value?.stringValue ?? value?.jsonString ?? "")\": must be greater than zero")
        }
    }

    /// A resource quantity (`1Gi`, `500M`, `1.5Ti`, `1e9`, a JSON number) in bytes; nil when
    /// it is not one.
    static func quantity(_ value: JSONValue?) -> Double? {
        switch value {
        case .int(let i)?: return Double(i)
        case .double(let d)?: return d.isFinite ? d : nil
        case .string(let s)?: return quantity(s)
        default: return nil
        }
    }

    static func quantity(_ text: String) -> Double? {
        var s = Substring(text)
        var sign = 1.0
        if let f = s.first, f == "+" || f == "-" { sign = f == "-" ? -1 : 1; s = s.dropFirst() }
        let number = s.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
        guard !number.isEmpty, number.filter({ $0 == "." }).count <= 1, number != ".", let base = Double(number) else { return nil }
        let suffix = String(s.dropFirst(number.count))
        let binary: [String: Double] = ["Ki": 0x1p10, "Mi": 0x1p20, "Gi": 0x1p30, "Ti": 0x1p40, "Pi": 0x1p50, "Ei": 0x1p60]
        let decimal: [String: Double] = ["": 1, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18]
        var multiplier: Double
        if let b = binary[suffix] {
            multiplier = b
        } else if let d = decimal[suffix] {
            multiplier = d
        } else if let first = suffix.first, first == "e" || first == "E", suffix.count > 1 {
            var digits = suffix.dropFirst()
            var negative = false
            if let f = digits.first, f == "+" || f == "-" { negative = f == "-"; digits = digits.dropFirst() }
            guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let e = Int(digits), e <= 30 else { return nil }
            multiplier = pow(10, Double(negative ? -e : e))
        } else {
            return nil
        }
        return sign * base * multiplier
    }
}
