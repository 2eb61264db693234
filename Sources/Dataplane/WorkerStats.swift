/// The counters of one worker. Owned by the worker's event-loop thread and only touched there
/// (plain stored properties, no atomics); a scrape asks every worker, on its own thread, for a
/// `snapshot()` and merges them.
///
/// Hot-path recording is O(1) with array indexes into flat buffers sized by the current
/// RouteTable's ingresses and backends (index 0 of each dimension is "none", for 404s and such).
/// `configure` on a RouteTable swap folds the totals of the previous labels into name-keyed
/// storage, so counters never go backwards for a label that keeps existing.
///
/// Indexes passed to the recording functions must belong to the table given to the latest
/// `configure`; out-of-range indexes are recorded as "none" rather than trapping.
public final class WorkerStats {
    @usableFromInline static let codeClasses = 6
    @usableFromInline static let buckets = MetricsSnapshot.latencyBucketNanos.count + 1

    public private(set) var ingressLabels: [String] = []
    public private(set) var backendLabels: [String] = []
    @usableFromInline var ingressCount: Int = 0
    @usableFromInline var backendCount: Int = 0

    /// [(ingress+1) * (backends+1) + (backend+1)] * 6 + codeClass
    @usableFromInline var requests: UnsafeMutableBufferPointer<UInt64>
    /// (backend+1) * buckets + bucket
    @usableFromInline var latencyBuckets: UnsafeMutableBufferPointer<UInt64>
    /// (backend+1)
    @usableFromInline var latencySum: UnsafeMutableBufferPointer<UInt64>
    @usableFromInline var ejections: UnsafeMutableBufferPointer<UInt64>
    @usableFromInline let bucketBounds: UnsafeMutableBufferPointer<UInt64>

    @usableFromInline var openConnections: Int64 = 0
    @usableFromInline var connectionsTotal: UInt64 = 0
    @usableFromInline var bytesReceived: UInt64 = 0
    @usableFromInline var bytesSent: UInt64 = 0
    @usableFromInline var upstreamCreated: UInt64 = 0
    @usableFromInline var upstreamReused: UInt64 = 0

    /// Totals of labels from earlier tables (and of everything before the latest `configure`).
    var carried = MetricsSnapshot()

    public init() {
        requests = .allocate(capacity: WorkerStats.codeClasses)
        requests.initialize(repeating: 0)
        latencyBuckets = .allocate(capacity: WorkerStats.buckets)
        latencyBuckets.initialize(repeating: 0)
        latencySum = .allocate(capacity: 1)
        latencySum.initialize(repeating: 0)
        ejections = .allocate(capacity: 1)
        ejections.initialize(repeating: 0)
        bucketBounds = .allocate(capacity: MetricsSnapshot.latencyBucketNanos.count)
        _ = bucketBounds.initialize(from: MetricsSnapshot.latencyBucketNanos)
    }

    deinit {
        requests.deallocate(); latencyBuckets.deallocate(); latencySum.deallocate()
        ejections.deallocate(); bucketBounds.deallocate()
    }

    /// Called on every RouteTable swap with the new labels (ingress and backend labels in table
    /// order). Cold path.
    public func configure(ingresses: [String], backends: [String]) {
        carried.merge(labelledCounters())
        ingressLabels = ingresses
        backendLabels = backends
        ingressCount = ingresses.count
        backendCount = backends.count
        let rows = (ingressCount + 1) * (backendCount + 1)
        requests.deallocate(); latencyBuckets.deallocate(); latencySum.deallocate(); ejections.deallocate()
        requests = .allocate(capacity: rows * WorkerStats.codeClasses)
        requests.initialize(repeating: 0)
        latencyBuckets = .allocate(capacity: (backendCount + 1) * WorkerStats.buckets)
        latencyBuckets.initialize(repeating: 0)
        latencySum = .allocate(capacity: backendCount + 1)
        latencySum.initialize(repeating: 0)
        ejections = .allocate(capacity: backendCount + 1)
        ejections.initialize(repeating: 0)
    }

    @inlinable @inline(__always)
    func backendRow(_ backend: Int32) -> Int {
        let b = Int(backend)
        return (b >= 0 && b < backendCount) ? b + 1 : 0
    }

    /// One answered request. `ingress`/`backend` are RouteTable indexes, -1 for none (404 etc.);
    /// `upstreamNanos` is nil when no upstream answered.
    @inlinable
    public func recordRequest(ingress: Int32, backend: Int32, status: Int, upstreamNanos: UInt64?,
                              bytesIn: UInt64, bytesOut: UInt64) {
        let i = Int(ingress)
        let irow = (i >= 0 && i < ingressCount) ? i + 1 : 0
        let brow = backendRow(backend)
        let cls = (status >= 100 && status < 600) ? status / 100 : 0
        requests[((irow * (backendCount + 1)) + brow) * WorkerStats.codeClasses + cls] &+= 1
        bytesReceived &+= bytesIn
        bytesSent &+= bytesOut
        if let nanos = upstreamNanos {
            var k = 0
            let bounds = bucketBounds.count
            while k < bounds && nanos > bucketBounds[k] { k &+= 1 }
            latencyBuckets[brow * WorkerStats.buckets + k] &+= 1
            latencySum[brow] &+= nanos
        }
    }

    @inlinable public func connectionOpened() {
        openConnections &+= 1
        connectionsTotal &+= 1
    }

    @inlinable public func connectionClosed() {
        openConnections &-= 1
    }

    @inlinable public func recordEjection(backend: Int32) {
        ejections[backendRow(backend)] &+= 1
    }

    /// An upstream connection was used for a request: newly created, or reused from the pool.
    @inlinable public func recordUpstreamConnect(reused: Bool) {
        if reused { upstreamReused &+= 1 } else { upstreamCreated &+= 1 }
    }

    /// Everything recorded so far, by label. Cold path.
    public func snapshot() -> MetricsSnapshot {
        var s = carried
        s.merge(labelledCounters())
        s.openConnections = openConnections
        s.connectionsTotal = connectionsTotal
        s.bytesReceived = bytesReceived
        s.bytesSent = bytesSent
        s.upstreamConnectionsCreated = upstreamCreated
        s.upstreamConnectionsReused = upstreamReused
        return s
    }

    func ingressLabel(row: Int) -> String { row == 0 ? "" : ingressLabels[row - 1] }
    func backendLabel(row: Int) -> String { row == 0 ? "" : backendLabels[row - 1] }

    /// The counters that live in the per-table buffers, keyed by name.
    func labelledCounters() -> MetricsSnapshot {
        var s = MetricsSnapshot()
        let bRows = backendCount + 1
        for irow in 0...ingressCount {
            for brow in 0..<bRows {
                let base = (irow * bRows + brow) * WorkerStats.codeClasses
                for cls in 0..<WorkerStats.codeClasses where requests[base + cls] != 0 {
                    let key = MetricsSnapshot.RequestKey(ingress: ingressLabel(row: irow),
                                                         service: backendLabel(row: brow),
                                                         codeClass: MetricsSnapshot.codeClassLabels[cls])
                    s.requests[key, default: 0] &+= requests[base + cls]
                }
            }
        }
        for brow in 0..<bRows {
            var h = MetricsSnapshot.Histogram()
            for k in 0..<WorkerStats.buckets {
                h.buckets[k] = latencyBuckets[brow * WorkerStats.buckets + k]
                h.count &+= h.buckets[k]
            }
            h.sumNanos = latencySum[brow]
            if h.count > 0 { s.upstreamLatency[backendLabel(row: brow), default: MetricsSnapshot.Histogram()].merge(h) }
            if ejections[brow] > 0 { s.ejections[backendLabel(row: brow), default: 0] &+= ejections[brow] }
        }
        return s
    }
}
