import Foundation
import Objects

/// One change seen by a watcher: the object after the change (for DELETED: its last state, with
/// the resourceVersion of the deletion).
public struct WatchEvent: Sendable {
    public enum EventType: String, Sendable { case added = "ADDED", modified = "MODIFIED", deleted = "DELETED" }
    public var type: EventType
    public var resource: ResourceType
    public var object: JSONValue
    /// The store revision of this change (the object's resourceVersion).
    public var revision: Int64
}

/// A registered watch; `cancel()` stops its callbacks (also done when it is released).
public final class WatchHandle {
    weak var store: Store?
    let id: Int
    init(store: Store, id: Int) { self.store = store; self.id = id }
    public func cancel() { store?.cancelWatch(id) }
}

/// The control plane's object store: every object of every kind as JSON, in memory for reads
/// and in SQLite (`<directory>/store.db`) for durability, with Kubernetes' metadata rules and one
/// monotonic revision for the whole store.
///
/// Controllers use it directly:
/// ```
/// let store = try Store(directory: ".portico")
/// let d = try store.get(.deployments, namespace: "default", name: "web")
/// let (pods, rv) = try store.list(.pods, namespace: "default", labelSelector: "app=web")
/// let handle = try store.watch(.pods, fromResourceVersion: rv) { event in queue.enqueue(event) }
/// ```
/// Thread-safe: every call takes one (recursive) lock. Watch callbacks run in revision order on
/// the writer's thread, under that lock: they should hand the event off (enqueue, post to a
/// loop) rather than do slow work.
public final class Store {
    /// How many recent events are kept for watches that resume from a resourceVersion.
    public let windowCapacity: Int
    /// How long an event stays in the window (kube-apiserver compacts etcd's history every 5
    /// minutes): the window holds old versions of objects, so a busy store must not keep
    /// `windowCapacity` of them forever.
    public let windowMaxAge: Double
    private let lock = NSRecursiveLock()
    private let database: StoreDatabase
    private let directoryLock: StoreLock
    /// How many Secrets were re-encrypted with the first key when the store opened (plaintext
    /// rows of an older store, or rows sealed with an older key after a rotation).
    public let resealedAtOpen: Int
    /// groupResource → "namespace/name" → object.
    private var objects: [String: [String: JSONValue]] = [:]
    private var currentRevision: Int64
    /// Events from `windowHead` on; the slots before it are nil (dropped events let go of their
    /// object at once, not when the array is next compacted).
    private var window: [WatchEvent?] = []
    /// When each event of `window` was recorded (monotonic nanoseconds).
    private var windowTimes: [UInt64] = []
    private var windowHead = 0
    /// Every event after this revision is in `window`.
    private var windowStart: Int64
    private var watchers: [Int: Watcher] = [:]
    private var nextWatcherID = 0

    private struct Watcher {
        var resource: ResourceType?
        var namespace: String?
        var labels: LabelSelector?
        var fields: FieldSelector?
        var callback: (WatchEvent) -> Void

        func wants(_ e: WatchEvent) -> Bool {
            if let r = resource, r != e.resource { return false }
            if let ns = namespace, !ns.isEmpty, ns != e.object.namespace { return false }
            if let l = labels, !l.matches(e.object.labels) { return false }
            if let f = fields, !f.matches(e.object) { return false }
            return true
        }
    }

    /// Opens (or creates) the store in `directory`; the `default` namespace exists from the start.
    /// Secrets are encrypted at rest with the keys of `<directory>/encryption-keys` (created on
    /// first start; see `SecretCipher`); rows not sealed with its first key are re-encrypted now.
    public init(directory: String, windowCapacity: Int = 10_000, windowMaxAge: Double = 300) throws {
        self.windowCapacity = windowCapacity
        self.windowMaxAge = windowMaxAge
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        chmod(directory, 0o700)  // also an older store's directory: it holds the key file
        directoryLock = try StoreLock(directory: directory, exclusive: false, wait: true)!
        let databasePath = (directory as NSString).appendingPathComponent("store.db")
        try Store.checkKeyFileIsNotLost(directory: directory, databasePath: databasePath)
        let cipher = try EncryptionKeyFile.loadOrCreate(path: Store.keyFilePath(directory))
        database = try StoreDatabase(path: databasePath, cipher: cipher)
        currentRevision = try database.loadRevision()
        let rows = try database.loadAll()
        for row in rows {
            do {
                objects[row.resource, default: [:]]["\(row.namespace)/\(row.name)"] = try JSONValue.parse(row.json)
            } catch {
                throw StoreError(.internalError, "\(row.resource) \(row.namespace)/\(row.name): the stored object is not valid JSON")
            }
        }
        let stale = rows.filter(\.stale)
        try database.reseal(stale)
        resealedAtOpen = stale.count
        windowStart = currentRevision
        if (try? get(.namespaces, namespace: "", name: "default")) == nil {
            _ = try create(.namespaces, .object(["metadata": .object(["name": .string("default")])]))
        }
    }

    /// Closes the database; the store must not be used afterwards.
    public func close() {
        lock.lock(); defer { lock.unlock() }
        database.close()
        directoryLock.release()
    }

    /// The latest revision (the resourceVersion of the newest change).
    public var revision: Int64 {
        lock.lock(); defer { lock.unlock() }
        return currentRevision
    }

    // MARK: Reads

    /// The object, or NotFound. `namespace` is ignored for cluster-scoped kinds.
    public func get(_ type: ResourceType, namespace: String, name: String) throws -> JSONValue {
        lock.lock(); defer { lock.unlock() }
        guard let o = objects[type.groupResource]?[key(type, namespace, name)] else { throw StoreError.notFound(type, name) }
        return o
    }

    /// Objects of a kind in `namespace` (nil or "" for all namespaces) matching the selectors,
    /// sorted by namespace and name, with the store revision they were read at.
    public func list(_ type: ResourceType, namespace: String? = nil, labelSelector: String? = nil,
                     fieldSelector: String? = nil) throws -> (items: [JSONValue], resourceVersion: String) {
        let labels = try labelSelector.map(LabelSelector.init)
        let fields = try fieldSelector.map(FieldSelector.init)
        lock.lock(); defer { lock.unlock() }
        var items: [(String, JSONValue)] = []
        for (k, o) in objects[type.groupResource] ?? [:] {
            if let ns = namespace, !ns.isEmpty, type.namespaced, o.namespace != ns { continue }
            if let l = labels, !l.matches(o.labels) { continue }
            if let f = fields, !f.matches(o) { continue }
            items.append((k, o))
        }
        return (items.sorted { $0.0 < $1.0 }.map(\.1), String(currentRevision))
    }

    // MARK: Writes

    /// `dryRun` on any write: validate and return the result without storing it.
    ///
    /// Creates the object (AlreadyExists when the name is taken; `metadata.generateName` picks a
    /// free name). The store sets uid, resourceVersion, generation 1 and creationTimestamp;
    /// `status` starts empty for kinds with a status subresource. `namespace` overrides an empty
    /// `metadata.namespace` (default `default`).
    @discardableResult
    public func create(_ type: ResourceType, _ object: JSONValue, namespace: String? = nil, dryRun: Bool = false) throws -> JSONValue {
        lock.lock(); defer { lock.unlock() }
        var o = try prepare(type, object, namespace: namespace)
        if o.name.isEmpty, let prefix = o[path: ["metadata", "generateName"]]?.stringValue, !prefix.isEmpty {
            var name: String
            repeat { name = prefix + Store.randomSuffix() } while objects[type.groupResource]?[key(type, o.namespace, name)] != nil
            o[path: ["metadata", "name"]] = .string(name)
        }
        try validate(type, o)
        if type.namespaced, objects[ResourceType.namespaces.groupResource]?["/\(o.namespace)"] == nil {
            throw StoreError(.notFound, "namespaces \"\(o.namespace)\" not found", name: o.namespace, kind: "namespaces")
        }
        let k = key(type, o.namespace, o.name)
        if objects[type.groupResource]?[k] != nil { throw StoreError.alreadyExists(type, o.name) }
        let revision = currentRevision + 1
        o[path: ["metadata", "uid"]] = .string(UUID().uuidString.lowercased())
        o[path: ["metadata", "resourceVersion"]] = .string(String(revision))
        o[path: ["metadata", "generation"]] = .int(1)
        o[path: ["metadata", "creationTimestamp"]] = .string(Store.timestamp())
        o[path: ["metadata", "deletionTimestamp"]] = nil
        if type.hasStatus { o["status"] = nil }
        if type == .namespaces { o["status"] = .object(["phase": .string("Active")]) }
        if dryRun { return o }
        try commit([(.added, type, o)])
        return o
    }

    /// Replaces the object (not its status, for kinds with a status subresource). A non-empty
    /// `metadata.resourceVersion` must be the current one (Conflict otherwise). uid and
    /// creationTimestamp are kept; generation grows when anything outside metadata and status
    /// changes. An update that changes nothing returns the stored object without a new revision.
    @discardableResult
    public func update(_ type: ResourceType, _ object: JSONValue, namespace: String? = nil, dryRun: Bool = false) throws -> JSONValue {
        lock.lock(); defer { lock.unlock() }
        var o = try prepare(type, object, namespace: namespace)
        let old = try current(type, o)
        if type.hasStatus { o["status"] = old["status"] }
        return try replace(type, old: old, new: o, dryRun: dryRun)
    }

    /// Replaces only `status` (the status subresource); everything else is kept from the stored
    /// object. A non-empty resourceVersion must be current.
    @discardableResult
    public func updateStatus(_ type: ResourceType, _ object: JSONValue, namespace: String? = nil, dryRun: Bool = false) throws -> JSONValue {
        lock.lock(); defer { lock.unlock() }
        let o = try prepare(type, object, namespace: namespace)
        let old = try current(type, o)
        var new = old
        new["status"] = o["status"]
        return try replace(type, old: old, new: new, dryRun: dryRun)
    }

    /// Applies a JSON merge patch or a strategic merge patch to the stored object, then updates
    /// it (or its status, with `status: true`). A resourceVersion in the patch must be current.
    @discardableResult
    public func patch(_ type: ResourceType, namespace: String, name: String, patch: JSONValue, as patchType: PatchType,
                      status: Bool = false, dryRun: Bool = false) throws -> JSONValue {
        lock.lock(); defer { lock.unlock() }
        let old = try get(type, namespace: namespace, name: name)
        guard case .object = patch else { throw StoreError(.badRequest, "a patch must be a JSON object") }
        var patched: JSONValue
        switch patchType {
        case .merge: patched = Patch.merge(old, patch)
        case .strategic: patched = try Patch.strategic(old, patch) ?? .object([:])
        }
        if patched.name != name { throw StoreError(.badRequest, "metadata.name cannot be changed by a patch") }
        patched[path: ["metadata", "namespace"]] = old["metadata"]?["namespace"]
        return status ? try updateStatus(type, patched, dryRun: dryRun) : try update(type, patched, dryRun: dryRun)
    }

    /// What happens to an object's dependents when it is deleted (`DeleteOptions.propagationPolicy`).
    public enum Propagation: String, Sendable {
        /// Dependents are deleted after the owner (Kubernetes' default for most kinds).
        case background = "Background"
        /// Dependents stay, with the owner's entry removed from their ownerReferences.
        case orphan = "Orphan"
    }

    /// Deletes the object and returns its last state; dependents (objects whose ownerReferences
    /// name its uid) are deleted after it, recursively, as Kubernetes' background cascading
    /// deletion does, or orphaned. Deleting a namespace deletes everything in it.
    /// `resourceVersion`, when given, must be current (a precondition, as DeleteOptions has).
    ///
    /// An object with `metadata.finalizers` is not removed: it gets `metadata.deletionTimestamp`
    /// (Terminating) and is returned as it is now; the update that empties its finalizers
    /// removes it (with the cascade above), as Kubernetes' graceful deletion does.
    @discardableResult
    public func delete(_ type: ResourceType, namespace: String, name: String, propagation: Propagation = .background,
                       resourceVersion: String? = nil) throws -> JSONValue {
        lock.lock(); defer { lock.unlock() }
        let o = try get(type, namespace: namespace, name: name)
        if let rv = resourceVersion, !rv.isEmpty, rv != o.resourceVersion { throw StoreError.conflict(type, name) }
        if !(o[path: ["metadata", "finalizers"]]?.arrayValue ?? []).isEmpty {
            if o[path: ["metadata", "deletionTimestamp"]] != nil { return o }
            var marked = o
            marked[path: ["metadata", "deletionTimestamp"]] = .string(Store.timestamp())
            marked[path: ["metadata", "deletionGracePeriodSeconds"]] = .int(0)
            try commit([(.modified, type, marked)])
            return try get(type, namespace: namespace, name: name)
        }
        return try remove(type, o, propagation: propagation)
    }

    /// Removes `o` from the store, then deletes or orphans its dependents.
    private func remove(_ type: ResourceType, _ o: JSONValue, propagation: Propagation) throws -> JSONValue {
        let name = o.name
        var deleted = o
        deleted[path: ["metadata", "resourceVersion"]] = .string(String(currentRevision + 1))
        try commit([(.deleted, type, deleted)])
        var dependents: [(ResourceType, JSONValue)] = []
        for t in ResourceType.all {
            for d in (objects[t.groupResource] ?? [:]).values {
                let owned = d[path: ["metadata", "ownerReferences"]]?.arrayValue?.contains { $0["uid"]?.stringValue == o.uid } ?? false
                let inNamespace = type == .namespaces && t.namespaced && d.namespace == name
                if owned || inNamespace { dependents.append((t, d)) }
            }
        }
        for (t, d) in dependents.sorted(by: { (Int64($0.1.resourceVersion) ?? 0) < (Int64($1.1.resourceVersion) ?? 0) }) {
            if propagation == .orphan && type != .namespaces {
                var freed = d
                let refs = d[path: ["metadata", "ownerReferences"]]?.arrayValue?.filter { $0["uid"]?.stringValue != o.uid } ?? []
                freed[path: ["metadata", "ownerReferences"]] = refs.isEmpty ? nil : .array(refs)
                _ = try? update(t, freed)
            } else {
                _ = try? delete(t, namespace: d.namespace, name: d.name)
            }
        }
        return deleted
    }

    // MARK: Watch

    /// Calls `callback` for each change to objects of `type` (nil: every kind) in `namespace`
    /// (nil or "": all) that match the selectors. With `fromResourceVersion` nil, "" or "0" the
    /// watch starts with an ADDED event for every current object; with a revision N it replays
    /// the changes after N from the event window, or throws Gone (410, reason Expired) when N is
    /// older than the window.
    public func watch(_ type: ResourceType?, namespace: String? = nil, labelSelector: String? = nil, fieldSelector: String? = nil,
                      fromResourceVersion: String? = nil, _ callback: @escaping (WatchEvent) -> Void) throws -> WatchHandle {
        let watcher = Watcher(resource: type, namespace: namespace, labels: try labelSelector.map(LabelSelector.init),
                              fields: try fieldSelector.map(FieldSelector.init), callback: callback)
        lock.lock(); defer { lock.unlock() }
        var replay: [WatchEvent] = []
        if let rvText = fromResourceVersion, !rvText.isEmpty, rvText != "0" {
            guard let rv = Int64(rvText), rv >= 0 else { throw StoreError(.badRequest, "invalid resourceVersion \"\(rvText)\"") }
            if rv < windowStart {
                throw StoreError(.gone, "too old resource version: \(rv) (\(windowStart + 1))")
            }
            replay = windowEvents().filter { $0.revision > rv && watcher.wants($0) }
        } else {
            for t in type.map({ [$0] }) ?? ResourceType.all {
                for o in try list(t, namespace: namespace).items {
                    let e = WatchEvent(type: .added, resource: t, object: o, revision: Int64(o.resourceVersion) ?? 0)
                    if watcher.wants(e) { replay.append(e) }
                }
            }
        }
        let id = nextWatcherID
        nextWatcherID += 1
        watchers[id] = watcher
        for e in replay { callback(e) }
        return WatchHandle(store: self, id: id)
    }

    /// How many watches are registered (for tests and metrics).
    public var watchCount: Int {
        lock.lock(); defer { lock.unlock() }
        return watchers.count
    }

    func cancelWatch(_ id: Int) {
        lock.lock(); defer { lock.unlock() }
        watchers[id] = nil
    }

    // MARK: Internals

    private func key(_ type: ResourceType, _ namespace: String, _ name: String) -> String {
        type.namespaced ? "\(namespace)/\(name)" : "/\(name)"
    }

    private func windowEvents() -> [WatchEvent] { window[windowHead...].compactMap { $0 } }

    /// Checks the object's shape and sets apiVersion, kind and namespace.
    private func prepare(_ type: ResourceType, _ object: JSONValue, namespace: String?) throws -> JSONValue {
        guard case .object = object else { throw StoreError(.badRequest, "the object must be a JSON object") }
        var o = object
        if let v = o["apiVersion"]?.stringValue, v != type.apiVersion {
            throw StoreError(.badRequest, "the API version in the data (\(v)) does not match the expected API version (\(type.apiVersion))")
        }
        if let k = o["kind"]?.stringValue, k != type.kind {
            throw StoreError(.badRequest, "the kind in the data (\(k)) does not match the expected kind (\(type.kind))")
        }
        if type == .secrets { Store.normalizeSecret(&o) }
        o["apiVersion"] = .string(type.apiVersion)
        o["kind"] = .string(type.kind)
        if o["metadata"]?.objectValue == nil { o["metadata"] = .object([:]) }
        if type.namespaced {
            let given = o.namespace
            let ns = (namespace?.isEmpty == false ? namespace! : nil) ?? (given.isEmpty ? "default" : given)
            if !given.isEmpty && given != ns {
                throw StoreError(.badRequest, "the namespace of the provided object does not match the namespace sent on the request")
            }
            o[path: ["metadata", "namespace"]] = .string(ns)
        } else {
            o[path: ["metadata", "namespace"]] = nil
        }
        return o
    }

    private func current(_ type: ResourceType, _ o: JSONValue) throws -> JSONValue {
        guard let old = objects[type.groupResource]?[key(type, o.namespace, o.name)] else { throw StoreError.notFound(type, o.name) }
        let rv = o.resourceVersion
        if !rv.isEmpty && rv != old.resourceVersion { throw StoreError.conflict(type, o.name) }
        return old
    }

    private func replace(_ type: ResourceType, old: JSONValue, new: JSONValue, dryRun: Bool) throws -> JSONValue {
        var o = new
        for field in ["uid", "creationTimestamp", "generation", "resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"] {
            o[path: ["metadata", field]] = old[path: ["metadata", field]]
        }
        if o == old { return old }
        if old[path: ["metadata", "deletionTimestamp"]] != nil {
            let before = Set((old[path: ["metadata", "finalizers"]]?.arrayValue ?? []).compactMap(\.stringValue))
            if (o[path: ["metadata", "finalizers"]]?.arrayValue ?? []).contains(where: { !before.contains($0.stringValue ?? "") }) {
                throw StoreError.invalid(type, o.name, [StoreError.Cause(field: "metadata.finalizers", reason: "FieldValueForbidden",
                                                                         message: "Forbidden: no new finalizers can be added if the object is being deleted")])
            }
        }
        try validate(type, o, old: old)
        func spec(_ v: JSONValue) -> JSONValue { var s = v; s["metadata"] = nil; s["status"] = nil; return s }
        if spec(o) != spec(old) {
            o[path: ["metadata", "generation"]] = .int((old[path: ["metadata", "generation"]]?.intValue ?? 1) + 1)
        }
        if dryRun { return o }
        // A Terminating object whose last finalizer went: it is removed now.
        if o[path: ["metadata", "deletionTimestamp"]] != nil, (o[path: ["metadata", "finalizers"]]?.arrayValue ?? []).isEmpty {
            return try remove(type, o, propagation: .background)
        }
        o[path: ["metadata", "resourceVersion"]] = .string(String(currentRevision + 1))
        try commit([(.modified, type, o)])
        return o
    }

    /// Writes one change at the next revision, records it in the window and tells the watchers.
    private func commit(_ changes: [(WatchEvent.EventType, ResourceType, JSONValue)]) throws {
        var writes: [StoreDatabase.Write] = []
        var events: [WatchEvent] = []
        var revision = currentRevision
        for (kind, type, object) in changes {
            revision += 1
            var o = object
            o[path: ["metadata", "resourceVersion"]] = .string(String(revision))
            if kind == .deleted {
                writes.append(.delete(resource: type.groupResource, namespace: o.namespace, name: o.name))
            } else {
                writes.append(.put(resource: type.groupResource, namespace: o.namespace, name: o.name, uid: o.uid, json: o.jsonString))
            }
            events.append(WatchEvent(type: kind, resource: type, object: o, revision: revision))
        }
        try database.commit(writes, revision: revision)
        currentRevision = revision
        for e in events {
            let k = key(e.resource, e.object.namespace, e.object.name)
            if e.type == .deleted { objects[e.resource.groupResource]?[k] = nil } else { objects[e.resource.groupResource, default: [:]][k] = e.object }
            window.append(e)
            windowTimes.append(DispatchTime.now().uptimeNanoseconds)
            trimWindow()
            for w in watchers.values where w.wants(e) { w.callback(e) }
        }
    }

    /// Drops events beyond `windowCapacity` or older than `windowMaxAge` from the front; the
    /// array is compacted once at least half of it is dropped (empty) slots.
    private func trimWindow() {
        let now = DispatchTime.now().uptimeNanoseconds
        let maxAge = UInt64(max(0, windowMaxAge) * 1e9)
        while windowHead < window.count
                && (window.count - windowHead > windowCapacity || now &- windowTimes[windowHead] > maxAge) {
            windowStart = window[windowHead]!.revision
            // Its slot stays until the next compaction; the object it held goes now, or up to
            // as many dropped events again as the window holds would stay in memory.
            window[windowHead] = nil
            windowHead += 1
        }
        if windowHead > 0 && windowHead >= window.count - windowHead {
            window.removeFirst(windowHead)
            windowTimes.removeFirst(windowHead)
            windowHead = 0
        }
    }

    private func validate(_ type: ResourceType, _ o: JSONValue, old: JSONValue? = nil) throws {
        let causes = StoreValidation.validate(type, o, old: old) + StorageValidation.validate(type, o, old: old)
        if !causes.isEmpty { throw StoreError.invalid(type, o.name, causes) }
    }

    static func timestamp() -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: Date())
    }

    static func randomSuffix() -> String {
        let alphabet = Array("bcdfghjklmnpqrstvwxz2456789")
        return String((0..<5).map { _ in alphabet.randomElement()! })
    }
}
