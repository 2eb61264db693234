import Foundation
import Objects

/// Kubernetes' validation of Secrets and ConfigMaps (`ValidateSecret`, `ValidateSecretUpdate`,
/// `ValidateConfigMap`, `ValidateConfigMapUpdate` in pkg/apis/core/validation), with its field
/// paths and messages. A value is never quoted in a message, only keys and types: messages reach
/// kubectl, logs and Events.
enum ConfigValidation {
    typealias Add = (_ field: String, _ reason: String, _ message: String) -> Void

    /// Kubernetes' limit on the decoded size of a Secret's or ConfigMap's data (`MaxSecretSize`).
    static let maxSize = 1 << 20
    static let redacted = "\"<secret contents redacted>\""
    static let immutableMessage = "Forbidden: field is immutable when `immutable` is set"

    static func secret(_ o: JSONValue, old: JSONValue?, _ add: Add) {
        if let s = o["stringData"], s != .null {
            // Left by the store's normalization only when it could not be merged.
            if let map = s.objectValue {
                for (k, v) in map.sorted(by: { $0.key < $1.key }) where v.stringValue == nil {
                    add("stringData[\(k)]", "FieldValueInvalid", "Invalid value: \(redacted): must be a string")
                }
            } else {
                add("stringData", "FieldValueInvalid", "Invalid value: \(redacted): must be a map of key to string")
            }
        }
        let data = decodedMap(o["data"], field: "data", base64: true, add)
        var total = 0
        for key in data.keys.sorted() {
            self.key(key, field: "data", add)
            total += data[key]?.count ?? 0
        }
        if total > maxSize { add("data", "FieldValueTooLong", "Too long: must have at most \(maxSize) bytes") }

        let type = o["type"]?.stringValue ?? "Opaque"
        func required(_ key: String) { add("data[\(key)]", "FieldValueRequired", "Required value") }
        switch type {
        case "kubernetes.io/tls":
            if data["tls.crt"] == nil { required("tls.crt") }
            if data["tls.key"] == nil { required("tls.key") }
        case "kubernetes.io/basic-auth":
            // Either may be empty, but one of them must be present.
            if data["username"] == nil && data["password"] == nil { required("username"); required("password") }
        case "kubernetes.io/ssh-auth":
            if (data["ssh-privatekey"]?.count ?? 0) == 0 { required("ssh-privatekey") }
        case "kubernetes.io/dockerconfigjson":
            dockerConfig(data, key: ".dockerconfigjson", add)
        case "kubernetes.io/dockercfg":
            dockerConfig(data, key: ".dockercfg", add)
        case "kubernetes.io/service-account-token":
            if (o[path: ["metadata", "annotations", "kubernetes.io/service-account.name"]]?.stringValue ?? "").isEmpty {
                add("metadata.annotations[kubernetes.io/service-account.name]", "FieldValueRequired", "Required value")
            }
        default:
            break
        }

        guard let old else { return }
        let oldType = old["type"]?.stringValue ?? "Opaque"
        if type != oldType {
            add("type", "FieldValueInvalid", "Invalid value: \(quoted(type)): field is immutable")
        }
        if old["immutable"] == .bool(true) {
            if o["immutable"] != .bool(true) { add("immutable", "FieldValueForbidden", immutableMessage) }
            if data != decodedMap(old["data"], field: "data", base64: true, { _, _, _ in }) {
                add("data", "FieldValueForbidden", immutableMessage)
            }
        }
    }

    static func configMap(_ o: JSONValue, old: JSONValue?, _ add: Add) {
        let data = decodedMap(o["data"], field: "data", base64: false, add)
        let binary = decodedMap(o["binaryData"], field: "binaryData", base64: true, add)
        var total = 0
        for k in data.keys.sorted() {
            key(k, field: "data", add)
            if binary[k] != nil { add("data[\(k)]", "FieldValueInvalid", "Invalid value: \(quoted(k)): duplicate of key present in binaryData") }
            total += data[k]?.count ?? 0
        }
        for k in binary.keys.sorted() {
            key(k, field: "binaryData", add)
            if data[k] != nil { add("binaryData[\(k)]", "FieldValueInvalid", "Invalid value: \(quoted(k)): duplicate of key present in data") }
            total += binary[k]?.count ?? 0
        }
        if total > maxSize { add("data", "FieldValueTooLong", "Too long: must have at most \(maxSize) bytes") }

        guard let old, old["immutable"] == .bool(true) else { return }
        if o["immutable"] != .bool(true) { add("immutable", "FieldValueForbidden", immutableMessage) }
        let ignore: Add = { _, _, _ in }
        if data != decodedMap(old["data"], field: "data", base64: false, ignore) { add("data", "FieldValueForbidden", immutableMessage) }
        if binary != decodedMap(old["binaryData"], field: "binaryData", base64: true, ignore) {
            add("binaryData", "FieldValueForbidden", immutableMessage)
        }
    }

    /// A data map's values as bytes (base64-decoded with `base64`), reporting values that are
    /// not strings or not valid base64. Bad values are left out of the result.
    static func decodedMap(_ value: JSONValue?, field: String, base64: Bool, _ add: Add) -> [String: Data] {
        guard let value, value != .null else { return [:] }
        guard let map = value.objectValue else {
            add(field, "FieldValueInvalid", "Invalid value: \(redacted): must be a map of key to string")
            return [:]
        }
        var out: [String: Data] = [:]
        for (k, v) in map.sorted(by: { $0.key < $1.key }) {
            guard let s = v.stringValue else {
                add("\(field)[\(k)]", "FieldValueInvalid", "Invalid value: \(redacted): must be a \(base64 ? "base64-encoded " : "")string")
                continue
            }
            if base64 {
                guard let d = decodeBase64(s) else {
                    add("\(field)[\(k)]", "FieldValueInvalid", "Invalid value: \(redacted): illegal base64 data")
                    continue
                }
                out[k] = d
            } else {
                out[k] = Data(s.utf8)
            }
        }
        return out
    }

    /// Standard base64 with padding, as Go's encoding/json decodes []byte (which skips \r and \n).
    static func decodeBase64(_ s: String) -> Data? {
        let clean = s.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\r\n" })
            ? String(s.unicodeScalars.filter { $0 != "\r" && $0 != "\n" }.map(Character.init)) : s
        return Data(base64Encoded: clean)
    }

    /// `IsConfigMapKey`: `[-._a-zA-Z0-9]+`, at most 253 characters, not `.`, `..` or `..…`.
    static func key(_ key: String, field: String, _ add: Add) {
        var problems: [String] = []
        if key.utf8.count > 253 { problems.append("must be no more than 253 characters") }
        let valid = !key.isEmpty && key.utf8.allSatisfy {
            ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x30 && $0 <= 0x39)
                || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_")
        }
        if !valid {
            problems.append("a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
                + "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")
        }
        if key == "." { problems.append("must not be '.'") }
        else if key == ".." { problems.append("must not be '..'") }
        else if key.hasPrefix("..") { problems.append("must not start with '..'") }
        for p in problems { add("\(field)[\(key)]", "FieldValueInvalid", "Invalid value: \(quoted(key)): \(p)") }
    }

    /// `.dockerconfigjson` / `.dockercfg`: present and a JSON object (the parser's own message is
    /// not repeated: it can quote the contents).
    static func dockerConfig(_ data: [String: Data], key: String, _ add: Add) {
        guard let bytes = data[key] else {
            add("data[\(key)]", "FieldValueRequired", "Required value")
            return
        }
        let parsed = try? JSONSerialization.jsonObject(with: bytes, options: [.fragmentsAllowed])
        if !(parsed is [String: Any]) {
            add("data[\(key)]", "FieldValueInvalid", "Invalid value: \(redacted): must be a JSON object")
        }
    }

    /// Go's %q for keys and types: quotes, backslashes and control characters escaped.
    static func quoted(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if u.value < 0x20 || u.value == 0x7f { out += String(format: "\\x%02x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }
}
