/// What every kind of object has: its type identity, `metadata`, and self-validation.
public protocol KubeResource: Codable, Sendable {
    /// `apiVersion` written when the object is created in code (e.g. `networking.k8s.io/v1`).
    static var defaultAPIVersion: String { get }
    static var kindName: String { get }
    var apiVersion: String { get set }
    var kind: String { get set }
    var metadata: ObjectMeta { get set }
    /// Field-level validation beyond what decoding checks (Kubernetes' `ValidateX` rules).
    func validate() -> [FieldError]
}

extension KubeResource {
    public var name: String { metadata.name ?? "" }
    public var namespace: String { metadata.namespace }
    /// `Kind namespace/name`, as used in messages.
    public var displayName: String { "\(kind) \(metadata.namespace)/\(metadata.name ?? "")" }
}

/// Decodes `apiVersion`, `kind` and `metadata` with defaults for the first two, so items of a
/// Kubernetes list response (which omit them) decode too.
struct TypeMetaKeys: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
    static let apiVersion = TypeMetaKeys(stringValue: "apiVersion")
    static let kind = TypeMetaKeys(stringValue: "kind")
    static let metadata = TypeMetaKeys(stringValue: "metadata")
}

extension KubeResource {
    static func decodeTypeMeta(_ decoder: Decoder) throws -> (String, String, ObjectMeta) {
        let c = try decoder.container(keyedBy: TypeMetaKeys.self)
        let apiVersion = try c.decodeIfPresent(String.self, forKey: .apiVersion) ?? defaultAPIVersion
        let kind = try c.decodeIfPresent(String.self, forKey: .kind) ?? kindName
        let metadata = try c.decodeIfPresent(ObjectMeta.self, forKey: .metadata) ?? ObjectMeta()
        return (apiVersion, kind, metadata)
    }

    func encodeTypeMeta(_ encoder: Encoder) throws {
        var c = encoder.container(keyedBy: TypeMetaKeys.self)
        try c.encode(apiVersion, forKey: .apiVersion)
        try c.encode(kind, forKey: .kind)
        try c.encode(metadata, forKey: .metadata)
    }
}

/// One validation finding: a field path (`spec.rules[0].host`) and what is wrong with it.
public struct FieldError: Sendable, Equatable, CustomStringConvertible {
    public var field: String
    public var message: String
    public init(_ field: String, _ message: String) { self.field = field; self.message = message }
    public var description: String { field.isEmpty ? message : "\(field): \(message)" }
}
