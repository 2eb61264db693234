/// `v1 Service`.
public struct Service: KubeResource, Equatable {
    public static let defaultAPIVersion = "v1"
    public static let kindName = "Service"
    public var apiVersion: String
    public var kind: String
    public var metadata: ObjectMeta
    public var spec: Spec?
    public var status: Status?

    public init(metadata: ObjectMeta, spec: Spec? = nil) {
        apiVersion = Self.defaultAPIVersion; kind = Self.kindName
        self.metadata = metadata; self.spec = spec
    }

    public struct Spec: Codable, Sendable, Equatable {
        /// ClusterIP (default), NodePort, LoadBalancer or ExternalName.
        public var type: String?
        public var selector: [String: String]?
        /// An IP, `None` (headless) or empty (allocate).
        public var clusterIP: String?
        public var clusterIPs: [String]?
        public var ports: [Port]?
        /// None (default) or ClientIP.
        public var sessionAffinity: String?
        public var sessionAffinityConfig: SessionAffinityConfig?
        public var externalName: String?
        public var externalIPs: [String]?
        public var externalTrafficPolicy: String?
        public var internalTrafficPolicy: String?
        public var ipFamilies: [String]?
        public var ipFamilyPolicy: String?
        public var loadBalancerIP: String?
        public var loadBalancerSourceRanges: [String]?
        public var loadBalancerClass: String?
        public var allocateLoadBalancerNodePorts: Bool?
        public var healthCheckNodePort: Int?
        public var publishNotReadyAddresses: Bool?
        public var trafficDistribution: String?

        public init(type: String? = nil, selector: [String: String]? = nil, clusterIP: String? = nil,
                    ports: [Port]? = nil, sessionAffinity: String? = nil) {
            self.type = type; self.selector = selector; self.clusterIP = clusterIP
            self.ports = ports; self.sessionAffinity = sessionAffinity
        }
    }

    public struct Port: Codable, Sendable, Equatable {
        public var name: String?
        public var port: Int
        public var targetPort: IntOrString?
        /// TCP (default), UDP or SCTP.
        public var `protocol`: String?
        public var nodePort: Int?
        public var appProtocol: String?

        public init(name: String? = nil, port: Int, targetPort: IntOrString? = nil, protocol: String? = nil,
                    nodePort: Int? = nil) {
            self.name = name; self.port = port; self.targetPort = targetPort
            self.protocol = `protocol`; self.nodePort = nodePort
        }

        /// Kubernetes' default: the target port is the port itself.
        public var effectiveTargetPort: IntOrString { targetPort ?? .int(port) }
    }

    public struct SessionAffinityConfig: Codable, Sendable, Equatable {
        public var clientIP: ClientIPConfig?
        public struct ClientIPConfig: Codable, Sendable, Equatable {
            public var timeoutSeconds: Int?
        }
    }

    public struct Status: Codable, Sendable, Equatable {
        public var loadBalancer: LoadBalancerStatus?
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
