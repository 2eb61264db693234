import Reactor

/// Chooses the endpoint of one backend for each request. One per worker and per backend: plain
/// stored state, no locks or atomics, no allocation on `pick`.
///
/// - `.roundRobin`: smooth weighted round-robin exactly as nginx's `ngx_http_upstream_get_peer`
///   (every eligible endpoint's current weight grows by its weight, the largest wins — the first
///   one on ties — and the winner's current weight drops by the total).
/// - `.leastRequest`: power of two choices: two distinct random endpoints, the one with fewer
///   outstanding requests per unit of weight wins.
/// - affinity other than `.none`: the key is looked up on a consistent-hash ring (`HashRing`);
///   ejected or excluded endpoints are skipped by walking on to the next point.
///
/// Weights of 0 count as 1. Ejected endpoints are skipped; when every candidate is ejected the
/// picker ignores ejection (Envoy's panic mode) instead of failing the request.
public final class EndpointPicker {
    public let backend: Backend
    public let health: HealthPolicy

    @usableFromInline let n: Int
    @usableFromInline let weight: UnsafeMutableBufferPointer<Int>
    @usableFromInline let currentWeight: UnsafeMutableBufferPointer<Int>
    @usableFromInline let outstanding: UnsafeMutableBufferPointer<Int>
    @usableFromInline let failures: UnsafeMutableBufferPointer<Int>
    @usableFromInline let ejectedUntil: UnsafeMutableBufferPointer<UInt64>
    @usableFromInline let timesEjected: UnsafeMutableBufferPointer<UInt64>
    @usableFromInline let ring: HashRing?
    @usableFromInline let policy: BalancePolicy
    @usableFromInline var rng: UInt64
    public private(set) var ejectionsTotal: UInt64 = 0

    public init(backend: Backend, health: HealthPolicy, seed: UInt64) {
        self.backend = backend
        self.health = health
        n = backend.endpoints.count
        weight = .allocate(capacity: n)
        currentWeight = .allocate(capacity: n)
        outstanding = .allocate(capacity: n)
        failures = .allocate(capacity: n)
        ejectedUntil = .allocate(capacity: n)
        timesEjected = .allocate(capacity: n)
        for (i, e) in backend.endpoints.enumerated() { weight[i] = Int(max(e.weight, 1)) }
        currentWeight.initialize(repeating: 0)
        outstanding.initialize(repeating: 0)
        failures.initialize(repeating: 0)
        ejectedUntil.initialize(repeating: 0)
        timesEjected.initialize(repeating: 0)
        policy = backend.policy
        ring = (backend.affinity != .none && n > 0) ? HashRing(endpoints: backend.endpoints) : nil
        // splitmix64 must not start at a state that makes the sequence trivially shared between
        // workers with nearby seeds; mixing the seed once is enough.
        rng = Hashing.mix(seed &+ 0x9e37_79b9_7f4a_7c15)
    }

    deinit {
        weight.deallocate(); currentWeight.deallocate(); outstanding.deallocate()
        failures.deallocate(); ejectedUntil.deallocate(); timesEjected.deallocate()
    }

    public var count: Int { n }

    // MARK: picking

    /// Filter levels: 0 = skip ejected and excluded, 1 = skip excluded only (panic), 2 = anything.
    @inlinable @inline(__always)
    func eligible(_ i: Int, level: Int, now: UInt64, excluding: Int) -> Bool {
        switch level {
        case 0: return i != excluding && ejectedUntil[i] <= now
        case 1: return i != excluding
        default: return true
        }
    }

    @inlinable @inline(__always)
    func nextRandom() -> UInt64 {
        rng &+= 0x9e37_79b9_7f4a_7c15
        return Hashing.mix(rng)
    }

    /// The endpoint index for a new request, or nil when the backend has no endpoints.
    /// `hashKey` is used when the backend's affinity is not `.none`. `excluding` (-1 for none) is
    /// an endpoint to avoid if any other is available (the one a retry just failed on).
    public func pick(hashKey: UInt64?, now: UInt64, excluding: Int) -> Int? {
        if n <= 1 { return n == 0 ? nil : 0 }
        if let ring = ring, let key = hashKey {
            return pickRing(ring, key: key, now: now, excluding: excluding)
        }
        switch policy {
        case .roundRobin: return pickRoundRobin(now: now, excluding: excluding)
        case .leastRequest: return pickLeastRequest(now: now, excluding: excluding)
        }
    }

    @usableFromInline
    func pickRoundRobin(now: UInt64, excluding: Int) -> Int {
        for level in 0...2 {
            var best = -1
            var total = 0
            for i in 0..<n where eligible(i, level: level, now: now, excluding: excluding) {
                currentWeight[i] &+= weight[i]
                total &+= weight[i]
                if best < 0 || currentWeight[i] > currentWeight[best] { best = i }
            }
            if best >= 0 {
                currentWeight[best] &-= total
                return best
            }
        }
        return 0 // unreachable: level 2 accepts every endpoint and n >= 2
    }

    /// True when `a` carries less load per unit of weight than `b`.
    @inlinable @inline(__always)
    func lessLoaded(_ a: Int, _ b: Int) -> Bool {
        outstanding[a] &* weight[b] < outstanding[b] &* weight[a]
    }

    @usableFromInline
    func pickLeastRequest(now: UInt64, excluding: Int) -> Int {
        // A few draws of two distinct endpoints; usually the first one has both eligible.
        for _ in 0..<4 {
            let r = nextRandom()
            let a = Int(truncatingIfNeeded: (r >> 32) % UInt64(n))
            var b = Int(truncatingIfNeeded: (r & 0xffff_ffff) % UInt64(n - 1))
            if b >= a { b += 1 }
            let okA = eligible(a, level: 0, now: now, excluding: excluding)
            let okB = eligible(b, level: 0, now: now, excluding: excluding)
            if okA && okB {
                if lessLoaded(b, a) { return b }
                if lessLoaded(a, b) { return a }
                return (r & 0x8000_0000_0000) == 0 ? a : b
            }
            if okA { return a }
            if okB { return b }
        }
        // Most endpoints are out: the least loaded eligible one, relaxing the filter as needed.
        let start = Int(truncatingIfNeeded: nextRandom() % UInt64(n))
        for level in 0...2 {
            var best = -1
            for k in 0..<n {
                var i = start &+ k
                if i >= n { i -= n }
                if eligible(i, level: level, now: now, excluding: excluding),
                   best < 0 || lessLoaded(i, best) { best = i }
            }
            if best >= 0 { return best }
        }
        return 0
    }

    @usableFromInline
    func pickRing(_ ring: HashRing, key: UInt64, now: UInt64, excluding: Int) -> Int {
        let start = ring.firstPoint(atOrAfter: Hashing.mix(key))
        let points = ring.count
        for level in 0...1 {
            var k = start
            for _ in 0..<points {
                let i = ring.owner(atPoint: k)
                if eligible(i, level: level, now: now, excluding: excluding) { return i }
                k &+= 1
                if k == points { k = 0 }
            }
        }
        return ring.owner(atPoint: start)
    }

    // MARK: bookkeeping

    public func requestStarted(_ i: Int) {
        guard i >= 0 && i < n else { return }
        outstanding[i] &+= 1
    }

    public func requestFinished(_ i: Int) {
        guard i >= 0 && i < n, outstanding[i] > 0 else { return }
        outstanding[i] &-= 1
    }

    /// Outstanding requests on endpoint `i` (for tests and diagnostics).
    public func outstandingRequests(_ i: Int) -> Int { outstanding[i] }

    /// Consecutive failures currently counted against endpoint `i`.
    public func consecutiveFailures(_ i: Int) -> Int { failures[i] }

    public func reportSuccess(_ i: Int) {
        guard i >= 0 && i < n else { return }
        failures[i] = 0
    }

    /// Connect failure, reset, timeout, or 5xx from the endpoint. Returns true when this failure
    /// ejected it (the caller logs once). Failures reported while it is ejected (requests that were
    /// already in flight) neither extend the ejection nor eject again.
    public func reportFailure(_ i: Int, now: UInt64) -> Bool {
        guard i >= 0 && i < n, health.consecutiveFailures > 0 else { return false }
        if ejectedUntil[i] > now { return false }
        failures[i] &+= 1
        guard failures[i] >= health.consecutiveFailures else { return false }
        // Healthy for a whole maximum ejection period since the last one ended: start over.
        if timesEjected[i] > 0, ejectedUntil[i] &+ health.maxEjectionNanos < now { timesEjected[i] = 0 }
        timesEjected[i] &+= 1
        let (product, overflow) = health.baseEjectionNanos.multipliedReportingOverflow(by: timesEjected[i])
        let duration = overflow ? health.maxEjectionNanos : min(product, health.maxEjectionNanos)
        ejectedUntil[i] = now &+ duration
        // failures[i] stays at the threshold: after the ejection one more failure (the probe)
        // ejects again, one success resets it.
        failures[i] = health.consecutiveFailures
        ejectionsTotal &+= 1
        return true
    }

    public func isEjected(_ i: Int, now: UInt64) -> Bool {
        guard i >= 0 && i < n else { return false }
        return ejectedUntil[i] > now
    }

    /// Number of times endpoint `i` has been ejected (since its count last started over).
    public func timesEjected(_ i: Int) -> UInt64 { timesEjected[i] }

    /// Carries state (current weights, outstanding requests, failure counts, ejections) for
    /// endpoints that still exist in the new backend, matched by address; the ejection total is
    /// carried as a whole. Cold path (RouteTable swap).
    public func inherit(from old: EndpointPicker) {
        var index: [SocketAddress: Int] = [:]
        for (j, e) in old.backend.endpoints.enumerated() { index[e.address] = j }
        for (i, e) in backend.endpoints.enumerated() {
            guard let j = index[e.address] else { continue }
            currentWeight[i] = old.currentWeight[j]
            outstanding[i] = old.outstanding[j]
            failures[i] = old.failures[j]
            ejectedUntil[i] = old.ejectedUntil[j]
            timesEjected[i] = old.timesEjected[j]
        }
        ejectionsTotal = old.ejectionsTotal
    }
}
