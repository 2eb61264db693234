/// A read-mostly open-addressing hash map keyed by byte strings, for lookups on the request path.
///
/// Built once when a `RouteTable` is compiled, then only read: lookups take the key as raw bytes
/// (a slice of the request buffer) and neither allocate nor build a `String`. Keys are hashed with
/// 64-bit FNV-1a; all key bytes live in one flat array so a probe touches at most two arrays.
public struct ByteKeyMap<Value> {
    /// Slot → entry index, or -1 for an empty slot. The count is a power of two.
    private var slots: [Int32]
    private var hashes: [UInt64] = []
    private var keyStart: [Int] = []
    private var keyLength: [Int] = []
    private var keyBytes: [UInt8] = []
    public private(set) var values: [Value] = []
    /// The longest key stored, to stop probing early.
    public private(set) var maxKeyLength: Int = 0

    public init(expectedCount: Int = 8) {
        var size = 8
        while size < expectedCount * 2 { size <<= 1 }
        slots = [Int32](repeating: -1, count: size)
    }

    public var count: Int { values.count }
    public var isEmpty: Bool { values.isEmpty }

    // MARK: Hashing

    public static var hashSeed: UInt64 { 0xcbf2_9ce4_8422_2325 }

    @inline(__always)
    public static func hashStep(_ hash: UInt64, _ byte: UInt8) -> UInt64 {
        (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
    }

    @inline(__always)
    static func lower(_ byte: UInt8) -> UInt8 {
        byte &- 0x41 < 26 ? byte | 0x20 : byte
    }

    public static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var h = hashSeed
        for b in bytes { h = hashStep(h, b) }
        return h
    }

    public static func hashLowercased(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var h = hashSeed
        for b in bytes { h = hashStep(h, lower(b)) }
        return h
    }

    // MARK: Building

    /// Inserts `value` under `key` unless the key is already present (the first insert wins).
    /// Returns false when the key was already there.
    @discardableResult
    public mutating func insertIfAbsent(_ key: [UInt8], _ value: Value) -> Bool {
        let h = key.withUnsafeBytes { ByteKeyMap.hash($0) }
        let found = key.withUnsafeBytes { find(hash: h, key: $0, lowercase: false) }
        if found >= 0 { return false }
        if (values.count + 1) * 2 > slots.count { grow() }
        let index = Int32(values.count)
        hashes.append(h)
        keyStart.append(keyBytes.count)
        keyLength.append(key.count)
        keyBytes.append(contentsOf: key)
        values.append(value)
        maxKeyLength = max(maxKeyLength, key.count)
        place(index, hash: h)
        return true
    }

    /// Replaces the value of an existing key, or inserts it.
    public mutating func set(_ key: [UInt8], _ value: Value) {
        let h = key.withUnsafeBytes { ByteKeyMap.hash($0) }
        let found = key.withUnsafeBytes { find(hash: h, key: $0, lowercase: false) }
        if found >= 0 { values[found] = value } else { insertIfAbsent(key, value) }
    }

    private mutating func place(_ index: Int32, hash: UInt64) {
        let mask = slots.count - 1
        var slot = Int(truncatingIfNeeded: hash) & mask
        while slots[slot] >= 0 { slot = (slot + 1) & mask }
        slots[slot] = index
    }

    private mutating func grow() {
        slots = [Int32](repeating: -1, count: slots.count * 2)
        for i in 0..<values.count { place(Int32(i), hash: hashes[i]) }
    }

    // MARK: Lookup

    /// The entry index of `key` (hashed as `hash`), or -1. With `lowercase`, ASCII letters of
    /// `key` are folded to lower case before comparing (stored keys must then be lower case).
    @inline(__always)
    public func find(hash: UInt64, key: UnsafeRawBufferPointer, lowercase: Bool) -> Int {
        let mask = slots.count - 1
        var slot = Int(truncatingIfNeeded: hash) & mask
        while true {
            let index = Int(slots[slot])
            if index < 0 { return -1 }
            if hashes[index] == hash && keyLength[index] == key.count
                && equal(start: keyStart[index], key, lowercase: lowercase) {
                return index
            }
            slot = (slot + 1) & mask
        }
    }

    @inline(__always)
    private func equal(start: Int, _ key: UnsafeRawBufferPointer, lowercase: Bool) -> Bool {
        keyBytes.withUnsafeBufferPointer { stored in
            var i = 0
            if lowercase {
                while i < key.count {
                    if stored[start + i] != ByteKeyMap.lower(key[i]) { return false }
                    i += 1
                }
            } else {
                while i < key.count {
                    if stored[start + i] != key[i] { return false }
                    i += 1
                }
            }
            return true
        }
    }

    public func value(at index: Int) -> Value { values[index] }

    public func lookup(_ key: UnsafeRawBufferPointer) -> Value? {
        let i = find(hash: ByteKeyMap.hash(key), key: key, lowercase: false)
        return i >= 0 ? values[i] : nil
    }

    public func lookupLowercased(_ key: UnsafeRawBufferPointer) -> Value? {
        let i = find(hash: ByteKeyMap.hashLowercased(key), key: key, lowercase: true)
        return i >= 0 ? values[i] : nil
    }

    /// Convenience for building and tests (allocates).
    public func lookup(_ key: String) -> Value? {
        Array(key.utf8).withUnsafeBytes { lookup($0) }
    }

    /// The stored keys in insertion order (allocates; for descriptions and tests).
    public var keys: [[UInt8]] {
        (0..<values.count).map { Array(keyBytes[keyStart[$0]..<(keyStart[$0] + keyLength[$0])]) }
    }
}

extension ByteKeyMap: Sendable where Value: Sendable {}
