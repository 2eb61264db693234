import Foundation
import Objects

/// Writes v1 Events about objects: the same reason and message for the same object again
/// bumps `count` and `lastTimestamp` of the existing Event instead of adding one (as
/// client-go's event correlator does).
final class EventRecorder {
    let store: Store
    /// Correlation key → Event name, for the events this process wrote (at most
    /// `maxCorrelated`, as client-go's LRU of 4096, and only Events that still exist).
    private var recent: [String: (namespace: String, name: String)] = [:]
    static let maxCorrelated = 4096

    init(store: Store) { self.store = store }

    func record(_ involved: JSONValue, type: String = "Normal", reason: String, message: String, component: String) {
        let ns = involved.namespace.isEmpty ? "default" : involved.namespace
        let kind = involved["kind"]?.stringValue ?? ""
        let key = [ns, kind, involved.name, involved.uid, type, reason, message, component].joined(separator: "\u{1}")
        let now = ObjectFields.now()
        if let name = recent[key]?.name, var e = try? store.get(.events, namespace: ns, name: name) {
            e["count"] = .int((e["count"]?.intValue ?? 1) + 1)
            e["lastTimestamp"] = .string(now)
            if (try? store.update(.events, e)) != nil { return }
        }
        let name = "\(involved.name).\(String(UInt64.random(in: 0...UInt64.max), radix: 16))"
        let event: JSONValue = .object([
            "metadata": .object(["name": .string(name), "namespace": .string(ns)]),
            "involvedObject": .object([
                "apiVersion": .string(involved["apiVersion"]?.stringValue ?? ""), "kind": .string(kind),
                "name": .string(involved.name), "namespace": .string(ns), "uid": .string(involved.uid),
                "resourceVersion": .string(involved.resourceVersion),
            ]),
            "reason": .string(reason), "message": .string(message), "type": .string(type),
            "count": .int(1), "firstTimestamp": .string(now), "lastTimestamp": .string(now),
            "source": .object(["component": .string(component), "host": .string("portico")]),
            "reportingComponent": .string(component), "reportingInstance": .string("portico"),
        ])
        if (try? store.create(.events, event)) != nil {
            if recent.count >= Self.maxCorrelated { recent.removeAll() }
            recent[key] = (ns, name)
        }
    }

    /// How many Events the recorder can still bump instead of writing new ones.
    var correlatedCount: Int { recent.count }

    /// Forgets the Events that are gone (expired after `--event-ttl`, or deleted): each rolling
    /// update adds a few dozen keys naming new pods, a few hundred bytes each, which otherwise
    /// stayed until 4096 of them piled up.
    func forgetMissing() {
        guard !recent.isEmpty else { return }
        let existing = Set(((try? store.list(.events).items) ?? []).map { $0.namespace + "/" + $0.name })
        recent = recent.filter { existing.contains($0.value.namespace + "/" + $0.value.name) }
    }
}
