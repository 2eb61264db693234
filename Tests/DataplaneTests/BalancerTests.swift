import XCTest
import Reactor
@testable import Dataplane

final class BalancerTests: XCTestCase {
    func ep(_ last: Int, port: UInt16 = 8080, weight: UInt32 = 1) -> Endpoint {
        Endpoint(address: SocketAddress(ip: "10.0.0.\(last)", port: port)!, weight: weight)
    }

    func backend(_ eps: [Endpoint], policy: BalancePolicy = .roundRobin, affinity: Affinity = .none) -> Backend {
        Backend(namespace: "default", service: "web", port: "80", endpoints: eps, policy: policy, affinity: affinity)
    }

    func picker(_ eps: [Endpoint], policy: BalancePolicy = .roundRobin, affinity: Affinity = .none,
                health: HealthPolicy = HealthPolicy(), seed: UInt64 = 1) -> EndpointPicker {
        EndpointPicker(backend: backend(eps, policy: policy, affinity: affinity), health: health, seed: seed)
    }

    // MARK: smooth weighted round-robin

    func testNginxSmoothWeightedSequence() {
        let p = picker([ep(1, weight: 5), ep(2, weight: 1), ep(3, weight: 1)])
        let names = ["a", "b", "c"]
        var seq = ""
        for _ in 0..<14 { seq += names[p.pick(hashKey: nil, now: 0, excluding: -1)!] }
        // nginx's documented sequence for weights 5,1,1, repeating every 7 picks.
        XCTAssertEqual(seq, "aabacaa" + "aabacaa")
    }

    func testEqualWeightsRotate() {
        let p = picker([ep(1), ep(2), ep(3)])
        let seq = (0..<9).map { _ in p.pick(hashKey: nil, now: 0, excluding: -1)! }
        XCTAssertEqual(seq, [0, 1, 2, 0, 1, 2, 0, 1, 2])
    }

    func testNoEndpointsAndSingleEndpoint() {
        XCTAssertNil(picker([]).pick(hashKey: nil, now: 0, excluding: -1))
        let one = picker([ep(1)])
        XCTAssertEqual(one.pick(hashKey: nil, now: 0, excluding: 0), 0)
        XCTAssertEqual(one.count, 1)
    }

    // MARK: power of two choices

    func testP2CPrefersLessLoaded() {
        let p = picker([ep(1), ep(2)], policy: .leastRequest)
        for _ in 0..<5 { p.requestStarted(0) }
        for _ in 0..<100 { XCTAssertEqual(p.pick(hashKey: nil, now: 0, excluding: -1), 1) }
        for _ in 0..<5 { p.requestFinished(0) }
        for _ in 0..<10 { p.requestStarted(1) }
        for _ in 0..<100 { XCTAssertEqual(p.pick(hashKey: nil, now: 0, excluding: -1), 0) }
    }

    func testP2CSpreadsLoad() {
        let p = picker((1...8).map { ep($0) }, policy: .leastRequest, seed: 42)
        var hits = [Int](repeating: 0, count: 8)
        // Requests that never finish: load must stay nearly level.
        for _ in 0..<8000 {
            let i = p.pick(hashKey: nil, now: 0, excluding: -1)!
            p.requestStarted(i)
            hits[i] += 1
        }
        XCTAssertLessThanOrEqual(hits.max()! - hits.min()!, 3, "\(hits)")
        // Requests that finish immediately: random spread, every endpoint well used.
        let q = picker((1...8).map { ep($0) }, policy: .leastRequest, seed: 7)
        var spread = [Int](repeating: 0, count: 8)
        for _ in 0..<8000 { spread[q.pick(hashKey: nil, now: 0, excluding: -1)!] += 1 }
        XCTAssertGreaterThan(spread.min()!, 800, "\(spread)")
    }

    func testP2CWeights() {
        let p = picker([ep(1, weight: 3), ep(2, weight: 1)], policy: .leastRequest)
        var hits = [0, 0]
        for _ in 0..<400 {
            let i = p.pick(hashKey: nil, now: 0, excluding: -1)!
            p.requestStarted(i)
            hits[i] += 1
        }
        XCTAssertEqual(Double(hits[0]) / Double(hits[1]), 3, accuracy: 0.1, "\(hits)")
    }

    // MARK: consistent hashing

    func testRingRemapsFewKeysWhenOneEndpointLeaves() {
        let all = (1...10).map { ep($0) }
        let before = picker(all, affinity: .clientIP)
        let removed = all[3]
        let rest = all.filter { $0 != removed }
        let after = picker(rest, affinity: .clientIP)
        var moved = 0, onRemoved = 0
        var perEndpoint = [Int](repeating: 0, count: 10)
        for k in 0..<10_000 {
            let key = Hashing.hash64(withUnsafeBytes(of: UInt32(k).bigEndian) { Array($0) })
            let a = all[before.pick(hashKey: key, now: 0, excluding: -1)!]
            let b = rest[after.pick(hashKey: key, now: 0, excluding: -1)!]
            perEndpoint[all.firstIndex(of: a)!] += 1
            if a == removed { onRemoved += 1; continue }
            if a != b { moved += 1 }
        }
        XCTAssertEqual(moved, 0, "keys not on the removed endpoint must stay put")
        XCTAssertLessThan(onRemoved, 1500)
        // Balanced enough: no endpoint far from its 10% share.
        XCTAssertGreaterThan(perEndpoint.min()!, 600, "\(perEndpoint)")
        XCTAssertLessThan(perEndpoint.max()!, 1400, "\(perEndpoint)")
    }

    func testRingAddingOneEndpointMovesAboutOneNth() {
        let nine = (1...9).map { ep($0) }
        let ten = nine + [ep(10)]
        let a = picker(nine, affinity: .clientIP), b = picker(ten, affinity: .clientIP)
        var moved = 0
        for k in 0..<10_000 {
            let key = Hashing.hash64([UInt8(k & 0xff), UInt8(k >> 8), 1, 2])
            let x = nine[a.pick(hashKey: key, now: 0, excluding: -1)!]
            let y = ten[b.pick(hashKey: key, now: 0, excluding: -1)!]
            if x != y { XCTAssertEqual(y, ep(10)); moved += 1 }
        }
        XCTAssertLessThan(moved, 1500)
        XCTAssertGreaterThan(moved, 500)
    }

    func testClientIPAffinityIsSticky() {
        let p = picker((1...5).map { ep($0) }, affinity: .clientIP)
        let client = SocketAddress(ip: "192.168.1.77", port: 51000)!
        let key = Hashing.hash64(client.ipBytes)
        let first = p.pick(hashKey: key, now: 0, excluding: -1)!
        for _ in 0..<50 { XCTAssertEqual(p.pick(hashKey: key, now: 0, excluding: -1), first) }
        // Another worker (different seed) agrees.
        let q = picker((1...5).map { ep($0) }, affinity: .clientIP, seed: 99)
        XCTAssertEqual(q.pick(hashKey: key, now: 0, excluding: -1), first)
        // Same IP, other source port: same key.
        XCTAssertEqual(Hashing.hash64(SocketAddress(ip: "192.168.1.77", port: 4)!.ipBytes), key)
    }

    func testRingSkipsEjectedEndpoint() {
        var h = HealthPolicy(); h.consecutiveFailures = 1
        let p = picker((1...5).map { ep($0) }, affinity: .cookie(name: "s", maxAgeSeconds: 60), health: h)
        let key = Hashing.hash64(Array("session-abc".utf8))
        let first = p.pick(hashKey: key, now: 0, excluding: -1)!
        XCTAssertTrue(p.reportFailure(first, now: 0))
        let second = p.pick(hashKey: key, now: 1, excluding: -1)!
        XCTAssertNotEqual(second, first)
        XCTAssertEqual(p.pick(hashKey: key, now: 2, excluding: -1), second)
        // Back after the ejection: the key returns home.
        XCTAssertEqual(p.pick(hashKey: key, now: h.baseEjectionNanos, excluding: -1), first)
        // Retry excluding the home endpoint goes elsewhere.
        XCTAssertNotEqual(p.pick(hashKey: key, now: h.baseEjectionNanos, excluding: first), first)
    }

    func testHashingIsStableAndSpreads() {
        XCTAssertEqual(Hashing.hash64([1, 2, 3]), Hashing.hash64([UInt8]([1, 2, 3])[...]))
        let a: [UInt8] = [1, 2, 3]
        XCTAssertEqual(a.withUnsafeBytes { Hashing.hash64($0) }, Hashing.hash64(a))
        XCTAssertNotEqual(Hashing.hash64([1, 2, 3]), Hashing.hash64([1, 2, 4]))
        // Distinct IPv4 addresses spread over the top bits.
        var top = Set<UInt64>()
        for i in 0..<256 { top.insert(Hashing.hash64([10, 0, 0, UInt8(i)]) >> 60) }
        XCTAssertEqual(top.count, 16)
    }

    // MARK: passive health

    func testEjectionAfterConsecutiveFailures() {
        let p = picker([ep(1), ep(2), ep(3)])
        XCTAssertFalse(p.reportFailure(1, now: 0))
        XCTAssertFalse(p.reportFailure(1, now: 0))
        p.reportSuccess(1)  // resets the run
        XCTAssertFalse(p.reportFailure(1, now: 0))
        XCTAssertFalse(p.reportFailure(1, now: 0))
        XCTAssertFalse(p.isEjected(1, now: 0))
        XCTAssertTrue(p.reportFailure(1, now: 0))
        XCTAssertTrue(p.isEjected(1, now: 0))
        XCTAssertEqual(p.ejectionsTotal, 1)
        // Failures of requests already in flight neither re-eject nor count.
        XCTAssertFalse(p.reportFailure(1, now: 5))
        XCTAssertEqual(p.ejectionsTotal, 1)
    }

    func testEjectedEndpointIsSkippedThenReturns() {
        let p = picker([ep(1), ep(2), ep(3)])
        for _ in 0..<3 { _ = p.reportFailure(0, now: 1_000) }
        let base = HealthPolicy().baseEjectionNanos
        for t in 0..<30 {
            XCTAssertNotEqual(p.pick(hashKey: nil, now: 1_000 + UInt64(t), excluding: -1), 0)
        }
        XCTAssertFalse(p.isEjected(0, now: 1_000 + base))
        var seen = Set<Int>()
        for _ in 0..<3 { seen.insert(p.pick(hashKey: nil, now: 1_000 + base, excluding: -1)!) }
        XCTAssertEqual(seen, [0, 1, 2])
    }

    func testSecondEjectionIsLongerAndCapped() {
        var h = HealthPolicy()
        h.consecutiveFailures = 2; h.baseEjectionNanos = 100; h.maxEjectionNanos = 250
        let p = picker([ep(1), ep(2)], health: h)
        _ = p.reportFailure(0, now: 0)
        XCTAssertTrue(p.reportFailure(0, now: 0))     // out until 100
        XCTAssertTrue(p.isEjected(0, now: 99))
        XCTAssertFalse(p.isEjected(0, now: 100))
        XCTAssertTrue(p.reportFailure(0, now: 100))   // the probe failed: out for 200
        XCTAssertTrue(p.isEjected(0, now: 299))
        XCTAssertFalse(p.isEjected(0, now: 300))
        XCTAssertTrue(p.reportFailure(0, now: 300))   // 300 capped to 250
        XCTAssertTrue(p.isEjected(0, now: 549))
        XCTAssertFalse(p.isEjected(0, now: 550))
        XCTAssertEqual(p.ejectionsTotal, 3)
        // A successful probe resets the failure run: two more failures are needed.
        p.reportSuccess(0)
        XCTAssertFalse(p.reportFailure(0, now: 560))
        XCTAssertTrue(p.reportFailure(0, now: 560))
    }

    func testDisabledPassiveHealth() {
        var h = HealthPolicy(); h.consecutiveFailures = 0
        let p = picker([ep(1), ep(2)], health: h)
        for _ in 0..<100 { XCTAssertFalse(p.reportFailure(0, now: 0)) }
        XCTAssertFalse(p.isEjected(0, now: 0))
    }

    func testPanicModeWhenAllEjected() {
        for policy in BalancePolicy.allCases {
            var h = HealthPolicy(); h.consecutiveFailures = 1
            let p = picker([ep(1), ep(2), ep(3)], policy: policy, health: h)
            for i in 0..<3 { XCTAssertTrue(p.reportFailure(i, now: 0)) }
            var seen = Set<Int>()
            for _ in 0..<60 {
                let i = p.pick(hashKey: nil, now: 1, excluding: -1)
                XCTAssertNotNil(i)
                seen.insert(i!)
            }
            XCTAssertEqual(seen.count, 3, "\(policy): panic mode still spreads")
            let r = picker([ep(1), ep(2)], affinity: .clientIP, health: h)
            _ = r.reportFailure(0, now: 0); _ = r.reportFailure(1, now: 0)
            XCTAssertNotNil(r.pick(hashKey: 12345, now: 1, excluding: -1))
        }
    }

    func testExcludingForRetries() {
        for policy in BalancePolicy.allCases {
            let p = picker([ep(1), ep(2), ep(3)], policy: policy)
            for _ in 0..<100 { XCTAssertNotEqual(p.pick(hashKey: nil, now: 0, excluding: 1), 1) }
            // Only the excluded one is healthy: a retry still goes elsewhere (panic over ejection).
            var h = HealthPolicy(); h.consecutiveFailures = 1
            let q = picker([ep(1), ep(2), ep(3)], policy: policy, health: h)
            _ = q.reportFailure(0, now: 0); _ = q.reportFailure(2, now: 0)
            for _ in 0..<20 { XCTAssertNotEqual(q.pick(hashKey: nil, now: 1, excluding: 1), 1) }
            // Without exclusion the healthy one is chosen.
            for _ in 0..<20 { XCTAssertEqual(q.pick(hashKey: nil, now: 1, excluding: -1), 1) }
        }
        let two = picker([ep(1), ep(2)])
        for _ in 0..<10 { XCTAssertEqual(two.pick(hashKey: nil, now: 0, excluding: 0), 1) }
    }

    func testInheritKeepsStateByAddress() {
        var h = HealthPolicy(); h.consecutiveFailures = 2
        let old = picker([ep(1, weight: 5), ep(2), ep(3)], health: h)
        XCTAssertEqual(old.pick(hashKey: nil, now: 0, excluding: -1), 0)
        _ = old.reportFailure(1, now: 0); XCTAssertTrue(old.reportFailure(1, now: 0))
        _ = old.reportFailure(2, now: 0)
        old.requestStarted(0); old.requestStarted(0)
        // New table: endpoint 3 gone, endpoint 4 new, order changed.
        let new = picker([ep(4), ep(2), ep(1, weight: 5)], health: h)
        new.inherit(from: old)
        XCTAssertTrue(new.isEjected(1, now: 1))                 // 10.0.0.2 still ejected
        XCTAssertFalse(new.isEjected(0, now: 1))
        XCTAssertEqual(new.outstandingRequests(2), 2)           // 10.0.0.1's in-flight requests
        XCTAssertEqual(new.consecutiveFailures(0), 0)
        XCTAssertEqual(new.ejectionsTotal, 1)
        new.requestFinished(2); new.requestFinished(2); new.requestFinished(2)
        XCTAssertEqual(new.outstandingRequests(2), 0)           // never negative
        // A carried failure run: 10.0.0.2 comes back and one failure ejects it again, longer.
        XCTAssertTrue(new.reportFailure(1, now: h.baseEjectionNanos))
        XCTAssertTrue(new.isEjected(1, now: 2 * h.baseEjectionNanos + h.baseEjectionNanos - 1))
    }
}
