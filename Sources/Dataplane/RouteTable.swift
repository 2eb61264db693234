import Reactor

/// How requests for one backend are spread over its endpoints (per worker).
public enum BalancePolicy: String, Sendable, CaseIterable {
    /// Smooth weighted round-robin (nginx's algorithm): the default.
    case roundRobin = "round_robin"
    /// Least outstanding requests between two random choices (power of two choices).
    case leastRequest = "least_request"
}

/// Session affinity: requests with the same key go to the same endpoint (consistent hashing).
public enum Affinity: Sendable, Equatable, Hashable {
    case none
    /// `Service.spec.sessionAffinity: ClientIP`: the key is the client's IP address.
    case clientIP
    /// Ingress annotation `portico.io/affinity: cookie`: the key is a cookie the proxy sets.
    case cookie(name: String, maxAgeSeconds: Int)
}

/// One address of a Service backend (a ready Endpoints address with the resolved port).
public struct Endpoint: Sendable, Hashable {
    public var address: SocketAddress
    public var weight: UInt32
    /// For logs and metrics: `ip:port`, optionally with the pod name.
    public var name: String

    public init(address: SocketAddress, weight: UInt32 = 1, name: String? = nil) {
        self.address = address
        self.weight = weight
        self.name = name ?? address.description
    }
}

/// A Service port as an Ingress backend refers to it, with everything needed to reach it.
public struct Backend: Sendable, Hashable {
    public var namespace: String
    public var service: String
    /// The Service port as the Ingress named it (a number or a port name), for display.
    public var port: String
    public var endpoints: [Endpoint]
    public var policy: BalancePolicy
    public var affinity: Affinity

    public init(namespace: String, service: String, port: String, endpoints: [Endpoint],
                policy: BalancePolicy = .roundRobin, affinity: Affinity = .none) {
        self.namespace = namespace; self.service = service; self.port = port
        self.endpoints = endpoints; self.policy = policy; self.affinity = affinity
    }

    /// `namespace/service:port`, the label used in logs and metrics.
    public var label: String { "\(namespace)/\(service):\(port)" }
}

/// The result of routing one request: indexes into `RouteTable.backends` and `.ingresses`.
public struct RouteMatch: Sendable, Equatable {
    /// -1 when nothing matched (the proxy answers 404).
    public var backend: Int32
    /// The Ingress the matching rule came from (-1 with no match).
    public var ingress: Int32

    public static let notFound = RouteMatch(backend: -1, ingress: -1)
    public init(backend: Int32, ingress: Int32) { self.backend = backend; self.ingress = ingress }
    @inlinable public var isFound: Bool { backend >= 0 }
}
