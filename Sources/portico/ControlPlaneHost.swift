import ControlPlane
import Dataplane
import Foundation
import Objects
import Reactor
import RouteCompiler

/// The control plane inside `portico serve`: the store, the API server and the node agent on the
/// main thread's loop. Manifests given with -f are applied into the store (and pruned from it
/// when they disappear from the files); routes are compiled from what the store holds, so the
/// files, `portico apply` and `kubectl` are three ways to write the same objects.
final class ControlPlaneHost {
    let store: Store
    let api: APIServer
    let agent: NodeAgent
    private let controllers: ControllerManager
    private let loop: EventLoop
    private let log = Log("control-plane")
    private var watch: WatchHandle?
    private let debounce: TimerQueue
    private var routeTimer: RouteTimer?
    /// Called (on the loop, debounced) when an object the routes depend on changed.
    var onRoutingChange: (() -> Void)?

    /// Kinds the RouteTable is compiled from.
    static let routingKinds: [ResourceType] = [.ingresses, .services, .endpoints, .endpointSlices, .secrets]
    /// Annotation naming the -f file an object was applied from (for pruning).
    static let sourceAnnotation = "portico.io/applied-from"
    /// Annotation with a digest of the applied document (unchanged files cause no update).
    static let digestAnnotation = "portico.io/applied-digest"

    init(loop: EventLoop, dataDirectory: String, apiAddress: SocketAddress, ingressClass: String, eventTTL: Double = 3600) throws {
        self.loop = loop
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        // An existing directory keeps its mode: say so when other users can enter it.
        var st = stat()
        if stat(dataDirectory, &st) == 0 && st.st_mode & 0o077 != 0 {
            log.warning("data directory \(dataDirectory) is open to other users (mode \(String(st.st_mode & 0o777, radix: 8))): "
                + "it holds pod logs and volumes; chmod 700 it")
        }
        store = try Store(directory: dataDirectory + "/store")
        api = try APIServer(store: store, loop: loop, address: apiAddress)
        let nodeDirectory = dataDirectory + "/node"
        agent = try NodeAgent(loop: loop, configuration: NodeAgent.Configuration(dataDirectory: nodeDirectory))
        api.podLog = { namespace, pod, container, previous in
            let containers = pod[path: ["spec", "containers"]]?.arrayValue ?? []
            guard let name = container ?? (containers.count == 1 ? containers[0]["name"]?.stringValue : nil) else { return nil }
            let id = PodIdentity(namespace: namespace, name: pod.name, uid: pod.uid)
            let path = NodeAgent.logPath(dataDirectory: nodeDirectory, pod: id, container: name, previous: previous)
            return FileManager.default.contents(atPath: path).map { Array($0) }
        }
        debounce = loop.timerQueue(nanos: 20_000_000)
        var options = ControllerOptions()
        options.ingressClass = ingressClass
        options.eventTTL = eventTTL
        controllers = ControllerManager(store: store, agent: agent, loop: loop, options: options)
    }

    func start() throws {
        let timer = RouteTimer { [unowned self] in self.onRoutingChange?() }
        routeTimer = timer
        let debounce = self.debounce
        watch = try store.watch(nil, fromResourceVersion: currentRevision()) { event in
            if ControlPlaneHost.routingKinds.contains(event.resource) { debounce.arm(timer) }
        }
        controllers.start()
        // ConfigMap and Secret values for env (valueFrom, envFrom) come from the store.
        agent.configData = { [unowned self] ns, kind, name in self.controllers.configData(namespace: ns, kind: kind, name: name) }
        // ConfigMap and Secret bytes for configMap and secret volumes.
        agent.configContents = { [unowned self] ns, kind, name in self.controllers.configContents(namespace: ns, kind: kind, name: name) }
    }

    /// Drops a scheduled recompilation (the caller is recompiling now).
    func cancelPendingRoutingChange() { routeTimer?.cancelTimer() }

    private func currentRevision() -> String {
        (try? store.list(.namespaces).resourceVersion) ?? "0"
    }

    /// The objects routes are compiled from, decoded into the typed model.
    func routingObjects() -> [KubeObject] {
        var out: [KubeObject] = []
        let encoder = JSONEncoder()
        let decoder = JSONDecoder()
        for kind in ControlPlaneHost.routingKinds {
            guard let items = try? store.list(kind).items else { continue }
            for item in items {
                guard let data = try? encoder.encode(item) else { continue }
                do {
                    out.append(try decoder.decode(KubeObject.self, from: data))
                } catch {
                    log.warning("\(kind.kind) \(item.namespace)/\(item.name) skipped for routing: \(error)")
                }
            }
        }
        return out
    }

    /// Applies manifests into the store: creates new objects, updates changed ones, and deletes
    /// objects applied from files earlier that no file holds any more. Returns problems (one
    /// line each); the store is left as far as it got.
    func apply(_ loaded: [LoadedObject]) -> [String] {
        var problems: [String] = []
        var wanted = Set<String>()
        for l in loaded {
            guard var raw = l.raw, let apiVersion = raw["apiVersion"]?.stringValue, let kind = raw["kind"]?.stringValue else { continue }
            guard let type = ResourceType.find(apiVersion: apiVersion, kind: kind) else {
                problems.append("\(l.file) (document \(l.document)): kind \(kind) (\(apiVersion)) is not served by Portico")
                continue
            }
            let namespace = type.namespaced ? (raw.namespace.isEmpty ? "default" : raw.namespace) : ""
            let name = raw.name
            wanted.insert("\(type.groupResource)|\(namespace)|\(name)")
            let digest = ControlPlaneHost.digest(raw)
            var annotations = raw[path: ["metadata", "annotations"]]?.objectValue ?? [:]
            annotations[ControlPlaneHost.sourceAnnotation] = .string(l.file)
            annotations[ControlPlaneHost.digestAnnotation] = .string(digest)
            raw[path: ["metadata", "annotations"]] = .object(annotations)
            if type.namespaced { raw[path: ["metadata", "namespace"]] = .string(namespace) }
            do {
                if type.namespaced { try ensureNamespace(namespace) }
                if let existing = try? store.get(type, namespace: namespace, name: name) {
                    if existing[path: ["metadata", "annotations", ControlPlaneHost.digestAnnotation]]?.stringValue == digest { continue }
                    raw[path: ["metadata", "resourceVersion"]] = .string(existing.resourceVersion)
                    // Keep what the control plane allocated (a Service's clusterIP, nodePorts).
                    if type == .services, let ip = existing[path: ["spec", "clusterIP"]], raw[path: ["spec", "clusterIP"]] == nil {
                        raw[path: ["spec", "clusterIP"]] = ip
                    }
                    // ...and what binding set: a claim's volume, a volume's claim, the defaulted class.
                    let kept: [String] = type == .persistentVolumeClaims ? ["volumeName", "storageClassName"]
                        : type == .persistentVolumes ? ["claimRef"] : []
                    for field in kept where raw[path: ["spec", field]] == nil {
                        raw[path: ["spec", field]] = existing[path: ["spec", field]]
                    }
                    if type == .persistentVolumeClaims || type == .persistentVolumes {
                        raw[path: ["metadata", "finalizers"]] = existing[path: ["metadata", "finalizers"]]
                    }
                    try store.update(type, raw, namespace: namespace)
                } else {
                    try store.create(type, raw, namespace: namespace)
                }
            } catch {
                problems.append("\(l.file) (document \(l.document), \(kind) \(namespace)/\(name)): \(error)")
            }
        }
        // Prune what earlier files applied and no file holds now.
        for type in ResourceType.all where type != .namespaces && type != .events {
            guard let items = try? store.list(type).items else { continue }
            for item in items where item[path: ["metadata", "annotations", ControlPlaneHost.sourceAnnotation]] != nil {
                let ns = type.namespaced ? item.namespace : ""
                if !wanted.contains("\(type.groupResource)|\(ns)|\(item.name)") {
                    _ = try? store.delete(type, namespace: ns, name: item.name)
                    log.info("\(type.kind) \(ns.isEmpty ? "" : ns + "/")\(item.name) removed: no longer in the manifests")
                }
            }
        }
        return problems
    }

    private func ensureNamespace(_ name: String) throws {
        if (try? store.get(.namespaces, namespace: "", name: name)) != nil { return }
        try store.create(.namespaces, .object([
            "apiVersion": .string("v1"), "kind": .string("Namespace"),
            "metadata": .object(["name": .string(name)]),
        ]))
    }

    private static func digest(_ value: JSONValue) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(value)) ?? Data()
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in data { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        return String(h, radix: 16)
    }

    /// Stops the controllers first (so nothing restarts a pod), then every pod, gracefully.
    func shutdown(completion: @escaping () -> Void) {
        watch?.cancel()
        controllers.stop()
        api.shutdown()
        agent.stopAll(completion: completion)
    }
}

/// Fires the debounced route recompilation.
private final class RouteTimer: Channel {
    let fire: () -> Void
    init(_ fire: @escaping () -> Void) {
        self.fire = fire
        super.init(fd: -1)
    }
    override func handleTimeout() { fire() }
}
