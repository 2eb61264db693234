import Foundation
import Objects
import Reactor
import Server

/// The Kubernetes REST API over a `Store`, on the project's own HTTP server: the paths, verbs,
/// subresources (`status`, `scale`), watch streams and discovery documents a real kubectl uses.
///
/// Runs on `loop` (call `init` on that loop's thread or before it runs); every request is
/// answered there, and watch events are posted to it from whichever thread wrote to the store.
/// Keep a reference to it for as long as it should serve.
public final class APIServer {
    public let store: Store
    let loop: EventLoop
    private var server: HTTPServer!
    let log = Log("api")

    /// Reads a pod container's log (`pods/{name}/log`): namespace, pod object, container (nil:
    /// the only one), previous instance. Nil when the log is not there. Set by the host, which
    /// knows where the node agent writes logs.
    public var podLog: ((_ namespace: String, _ pod: JSONValue, _ container: String?, _ previous: Bool) -> [UInt8]?)?

    /// The address actually bound (port 0 in `address` picks a free one).
    public var boundAddress: SocketAddress { server.boundAddress }

    public init(store: Store, loop: EventLoop, address: SocketAddress) throws {
        self.store = store
        self.loop = loop
        server = try HTTPServer(loop: loop, address: address, collectLimit: 8 << 20, name: "api") { [weak self] request in
            // The owner keeps the APIServer; once it is released the listener only answers 503.
            guard let self else { return .now(.text(503, "the API server has been released\n")) }
            return self.handle(request)
        }
    }

    /// Stops accepting connections.
    public func shutdown() { server.shutdown() }

    // MARK: Requests

    /// When set, every request must carry `Authorization: Bearer <token>` (compared in constant
    /// time); others get 401 in Kubernetes' Status format.
    public var bearerToken: [UInt8]?

    func handle(_ r: ServerRequest) -> ServerReply {
        if let token = bearerToken, !BearerToken.matches(r.header("authorization"), token) {
            return .now(Self.json(401, APIStatus.failure(StoreError(.unauthorized, "Unauthorized"))))
        }
        do {
            return try route(r)
        } catch let e as StoreError {
            return .now(Self.json(e.code, APIStatus.failure(e)))
        } catch {
            return .now(Self.json(500, APIStatus.failure(StoreError(.internalError, "\(error)"))))
        }
    }

    static func json(_ status: Int, _ value: JSONValue) -> ServerResponse {
        ServerResponse(status: status, headers: [("Content-Type", "application/json"), ("Cache-Control", "no-cache, private")],
                       body: .bytes(value.jsonBytes))
    }

    /// A parsed REST path: the kind, the namespace, the object name and the subresource.
    struct Target {
        var type: ResourceType
        var namespace: String?
        var name: String?
        var subresource: String?
    }

    func route(_ r: ServerRequest) throws -> ServerReply {
        let segments = r.path.split(separator: "/").map { Self.percentDecode(String($0)) }
        let query = Self.parseQuery(r.query)
        func get(_ v: JSONValue) throws -> ServerReply {
            guard r.method == "GET" || r.method == "HEAD" else { throw StoreError(.methodNotAllowed, "the server does not allow this method on the requested resource") }
            return .now(Self.json(200, v))
        }
        switch segments.count {
        case 0: return try get(.object(["paths": .array(["/api", "/api/v1", "/apis", "/version"].map { .string($0) })]))
        case 1 where segments[0] == "version": return try get(APIDiscovery.version())
        case 1 where segments[0] == "api": return try get(APIDiscovery.coreVersions(address: boundAddress.description))
        case 1 where segments[0] == "apis": return try get(APIDiscovery.groupList())
        case 1 where segments[0] == "healthz" || segments[0] == "readyz" || segments[0] == "livez":
            return .now(.text(200, "ok"))
        default: break
        }
        if segments[0] == "openapi", segments.count >= 2, segments[1] == "v3" {
            if segments.count == 2 { return try get(APIOpenAPI.index()) }
            let gv = segments.count == 4 && segments[2] == "api" ? ("", segments[3])
                : segments.count == 5 && segments[2] == "apis" ? (segments[3], segments[4]) : nil
            guard let (g, v) = gv, let doc = APIOpenAPI.document(group: g, version: v) else { throw notFound(r.path) }
            return try get(doc)
        }
        let group: String, version: String, rest: ArraySlice<String>
        if segments[0] == "api" {
            group = ""; version = segments[1]; rest = segments.dropFirst(2)
        } else if segments[0] == "apis", segments.count >= 2 {
            group = segments[1]
            if segments.count == 2 {
                guard let g = APIDiscovery.groups.first(where: { $0.name == group }) else { throw notFound(r.path) }
                return try get(APIDiscovery.group(name: g.name, version: g.version))
            }
            version = segments[2]; rest = segments.dropFirst(3)
        } else {
            throw notFound(r.path)
        }
        if rest.isEmpty {
            guard let list = APIDiscovery.resourceList(group: group, version: version) else { throw notFound(r.path) }
            return try get(list)
        }
        let parts = Array(rest)
        var target: Target
        func type(_ resource: String) throws -> ResourceType {
            guard let t = ResourceType.find(group: group, resource: resource), t.version == version else { throw notFound(r.path) }
            return t
        }
        if parts[0] == "namespaces" && parts.count >= 3 && !["status", "finalize"].contains(parts[2]) {
            let t = try type(parts[2])
            guard t.namespaced, parts.count <= 5 else { throw notFound(r.path) }
            target = Target(type: t, namespace: parts[1], name: parts.count > 3 ? parts[3] : nil, subresource: parts.count > 4 ? parts[4] : nil)
        } else {
            let t = try type(parts[0])
            guard parts.count <= 3 else { throw notFound(r.path) }
            target = Target(type: t, namespace: nil, name: parts.count > 1 ? parts[1] : nil, subresource: parts.count > 2 ? parts[2] : nil)
            if !t.namespaced && target.name != nil { target.namespace = "" }
            if t.namespaced && target.name != nil { throw notFound(r.path) }
        }
        if let s = target.subresource {
            guard (s == "status" && target.type.hasStatus) || (s == "scale" && target.type.hasScale)
                    || (s == "log" && target.type == .pods) else { throw notFound(r.path) }
        }
        return try serve(r, target, query)
    }

    func notFound(_ path: String) -> StoreError {
        StoreError(.notFound, "the server could not find the requested resource (\(path))")
    }

    func serve(_ r: ServerRequest, _ t: Target, _ query: [String: String]) throws -> ServerReply {
        let ns = t.namespace ?? ""
        // `dryRun=All` (kubectl diff, --dry-run=server): validate and answer, store nothing.
        let dryRun = !(query["dryRun"] ?? "").isEmpty
        guard let name = t.name else {
            switch r.method {
            case "GET":
                if let w = query["watch"], w == "1" || w == "true" {
                    return try watch(t, query, table: APITable.wantsTable(r.header("Accept")))
                }
                let (items, rv) = try store.list(t.type, namespace: t.namespace, labelSelector: nonEmpty(query["labelSelector"]),
                                                 fieldSelector: nonEmpty(query["fieldSelector"]))
                if APITable.wantsTable(r.header("Accept")) {
                    return .now(Self.json(200, APITable.table(t.type, items, resourceVersion: rv)))
                }
                return .now(Self.json(200, .object([
                    "kind": .string(t.type.kind + "List"), "apiVersion": .string(t.type.apiVersion),
                    "metadata": .object(["resourceVersion": .string(rv)]), "items": .array(items),
                ])))
            case "POST":
                return .now(Self.json(201, try store.create(t.type, try body(r), namespace: t.namespace, dryRun: dryRun)))
            default:
                throw StoreError(.methodNotAllowed, "the server does not allow this method on the requested resource")
            }
        }
        switch (r.method, t.subresource) {
        case ("GET", "log"):
            let pod = try store.get(.pods, namespace: ns, name: name)
            let container = nonEmpty(query["container"])
            let previous = query["previous"] == "true" || query["previous"] == "1"
            guard let bytes = podLog?(ns, pod, container, previous) else {
                let what = container.map { "container \"\($0)\" of pod \"\(name)\"" } ?? "pod \"\(name)\""
                throw StoreError(.badRequest, "\(previous ? "previous terminated " : "")log of \(what) is not available")
            }
            var out = bytes
            if let tail = query["tailLines"].flatMap(Int.init), tail >= 0 {
                let lines = out.split(separator: 10, omittingEmptySubsequences: false)
                let kept = lines.suffix(tail + (out.last == 10 ? 1 : 0))
                out = Array(kept.joined(separator: [10]))
            }
            return .now(ServerResponse(status: 200, headers: [("Content-Type", "text/plain")], body: .bytes(out)))
        case ("GET", nil), ("GET", "status"):
            let o = try store.get(t.type, namespace: ns, name: name)
            if t.subresource == nil && APITable.wantsTable(r.header("Accept")) {
                return .now(Self.json(200, APITable.table(t.type, [o], resourceVersion: o.resourceVersion)))
            }
            return .now(Self.json(200, o))
        case ("PUT", let sub):
            let o = try body(r)
            if !o.name.isEmpty && o.name != name {
                throw StoreError(.badRequest, "the name of the object (\(o.name)) does not match the name on the URL (\(name))")
            }
            var named = o
            named[path: ["metadata", "name"]] = .string(name)
            switch sub {
            case "status": return .now(Self.json(200, try store.updateStatus(t.type, named, namespace: t.namespace, dryRun: dryRun)))
            case "scale": return .now(Self.json(200, try setScale(t, name: name, scale: named, dryRun: dryRun)))
            default: return .now(Self.json(200, try store.update(t.type, named, namespace: t.namespace, dryRun: dryRun)))
            }
        case ("PATCH", let sub):
            let contentType = (r.header("Content-Type") ?? "").split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            guard let patchType = PatchType(rawValue: contentType) else {
                throw StoreError(.unsupportedMediaType,
                                 "the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json (server-side apply, application/apply-patch+yaml, and JSON patch are not supported by Portico: use kubectl apply without --server-side)")
            }
            let patch = try body(r)
            if sub == "scale" {
                let scale = try Self.patchScale(scale(t, name: name), patch, patchType)
                return .now(Self.json(200, try setScale(t, name: name, scale: scale, dryRun: dryRun)))
            }
            return .now(Self.json(200, try store.patch(t.type, namespace: ns, name: name, patch: patch, as: patchType,
                                                       status: sub == "status", dryRun: dryRun)))
        case ("GET", "scale"):
            return .now(Self.json(200, try scale(t, name: name)))
        case ("DELETE", nil):
            // DeleteOptions may come in the body or the query.
            let options = r.body.isEmpty ? JSONValue.object([:]) : ((try? JSONValue.parse(r.body)) ?? .object([:]))
            let policy = options["propagationPolicy"]?.stringValue ?? query["propagationPolicy"] ?? "Background"
            guard let propagation = policy == "Foreground" ? .background : Store.Propagation(rawValue: policy) else {
                throw StoreError(.badRequest, "unknown propagationPolicy \"\(policy)\": use Background, Foreground or Orphan")
            }
            let rv = options[path: ["preconditions", "resourceVersion"]]?.stringValue
            if dryRun || !(options["dryRun"]?.arrayValue ?? []).isEmpty {
                return .now(Self.json(200, try store.get(t.type, namespace: ns, name: name)))
            }
            return .now(Self.json(200, try store.delete(t.type, namespace: ns, name: name, propagation: propagation, resourceVersion: rv)))
        default:
            throw StoreError(.methodNotAllowed, "the server does not allow this method on the requested resource")
        }
    }

    func nonEmpty(_ s: String?) -> String? { (s?.isEmpty ?? true) ? nil : s }

    func body(_ r: ServerRequest) throws -> JSONValue {
        if r.body.isEmpty && r.bodyLength > 0 {
            throw StoreError(.badRequest, "the request body is too large or not sent with Content-Length")
        }
        if let type = r.header("Content-Type"), type.contains("protobuf") || type.contains("cbor") {
            if type.contains("protobuf"), let o = APIProtobuf.decode(r.body) { return o }
            throw StoreError(.unsupportedMediaType,
                             "the body of the request was in an unknown format - accepted media types include: application/json (Portico does not read \(type) bodies; `kubectl create <kind> …` generators other than namespace, configmap and secret send them: use `kubectl create -f` or `kubectl apply -f` with a manifest)")
        }
        do {
            return try JSONValue.parse(r.body)
        } catch {
            let type = r.header("Content-Type") ?? "none"
            throw StoreError(.badRequest, "the request body is not valid JSON (Content-Type \(type); only JSON bodies are accepted)")
        }
    }

    // MARK: Scale subresource (autoscaling/v1 Scale)

    func scale(_ t: Target, name: String) throws -> JSONValue {
        let o = try store.get(t.type, namespace: t.namespace ?? "", name: name)
        var meta: [String: JSONValue] = [:]
        for k in ["name", "namespace", "uid", "resourceVersion", "creationTimestamp"] { meta[k] = o[path: ["metadata", k]] }
        let selector = LabelSelector(matchLabels: o[path: ["spec", "selector", "matchLabels"]]?.stringMap ?? [:])
        let selectorText = selector.requirements.compactMap { r -> String? in
            if case .equals(let k, let v) = r { return "\(k)=\(v)" }
            return nil
        }.joined(separator: ",")
        return .object([
            "kind": .string("Scale"), "apiVersion": .string("autoscaling/v1"), "metadata": .object(meta),
            "spec": .object(["replicas": .int(o[path: ["spec", "replicas"]]?.intValue ?? 1)]),
            "status": .object(["replicas": .int(o[path: ["status", "replicas"]]?.intValue ?? 0), "selector": .string(selectorText)]),
        ])
    }

    static func patchScale(_ scale: JSONValue, _ patch: JSONValue, _ type: PatchType) throws -> JSONValue {
        switch type {
        case .merge: return Patch.merge(scale, patch)
        case .strategic: return try Patch.strategic(scale, patch) ?? scale
        }
    }

    func setScale(_ t: Target, name: String, scale: JSONValue, dryRun: Bool = false) throws -> JSONValue {
        guard let replicas = scale[path: ["spec", "replicas"]]?.intValue, replicas >= 0 else {
            throw StoreError.invalid(t.type, name, [StoreError.Cause(field: "spec.replicas", reason: "FieldValueInvalid", message: "Invalid value: must be a non-negative integer")])
        }
        var o = try store.get(t.type, namespace: t.namespace ?? "", name: name)
        let rv = scale.resourceVersion
        if !rv.isEmpty && rv != o.resourceVersion { throw StoreError.conflict(t.type, name) }
        o[path: ["spec", "replicas"]] = .int(replicas)
        if dryRun {
            var preview = try self.scale(t, name: name)
            preview[path: ["spec", "replicas"]] = .int(replicas)
            return preview
        }
        _ = try store.update(t.type, o)
        return try self.scale(t, name: name)
    }

    // MARK: Watch

    /// Streams `{"type":…,"object":…}` lines, one per event, until the client goes away. A
    /// resourceVersion older than the store's event window ends the stream with an ERROR event
    /// holding a 410 Expired Status, as Kubernetes' API server does.
    func watch(_ t: Target, _ query: [String: String], table: Bool) throws -> ServerReply {
        let labels = nonEmpty(query["labelSelector"]), fields = nonEmpty(query["fieldSelector"])
        _ = try labels.map(LabelSelector.init)
        _ = try fields.map(FieldSelector.init)
        let head = ServerResponse(status: 200, headers: [("Content-Type", "application/json"), ("Cache-Control", "no-cache, private")])
        let loop = self.loop
        let store = self.store
        return .stream(head) { stream in
            final class Box { var handle: WatchHandle?; var cancelled = false }
            let box = Box()
            stream.onClose = { box.cancelled = true; box.handle?.cancel(); box.handle = nil }
            do {
                let handle = try store.watch(t.type, namespace: t.namespace, labelSelector: labels, fieldSelector: fields,
                                             fromResourceVersion: query["resourceVersion"]) { event in
                    let object = table ? APITable.table(event.resource, [event.object], resourceVersion: event.object.resourceVersion) : event.object
                    let line = JSONValue.object(["type": .string(event.type.rawValue), "object": object]).jsonBytes + [0x0A]
                    loop.execute { stream.write(line) }
                }
                if box.cancelled { handle.cancel() } else { box.handle = handle }
            } catch let e as StoreError {
                stream.write(JSONValue.object(["type": .string("ERROR"), "object": APIStatus.failure(e)]).jsonBytes + [0x0A])
                stream.finish()
            } catch {
                stream.finish()
            }
        }
    }

    // MARK: Query strings

    static func parseQuery(_ q: String) -> [String: String] {
        var result: [String: String] = [:]
        for pair in q.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let k = percentDecode(String(kv[0]), plus: true)
            result[k] = kv.count > 1 ? percentDecode(String(kv[1]), plus: true) : ""
        }
        return result
    }

    static func percentDecode(_ s: String, plus: Bool = false) -> String {
        guard s.contains("%") || (plus && s.contains("+")) else { return s }
        var bytes: [UInt8] = []
        let u = Array(s.utf8)
        var i = 0
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x41...0x46: return c - 0x37
            case 0x61...0x66: return c - 0x57
            default: return nil
            }
        }
        while i < u.count {
            if u[i] == UInt8(ascii: "%"), i + 2 < u.count, let h = hex(u[i + 1]), let l = hex(u[i + 2]) {
                bytes.append(h << 4 | l); i += 3
            } else {
                bytes.append(plus && u[i] == UInt8(ascii: "+") ? 0x20 : u[i]); i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// `Authorization: Bearer` checking shared by the API and admin listeners.
public enum BearerToken {
    /// Whether `header` is `Bearer <token>`, compared without an early exit on the first
    /// differing byte (the time taken does not depend on how much of a guess was right).
    public static func matches(_ header: String?, _ token: [UInt8]) -> Bool {
        guard let header, header.count > 7, header.prefix(7).lowercased() == "bearer " else { return false }
        let given = Array(header.dropFirst(7).utf8)
        var diff = UInt8(given.count == token.count ? 0 : 1)
        for i in 0..<token.count { diff |= token[i] ^ (i < given.count ? given[i] : 0) }
        return diff == 0
    }
}
