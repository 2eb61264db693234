import Reactor
import HTTP1

/// Everything the data plane needs besides routes. Timeouts are in nanoseconds; defaults follow
/// nginx where it has one (client_header_timeout 60s, keepalive_timeout 75s, proxy_read_timeout
/// 60s) and Envoy for the connect timeout (5s).
public struct ProxyConfig: Sendable {
    public var httpAddress: SocketAddress
    /// The https listener (served with the certificates of the RouteTable), if any.
    public var httpsAddress: SocketAddress?
    public var workers: Int = 1
    public var clientHeaderTimeout: UInt64 = 60_000_000_000
    public var clientBodyTimeout: UInt64 = 60_000_000_000
    public var keepaliveTimeout: UInt64 = 75_000_000_000
    /// How long a client that does not read its response may block us.
    public var sendTimeout: UInt64 = 60_000_000_000
    public var upstreamConnectTimeout: UInt64 = 5_000_000_000
    /// Wait for the upstream's response head, and between reads of its body.
    public var upstreamTimeout: UInt64 = 60_000_000_000
    public var upstreamIdleTimeout: UInt64 = 60_000_000_000
    public var drainTimeout: UInt64 = 10_000_000_000
    /// Largest request body accepted (0 = no limit).
    public var maxBodySize: UInt64 = 1 << 30
    /// Tries per request, counting the first (retries go to another endpoint when one exists).
    public var tries: Int = 2
    /// Idle keep-alive connections kept per endpoint per worker.
    public var upstreamKeepalive: Int = 32
    public var limits = ParseLimits()
    public var health = HealthPolicy()
    /// Pending output per direction before reading from the other side pauses.
    public var highWaterMark: Int = 256 * 1024
    public var maxConnections: Int = 0
    public var serverName: StaticString = "portico"

    public init(httpAddress: SocketAddress) {
        self.httpAddress = httpAddress
    }
}
