import Objects

/// A minimal OpenAPI v3 description: one PATCH operation per kind, tagged with its
/// group-version-kind and the `fieldValidation` query parameter.
///
/// Why: `kubectl apply` (1.32) validates by default. It asks /openapi/v3 whether the server
/// validates fields itself (a PATCH operation for the kind that takes `fieldValidation`); if so
/// it sends `fieldValidation=Strict` and skips its own schema check, which would otherwise need
/// the full /openapi/v2 document and fail with "failed to download openapi". The operations carry
/// no request body types, so kubectl computes its strategic merge patches from its built-in
/// types, as it does without OpenAPI. /openapi/v2 stays 404.
enum APIOpenAPI {
    static func hash(_ path: String) -> String { "portico-\(path.utf8.count)" }

    /// `/openapi/v3`: where each group-version's document is.
    static func index() -> JSONValue {
        var paths: [String: JSONValue] = [:]
        for t in ResourceType.all {
            let p = t.group.isEmpty ? "api/\(t.version)" : "apis/\(t.group)/\(t.version)"
            paths[p] = .object(["serverRelativeURL": .string("/openapi/v3/\(p)?hash=\(hash(p))")])
        }
        return .object(["paths": .object(paths)])
    }

    /// `/openapi/v3/api/v1`, `/openapi/v3/apis/{group}/{version}`.
    static func document(group: String, version: String) -> JSONValue? {
        let types = ResourceType.all.filter { $0.group == group && $0.version == version }
        if types.isEmpty { return nil }
        var paths: [String: JSONValue] = [:]
        let prefix = group.isEmpty ? "/api/\(version)" : "/apis/\(group)/\(version)"
        let fieldValidation: JSONValue = .object(["name": .string("fieldValidation"), "in": .string("query"),
                                                  "schema": .object(["type": .string("string")])])
        for t in types {
            let path = t.namespaced ? "\(prefix)/namespaces/{namespace}/\(t.resource)/{name}" : "\(prefix)/\(t.resource)/{name}"
            let gvk: JSONValue = .object(["group": .string(t.group), "version": .string(t.version), "kind": .string(t.kind)])
            paths[path] = .object(["patch": .object([
                "operationId": .string("patch\(t.kind)"),
                "x-kubernetes-group-version-kind": gvk,
                "parameters": .array([fieldValidation]),
                "responses": .object(["200": .object(["description": .string("OK")])]),
            ])])
        }
        return .object(["openapi": .string("3.0.0"), "info": .object(["title": .string("Portico"), "version": .string("v1.32.0")]),
                        "paths": .object(paths)])
    }
}
