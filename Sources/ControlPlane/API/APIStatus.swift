import Objects

/// Kubernetes `Status` objects for errors (and the few successes that answer with one).
enum APIStatus {
    static func failure(_ e: StoreError) -> JSONValue {
        var details: [String: JSONValue] = [:]
        if let n = e.name { details["name"] = .string(n) }
        if let g = e.group, !g.isEmpty { details["group"] = .string(g) }
        if let k = e.kind { details["kind"] = .string(k) }
        if !e.causes.isEmpty {
            details["causes"] = .array(e.causes.map {
                .object(["field": .string($0.field), "reason": .string($0.reason), "message": .string($0.message)])
            })
        }
        var s: JSONValue = .object([
            "kind": .string("Status"), "apiVersion": .string("v1"), "metadata": .object([:]), "status": .string("Failure"),
            "message": .string(e.message), "reason": .string(e.reason.rawValue), "code": .int(e.code),
        ])
        if !details.isEmpty { s["details"] = .object(details) }
        return s
    }
}
