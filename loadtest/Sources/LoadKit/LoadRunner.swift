import CSystem
import Histogram
import Reactor
#if canImport(Glibc)
import Glibc
#endif

/// What the progress line shows, sampled once a second.
public struct LiveSample: Sendable {
    public var elapsedSeconds: Double
    public var responses: UInt64
    /// Responses per second over the last sample interval.
    public var rate: Double
    public var errors: UInt64
    /// Highest per-thread p99 so far, in ns.
    public var p99Nanos: UInt64
}

/// Runs a load: one worker thread per `threads`, connections split between them, then merges
/// their histograms and counters into a `LoadResult`.
public enum LoadRunner {
    /// Set from a SIGINT handler: the run stops early and still reports (as wrk does).
    nonisolated(unsafe) public static var interruptRequested: Int32 = 0

    public static func run(_ config: LoadConfig, onSample: ((LiveSample) -> Void)? = nil) throws -> LoadResult {
        try config.validate()
        signal(SIGPIPE, SIG_IGN)
        let limitWarning = raiseDescriptorLimit(needed: config.connections + 64)
        let tlsClient: TLSClient? = try config.tls.map { try TLSClient($0) }
        let templates = config.requests.map { RequestTemplate($0, closeConnection: config.newConnectionPerRequest) }
        // Open loop: schedules start a little ahead, after setup; the run is timed from there.
        let start = portico_now_ns() &+ (config.isOpenLoop ? 1_000_000 : 0)
        var workers: [Worker] = []
        var first = 0
        for t in 0..<config.threads {
            let conns = config.connections / config.threads + (t < config.connections % config.threads ? 1 : 0)
            var quota = -1
            if config.totalRequests > 0 {
                quota = config.totalRequests / config.threads + (t < config.totalRequests % config.threads ? 1 : 0)
            }
            workers.append(Worker(config: config, templates: templates, connections: conns, firstIndex: first,
                                  quota: quota, start: start, seed: 0x9E37_79B9_7F4A_7C15 &* UInt64(t + 1), tls: tlsClient))
            first += conns
        }
        let latch = Latch(count: workers.count)
        var threads: [OSThread] = []
        for (i, w) in workers.enumerated() {
            threads.append(OSThread(name: "load-\(i)") {
                w.run()
                latch.countDown()
            })
        }
        var lastTick = portico_now_ns()
        var lastResponses: UInt64 = 0
        var stopped = false
        var publishAsked = false
        while !latch.isDone {
            let now = portico_now_ns()
            let timeUp = config.durationNanos > 0 && now > start && now - start >= config.durationNanos
            if !stopped && (timeUp || interruptRequested != 0) {
                for w in workers { w.loop.execute { w.stop() } }
                stopped = true
            }
            if let report = onSample, now &- lastTick >= 1_000_000_000 {
                var responses: UInt64 = 0, errors: UInt64 = 0, p99: UInt64 = 0
                for w in workers {
                    responses &+= w.load(Counter.responses)
                    errors &+= w.load(Counter.errors)
                    p99 = max(p99, w.load(Counter.p99))
                }
                let dt = Double(now &- lastTick) / 1e9
                report(LiveSample(elapsedSeconds: Double(now > start ? now - start : 0) / 1e9, responses: responses,
                                  rate: Double(responses &- lastResponses) / dt, errors: errors, p99Nanos: p99))
                lastTick = now
                lastResponses = responses
                publishAsked = false
            } else if onSample != nil && !publishAsked && now &- lastTick >= 900_000_000 {
                // Ask for the p99 a little before the tick, so the line shows this second's value.
                for w in workers { w.loop.execute { w.publishP99() } }
                publishAsked = true
            }
            var sleepNanos: UInt64 = 20_000_000
            if config.durationNanos > 0 && !stopped {
                let ran = now > start ? now - start : 0
                let left = config.durationNanos - min(config.durationNanos, ran)
                sleepNanos = min(sleepNanos, max(left, 100_000))
            }
            usleep(UInt32(sleepNanos / 1000))
        }
        latch.wait()
        for t in threads { t.join() }
        var result = LoadResult(config: config, workers: workers, start: start)
        if let w = limitWarning { result.warnings.append(w) }
        if interruptRequested != 0 { result.warnings.append("interrupted: the run was stopped early") }
        return result
    }

    /// Lifts the soft descriptor limit towards the hard one so -c 10000 works without ulimit.
    /// Returns a warning when the hard limit is too low for the connections asked for.
    static func raiseDescriptorLimit(needed: Int) -> String? {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < rlim_t(needed) else { return nil }
        limit.rlim_cur = min(limit.rlim_max, rlim_t(max(needed, 4096) * 2))
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        if limit.rlim_cur < rlim_t(needed) {
            return "the descriptor limit (\(limit.rlim_cur)) is too low for \(needed - 64) connections: raise it (ulimit -n)"
        }
        return nil
    }
}
