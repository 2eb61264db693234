import ArgumentParser
import ControlPlane
import Foundation
import Objects

/// The columns `get` prints for each kind, as kubectl's default printers do.
enum ClientColumns {
    static func headers(_ t: ResourceType, wide: Bool) -> [String] {
        switch t {
        case .pods: return ["NAME", "READY", "STATUS", "RESTARTS", "AGE"] + (wide ? ["IP", "NODE"] : [])
        case .deployments: return ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"] + (wide ? ["CONTAINERS", "IMAGES", "SELECTOR"] : [])
        case .replicaSets: return ["NAME", "DESIRED", "CURRENT", "READY", "AGE"] + (wide ? ["CONTAINERS", "IMAGES", "SELECTOR"] : [])
        case .statefulSets: return ["NAME", "READY", "AGE"] + (wide ? ["CONTAINERS", "IMAGES"] : [])
        case .services: return ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"] + (wide ? ["SELECTOR"] : [])
        case .ingresses: return ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
        case .endpoints: return ["NAME", "ENDPOINTS", "AGE"]
        case .endpointSlices: return ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
        case .namespaces: return ["NAME", "STATUS", "AGE"]
        case .configMaps: return ["NAME", "DATA", "AGE"]
        case .secrets: return ["NAME", "TYPE", "DATA", "AGE"]
        case .events: return ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
        default: return ["NAME", "AGE"]
        }
    }

    static func row(_ t: ResourceType, _ o: JSONValue, name: String, wide: Bool) -> [String] {
        let age = ClientTime.age(o[path: ["metadata", "creationTimestamp"]]?.stringValue)
        func int(_ p: [String]) -> Int { o[path: p]?.intValue ?? 0 }
        let containers = o[path: ["spec", "template", "spec", "containers"]]?.arrayValue ?? []
        let names = containers.compactMap { $0["name"]?.stringValue }.joined(separator: ",")
        let images = containers.map { $0["image"]?.stringValue ?? "<none>" }.joined(separator: ",")
        let selector = (o[path: ["spec", "selector", "matchLabels"]]?.stringMap ?? [:]).sorted { $0.key < $1.key }
            .map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        switch t {
        case .pods:
            let statuses = o[path: ["status", "containerStatuses"]]?.arrayValue ?? []
            let total = max(statuses.count, o[path: ["spec", "containers"]]?.arrayValue?.count ?? 0)
            let ready = statuses.filter { $0["ready"] == .bool(true) }.count
            let restarts = statuses.reduce(0) { $0 + ($1["restartCount"]?.intValue ?? 0) }
            var r = [name, "\(ready)/\(total)", podStatus(o), "\(restarts)", age]
            if wide { r += [o[path: ["status", "podIP"]]?.stringValue ?? "<none>", o[path: ["spec", "nodeName"]]?.stringValue ?? "<none>"] }
            return r
        case .deployments:
            var r = [name, "\(int(["status", "readyReplicas"]))/\(o[path: ["spec", "replicas"]]?.intValue ?? 1)",
                     "\(int(["status", "updatedReplicas"]))", "\(int(["status", "availableReplicas"]))", age]
            if wide { r += [names, images, selector] }
            return r
        case .replicaSets:
            var r = [name, "\(o[path: ["spec", "replicas"]]?.intValue ?? 1)", "\(int(["status", "replicas"]))", "\(int(["status", "readyReplicas"]))", age]
            if wide { r += [names, images, selector] }
            return r
        case .statefulSets:
            var r = [name, "\(int(["status", "readyReplicas"]))/\(o[path: ["spec", "replicas"]]?.intValue ?? 1)", age]
            if wide { r += [names, images] }
            return r
        case .services:
            let type = o[path: ["spec", "type"]]?.stringValue ?? "ClusterIP"
            let ports = (o[path: ["spec", "ports"]]?.arrayValue ?? []).map { p -> String in
                let port = p["port"]?.intValue.map(String.init) ?? "?"
                let node = p["nodePort"]?.intValue.map { ":\($0)" } ?? ""
                return "\(port)\(node)/\(p["protocol"]?.stringValue ?? "TCP")"
            }
            let external = (o[path: ["spec", "externalIPs"]]?.arrayValue ?? []).compactMap(\.stringValue)
            var r = [name, type, o[path: ["spec", "clusterIP"]]?.stringValue ?? "<none>",
                     external.isEmpty ? (type == "LoadBalancer" ? "<pending>" : "<none>") : external.joined(separator: ","),
                     ports.isEmpty ? "<none>" : ports.joined(separator: ","), age]
            if wide {
                let s = (o[path: ["spec", "selector"]]?.stringMap ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                r.append(s.isEmpty ? "<none>" : s.joined(separator: ","))
            }
            return r
        case .ingresses:
            let rules = o[path: ["spec", "rules"]]?.arrayValue ?? []
            let hosts = rules.map { $0["host"]?.stringValue ?? "*" }
            let address = (o[path: ["status", "loadBalancer", "ingress"]]?.arrayValue ?? []).compactMap { $0["ip"]?.stringValue ?? $0["hostname"]?.stringValue }
            let tls = !(o[path: ["spec", "tls"]]?.arrayValue ?? []).isEmpty
            return [name, o[path: ["spec", "ingressClassName"]]?.stringValue ?? "<none>",
                    hosts.isEmpty ? "*" : hosts.joined(separator: ","), address.joined(separator: ","), tls ? "80, 443" : "80", age]
        case .endpoints:
            var all: [String] = []
            for s in o["subsets"]?.arrayValue ?? [] {
                let ports = (s["ports"]?.arrayValue ?? []).compactMap { $0["port"]?.intValue }
                for a in s["addresses"]?.arrayValue ?? [] {
                    let ip = a["ip"]?.stringValue ?? "?"
                    if ports.isEmpty { all.append(ip) } else { all += ports.map { "\(ip):\($0)" } }
                }
            }
            return [name, summarize(all), age]
        case .endpointSlices:
            let ports = (o["ports"]?.arrayValue ?? []).compactMap { $0["port"]?.intValue.map(String.init) }
            let addrs = (o["endpoints"]?.arrayValue ?? []).flatMap { ($0["addresses"]?.arrayValue ?? []).compactMap(\.stringValue) }
            return [name, o["addressType"]?.stringValue ?? "IPv4", ports.isEmpty ? "<unset>" : ports.joined(separator: ","), summarize(addrs), age]
        case .namespaces:
            return [name, o[path: ["status", "phase"]]?.stringValue ?? "Active", age]
        case .configMaps:
            return [name, "\((o["data"]?.objectValue?.count ?? 0) + (o["binaryData"]?.objectValue?.count ?? 0))", age]
        case .secrets:
            return [name, o["type"]?.stringValue ?? "Opaque", "\((o["data"]?.objectValue?.count ?? 0) + (o["stringData"]?.objectValue?.count ?? 0))", age]
        case .events:
            let seen = o["lastTimestamp"]?.stringValue ?? o["eventTime"]?.stringValue ?? o[path: ["metadata", "creationTimestamp"]]?.stringValue
            let io = o["involvedObject"]
            let object = "\((io?["kind"]?.stringValue ?? "").lowercased())/\(io?["name"]?.stringValue ?? "")"
            return [ClientTime.age(seen), o["type"]?.stringValue ?? "Normal", o["reason"]?.stringValue ?? "", object, o["message"]?.stringValue ?? ""]
        default:
            return [name, age]
        }
    }

    /// `10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 2 more...`, or `<none>`.
    static func summarize(_ items: [String]) -> String {
        if items.isEmpty { return "<none>" }
        if items.count <= 3 { return items.joined(separator: ",") }
        return items.prefix(3).joined(separator: ",") + " + \(items.count - 3) more..."
    }

    /// kubectl's STATUS column: Terminating, a container's waiting or terminated reason, or the phase.
    static func podStatus(_ o: JSONValue) -> String {
        if o[path: ["metadata", "deletionTimestamp"]] != nil { return "Terminating" }
        var status = o[path: ["status", "reason"]]?.stringValue ?? o[path: ["status", "phase"]]?.stringValue ?? "Pending"
        for c in o[path: ["status", "containerStatuses"]]?.arrayValue ?? [] {
            if let r = c[path: ["state", "waiting", "reason"]]?.stringValue, !r.isEmpty { status = r }
            else if let t = c[path: ["state", "terminated"]], t != .null {
                status = t["reason"]?.stringValue ?? "ExitCode:\(t["exitCode"]?.intValue ?? 0)"
            }
        }
        return status
    }
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
