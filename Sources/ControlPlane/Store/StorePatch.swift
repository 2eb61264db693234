import Objects

/// The patch formats the store applies.
public enum PatchType: String, Sendable {
    /// RFC 7386 JSON merge patch (`application/merge-patch+json`).
    case merge = "application/merge-patch+json"
    /// Kubernetes' strategic merge patch (`application/strategic-merge-patch+json`), for the
    /// parts `kubectl apply` uses: maps merge, `null` deletes, lists of containers, volumes,
    /// env, ports… merge by their key, `$patch: delete|replace`, other lists are replaced.
    case strategic = "application/strategic-merge-patch+json"
}

enum Patch {
    /// RFC 7386 §2.
    static func merge(_ target: JSONValue?, _ patch: JSONValue) -> JSONValue {
        guard case .object(let p) = patch else { return patch }
        var result: [String: JSONValue] = target?.objectValue ?? [:]
        for (k, v) in p {
            if v == .null { result[k] = nil } else { result[k] = merge(result[k], v) }
        }
        return .object(result)
    }

    /// The merge key of a list field, as Kubernetes' API types declare it (`patchMergeKey`).
    static func mergeKey(field: String, items: [JSONValue]) -> String? {
        switch field {
        case "containers", "initContainers", "ephemeralContainers", "volumes", "env", "imagePullSecrets",
             "volumeClaimTemplates", "readinessGates":
            return field == "readinessGates" ? "conditionType" : (field == "volumeClaimTemplates" ? nil : "name")
        case "volumeMounts": return "mountPath"
        case "volumeDevices": return "devicePath"
        case "ports":
            // Container ports merge by containerPort, Service ports by port.
            return items.contains { $0["containerPort"] != nil } ? "containerPort" : "port"
        case "conditions": return "type"
        case "hostAliases": return "ip"
        default: return nil
        }
    }

    /// Applies a strategic merge patch; nil when the patch deletes the value.
    static func strategic(_ original: JSONValue?, _ patch: JSONValue) throws -> JSONValue? {
        guard case .object(let p) = patch else { return clean(patch) }
        if let directive = p["$patch"]?.stringValue {
            switch directive {
            case "delete": return nil
            case "replace": var q = p; q["$patch"] = nil; return clean(.object(q))
            case "merge": break
            default: throw StoreError(.badRequest, "unknown patch directive $patch: \(directive)")
            }
        }
        var result: [String: JSONValue] = original?.objectValue ?? [:]
        for (k, v) in p {
            if k == "$patch" || k == "$retainKeys" || k.hasPrefix("$setElementOrder/") { continue }
            if k.hasPrefix("$deleteFromPrimitiveList/") {
                let field = String(k.dropFirst("$deleteFromPrimitiveList/".count))
                let drop = v.arrayValue ?? []
                if let list = result[field]?.arrayValue { result[field] = .array(list.filter { !drop.contains($0) }) }
                continue
            }
            if v == .null { result[k] = nil; continue }
            if case .array(let items) = v {
                if let key = mergeKey(field: k, items: items + (result[k]?.arrayValue ?? [])),
                   items.allSatisfy({ $0.objectValue != nil }) {
                    result[k] = .array(try mergeList(result[k]?.arrayValue ?? [], items, key: key))
                } else {
                    result[k] = clean(v)
                }
                continue
            }
            if case .object = v {
                result[k] = try strategic(result[k], v)
                continue
            }
            result[k] = v
        }
        return .object(result)
    }

    static func mergeList(_ original: [JSONValue], _ patch: [JSONValue], key: String) throws -> [JSONValue] {
        if patch.contains(where: { $0["$patch"]?.stringValue == "replace" }) {
            return patch.filter { $0["$patch"] == nil }.map(clean)
        }
        var result = original
        for item in patch {
            let keyValue = item[key]
            let index = keyValue.flatMap { kv in result.firstIndex { $0[key] == kv } }
            if item["$patch"]?.stringValue == "delete" {
                if let i = index { result.remove(at: i) }
                continue
            }
            if let i = index {
                if let merged = try strategic(result[i], item) { result[i] = merged } else { result.remove(at: i) }
            } else {
                result.append(clean(item))
            }
        }
        return result
    }

    /// Removes patch directives from a value that is taken as a whole.
    static func clean(_ v: JSONValue) -> JSONValue {
        switch v {
        case .object(let o):
            var r: [String: JSONValue] = [:]
            for (k, x) in o where !k.hasPrefix("$") { r[k] = clean(x) }
            return .object(r)
        case .array(let a): return .array(a.map(clean))
        default: return v
        }
    }
}
