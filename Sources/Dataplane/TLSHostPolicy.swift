/// What plain-HTTP and HTTPS responses for one host do about TLS, from the Ingress that lists
/// the host in `spec.tls` and its annotations.
public struct HostTLSPolicy: Sendable, Equatable {
    /// A plain-HTTP request gets `308` to the same URL on https (annotation
    /// `portico.io/ssl-redirect: "false"` turns it off).
    public var redirectToHTTPS: Bool
    /// `Strict-Transport-Security: max-age=…` on HTTPS responses when set
    /// (`portico.io/hsts: "true"`, `portico.io/hsts-max-age`).
    public var hstsMaxAge: Int?
    /// `; includeSubDomains` (`portico.io/hsts-include-subdomains: "true"`).
    public var hstsIncludeSubdomains: Bool

    /// A host without TLS: no redirect, no HSTS.
    public static let none = HostTLSPolicy(redirectToHTTPS: false, hstsMaxAge: nil, hstsIncludeSubdomains: false)

    public init(redirectToHTTPS: Bool, hstsMaxAge: Int? = nil, hstsIncludeSubdomains: Bool = false) {
        self.redirectToHTTPS = redirectToHTTPS; self.hstsMaxAge = hstsMaxAge; self.hstsIncludeSubdomains = hstsIncludeSubdomains
    }
}

/// One host of an Ingress `spec.tls` entry with its policy, the input of `RouteTable`.
public struct HostTLSRule: Sendable, Equatable {
    /// `shop.example.com` or `*.example.com` (one label).
    public var host: String
    public var policy: HostTLSPolicy

    public init(host: String, policy: HostTLSPolicy) { self.host = host; self.policy = policy }
}

/// How a backend is reached over TLS (Ingress annotation `portico.io/backend-protocol: HTTPS`).
public struct UpstreamTLS: Sendable, Hashable {
    /// Verify the pod's certificate (off only with `portico.io/proxy-ssl-verify: "false"`).
    public var verify: Bool
    /// `ca.crt` of the Secret named by `portico.io/proxy-ssl-secret`; nil: the system CA store.
    public var caPEM: [UInt8]?
    /// Where `caPEM` came from, for messages: `Secret NAMESPACE/NAME ca.crt`.
    public var caSource: String?
    /// SNI and the name verified (`portico.io/proxy-ssl-name`); nil: none sent, only the chain is verified.
    public var serverName: String?

    public init(verify: Bool = true, caPEM: [UInt8]? = nil, caSource: String? = nil, serverName: String? = nil) {
        self.verify = verify; self.caPEM = caPEM; self.caSource = caSource; self.serverName = serverName
    }
}

/// Host → HostTLSPolicy, exact hosts first, then one-label wildcards; allocation-free lookup.
struct HostTLSPolicyMap: Sendable {
    private var exact = ByteKeyMap<Int32>()
    private var wildcard = ByteKeyMap<Int32>()
    private var policies: [HostTLSPolicy] = []

    /// The first rule for a host wins (the compiler lists the oldest Ingress first).
    init(_ rules: [HostTLSRule]) {
        for rule in rules {
            guard let host = RouteTable.normalizedRuleHost(rule.host) else { continue }
            let isWildcard = host.hasPrefix("*.")
            let key = Array((isWildcard ? String(host.dropFirst(2)) : host).utf8)
            if key.isEmpty { continue }
            let index = Int32(policies.count)
            let inserted = isWildcard ? wildcard.insertIfAbsent(key, index) : exact.insertIfAbsent(key, index)
            if inserted { policies.append(rule.policy) }
        }
    }

    var isEmpty: Bool { policies.isEmpty }

    /// `raw` is a Host header value (any case, optional `:port`, optional trailing dot).
    func policy(_ raw: UnsafeRawBufferPointer) -> HostTLSPolicy {
        if policies.isEmpty { return .none }
        var start = 0
        var end = raw.count
        while start < end && (raw[start] == 0x20 || raw[start] == 0x09) { start += 1 }
        while end > start && (raw[end - 1] == 0x20 || raw[end - 1] == 0x09) { end -= 1 }
        if start < end && raw[start] == UInt8(ascii: "[") { return .none }  // IP literal: never an Ingress host
        var i = start
        while i < end && raw[i] != UInt8(ascii: ":") { i += 1 }
        end = i
        if end > start && raw[end - 1] == UInt8(ascii: ".") { end -= 1 }
        if end <= start { return .none }
        let host = UnsafeRawBufferPointer(rebasing: raw[start..<end])
        let e = exact.find(hash: ByteKeyMap<Int32>.hashLowercased(host), key: host, lowercase: true)
        if e >= 0 { return policies[Int(exact.value(at: e))] }
        if wildcard.isEmpty { return .none }
        var dot = 0
        while dot < host.count && host[dot] != UInt8(ascii: ".") { dot += 1 }
        if dot == 0 || dot + 1 >= host.count { return .none }
        let suffix = UnsafeRawBufferPointer(rebasing: host[(dot + 1)...])
        let w = wildcard.find(hash: ByteKeyMap<Int32>.hashLowercased(suffix), key: suffix, lowercase: true)
        return w >= 0 ? policies[Int(wildcard.value(at: w))] : .none
    }
}
