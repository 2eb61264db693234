/// Any object read from a manifest or the API. Adding a kind: a case here, its type conforming
/// to `KubeResource`, and an entry in `KubeObject.kinds`.
public enum KubeObject: Sendable, Equatable {
    case ingress(Ingress)
    case service(Service)
    case endpoints(Endpoints)
    case endpointSlice(EndpointSlice)
    case secret(Secret)
    case configMap(ConfigMap)
    /// A kind Portico does not model; kept so callers can list or ignore it.
    case unknown(apiVersion: String, kind: String, name: String)

    /// A kind Portico models: its type identity and how to wrap a decoded value.
    public struct Kind: Sendable {
        public let apiVersion: String
        public let kind: String
        let decode: @Sendable (Decoder) throws -> KubeObject

        init<T: KubeResource>(_ type: T.Type, _ wrap: @escaping @Sendable (T) -> KubeObject) {
            apiVersion = T.defaultAPIVersion
            kind = T.kindName
            decode = { try wrap(T(from: $0)) }
        }
    }

    /// The kinds Portico decodes; anything else becomes `.unknown`.
    public static let kinds: [Kind] = [
        Kind(Ingress.self) { .ingress($0) },
        Kind(Service.self) { .service($0) },
        Kind(Endpoints.self) { .endpoints($0) },
        Kind(EndpointSlice.self) { .endpointSlice($0) },
        Kind(Secret.self) { .secret($0) },
        Kind(ConfigMap.self) { .configMap($0) },
    ]

    public static func kind(apiVersion: String, kind: String) -> Kind? {
        kinds.first { $0.apiVersion == apiVersion && $0.kind == kind }
    }

    /// The modelled object, or nil for `.unknown`.
    public var resource: (any KubeResource)? {
        switch self {
        case .ingress(let o): return o
        case .service(let o): return o
        case .endpoints(let o): return o
        case .endpointSlice(let o): return o
        case .secret(let o): return o
        case .configMap(let o): return o
        case .unknown: return nil
        }
    }

    public var apiVersion: String {
        if case let .unknown(apiVersion, _, _) = self { return apiVersion }
        return resource!.apiVersion
    }

    public var kind: String {
        if case let .unknown(_, kind, _) = self { return kind }
        return resource!.kind
    }

    public var name: String {
        if case let .unknown(_, _, name) = self { return name }
        return resource!.metadata.name ?? ""
    }

    /// nil for `.unknown`.
    public var metadata: ObjectMeta? { resource?.metadata }

    /// `Kind namespace/name` (`Kind name` for unknown kinds).
    public var displayName: String {
        if let r = resource { return r.displayName }
        return "\(kind) \(name)"
    }

    public func validate() -> [FieldError] { resource?.validate() ?? [] }
}

extension KubeObject: Codable {
    private enum Keys: String, CodingKey { case apiVersion, kind, metadata }
    private enum MetaKeys: String, CodingKey { case name }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        let apiVersion = try c.decode(String.self, forKey: .apiVersion)
        let kind = try c.decode(String.self, forKey: .kind)
        if let k = KubeObject.kind(apiVersion: apiVersion, kind: kind) {
            self = try k.decode(decoder)
        } else {
            var name = ""
            if c.contains(.metadata) {
                let m = try c.nestedContainer(keyedBy: MetaKeys.self, forKey: .metadata)
                name = try m.decodeIfPresent(String.self, forKey: .name) ?? ""
            }
            self = .unknown(apiVersion: apiVersion, kind: kind, name: name)
        }
    }

    public func encode(to encoder: Encoder) throws {
        if let r = resource {
            try r.encode(to: encoder)
            return
        }
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(apiVersion, forKey: .apiVersion)
        try c.encode(kind, forKey: .kind)
        var m = c.nestedContainer(keyedBy: MetaKeys.self, forKey: .metadata)
        try m.encode(name, forKey: .name)
    }
}
