import Foundation
import Reactor

/// Everything a run needs, checked: built by the CLI (or a test), consumed by `LoadRunner`.
public struct LoadConfig {
    public var requests: [RequestSpec]
    /// Where every connection goes (the URL's address, or --connect-to).
    public var address: SocketAddress
    public var connections: Int = 1
    public var threads: Int = 1
    /// Run length in ns; 0 when the run is bounded by `totalRequests`.
    public var durationNanos: UInt64 = 0
    /// Exact number of requests (responses plus failed attempts); 0 for a timed run.
    public var totalRequests: Int = 0
    /// Open loop: requests per second for the whole run; 0 for a closed loop.
    public var rate: Double = 0
    public var timeoutNanos: UInt64 = 5_000_000_000
    /// A new connection for every request (`Connection: close` is sent too).
    public var newConnectionPerRequest = false
    /// Idle mode: each connection sends one request, then stays open and silent until the end
    /// (to measure a server's memory per idle keep-alive connection).
    public var holdIdle = false
    /// Show the live progress line (the CLI sets it when stdout is a terminal).
    public var progress = false
    public var tls: TLSOptions? = nil

    public init(requests: [RequestSpec], address: SocketAddress) {
        self.requests = requests
        self.address = address
    }

    public var isOpenLoop: Bool { rate > 0 }

    /// Open loop: the shortest interval between two requests of one connection that is paced.
    /// The schedule is in whole ns, so from 1 µs up it is within 0.05% of -R; and no connection
    /// completes a request in under 1 µs anyway.
    public static let minimumIntervalNanos: Double = 1000

    /// Open loop: ns between two requests of one connection (rounded); 0 in a closed loop.
    public var intervalNanos: UInt64 {
        rate > 0 ? UInt64(exactIntervalNanos.rounded()) : 0
    }

    /// Open loop: the interval `-R` asks for, before rounding (checked by `validate`).
    private var exactIntervalNanos: Double { Double(connections) * 1e9 / rate }

    /// Consistency checks that do not depend on the network.
    public func validate() throws {
        guard !requests.isEmpty else { throw UsageError("no request to send") }
        guard connections >= 1 else { throw UsageError("-c must be at least 1") }
        guard threads >= 1 else { throw UsageError("-t must be at least 1") }
        guard threads <= connections else { throw UsageError("-t (\(threads)) cannot exceed -c (\(connections)): each thread needs a connection") }
        guard (durationNanos > 0) != (totalRequests > 0) else { throw UsageError("give exactly one of -d DURATION or -n REQUESTS") }
        guard timeoutNanos > 0 else { throw UsageError("--timeout must be positive") }
        guard rate >= 0, rate.isFinite else { throw UsageError("-R must be positive") }
        if rate > 0 {
            let interval = exactIntervalNanos
            guard interval >= LoadConfig.minimumIntervalNanos else {
                let most = Double(connections) * 1e9 / LoadConfig.minimumIntervalNanos
                throw UsageError("-R \(rate.formatted) is too fast to pace: with -c \(connections) each connection would send every \(interval.formatted) ns; at most \(most.formatted) req/s (1 µs per connection), or add connections")
            }
            // UInt64(interval) would trap; nobody waits 146 years for a request.
            guard interval < Double(UInt64(1) << 62) else {
                throw UsageError("-R \(rate.formatted) is too slow: each connection would wait \(interval.formatted) ns between requests")
            }
        }
        if holdIdle {
            guard durationNanos > 0, rate == 0, !newConnectionPerRequest else {
                throw UsageError("--idle needs -d, and goes with neither -n, -R nor --new-connection")
            }
        }
        let tlsSet = Set(requests.map { $0.url.isTLS })
        guard tlsSet.count == 1 else { throw UsageError("mixing http and https requests in one run is not supported") }
    }
}

/// TLS settings for https targets (the SNI name is each request's `serverName`).
public struct TLSOptions {
    public var insecure = false
    public var caFile: String? = nil
    public init(insecure: Bool = false, caFile: String? = nil) {
        self.insecure = insecure; self.caFile = caFile
    }
}

extension Double {
    /// `%g`: 1e+12, 0.01, 10000000.
    var formatted: String { String(format: "%g", self) }
}
