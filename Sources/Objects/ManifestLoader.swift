import Foundation
import Yams

/// An object read from a manifest, with where it came from.
public struct LoadedObject: Sendable, Equatable {
    public var object: KubeObject
    public var file: String
    /// 1-based position of the YAML document in the file.
    public var document: Int
    /// Index in `items` when the object came from a `kind: List` document.
    public var item: Int?
    /// The document as written (JSON-shaped), for storing kinds this module does not model.
    public var raw: JSONValue?

    public init(object: KubeObject, file: String, document: Int, item: Int? = nil, raw: JSONValue? = nil) {
        self.object = object; self.file = file; self.document = document; self.item = item; self.raw = raw
    }
}

/// Something wrong in a manifest, precise enough to fix it without guessing.
public struct ManifestProblem: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    /// 1-based document index; nil when the problem concerns the whole file.
    public var document: Int?
    public var kind: String?
    public var namespace: String?
    public var name: String?
    /// e.g. `spec.rules[0].http.paths[1].pathType`; empty when the problem is not about a field.
    public var field: String
    public var message: String
    /// 1-based position in the file when known (YAML syntax errors).
    public var line: Int?
    public var column: Int?

    public init(file: String, document: Int?, kind: String? = nil, namespace: String? = nil, name: String? = nil,
                field: String = "", message: String, line: Int? = nil, column: Int? = nil) {
        self.file = file; self.document = document; self.kind = kind; self.namespace = namespace
        self.name = name; self.field = field; self.message = message; self.line = line; self.column = column
    }

    /// `configs/demo/app.yaml (document 2, Ingress default/web): spec.rules[0].host: message`
    public var description: String {
        var where_: [String] = []
        if let document { where_.append("document \(document)") }
        if let kind {
            var object = kind
            if let name, !name.isEmpty {
                object += " " + (namespace.map { "\($0)/\(name)" } ?? name)
            }
            where_.append(object)
        }
        var out = file
        if !where_.isEmpty { out += " (" + where_.joined(separator: ", ") + ")" }
        out += ": "
        if let line {
            out += "line \(line)"
            if let column { out += ", column \(column)" }
            out += ": "
        }
        if !field.isEmpty { out += field + ": " }
        return out + message
    }
}

public struct ManifestLoadResult: Sendable {
    public var objects: [LoadedObject] = []
    public var problems: [ManifestProblem] = []
    public init(objects: [LoadedObject] = [], problems: [ManifestProblem] = []) {
        self.objects = objects; self.problems = problems
    }
    public var kubeObjects: [KubeObject] { objects.map(\.object) }
}

/// Reads Kubernetes manifests (YAML or JSON, several documents per file, `kind: List`),
/// decodes the kinds Portico models, validates them as the API server would (including strict
/// field validation: unknown fields are errors) and reports every problem it finds.
/// An object with a problem is not loaded; the others are.
public enum ManifestLoader {
    public static let extensions: Set<String> = ["yaml", "yml", "json"]

    /// Each path is a file or a directory (its `*.yaml`, `*.yml` and `*.json` files, sorted,
    /// not recursive).
    public static func load(paths: [String]) -> ManifestLoadResult {
        var result = ManifestLoadResult()
        let fm = FileManager.default
        for path in paths {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else {
                result.problems.append(ManifestProblem(file: path, document: nil, message: "no such file or directory"))
                continue
            }
            var files: [String] = []
            if isDirectory.boolValue {
                do {
                    files = try fm.contentsOfDirectory(atPath: path)
                        .filter { extensions.contains(($0 as NSString).pathExtension.lowercased()) && !$0.hasPrefix(".") }
                        .sorted()
                        .map { path.hasSuffix("/") ? path + $0 : path + "/" + $0 }
                } catch {
                    result.problems.append(ManifestProblem(file: path, document: nil, message: "cannot list directory: \(error.localizedDescription)"))
                }
            } else {
                files = [path]
            }
            for file in files {
                guard let data = fm.contents(atPath: file) else {
                    result.problems.append(ManifestProblem(file: file, document: nil, message: "cannot read file"))
                    continue
                }
                guard let text = String(data: data, encoding: .utf8) else {
                    result.problems.append(ManifestProblem(file: file, document: nil, message: "file is not valid UTF-8"))
                    continue
                }
                let r = load(yaml: text, file: file)
                result.objects += r.objects
                result.problems += r.problems
            }
        }
        return result
    }

    /// Loads manifest text; `file` is used in results and messages only.
    public static func load(yaml text: String, file: String) -> ManifestLoadResult {
        var result = ManifestLoadResult()
        var document = 0
        do {
            var documents = try Yams.compose_all(yaml: text)
            // Without aliases a document has at most about one node per byte; aliases of aliases
            // expand exponentially when decoded ("billion laughs"), so cap the expanded size.
            let budget = Swift.max(50_000, 2 * text.utf8.count)
            while let node = documents.next() {
                document += 1
                if expandedSize(node, limit: budget) > budget {
                    result.problems.append(ManifestProblem(file: file, document: document,
                        message: "the document expands to more than \(budget) YAML nodes through aliases"))
                    continue
                }
                loadDocument(node, file: file, document: document, into: &result)
            }
            if let error = documents.error { throw error }
        } catch {
            result.problems.append(yamlProblem(error, file: file, document: document + 1))
        }
        return result
    }

    // MARK: Documents

    /// Nodes in `node` with every alias expanded (Yams resolves `*a` to the anchored node), counted
    /// only up to just past `limit`, so the count itself is bounded work.
    static func expandedSize(_ node: Node, limit: Int) -> Int {
        var count = 0
        func visit(_ n: Node) {
            count += 1
            if count > limit { return }
            switch n {
            case .mapping(let m):
                for (k, v) in m {
                    visit(k); if count > limit { return }
                    visit(v); if count > limit { return }
                }
            case .sequence(let s):
                for v in s { visit(v); if count > limit { return } }
            default:
                break
            }
        }
        visit(node)
        return count
    }

    private static func loadDocument(_ node: Node, file: String, document: Int, into result: inout ManifestLoadResult) {
        if node.null != nil { return }   // an empty document (e.g. a trailing `---`)
        guard let mapping = node.mapping else {
            result.problems.append(ManifestProblem(file: file, document: document,
                message: "a document must be a mapping with apiVersion and kind, not a \(nodeKind(node))"))
            return
        }
        let kind = mapping["kind"]?.scalar?.string
        if let kind, kind.hasSuffix("List"), mapping["items"] != nil {
            guard let items = mapping["items"]?.sequence else {
                if mapping["items"]?.null == nil {
                    result.problems.append(ManifestProblem(file: file, document: document, kind: kind,
                        field: "items", message: "must be a list of objects"))
                }
                return
            }
            for (i, item) in items.enumerated() {
                loadObject(item, file: file, document: document, item: i, prefix: "items[\(i)].", into: &result)
            }
            return
        }
        loadObject(node, file: file, document: document, item: nil, prefix: "", into: &result)
    }

    private static func loadObject(_ node: Node, file: String, document: Int, item: Int?, prefix: String,
                                   into result: inout ManifestLoadResult) {
        func problem(_ field: String, _ message: String, kind: String? = nil, namespace: String? = nil,
                     name: String? = nil) -> ManifestProblem {
            ManifestProblem(file: file, document: document, kind: kind, namespace: namespace, name: name,
                            field: prefix + field, message: message)
        }
        guard let mapping = node.mapping else {
            result.problems.append(problem("", "an object must be a mapping with apiVersion and kind, not a \(nodeKind(node))"))
            return
        }
        let apiVersion = mapping["apiVersion"]?.scalar?.string ?? ""
        let kind = mapping["kind"]?.scalar?.string ?? ""
        let meta = mapping["metadata"]?.mapping
        let name = meta?["name"]?.scalar?.string
        let namespace = meta?["namespace"]?.scalar?.string ?? "default"
        var missing = false
        if apiVersion.isEmpty {
            result.problems.append(problem("apiVersion", "required value: every object needs apiVersion and kind",
                                           kind: kind.isEmpty ? nil : kind, name: name))
            missing = true
        }
        if kind.isEmpty {
            result.problems.append(problem("kind", "required value: every object needs apiVersion and kind", name: name))
            missing = true
        }
        if missing { return }

        guard let entry = KubeObject.kind(apiVersion: apiVersion, kind: kind) else {
            if let other = KubeObject.kinds.first(where: { $0.kind == kind && apiGroup($0.apiVersion) == apiGroup(apiVersion) }) {
                result.problems.append(problem("apiVersion", "unsupported value \(NameValidation.quoted(apiVersion)) for kind \(kind): must be \(other.apiVersion)",
                                               kind: kind, namespace: namespace, name: name))
                return
            }
            let object = KubeObject.unknown(apiVersion: apiVersion, kind: kind, name: name ?? "")
            let raw = try? YAMLDecoder().decode(JSONValue.self, from: node)
            result.objects.append(LoadedObject(object: object, file: file, document: document, item: item, raw: raw))
            return
        }
        let object: KubeObject
        do {
            object = try YAMLDecoder().decode(KubeObjectBox.self, from: node, userInfo: [KubeObjectBox.kindKey: entry]).object
        } catch let error as DecodingError {
            let (field, message) = describe(error)
            result.problems.append(problem(field, message, kind: kind, namespace: namespace, name: name))
            return
        } catch {
            result.problems.append(problem("", "\(error)", kind: kind, namespace: namespace, name: name))
            return
        }
        var problems: [ManifestProblem] = []
        for unknown in unknownFields(node, object) {
            problems.append(problem(unknown.field, unknown.message, kind: kind, namespace: namespace, name: name))
        }
        for error in object.validate() {
            problems.append(problem(error.field, error.message, kind: kind, namespace: namespace, name: name))
        }
        if problems.isEmpty {
            result.objects.append(LoadedObject(object: object, file: file, document: document, item: item,
                                               raw: try? YAMLDecoder().decode(JSONValue.self, from: node)))
        } else {
            result.problems += problems
        }
    }

    private static func apiGroup(_ apiVersion: String) -> String {
        guard let slash = apiVersion.lastIndex(of: "/") else { return "" }
        return String(apiVersion[..<slash])
    }

    private static func nodeKind(_ node: Node) -> String {
        switch node {
        case .scalar: return "scalar"
        case .sequence: return "list"
        case .mapping: return "mapping"
        case .alias: return "alias"
        }
    }

    // MARK: Errors

    static func yamlProblem(_ error: Error, file: String, document: Int) -> ManifestProblem {
        if let y = error as? YamlError {
            switch y {
            case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _),
                 let .composer(context, problem, mark, _):
                var message = "YAML syntax error: \(problem)"
                if let context { message += " \(context.text)" }
                return ManifestProblem(file: file, document: document, message: message,
                                       line: mark.line, column: mark.column)
            case let .reader(problem, offset, _, _):
                return ManifestProblem(file: file, document: document,
                                       message: "cannot read YAML: \(problem)" + (offset.map { " at byte \($0)" } ?? ""))
            default:
                return ManifestProblem(file: file, document: document, message: "YAML error: \(y)")
            }
        }
        return ManifestProblem(file: file, document: document, message: "YAML error: \(error)")
    }

    /// Turns a coding path into `spec.rules[0].http.paths[1].pathType`.
    public static func fieldPath(_ path: [CodingKey]) -> String {
        var out = ""
        for key in path {
            if let i = key.intValue {
                out += "[\(i)]"
            } else {
                if !out.isEmpty { out += "." }
                out += key.stringValue
            }
        }
        return out
    }

    static func describe(_ error: DecodingError) -> (field: String, message: String) {
        switch error {
        case let .keyNotFound(key, context):
            return (fieldPath(context.codingPath + [key]), "required value")
        case let .valueNotFound(type, context):
            return (fieldPath(context.codingPath), "required value: expected \(typeName(type))")
        case let .typeMismatch(type, context):
            return (fieldPath(context.codingPath), "invalid type: expected \(typeName(type))")
        case let .dataCorrupted(context):
            return (fieldPath(context.codingPath), "invalid value: \(context.debugDescription)")
        @unknown default:
            return ("", "\(error)")
        }
    }

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int.Type, is Int64.Type, is Int32.Type: return "an integer"
        case is Bool.Type: return "a boolean (true or false)"
        case is IntOrString.Type: return "an integer or a string"
        case is [String: String].Type: return "a map of strings"
        default:
            let name = String(describing: type)
            if name.hasPrefix("Array") || name.hasPrefix("[") { return "a list" }
            if name.hasPrefix("Dictionary") { return "a map" }
            return "an object"
        }
    }

    // MARK: Strict field validation

    /// Fields present in the manifest that the decoded object does not carry: the object is
    /// re-encoded and every key of the input must be found at the same place in the output.
    static func unknownFields(_ node: Node, _ object: KubeObject) -> [FieldError] {
        guard let data = try? JSONEncoder().encode(object),
              let encoded = try? JSONSerialization.jsonObject(with: data) else { return [] }
        var out: [FieldError] = []
        compare(node, encoded, path: "", into: &out)
        return out
    }

    private static func compare(_ node: Node, _ encoded: Any, path: String, into out: inout [FieldError]) {
        switch node {
        case .mapping(let mapping):
            guard let dict = encoded as? [String: Any] else { return }
            for (keyNode, value) in mapping {
                if keyNode.tag.rawValue == Tag.Name.merge.rawValue {
                    // `<<: *anchor` merges the anchored mapping(s) into this one.
                    for merged in value.sequence.map(Array.init) ?? [value] {
                        compare(merged, encoded, path: path, into: &out)
                    }
                    continue
                }
                guard let key = keyNode.string else { continue }
                let field = path.isEmpty ? key : "\(path).\(key)"
                if let sub = dict[key] {
                    compare(value, sub, path: field, into: &out)
                } else if value.null == nil {
                    out.append(FieldError(field, "unknown field \(NameValidation.quoted(key))"))
                }
            }
        case .sequence(let sequence):
            guard let array = encoded as? [Any] else { return }
            for (i, value) in sequence.enumerated() where i < array.count {
                compare(value, array[i], path: "\(path)[\(i)]", into: &out)
            }
        default:
            return
        }
    }
}

/// Decodes the kind chosen by the loader (passed in `userInfo`), so the decoder's coding paths
/// start at the object's root.
struct KubeObjectBox: Decodable {
    static let kindKey = CodingUserInfoKey(rawValue: "portico.kind")!
    let object: KubeObject
    init(from decoder: Decoder) throws {
        guard let kind = decoder.userInfo[KubeObjectBox.kindKey] as? KubeObject.Kind else {
            object = try KubeObject(from: decoder)
            return
        }
        object = try kind.decode(decoder)
    }
}
