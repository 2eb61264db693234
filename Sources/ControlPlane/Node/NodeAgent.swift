import CSystem
import Foundation
import Objects
import Reactor
#if canImport(Glibc)
import Glibc
#endif

/// Which pod a status or hook is about.
public struct PodIdentity: Hashable, Sendable, CustomStringConvertible {
    public let namespace: String
    public let name: String
    public let uid: String
    public init(namespace: String, name: String, uid: String) {
        self.namespace = namespace; self.name = name; self.uid = uid
    }
    public var description: String { "\(namespace)/\(name)" }
}

/// What the agent did and why, for `describe` and `kubectl get events` (Kubernetes' kubelet
/// reasons: Started, Killing, BackOff, Unhealthy, Failed; plus Adopted).
public struct PodEvent: Sendable, Equatable {
    /// Normal or Warning.
    public var type: String
    public var reason: String
    public var message: String
    public init(type: String, reason: String, message: String) {
        self.type = type; self.reason = reason; self.message = message
    }
}

/// The kubelet role: runs each pod's containers as local processes, keeps them running per
/// `restartPolicy`, probes them, and reports `PodStatus` through `onStatusChange`. Every method
/// must be called on `loop`'s thread; callbacks run there too.
public final class NodeAgent {
    public struct Configuration {
        /// Holds `ipam.json` and `pods/<ns>_<name>_<uid>/` (records and container logs).
        public var dataDirectory: String
        /// First restart delay of a crashing container (kubelet: 10 s), doubled per crash.
        public var backOffBase: Double = 10
        public var backOffMax: Double = 300
        /// A container that ran this long starts its back-off over (kubelet: 10 min).
        public var backOffReset: Double = 600
        /// Container logs are rotated past this size, keeping one old file (`.log.1`).
        public var logMaxBytes: Int = 10 << 20
        /// How often log sizes are checked.
        public var logCheckInterval: Double = 1
        /// Put first on every pod's PATH; defaults to the directory of the running binary.
        public var binDirectory: String?
        /// `spec.nodeName` for the downward API.
        public var nodeName: String = "portico"
        /// How often projected volumes (ConfigMap, Secret) are re-synced and emptyDir `sizeLimit`s
        /// checked.
        public var volumeCheckInterval: Double = 1
        /// How soon a container waiting for a volume (an unbound claim, a failed hostPath check)
        /// tries again.
        public var volumeRetryInterval: Double = 2

        public init(dataDirectory: String) { self.dataDirectory = dataDirectory }
    }

    public let loop: EventLoop
    public let configuration: Configuration
    /// Called whenever a pod's status changes (the controllers write it back to the store).
    public var onStatusChange: ((PodIdentity, PodStatus) -> Void)?
    /// Called before a pod's processes are signalled, so it can leave its Endpoints first.
    public var beforeTerminate: ((PodIdentity) -> Void)?
    /// The data of a ConfigMap or Secret (`kind`) in a namespace, nil if there is none; Secret
    /// values already decoded from base64. Used for `envFrom` and `configMapKeyRef`/`secretKeyRef`.
    public var configData: ((_ namespace: String, _ kind: String, _ name: String) -> [String: String]?)?
    /// The bytes of a ConfigMap or Secret (`kind`), for `configMap` and `secret` volumes; nil if
    /// there is none. Asked at pod start and every `volumeCheckInterval` while the pod runs.
    public var configContents: ((_ namespace: String, _ kind: String, _ name: String) -> ConfigContents?)?
    /// Where a PersistentVolumeClaim's data lives (the controllers bind claims to volumes); a pod
    /// whose claim is not bound waits, unschedulable.
    public var claimLookup: ((_ namespace: String, _ claimName: String) -> ClaimLookup)?
    /// Called for each event the agent records about a pod.
    public var onEvent: ((PodIdentity, PodEvent) -> Void)?
    /// Extra variables for a pod (the Service `<SVC>_SERVICE_HOST/_PORT` set), asked at each
    /// container start.
    public var serviceEnvironment: ((Pod) -> [(name: String, value: String)])?

    let log = Log("node")
    let timers = AgentTimers()
    let ips: PodIPAllocator
    var pods: [String: PodRuntime] = [:]
    /// Pods found on disk from an earlier agent, not yet adopted or killed, by uid.
    var recorded: [String: (dir: String, record: PodRecord)] = [:]
    /// Processes being killed that belong to no running pod (leftovers of an earlier agent).
    var orphanWatches: [pid_t: ProcessWatch] = [:]
    /// This agent's `PORTICO_NODE`: its data directory with symlinks resolved.
    let nodeMarker: String
    /// Processes carrying this node's marker found at start, by pod uid, not yet adopted or killed.
    var markedProcesses: [String: [ProcessMarker.Found]] = [:]
    let binDirectory: String
    var podsDirectory: String { configuration.dataDirectory + "/pods" }

    public init(loop: EventLoop, configuration: Configuration) throws {
        self.loop = loop
        self.configuration = configuration
        let fm = FileManager.default
        try fm.createDirectory(atPath: configuration.dataDirectory + "/pods", withIntermediateDirectories: true)
        ips = PodIPAllocator(path: configuration.dataDirectory + "/ipam.json")
        if let b = configuration.binDirectory {
            binDirectory = b
        } else {
            let exe = (try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "/usr/local/bin/portico"
            binDirectory = (exe as NSString).deletingLastPathComponent
        }
        var resolved = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        nodeMarker = realpath(configuration.dataDirectory, &resolved) != nil
            ? String(cString: resolved) : configuration.dataDirectory
        for entry in (try? fm.contentsOfDirectory(atPath: podsDirectory)) ?? [] {
            let dir = podsDirectory + "/" + entry
            if let r = PodRecord.load(dir + "/pod.json") {
                recorded[r.uid] = (dir, r)
                ips.reserve(r.podIP)
            }
        }
        // Every process an earlier agent started here, recorded or not (see `ProcessMarker`).
        for p in ProcessMarker.scan(node: nodeMarker) { markedProcesses[p.podUID, default: []].append(p) }
        if !markedProcesses.isEmpty {
            let count = markedProcesses.values.reduce(0) { $0 + $1.count }
            log.info("found \(count) running process(es) of \(markedProcesses.count) pod(s) started by an earlier agent")
        }
        loop.register(timers, events: EPOLLIN.rawValue, edgeTriggered: false)
        scheduleLogCheck()
        scheduleVolumeCheck()
    }

    // MARK: - API for the controllers

    /// Starts `pod`, or adopts its processes if an earlier agent left them running. Idempotent:
    /// a pod already running is left alone. `stableKey` (default: `namespace/name` for a pod
    /// owned by a StatefulSet) keeps the same IP across pods with that key.
    public func run(_ pod: Pod, stableKey: String? = nil, environment: [(name: String, value: String)] = []) {
        let id = Self.identity(of: pod)
        guard pods[id.uid] == nil, pod.metadata.deletionTimestamp == nil else { return }
        let dir = podsDirectory + "/\(id.namespace)_\(id.name)_\(id.uid)"
        let spec = pod.spec ?? Pod.Spec(containers: [])
        let previous = recorded.removeValue(forKey: id.uid)
        let found = markedProcesses.removeValue(forKey: id.uid) ?? []
        let ip: String
        if let p = previous {
            ip = p.record.podIP
            ips.reserve(ip)
        } else {
            ip = ips.allocate(stableKey: stableKey ?? Self.stableKey(of: pod))
        }
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let rt = PodRuntime(pod: pod, id: id, dir: dir, ip: ip, environment: environment,
                            startTime: previous?.record.startTime ?? Self.timestamp())
        rt.containers = spec.containers.map { ContainerRuntime(spec: $0) }
        pods[id.uid] = rt
        log.info("pod \(id) (\(id.uid)) \(previous == nil ? "starting" : "adopting") on \(ip)")
        if previous != nil {
            // Mount points an earlier agent created for this pod, and its volumes (processes being
            // adopted keep their mounts; projected volumes must go on being synced).
            if let text = try? String(contentsOfFile: dir + "/" + Self.mountPointsFile, encoding: .utf8) {
                rt.createdMountPoints = text.split(separator: "\n").map(String.init)
            }
            try? prepareVolumes(rt)
        }
        if let evicted = previous?.record.eviction {
            // Evicted pods stay Failed (their processes were killed then), as the kubelet keeps them.
            rt.eviction = evicted
            for c in rt.containers {
                c.restartCount = previous?.record.containers[c.spec.name]?.restartCount ?? 0
                c.everRan = true
                c.finished = true
                c.state = Self.evictedContainerState
            }
            if !found.isEmpty { killLeftovers(found, pod: "\(id)", gracePeriod: rt.gracePeriod) {} }
            saveRecord(rt)
            publish(rt)
            return
        }
        var adopted = Set<String>(), toStart: [ContainerRuntime] = []
        for c in rt.containers {
            if let rec = previous?.record.containers[c.spec.name], ChildProcess.isAlive(rec.pid, startTime: rec.startTicks) {
                adopt(c, in: rt, record: rec)
                adopted.insert(c.spec.name)
            } else {
                if let rec = previous?.record.containers[c.spec.name] { c.restartCount = rec.restartCount + 1 }
                toStart.append(c)
            }
        }
        adoptOrKill(found, for: rt, record: previous?.record, adopted: adopted, toStart: toStart)
        saveRecord(rt)
        publish(rt)
    }

    /// Terminates a pod: `beforeTerminate`, SIGTERM to each container's process group, SIGKILL
    /// after `gracePeriod` (default: the pod's `terminationGracePeriodSeconds`, else 30 s).
    /// `completion` runs once every process is gone and the pod is forgotten.
    public func stop(podUID: String, gracePeriod: Double? = nil, completion: (() -> Void)? = nil) {
        guard let rt = pods[podUID] else {
            if let r = recorded.removeValue(forKey: podUID) {
                killRecorded(r.record, dir: r.dir, gracePeriod: gracePeriod ?? r.record.gracePeriodSeconds, completion: completion)
            } else if let found = markedProcesses.removeValue(forKey: podUID) {
                killLeftovers(found, pod: podUID, gracePeriod: gracePeriod ?? Self.defaultGracePeriod) { completion?() }
            } else {
                completion?()
            }
            return
        }
        if let completion { rt.onGone.append(completion) }
        guard !rt.terminating else { return }
        rt.terminating = true
        let grace = gracePeriod ?? rt.gracePeriod
        beforeTerminate?(rt.id)
        log.info("pod \(rt.id) terminating (grace \(grace)s)")
        // A terminating pod is not ready (Endpoints drop it even if the hook above was not set).
        for c in rt.containers { c.ready = false }
        publish(rt)
        for c in rt.containers where c.pid > 0 { event(rt, "Normal", "Killing", "Stopping container \(c.spec.name)") }
        for c in rt.containers {
            c.stopProbes()
            c.restartTimer?.cancel()
            c.restartTimer = nil
            if c.pid > 0 {
                signal(c, SIGTERM)
                c.killTimer?.cancel()
                c.killTimer = timers.after(grace) { [weak self, weak c] in
                    guard let self, let c, c.pid > 0 else { return }
                    self.log.info("pod \(rt.id) container \(c.spec.name) still running after \(grace)s: SIGKILL")
                    self.signal(c, SIGKILL)
                }
            }
        }
        finishIfGone(rt)
    }

    /// `stop` by name.
    public func stop(namespace: String, name: String, gracePeriod: Double? = nil, completion: (() -> Void)? = nil) {
        if let rt = pods.values.first(where: { $0.id.namespace == namespace && $0.id.name == name }) {
            stop(podUID: rt.id.uid, gracePeriod: gracePeriod, completion: completion)
        } else if let r = recorded.values.first(where: { $0.record.namespace == namespace && $0.record.name == name }) {
            stop(podUID: r.record.uid, gracePeriod: gracePeriod, completion: completion)
        } else {
            completion?()
        }
    }

    /// The current status of a running pod, nil if the agent does not run it.
    public func status(of podUID: String) -> PodStatus? {
        pods[podUID].map { computeStatus($0) }
    }

    public func status(namespace: String, name: String) -> PodStatus? {
        pods.values.first { $0.id.namespace == namespace && $0.id.name == name }.map { computeStatus($0) }
    }

    /// Makes the running set equal `desired`: starts (or adopts) pods not running, terminates
    /// running pods not desired, and kills processes left by an earlier agent for pods no longer
    /// desired. A desired pod with `metadata.deletionTimestamp` is terminated with
    /// `deletionGracePeriodSeconds`, as the kubelet does before the pod is removed. Idempotent.
    public func reconcile(desired: [Pod]) {
        for p in desired where p.metadata.deletionTimestamp != nil {
            stop(podUID: Self.identity(of: p).uid, gracePeriod: p.metadata.deletionGracePeriodSeconds.map(Double.init))
        }
        let desired = desired.filter { $0.metadata.deletionTimestamp == nil }
        let wanted = Set(desired.map { Self.identity(of: $0).uid })
        for rt in Array(pods.values) where !wanted.contains(rt.id.uid) && !rt.terminating {
            stop(podUID: rt.id.uid)
        }
        for (uid, r) in recorded where !wanted.contains(uid) {
            recorded[uid] = nil
            killRecorded(r.record, dir: r.dir, gracePeriod: r.record.gracePeriodSeconds, completion: nil)
        }
        for (uid, found) in markedProcesses where !wanted.contains(uid) {
            markedProcesses[uid] = nil
            killLeftovers(found, pod: uid, gracePeriod: Self.defaultGracePeriod) {}
        }
        for p in desired { run(p) }
    }

    /// Pods the agent runs (including ones terminating).
    public var runningPods: [PodIdentity] { pods.values.map(\.id) }

    /// The process id of each running container of a pod (for tests and `describe`).
    public func processIDs(podUID: String) -> [String: Int32] {
        var out: [String: Int32] = [:]
        for c in pods[podUID]?.containers ?? [] where c.pid > 0 { out[c.spec.name] = c.pid }
        return out
    }

    /// Where a running pod's container output goes (`previous`: the instance before the last
    /// restart; `<path>.1` is the rotated older part).
    public func logPath(podUID: String, container: String, previous: Bool = false) -> String? {
        guard let rt = pods[podUID] else { return nil }
        return rt.dir + "/" + container + (previous ? ".previous.log" : ".log")
    }

    /// The same path from the pod's identity alone (for `portico logs`, which may run in
    /// another process than the agent).
    public static func logPath(dataDirectory: String, pod: PodIdentity, container: String, previous: Bool = false) -> String {
        "\(dataDirectory)/pods/\(pod.namespace)_\(pod.name)_\(pod.uid)/\(container)" + (previous ? ".previous.log" : ".log")
    }

    func event(_ rt: PodRuntime, _ type: String, _ reason: String, _ message: String) {
        onEvent?(rt.id, PodEvent(type: type, reason: reason, message: message))
    }

    /// Terminates every pod, and whatever an earlier agent left that was not adopted (a clean
    /// server shutdown); `completion` when all are gone.
    public func stopAll(gracePeriod: Double? = nil, completion: (() -> Void)? = nil) {
        let uids = Set(pods.keys).union(recorded.keys).union(markedProcesses.keys)
        var remaining = uids.count + 1
        let one = { remaining -= 1; if remaining == 0 { completion?() } }
        for uid in uids { stop(podUID: uid, gracePeriod: gracePeriod, completion: one) }
        one()
    }

    // MARK: - Identity

    static func identity(of pod: Pod) -> PodIdentity {
        let ns = pod.metadata.namespace, name = pod.metadata.name ?? ""
        return PodIdentity(namespace: ns, name: name, uid: pod.metadata.uid ?? "\(ns).\(name)")
    }

    /// A StatefulSet's pod keeps its address: the key is its `namespace/name`.
    static func stableKey(of pod: Pod) -> String? {
        guard pod.metadata.ownerReferences?.contains(where: { $0.kind == "StatefulSet" }) == true else { return nil }
        return "\(pod.metadata.namespace)/\(pod.metadata.name ?? "")"
    }

    /// RFC 3339 in UTC, seconds precision (as the API server writes times).
    static func timestamp() -> String { timestamp(portico_wall_seconds()) }

    /// `seconds` since the epoch in RFC 3339, UTC.
    static func timestamp(_ seconds: Int64) -> String {
        var t = time_t(seconds)
        var tm = tm()
        gmtime_r(&t, &tm)
        func p(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(tm.tm_year + 1900)-\(p(tm.tm_mon + 1))-\(p(tm.tm_mday))T\(p(tm.tm_hour)):\(p(tm.tm_min)):\(p(tm.tm_sec))Z"
    }
}

/// A pod the agent runs.
final class PodRuntime {
    var pod: Pod
    let id: PodIdentity
    let dir: String
    let ip: String
    let environment: [(name: String, value: String)]
    let startTime: String
    var containers: [ContainerRuntime] = []
    var terminating = false
    /// Kills under way of processes an earlier agent left for this pod; it is not gone before.
    var leftoverKills = 0
    var onGone: [() -> Void] = []
    var lastPublished: PodStatus?
    /// Condition type → (status, lastTransitionTime).
    var transitions: [String: (String, String)] = [:]
    /// `spec.volumes`, parsed on first use.
    var volumeSpecs: [VolumeSpec]?
    /// Volumes set up so far, by name.
    var volumes: [String: PreparedVolume] = [:]
    /// Host paths created as mount points for this pod's containers.
    var createdMountPoints: [String] = []
    /// Why the pod cannot be scheduled yet (a claim missing or not bound): PodScheduled False.
    var unschedulable: String?
    /// Set when the pod was evicted (an emptyDir over its sizeLimit): phase Failed, reason Evicted.
    var eviction: String?

    init(pod: Pod, id: PodIdentity, dir: String, ip: String, environment: [(name: String, value: String)],
         startTime: String) {
        self.pod = pod; self.id = id; self.dir = dir; self.ip = ip
        self.environment = environment; self.startTime = startTime
    }

    var restartPolicy: String { pod.spec?.effectiveRestartPolicy ?? "Always" }
    var gracePeriod: Double { Double(pod.spec?.terminationGracePeriodSeconds ?? 30) }
}

/// A container of a running pod: its process, if any, and what the kubelet reports about it.
final class ContainerRuntime {
    let spec: Pod.Container
    var pid: pid_t = 0
    var startTicks: UInt64 = 0
    var watch: ProcessWatch?
    var startedAtMonotonic: UInt64 = 0
    var state = ContainerState(waiting: .init(reason: "ContainerCreating"))
    var lastState: ContainerState?
    var restartCount = 0
    var started = false
    var ready = false
    /// Never started (a configuration error): keeps the pod Pending.
    var everRan = false
    /// Exited and will not be restarted.
    var finished = false
    var backOff: Double = 0
    var restartTimer: AgentTimers.Handle?
    var killTimer: AgentTimers.Handle?
    var probes: [ProbeWorker] = []

    init(spec: Pod.Container) { self.spec = spec }

    func stopProbes() {
        for p in probes { p.stop() }
        probes = []
    }
}
