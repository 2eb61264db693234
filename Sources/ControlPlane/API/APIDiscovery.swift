import Objects

/// Discovery documents kubectl reads to learn which kinds exist: `/version`, `/api`, `/apis`,
/// `/api/v1` and `/apis/{group}/{version}` (the legacy, non-aggregated forms).
enum APIDiscovery {
    static func version() -> JSONValue {
        .object([
            "major": .string("1"), "minor": .string("32"), "gitVersion": .string("v1.32.0-portico"),
            "gitCommit": .string(""), "gitTreeState": .string("clean"), "buildDate": .string("2026-01-01T00:00:00Z"),
            "goVersion": .string("swift"), "compiler": .string("swift"), "platform": .string("linux/amd64"),
        ])
    }

    static func coreVersions(address: String) -> JSONValue {
        .object([
            "kind": .string("APIVersions"), "versions": .array([.string("v1")]),
            "serverAddressByClientCIDRs": .array([.object(["clientCIDR": .string("0.0.0.0/0"), "serverAddress": .string(address)])]),
        ])
    }

    /// Groups other than the core one, in a stable order.
    static var groups: [(name: String, version: String)] {
        var seen: [(String, String)] = []
        for t in ResourceType.all where !t.group.isEmpty && !seen.contains(where: { $0.0 == t.group }) {
            seen.append((t.group, t.version))
        }
        return seen
    }

    static func groupList() -> JSONValue {
        .object([
            "kind": .string("APIGroupList"), "apiVersion": .string("v1"),
            "groups": .array(groups.map { group(name: $0.name, version: $0.version) }),
        ])
    }

    static func group(name: String, version: String) -> JSONValue {
        let gv: JSONValue = .object(["groupVersion": .string("\(name)/\(version)"), "version": .string(version)])
        return .object(["kind": .string("APIGroup"), "apiVersion": .string("v1"), "name": .string(name),
                        "versions": .array([gv]), "preferredVersion": gv])
    }

    static func resourceList(group: String, version: String) -> JSONValue? {
        let types = ResourceType.all.filter { $0.group == group && $0.version == version }
        if types.isEmpty { return nil }
        let verbs: JSONValue = .array(["create", "delete", "get", "list", "patch", "update", "watch"].map { .string($0) })
        var resources: [JSONValue] = []
        for t in types {
            var r: [String: JSONValue] = [
                "name": .string(t.resource), "singularName": .string(t.kind.lowercased()), "namespaced": .bool(t.namespaced),
                "kind": .string(t.kind), "verbs": verbs,
            ]
            if !t.shortNames.isEmpty { r["shortNames"] = .array(t.shortNames.map { .string($0) }) }
            if t.group == "apps" { r["categories"] = .array([.string("all")]) }
            if [.pods, .services].contains(t) { r["categories"] = .array([.string("all")]) }
            resources.append(.object(r))
            let subVerbs: JSONValue = .array(["get", "patch", "update"].map { .string($0) })
            if t.hasStatus {
                resources.append(.object(["name": .string("\(t.resource)/status"), "singularName": .string(""), "namespaced": .bool(t.namespaced),
                                          "kind": .string(t.kind), "verbs": subVerbs]))
            }
            if t.hasScale {
                resources.append(.object(["name": .string("\(t.resource)/scale"), "singularName": .string(""), "namespaced": .bool(t.namespaced),
                                          "group": .string("autoscaling"), "version": .string("v1"), "kind": .string("Scale"), "verbs": subVerbs]))
            }
        }
        return .object(["kind": .string("APIResourceList"), "apiVersion": .string("v1"),
                        "groupVersion": .string(group.isEmpty ? version : "\(group)/\(version)"), "resources": .array(resources)])
    }
}
