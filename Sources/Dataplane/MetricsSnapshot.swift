/// Metrics of one or more workers, keyed by label values: what `WorkerStats.snapshot()` returns
/// and what the scrape handler sums over workers (`merge`) and renders (`prometheusText()`).
/// Cold path only.
public struct MetricsSnapshot: Sendable, Equatable {
    public struct RequestKey: Hashable, Sendable, Comparable {
        public var ingress: String
        public var service: String
        /// `1xx` … `5xx`, or `other` for a status outside 100…599.
        public var codeClass: String
        public init(ingress: String, service: String, codeClass: String) {
            self.ingress = ingress; self.service = service; self.codeClass = codeClass
        }
        public static func < (a: RequestKey, b: RequestKey) -> Bool {
            (a.ingress, a.service, a.codeClass) < (b.ingress, b.service, b.codeClass)
        }
    }

    public struct Histogram: Sendable, Equatable {
        /// Per-bucket (not cumulative) counts: one per `MetricsSnapshot.latencyBucketNanos` bound,
        /// plus the last one for `+Inf`.
        public var buckets: [UInt64]
        public var sumNanos: UInt64
        public var count: UInt64
        public init() {
            buckets = [UInt64](repeating: 0, count: MetricsSnapshot.latencyBucketNanos.count + 1)
            sumNanos = 0; count = 0
        }
        public mutating func merge(_ o: Histogram) {
            for k in buckets.indices { buckets[k] &+= o.buckets[k] }
            sumNanos &+= o.sumNanos; count &+= o.count
        }
    }

    /// Upper bounds of the latency histogram buckets, in nanoseconds (0.5 ms … 10 s).
    public static let latencyBucketNanos: [UInt64] = [
        500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000, 25_000_000, 50_000_000,
        100_000_000, 250_000_000, 500_000_000, 1_000_000_000, 2_500_000_000, 5_000_000_000,
        10_000_000_000,
    ]
    /// The same bounds as Prometheus `le` label values, then `+Inf`.
    public static let latencyBucketLabels: [String] = [
        "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
        "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
    ]
    public static let codeClassLabels = ["other", "1xx", "2xx", "3xx", "4xx", "5xx"]

    public var requests: [RequestKey: UInt64] = [:]
    /// By service label.
    public var upstreamLatency: [String: Histogram] = [:]
    public var openConnections: Int64 = 0
    public var connectionsTotal: UInt64 = 0
    public var bytesReceived: UInt64 = 0
    public var bytesSent: UInt64 = 0
    public var upstreamConnectionsCreated: UInt64 = 0
    public var upstreamConnectionsReused: UInt64 = 0
    /// By service label.
    public var ejections: [String: UInt64] = [:]

    public init() {}

    /// Adds `other`'s counters (and its open-connection gauge) to these.
    public mutating func merge(_ other: MetricsSnapshot) {
        for (k, v) in other.requests { requests[k, default: 0] &+= v }
        for (k, h) in other.upstreamLatency { upstreamLatency[k, default: Histogram()].merge(h) }
        for (k, v) in other.ejections { ejections[k, default: 0] &+= v }
        openConnections &+= other.openConnections
        connectionsTotal &+= other.connectionsTotal
        bytesReceived &+= other.bytesReceived
        bytesSent &+= other.bytesSent
        upstreamConnectionsCreated &+= other.upstreamConnectionsCreated
        upstreamConnectionsReused &+= other.upstreamConnectionsReused
    }

    /// The `Content-Type` of `prometheusText()`.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// Prometheus text exposition format 0.0.4 (`text/plain; version=0.0.4`).
    public func prometheusText() -> String {
        var w = PrometheusWriter()
        w.family("portico_requests_total", "counter", "HTTP requests answered, by Ingress, Service and status class.")
        for k in requests.keys.sorted() {
            w.sample("portico_requests_total",
                     [("ingress", k.ingress), ("service", k.service), ("code_class", k.codeClass)],
                     requests[k]!)
        }
        w.family("portico_upstream_latency_seconds", "histogram",
                 "Time from sending a request upstream to receiving the response head, by Service.")
        for service in upstreamLatency.keys.sorted() {
            let h = upstreamLatency[service]!
            var cumulative: UInt64 = 0
            for (k, le) in MetricsSnapshot.latencyBucketLabels.enumerated() {
                cumulative &+= h.buckets[k]
                w.sample("portico_upstream_latency_seconds_bucket", [("service", service), ("le", le)], cumulative)
            }
            w.sample("portico_upstream_latency_seconds_sum", [("service", service)],
                     PrometheusWriter.seconds(nanos: h.sumNanos))
            w.sample("portico_upstream_latency_seconds_count", [("service", service)], h.count)
        }
        w.family("portico_open_connections", "gauge", "Client connections currently open.")
        w.sample("portico_open_connections", [], String(openConnections))
        w.family("portico_connections_total", "counter", "Client connections accepted.")
        w.sample("portico_connections_total", [], connectionsTotal)
        w.family("portico_bytes_received_total", "counter", "Bytes received from clients.")
        w.sample("portico_bytes_received_total", [], bytesReceived)
        w.family("portico_bytes_sent_total", "counter", "Bytes sent to clients.")
        w.sample("portico_bytes_sent_total", [], bytesSent)
        w.family("portico_upstream_connections_total", "counter",
                 "Upstream connections used for a request: newly created (reused=\"false\") or taken from the pool.")
        w.sample("portico_upstream_connections_total", [("reused", "false")], upstreamConnectionsCreated)
        w.sample("portico_upstream_connections_total", [("reused", "true")], upstreamConnectionsReused)
        w.family("portico_endpoint_ejections_total", "counter", "Endpoints ejected by passive health checking, by Service.")
        for service in ejections.keys.sorted() {
            w.sample("portico_endpoint_ejections_total", [("service", service)], ejections[service]!)
        }
        return w.text
    }
}
