import Foundation
import Objects

/// Reads the few protobuf bodies kubectl's `create namespace|configmap|secret` generators send
/// (`application/vnd.kubernetes.protobuf`: the `k8s\0` magic, then a `runtime.Unknown` holding
/// the object), into the same JSON the rest of the server uses. Other kinds answer 415.
enum APIProtobuf {
    enum Field {
        case varint(UInt64)
        case bytes([UInt8])
    }

    /// (field number, value) pairs of one message; nil when the bytes are not protobuf.
    static func fields(_ b: [UInt8]) -> [(Int, Field)]? {
        var out: [(Int, Field)] = []
        var i = 0
        func varint() -> UInt64? {
            var v: UInt64 = 0, shift: UInt64 = 0
            while i < b.count, shift < 64 {
                let byte = b[i]; i += 1
                v |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return v }
                shift += 7
            }
            return nil
        }
        while i < b.count {
            guard let key = varint() else { return nil }
            let number = Int(key >> 3)
            switch key & 7 {
            case 0:
                guard let v = varint() else { return nil }
                out.append((number, .varint(v)))
            case 2:
                guard let n = varint(), n <= UInt64(b.count - i) else { return nil }
                out.append((number, .bytes(Array(b[i..<i + Int(n)]))))
                i += Int(n)
            case 1: guard i + 8 <= b.count else { return nil }; i += 8
            case 5: guard i + 4 <= b.count else { return nil }; i += 4
            default: return nil
            }
        }
        return out
    }

    static func string(_ f: Field) -> String? {
        if case .bytes(let b) = f { return String(decoding: b, as: UTF8.self) }
        return nil
    }

    static func mapEntry(_ f: Field, base64Value: Bool = false) -> (String, JSONValue)? {
        guard case .bytes(let b) = f, let entry = fields(b) else { return nil }
        var key = "", value: [UInt8] = []
        for (n, v) in entry {
            if n == 1, let s = string(v) { key = s }
            if n == 2, case .bytes(let x) = v { value = x }
        }
        return (key, .string(base64Value ? Data(value).base64EncodedString() : String(decoding: value, as: UTF8.self)))
    }

    static func metadata(_ b: [UInt8]) -> JSONValue {
        var m: [String: JSONValue] = [:]
        var labels: [String: JSONValue] = [:], annotations: [String: JSONValue] = [:]
        for (n, v) in fields(b) ?? [] {
            switch n {
            case 1, 2, 3:
                if let text = string(v), !text.isEmpty { m[["", "name", "generateName", "namespace"][n]] = .string(text) }
            case 11: if let (k, x) = mapEntry(v) { labels[k] = x }
            case 12: if let (k, x) = mapEntry(v) { annotations[k] = x }
            default: break
            }
        }
        if !labels.isEmpty { m["labels"] = .object(labels) }
        if !annotations.isEmpty { m["annotations"] = .object(annotations) }
        return .object(m)
    }

    /// The object in a protobuf body, or nil for kinds this reader does not know.
    static func decode(_ body: [UInt8]) -> JSONValue? {
        guard body.count > 4, Array(body[0..<4]) == [0x6B, 0x38, 0x73, 0x00], let unknown = fields(Array(body[4...])) else { return nil }
        var apiVersion = "", kind = "", raw: [UInt8] = []
        for (n, v) in unknown {
            if n == 1, case .bytes(let tm) = v {
                for (k, x) in fields(tm) ?? [] {
                    if k == 1 { apiVersion = string(x) ?? "" }
                    if k == 2 { kind = string(x) ?? "" }
                }
            }
            if n == 2, case .bytes(let r) = v { raw = r }
        }
        guard apiVersion == "v1", ["Namespace", "ConfigMap", "Secret"].contains(kind), let object = fields(raw) else { return nil }
        var o: [String: JSONValue] = ["apiVersion": .string(apiVersion), "kind": .string(kind)]
        var data: [String: JSONValue] = [:], binary: [String: JSONValue] = [:], stringData: [String: JSONValue] = [:]
        for (n, v) in object {
            switch (kind, n) {
            case (_, 1): if case .bytes(let b) = v { o["metadata"] = metadata(b) }
            case ("ConfigMap", 2): if let (k, x) = mapEntry(v) { data[k] = x }
            case ("ConfigMap", 3): if let (k, x) = mapEntry(v, base64Value: true) { binary[k] = x }
            case ("Secret", 2): if let (k, x) = mapEntry(v, base64Value: true) { data[k] = x }
            case ("Secret", 3): o["type"] = string(v).map(JSONValue.string)
            case ("Secret", 4): if let (k, x) = mapEntry(v) { stringData[k] = x }
            case ("ConfigMap", 4), ("Secret", 5): if case .varint(let x) = v { o["immutable"] = .bool(x != 0) }
            default: break
            }
        }
        if !data.isEmpty { o["data"] = .object(data) }
        if !binary.isEmpty { o["binaryData"] = .object(binary) }
        if !stringData.isEmpty { o["stringData"] = .object(stringData) }
        return .object(o)
    }
}
