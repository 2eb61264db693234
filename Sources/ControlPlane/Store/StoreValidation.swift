import Objects

/// What the store checks before a write, as Kubernetes' API server validation does: names,
/// required fields, and for the kinds module Objects models, its strict decoding (unknown
/// fields, wrong types) and `validate()` rules. Other kinds get the generic checks plus the
/// workload rules below.
enum StoreValidation {
    /// `old` is the stored object on an update (for the rules about what may not change).
    static func validate(_ type: ResourceType, _ o: JSONValue, old: JSONValue? = nil) -> [StoreError.Cause] {
        var causes: [StoreError.Cause] = []
        func add(_ field: String, _ reason: String, _ message: String) {
            causes.append(StoreError.Cause(field: field, reason: reason, message: message))
        }
        let name = o.name
        if name.isEmpty {
            add("metadata.name", "FieldValueRequired", "Required value: name or generateName is required")
        } else if type == .namespaces || type == .services {
            let ok = type == .services ? NameValidation.isDNS1035Label(name) : NameValidation.isDNS1123Label(name)
            if !ok { add("metadata.name", "FieldValueInvalid", "Invalid value: \"\(name)\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character") }
        } else if !NameValidation.isDNS1123Subdomain(name) {
            add("metadata.name", "FieldValueInvalid", "Invalid value: \"\(name)\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character")
        }
        if !causes.isEmpty { return causes }

        if KubeObject.kind(apiVersion: type.apiVersion, kind: type.kind) != nil {
            // Secret and ConfigMap data are checked by ConfigValidation; the typed decoding sees
            // the rest only, so no value reaches its messages and nothing is reported twice.
            var shape = o
            if type == .secrets {
                shape["data"] = nil; shape["stringData"] = nil
                if shape["type"]?.stringValue != nil { shape["type"] = .string("Opaque") }
            } else if type == .configMaps {
                shape["data"] = nil; shape["binaryData"] = nil
            }
            let result = ManifestLoader.load(yaml: shape.jsonString, file: "request")
            for p in result.problems {
                let unknown = p.message.contains("unknown field")
                add(p.field, unknown ? "FieldValueNotSupported" : "FieldValueInvalid", p.message)
            }
            if causes.isEmpty {
                for object in result.kubeObjects {
                    for e in object.validate() { add(e.field, "FieldValueInvalid", e.message) }
                }
            }
        }

        switch type {
        case .deployments, .replicaSets, .statefulSets:
            workload(o, add)
        case .pods:
            containers(o["spec"], prefix: "spec", add)
        case .secrets:
            ConfigValidation.secret(o, old: old, add)
        case .configMaps:
            ConfigValidation.configMap(o, old: old, add)
        default:
            break
        }
        return causes
    }

    /// Deployments, ReplicaSets, StatefulSets: a selector that matches the template's labels, a
    /// pod template with containers, a non-negative replica count.
    static func workload(_ o: JSONValue, _ add: (String, String, String) -> Void) {
        let spec = o["spec"]
        if let r = spec?["replicas"], r != .null {
            if let n = r.intValue { if n < 0 { add("spec.replicas", "FieldValueInvalid", "Invalid value: \(n): must be greater than or equal to 0") } }
            else { add("spec.replicas", "FieldValueInvalid", "Invalid value: must be an integer") }
        }
        guard let selector = spec?["selector"], selector.objectValue != nil else {
            add("spec.selector", "FieldValueRequired", "Required value")
            return
        }
        let templateLabels = spec?[path: ["template", "metadata", "labels"]]?.stringMap ?? [:]
        var matches = true
        let matchLabels = selector["matchLabels"]?.stringMap ?? [:]
        if matchLabels.isEmpty && (selector["matchExpressions"]?.arrayValue ?? []).isEmpty {
            add("spec.selector", "FieldValueInvalid", "Invalid value: empty selector is invalid for deployment")
            return
        }
        if !LabelSelector(matchLabels: matchLabels).matches(templateLabels) { matches = false }
        for e in selector["matchExpressions"]?.arrayValue ?? [] {
            let key = e["key"]?.stringValue ?? ""
            let values = Set((e["values"]?.arrayValue ?? []).compactMap(\.stringValue))
            let r: LabelSelector.Requirement
            switch e["operator"]?.stringValue ?? "" {
            case "In": r = .isIn(key, values)
            case "NotIn": r = .notIn(key, values)
            case "Exists": r = .exists(key)
            case "DoesNotExist": r = .doesNotExist(key)
            case let op:
                add("spec.selector.matchExpressions", "FieldValueNotSupported", "Unsupported value: \"\(op)\": supported values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\"")
                return
            }
            var s = LabelSelector(matchLabels: [:]); s.requirements = [r]
            if !s.matches(templateLabels) { matches = false }
        }
        if !matches {
            add("spec.template.metadata.labels", "FieldValueInvalid", "Invalid value: \(templateLabels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")): `selector` does not match template `labels`")
        }
        containers(spec?[path: ["template", "spec"]], prefix: "spec.template.spec", add)
    }

    static func containers(_ podSpec: JSONValue?, prefix: String, _ add: (String, String, String) -> Void) {
        guard let list = podSpec?["containers"]?.arrayValue, !list.isEmpty else {
            add("\(prefix).containers", "FieldValueRequired", "Required value")
            return
        }
        var seen = Set<String>()
        for (i, c) in list.enumerated() {
            let name = c["name"]?.stringValue ?? ""
            if name.isEmpty { add("\(prefix).containers[\(i)].name", "FieldValueRequired", "Required value") }
            else if !NameValidation.isDNS1123Label(name) { add("\(prefix).containers[\(i)].name", "FieldValueInvalid", "Invalid value: \"\(name)\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character") }
            else if !seen.insert(name).inserted { add("\(prefix).containers[\(i)].name", "FieldValueDuplicate", "Duplicate value: \"\(name)\"") }
        }
    }
}
