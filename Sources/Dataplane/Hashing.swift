/// Non-cryptographic 64-bit hashing for affinity keys (client IP, cookie values) and the
/// consistent-hash ring's points.
///
/// The algorithm is FNV-1a 64 over the bytes (offset basis 0xcbf29ce484222325, prime
/// 0x100000001b3), followed by the splitmix64 finalizer (Stafford's "Mix13" variant, as in
/// `java.util.SplittableRandom`). FNV-1a alone mixes the high bits poorly for short keys such as
/// 4-byte IPv4 addresses; the finalizer gives every output bit a ~50% chance of flipping for any
/// input bit flip, which is what a ring lookup on the full 64-bit range needs. It is stable across
/// processes and runs (no per-process seed), so every worker and every restart maps a key to the
/// same ring position. It is not DoS-resistant: an attacker who controls keys can collide them,
/// which at worst concentrates their own requests on one endpoint.
public enum Hashing {
    public static let fnvOffsetBasis: UInt64 = 0xcbf2_9ce4_8422_2325
    public static let fnvPrime: UInt64 = 0x0000_0100_0000_01b3

    /// The splitmix64 finalizer: a bijection on UInt64 with good avalanche.
    @inlinable @inline(__always)
    public static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// One FNV-1a step: folds `byte` into `state`.
    @inlinable @inline(__always)
    public static func fnvStep(_ state: UInt64, _ byte: UInt8) -> UInt64 {
        (state ^ UInt64(byte)) &* fnvPrime
    }

    @inlinable
    public static func hash64(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var h = fnvOffsetBasis
        for b in bytes { h = fnvStep(h, b) }
        return mix(h)
    }

    @inlinable
    public static func hash64<C: Collection>(_ bytes: C) -> UInt64 where C.Element == UInt8 {
        if let fast = bytes.withContiguousStorageIfAvailable({ hash64(UnsafeRawBufferPointer($0)) }) {
            return fast
        }
        var h = fnvOffsetBasis
        for b in bytes { h = fnvStep(h, b) }
        return mix(h)
    }
}
