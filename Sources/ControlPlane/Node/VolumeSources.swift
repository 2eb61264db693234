/// The seam between the node agent (which mounts volumes) and the controllers (which own the
/// objects volumes come from). The agent asks through hooks that return these values; it never
/// reads the store itself.

/// Where a PersistentVolumeClaim's data lives on this machine, or why it cannot be used yet.
public enum ClaimLookup: Sendable, Equatable {
    /// Bound to a volume whose data directory is `path`; `readOnly` when the claim or the volume
    /// only allows ReadOnlyMany.
    case bound(path: String, readOnly: Bool)
    /// The claim exists but is not bound yet (phase Pending): the pod waits.
    case pending(reason: String)
    /// No such claim in the namespace: the pod waits, as Kubernetes' does.
    case missing
}

/// The contents of a ConfigMap or Secret as bytes (ConfigMap `data` and `binaryData`; Secret
/// `data` decoded from base64, `stringData` merged), for volumes that project them into files.
public struct ConfigContents: Sendable, Equatable {
    public var entries: [String: [UInt8]]
    /// `resourceVersion` of the object, so the agent can skip rewriting files that did not change.
    public var resourceVersion: String
    public init(entries: [String: [UInt8]], resourceVersion: String) {
        self.entries = entries; self.resourceVersion = resourceVersion
    }
}
