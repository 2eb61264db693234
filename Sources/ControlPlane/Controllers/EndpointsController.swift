import Objects

/// Service selector → Endpoints (same name) and EndpointSlices (label
/// `kubernetes.io/service-name`) of the matching pods: ready ones as addresses, the others as
/// `notReadyAddresses` (`ready: false` in slices), target ports resolved per pod (a number, or
/// the name of one of its container ports). A pod the agent is terminating is left out, and
/// the agent's `beforeTerminate` hook syncs here first, so a pod leaves before it is signalled.
/// Services without a selector keep their user-managed Endpoints.
final class EndpointsController: Controller {
    let name = "endpoints"
    unowned let m: ControllerManager
    static let managedBy = "endpointslice.kubernetes.io/managed-by"
    static let managerName = "endpointslice-controller.k8s.io"
    static let endpointsManagedBy = "endpoints.kubernetes.io/managed-by"
    static let endpointsManager = "endpoint-controller"

    init(manager: ControllerManager) { m = manager }

    var store: Store { m.store }

    /// Called by the agent just before a pod's processes are signalled.
    func podTerminating(_ id: PodIdentity) {
        for svc in (try? store.list(.services, namespace: id.namespace).items) ?? [] where svc[path: ["spec", "selector"]] != nil {
            do { _ = try sync(namespace: id.namespace, name: svc.name) } catch { m.enqueue(name, id.namespace, svc.name) }
        }
    }

    private struct Member {
        var pod: JSONValue
        var ip: String
        var ready: Bool
        var ports: [JSONValue]
    }

    func sync(namespace: String, name: String) throws -> SyncResult {
        guard let svc = try? store.get(.services, namespace: namespace, name: name) else {
            if let ep = try? store.get(.endpoints, namespace: namespace, name: name), ep.labels[Self.endpointsManagedBy] == Self.endpointsManager {
                _ = try? store.delete(.endpoints, namespace: namespace, name: name)
            }
            for s in try managedSlices(namespace, name) { _ = try? store.delete(.endpointSlices, namespace: namespace, name: s.name) }
            return .done
        }
        guard let selectorMap = svc[path: ["spec", "selector"]]?.stringMap, !selectorMap.isEmpty,
              svc[path: ["spec", "type"]]?.stringValue != "ExternalName" else { return .done }
        let selector = LabelSelector(matchLabels: selectorMap)
        let headless = svc[path: ["spec", "clusterIP"]]?.stringValue == "None"
        let publishNotReady = svc[path: ["spec", "publishNotReadyAddresses"]] == .bool(true)
        let svcPorts = svc[path: ["spec", "ports"]]?.arrayValue ?? []

        var members: [Member] = []
        for pod in try store.list(.pods, namespace: namespace).items where selector.matches(pod.labels) {
            guard let ip = pod[path: ["status", "podIP"]]?.stringValue, !ip.isEmpty, !ObjectFields.isTerminal(pod) else { continue }
            if let rt = m.agent.pods[pod.uid], rt.terminating { continue }
            if m.pods.draining.contains(pod.uid) { continue }
            var ports: [JSONValue] = []
            var missing = false
            for sp in svcPorts {
                guard let port = resolve(sp["targetPort"] ?? sp["port"], in: pod) else { missing = true; break }
                var p: [String: JSONValue] = ["port": .int(port), "protocol": .string(sp["protocol"]?.stringValue ?? "TCP")]
                if let n = sp["name"]?.stringValue, !n.isEmpty { p["name"] = .string(n) }
                if let a = sp["appProtocol"]?.stringValue { p["appProtocol"] = .string(a) }
                ports.append(.object(p))
            }
            if missing { continue }
            if svcPorts.isEmpty && !headless { continue }
            members.append(Member(pod: pod, ip: ip, ready: publishNotReady || ObjectFields.isReady(pod), ports: ports))
        }
        members.sort { $0.ip.split(separator: ".").compactMap { Int($0) }.lexicographicallyPrecedes($1.ip.split(separator: ".").compactMap { Int($0) }) }

        // Pods with the same resolved ports share a subset (and a slice).
        var groups: [(ports: [JSONValue], members: [Member])] = []
        for mem in members {
            if let i = groups.firstIndex(where: { $0.ports == mem.ports }) { groups[i].members.append(mem) } else { groups.append((mem.ports, [mem])) }
        }
        try writeEndpoints(svc, groups: groups, headless: headless)
        try writeSlices(svc, groups: groups)
        return .done
    }

    /// A Service port's targetPort in a pod: a number as is, a name looked up in the pod's
    /// container ports.
    private func resolve(_ target: JSONValue?, in pod: JSONValue) -> Int? {
        guard let target else { return nil }
        if let n = target.intValue { return n }
        guard let s = target.stringValue else { return nil }
        if let n = Int(s) { return n }
        for c in pod[path: ["spec", "containers"]]?.arrayValue ?? [] {
            for p in c["ports"]?.arrayValue ?? [] where p["name"]?.stringValue == s {
                if let n = p["containerPort"]?.intValue { return n }
            }
        }
        return nil
    }

    private func hostname(_ pod: JSONValue, service: String) -> String? {
        guard let h = pod[path: ["spec", "hostname"]]?.stringValue, !h.isEmpty,
              pod[path: ["spec", "subdomain"]]?.stringValue == service else { return nil }
        return h
    }

    private func targetRef(_ pod: JSONValue) -> JSONValue {
        .object(["kind": .string("Pod"), "namespace": .string(pod.namespace), "name": .string(pod.name), "uid": .string(pod.uid)])
    }

    private func writeEndpoints(_ svc: JSONValue, groups: [(ports: [JSONValue], members: [Member])], headless: Bool) throws {
        var subsets: [JSONValue] = []
        for g in groups {
            func address(_ mem: Member) -> JSONValue {
                var a: [String: JSONValue] = ["ip": .string(mem.ip), "nodeName": .string(m.options.nodeName), "targetRef": targetRef(mem.pod)]
                if let h = hostname(mem.pod, service: svc.name) { a["hostname"] = .string(h) }
                return .object(a)
            }
            var subset: [String: JSONValue] = [:]
            let ready = g.members.filter(\.ready).map(address), notReady = g.members.filter { !$0.ready }.map(address)
            if !ready.isEmpty { subset["addresses"] = .array(ready) }
            if !notReady.isEmpty { subset["notReadyAddresses"] = .array(notReady) }
            if !g.ports.isEmpty { subset["ports"] = .array(g.ports) }
            subsets.append(.object(subset))
        }
        var labels = svc.labels
        labels[Self.endpointsManagedBy] = Self.endpointsManager
        if headless { labels["service.kubernetes.io/headless"] = "" }
        let ns = svc.namespace
        if var ep = try? store.get(.endpoints, namespace: ns, name: svc.name) {
            var want = ep
            want["subsets"] = subsets.isEmpty ? nil : .array(subsets)
            want[path: ["metadata", "labels"]] = labels.isEmpty ? nil : ObjectFields.json(labels)
            guard want != ep else { return }
            ep = want
            try store.update(.endpoints, ep)
        } else {
            var ep: JSONValue = .object(["metadata": .object(["name": .string(svc.name), "namespace": .string(ns)])])
            if !labels.isEmpty { ep[path: ["metadata", "labels"]] = ObjectFields.json(labels) }
            if !subsets.isEmpty { ep["subsets"] = .array(subsets) }
            try store.create(.endpoints, ep)
        }
    }

    private func managedSlices(_ namespace: String, _ service: String) throws -> [JSONValue] {
        try store.list(.endpointSlices, namespace: namespace,
                       labelSelector: "\(EndpointSlice.serviceNameLabel)=\(service),\(Self.managedBy)=\(Self.managerName)").items
    }

    private func writeSlices(_ svc: JSONValue, groups: [(ports: [JSONValue], members: [Member])]) throws {
        let ns = svc.namespace
        var existing = try managedSlices(ns, svc.name)
        var labels = svc.labels
        labels[EndpointSlice.serviceNameLabel] = svc.name
        labels[Self.managedBy] = Self.managerName
        if svc[path: ["spec", "clusterIP"]]?.stringValue == "None" { labels["service.kubernetes.io/headless"] = "" }
        // At least one slice, empty if need be, as Kubernetes keeps a placeholder.
        let wanted = groups.isEmpty ? [(ports: [JSONValue](), members: [Member]())] : groups
        for g in wanted {
            let endpoints: [JSONValue] = g.members.map { mem in
                var e: [String: JSONValue] = [
                    "addresses": .array([.string(mem.ip)]),
                    "conditions": .object(["ready": .bool(mem.ready), "serving": .bool(mem.ready), "terminating": .bool(false)]),
                    "targetRef": targetRef(mem.pod), "nodeName": .string(m.options.nodeName),
                ]
                if let h = hostname(mem.pod, service: svc.name) { e["hostname"] = .string(h) }
                return .object(e)
            }
            let ports: [JSONValue] = g.ports.map { p in
                var o = p
                o["appProtocol"] = p["appProtocol"]
                return o
            }
            var body: JSONValue = .object([:])
            body["addressType"] = .string("IPv4")
            body["endpoints"] = .array(endpoints)
            body["ports"] = .array(ports)
            if !existing.isEmpty {
                let old = existing.removeFirst()
                var s = old
                s["addressType"] = body["addressType"]; s["endpoints"] = body["endpoints"]; s["ports"] = body["ports"]
                s[path: ["metadata", "labels"]] = ObjectFields.json(labels)
                s[path: ["metadata", "ownerReferences"]] = .array([ObjectFields.ownerReference(svc)])
                if s != old { try store.update(.endpointSlices, s) }
            } else {
                var s = body
                s["metadata"] = .object([
                    "name": .string("\(svc.name)-\(ObjectFields.randomSuffix())"), "namespace": .string(ns),
                    "labels": ObjectFields.json(labels), "ownerReferences": .array([ObjectFields.ownerReference(svc)]),
                ])
                try store.create(.endpointSlices, s)
            }
        }
        for s in existing { _ = try? store.delete(.endpointSlices, namespace: ns, name: s.name) }
    }
}
