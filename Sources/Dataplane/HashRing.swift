/// A Ketama-style consistent-hash ring: every endpoint owns `pointsPerWeight * weight` points
/// (weight capped at `maxWeight`), each the hash of the endpoint's address bytes and the replica
/// number. A key maps to the first point at or after its hash (wrapping). Removing one of N
/// endpoints only remaps the keys that were on its points (~1/N of them).
///
/// Built on the cold path (RouteTable swap); lookups are a binary search over a sorted buffer.
public final class HashRing {
    public static let pointsPerWeight = 128
    public static let maxWeight: UInt32 = 32

    /// Sorted ring positions and, in parallel, the endpoint index owning each.
    @usableFromInline let points: UnsafeMutableBufferPointer<UInt64>
    @usableFromInline let owners: UnsafeMutableBufferPointer<Int32>

    public var count: Int { points.count }

    public init(endpoints: [Endpoint]) {
        var pairs: [(UInt64, Int32)] = []
        var total = 0
        for e in endpoints { total += Int(min(max(e.weight, 1), HashRing.maxWeight)) * HashRing.pointsPerWeight }
        pairs.reserveCapacity(total)
        for (i, e) in endpoints.enumerated() {
            let n = Int(min(max(e.weight, 1), HashRing.maxWeight)) * HashRing.pointsPerWeight
            var base = Hashing.fnvOffsetBasis
            for b in e.address.bytes { base = Hashing.fnvStep(base, b) }
            for r in 0..<n {
                var h = base
                var rr = UInt32(r)
                for _ in 0..<4 { h = Hashing.fnvStep(h, UInt8(truncatingIfNeeded: rr)); rr >>= 8 }
                pairs.append((Hashing.mix(h), Int32(i)))
            }
        }
        // Ties (vanishingly rare) are broken by endpoint index so every worker builds the same ring.
        pairs.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
        points = .allocate(capacity: pairs.count)
        owners = .allocate(capacity: pairs.count)
        for (k, p) in pairs.enumerated() { points[k] = p.0; owners[k] = p.1 }
    }

    deinit {
        points.deallocate()
        owners.deallocate()
    }

    /// The index of the first point at or after `hash` (wrapping to 0). Requires `count > 0`.
    @inlinable
    public func firstPoint(atOrAfter hash: UInt64) -> Int {
        var lo = 0, hi = points.count
        while lo < hi {
            let mid = (lo &+ hi) >> 1
            if points[mid] < hash { lo = mid &+ 1 } else { hi = mid }
        }
        return lo == points.count ? 0 : lo
    }

    @inlinable
    public func owner(atPoint k: Int) -> Int { Int(owners[k]) }
}
