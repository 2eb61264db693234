import Foundation

/// `v1 Secret`. `data` values are base64 as in the manifest; `decodedData` merges `stringData`.
public struct Secret: KubeResource, Equatable {
    public static let defaultAPIVersion = "v1"
    public static let kindName = "Secret"
    public static let tlsType = "kubernetes.io/tls"
    public var apiVersion: String
    public var kind: String
    public var metadata: ObjectMeta
    /// e.g. `Opaque` (default) or `kubernetes.io/tls` (keys `tls.crt`, `tls.key`).
    public var type: String?
    public var data: [String: String]?
    public var stringData: [String: String]?
    public var immutable: Bool?

    public init(metadata: ObjectMeta, type: String? = nil, data: [String: String]? = nil,
                stringData: [String: String]? = nil) {
        apiVersion = Self.defaultAPIVersion; kind = Self.kindName
        self.metadata = metadata; self.type = type; self.data = data; self.stringData = stringData
    }

    /// The decoded bytes per key: `data` (base64) overlaid by `stringData`, as the API server
    /// does on write. Undecodable base64 values are left out (validation reports them).
    public var decodedData: [String: Data] {
        var out: [String: Data] = [:]
        for (k, v) in data ?? [:] { if let d = Data(base64Encoded: v) { out[k] = d } }
        for (k, v) in stringData ?? [:] { out[k] = Data(v.utf8) }
        return out
    }

    enum CodingKeys: String, CodingKey { case apiVersion, kind, metadata, type, data, stringData, immutable }

    public init(from decoder: Decoder) throws {
        (apiVersion, kind, metadata) = try Self.decodeTypeMeta(decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        type = try c.decodeIfPresent(String.self, forKey: .type)
        data = try c.decodeIfPresent([String: String].self, forKey: .data)
        stringData = try c.decodeIfPresent([String: String].self, forKey: .stringData)
        immutable = try c.decodeIfPresent(Bool.self, forKey: .immutable)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(apiVersion, forKey: .apiVersion)
        try c.encode(kind, forKey: .kind)
        try c.encode(metadata, forKey: .metadata)
        try c.encodeIfPresent(type, forKey: .type)
        try c.encodeIfPresent(data, forKey: .data)
        try c.encodeIfPresent(stringData, forKey: .stringData)
        try c.encodeIfPresent(immutable, forKey: .immutable)
    }
}

/// `v1 ConfigMap`. `binaryData` values are base64.
public struct ConfigMap: KubeResource, Equatable {
    public static let defaultAPIVersion = "v1"
    public static let kindName = "ConfigMap"
    public var apiVersion: String
    public var kind: String
    public var metadata: ObjectMeta
    public var data: [String: String]?
    public var binaryData: [String: String]?
    public var immutable: Bool?

    public init(metadata: ObjectMeta, data: [String: String]? = nil, binaryData: [String: String]? = nil) {
        apiVersion = Self.defaultAPIVersion; kind = Self.kindName
        self.metadata = metadata; self.data = data; self.binaryData = binaryData
    }

    enum CodingKeys: String, CodingKey { case apiVersion, kind, metadata, data, binaryData, immutable }

    public init(from decoder: Decoder) throws {
        (apiVersion, kind, metadata) = try Self.decodeTypeMeta(decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        data = try c.decodeIfPresent([String: String].self, forKey: .data)
        binaryData = try c.decodeIfPresent([String: String].self, forKey: .binaryData)
        immutable = try c.decodeIfPresent(Bool.self, forKey: .immutable)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(apiVersion, forKey: .apiVersion)
        try c.encode(kind, forKey: .kind)
        try c.encode(metadata, forKey: .metadata)
        try c.encodeIfPresent(data, forKey: .data)
        try c.encodeIfPresent(binaryData, forKey: .binaryData)
        try c.encodeIfPresent(immutable, forKey: .immutable)
    }
}
