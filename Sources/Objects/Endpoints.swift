/// `v1 Endpoints`: the addresses behind a Service of the same name.
public struct Endpoints: KubeResource, Equatable {
    public static let defaultAPIVersion = "v1"
    public static let kindName = "Endpoints"
    public var apiVersion: String
    public var kind: String
    public var metadata: ObjectMeta
    public var subsets: [Subset]?

    public init(metadata: ObjectMeta, subsets: [Subset]? = nil) {
        apiVersion = Self.defaultAPIVersion; kind = Self.kindName
        self.metadata = metadata; self.subsets = subsets
    }

    public struct Subset: Codable, Sendable, Equatable {
        public var addresses: [Address]?
        public var notReadyAddresses: [Address]?
        public var ports: [Port]?
        public init(addresses: [Address]? = nil, notReadyAddresses: [Address]? = nil, ports: [Port]? = nil) {
            self.addresses = addresses; self.notReadyAddresses = notReadyAddresses; self.ports = ports
        }
    }

    public struct Address: Codable, Sendable, Equatable {
        public var ip: String
        public var hostname: String?
        public var nodeName: String?
        public var targetRef: ObjectReference?
        public init(ip: String, hostname: String? = nil, targetRef: ObjectReference? = nil) {
            self.ip = ip; self.hostname = hostname; self.targetRef = targetRef
        }
    }

    public struct Port: Codable, Sendable, Equatable {
        public var name: String?
        public var port: Int
        public var `protocol`: String?
        public var appProtocol: String?
        public init(name: String? = nil, port: Int, protocol: String? = nil) {
            self.name = name; self.port = port; self.protocol = `protocol`
        }
    }

    enum CodingKeys: String, CodingKey { case apiVersion, kind, metadata, subsets }

    public init(from decoder: Decoder) throws {
        (apiVersion, kind, metadata) = try Self.decodeTypeMeta(decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        subsets = try c.decodeIfPresent([Subset].self, forKey: .subsets)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(apiVersion, forKey: .apiVersion)
        try c.encode(kind, forKey: .kind)
        try c.encode(metadata, forKey: .metadata)
        try c.encodeIfPresent(subsets, forKey: .subsets)
    }
}

/// `discovery.k8s.io/v1 EndpointSlice`, linked to its Service by the label
/// `kubernetes.io/service-name`.
public struct EndpointSlice: KubeResource, Equatable {
    public static let defaultAPIVersion = "discovery.k8s.io/v1"
    public static let kindName = "EndpointSlice"
    public static let serviceNameLabel = "kubernetes.io/service-name"
    public var apiVersion: String
    public var kind: String
    public var metadata: ObjectMeta
    /// IPv4, IPv6 or FQDN.
    public var addressType: String
    public var endpoints: [Endpoint]
    public var ports: [Port]?

    public init(metadata: ObjectMeta, addressType: String = "IPv4", endpoints: [Endpoint], ports: [Port]? = nil) {
        apiVersion = Self.defaultAPIVersion; kind = Self.kindName
        self.metadata = metadata; self.addressType = addressType; self.endpoints = endpoints; self.ports = ports
    }

    /// The Service this slice belongs to (its `kubernetes.io/service-name` label).
    public var serviceName: String? { metadata.labels?[Self.serviceNameLabel] }

    public struct Endpoint: Codable, Sendable, Equatable {
        public var addresses: [String]
        public var conditions: Conditions?
        public var hostname: String?
        public var targetRef: ObjectReference?
        public var nodeName: String?
        public var zone: String?
        public var hints: Hints?
        public init(addresses: [String], conditions: Conditions? = nil, targetRef: ObjectReference? = nil) {
            self.addresses = addresses; self.conditions = conditions; self.targetRef = targetRef
        }
    }

    /// nil means unknown; consumers treat an unknown `ready` as ready.
    public struct Conditions: Codable, Sendable, Equatable {
        public var ready: Bool?
        public var serving: Bool?
        public var terminating: Bool?
        public init(ready: Bool? = nil, serving: Bool? = nil, terminating: Bool? = nil) {
            self.ready = ready; self.serving = serving; self.terminating = terminating
        }
    }

    public struct Hints: Codable, Sendable, Equatable {
        public var forZones: [ForZone]?
        public struct ForZone: Codable, Sendable, Equatable { public var name: String }
    }

    public struct Port: Codable, Sendable, Equatable {
        public var name: String?
        public var port: Int?
        public var `protocol`: String?
        public var appProtocol: String?
        public init(name: String? = nil, port: Int?, protocol: String? = nil) {
            self.name = name; self.port = port; self.protocol = `protocol`
        }
    }

    enum CodingKeys: String, CodingKey { case apiVersion, kind, metadata, addressType, endpoints, ports }

    public init(from decoder: Decoder) throws {
        (apiVersion, kind, metadata) = try Self.decodeTypeMeta(decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        addressType = try c.decode(String.self, forKey: .addressType)
        endpoints = try c.decodeIfPresent([Endpoint].self, forKey: .endpoints) ?? []
        ports = try c.decodeIfPresent([Port].self, forKey: .ports)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(apiVersion, forKey: .apiVersion)
        try c.encode(kind, forKey: .kind)
        try c.encode(metadata, forKey: .metadata)
        try c.encode(addressType, forKey: .addressType)
        try c.encode(endpoints, forKey: .endpoints)
        try c.encodeIfPresent(ports, forKey: .ports)
    }
}
