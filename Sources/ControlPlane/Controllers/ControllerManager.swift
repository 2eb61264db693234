import CSystem
import Foundation
import Objects
import Reactor
#if canImport(Glibc)
import Glibc
#endif

/// Settings of the controllers.
public struct ControllerOptions {
    /// Ingresses with this `ingressClassName` (or none, when `claimUnclassedIngresses`) are ours.
    public var ingressClass = "portico"
    public var claimUnclassedIngresses = true
    /// Written to `status.loadBalancer.ingress` of the Ingresses served.
    public var ingressAddress = "127.0.0.1"
    /// First retry delay of a failing sync, doubled per failure up to `backoffMax`.
    public var backoffBase: Double = 0.05
    public var backoffMax: Double = 30
    /// Every key is synced again this often, whatever the events said.
    public var resyncInterval: Double = 30
    /// Events older than this are deleted (at each resync).
    public var eventTTL: Double = 3600
    /// Seconds between a deleted pod leaving its Endpoints and the agent signalling it, so
    /// that the proxy has swapped in routes without it (it does within a second) before the
    /// pod stops accepting connections; Kubernetes users get the same with a preStop sleep.
    public var endpointDrainDelay: Double = 1
    /// `spec.nodeName` given to every pod.
    public var nodeName = "portico"
    /// Where ClusterIPs come from (a /16; the first two octets).
    public var clusterIPPrefix = "127.2"
    public var nodePortRange: ClosedRange<Int> = 30000...32767
    /// Where the `portico.io/local` provisioner makes volume directories; nil: `volumes` beside
    /// the agent's data directory (`<data>/volumes` next to `<data>/node`).
    public var volumesDirectory: String?

    public init() {}
}

/// Runs the control plane's reconcile loops over one store and one node agent: Deployments,
/// ReplicaSets, StatefulSets, the pods' API side (the kubelet's sync), Services (ClusterIP and
/// NodePort allocation), Endpoints and EndpointSlices, Ingress status, and PersistentVolumeClaims
/// with their PersistentVolumes.
///
/// Each object kind is listed and watched into one work queue of `controller/namespace/name`
/// keys; each controller's `sync` compares desired with observed state in the store and takes
/// the smallest step. Nothing is kept only in memory, so a new manager over the same store and
/// agent converges where the last one stopped. Every method runs on `loop`'s thread.
///
/// `start()` takes the agent's `onStatusChange`, `beforeTerminate`, `onEvent` and
/// `serviceEnvironment` hooks; `stop()` clears them. A stopped manager is not started again:
/// make a new one.
public final class ControllerManager {
    public let store: Store
    public let agent: NodeAgent
    public let loop: EventLoop
    public let options: ControllerOptions

    let timers = AgentTimers()
    let queue: WorkQueue
    let events: EventRecorder
    let log = Log("controllers")
    private var controllers: [String: Controller] = [:]
    private var watches: [WatchHandle] = []
    private var loopThread = pthread_self()
    private var started = false

    lazy var pods = PodController(manager: self)
    lazy var replicaSets = ReplicaSetController(manager: self)
    lazy var deployments = DeploymentController(manager: self)
    lazy var statefulSets = StatefulSetController(manager: self)
    lazy var services = ServiceController(manager: self)
    lazy var endpoints = EndpointsController(manager: self)
    lazy var ingresses = IngressStatusController(manager: self)
    lazy var volumes = PersistentVolumeController(manager: self)

    public init(store: Store, agent: NodeAgent, loop: EventLoop, options: ControllerOptions = ControllerOptions()) {
        self.store = store; self.agent = agent; self.loop = loop; self.options = options
        queue = WorkQueue(loop: loop, timers: timers, backoffBase: options.backoffBase, backoffMax: options.backoffMax)
        events = EventRecorder(store: store)
    }

    /// Hooks into the agent, lists and watches every kind, and starts syncing. Call once, on
    /// the loop's thread.
    public func start() {
        guard !started else { return }
        started = true
        loopThread = pthread_self()
        loop.register(timers, events: EPOLLIN.rawValue, edgeTriggered: false)
        // The node agent mounts a pod's claims only once this manager has bound them.
        agent.claimLookup = { [weak self] namespace, name in
            self?.claimLookup(namespace: namespace, name: name) ?? .pending(reason: "the controllers are not running")
        }
        for c in [pods, replicaSets, deployments, statefulSets, services, endpoints, ingresses, volumes] as [Controller] {
            controllers[c.name] = c
        }
        queue.process = { [unowned self] item in
            guard let c = self.controllers[item.controller] else { return nil }
            // `/name` for cluster-scoped objects: an empty namespace.
            let parts = item.key.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 2 else { return nil }
            switch try c.sync(namespace: parts[0], name: parts[1]) {
            case .done: return nil
            case .requeue(let after): return after
            }
        }
        pods.attach()
        volumes.start()
        for type in [ResourceType.services, .pods, .replicaSets, .deployments, .statefulSets, .endpoints, .endpointSlices, .ingresses,
                     .persistentVolumeClaims, .persistentVolumes, .storageClasses] {
            do {
                watches.append(try store.watch(type) { [weak self] e in self?.received(e) })
            } catch {
                log.error("cannot watch \(type.groupResource): \(error)")
            }
        }
        scheduleResync()
    }

    /// Stops watching and syncing and lets go of the agent's hooks (a clean hand-over to a new
    /// manager). Pods keep running.
    public func stop() {
        guard started else { return }
        started = false
        for w in watches { w.cancel() }
        watches = []
        queue.stop()
        pods.detach()
        loop.close(timers)
    }

    /// True when no key waits to be synced (for tests and `rollout status`-like waits).
    public var isIdle: Bool { queue.isEmpty }

    // MARK: - Events to keys

    private func received(_ e: WatchEvent) {
        if pthread_equal(pthread_self(), loopThread) != 0 {
            route(e)
        } else {
            loop.execute { [weak self] in self?.route(e) }
        }
    }

    func enqueue(_ controller: String, _ namespace: String, _ name: String) {
        queue.add(.init(controller: controller, key: "\(namespace)/\(name)"))
    }

    func enqueue(after seconds: Double, _ controller: String, _ namespace: String, _ name: String) {
        queue.add(after: seconds, .init(controller: controller, key: "\(namespace)/\(name)"))
    }

    private func route(_ e: WatchEvent) {
        guard started else { return }
        let o = e.object, ns = o.namespace
        let owner = ObjectFields.controllerRef(o)
        switch e.resource {
        case .deployments:
            enqueue(deployments.name, ns, o.name)
        case .replicaSets:
            enqueue(replicaSets.name, ns, o.name)
            if let owner, owner["kind"]?.stringValue == "Deployment", let n = owner["name"]?.stringValue {
                enqueue(deployments.name, ns, n)
            } else {
                deploymentsSelecting(o).forEach { enqueue(deployments.name, ns, $0) }
            }
        case .statefulSets:
            enqueue(statefulSets.name, ns, o.name)
        case .pods:
            enqueue(pods.name, ns, o.name)
            if let owner, let n = owner["name"]?.stringValue {
                switch owner["kind"]?.stringValue {
                case "ReplicaSet": enqueue(replicaSets.name, ns, n)
                case "StatefulSet": enqueue(statefulSets.name, ns, n)
                default: break
                }
            }
            for svc in (try? store.list(.services, namespace: ns).items) ?? [] where svc[path: ["spec", "selector"]] != nil {
                enqueue(endpoints.name, ns, svc.name)
            }
            volumes.podChanged(o)
        case .services:
            enqueue(services.name, ns, o.name)
            enqueue(endpoints.name, ns, o.name)
        case .endpoints:
            enqueue(endpoints.name, ns, o.name)
        case .endpointSlices:
            if let svc = o.labels[EndpointSlice.serviceNameLabel] { enqueue(endpoints.name, ns, svc) }
        case .ingresses:
            enqueue(ingresses.name, ns, o.name)
        case .persistentVolumeClaims, .persistentVolumes, .storageClasses:
            volumes.route(e)
        default:
            break
        }
    }

    /// Deployments whose selector matches an orphaned ReplicaSet (for adoption).
    private func deploymentsSelecting(_ rs: JSONValue) -> [String] {
        ((try? store.list(.deployments, namespace: rs.namespace).items) ?? []).filter {
            ObjectFields.selector($0[path: ["spec", "selector"]])?.matches(rs.labels) ?? false
        }.map(\.name)
    }

    private func scheduleResync() {
        timers.after(options.resyncInterval) { [weak self] in
            guard let self, self.started else { return }
            self.resyncAll()
            self.scheduleResync()
        }
    }

    /// Queues every object of every kind again (also finds pods the agent runs that the store
    /// no longer has).
    func resyncAll() {
        let kinds: [(ResourceType, [Controller])] = [
            (.services, [services, endpoints]), (.deployments, [deployments]), (.replicaSets, [replicaSets]),
            (.statefulSets, [statefulSets]), (.pods, [pods]), (.ingresses, [ingresses]),
            (.persistentVolumeClaims, [volumes]), (.persistentVolumes, [volumes]),
        ]
        for (type, cs) in kinds {
            for o in (try? store.list(type).items) ?? [] { for c in cs { enqueue(c.name, o.namespace, o.name) } }
        }
        for id in agent.runningPods { enqueue(pods.name, id.namespace, id.name) }
        collectEvents()
    }

    /// Deletes Events not seen again for `eventTTL` (Kubernetes keeps them an hour).
    func collectEvents() {
        let cutoff = Date().addingTimeInterval(-options.eventTTL)
        for e in (try? store.list(.events).items) ?? [] {
            guard let t = (e["lastTimestamp"]?.stringValue).flatMap(ObjectFields.parseTime), t < cutoff else { continue }
            _ = try? store.delete(.events, namespace: e.namespace, name: e.name)
        }
        events.forgetMissing()
    }

    /// `service` with a ClusterIP (when `spec.clusterIP` is empty) and nodePorts (NodePort and
    /// LoadBalancer types) allocated from what the store's Services leave free — what the
    /// service controller writes, for an API server that wants them in its create response.
    /// Nil when a range is exhausted.
    public static func allocateServiceAddresses(_ service: JSONValue, store: Store,
                                                options: ControllerOptions = ControllerOptions()) -> JSONValue? {
        ServiceController.allocate(service, store: store, options: options)
    }

    /// The data of a ConfigMap or Secret (`kind`), Secret values decoded from base64, nil when it
    /// does not exist: what the node agent's `configData` hook asks for `envFrom` and
    /// `configMapKeyRef`/`secretKeyRef` (`agent.configData = manager.configData`).
    public func configData(namespace: String, kind: String, name: String) -> [String: String]? {
        let type: ResourceType = kind == "Secret" ? .secrets : .configMaps
        guard let o = try? store.get(type, namespace: namespace, name: name) else { return nil }
        var out: [String: String] = [:]
        if type == .secrets {
            for (k, v) in o["data"]?.stringMap ?? [:] {
                if let d = Data(base64Encoded: v) { out[k] = String(decoding: d, as: UTF8.self) }
            }
            for (k, v) in o["stringData"]?.stringMap ?? [:] { out[k] = v }
        } else {
            out = o["data"]?.stringMap ?? [:]
            for (k, v) in o["binaryData"]?.stringMap ?? [:] where out[k] == nil {
                if let d = Data(base64Encoded: v) { out[k] = String(decoding: d, as: UTF8.self) }
            }
        }
        return out
    }

    /// Records an Event about `object` (kind and apiVersion taken from it).
    func event(_ object: JSONValue, _ type: String = "Normal", _ reason: String, _ message: String, component: String) {
        events.record(object, type: type, reason: reason, message: message, component: component)
    }
}
