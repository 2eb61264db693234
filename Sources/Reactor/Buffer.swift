#if canImport(Glibc)
import Glibc
#endif

/// A growable byte buffer with separate read and write indices, in the manner of NIO's ByteBuffer:
/// bytes are appended at `writeIndex` and consumed from `readIndex`, so nothing is copied to
/// "remove" a prefix. `compact()` moves the unread tail to the front when space runs out.
public final class Buffer {
    // Stored properties are @usableFromInline so the small accessors below inline into other
    // modules (Dataplane calls them several times per request).
    @usableFromInline var base: UnsafeMutableRawPointer
    @usableFromInline var capacity: Int
    @usableFromInline var readIndex = 0
    @usableFromInline var writeIndex = 0

    public init(capacity: Int = 16384) {
        self.capacity = max(capacity, 64)
        base = UnsafeMutableRawPointer.allocate(byteCount: self.capacity, alignment: 16)
    }

    deinit { base.deallocate() }

    @inlinable public var storageCapacity: Int { capacity }

    @inlinable public var readableCount: Int { writeIndex - readIndex }
    @inlinable public var isEmpty: Bool { writeIndex == readIndex }
    @inlinable public var writableCount: Int { capacity - writeIndex }

    /// The unread bytes.
    @inlinable public var readable: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base + readIndex, count: writeIndex - readIndex)
    }

    /// The free space after the written bytes.
    @inlinable public var writable: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base + writeIndex, count: capacity - writeIndex)
    }

    @inlinable public func consume(_ n: Int) {
        readIndex += n
        if readIndex == writeIndex { readIndex = 0; writeIndex = 0 }
    }

    @inlinable public func didWrite(_ n: Int) { writeIndex += n }

    public func clear() { readIndex = 0; writeIndex = 0 }

    /// Makes room for `n` more bytes: first by moving unread bytes to the front, then by growing.
    @inlinable public func reserve(_ n: Int) {
        if capacity - writeIndex >= n { return }
        makeRoom(n)
    }

    @usableFromInline func makeRoom(_ n: Int) {
        if readIndex > 0 {
            let count = writeIndex - readIndex
            if count > 0 { memmove(base, base + readIndex, count) }
            readIndex = 0; writeIndex = count
            if capacity - writeIndex >= n { return }
        }
        var newCapacity = capacity * 2
        while newCapacity - writeIndex < n { newCapacity *= 2 }
        let newBase = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
        newBase.copyMemory(from: base, byteCount: writeIndex)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }

    /// Moves unread bytes to the front so the whole remaining capacity is writable.
    public func compact() {
        if readIndex == 0 { return }
        let count = writeIndex - readIndex
        if count > 0 { memmove(base, base + readIndex, count) }
        readIndex = 0; writeIndex = count
    }

    @inlinable public func append(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        reserve(bytes.count)
        (base + writeIndex).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        writeIndex += bytes.count
    }

    /// Appends bytes `range` of `source`.
    @inlinable public func append(_ source: UnsafeRawBufferPointer, _ range: Range<Int>) {
        append(UnsafeRawBufferPointer(rebasing: source[range]))
    }

    @inlinable public func append(_ s: StaticString) {
        append(UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    public func append(_ bytes: [UInt8]) { bytes.withUnsafeBytes { append($0) } }

    public func append(string: String) {
        var s = string
        s.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    @inlinable public func append(byte: UInt8) {
        reserve(1)
        base.storeBytes(of: byte, toByteOffset: writeIndex, as: UInt8.self)
        writeIndex += 1
    }

    /// Appends `value` in decimal without building a String.
    public func appendDecimal(_ value: UInt64) {
        reserve(20)
        var digits: (UInt64, UInt64) = (0, 0)
        var v = value
        var n = 0
        withUnsafeMutableBytes(of: &digits) { tmp in
            repeat {
                tmp[15 - n] = UInt8(truncatingIfNeeded: v % 10) &+ 48
                v /= 10; n += 1
            } while v > 0
            (base + writeIndex).copyMemory(from: tmp.baseAddress! + 16 - n, byteCount: n)
        }
        writeIndex += n
    }

    /// Appends `value` in lowercase hexadecimal (chunk sizes).
    public func appendHex(_ value: UInt64) {
        reserve(16)
        let hex: StaticString = "0123456789abcdef"
        var shift = 60
        while shift > 0 && (value >> UInt64(shift)) & 0xF == 0 { shift -= 4 }
        while shift >= 0 {
            append(byte: hex.utf8Start[Int((value >> UInt64(shift)) & 0xF)])
            shift -= 4
        }
    }
}

/// A per-worker free list of read buffers, so idle connections can give theirs back and a new
/// request does not allocate. Not thread-safe: one per event loop.
public final class BufferPool {
    public let bufferSize: Int
    private var free: [Buffer] = []
    private let maxFree: Int

    public init(bufferSize: Int = 16384, maxFree: Int = 1024) {
        self.bufferSize = bufferSize
        self.maxFree = maxFree
    }

    @inline(__always) public func take() -> Buffer {
        if let b = free.popLast() { return b }
        return Buffer(capacity: bufferSize)
    }

    /// Returns a buffer; buffers that grew beyond the standard size are dropped to bound memory.
    @inline(__always) public func give(_ b: Buffer) {
        b.clear()
        if b.capacity == bufferSize && free.count < maxFree { free.append(b) }
    }
}
