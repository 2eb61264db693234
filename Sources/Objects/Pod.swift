/// `v1 Pod`: a group of containers that share an IP. On one machine each container is a local
/// process (see the node agent); `image` is recorded but there is no image runtime.
public struct Pod: KubeResource, Equatable {
    public static let defaultAPIVersion = "v1"
    public static let kindName = "Pod"
    public var apiVersion: String
    public var kind: String
    public var metadata: ObjectMeta
    public var spec: Spec?
    public var status: PodStatus?

    public init(metadata: ObjectMeta, spec: Spec? = nil, status: PodStatus? = nil) {
        apiVersion = Self.defaultAPIVersion; kind = Self.kindName
        self.metadata = metadata; self.spec = spec; self.status = status
    }

    public struct Spec: Codable, Sendable, Equatable {
        public var containers: [Container]
        /// Always (default), OnFailure or Never.
        public var restartPolicy: String?
        /// Seconds between SIGTERM and SIGKILL; 30 when omitted.
        public var terminationGracePeriodSeconds: Int64?
        public var hostname: String?
        public var subdomain: String?
        public var nodeName: String?
        public var serviceAccountName: String?
        /// Not run by the agent; carried so manifests that set them decode and round-trip.
        public var initContainers: [Container]?
        public var volumes: [JSONValue]?
        public var nodeSelector: [String: String]?
        public var affinity: JSONValue?
        public var tolerations: [JSONValue]?
        public var securityContext: JSONValue?
        public var serviceAccount: String?
        public var automountServiceAccountToken: Bool?
        public var dnsPolicy: String?
        public var schedulerName: String?
        public var priority: Int?
        public var priorityClassName: String?
        public var enableServiceLinks: Bool?
        public var readinessGates: [JSONValue]?
        public var imagePullSecrets: [JSONValue]?
        public var activeDeadlineSeconds: Int64?
        public var hostNetwork: Bool?
        public var shareProcessNamespace: Bool?

        public init(containers: [Container], restartPolicy: String? = nil,
                    terminationGracePeriodSeconds: Int64? = nil, hostname: String? = nil, subdomain: String? = nil) {
            self.containers = containers; self.restartPolicy = restartPolicy
            self.terminationGracePeriodSeconds = terminationGracePeriodSeconds
            self.hostname = hostname; self.subdomain = subdomain
        }

        /// `restartPolicy` with Kubernetes' default.
        public var effectiveRestartPolicy: String { restartPolicy ?? "Always" }
    }

    public struct Container: Codable, Sendable, Equatable {
        public var name: String
        public var image: String?
        /// The executable and its leading arguments; required here (there is no image entrypoint).
        public var command: [String]?
        public var args: [String]?
        public var workingDir: String?
        public var env: [EnvVar]?
        public var ports: [ContainerPort]?
        public var readinessProbe: Probe?
        public var livenessProbe: Probe?
        public var startupProbe: Probe?
        /// Variables from every key of a ConfigMap or Secret.
        public var envFrom: [EnvFromSource]?
        public var imagePullPolicy: String?
        /// Carried, not enforced.
        public var resources: JSONValue?
        public var volumeMounts: [JSONValue]?
        public var lifecycle: JSONValue?
        public var securityContext: JSONValue?
        public var terminationMessagePath: String?
        public var terminationMessagePolicy: String?
        public var stdin: Bool?
        public var tty: Bool?

        public init(name: String, image: String? = nil, command: [String]? = nil, args: [String]? = nil,
                    workingDir: String? = nil, env: [EnvVar]? = nil, ports: [ContainerPort]? = nil,
                    readinessProbe: Probe? = nil, livenessProbe: Probe? = nil, startupProbe: Probe? = nil) {
            self.name = name; self.image = image; self.command = command; self.args = args
            self.workingDir = workingDir; self.env = env; self.ports = ports
            self.readinessProbe = readinessProbe; self.livenessProbe = livenessProbe; self.startupProbe = startupProbe
        }
    }

    /// `env[]`: a literal `value` or a `valueFrom` reference.
    public struct EnvVar: Codable, Sendable, Equatable {
        public var name: String
        public var value: String?
        public var valueFrom: EnvVarSource?

        public init(name: String, value: String? = nil, valueFrom: EnvVarSource? = nil) {
            self.name = name; self.value = value; self.valueFrom = valueFrom
        }
    }

    public struct EnvVarSource: Codable, Sendable, Equatable {
        public var fieldRef: ObjectFieldSelector?
        public var configMapKeyRef: KeySelector?
        public var secretKeyRef: KeySelector?
        /// Carried, not resolved (there are no resource limits here).
        public var resourceFieldRef: JSONValue?
        public init(fieldRef: ObjectFieldSelector? = nil, configMapKeyRef: KeySelector? = nil,
                    secretKeyRef: KeySelector? = nil) {
            self.fieldRef = fieldRef; self.configMapKeyRef = configMapKeyRef; self.secretKeyRef = secretKeyRef
        }
    }

    /// `configMapKeyRef` / `secretKeyRef`: one key of a ConfigMap or Secret in the pod's namespace.
    public struct KeySelector: Codable, Sendable, Equatable {
        public var name: String
        public var key: String
        public var optional: Bool?
        public init(name: String, key: String, optional: Bool? = nil) { self.name = name; self.key = key; self.optional = optional }
    }

    /// `envFrom[]`: every key of a ConfigMap or Secret, each name prefixed with `prefix`.
    public struct EnvFromSource: Codable, Sendable, Equatable {
        public var prefix: String?
        public var configMapRef: Reference?
        public var secretRef: Reference?
        public init(prefix: String? = nil, configMapRef: Reference? = nil, secretRef: Reference? = nil) {
            self.prefix = prefix; self.configMapRef = configMapRef; self.secretRef = secretRef
        }

        public struct Reference: Codable, Sendable, Equatable {
            public var name: String
            public var optional: Bool?
            public init(name: String, optional: Bool? = nil) { self.name = name; self.optional = optional }
        }
    }

    /// The downward API: `metadata.name`, `metadata.namespace`, `metadata.uid`, `status.podIP`,
    /// `spec.nodeName`, `metadata.labels['k']` …
    public struct ObjectFieldSelector: Codable, Sendable, Equatable {
        public var apiVersion: String?
        public var fieldPath: String
        public init(fieldPath: String, apiVersion: String? = nil) { self.fieldPath = fieldPath; self.apiVersion = apiVersion }
    }

    public struct ContainerPort: Codable, Sendable, Equatable {
        public var name: String?
        public var containerPort: Int
        /// TCP (default), UDP or SCTP.
        public var `protocol`: String?
        public var hostPort: Int?
        public var hostIP: String?

        public init(name: String? = nil, containerPort: Int, protocol: String? = nil) {
            self.name = name; self.containerPort = containerPort; self.protocol = `protocol`
        }
    }

    /// One of `httpGet`, `tcpSocket`, `exec`, with Kubernetes' timing fields.
    public struct Probe: Codable, Sendable, Equatable {
        public var httpGet: HTTPGetAction?
        public var tcpSocket: TCPSocketAction?
        public var exec: ExecAction?
        public var initialDelaySeconds: Int?
        public var periodSeconds: Int?
        public var timeoutSeconds: Int?
        public var successThreshold: Int?
        public var failureThreshold: Int?

        public init(httpGet: HTTPGetAction? = nil, tcpSocket: TCPSocketAction? = nil, exec: ExecAction? = nil,
                    initialDelaySeconds: Int? = nil, periodSeconds: Int? = nil, timeoutSeconds: Int? = nil,
                    successThreshold: Int? = nil, failureThreshold: Int? = nil) {
            self.httpGet = httpGet; self.tcpSocket = tcpSocket; self.exec = exec
            self.initialDelaySeconds = initialDelaySeconds; self.periodSeconds = periodSeconds
            self.timeoutSeconds = timeoutSeconds; self.successThreshold = successThreshold
            self.failureThreshold = failureThreshold
        }
    }

    public struct HTTPGetAction: Codable, Sendable, Equatable {
        public var path: String?
        /// A number or the name of a container port.
        public var port: IntOrString
        public var host: String?
        /// HTTP (default); HTTPS is not supported by the agent.
        public var scheme: String?
        public var httpHeaders: [HTTPHeader]?

        public init(path: String? = nil, port: IntOrString, host: String? = nil) {
            self.path = path; self.port = port; self.host = host
        }
    }

    public struct HTTPHeader: Codable, Sendable, Equatable {
        public var name: String
        public var value: String
        public init(name: String, value: String) { self.name = name; self.value = value }
    }

    public struct TCPSocketAction: Codable, Sendable, Equatable {
        public var port: IntOrString
        public var host: String?
        public init(port: IntOrString, host: String? = nil) { self.port = port; self.host = host }
    }

    public struct ExecAction: Codable, Sendable, Equatable {
        public var command: [String]?
        public init(command: [String]) { self.command = command }
    }

    enum CodingKeys: String, CodingKey { case apiVersion, kind, metadata, spec, status }

    public init(from decoder: Decoder) throws {
        (apiVersion, kind, metadata) = try Self.decodeTypeMeta(decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        spec = try c.decodeIfPresent(Spec.self, forKey: .spec)
        status = try c.decodeIfPresent(PodStatus.self, forKey: .status)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(apiVersion, forKey: .apiVersion)
        try c.encode(kind, forKey: .kind)
        try c.encode(metadata, forKey: .metadata)
        try c.encodeIfPresent(spec, forKey: .spec)
        try c.encodeIfPresent(status, forKey: .status)
    }
}

/// `v1 PodStatus`.
public struct PodStatus: Codable, Sendable, Equatable {
    /// Pending, Running, Succeeded, Failed or Unknown.
    public var phase: String?
    public var podIP: String?
    public var podIPs: [PodIP]?
    public var hostIP: String?
    public var conditions: [PodCondition]?
    public var containerStatuses: [ContainerStatus]?
    /// RFC 3339.
    public var startTime: String?
    public var reason: String?
    public var message: String?

    public init(phase: String? = nil, podIP: String? = nil, conditions: [PodCondition]? = nil,
                containerStatuses: [ContainerStatus]? = nil, startTime: String? = nil) {
        self.phase = phase; self.podIP = podIP; self.conditions = conditions
        self.containerStatuses = containerStatuses; self.startTime = startTime
    }

    /// The condition of `type` (PodScheduled, Initialized, ContainersReady, Ready), if set.
    public func condition(_ type: String) -> PodCondition? { conditions?.first { $0.type == type } }

    /// True when the Ready condition is True (what Endpoints select on).
    public var isReady: Bool { condition("Ready")?.status == "True" }
}

public struct PodIP: Codable, Sendable, Equatable {
    public var ip: String
    public init(ip: String) { self.ip = ip }
}

public struct PodCondition: Codable, Sendable, Equatable {
    public var type: String
    /// True, False or Unknown.
    public var status: String
    public var lastProbeTime: String?
    public var lastTransitionTime: String?
    public var reason: String?
    public var message: String?

    public init(type: String, status: String, lastTransitionTime: String? = nil, reason: String? = nil,
                message: String? = nil) {
        self.type = type; self.status = status; self.lastTransitionTime = lastTransitionTime
        self.reason = reason; self.message = message
    }
}

public struct ContainerStatus: Codable, Sendable, Equatable {
    public var name: String
    public var ready: Bool
    public var started: Bool?
    public var restartCount: Int
    public var state: ContainerState?
    public var lastState: ContainerState?
    public var image: String?
    public var imageID: String?
    public var containerID: String?

    public init(name: String, ready: Bool = false, started: Bool? = nil, restartCount: Int = 0,
                state: ContainerState? = nil, lastState: ContainerState? = nil, image: String? = nil) {
        self.name = name; self.ready = ready; self.started = started; self.restartCount = restartCount
        self.state = state; self.lastState = lastState; self.image = image
    }
}

/// At most one of `waiting`, `running`, `terminated` is set.
public struct ContainerState: Codable, Sendable, Equatable {
    public var waiting: Waiting?
    public var running: Running?
    public var terminated: Terminated?

    public init(waiting: Waiting? = nil, running: Running? = nil, terminated: Terminated? = nil) {
        self.waiting = waiting; self.running = running; self.terminated = terminated
    }

    public struct Waiting: Codable, Sendable, Equatable {
        /// ContainerCreating, CrashLoopBackOff, CreateContainerConfigError …
        public var reason: String?
        public var message: String?
        public init(reason: String? = nil, message: String? = nil) { self.reason = reason; self.message = message }
    }

    public struct Running: Codable, Sendable, Equatable {
        public var startedAt: String?
        public init(startedAt: String? = nil) { self.startedAt = startedAt }
    }

    public struct Terminated: Codable, Sendable, Equatable {
        public var exitCode: Int32
        public var signal: Int32?
        /// Completed (exit 0) or Error.
        public var reason: String?
        public var message: String?
        public var startedAt: String?
        public var finishedAt: String?
        public var containerID: String?

        public init(exitCode: Int32, signal: Int32? = nil, reason: String? = nil, message: String? = nil,
                    startedAt: String? = nil, finishedAt: String? = nil) {
            self.exitCode = exitCode; self.signal = signal; self.reason = reason; self.message = message
            self.startedAt = startedAt; self.finishedAt = finishedAt
        }
    }
}

extension Pod {
    /// Kubernetes' `ValidatePod` rules the agent depends on: at least one container, unique DNS-1123
    /// container names, ports in range, a known restart policy.
    public func validate() -> [FieldError] {
        var out: [FieldError] = []
        if let name = metadata.name, !NameValidation.isDNS1123Subdomain(name) {
            out.append(FieldError("metadata.name", NameValidation.subdomainMessage))
        }
        guard let spec else { return [FieldError("spec", "Required value")] }
        if spec.containers.isEmpty { out.append(FieldError("spec.containers", "Required value")) }
        var seen = Set<String>()
        for (i, c) in spec.containers.enumerated() {
            let path = "spec.containers[\(i)]"
            if !NameValidation.isDNS1123Label(c.name) {
                out.append(FieldError("\(path).name", NameValidation.labelMessage))
            } else if !seen.insert(c.name).inserted {
                out.append(FieldError("\(path).name", "Duplicate value: \"\(c.name)\""))
            }
            for (j, p) in (c.ports ?? []).enumerated() where !(1...65535).contains(p.containerPort) {
                out.append(FieldError("\(path).ports[\(j)].containerPort", "must be between 1 and 65535, inclusive"))
            }
            for (j, e) in (c.env ?? []).enumerated() where e.name.isEmpty {
                out.append(FieldError("\(path).env[\(j)].name", "Required value"))
            }
        }
        if let p = spec.restartPolicy, !["Always", "OnFailure", "Never"].contains(p) {
            out.append(FieldError("spec.restartPolicy", "Unsupported value: \"\(p)\": supported values: \"Always\", \"OnFailure\", \"Never\""))
        }
        return out
    }
}
