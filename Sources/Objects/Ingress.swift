/// `networking.k8s.io/v1 Ingress`.
public struct Ingress: KubeResource, Equatable {
    public static let defaultAPIVersion = "networking.k8s.io/v1"
    public static let kindName = "Ingress"
    public var apiVersion: String
    public var kind: String
    public var metadata: ObjectMeta
    public var spec: Spec?
    public var status: Status?

    public init(metadata: ObjectMeta, spec: Spec? = nil, status: Status? = nil) {
        apiVersion = Self.defaultAPIVersion; kind = Self.kindName
        self.metadata = metadata; self.spec = spec; self.status = status
    }

    public struct Spec: Codable, Sendable, Equatable {
        public var ingressClassName: String?
        public var defaultBackend: Backend?
        public var tls: [TLS]?
        public var rules: [Rule]?
        public init(ingressClassName: String? = nil, defaultBackend: Backend? = nil, tls: [TLS]? = nil,
                    rules: [Rule]? = nil) {
            self.ingressClassName = ingressClassName; self.defaultBackend = defaultBackend
            self.tls = tls; self.rules = rules
        }
    }

    public struct TLS: Codable, Sendable, Equatable {
        public var hosts: [String]?
        public var secretName: String?
        public init(hosts: [String]? = nil, secretName: String? = nil) { self.hosts = hosts; self.secretName = secretName }
    }

    public struct Rule: Codable, Sendable, Equatable {
        public var host: String?
        public var http: HTTPRuleValue?
        public init(host: String? = nil, http: HTTPRuleValue? = nil) { self.host = host; self.http = http }
    }

    public struct HTTPRuleValue: Codable, Sendable, Equatable {
        public var paths: [Path]
        public init(paths: [Path]) { self.paths = paths }
    }

    /// `pathType` values.
    public enum PathType: String, Codable, Sendable, CaseIterable {
        case exact = "Exact"
        case prefix = "Prefix"
        case implementationSpecific = "ImplementationSpecific"
    }

    public struct Path: Codable, Sendable, Equatable {
        public var path: String?
        /// Kept as text so an unsupported value can be reported by validation; see `type`.
        public var pathType: String?
        public var backend: Backend
        public init(path: String? = nil, pathType: PathType?, backend: Backend) {
            self.path = path; self.pathType = pathType?.rawValue; self.backend = backend
        }
        public var type: PathType? { pathType.flatMap(PathType.init(rawValue:)) }
    }

    public struct Backend: Codable, Sendable, Equatable {
        public var service: ServiceBackend?
        public var resource: TypedLocalObjectReference?
        public init(service: ServiceBackend? = nil, resource: TypedLocalObjectReference? = nil) {
            self.service = service; self.resource = resource
        }
        public init(service name: String, port: ServiceBackendPort) {
            self.service = ServiceBackend(name: name, port: port)
        }
    }

    public struct ServiceBackend: Codable, Sendable, Equatable {
        public var name: String?
        public var port: ServiceBackendPort?
        public init(name: String?, port: ServiceBackendPort?) { self.name = name; self.port = port }
    }

    /// Exactly one of `number` and `name`.
    public struct ServiceBackendPort: Codable, Sendable, Equatable {
        public var name: String?
        public var number: Int?
        public init(name: String? = nil, number: Int? = nil) { self.name = name; self.number = number }
        public static func number(_ n: Int) -> ServiceBackendPort { ServiceBackendPort(number: n) }
        public static func named(_ n: String) -> ServiceBackendPort { ServiceBackendPort(name: n) }
    }

    public struct TypedLocalObjectReference: Codable, Sendable, Equatable {
        public var apiGroup: String?
        public var kind: String
        public var name: String
    }

    public struct Status: Codable, Sendable, Equatable {
        public var loadBalancer: LoadBalancerStatus?
        public init(loadBalancer: LoadBalancerStatus? = nil) { self.loadBalancer = loadBalancer }
    }

    enum CodingKeys: String, CodingKey { case apiVersion, kind, metadata, spec, status }

    public init(from decoder: Decoder) throws {
        (apiVersion, kind, metadata) = try Self.decodeTypeMeta(decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        spec = try c.decodeIfPresent(Spec.self, forKey: .spec)
        status = try c.decodeIfPresent(Status.self, forKey: .status)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(apiVersion, forKey: .apiVersion)
        try c.encode(kind, forKey: .kind)
        try c.encode(metadata, forKey: .metadata)
        try c.encodeIfPresent(spec, forKey: .spec)
        try c.encodeIfPresent(status, forKey: .status)
    }
}
