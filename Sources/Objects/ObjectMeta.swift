/// `metadata` of every Kubernetes object (`meta/v1 ObjectMeta`), the fields Portico uses.
public struct ObjectMeta: Codable, Sendable, Equatable {
    public var name: String?
    public var generateName: String?
    /// Defaults to `default` when the manifest omits it.
    public var namespace: String
    public var uid: String?
    public var resourceVersion: String?
    public var generation: Int64?
    /// RFC 3339, e.g. `2024-05-01T10:00:00Z`.
    public var creationTimestamp: String?
    public var deletionTimestamp: String?
    public var deletionGracePeriodSeconds: Int64?
    public var labels: [String: String]?
    public var annotations: [String: String]?
    public var ownerReferences: [OwnerReference]?
    public var finalizers: [String]?
    /// Server-side apply bookkeeping, carried as is.
    public var managedFields: [JSONValue]?
    public var selfLink: String?

    public init(name: String? = nil, namespace: String = "default", uid: String? = nil,
                resourceVersion: String? = nil, generation: Int64? = nil, creationTimestamp: String? = nil,
                labels: [String: String]? = nil, annotations: [String: String]? = nil,
                ownerReferences: [OwnerReference]? = nil) {
        self.name = name; self.namespace = namespace; self.uid = uid
        self.resourceVersion = resourceVersion; self.generation = generation
        self.creationTimestamp = creationTimestamp; self.labels = labels
        self.annotations = annotations; self.ownerReferences = ownerReferences
    }

    enum CodingKeys: String, CodingKey {
        case name, generateName, namespace, uid, resourceVersion, generation, creationTimestamp
        case deletionTimestamp, deletionGracePeriodSeconds, labels, annotations, ownerReferences, finalizers
        case managedFields, selfLink
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        generateName = try c.decodeIfPresent(String.self, forKey: .generateName)
        let ns = try c.decodeIfPresent(String.self, forKey: .namespace)
        namespace = (ns?.isEmpty ?? true) ? "default" : ns!
        uid = try c.decodeIfPresent(String.self, forKey: .uid)
        resourceVersion = try c.decodeIfPresent(String.self, forKey: .resourceVersion)
        generation = try c.decodeIfPresent(Int64.self, forKey: .generation)
        creationTimestamp = try c.decodeIfPresent(String.self, forKey: .creationTimestamp)
        deletionTimestamp = try c.decodeIfPresent(String.self, forKey: .deletionTimestamp)
        deletionGracePeriodSeconds = try c.decodeIfPresent(Int64.self, forKey: .deletionGracePeriodSeconds)
        labels = try c.decodeIfPresent([String: String].self, forKey: .labels)
        annotations = try c.decodeIfPresent([String: String].self, forKey: .annotations)
        ownerReferences = try c.decodeIfPresent([OwnerReference].self, forKey: .ownerReferences)
        finalizers = try c.decodeIfPresent([String].self, forKey: .finalizers)
        managedFields = try c.decodeIfPresent([JSONValue].self, forKey: .managedFields)
        selfLink = try c.decodeIfPresent(String.self, forKey: .selfLink)
    }

    /// `namespace/name`.
    public var key: String { "\(namespace)/\(name ?? "")" }
}

/// `metadata.ownerReferences[]`.
public struct OwnerReference: Codable, Sendable, Equatable {
    public var apiVersion: String
    public var kind: String
    public var name: String
    public var uid: String
    public var controller: Bool?
    public var blockOwnerDeletion: Bool?

    public init(apiVersion: String, kind: String, name: String, uid: String,
                controller: Bool? = nil, blockOwnerDeletion: Bool? = nil) {
        self.apiVersion = apiVersion; self.kind = kind; self.name = name; self.uid = uid
        self.controller = controller; self.blockOwnerDeletion = blockOwnerDeletion
    }
}

/// `core/v1 ObjectReference` (e.g. `targetRef` of an endpoint address).
public struct ObjectReference: Codable, Sendable, Equatable {
    public var apiVersion: String?
    public var kind: String?
    public var namespace: String?
    public var name: String?
    public var uid: String?
    public var resourceVersion: String?
    public var fieldPath: String?

    public init(apiVersion: String? = nil, kind: String? = nil, namespace: String? = nil, name: String? = nil,
                uid: String? = nil) {
        self.apiVersion = apiVersion; self.kind = kind; self.namespace = namespace; self.name = name; self.uid = uid
    }
}

/// A value that is either an integer or a string (`intstr.IntOrString`), e.g. `targetPort: 8080`
/// or `targetPort: http`.
public enum IntOrString: Codable, Sendable, Equatable, Hashable, CustomStringConvertible {
    case int(Int)
    case string(String)

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let i = try? c.decode(Int.self) {
            self = .int(i)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else {
            throw DecodingError.typeMismatch(IntOrString.self, .init(
                codingPath: decoder.codingPath, debugDescription: "expected an integer or a string"))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .int(let i): try c.encode(i)
        case .string(let s): try c.encode(s)
        }
    }

    public var description: String {
        switch self {
        case .int(let i): return String(i)
        case .string(let s): return s
        }
    }
}

extension IntOrString: ExpressibleByIntegerLiteral, ExpressibleByStringLiteral {
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(stringLiteral value: String) { self = .string(value) }
}

/// `status.loadBalancer` of Services and Ingresses.
public struct LoadBalancerStatus: Codable, Sendable, Equatable {
    public var ingress: [LoadBalancerIngress]?
    public init(ingress: [LoadBalancerIngress]? = nil) { self.ingress = ingress }
}

public struct LoadBalancerIngress: Codable, Sendable, Equatable {
    public var ip: String?
    public var hostname: String?
    public var ipMode: String?
    public var ports: [PortStatus]?
    public init(ip: String? = nil, hostname: String? = nil) { self.ip = ip; self.hostname = hostname }
}

public struct PortStatus: Codable, Sendable, Equatable {
    public var port: Int
    public var `protocol`: String?
    public var error: String?
}
