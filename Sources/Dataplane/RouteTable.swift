import Reactor
import TLS

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
    /// nil: plain HTTP to the pods; set by `portico.io/backend-protocol: HTTPS`.
    public var upstreamTLS: UpstreamTLS?

    public init(namespace: String, service: String, port: String, endpoints: [Endpoint],
                policy: BalancePolicy = .roundRobin, affinity: Affinity = .none, upstreamTLS: UpstreamTLS? = nil) {
        self.namespace = namespace; self.service = service; self.port = port
        self.endpoints = endpoints; self.policy = policy; self.affinity = affinity
        self.upstreamTLS = upstreamTLS
    }

    /// `namespace/service:port`, the label used in logs and metrics.
    public var label: String { "\(namespace)/\(service):\(port)" }
}

/// A Service address the proxy listens on and balances TCP from (the kube-proxy role): a
/// ClusterIP and port, or every address at a nodePort.
public struct TCPService: Sendable, Hashable {
    public var address: SocketAddress
    /// Index into `RouteTable.backends`.
    public var backend: Int32
    public init(address: SocketAddress, backend: Int32) { self.address = address; self.backend = backend }
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

/// One compiled Ingress path rule, the input of `RouteTable`.
public struct RouteRule: Sendable, Equatable {
    /// Ingress `pathType` as the router applies it (`ImplementationSpecific` compiles to `.prefix`).
    public enum PathType: String, Sendable, Equatable {
        case exact = "Exact"
        case prefix = "Prefix"
    }

    /// nil applies to every host; `*.example.com` covers exactly one extra DNS label.
    public var host: String?
    public var path: String
    public var pathType: PathType
    public var match: RouteMatch
    /// Lower wins when two rules have the same host, path and type: the compiler gives the
    /// oldest Ingress the lowest numbers (creationTimestamp, then namespace/name, then rule order).
    public var order: Int

    public init(host: String?, path: String, pathType: PathType, match: RouteMatch, order: Int) {
        self.host = host; self.path = path; self.pathType = pathType; self.match = match; self.order = order
    }
}

/// The compiled routing snapshot: immutable after `init`, shared by every worker thread, and
/// swapped as a whole when the configuration changes.
///
/// Lookup order (Kubernetes Ingress semantics): the rules of the request's host (an exact host
/// beats a wildcard host), then the rules without a host, then `defaultMatch`
/// (`spec.defaultBackend`), else `RouteMatch.notFound`. Within one rule set the longest matching
/// path wins, and an Exact path beats a Prefix path of the same length.
public final class RouteTable: @unchecked Sendable {
    public let generation: UInt64
    /// Service addresses balanced at the TCP level.
    public let tcpServices: [TCPService]
    public let backends: [Backend]
    /// `namespace/name`; the index is `RouteMatch.ingress`.
    public let ingresses: [String]
    /// The rules in effect, in `order`.
    public let rules: [RouteRule]
    /// Rules that lost to an older rule with the same host, path and type.
    public let shadowedRules: [RouteRule]
    /// Where requests go that match no rule (`spec.defaultBackend` of the oldest Ingress having one).
    public let defaultMatch: RouteMatch
    /// The certificates of the served Ingresses' `spec.tls` (for `TLSServerContext.update`).
    public let certificates: [CertificateSource]
    /// The `spec.tls` hosts and their redirect/HSTS policy, as compiled (see `tlsPolicy(host:)`).
    public let tlsHosts: [HostTLSRule]

    private let tlsPolicies: HostTLSPolicyMap
    private let exactHosts: ByteKeyMap<Int32>
    private let wildcardHosts: ByteKeyMap<Int32>
    private let hostRules: [RouterPathRules]
    private let anyHostRules: RouterPathRules

    public static let empty = RouteTable(generation: 0, backends: [], ingresses: [], rules: [])

    public init(generation: UInt64, backends: [Backend], ingresses: [String], rules: [RouteRule],
                defaultMatch: RouteMatch = .notFound, certificates: [CertificateSource] = [],
                tlsHosts: [HostTLSRule] = [], tcpServices: [TCPService] = []) {
        self.tcpServices = tcpServices
        self.generation = generation
        self.backends = backends
        self.ingresses = ingresses
        self.defaultMatch = defaultMatch
        self.certificates = certificates
        self.tlsHosts = tlsHosts
        self.tlsPolicies = HostTLSPolicyMap(tlsHosts)

        // Stable sort by order, so that the first insert of a (host, path, type) key wins.
        let sorted = rules.enumerated().sorted {
            $0.element.order != $1.element.order ? $0.element.order < $1.element.order : $0.offset < $1.offset
        }.map(\.element)

        var exact = ByteKeyMap<Int32>()
        var wildcard = ByteKeyMap<Int32>()
        var sets: [RouterPathRules] = []
        let anyHost = RouterPathRules()
        var kept: [RouteRule] = []
        var shadowed: [RouteRule] = []

        for rule in sorted {
            let inserted: Bool
            if let host = RouteTable.normalizedRuleHost(rule.host) {
                let isWildcard = host.hasPrefix("*.")
                let key = Array((isWildcard ? String(host.dropFirst(2)) : host).utf8)
                let index: Int32
                let existing = key.withUnsafeBytes { isWildcard ? wildcard.lookup($0) : exact.lookup($0) }
                if let existing {
                    index = existing
                } else {
                    index = Int32(sets.count)
                    sets.append(RouterPathRules())
                    if isWildcard { wildcard.insertIfAbsent(key, index) } else { exact.insertIfAbsent(key, index) }
                }
                inserted = sets[Int(index)].insert(rule)
            } else {
                inserted = anyHost.insert(rule)
            }
            if inserted { kept.append(rule) } else { shadowed.append(rule) }
        }
        self.exactHosts = exact
        self.wildcardHosts = wildcard
        self.hostRules = sets
        self.anyHostRules = anyHost
        self.rules = kept
        self.shadowedRules = shadowed
    }

    /// Lower case, one trailing dot removed; nil or empty means "any host".
    static func normalizedRuleHost(_ host: String?) -> String? {
        guard var h = host?.lowercased(), !h.isEmpty else { return nil }
        if h.hasSuffix(".") { h.removeLast() }
        return h.isEmpty ? nil : h
    }

    /// Routes one request. `host` is the Host header value as sent (any case, optional `:port`,
    /// optional trailing dot, `[v6]:port`); `path` is the path without the query (empty means `/`).
    /// Allocation-free.
    public func route(host: UnsafeRawBufferPointer, path: UnsafeRawBufferPointer) -> RouteMatch {
        if path.isEmpty {
            let slash: StaticString = "/"
            return slash.withUTF8Buffer { route(host: host, path: UnsafeRawBufferPointer($0)) }
        }
        var set = -1
        if !hostRules.isEmpty {
            set = hostRuleSet(host)
        }
        if set >= 0 {
            let m = hostRules[set].match(path)
            if m.isFound { return m }
        }
        let m = anyHostRules.match(path)
        if m.isFound { return m }
        return defaultMatch
    }

    /// The TLS policy of a request's host (the Host header value as sent): redirect plain HTTP
    /// to https, HSTS. Hosts not listed in any `spec.tls` get `.none`. Allocation-free.
    @inline(__always)
    public func tlsPolicy(host: UnsafeRawBufferPointer) -> HostTLSPolicy {
        tlsPolicies.policy(host)
    }

    /// Convenience for tests (allocates).
    public func tlsPolicy(host: String) -> HostTLSPolicy {
        var h = host
        return h.withUTF8 { tlsPolicy(host: UnsafeRawBufferPointer($0)) }
    }

    /// Convenience for tests and the admin endpoint (allocates).
    public func route(host: String, path: String) -> RouteMatch {
        var h = host, p = path
        return h.withUTF8 { hb in p.withUTF8 { pb in
            route(host: UnsafeRawBufferPointer(hb), path: UnsafeRawBufferPointer(pb))
        } }
    }

    /// The index of the rule set for `host` (exact host first, then wildcard), or -1.
    @inline(__always)
    private func hostRuleSet(_ raw: UnsafeRawBufferPointer) -> Int {
        var start = 0
        var end = raw.count
        while start < end && (raw[start] == 0x20 || raw[start] == 0x09) { start += 1 }
        while end > start && (raw[end - 1] == 0x20 || raw[end - 1] == 0x09) { end -= 1 }
        if start < end && raw[start] == UInt8(ascii: "[") {
            // IPv6 literal: never an Ingress host (hosts must not be IPs), keep the brackets.
            var i = start
            while i < end && raw[i] != UInt8(ascii: "]") { i += 1 }
            end = i < end ? i + 1 : end
        } else {
            var i = start
            while i < end && raw[i] != UInt8(ascii: ":") { i += 1 }
            end = i
        }
        if end > start && raw[end - 1] == UInt8(ascii: ".") { end -= 1 }
        if end <= start { return -1 }
        let host = UnsafeRawBufferPointer(rebasing: raw[start..<end])
        let index = exactHosts.find(hash: ByteKeyMap<Int32>.hashLowercased(host), key: host, lowercase: true)
        if index >= 0 { return Int(exactHosts.value(at: index)) }
        if wildcardHosts.isEmpty { return -1 }
        // `*.example.com` covers exactly one non-empty label in front of `example.com`.
        var dot = 0
        while dot < host.count && host[dot] != UInt8(ascii: ".") { dot += 1 }
        if dot == 0 || dot + 1 >= host.count { return -1 }
        let suffix = UnsafeRawBufferPointer(rebasing: host[(dot + 1)...])
        let w = wildcardHosts.find(hash: ByteKeyMap<Int32>.hashLowercased(suffix), key: suffix, lowercase: true)
        return w >= 0 ? Int(wildcardHosts.value(at: w)) : -1
    }
}
