import Foundation
import Objects

/// Gives Services their addresses, as Kubernetes' API server does at create: a ClusterIP from
/// 127.2.0.0/16 when `clusterIP` is empty (not for headless `None` or ExternalName), and a
/// nodePort in 30000–32767 for each port of a NodePort or LoadBalancer Service. The values are
/// written into the Service, so they survive restarts; the proxy binds them.
final class ServiceController: Controller {
    let name = "service"
    unowned let m: ControllerManager

    init(manager: ControllerManager) { m = manager }

    func sync(namespace: String, name: String) throws -> SyncResult {
        guard let svc = try? m.store.get(.services, namespace: namespace, name: name) else { return .done }
        guard let filled = Self.allocate(svc, store: m.store, options: m.options) else {
            m.event(svc, "Warning", "AddressNotAllocated", "no free ClusterIP or nodePort left", component: "service-controller")
            return .done
        }
        let stored = filled != svc ? try m.store.update(.services, filled) : svc
        // A LoadBalancer Service is reachable where the proxy listens.
        if stored[path: ["spec", "type"]]?.stringValue == "LoadBalancer" {
            let want: JSONValue = .object(["ingress": .array([.object(["ip": .string(m.options.ingressAddress)])])])
            if stored[path: ["status", "loadBalancer"]] != want {
                var o = stored
                o[path: ["status", "loadBalancer"]] = want
                try m.store.updateStatus(.services, o)
            }
        }
        return .done
    }

    /// The Service with its empty `clusterIP` and missing `nodePort`s filled in from what the
    /// store's other Services leave free; nil when a range is exhausted.
    static func allocate(_ service: JSONValue, store: Store, options: ControllerOptions) -> JSONValue? {
        var svc = service
        let type = svc[path: ["spec", "type"]]?.stringValue ?? "ClusterIP"
        guard type != "ExternalName" else { return svc }
        let all = ((try? store.list(.services).items) ?? []).filter { $0.namespace != svc.namespace || $0.name != svc.name }
        let ip = svc[path: ["spec", "clusterIP"]]?.stringValue ?? ""
        if ip.isEmpty {
            let used = Set(all.compactMap { $0[path: ["spec", "clusterIP"]]?.stringValue })
            guard let fresh = freeClusterIP(used, prefix: options.clusterIPPrefix) else { return nil }
            svc[path: ["spec", "clusterIP"]] = .string(fresh)
            svc[path: ["spec", "clusterIPs"]] = .array([.string(fresh)])
        } else if ip != "None", svc[path: ["spec", "clusterIPs"]] == nil {
            svc[path: ["spec", "clusterIPs"]] = .array([.string(ip)])
        }
        if type == "NodePort" || type == "LoadBalancer", var ports = svc[path: ["spec", "ports"]]?.arrayValue {
            var used = Set(all.flatMap { ($0[path: ["spec", "ports"]]?.arrayValue ?? []).compactMap { $0["nodePort"]?.intValue } })
            used.formUnion(ports.compactMap { $0["nodePort"]?.intValue })
            for i in ports.indices where ports[i]["nodePort"]?.intValue == nil {
                guard let p = options.nodePortRange.first(where: { !used.contains($0) }) else { return nil }
                used.insert(p)
                ports[i]["nodePort"] = .int(p)
            }
            svc[path: ["spec", "ports"]] = .array(ports)
        }
        return svc
    }

    private static func freeClusterIP(_ used: Set<String>, prefix: String) -> String? {
        for n in 1..<(1 << 16) - 1 where n & 0xff != 0 && n & 0xff != 0xff {
            let ip = "\(prefix).\(n >> 8).\(n & 0xff)"
            if !used.contains(ip) { return ip }
        }
        return nil
    }

    /// Kubernetes' service variables for a container starting now: for each Service of the
    /// pod's namespace that has a ClusterIP, `<NAME>_SERVICE_HOST`, `_SERVICE_PORT`,
    /// `_SERVICE_PORT_<PORT>` and the Docker-link `<NAME>_PORT…` set.
    func environment(for pod: Pod) -> [(name: String, value: String)] {
        var out: [(name: String, value: String)] = []
        let stored = try? m.store.get(.pods, namespace: pod.metadata.namespace, name: pod.metadata.name ?? "")
        if stored?[path: ["spec", "enableServiceLinks"]] == .bool(false) { return out }
        for svc in (try? m.store.list(.services, namespace: pod.metadata.namespace).items) ?? [] {
            guard let ip = svc[path: ["spec", "clusterIP"]]?.stringValue, !ip.isEmpty, ip != "None",
                  svc[path: ["spec", "type"]]?.stringValue != "ExternalName" else { continue }
            let prefix = Self.envName(svc.name)
            let ports = svc[path: ["spec", "ports"]]?.arrayValue ?? []
            out.append(("\(prefix)_SERVICE_HOST", ip))
            guard let first = ports.first, let p0 = first["port"]?.intValue else { continue }
            out.append(("\(prefix)_SERVICE_PORT", String(p0)))
            for p in ports {
                if let n = p["name"]?.stringValue, !n.isEmpty, let port = p["port"]?.intValue {
                    out.append(("\(prefix)_SERVICE_PORT_\(Self.envName(n))", String(port)))
                }
            }
            let proto0 = (first["protocol"]?.stringValue ?? "TCP").lowercased()
            out.append(("\(prefix)_PORT", "\(proto0)://\(ip):\(p0)"))
            for p in ports {
                guard let port = p["port"]?.intValue else { continue }
                let proto = p["protocol"]?.stringValue ?? "TCP"
                let base = "\(prefix)_PORT_\(port)_\(proto.uppercased())"
                out.append((base, "\(proto.lowercased())://\(ip):\(port)"))
                out.append(("\(base)_PROTO", proto.lowercased()))
                out.append(("\(base)_PORT", String(port)))
                out.append(("\(base)_ADDR", ip))
            }
        }
        return out
    }

    static func envName(_ s: String) -> String { s.uppercased().replacingOccurrences(of: "-", with: "_") }
}
