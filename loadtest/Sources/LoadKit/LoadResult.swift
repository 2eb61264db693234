import Foundation
import Histogram

/// The outcome of a run: merged latency histogram (ns), counts and rates.
public struct LoadResult {
    public var histogram: Histogram<UInt64>
    /// Responses by status code.
    public var statuses: [Int: UInt64]
    public var errors: [ErrorKind: UInt64]
    public var responses: UInt64
    public var bytesRead: UInt64
    public var connectionsOpened: UInt64
    /// Idle mode: connections still open when the run ended (nil otherwise).
    public var idleOpenAtEnd: UInt64?
    public var elapsedSeconds: Double
    public var connections: Int
    public var threads: Int
    /// Requested rate (0: closed loop).
    public var targetRate: Double
    public var warnings: [String] = []

    public var errorCount: UInt64 { errors.values.reduce(0, +) }
    public var requestsPerSecond: Double { elapsedSeconds > 0 ? Double(responses) / elapsedSeconds : 0 }
    public var bytesPerSecond: Double { elapsedSeconds > 0 ? Double(bytesRead) / elapsedSeconds : 0 }
    /// Failed attempts over all attempts.
    public var errorRatio: Double {
        let all = responses + errorCount
        return all == 0 ? 0 : Double(errorCount) / Double(all)
    }
    /// Responses with a status outside 200-399.
    public var non2xx3xx: UInt64 { statuses.filter { $0.key < 200 || $0.key >= 400 }.values.reduce(0, +) }

    init(config: LoadConfig, workers: [Worker], start: UInt64) {
        var h = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: Worker.highestLatency,
                                  numberOfSignificantValueDigits: .three)
        var statuses: [Int: UInt64] = [:]
        var errors: [ErrorKind: UInt64] = [:]
        var responses: UInt64 = 0, bytes: UInt64 = 0, conns: UInt64 = 0, openAtEnd: UInt64 = 0
        var finish: UInt64 = start
        for w in workers {
            h.add(w.histogram)
            for s in 100..<600 where w.statuses[s] > 0 { statuses[s, default: 0] += w.statuses[s] }
            for k in ErrorKind.allCases {
                let n = w.load(Counter.errorBase + k.rawValue)
                if n > 0 { errors[k, default: 0] += n }
            }
            responses += w.load(Counter.responses)
            bytes += w.load(Counter.bytesRead)
            conns += w.load(Counter.connections)
            openAtEnd += w.load(Counter.openAtEnd)
            finish = max(finish, w.finishNanos)
        }
        histogram = h
        self.statuses = statuses
        self.errors = errors
        self.responses = responses
        bytesRead = bytes
        connectionsOpened = conns
        idleOpenAtEnd = config.holdIdle ? openAtEnd : nil
        elapsedSeconds = finish > start ? Double(finish - start) / 1e9 : 0
        connections = config.connections
        threads = config.threads
        targetRate = config.rate
        if config.rate > 0 && requestsPerSecond < 0.95 * config.rate {
            warnings.append(String(format: "achieved %.0f req/s, below 95%% of the requested -R %.0f: the target or this machine cannot keep up (latencies are measured from the intended send times, so they show the backlog)",
                                   requestsPerSecond, config.rate))
        }
        if let why = workers.lazy.compactMap({ $0.tlsFailure }).first {
            warnings.append("TLS handshake failed: \(why)")
        }
        if responses == 0 && errorCount > 0 {
            warnings.append("no response at all: every attempt failed")
        }
    }

    /// Latency at `percentile` (0-100) in ns; 0 when nothing was recorded.
    public func latency(_ percentile: Double) -> UInt64 {
        histogram.totalCount == 0 ? 0 : histogram.valueAtPercentile(percentile)
    }

    public static let reportedPercentiles: [(String, Double)] = [
        ("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9), ("p99.99", 99.99),
    ]
}

// MARK: - Text and JSON

extension LoadResult {
    /// A duration in ns as text with a unit that keeps 3 significant digits (`850us`, `1.23ms`, `2.5s`).
    public static func formatNanos(_ ns: UInt64) -> String {
        let v = Double(ns)
        if v < 1_000 { return "\(ns)ns" }
        if v < 1_000_000 { return trim(v / 1e3) + "us" }
        if v < 1_000_000_000 { return trim(v / 1e6) + "ms" }
        return trim(v / 1e9) + "s"
    }

    static func trim(_ v: Double) -> String {
        if v >= 100 { return String(format: "%.0f", v) }
        if v >= 10 { return String(format: "%.1f", v) }
        return String(format: "%.2f", v)
    }

    static func formatBytes(_ b: Double) -> String {
        if b < 1024 { return String(format: "%.0fB", b) }
        if b < 1024 * 1024 { return String(format: "%.2fKiB", b / 1024) }
        if b < 1024 * 1024 * 1024 { return String(format: "%.2fMiB", b / 1024 / 1024) }
        return String(format: "%.2fGiB", b / 1024 / 1024 / 1024)
    }

    /// The human report.
    public func text(title: String) -> String {
        var s = "\(title)\n"
        s += "  \(threads) thread(s), \(connections) connection(s), \(String(format: "%.2f", elapsedSeconds))s"
        s += targetRate > 0 ? String(format: ", open loop at %.0f req/s (latency from intended send time)\n", targetRate) : ", closed loop\n"
        s += "  Latency"
        for (name, p) in LoadResult.reportedPercentiles { s += "  \(name) \(LoadResult.formatNanos(latency(p)))" }
        s += "  max \(LoadResult.formatNanos(histogram.totalCount == 0 ? 0 : histogram.max))"
        s += histogram.totalCount == 0 ? "\n" : "  mean \(LoadResult.formatNanos(UInt64(histogram.mean)))\n"
        s += "  \(responses) responses in \(String(format: "%.2f", elapsedSeconds))s, \(LoadResult.formatBytes(Double(bytesRead))) read, \(connectionsOpened) connection(s) opened\n"
        let codes = statuses.keys.sorted().map { "\($0): \(statuses[$0]!)" }.joined(separator: ", ")
        s += "  Status codes: \(codes.isEmpty ? "none" : codes)\n"
        if let idle = idleOpenAtEnd { s += "  Idle connections held open at the end: \(idle) of \(connections)\n" }
        if errorCount > 0 {
            let kinds = ErrorKind.allCases.compactMap { k in errors[k].map { "\(k.name) \($0)" } }.joined(separator: ", ")
            s += "  Errors: \(errorCount) (\(kinds))\n"
        } else {
            s += "  Errors: 0\n"
        }
        s += String(format: "Requests/sec: %.2f\n", requestsPerSecond)
        s += "Transfer/sec: \(LoadResult.formatBytes(bytesPerSecond))\n"
        for w in warnings { s += "warning: \(w)\n" }
        return s
    }

    /// The machine report (stable keys, latencies in ms).
    public func json(target: String) -> String {
        func ms(_ ns: UInt64) -> Double { (Double(ns) / 1e3).rounded() / 1e3 }
        var latency: [String: Any] = [:]
        for (name, p) in LoadResult.reportedPercentiles { latency[name] = ms(self.latency(p)) }
        latency["max"] = ms(histogram.totalCount == 0 ? 0 : histogram.max)
        latency["mean"] = histogram.totalCount == 0 ? 0.0 : (histogram.mean / 1e3).rounded() / 1e3
        var errs: [String: Any] = ["total": errorCount]
        for k in ErrorKind.allCases { errs[k.name] = errors[k] ?? 0 }
        var status: [String: Any] = [:]
        for (k, v) in statuses { status[String(k)] = v }
        var obj: [String: Any] = [
            "target": target,
            "threads": threads,
            "connections": connections,
            "mode": targetRate > 0 ? "open" : "closed",
            "target_rate": targetRate,
            "duration_s": (elapsedSeconds * 1000).rounded() / 1000,
            "responses": responses,
            "requests_per_sec": (requestsPerSecond * 100).rounded() / 100,
            "bytes_read": bytesRead,
            "bytes_per_sec": bytesPerSecond.rounded(),
            "connections_opened": connectionsOpened,
            "latency_ms": latency,
            "status": status,
            "errors": errs,
            "warnings": warnings,
        ]
        if let idle = idleOpenAtEnd { obj["idle_connections_open"] = idle }
        let data = try! JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}

// MARK: - Distribution and chart

extension LoadResult {
    /// The HdrHistogram percentile table (values in ms), as HdrHistogram's own tools print it.
    public func percentileTable() -> String {
        var out = ""
        histogram.outputPercentileDistribution(to: &out, outputValueUnitScalingRatio: 1e6, percentileTicksPerHalfDistance: 5)
        return out
    }

    /// An SVG chart of latency by percentile with a log x axis (1/(1-p)), like HdrHistogram's
    /// plotter: 0%, 90%, 99%, 99.9%… spread evenly, the tail visible.
    public func svg(title: String) -> String {
        let width = 800.0, height = 480.0
        let left = 70.0, right = 20.0, top = 40.0, bottom = 50.0
        let plotW = width - left - right, plotH = height - top - bottom
        var points: [(Double, Double)] = []  // (log10 of 1/(1-p), ms)
        let maxX = 6.0  // up to 99.9999%
        if histogram.totalCount > 0 {
            for iv in histogram.percentiles(ticksPerHalfDistance: 5) {
                let p = iv.percentileLevelIteratedTo / 100
                // The 100% point (the max) sits at 1 - 1/count, where the data runs out.
                var x = p >= 1 ? min(maxX, log10(Double(histogram.totalCount))) : min(maxX, log10(1 / (1 - p)))
                x = max(x, points.last?.0 ?? 0)
                points.append((x, Double(iv.value) / 1e6))
                if p >= 1 { break }
            }
        }
        let maxMs = max(points.map { $0.1 }.max() ?? 1, 0.001)
        let yTop = niceCeiling(maxMs)
        func px(_ x: Double) -> Double { left + x / maxX * plotW }
        func py(_ y: Double) -> Double { top + plotH - y / yTop * plotH }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(Int(width / 2))\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">\(escape(title))</text>\n"
        let labels = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"]
        for (i, label) in labels.enumerated() {
            let x = px(Double(i))
            s += "<line x1=\"\(f(x))\" y1=\"\(f(top))\" x2=\"\(f(x))\" y2=\"\(f(top + plotH))\" stroke=\"#ddd\"/>\n"
            s += "<text x=\"\(f(x))\" y=\"\(f(top + plotH + 18))\" text-anchor=\"middle\">\(label)</text>\n"
        }
        for i in 0...5 {
            let v = yTop * Double(i) / 5
            let y = py(v)
            s += "<line x1=\"\(f(left))\" y1=\"\(f(y))\" x2=\"\(f(left + plotW))\" y2=\"\(f(y))\" stroke=\"#ddd\"/>\n"
            s += "<text x=\"\(f(left - 6))\" y=\"\(f(y + 4))\" text-anchor=\"end\">\(LoadResult.trim(v))</text>\n"
        }
        s += "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(height - 8))\" text-anchor=\"middle\">percentile</text>\n"
        s += "<text x=\"16\" y=\"\(f(top + plotH / 2))\" text-anchor=\"middle\" transform=\"rotate(-90 16 \(f(top + plotH / 2)))\">latency (ms)</text>\n"
        s += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotW))\" height=\"\(f(plotH))\" fill=\"none\" stroke=\"#333\"/>\n"
        if !points.isEmpty {
            let path = points.map { "\(f(px($0.0))),\(f(py($0.1)))" }.joined(separator: " ")
            s += "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"\(path)\"/>\n"
        }
        s += "</svg>\n"
        return s
    }

    private func niceCeiling(_ v: Double) -> Double {
        let e = pow(10, floor(log10(v)))
        for m in [1.0, 2.0, 2.5, 5.0, 10.0] where m * e >= v { return m * e }
        return 10 * e
    }

    private func f(_ v: Double) -> String { String(format: "%.1f", v) }

    private func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
