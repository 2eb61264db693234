import Foundation
import Objects

/// What a controller's `sync` asks of the work queue.
enum SyncResult {
    case done
    /// Look again later (waiting for something that produces no event, e.g. minReadySeconds).
    case requeue(after: Double)
}

/// One reconcile loop: `sync` compares desired with observed for one key and takes the
/// smallest step; it must be idempotent and safe to interrupt at any line.
protocol Controller: AnyObject {
    var name: String { get }
    func sync(namespace: String, name: String) throws -> SyncResult
}

/// JSON helpers the controllers share: selectors, owners, readiness, hashes.
enum ObjectFields {
    static let templateHashLabel = "pod-template-hash"
    static let revisionHashLabel = "controller-revision-hash"
    static let revisionAnnotation = "deployment.kubernetes.io/revision"

    /// A `metav1.LabelSelector` object (matchLabels and matchExpressions); nil when malformed.
    static func selector(_ json: JSONValue?) -> LabelSelector? {
        guard let json, json.objectValue != nil else { return nil }
        var s = LabelSelector(matchLabels: json["matchLabels"]?.stringMap ?? [:])
        for e in json["matchExpressions"]?.arrayValue ?? [] {
            let key = e["key"]?.stringValue ?? ""
            let values = Set((e["values"]?.arrayValue ?? []).compactMap(\.stringValue))
            switch e["operator"]?.stringValue ?? "" {
            case "In": s.requirements.append(.isIn(key, values))
            case "NotIn": s.requirements.append(.notIn(key, values))
            case "Exists": s.requirements.append(.exists(key))
            case "DoesNotExist": s.requirements.append(.doesNotExist(key))
            default: return nil
            }
        }
        return s.requirements.isEmpty ? nil : s
    }

    /// The uid of the object's controller (the owner reference with `controller: true`).
    static func controllerUID(_ o: JSONValue) -> String? {
        controllerRef(o)?["uid"]?.stringValue
    }

    static func controllerRef(_ o: JSONValue) -> JSONValue? {
        o[path: ["metadata", "ownerReferences"]]?.arrayValue?.first { $0["controller"] == .bool(true) }
    }

    static func ownerReference(_ owner: JSONValue) -> JSONValue {
        .object([
            "apiVersion": .string(owner["apiVersion"]?.stringValue ?? ""), "kind": .string(owner["kind"]?.stringValue ?? ""),
            "name": .string(owner.name), "uid": .string(owner.uid),
            "controller": .bool(true), "blockOwnerDeletion": .bool(true),
        ])
    }

    static func annotations(_ o: JSONValue) -> [String: String] { o[path: ["metadata", "annotations"]]?.stringMap ?? [:] }

    static func phase(_ pod: JSONValue) -> String { pod[path: ["status", "phase"]]?.stringValue ?? "Pending" }

    /// Succeeded or Failed: the pod will not run again.
    static func isTerminal(_ pod: JSONValue) -> Bool { ["Succeeded", "Failed"].contains(phase(pod)) }

    static func condition(_ o: JSONValue, _ type: String) -> JSONValue? {
        o[path: ["status", "conditions"]]?.arrayValue?.first { $0["type"]?.stringValue == type }
    }

    static func isReady(_ pod: JSONValue) -> Bool { condition(pod, "Ready")?["status"]?.stringValue == "True" }

    /// Ready for at least `minReadySeconds` (then it counts as available); `wait` is how long
    /// until it will be, when it is ready but not yet available.
    static func isAvailable(_ pod: JSONValue, minReadySeconds: Int, now: Date = Date()) -> (Bool, wait: Double?) {
        guard isReady(pod) else { return (false, nil) }
        if minReadySeconds <= 0 { return (true, nil) }
        guard let t = condition(pod, "Ready")?["lastTransitionTime"]?.stringValue, let since = parseTime(t) else { return (true, nil) }
        let left = since.addingTimeInterval(Double(minReadySeconds)).timeIntervalSince(now)
        return left <= 0 ? (true, nil) : (false, left)
    }

    static func parseTime(_ s: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: s)
    }

    static func int(_ v: JSONValue?, default d: Int) -> Int { v?.intValue ?? d }

    /// An int-or-percent (`maxSurge: 1`, `"25%"`) scaled to `total`, rounding up or down.
    static func scaled(_ v: JSONValue?, default d: String, total: Int, roundUp: Bool) -> Int {
        let value = v ?? .string(d)
        if let i = value.intValue { return i }
        guard let s = value.stringValue else { return 0 }
        if s.hasSuffix("%"), let p = Double(s.dropLast()) {
            let x = p * Double(total) / 100
            return Int(roundUp ? x.rounded(.up) : x.rounded(.down))
        }
        return Int(s) ?? 0
    }

    /// Kubernetes' pod-template hash: FNV-1a (32 bit) of the template, encoded with the
    /// alphabet of `rand.SafeEncodeString` (no vowels, no look-alike digits).
    static func templateHash(_ template: JSONValue, collisionCount: Int = 0) -> String {
        var t = template
        t[path: ["metadata", "labels", templateHashLabel]] = nil
        if t[path: ["metadata", "labels"]]?.objectValue?.isEmpty == true { t[path: ["metadata", "labels"]] = nil }
        var h: UInt32 = 2_166_136_261
        var bytes = t.jsonBytes
        if collisionCount > 0 { bytes += Array(String(collisionCount).utf8) }
        for b in bytes { h ^= UInt32(b); h = h &* 16_777_619 }
        let alphabet = Array("bcdfghjklmnpqrstvwxz2456789")
        return String(String(h).utf8.map { alphabet[Int($0) % alphabet.count] })
    }

    static let nameAlphabet = Array("bcdfghjklmnpqrstvwxz2456789")

    static func randomSuffix() -> String { String((0..<5).map { _ in nameAlphabet.randomElement()! }) }

    static func now() -> String { Store.timestamp() }

    /// The pod as the agent's typed model (unknown fields are skipped).
    static func typedPod(_ json: JSONValue) -> Pod? {
        try? JSONDecoder().decode(Pod.self, from: Data(json.jsonBytes))
    }

    static func json<T: Encodable>(_ value: T) -> JSONValue {
        guard let d = try? JSONEncoder().encode(value), let v = try? JSONDecoder().decode(JSONValue.self, from: d) else { return .null }
        return v
    }

    /// Pod creation order (oldest first): creation time, then the revision it was created at
    /// is not kept, so the name breaks ties.
    static func olderFirst(_ a: JSONValue, _ b: JSONValue) -> Bool {
        let ta = a[path: ["metadata", "creationTimestamp"]]?.stringValue ?? ""
        let tb = b[path: ["metadata", "creationTimestamp"]]?.stringValue ?? ""
        return ta != tb ? ta < tb : a.name < b.name
    }
}
