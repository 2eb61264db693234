import ArgumentParser
import ControlPlane
import Foundation
import Objects

struct Describe: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show an object's key fields, conditions, container states and events.")

    @OptionGroup var options: ClientOptions

    @Argument(help: "KIND NAME or KIND/NAME")
    var args: [String] = []

    func run() throws {
        try runClient {
            let (type, name) = try kindAndName(args, command: "describe")
            let api = try options.client()
            let o = try api.json("GET", type.path(namespace: options.namespace, name: name))
            var out = DescribeWriter()
            out.field("Name", o.name)
            if type.namespaced { out.field("Namespace", o.namespace) }
            out.map("Labels", o.labels)
            var annotations = o[path: ["metadata", "annotations"]]?.stringMap ?? [:]
            annotations[lastAppliedAnnotation] = nil
            out.map("Annotations", annotations)
            out.field("CreationTimestamp", o[path: ["metadata", "creationTimestamp"]]?.stringValue ?? "<unknown>")
            if let owners = o[path: ["metadata", "ownerReferences"]]?.arrayValue, let c = owners.first(where: { $0["controller"] == .bool(true) }) ?? owners.first {
                out.field("Controlled By", "\(c["kind"]?.stringValue ?? "")/\(c["name"]?.stringValue ?? "")")
            }
            switch type {
            case .pods: describePod(o, &out)
            case .deployments, .replicaSets, .statefulSets: try describeWorkload(type, o, api, &out)
            case .services: try describeService(o, api, &out)
            case .ingresses: describeIngress(o, &out)
            case .secrets: describeSecret(o, &out)
            default:
                for key in ["spec", "data", "subsets", "endpoints", "status"] {
                    guard let v = o[key], v != .null, v != .object([:]) else { continue }
                    out.line("\(key.prefix(1).uppercased() + key.dropFirst()):")
                    out.block(ClientYAML.emit(v), indent: 2)
                }
            }
            if type.namespaced && type != .events { try events(o, type, api, &out) }
            writeOut(out.text)
        }
    }

    /// As kubectl: the type and each key's size, never a value.
    func describeSecret(_ o: JSONValue, _ out: inout DescribeWriter) {
        out.line("")
        out.field("Type", o["type"]?.stringValue ?? "Opaque")
        out.line("")
        out.line("Data")
        out.line("====")
        for (key, value) in (o["data"]?.stringMap ?? [:]).sorted(by: { $0.key < $1.key }) {
            out.line("\(key):  \(Data(base64Encoded: value)?.count ?? 0) bytes")
        }
    }

    func describePod(_ o: JSONValue, _ out: inout DescribeWriter) {
        out.field("Status", ClientColumns.podStatus(o))
        out.field("IP", o[path: ["status", "podIP"]]?.stringValue ?? "")
        out.field("Start Time", o[path: ["status", "startTime"]]?.stringValue ?? "<unset>")
        let statuses = Dictionary((o[path: ["status", "containerStatuses"]]?.arrayValue ?? []).map { ($0["name"]?.stringValue ?? "", $0) },
                                  uniquingKeysWith: { a, _ in a })
        out.line("Containers:")
        for c in o[path: ["spec", "containers"]]?.arrayValue ?? [] {
            let name = c["name"]?.stringValue ?? ""
            out.line("  \(name):")
            container(c, status: statuses[name], &out)
        }
        conditions(o, &out)
    }

    func container(_ c: JSONValue, status: JSONValue?, _ out: inout DescribeWriter) {
        out.field("Image", c["image"]?.stringValue ?? "<none>", indent: 4)
        if let cmd = c["command"]?.arrayValue { out.field("Command", cmd.compactMap(\.stringValue).joined(separator: " "), indent: 4) }
        if let args = c["args"]?.arrayValue { out.field("Args", args.compactMap(\.stringValue).joined(separator: " "), indent: 4) }
        let ports = (c["ports"]?.arrayValue ?? []).map { "\($0["containerPort"]?.intValue ?? 0)/\($0["protocol"]?.stringValue ?? "TCP")" }
        if !ports.isEmpty { out.field("Port", ports.joined(separator: ", "), indent: 4) }
        if let s = status {
            state("State", s["state"], &out)
            if let last = s["lastState"], last != .object([:]) { state("Last State", last, &out) }
            out.field("Ready", s["ready"] == .bool(true) ? "True" : "False", indent: 4)
            out.field("Restart Count", "\(s["restartCount"]?.intValue ?? 0)", indent: 4)
        }
        for p in ["livenessProbe", "readinessProbe", "startupProbe"] {
            guard let probe = c[p] else { continue }
            let how: String
            if let h = probe["httpGet"] { how = "http-get :\(h["port"].map(describeScalar) ?? "")\(h["path"]?.stringValue ?? "/")" }
            else if let t = probe["tcpSocket"] { how = "tcp-socket :\(t["port"].map(describeScalar) ?? "")" }
            else if let e = probe["exec"] { how = "exec [\((e["command"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: " "))]" }
            else { how = "<unknown>" }
            let timing = "delay=\(probe["initialDelaySeconds"]?.intValue ?? 0)s timeout=\(probe["timeoutSeconds"]?.intValue ?? 1)s period=\(probe["periodSeconds"]?.intValue ?? 10)s #success=\(probe["successThreshold"]?.intValue ?? 1) #failure=\(probe["failureThreshold"]?.intValue ?? 3)"
            out.field(p.prefix(1).uppercased() + p.dropFirst().replacingOccurrences(of: "Probe", with: ""), "\(how) \(timing)", indent: 4)
        }
        let env = c["env"]?.arrayValue ?? []
        if !env.isEmpty {
            out.line("    Environment:")
            for e in env {
                let v = e["value"]?.stringValue ?? (e[path: ["valueFrom", "fieldRef", "fieldPath"]]?.stringValue).map { "(\($0))" } ?? ""
                out.line("      \(e["name"]?.stringValue ?? ""):  \(v)")
            }
        }
    }

    func describeScalar(_ v: JSONValue) -> String { v.stringValue ?? v.intValue.map(String.init) ?? "" }

    func state(_ label: String, _ s: JSONValue?, _ out: inout DescribeWriter) {
        guard let s else { return }
        if let r = s["running"] {
            out.field(label, "Running", indent: 4)
            out.field("Started", r["startedAt"]?.stringValue ?? "", indent: 6)
        } else if let w = s["waiting"] {
            out.field(label, "Waiting", indent: 4)
            out.field("Reason", w["reason"]?.stringValue ?? "", indent: 6)
            if let m = w["message"]?.stringValue { out.field("Message", m, indent: 6) }
        } else if let t = s["terminated"] {
            out.field(label, "Terminated", indent: 4)
            out.field("Reason", t["reason"]?.stringValue ?? "", indent: 6)
            out.field("Exit Code", "\(t["exitCode"]?.intValue ?? 0)", indent: 6)
            if let a = t["startedAt"]?.stringValue { out.field("Started", a, indent: 6) }
            if let f = t["finishedAt"]?.stringValue { out.field("Finished", f, indent: 6) }
        }
    }

    func conditions(_ o: JSONValue, _ out: inout DescribeWriter) {
        let list = o[path: ["status", "conditions"]]?.arrayValue ?? []
        guard !list.isEmpty else { return }
        out.line("Conditions:")
        var rows = [["Type", "Status", "Reason"]]
        for c in list { rows.append([c["type"]?.stringValue ?? "", c["status"]?.stringValue ?? "", c["reason"]?.stringValue ?? ""]) }
        out.block(formatTable(rows), indent: 2)
    }

    func describeWorkload(_ type: ResourceType, _ o: JSONValue, _ api: APIClient, _ out: inout DescribeWriter) throws {
        func int(_ p: String...) -> Int { o[path: p]?.intValue ?? 0 }
        let selector = (o[path: ["spec", "selector", "matchLabels"]]?.stringMap ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        out.field("Selector", selector.joined(separator: ","))
        let desired = o[path: ["spec", "replicas"]]?.intValue ?? 1
        if type == .deployments {
            let total = int("status", "replicas"), available = int("status", "availableReplicas")
            out.field("Replicas", "\(desired) desired | \(int("status", "updatedReplicas")) updated | \(total) total | \(available) available | \(max(0, total - available)) unavailable")
            out.field("StrategyType", o[path: ["spec", "strategy", "type"]]?.stringValue ?? "RollingUpdate")
            if let ru = o[path: ["spec", "strategy", "rollingUpdate"]] {
                out.field("RollingUpdateStrategy", "\(ru["maxUnavailable"].map(describeScalar) ?? "25%") max unavailable, \(ru["maxSurge"].map(describeScalar) ?? "25%") max surge")
            }
        } else {
            out.field("Replicas", "\(int("status", "replicas")) current / \(desired) desired")
            out.field("Pods Status", "\(int("status", "readyReplicas")) Ready")
        }
        out.line("Pod Template:")
        let labels = o[path: ["spec", "template", "metadata", "labels"]]?.stringMap ?? [:]
        out.map("Labels", labels, indent: 2)
        out.line("  Containers:")
        for c in o[path: ["spec", "template", "spec", "containers"]]?.arrayValue ?? [] {
            out.line("   \(c["name"]?.stringValue ?? ""):")
            container(c, status: nil, &out)
        }
        conditions(o, &out)
        if type == .deployments {
            let sets = try ownedReplicaSets(api, o)
            let newest = sets.last?.1
            let old = sets.dropLast().filter { ($0.1[path: ["spec", "replicas"]]?.intValue ?? 0) > 0 }.map { $0.1.name }
            out.field("OldReplicaSets", old.isEmpty ? "<none>" : old.joined(separator: ", "))
            out.field("NewReplicaSet", newest.map { "\($0.name) (\($0[path: ["status", "replicas"]]?.intValue ?? 0)/\($0[path: ["spec", "replicas"]]?.intValue ?? 0) replicas created)" } ?? "<none>")
        }
    }

    func describeService(_ o: JSONValue, _ api: APIClient, _ out: inout DescribeWriter) throws {
        let selector = (o[path: ["spec", "selector"]]?.stringMap ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        out.field("Selector", selector.isEmpty ? "<none>" : selector.joined(separator: ","))
        out.field("Type", o[path: ["spec", "type"]]?.stringValue ?? "ClusterIP")
        out.field("IP", o[path: ["spec", "clusterIP"]]?.stringValue ?? "<none>")
        for p in o[path: ["spec", "ports"]]?.arrayValue ?? [] {
            let name = p["name"]?.stringValue ?? "<unset>"
            out.field("Port", "\(name)  \(p["port"]?.intValue ?? 0)/\(p["protocol"]?.stringValue ?? "TCP")")
            out.field("TargetPort", "\(p["targetPort"].map(describeScalar) ?? "")/\(p["protocol"]?.stringValue ?? "TCP")")
            if let np = p["nodePort"]?.intValue { out.field("NodePort", "\(name)  \(np)/TCP") }
        }
        let ep = try api.request("GET", ResourceType.endpoints.path(namespace: o.namespace, name: o.name))
        if ep.ok, let e = try? ep.json() {
            out.field("Endpoints", ClientColumns.row(.endpoints, e, name: "", wide: false)[1])
        }
        out.field("Session Affinity", o[path: ["spec", "sessionAffinity"]]?.stringValue ?? "None")
    }

    func describeIngress(_ o: JSONValue, _ out: inout DescribeWriter) {
        out.field("Ingress Class", o[path: ["spec", "ingressClassName"]]?.stringValue ?? "<none>")
        let address = (o[path: ["status", "loadBalancer", "ingress"]]?.arrayValue ?? []).compactMap { $0["ip"]?.stringValue ?? $0["hostname"]?.stringValue }
        out.field("Address", address.joined(separator: ","))
        func backend(_ b: JSONValue?) -> String {
            guard let s = b?["service"] else { return "<default>" }
            let port = s[path: ["port", "number"]]?.intValue.map(String.init) ?? s[path: ["port", "name"]]?.stringValue ?? ""
            return "\(s["name"]?.stringValue ?? ""):\(port)"
        }
        if let d = o[path: ["spec", "defaultBackend"]] { out.field("Default backend", backend(d)) }
        for t in o[path: ["spec", "tls"]]?.arrayValue ?? [] {
            out.field("TLS", "\(t["secretName"]?.stringValue ?? "<none>") terminates \((t["hosts"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ","))")
        }
        out.line("Rules:")
        var rows = [["Host", "Path", "Backends"], ["----", "----", "--------"]]
        for r in o[path: ["spec", "rules"]]?.arrayValue ?? [] {
            let host = r["host"]?.stringValue ?? "*"
            for p in r[path: ["http", "paths"]]?.arrayValue ?? [] {
                rows.append([host, "\(p["path"]?.stringValue ?? "/") (\(p["pathType"]?.stringValue ?? "Prefix"))", backend(p["backend"])])
            }
        }
        out.block(formatTable(rows), indent: 2)
    }

    /// The object's events (involvedObject.name and kind), oldest first.
    func events(_ o: JSONValue, _ type: ResourceType, _ api: APIClient, _ out: inout DescribeWriter) throws {
        let list = try api.json("GET", ResourceType.events.path(namespace: o.namespace))
        let mine = (list["items"]?.arrayValue ?? []).filter { e in
            let io = e["involvedObject"]
            return io?["name"]?.stringValue == o.name && (io?["kind"]?.stringValue ?? type.kind) == type.kind
        }.sorted { (timestamp($0), Int($0.resourceVersion) ?? 0) < (timestamp($1), Int($1.resourceVersion) ?? 0) }
        guard !mine.isEmpty else { out.field("Events", "<none>"); return }
        out.line("Events:")
        var rows = [["Type", "Reason", "Age", "From", "Message"], ["----", "------", "----", "----", "-------"]]
        for e in mine {
            var age = ClientTime.age(timestamp(e))
            if let count = e["count"]?.intValue, count > 1, let first = e["firstTimestamp"]?.stringValue {
                age += " (x\(count) over \(ClientTime.age(first)))"
            }
            rows.append([e["type"]?.stringValue ?? "Normal", e["reason"]?.stringValue ?? "", age,
                         e[path: ["source", "component"]]?.stringValue ?? e["reportingComponent"]?.stringValue ?? "",
                         e["message"]?.stringValue ?? ""])
        }
        out.block(formatTable(rows), indent: 2)
    }

    func timestamp(_ e: JSONValue) -> String {
        e["lastTimestamp"]?.stringValue ?? e["eventTime"]?.stringValue ?? e[path: ["metadata", "creationTimestamp"]]?.stringValue ?? ""
    }
}

/// Accumulates kubectl-describe-style `Label:  value` lines.
struct DescribeWriter {
    var text = ""

    mutating func line(_ s: String) { text += s + "\n" }

    mutating func field(_ label: String, _ value: String, indent: Int = 0) {
        let pad = String(repeating: " ", count: indent)
        let head = pad + label + ":"
        text += head.padding(toLength: max(head.count + 2, 20), withPad: " ", startingAt: 0) + value + "\n"
    }

    mutating func map(_ label: String, _ m: [String: String], indent: Int = 0) {
        let entries = m.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        if entries.isEmpty { field(label, "<none>", indent: indent); return }
        field(label, entries[0], indent: indent)
        for e in entries.dropFirst() { text += String(repeating: " ", count: max(indent + label.count + 3, 20)) + e + "\n" }
    }

    mutating func block(_ s: String, indent: Int) {
        let pad = String(repeating: " ", count: indent)
        for l in s.split(separator: "\n", omittingEmptySubsequences: false).dropLast() { text += pad + l + "\n" }
    }
}
