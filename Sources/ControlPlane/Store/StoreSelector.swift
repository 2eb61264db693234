import Objects

/// A Kubernetes label selector in its string form (`app=web,tier!=db,env in (a,b),!legacy`).
public struct LabelSelector: Sendable, Equatable {
    public enum Requirement: Sendable, Equatable {
        case equals(String, String)
        case notEquals(String, String)
        case isIn(String, Set<String>)
        case notIn(String, Set<String>)
        case exists(String)
        case doesNotExist(String)
    }

    public var requirements: [Requirement]

    /// Parses the string form; throws BadRequest naming the bad part.
    public init(_ text: String) throws {
        requirements = []
        for part in LabelSelector.split(text) {
            let p = part.trimmingCharacters(in: .whitespaces)
            if p.isEmpty { continue }
            requirements.append(try LabelSelector.requirement(p))
        }
    }

    public init(matchLabels: [String: String]) {
        requirements = matchLabels.sorted { $0.key < $1.key }.map { .equals($0.key, $0.value) }
    }

    public func matches(_ labels: [String: String]) -> Bool {
        requirements.allSatisfy { r in
            switch r {
            case .equals(let k, let v): return labels[k] == v
            case .notEquals(let k, let v): return labels[k] != v
            case .isIn(let k, let vs): return labels[k].map { vs.contains($0) } ?? false
            case .notIn(let k, let vs): return labels[k].map { !vs.contains($0) } ?? true
            case .exists(let k): return labels[k] != nil
            case .doesNotExist(let k): return labels[k] == nil
            }
        }
    }

    /// Splits on commas outside parentheses.
    static func split(_ text: String) -> [String] {
        var parts: [String] = [], current = "", depth = 0
        for c in text {
            if c == "(" { depth += 1 } else if c == ")" { depth -= 1 }
            if c == "," && depth == 0 { parts.append(current); current = "" } else { current.append(c) }
        }
        parts.append(current)
        return parts
    }

    static func requirement(_ p: String) throws -> Requirement {
        func bad() -> StoreError { StoreError(.badRequest, "unable to parse requirement: \"\(p)\"") }
        if p.hasPrefix("!") {
            let k = String(p.dropFirst()).trimmingCharacters(in: .whitespaces)
            guard !k.isEmpty else { throw bad() }
            return .doesNotExist(k)
        }
        for (op, make) in [("!=", Requirement.notEquals), ("==", Requirement.equals), ("=", Requirement.equals)] {
            if let r = p.range(of: op) {
                let k = p[..<r.lowerBound].trimmingCharacters(in: .whitespaces)
                let v = p[r.upperBound...].trimmingCharacters(in: .whitespaces)
                guard !k.isEmpty else { throw bad() }
                return make(k, v)
            }
        }
        let words = p.split(separator: " ", maxSplits: 1).map(String.init)
        if words.count == 2 {
            let rest = words[1].trimmingCharacters(in: .whitespaces)
            for (op, notIn) in [("in", false), ("notin", true)] where rest.hasPrefix(op) {
                let list = rest.dropFirst(op.count).trimmingCharacters(in: .whitespaces)
                guard list.hasPrefix("("), list.hasSuffix(")") else { throw bad() }
                let values = Set(list.dropFirst().dropLast().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
                return notIn ? .notIn(words[0], values) : .isIn(words[0], values)
            }
            throw bad()
        }
        return .exists(p)
    }
}

/// A field selector (`=`, `==`, `!=`) on `metadata.name`, `metadata.namespace`, and the other
/// fields Kubernetes supports (`supported`): `involvedObject.name` of Events (what `kubectl
/// describe` asks for), `spec.nodeName` and `status.phase` of Pods, `type` of Secrets … Values
/// compare as text; a missing field is the empty string.
public struct FieldSelector: Sendable, Equatable {
    public var requirements: [(field: String, value: String, equal: Bool)]

    public init(_ text: String) throws {
        requirements = []
        for part in text.split(separator: ",") {
            let p = String(part).trimmingCharacters(in: .whitespaces)
            if p.isEmpty { continue }
            var op = "="
            if p.contains("!=") { op = "!=" } else if p.contains("==") { op = "==" }
            guard let r = p.range(of: op) else { throw StoreError(.badRequest, "invalid field selector: \"\(p)\"") }
            let field = String(p[..<r.lowerBound]), value = String(p[r.upperBound...])
            guard FieldSelector.supported.contains(field) else {
                throw StoreError(.badRequest, "field label not supported: \(field)")
            }
            requirements.append((field, value, op != "!="))
        }
    }

    /// The field labels Kubernetes supports for the kinds served (metadata for all; Events'
    /// involvedObject and reason; Pods' node, phase and IP; Secrets' type; Namespaces' phase).
    public static let supported: Set<String> = [
        "metadata.name", "metadata.namespace",
        "involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
        "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
        "reason", "reportingComponent", "source", "type",
        "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
        "status.phase", "status.podIP", "status.nominatedNodeName",
    ]

    public func matches(_ object: JSONValue) -> Bool {
        requirements.allSatisfy { r in
            let v: String
            switch r.field {
            case "metadata.name": v = object.name
            case "metadata.namespace": v = object.namespace
            default:
                switch object[path: r.field.split(separator: ".").map(String.init)] {
                case .string(let s)?: v = s
                case .int(let i)?: v = String(i)
                case .bool(let b)?: v = String(b)
                case .double(let d)?: v = String(d)
                default: v = ""
                }
            }
            return (v == r.value) == r.equal
        }
    }

    public static func == (a: FieldSelector, b: FieldSelector) -> Bool {
        a.requirements.map { "\($0.field)\($0.equal)\($0.value)" } == b.requirements.map { "\($0.field)\($0.equal)\($0.value)" }
    }
}
