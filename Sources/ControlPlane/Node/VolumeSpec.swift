import Foundation
import Objects

/// A pod's `spec.volumes[]` entry, read from the pod's raw JSON (the Objects model keeps volumes
/// as `JSONValue` so manifests with any volume kind still decode and round-trip; the agent decides
/// here which kinds it can run).
struct VolumeSpec: Equatable {
    let name: String
    let source: Source

    enum Source: Equatable {
        /// `medium` "" (the pod's directory on disk) or "Memory" (a tmpfs); `sizeLimit` in bytes,
        /// with the quantity as written for messages.
        case emptyDir(medium: String, sizeLimit: Int64?, sizeLimitText: String?)
        /// `type` "" (no check), DirectoryOrCreate, Directory, FileOrCreate, File, Socket,
        /// CharDevice or BlockDevice.
        case hostPath(path: String, type: String)
        /// A ConfigMap or a Secret projected into files.
        case projected(Projection)
        case persistentVolumeClaim(claimName: String, readOnly: Bool)
    }

    /// `configMap` / `secret`: which object, which keys to which paths, with which modes.
    struct Projection: Equatable {
        /// "ConfigMap" or "Secret".
        let kind: String
        let objectName: String
        /// nil: every key, each to a file named after it.
        let items: [Item]?
        let defaultMode: Int
        let optional: Bool
    }

    struct Item: Equatable {
        let key: String
        let path: String
        let mode: Int?
    }

    /// Kubernetes' default for `defaultMode` (0644), for ConfigMaps and Secrets alike.
    static let defaultFileMode = 0o644

    static let supportedKinds = ["emptyDir", "hostPath", "configMap", "secret", "persistentVolumeClaim"]
    static let hostPathTypes = ["", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice", "BlockDevice"]

    /// Parses `spec.volumes[index]`; the error names the field.
    static func parse(_ v: JSONValue, index: Int) throws -> VolumeSpec {
        let field = "spec.volumes[\(index)]"
        guard let name = v["name"]?.stringValue, !name.isEmpty else { throw VolumeError.invalid("\(field).name: required") }
        let field2 = "\(field) (\"\(name)\")"
        if let e = v["emptyDir"] {
            let medium = e["medium"]?.stringValue ?? ""
            guard medium == "" || medium == "Memory" else {
                throw VolumeError.invalid("\(field2).emptyDir.medium: unsupported value \"\(medium)\" (\"\" or \"Memory\")")
            }
            var limit: Int64?, text: String?
            if let q = e["sizeLimit"], q != .null {
                let s = q.stringValue ?? q.intValue.map(String.init) ?? ""
                guard let bytes = Quantity.bytes(s) else {
                    throw VolumeError.invalid("\(field2).emptyDir.sizeLimit: \"\(s)\" is not a quantity (like 64Mi or 1G)")
                }
                limit = bytes; text = s
            }
            return VolumeSpec(name: name, source: .emptyDir(medium: medium, sizeLimit: limit, sizeLimitText: text))
        }
        if let h = v["hostPath"] {
            guard let path = h["path"]?.stringValue, path.hasPrefix("/") else {
                throw VolumeError.invalid("\(field2).hostPath.path: an absolute path is required")
            }
            let type = h["type"]?.stringValue ?? ""
            guard hostPathTypes.contains(type) else {
                throw VolumeError.invalid("\(field2).hostPath.type: unsupported value \"\(type)\" (one of \(hostPathTypes.dropFirst().joined(separator: ", ")) or \"\")")
            }
            return VolumeSpec(name: name, source: .hostPath(path: path, type: type))
        }
        for (key, kind, nameKey) in [("configMap", "ConfigMap", "name"), ("secret", "Secret", "secretName")] {
            guard let c = v[key] else { continue }
            guard let object = c[nameKey]?.stringValue, !object.isEmpty else {
                throw VolumeError.invalid("\(field2).\(key).\(nameKey): required")
            }
            let defaultMode = try mode(c["defaultMode"], "\(field2).\(key).defaultMode") ?? defaultFileMode
            var items: [Item]?
            // An empty list projects every key, as a missing one does (the kubelet checks the length).
            if let list = c["items"]?.arrayValue, !list.isEmpty {
                items = try list.enumerated().map { i, item in
                    let f = "\(field2).\(key).items[\(i)]"
                    guard let k = item["key"]?.stringValue, !k.isEmpty else { throw VolumeError.invalid("\(f).key: required") }
                    guard let p = item["path"]?.stringValue else { throw VolumeError.invalid("\(f).path: required") }
                    try checkRelativePath(p, "\(f).path")
                    return Item(key: k, path: p, mode: try mode(item["mode"], "\(f).mode"))
                }
            }
            return VolumeSpec(name: name, source: .projected(Projection(
                kind: kind, objectName: object, items: items, defaultMode: defaultMode,
                optional: c["optional"] == .bool(true))))
        }
        if let p = v["persistentVolumeClaim"] {
            guard let claim = p["claimName"]?.stringValue, !claim.isEmpty else {
                throw VolumeError.invalid("\(field2).persistentVolumeClaim.claimName: required")
            }
            return VolumeSpec(name: name, source: .persistentVolumeClaim(claimName: claim, readOnly: p["readOnly"] == .bool(true)))
        }
        let kinds = (v.objectValue?.keys.filter { $0 != "name" }.sorted() ?? []).joined(separator: ", ")
        throw VolumeError.invalid("\(field2): unsupported volume type\(kinds.isEmpty ? "" : " \(kinds)") (supported: \(supportedKinds.joined(separator: ", ")))")
    }

    /// A file mode 0…0777 (JSON carries it in decimal: 420 is 0644).
    static func mode(_ v: JSONValue?, _ field: String) throws -> Int? {
        guard let v, v != .null else { return nil }
        guard let m = v.intValue, (0...0o777).contains(m) else {
            throw VolumeError.invalid("\(field): must be a file mode between 0 and 0777 (511)")
        }
        return m
    }

    /// Kubernetes' rule for `items[].path` and `subPath`: relative, no `..` element.
    static func checkRelativePath(_ p: String, _ field: String) throws {
        guard !p.isEmpty else { throw VolumeError.invalid("\(field): must not be empty") }
        guard !p.hasPrefix("/") else { throw VolumeError.invalid("\(field): must be a relative path, not \"\(p)\"") }
        guard !p.split(separator: "/", omittingEmptySubsequences: false).contains(".."), !p.hasPrefix("..") else {
            throw VolumeError.invalid("\(field): must not contain or start with '..' (\"\(p)\")")
        }
    }
}

/// A container's `volumeMounts[]` entry.
struct VolumeMountSpec: Equatable {
    let name: String
    let mountPath: String
    let readOnly: Bool
    let subPath: String

    static func parse(_ v: JSONValue, container: String, index: Int) throws -> VolumeMountSpec {
        let field = "spec.containers[\"\(container)\"].volumeMounts[\(index)]"
        guard let name = v["name"]?.stringValue, !name.isEmpty else { throw VolumeError.invalid("\(field).name: required") }
        guard let path = v["mountPath"]?.stringValue, path.hasPrefix("/") else {
            throw VolumeError.invalid("\(field).mountPath: an absolute path is required")
        }
        guard !path.split(separator: "/").contains("..") else { throw VolumeError.invalid("\(field).mountPath: must not contain '..'") }
        let sub = v["subPath"]?.stringValue ?? ""
        if !sub.isEmpty { try VolumeSpec.checkRelativePath(sub, "\(field).subPath") }
        return VolumeMountSpec(name: name, mountPath: path, readOnly: v["readOnly"] == .bool(true), subPath: sub)
    }
}

/// Why a pod's volumes cannot be set up (yet).
struct VolumeError: Error, CustomStringConvertible {
    enum Kind {
        /// The spec is wrong: retrying cannot help.
        case invalid
        /// A ConfigMap/Secret or one of its keys is missing (CreateContainerConfigError, retried).
        case config
        /// A hostPath check or a mount failed (FailedMount, retried).
        case mount
        /// The claim is missing or unbound: the pod is not schedulable yet (retried).
        case unschedulable
    }
    let kind: Kind
    let message: String
    var description: String { message }

    static func invalid(_ m: String) -> VolumeError { VolumeError(kind: .invalid, message: m) }
    static func config(_ m: String) -> VolumeError { VolumeError(kind: .config, message: m) }
    static func mount(_ m: String) -> VolumeError { VolumeError(kind: .mount, message: m) }
}

/// Kubernetes resource quantities for sizes: `128974848`, `129e6`, `129M`, `123Mi`, `1.5Gi`,
/// `64Ki`; decimal suffixes k M G T P E, binary Ki … Ei, `m` (milli) rounded up.
enum Quantity {
    static func bytes(_ text: String) -> Int64? {
        let s = text.trimmingCharacters(in: .whitespaces)
        guard !s.isEmpty else { return nil }
        let suffixes: [(String, Double)] = [
            ("Ki", 0x1p10), ("Mi", 0x1p20), ("Gi", 0x1p30), ("Ti", 0x1p40), ("Pi", 0x1p50), ("Ei", 0x1p60),
            ("k", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12), ("P", 1e15), ("E", 1e18), ("m", 1e-3),
        ]
        var number = Substring(s), scale = 1.0
        if let (suf, m) = suffixes.first(where: { s.hasSuffix($0.0) }) {
            number = s.dropLast(suf.count); scale = m
        }
        guard !number.isEmpty, number.allSatisfy({ "0123456789.eE+-".contains($0) }),
              let value = Double(number), value >= 0, value.isFinite else { return nil }
        let b = (value * scale).rounded(.up)
        guard b < 0x1p62 else { return nil }
        return Int64(b)
    }
}
