import Dataplane
import Foundation
import Objects
import Reactor
import TLS

public struct CompileOptions: Sendable {
    /// Ingresses of this class are served (and those without any class).
    public var ingressClass: String = "portico"
    public var generation: UInt64

    public init(ingressClass: String = "portico", generation: UInt64) {
        self.ingressClass = ingressClass
        self.generation = generation
    }
}

/// Something the compiler could not honour, naming the object and field.
public struct CompileProblem: Sendable, Equatable, CustomStringConvertible {
    /// `Ingress default/web`.
    public var object: String
    public var field: String
    public var message: String

    public init(object: String, field: String, message: String) {
        self.object = object; self.field = field; self.message = message
    }

    /// `Ingress default/web: spec.rules[0].http.paths[0].backend.service.name: Service default/api not found`
    public var description: String {
        field.isEmpty ? "\(object): \(message)" : "\(object): \(field): \(message)"
    }
}

/// Compiles Ingresses, Services, Endpoints and EndpointSlices into the data plane's `RouteTable`.
public enum RouteCompiler {
    public static let annotationPrefix = "portico.io/"
    public static let loadBalanceAnnotation = "portico.io/load-balance"
    public static let affinityAnnotation = "portico.io/affinity"
    public static let cookieNameAnnotation = "portico.io/session-cookie-name"
    public static let cookieMaxAgeAnnotation = "portico.io/session-cookie-max-age"
    public static let legacyClassAnnotation = "kubernetes.io/ingress.class"
    public static let defaultCookieName = "PORTICO_AFFINITY"
    public static let sslRedirectAnnotation = "portico.io/ssl-redirect"
    public static let hstsAnnotation = "portico.io/hsts"
    public static let hstsMaxAgeAnnotation = "portico.io/hsts-max-age"
    public static let hstsIncludeSubdomainsAnnotation = "portico.io/hsts-include-subdomains"
    public static let defaultHSTSMaxAge = 31_536_000
    public static let backendProtocolAnnotation = "portico.io/backend-protocol"
    public static let proxySSLVerifyAnnotation = "portico.io/proxy-ssl-verify"
    public static let proxySSLSecretAnnotation = "portico.io/proxy-ssl-secret"
    public static let proxySSLNameAnnotation = "portico.io/proxy-ssl-name"

    public static func compile(_ objects: [KubeObject], options: CompileOptions) -> (table: RouteTable, problems: [CompileProblem]) {
        var compiler = Compilation(objects: objects, options: options)
        compiler.run()
        compiler.compileServiceAddresses()
        let table = RouteTable(generation: options.generation, backends: compiler.backends,
                               ingresses: compiler.ingressNames, rules: compiler.rules,
                               defaultMatch: compiler.defaultMatch, certificates: compiler.certificates,
                               tlsHosts: compiler.tlsHosts, tcpServices: compiler.tcpServices)
        for rule in table.shadowedRules {
            let loser = compiler.ingressNames[Int(rule.match.ingress)]
            let winnerName = table.rules.first {
                $0.host?.lowercased() == rule.host?.lowercased() && $0.pathType == rule.pathType
                    && ($0.path == rule.path || ($0.pathType == .prefix && trimSlash($0.path) == trimSlash(rule.path)))
            }.map { compiler.ingressNames[Int($0.match.ingress)] }
            let winner = winnerName == loser ? "an earlier path of the same Ingress"
                : "Ingress \(winnerName ?? "?"), which is older"
            compiler.problems.append(CompileProblem(object: "Ingress \(loser)", field: compiler.ruleFields[rule.order] ?? "spec.rules",
                message: "host \(rule.host ?? "*") path \(rule.path) (\(rule.pathType.rawValue)) is already routed by \(winner); this path is ignored"))
        }
        return (table, compiler.problems)
    }

    static func trimSlash(_ s: String) -> Substring {
        var t = Substring(s)
        while t.hasSuffix("/") { t = t.dropLast() }
        return t
    }

    /// Whether an Ingress belongs to this controller: `spec.ingressClassName`, else the legacy
    /// `kubernetes.io/ingress.class` annotation, must name `ingressClass`; with neither, it does.
    public static func serves(_ ingress: Ingress, ingressClass: String) -> Bool {
        if let name = ingress.spec?.ingressClassName, !name.isEmpty { return name == ingressClass }
        if let legacy = ingress.metadata.annotations?[legacyClassAnnotation], !legacy.isEmpty {
            return legacy == ingressClass
        }
        return true
    }
}

/// The state of one compilation.
struct Compilation {
    let options: CompileOptions
    var ingresses: [Ingress] = []
    var services: [String: Service] = [:]
    var endpoints: [String: Endpoints] = [:]
    var slices: [String: [EndpointSlice]] = [:]
    var secrets: [String: Secret] = [:]

    var backends: [Backend] = []
    var backendIndex: [BackendKey: Int32] = [:]
    var ingressNames: [String] = []
    var rules: [RouteRule] = []
    /// RouteRule.order → the field path of the Ingress path it came from, for messages.
    var ruleFields: [Int: String] = [:]
    var defaultMatch = RouteMatch.notFound
    var problems: [CompileProblem] = []
    /// One per referenced TLS Secret, hosts merged, in the order first referenced (oldest Ingress first).
    var certificates: [CertificateSource] = []
    var certificateIndex: [String: Int] = [:]
    var tlsHosts: [HostTLSRule] = []

    struct BackendKey: Hashable {
        var namespace: String, service: String, port: String, policy: BalancePolicy, affinity: Affinity
        var upstreamTLS: UpstreamTLS?
    }

    init(objects: [KubeObject], options: CompileOptions) {
        self.options = options
        for object in objects {
            switch object {
            case .ingress(let i): ingresses.append(i)
            case .service(let s): services[s.metadata.key] = s
            case .endpoints(let e): endpoints[e.metadata.key] = e
            case .secret(let s): secrets[s.metadata.key] = s
            case .endpointSlice(let s):
                if let service = s.serviceName { slices["\(s.metadata.namespace)/\(service)", default: []].append(s) }
            default: break
            }
        }
        for key in slices.keys { slices[key]!.sort { ($0.metadata.name ?? "") < ($1.metadata.name ?? "") } }
    }

    mutating func run() {
        let served = ingresses.filter { RouteCompiler.serves($0, ingressClass: options.ingressClass) }
        // Oldest first: creationTimestamp (missing sorts last), then namespace/name.
        let ordered = served.map { ($0, Compilation.timestamp($0.metadata.creationTimestamp)) }.sorted { a, b in
            if a.1 != b.1 { return a.1 < b.1 }
            return a.0.metadata.key < b.0.metadata.key
        }.map(\.0)
        var seen = Set<String>()
        for ingress in ordered {
            let key = ingress.metadata.key
            if !seen.insert(key).inserted {
                problems.append(CompileProblem(object: "Ingress \(key)", field: "metadata.name",
                                               message: "duplicate Ingress; only the first one is used"))
                continue
            }
            compile(ingress, index: Int32(ingressNames.count))
            ingressNames.append(key)
        }
    }

    static func timestamp(_ text: String?) -> Double {
        guard let text else { return .infinity }
        let f = ISO8601DateFormatter()
        if let d = f.date(from: text) { return d.timeIntervalSince1970 }
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = f.date(from: text) { return d.timeIntervalSince1970 }
        return .infinity
    }

    private mutating func compile(_ ingress: Ingress, index: Int32) {
        let object = "Ingress \(ingress.metadata.key)"
        let (policy, cookie) = annotations(ingress, object: object)
        let upstreamTLS = upstreamTLSAnnotations(ingress, object: object)
        let namespace = ingress.metadata.namespace
        guard let spec = ingress.spec else { return }
        compileTLS(ingress, object: object)
        let base = Int(index) << 32

        if let b = spec.defaultBackend {
            if let backend = resolve(b, namespace: namespace, field: "spec.defaultBackend", object: object,
                                     policy: policy, cookie: cookie, upstreamTLS: upstreamTLS),
               !defaultMatch.isFound {
                defaultMatch = RouteMatch(backend: backend, ingress: index)
            }
        }
        var order = 0
        for (i, rule) in (spec.rules ?? []).enumerated() {
            let host = (rule.host?.isEmpty ?? true) ? nil : rule.host
            for (j, path) in (rule.http?.paths ?? []).enumerated() {
                let field = "spec.rules[\(i)].http.paths[\(j)]"
                let type: RouteRule.PathType
                switch path.type {
                case .exact?: type = .exact
                case .prefix?, .implementationSpecific?: type = .prefix
                case nil:
                    problems.append(CompileProblem(object: object, field: "\(field).pathType",
                        message: "unsupported value \(path.pathType.map { "\"\($0)\"" } ?? "(none)"): must be Exact, Prefix or ImplementationSpecific; path ignored"))
                    continue
                }
                var value = path.path ?? ""
                if value.isEmpty { value = "/" }
                if !value.hasPrefix("/") {
                    problems.append(CompileProblem(object: object, field: "\(field).path",
                        message: "invalid value \"\(value)\": must be an absolute path; path ignored"))
                    continue
                }
                guard let backend = resolve(path.backend, namespace: namespace, field: "\(field).backend",
                                            object: object, policy: policy, cookie: cookie,
                                            upstreamTLS: upstreamTLS) else { continue }
                rules.append(RouteRule(host: host, path: value, pathType: type,
                                       match: RouteMatch(backend: backend, ingress: index), order: base + order))
                ruleFields[base + order] = field
                order += 1
            }
        }
    }

    /// `portico.io/load-balance`, `portico.io/affinity` and the session cookie settings.
    private mutating func annotations(_ ingress: Ingress, object: String) -> (BalancePolicy, Affinity?) {
        let a = ingress.metadata.annotations ?? [:]
        var policy = BalancePolicy.roundRobin
        if let text = a[RouteCompiler.loadBalanceAnnotation] {
            if let p = BalancePolicy(rawValue: text.trimmingCharacters(in: .whitespaces)) {
                policy = p
            } else {
                problems.append(CompileProblem(object: object, field: "metadata.annotations[\(RouteCompiler.loadBalanceAnnotation)]",
                    message: "unsupported value \"\(text)\": must be round_robin or least_request; using round_robin"))
            }
        }
        var cookie: Affinity? = nil
        if let text = a[RouteCompiler.affinityAnnotation] {
            switch text.trimmingCharacters(in: .whitespaces) {
            case "cookie":
                var name = RouteCompiler.defaultCookieName
                if let n = a[RouteCompiler.cookieNameAnnotation] {
                    if Compilation.isCookieName(n) {
                        name = n
                    } else {
                        problems.append(CompileProblem(object: object, field: "metadata.annotations[\(RouteCompiler.cookieNameAnnotation)]",
                            message: "invalid value \"\(n)\": must be a cookie name (RFC 6265 token); using \(RouteCompiler.defaultCookieName)"))
                    }
                }
                var maxAge = 0
                if let m = a[RouteCompiler.cookieMaxAgeAnnotation] {
                    if let v = Int(m.trimmingCharacters(in: .whitespaces)), v >= 0 {
                        maxAge = v
                    } else {
                        problems.append(CompileProblem(object: object, field: "metadata.annotations[\(RouteCompiler.cookieMaxAgeAnnotation)]",
                            message: "invalid value \"\(m)\": must be a whole number of seconds >= 0; using 0 (session cookie)"))
                    }
                }
                cookie = .cookie(name: name, maxAgeSeconds: maxAge)
            case "none", "":
                break
            default:
                problems.append(CompileProblem(object: object, field: "metadata.annotations[\(RouteCompiler.affinityAnnotation)]",
                    message: "unsupported value \"\(text)\": must be cookie or none; no cookie affinity"))
            }
        }
        return (policy, cookie)
    }

    /// RFC 6265 cookie-name: an RFC 7230 token.
    static func isCookieName(_ s: String) -> Bool {
        guard !s.isEmpty else { return false }
        let separators = Set("()<>@,;:\\\"/[]?={} \t".utf8)
        return s.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f && !separators.contains($0) }
    }

    /// TCP listeners of the kube-proxy role: each Service port on its ClusterIP, and on every
    /// address at its nodePort for type NodePort, balanced over the ready endpoints.
    var tcpServices: [TCPService] = []

    mutating func compileServiceAddresses() {
        for key in services.keys.sorted() {
            guard let service = services[key], let spec = service.spec else { continue }
            let namespace = service.metadata.namespace
            let name = service.metadata.name ?? ""
            let ip = spec.clusterIP ?? ""
            let affinity: Affinity = spec.sessionAffinity == "ClientIP" ? .clientIP : .none
            for port in spec.ports ?? [] where (port.protocol ?? "TCP") == "TCP" {
                var addresses: [SocketAddress] = []
                if !ip.isEmpty, ip != "None", let a = SocketAddress(ip: ip, port: UInt16(clamping: port.port)) {
                    addresses.append(a)
                }
                if spec.type == "NodePort" || spec.type == "LoadBalancer", let np = port.nodePort,
                   let a = SocketAddress(ip: "0.0.0.0", port: UInt16(clamping: np)) {
                    addresses.append(a)
                }
                if addresses.isEmpty { continue }
                let label = port.name ?? String(port.port)
                let backendKey = BackendKey(namespace: namespace, service: name, port: label, policy: .roundRobin,
                                            affinity: affinity, upstreamTLS: nil)
                let index: Int32
                if let existing = backendIndex[backendKey] {
                    index = existing
                } else {
                    index = Int32(backends.count)
                    backends.append(Backend(namespace: namespace, service: name, port: label,
                                            endpoints: endpoints(of: service, port: port), affinity: affinity))
                    backendIndex[backendKey] = index
                }
                for a in addresses { tcpServices.append(TCPService(address: a, backend: index)) }
            }
        }
    }

    /// The backend index for an Ingress backend; nil when it is not a Service backend.
    private mutating func resolve(_ b: Ingress.Backend, namespace: String, field: String, object: String,
                                  policy: BalancePolicy, cookie: Affinity?, upstreamTLS: UpstreamTLS?) -> Int32? {
        guard let ref = b.service else {
            problems.append(CompileProblem(object: object, field: "\(field).resource",
                                           message: "resource backends are not supported; only service backends"))
            return nil
        }
        guard let serviceName = ref.name, !serviceName.isEmpty else {
            problems.append(CompileProblem(object: object, field: "\(field).service.name", message: "required value"))
            return nil
        }
        let portLabel: String
        let portField: String
        switch (ref.port?.number, ref.port?.name) {
        case let (n?, nil): portLabel = String(n); portField = "\(field).service.port.number"
        case let (nil, n?): portLabel = n; portField = "\(field).service.port.name"
        default:
            problems.append(CompileProblem(object: object, field: "\(field).service.port",
                                           message: "exactly one of number or name must be specified"))
            return nil
        }
        let service = services["\(namespace)/\(serviceName)"]
        var affinity = cookie ?? .none
        if cookie == nil, service?.spec?.sessionAffinity == "ClientIP" { affinity = .clientIP }
        var servicePort: Service.Port? = nil
        if let service {
            servicePort = (service.spec?.ports ?? []).first {
                if let n = ref.port?.number { return $0.port == n }
                return $0.name == ref.port?.name
            }
            if servicePort == nil {
                problems.append(CompileProblem(object: object, field: portField,
                    message: "Service \(namespace)/\(serviceName) has no port \(ref.port?.number.map(String.init) ?? "named \"\(portLabel)\""); requests get 503"))
            }
        } else {
            problems.append(CompileProblem(object: object, field: "\(field).service.name",
                message: "Service \(namespace)/\(serviceName) not found; requests get 503"))
        }
        let key = BackendKey(namespace: namespace, service: serviceName, port: portLabel, policy: policy, affinity: affinity,
                             upstreamTLS: upstreamTLS)
        if let existing = backendIndex[key] { return existing }
        var eps: [Dataplane.Endpoint] = []
        if let service, let servicePort { eps = endpoints(of: service, port: servicePort) }
        let index = Int32(backends.count)
        backends.append(Backend(namespace: namespace, service: serviceName, port: portLabel, endpoints: eps,
                                policy: policy, affinity: affinity, upstreamTLS: upstreamTLS))
        backendIndex[key] = index
        return index
    }

    /// Ready addresses for one Service port, from the Endpoints object of the same name and the
    /// EndpointSlices labelled with the Service's name; ports are matched by the Service port's
    /// name (empty for a single unnamed port), as kube-proxy does.
    func endpoints(of service: Service, port: Service.Port) -> [Dataplane.Endpoint] {
        let key = service.metadata.key
        let portName = port.name ?? ""
        var out: [Dataplane.Endpoint] = []
        var seen = Set<SocketAddress>()
        func add(_ ip: String, _ number: Int, pod: String?) {
            guard (1...65535).contains(number), let address = SocketAddress(ip: ip, port: UInt16(number)),
                  seen.insert(address).inserted else { return }
            out.append(Dataplane.Endpoint(address: address, name: pod.map { "\($0)@\(address)" }))
        }
        if let e = endpoints[key] {
            for subset in e.subsets ?? [] {
                guard let p = (subset.ports ?? []).first(where: { ($0.name ?? "") == portName }) else { continue }
                if let proto = p.protocol, proto != "TCP" { continue }
                for a in subset.addresses ?? [] { add(a.ip, p.port, pod: a.targetRef?.name) }
            }
        }
        for slice in slices[key] ?? [] where slice.addressType != "FQDN" {
            guard let p = (slice.ports ?? []).first(where: { ($0.name ?? "") == portName }), let number = p.port else { continue }
            if let proto = p.protocol, proto != "TCP" { continue }
            for endpoint in slice.endpoints where endpoint.conditions?.ready != false {
                for ip in endpoint.addresses { add(ip, number, pod: endpoint.targetRef?.name) }
            }
        }
        return out
    }
}
