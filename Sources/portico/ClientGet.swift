import ArgumentParser
import ControlPlane
import Foundation
import Objects

/// The columns `get` prints for each kind: the API server's own table (`APITable`, what
/// `kubectl get` is sent), so `portico get` and `kubectl get` print the same thing.
enum ClientColumns {
    static func headers(_ t: ResourceType, wide: Bool) -> [String] {
        APITable.printed(t, [], wide: wide).headers
    }

    static func row(_ t: ResourceType, _ o: JSONValue, name: String, wide: Bool) -> [String] {
        var cells = APITable.printed(t, [o], wide: wide).rows[0]
        // The NAME column shows `kind/name` when several kinds are listed.
        if let i = headers(t, wide: wide).firstIndex(of: "NAME"), cells[i].hasPrefix(o.name) { cells[i] = name + cells[i].dropFirst(o.name.count) }
        return cells
    }

    static func podStatus(_ o: JSONValue) -> String { APITable.podStatus(o) }
}

struct Get: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List objects as a table, or print them as YAML, JSON or KIND/NAME.",
        discussion: """
        KIND is a resource name, a singular name or a short name: pods (po), services (svc), \
        endpoints (ep), deployments (deploy), replicasets (rs), statefulsets (sts), ingresses (ing), \
        configmaps (cm), secrets, events (ev), namespaces (ns), endpointslices. Several kinds are \
        separated by commas (`get deploy,svc`); `KIND/NAME` selects one object.
        """)

    @OptionGroup var options: ClientOptions

    @Flag(name: [.customShort("A"), .customLong("all-namespaces")], help: "List objects of every namespace.")
    var allNamespaces = false

    @Option(name: [.customShort("o"), .customLong("output")], help: "wide, yaml, json or name.")
    var output: String?

    @Option(name: [.customShort("l"), .customLong("selector")], help: "A label selector (app=web,tier!=db).")
    var selector: String?

    @Flag(name: [.customShort("w"), .customLong("watch")], help: "After listing, print each change as it happens (until Ctrl-C).")
    var watch = false

    @Argument(help: "KIND[,KIND...] [NAME...], or KIND/NAME...")
    var args: [String] = []

    func run() throws {
        try runClient {
            if let o = output, !["wide", "yaml", "json", "name"].contains(o) {
                throw ClientFailure.usage("get: --output must be wide, yaml, json or name, not \(o)")
            }
            guard !args.isEmpty else {
                throw ClientFailure.usage("get: you must specify the type of resource to get (pods, services, deployments, ingresses, ...)")
            }
            var requests: [(ResourceType, [String])] = []
            if args.allSatisfy({ $0.contains("/") }) {
                for a in args {
                    let (t, n) = try kindAndName([a], command: "get")
                    if let i = requests.firstIndex(where: { $0.0 == t }) { requests[i].1.append(n) } else { requests.append((t, [n])) }
                }
            } else {
                var kinds: [ResourceType] = []
                for k in args[0].split(separator: ",") {
                    // `all`, as in kubectl: the workload and service kinds.
                    let add = k == "all" ? [.pods, .services, .deployments, .replicaSets, .statefulSets] : [try ResourceType.require(String(k))]
                    for t in add where !kinds.contains(t) { kinds.append(t) }
                }
                let names = Array(args.dropFirst())
                if !names.isEmpty && kinds.count > 1 {
                    throw ClientFailure.usage("get: names can only be given with one kind (or use KIND/NAME)")
                }
                requests = kinds.map { ($0, names) }
            }
            if watch && requests.count != 1 { throw ClientFailure.usage("get -w: watch one kind at a time") }
            let api = try options.client()
            let ns: String? = allNamespaces ? nil : options.namespace
            let multi = requests.count > 1
            var collected: [(ResourceType, [JSONValue])] = []
            var failed = false
            var listVersion = ""
            for (type, names) in requests {
                var items: [JSONValue] = []
                if names.isEmpty {
                    var path = type.path(namespace: ns)
                    if let s = selector, !s.isEmpty { path += "?labelSelector=" + percentEncode(s) }
                    let list = try api.json("GET", path)
                    listVersion = list[path: ["metadata", "resourceVersion"]]?.stringValue ?? ""
                    items = list["items"]?.arrayValue ?? []
                } else {
                    for n in names {
                        let r = try api.request("GET", type.path(namespace: options.namespace, name: n))
                        if r.ok { items.append(try r.json()) } else { writeErr(ClientFailure.server(r.status, r.body).message + "\n"); failed = true }
                    }
                }
                items = items.map { var o = $0; o["apiVersion"] = .string(type.apiVersion); o["kind"] = .string(type.kind); return o }
                collected.append((type, items))
            }
            let named = requests.contains { !$0.1.isEmpty }
            if !(named && collected.allSatisfy(\.1.isEmpty)) {
                try show(collected, multi: multi, single: requests.count == 1 && requests[0].1.count == 1)
            }
            if failed { throw ClientFailure(message: "", exitCode: 1) }
            if watch {
                let widths = tableWidths(tableRows(requests[0].0, collected[0].1, multi: false))
                try watchChanges(api, requests[0].0, ns: requests[0].1.isEmpty ? ns : options.namespace, from: listVersion,
                                 names: requests[0].1, widths: widths)
            }
        }
    }

    func show(_ collected: [(ResourceType, [JSONValue])], multi: Bool, single: Bool) throws {
        let all = collected.flatMap(\.1)
        switch output {
        case "json", "yaml":
            let value: JSONValue = single && all.count == 1 ? all[0]
                : .object(["apiVersion": .string("v1"), "kind": .string("List"), "items": .array(all), "metadata": .object(["resourceVersion": .string("")])])
            if output == "json" {
                writeOut(prettyJSON(value) + "\n")
            } else {
                writeOut(ClientYAML.emit(value))
            }
        case "name":
            for (t, items) in collected { for o in items { writeOut("\(t.singularGroup)/\(o.name)\n") } }
        default:
            if all.isEmpty {
                writeErr(allNamespaces ? "No resources found\n" : "No resources found in \(options.namespace) namespace.\n")
                return
            }
            var first = true
            for (t, items) in collected where !items.isEmpty {
                if !first { writeOut("\n") }
                first = false
                writeOut(table(t, items, multi: multi))
            }
        }
    }

    func table(_ t: ResourceType, _ items: [JSONValue], multi: Bool, header: Bool = true, minWidths: [Int] = []) -> String {
        formatTable(tableRows(t, items, multi: multi, header: header), minWidths: minWidths)
    }

    func tableRows(_ t: ResourceType, _ items: [JSONValue], multi: Bool, header: Bool = true) -> [[String]] {
        let wide = output == "wide"
        var rows: [[String]] = []
        if header { rows.append((allNamespaces && t.namespaced ? ["NAMESPACE"] : []) + ClientColumns.headers(t, wide: wide)) }
        for o in items {
            let name = multi ? "\(t.singularGroup)/\(o.name)" : o.name
            rows.append((allNamespaces && t.namespaced ? [o.namespace] : []) + ClientColumns.row(t, o, name: name, wide: wide))
        }
        return rows
    }

    /// Streams watch events from the list's resourceVersion, one row (or document) per change.
    func watchChanges(_ api: APIClient, _ t: ResourceType, ns: String?, from version: String, names: [String], widths: [Int]) throws {
        var path = t.path(namespace: ns) + "?watch=1"
        if !version.isEmpty { path += "&resourceVersion=" + percentEncode(version) }
        if let s = selector, !s.isEmpty { path += "&labelSelector=" + percentEncode(s) }
        if names.count == 1 { path += "&fieldSelector=" + percentEncode("metadata.name=\(names[0])") }
        try api.stream(path) { line in
            guard let event = try? JSONValue.parse(line), var o = event["object"] else { return true }
            if event["type"]?.stringValue == "ERROR" {
                throw ClientFailure(message: "Error from server: \(o["message"]?.stringValue ?? line)", exitCode: 1)
            }
            o["apiVersion"] = .string(t.apiVersion); o["kind"] = .string(t.kind)
            switch output {
            case "json": writeOut(prettyJSON(o) + "\n")
            case "yaml": writeOut("---\n" + ClientYAML.emit(o))
            case "name": writeOut("\(t.singularGroup)/\(o.name)\n")
            default: writeOut(table(t, [o], multi: false, header: false, minWidths: widths))
            }
            return true
        }
    }
}

/// Indented JSON with sorted keys, as `kubectl get -o json` prints (`"key": value`, 4 spaces).
func prettyJSON(_ v: JSONValue, indent: Int = 0) -> String {
    let pad = String(repeating: " ", count: indent + 4), end = String(repeating: " ", count: indent)
    switch v {
    case .object(let o) where !o.isEmpty:
        let members = o.keys.sorted().map { pad + JSONValue.string($0).jsonString + ": " + prettyJSON(o[$0]!, indent: indent + 4) }
        return "{\n" + members.joined(separator: ",\n") + "\n" + end + "}"
    case .array(let a) where !a.isEmpty:
        return "[\n" + a.map { pad + prettyJSON($0, indent: indent + 4) }.joined(separator: ",\n") + "\n" + end + "]"
    default:
        return v.jsonString
    }
}
