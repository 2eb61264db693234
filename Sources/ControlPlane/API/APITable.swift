import Foundation
import Objects

/// `meta.k8s.io/v1` Table responses, which `kubectl get` asks for (`Accept: …;as=Table`) to
/// print the columns a real API server's printers give (READY, STATUS, CLUSTER-IP, …). The same
/// columns serve `portico get` (`printed`), so both clients show one table.
public enum APITable {
    struct Column {
        var name: String
        var type: String = "string"
        var format: String = ""
        var priority: Int = 0
        var value: (JSONValue) -> JSONValue
    }

    static func wantsTable(_ accept: String?) -> Bool {
        guard let a = accept else { return false }
        return a.contains("as=Table")
    }

    static func table(_ type: ResourceType, _ items: [JSONValue], resourceVersion: String, now: Date = Date()) -> JSONValue {
        let cols = columns(type, now: now)
        let defs: [JSONValue] = cols.map {
            .object(["name": .string($0.name), "type": .string($0.type), "format": .string($0.format),
                     "description": .string(""), "priority": .int($0.priority)])
        }
        let rows: [JSONValue] = items.map { o in
            .object(["cells": .array(cols.map { $0.value(o) }), "object": o])
        }
        return .object(["kind": .string("Table"), "apiVersion": .string("meta.k8s.io/v1"),
                        "metadata": .object(["resourceVersion": .string(resourceVersion)]),
                        "columnDefinitions": .array(defs), "rows": .array(rows)])
    }

    /// The table as text cells: kubectl's upper-case headers, the priority-0 columns (all with
    /// `wide`), `<none>` for a missing value.
    public static func printed(_ type: ResourceType, _ items: [JSONValue], wide: Bool, now: Date = Date()) -> (headers: [String], rows: [[String]]) {
        let cols = columns(type, now: now).filter { wide || $0.priority == 0 }
        func text(_ v: JSONValue) -> String {
            switch v {
            case .string(let s): return s
            case .int(let n): return String(n)
            case .bool(let b): return b ? "true" : "false"
            case .null: return "<none>"
            default: return v.jsonString
            }
        }
        return (cols.map { $0.name.uppercased() }, items.map { o in cols.map { text($0.value(o)) } })
    }

    /// kubectl's STATUS of a pod: Terminating, else the last container's waiting reason or
    /// terminated reason (`ExitCode:N` without one), else the pod's reason or phase.
    public static func podStatus(_ o: JSONValue) -> String {
        if o[path: ["metadata", "deletionTimestamp"]] != nil { return "Terminating" }
        var status = str(o, ["status", "reason"], str(o, ["status", "phase"], "Pending"))
        for c in o[path: ["status", "containerStatuses"]]?.arrayValue ?? [] {
            if let r = c[path: ["state", "waiting", "reason"]]?.stringValue, !r.isEmpty {
                status = r
            } else if let t = c[path: ["state", "terminated"]], t != .null {
                status = t["reason"]?.stringValue ?? "ExitCode:\(t["exitCode"]?.intValue ?? 0)"
            }
        }
        return status
    }

    static func s(_ v: String) -> JSONValue { .string(v) }
    static func i(_ v: Int) -> JSONValue { .int(v) }
    static func int(_ o: JSONValue, _ path: [String]) -> Int { o[path: path]?.intValue ?? 0 }
    static func str(_ o: JSONValue, _ path: [String], _ missing: String = "<none>") -> String {
        let v = o[path: path]?.stringValue ?? ""
        return v.isEmpty ? missing : v
    }

    static func columns(_ type: ResourceType, now: Date) -> [Column] {
        let name = Column(name: "Name", format: "name") { s($0.name) }
        let ageColumn = Column(name: "Age") { s(age($0[path: ["metadata", "creationTimestamp"]]?.stringValue, now: now)) }
        switch type {
        case .pods:
            return [name,
                    Column(name: "Ready") { o in
                        let statuses = o[path: ["status", "containerStatuses"]]?.arrayValue ?? []
                        let total = o[path: ["spec", "containers"]]?.arrayValue?.count ?? 0
                        return s("\(statuses.filter { $0["ready"] == .bool(true) }.count)/\(total)")
                    },
                    Column(name: "Status") { s(podStatus($0)) },
                    Column(name: "Restarts", type: "integer") { o in
                        i((o[path: ["status", "containerStatuses"]]?.arrayValue ?? []).reduce(0) { $0 + ($1["restartCount"]?.intValue ?? 0) })
                    },
                    ageColumn,
                    Column(name: "IP", priority: 1) { s(str($0, ["status", "podIP"])) },
                    Column(name: "Node", priority: 1) { s(str($0, ["spec", "nodeName"])) }]
        case .deployments:
            return [name,
                    Column(name: "Ready") { s("\(int($0, ["status", "readyReplicas"]))/\(int($0, ["spec", "replicas"]))") },
                    Column(name: "Up-to-date", type: "integer") { i(int($0, ["status", "updatedReplicas"])) },
                    Column(name: "Available", type: "integer") { i(int($0, ["status", "availableReplicas"])) },
                    ageColumn,
                    Column(name: "Containers", priority: 1) { s(containerField($0, "name")) },
                    Column(name: "Images", priority: 1) { s(containerField($0, "image")) },
                    Column(name: "Selector", priority: 1) { s(selector($0)) }]
        case .replicaSets:
            return [name,
                    Column(name: "Desired", type: "integer") { i(int($0, ["spec", "replicas"])) },
                    Column(name: "Current", type: "integer") { i(int($0, ["status", "replicas"])) },
                    Column(name: "Ready", type: "integer") { i(int($0, ["status", "readyReplicas"])) },
                    ageColumn,
                    Column(name: "Containers", priority: 1) { s(containerField($0, "name")) },
                    Column(name: "Images", priority: 1) { s(containerField($0, "image")) },
                    Column(name: "Selector", priority: 1) { s(selector($0)) }]
        case .statefulSets:
            return [name,
                    Column(name: "Ready") { s("\(int($0, ["status", "readyReplicas"]))/\(int($0, ["spec", "replicas"]))") },
                    ageColumn,
                    Column(name: "Containers", priority: 1) { s(containerField($0, "name")) },
                    Column(name: "Images", priority: 1) { s(containerField($0, "image")) }]
        case .services:
            return [name,
                    Column(name: "Type") { s(str($0, ["spec", "type"], "ClusterIP")) },
                    Column(name: "Cluster-IP") { s(str($0, ["spec", "clusterIP"])) },
                    Column(name: "External-IP") { o in
                        let ips = (o[path: ["status", "loadBalancer", "ingress"]]?.arrayValue ?? []).compactMap { $0["ip"]?.stringValue }
                        return s(ips.isEmpty ? "<none>" : ips.joined(separator: ","))
                    },
                    Column(name: "Port(s)") { o in
                        let ports = (o[path: ["spec", "ports"]]?.arrayValue ?? []).map { p -> String in
                            let port = p["port"]?.intValue ?? 0
                            let node = p["nodePort"]?.intValue.map { ":\($0)" } ?? ""
                            return "\(port)\(node)/\(p["protocol"]?.stringValue ?? "TCP")"
                        }
                        return s(ports.isEmpty ? "<none>" : ports.joined(separator: ","))
                    },
                    ageColumn,
                    Column(name: "Selector", priority: 1) { o in
                        let m = o[path: ["spec", "selector"]]?.stringMap ?? [:]
                        return s(m.isEmpty ? "<none>" : m.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","))
                    }]
        case .endpoints:
            return [name,
                    Column(name: "Endpoints") { o in
                        var list: [String] = []
                        for subset in o["subsets"]?.arrayValue ?? [] {
                            let ports = (subset["ports"]?.arrayValue ?? []).compactMap { $0["port"]?.intValue }
                            for a in subset["addresses"]?.arrayValue ?? [] {
                                let ip = a["ip"]?.stringValue ?? ""
                                if ports.isEmpty { list.append(ip) } else { list += ports.map { "\(ip):\($0)" } }
                            }
                        }
                        let shown = list.prefix(3).joined(separator: ",")
                        return s(list.isEmpty ? "<none>" : list.count > 3 ? shown + " + \(list.count - 3) more..." : shown)
                    },
                    ageColumn]
        case .ingresses:
            return [name,
                    Column(name: "Class") { s(str($0, ["spec", "ingressClassName"])) },
                    Column(name: "Hosts") { o in
                        let hosts = (o[path: ["spec", "rules"]]?.arrayValue ?? []).map { $0["host"]?.stringValue ?? "*" }
                        return s(hosts.isEmpty ? "*" : hosts.joined(separator: ","))
                    },
                    Column(name: "Address") { o in
                        let a = (o[path: ["status", "loadBalancer", "ingress"]]?.arrayValue ?? []).compactMap { $0["ip"]?.stringValue ?? $0["hostname"]?.stringValue }
                        return s(a.joined(separator: ","))
                    },
                    Column(name: "Ports") { s(($0[path: ["spec", "tls"]]?.arrayValue ?? []).isEmpty ? "80" : "80, 443") },
                    ageColumn]
        case .configMaps:
            return [name, Column(name: "Data", type: "integer") { i(($0["data"]?.objectValue?.count ?? 0) + ($0["binaryData"]?.objectValue?.count ?? 0)) }, ageColumn]
        case .secrets:
            return [name, Column(name: "Type") { s(str($0, ["type"], "Opaque")) },
                    Column(name: "Data", type: "integer") { i($0["data"]?.objectValue?.count ?? 0) }, ageColumn]
        case .namespaces:
            return [name, Column(name: "Status") { s(str($0, ["status", "phase"], "Active")) }, ageColumn]
        case .events:
            return [Column(name: "Last Seen") { o in
                        s(age(o["lastTimestamp"]?.stringValue ?? o["eventTime"]?.stringValue ?? o[path: ["metadata", "creationTimestamp"]]?.stringValue, now: now))
                    },
                    Column(name: "Type") { s(str($0, ["type"], "")) },
                    Column(name: "Reason") { s(str($0, ["reason"], "")) },
                    Column(name: "Object") { o in
                        s("\(str(o, ["involvedObject", "kind"], "").lowercased())/\(str(o, ["involvedObject", "name"], ""))")
                    },
                    Column(name: "Message") { s(str($0, ["message"], "")) },
                    Column(name: "Name", format: "name", priority: 1) { s($0.name) }]
        case .persistentVolumeClaims:
            return [name,
                    Column(name: "Status") { o in
                        s(o[path: ["metadata", "deletionTimestamp"]] != nil ? "Terminating" : str(o, ["status", "phase"], "Pending"))
                    },
                    Column(name: "Volume") { s(str($0, ["spec", "volumeName"], "")) },
                    Column(name: "Capacity") { s(StorageValidation.quantityText($0[path: ["status", "capacity", "storage"]])) },
                    Column(name: "Access Modes") { o in
                        s((o[path: ["status", "accessModes"]]?.arrayValue ?? []).compactMap(\.stringValue).map(accessMode).joined(separator: ","))
                    },
                    Column(name: "StorageClass") { s(str($0, ["spec", "storageClassName"], "")) },
                    ageColumn,
                    Column(name: "VolumeMode", priority: 1) { s(str($0, ["spec", "volumeMode"], "Filesystem")) }]
        case .persistentVolumes:
            return [name,
                    Column(name: "Capacity") { s(StorageValidation.quantityText($0[path: ["spec", "capacity", "storage"]])) },
                    Column(name: "Access Modes") { o in
                        s((o[path: ["spec", "accessModes"]]?.arrayValue ?? []).compactMap(\.stringValue).map(accessMode).joined(separator: ","))
                    },
                    Column(name: "Reclaim Policy") { s(str($0, ["spec", "persistentVolumeReclaimPolicy"], "Retain")) },
                    Column(name: "Status") { o in
                        s(o[path: ["metadata", "deletionTimestamp"]] != nil ? "Terminating" : str(o, ["status", "phase"], "Pending"))
                    },
                    Column(name: "Claim") { o in
                        let ns = str(o, ["spec", "claimRef", "namespace"], ""), n = str(o, ["spec", "claimRef", "name"], "")
                        return s(n.isEmpty ? "" : "\(ns)/\(n)")
                    },
                    Column(name: "StorageClass") { s(str($0, ["spec", "storageClassName"], "")) },
                    Column(name: "Reason") { s(str($0, ["status", "reason"], "")) },
                    ageColumn,
                    Column(name: "VolumeMode", priority: 1) { s(str($0, ["spec", "volumeMode"], "Filesystem")) }]
        case .storageClasses:
            return [Column(name: "Name", format: "name") { o in
                        s(o[path: ["metadata", "annotations", "storageclass.kubernetes.io/is-default-class"]]?.stringValue == "true" ? "\(o.name) (default)" : o.name)
                    },
                    Column(name: "Provisioner") { s(str($0, ["provisioner"], "")) },
                    Column(name: "ReclaimPolicy") { s(str($0, ["reclaimPolicy"], "Delete")) },
                    Column(name: "VolumeBindingMode") { s(str($0, ["volumeBindingMode"], "Immediate")) },
                    Column(name: "AllowVolumeExpansion", type: "boolean") { .bool($0["allowVolumeExpansion"] == .bool(true)) },
                    ageColumn]
        case .endpointSlices:
            return [name,
                    Column(name: "AddressType") { s(str($0, ["addressType"], "")) },
                    Column(name: "Ports") { o in
                        let p = (o["ports"]?.arrayValue ?? []).compactMap { $0["port"]?.intValue }.map(String.init)
                        return s(p.isEmpty ? "<unset>" : p.joined(separator: ","))
                    },
                    Column(name: "Endpoints") { o in
                        let a = (o["endpoints"]?.arrayValue ?? []).flatMap { ($0["addresses"]?.arrayValue ?? []).compactMap(\.stringValue) }
                        return s(a.isEmpty ? "<unset>" : a.prefix(3).joined(separator: ",") + (a.count > 3 ? " + \(a.count - 3) more..." : ""))
                    },
                    ageColumn]
        default:
            return [name, ageColumn]
        }
    }

    static func accessMode(_ m: String) -> String {
        ["ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"][m] ?? m
    }

    static func containerField(_ o: JSONValue, _ field: String) -> String {
        (o[path: ["spec", "template", "spec", "containers"]]?.arrayValue ?? []).compactMap { $0[field]?.stringValue }.joined(separator: ",")
    }

    static func selector(_ o: JSONValue) -> String {
        let m = o[path: ["spec", "selector", "matchLabels"]]?.stringMap ?? [:]
        return m.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }

    /// Kubernetes' short human durations (`45s`, `3m12s`, `5h`, `2d3h`).
    static func age(_ timestamp: String?, now: Date) -> String {
        guard let t = timestamp, let date = ISO8601DateFormatter().date(from: t) else { return "<unknown>" }
        let sec = max(0, Int(now.timeIntervalSince(date)))
        let min = sec / 60, hours = sec / 3600, days = sec / 86400
        if sec < 120 { return "\(sec)s" }
        if min < 10 { return sec % 60 == 0 ? "\(min)m" : "\(min)m\(sec % 60)s" }
        if min < 180 { return "\(min)m" }
        if hours < 8 { return min % 60 == 0 ? "\(hours)h" : "\(hours)h\(min % 60)m" }
        if hours < 48 { return "\(hours)h" }
        if hours < 24 * 8 { return hours % 24 == 0 ? "\(days)d" : "\(days)d\(hours % 24)h" }
        if days < 365 * 2 { return "\(days)d" }
        return "\(days / 365)y"
    }
}
