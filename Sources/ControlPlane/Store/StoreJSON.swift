import Foundation
import Objects

/// Small conveniences for objects held as `JSONValue`.
extension JSONValue {
    /// Parses JSON bytes.
    public static func parse(_ bytes: [UInt8]) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
    }

    /// Parses JSON text.
    public static func parse(_ text: String) throws -> JSONValue { try parse(Array(text.utf8)) }

    /// Compact JSON with sorted keys (stable output for storage and tests).
    public var jsonBytes: [UInt8] {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? Array(e.encode(self))) ?? Array("null".utf8)
    }

    public var jsonString: String { String(decoding: jsonBytes, as: UTF8.self) }

    /// The member `key` of an object (nil for other values or a missing key); setting on a
    /// non-object makes it an object; setting nil removes the member.
    public subscript(key: String) -> JSONValue? {
        get { if case .object(let o) = self { return o[key] } else { return nil } }
        set {
            var o: [String: JSONValue]
            if case .object(let existing) = self { o = existing } else { o = [:] }
            o[key] = newValue
            self = .object(o)
        }
    }

    /// The value at a dotted path of object members (`metadata.name`).
    public subscript(path path: [String]) -> JSONValue? {
        get {
            var v: JSONValue? = self
            for k in path { v = v?[k] }
            return v
        }
        set {
            guard let first = path.first else { if let n = newValue { self = n }; return }
            if path.count == 1 { self[first] = newValue; return }
            var child = self[first] ?? .object([:])
            child[path: Array(path.dropFirst())] = newValue
            self[first] = child
        }
    }

    /// The JSON form of a typed value (an Objects type such as `Service`), to store it.
    public init<T: Encodable>(encoding value: T) throws {
        self = try JSONValue.parse(Array(JSONEncoder().encode(value)))
    }

    /// Decodes this value as a typed object (`try o.decode(as: Service.self)`).
    public func decode<T: Decodable>(as type: T.Type) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(jsonBytes))
    }

    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    public var intValue: Int? {
        switch self {
        case .int(let i): return i
        case .double(let d): return Int(exactly: d)  // nil when fractional or beyond Int, never a trap
        default: return nil
        }
    }
    public var objectValue: [String: JSONValue]? { if case .object(let o) = self { return o } else { return nil } }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { return a } else { return nil } }

    /// A `[String: String]` member (labels, annotations); non-string values are skipped.
    public var stringMap: [String: String] {
        guard let o = objectValue else { return [:] }
        var m: [String: String] = [:]
        for (k, v) in o { if let s = v.stringValue { m[k] = s } }
        return m
    }

    // Metadata accessors used throughout the store and the API server.
    public var name: String { self[path: ["metadata", "name"]]?.stringValue ?? "" }
    public var namespace: String { self[path: ["metadata", "namespace"]]?.stringValue ?? "" }
    public var uid: String { self[path: ["metadata", "uid"]]?.stringValue ?? "" }
    public var resourceVersion: String { self[path: ["metadata", "resourceVersion"]]?.stringValue ?? "" }
    public var labels: [String: String] { self[path: ["metadata", "labels"]]?.stringMap ?? [:] }
}
