/// A kind of object the store and the API server know: where it lives in the REST paths
/// (`group`, `version`, plural `resource`), its `kind`, and whether it is namespaced.
public struct ResourceType: Hashable, Sendable {
    public let group: String
    public let version: String
    public let resource: String
    public let kind: String
    public let namespaced: Bool
    public let shortNames: [String]
    /// Kinds whose `status` changes only through the status subresource.
    public let hasStatus: Bool
    /// Kinds with the `scale` subresource (autoscaling/v1 Scale).
    public let hasScale: Bool

    public init(group: String, version: String, resource: String, kind: String, namespaced: Bool = true,
                shortNames: [String] = [], hasStatus: Bool = false, hasScale: Bool = false) {
        self.group = group; self.version = version; self.resource = resource; self.kind = kind
        self.namespaced = namespaced; self.shortNames = shortNames; self.hasStatus = hasStatus; self.hasScale = hasScale
    }

    /// `apiVersion` of its objects: `v1` or `apps/v1`.
    public var apiVersion: String { group.isEmpty ? version : "\(group)/\(version)" }
    /// `deployments.apps` (Kubernetes' group-resource, used in messages); `pods` for the core group.
    public var groupResource: String { group.isEmpty ? resource : "\(resource).\(group)" }

    public static let namespaces = ResourceType(group: "", version: "v1", resource: "namespaces", kind: "Namespace", namespaced: false, shortNames: ["ns"], hasStatus: true)
    public static let pods = ResourceType(group: "", version: "v1", resource: "pods", kind: "Pod", shortNames: ["po"], hasStatus: true)
    public static let services = ResourceType(group: "", version: "v1", resource: "services", kind: "Service", shortNames: ["svc"], hasStatus: true)
    public static let endpoints = ResourceType(group: "", version: "v1", resource: "endpoints", kind: "Endpoints", shortNames: ["ep"])
    public static let configMaps = ResourceType(group: "", version: "v1", resource: "configmaps", kind: "ConfigMap", shortNames: ["cm"])
    public static let secrets = ResourceType(group: "", version: "v1", resource: "secrets", kind: "Secret")
    public static let events = ResourceType(group: "", version: "v1", resource: "events", kind: "Event", shortNames: ["ev"])
    public static let persistentVolumeClaims = ResourceType(group: "", version: "v1", resource: "persistentvolumeclaims", kind: "PersistentVolumeClaim", shortNames: ["pvc"], hasStatus: true)
    public static let persistentVolumes = ResourceType(group: "", version: "v1", resource: "persistentvolumes", kind: "PersistentVolume", namespaced: false, shortNames: ["pv"], hasStatus: true)
    public static let storageClasses = ResourceType(group: "storage.k8s.io", version: "v1", resource: "storageclasses", kind: "StorageClass", namespaced: false, shortNames: ["sc"])
    public static let deployments = ResourceType(group: "apps", version: "v1", resource: "deployments", kind: "Deployment", shortNames: ["deploy"], hasStatus: true, hasScale: true)
    public static let replicaSets = ResourceType(group: "apps", version: "v1", resource: "replicasets", kind: "ReplicaSet", shortNames: ["rs"], hasStatus: true, hasScale: true)
    public static let statefulSets = ResourceType(group: "apps", version: "v1", resource: "statefulsets", kind: "StatefulSet", shortNames: ["sts"], hasStatus: true, hasScale: true)
    public static let ingresses = ResourceType(group: "networking.k8s.io", version: "v1", resource: "ingresses", kind: "Ingress", shortNames: ["ing"], hasStatus: true)
    public static let endpointSlices = ResourceType(group: "discovery.k8s.io", version: "v1", resource: "endpointslices", kind: "EndpointSlice")

    /// Every kind served, in discovery order.
    public static let all: [ResourceType] = [
        .namespaces, .pods, .services, .endpoints, .configMaps, .secrets, .events, .persistentVolumeClaims,
        .persistentVolumes, .deployments, .replicaSets, .statefulSets, .ingresses, .endpointSlices, .storageClasses,
    ]

    /// The kind served at `group`/`resource` (any version the store knows).
    public static func find(group: String, resource: String) -> ResourceType? {
        all.first { $0.group == group && $0.resource == resource }
    }

    /// The kind for an object's `apiVersion` and `kind`.
    public static func find(apiVersion: String, kind: String) -> ResourceType? {
        all.first { $0.apiVersion == apiVersion && $0.kind == kind }
    }
}
