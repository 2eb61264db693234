/// Passive health checking (outlier detection) for one backend's endpoints, per worker.
///
/// After `consecutiveFailures` failures in a row (connect failure, reset, timeout or a 5xx from the
/// endpoint) the endpoint is ejected for `baseEjectionNanos * timesEjected`, capped at
/// `maxEjectionNanos`. When that time has passed it is back in rotation and its next request is the
/// probe: a success resets the failure count, a failure ejects it again for longer. If an endpoint
/// stays out of trouble for `maxEjectionNanos` after its last ejection ended, its ejection count
/// starts again from zero.
public struct HealthPolicy: Sendable, Equatable {
    /// 0 disables passive health checking.
    public var consecutiveFailures: Int = 3
    public var baseEjectionNanos: UInt64 = 10_000_000_000
    public var maxEjectionNanos: UInt64 = 300_000_000_000
    public init() {}
    public init(consecutiveFailures: Int, baseEjectionNanos: UInt64 = 10_000_000_000,
                maxEjectionNanos: UInt64 = 300_000_000_000) {
        self.consecutiveFailures = consecutiveFailures
        self.baseEjectionNanos = baseEjectionNanos
        self.maxEjectionNanos = maxEjectionNanos
    }
}
