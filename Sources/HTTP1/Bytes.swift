#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Byte classes from RFC 9110 §5.6 and RFC 3986, as bit masks over ASCII (no tables, no
/// lazily-initialised globals on the hot path).
enum ByteClass {
    // tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
    static let tcharLo: UInt64 = 0x03ff_6cfa_0000_0000
    static let tcharHi: UInt64 = 0x57ff_ffff_c7ff_fffe
    // unreserved / sub-delims (RFC 3986 reg-name, without "%", which is checked as pct-encoded)
    static let regNameLo: UInt64 = 0x2bff_7fd2_0000_0000
    static let regNameHi: UInt64 = 0x47ff_fffe_87ff_fffe

    @inline(__always)
    static func isTchar(_ b: UInt8) -> Bool {
        if b < 64 { return (tcharLo >> UInt64(b)) & 1 != 0 }
        if b < 128 { return (tcharHi >> UInt64(b &- 64)) & 1 != 0 }
        return false
    }

    @inline(__always)
    static func isRegName(_ b: UInt8) -> Bool {
        if b < 64 { return (regNameLo >> UInt64(b)) & 1 != 0 }
        if b < 128 { return (regNameHi >> UInt64(b &- 64)) & 1 != 0 }
        return false
    }

    /// field-vchar / SP / HTAB (RFC 9110 §5.5): everything but CTLs (except HTAB) and DEL.
    @inline(__always)
    static func isFieldValueByte(_ b: UInt8) -> Bool {
        return (b >= 0x20 && b != 0x7F) || b == 0x09
    }

    @inline(__always)
    static func isOWS(_ b: UInt8) -> Bool { return b == 0x20 || b == 0x09 }

    @inline(__always)
    static func isDigit(_ b: UInt8) -> Bool { return b &- 0x30 < 10 }

    /// Value of a hex digit, or nil.
    @inline(__always)
    static func hexValue(_ b: UInt8) -> UInt8? {
        if b &- 0x30 < 10 { return b &- 0x30 }
        let l = b | 0x20
        if l &- 0x61 < 6 { return l &- 0x61 &+ 10 }
        return nil
    }

    @inline(__always)
    static func lower(_ b: UInt8) -> UInt8 {
        return b &- 0x41 < 26 ? b | 0x20 : b
    }
}

@inline(__always)
func loadByte(_ base: UnsafeRawPointer, _ i: Int) -> UInt8 {
    return base.load(fromByteOffset: i, as: UInt8.self)
}

/// Byte helpers the proxy uses on the ranges the parsers produce.
public enum Bytes {
    /// True when `buf[range]` equals `lowercase` ignoring ASCII case. `lowercase` must be lowercase
    /// ASCII; a range outside the buffer compares unequal.
    @inlinable
    public static func equalsIgnoringCase(_ buf: UnsafeRawBufferPointer, _ range: Range<Int>, _ lowercase: StaticString) -> Bool {
        let n = lowercase.utf8CodeUnitCount
        guard range.count == n, range.lowerBound >= 0, range.upperBound <= buf.count else { return false }
        if n == 0 { return true }
        guard let base = buf.baseAddress else { return false }
        return equalsIgnoringCase(base, range.lowerBound, lowercase.utf8Start, n)
    }

    /// True when the two ranges of `buf` hold the same bytes ignoring ASCII case.
    @inlinable
    public static func equalsIgnoringCase(_ buf: UnsafeRawBufferPointer, _ a: Range<Int>, _ b: Range<Int>) -> Bool {
        guard a.count == b.count, a.lowerBound >= 0, b.lowerBound >= 0,
              a.upperBound <= buf.count, b.upperBound <= buf.count else { return false }
        guard let base = buf.baseAddress else { return a.isEmpty }
        return rangesEqualIgnoringCase(base, a.lowerBound, b.lowerBound, a.count)
    }

    /// The offset of the first `byte` in `buf[range]`, or nil.
    @inlinable
    public static func find(_ byte: UInt8, in buf: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int? {
        guard let base = buf.baseAddress, range.lowerBound >= 0, range.upperBound <= buf.count, !range.isEmpty else { return nil }
        return findByte(byte, base, range.lowerBound, range.upperBound)
    }

    @usableFromInline
    static func findByte(_ byte: UInt8, _ base: UnsafeRawPointer, _ from: Int, _ to: Int) -> Int? {
        guard from < to else { return nil }
        guard let hit = memchr(base + from, Int32(byte), to - from) else { return nil }
        return UnsafeRawPointer(hit) - base
    }

    @usableFromInline
    static func equalsIgnoringCase(_ base: UnsafeRawPointer, _ at: Int, _ lower: UnsafePointer<UInt8>, _ n: Int) -> Bool {
        var i = 0
        while i < n {
            if ByteClass.lower(loadByte(base, at &+ i)) != lower[i] { return false }
            i &+= 1
        }
        return true
    }

    @usableFromInline
    static func rangesEqualIgnoringCase(_ base: UnsafeRawPointer, _ a: Int, _ b: Int, _ n: Int) -> Bool {
        var i = 0
        while i < n {
            if ByteClass.lower(loadByte(base, a &+ i)) != ByteClass.lower(loadByte(base, b &+ i)) { return false }
            i &+= 1
        }
        return true
    }
}

/// Eight bytes at a time (SIMD within a register) for the parsers' inner loops. Each test is
/// exact for the whole word; callers fall back to a byte loop where a word fails it.
enum SWAR {
    static let high: UInt64 = 0x8080_8080_8080_8080
    static let fold64: UInt64 = 0x2020_2020_2020_2020

    @inline(__always)
    static func load(_ base: UnsafeRawPointer, _ i: Int) -> UInt64 {
        return UInt64(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt64.self))
    }

    /// Bit 7 of each byte that is not an ASCII letter (either case) or "-", and possibly of
    /// later bytes: the lowest set bit is exactly the first such byte (little-endian load), so
    /// zero means all eight are letters or "-". Only a byte of 0x80 or more can carry into
    /// the next byte's sums, and that byte is flagged itself.
    @inline(__always)
    static func notLetterOrDash(_ x: UInt64) -> UInt64 {
        let l = x | fold64
        let atLeastA = l &+ 0x1F1F_1F1F_1F1F_1F1F  // bit 7 set where l >= 0x61
        let aboveZ = l &+ 0x0505_0505_0505_0505  // bit 7 set where l > 0x7A
        let d = x ^ 0x2D2D_2D2D_2D2D_2D2D  // zero where the byte is "-"
        let dash = ~(((d & 0x7F7F_7F7F_7F7F_7F7F) &+ 0x7F7F_7F7F_7F7F_7F7F) | d)
        return (~((atLeastA & ~aboveZ) | dash) | x) & high
    }

    /// Like `notLetterOrDash`, for bytes that are not letters, digits, "." or "-" (the bytes of
    /// almost every host name and IPv4 address).
    @inline(__always)
    static func notHostNameByte(_ x: UInt64) -> UInt64 {
        let l = x | fold64
        let letter = (l &+ 0x1F1F_1F1F_1F1F_1F1F) & ~(l &+ 0x0505_0505_0505_0505)
        let digit = (x &+ 0x5050_5050_5050_5050) & ~(x &+ 0x4646_4646_4646_4646)  // 0x30...0x39
        let d = x ^ 0x2D2D_2D2D_2D2D_2D2D  // "-"
        let dash = ~(((d & 0x7F7F_7F7F_7F7F_7F7F) &+ 0x7F7F_7F7F_7F7F_7F7F) | d)
        let p = x ^ 0x2E2E_2E2E_2E2E_2E2E  // "."
        let dot = ~(((p & 0x7F7F_7F7F_7F7F_7F7F) &+ 0x7F7F_7F7F_7F7F_7F7F) | p)
        return (~(letter | digit | dash | dot) | x) & high
    }

    /// No byte is below 0x20 (CTLs, HTAB included) or 0x7F (DEL).
    @inline(__always)
    static func noControlOrDEL(_ x: UInt64) -> Bool {
        let below20 = (x &- 0x2020_2020_2020_2020) & ~x & high
        let d = x ^ 0x7F7F_7F7F_7F7F_7F7F
        let del = (d &- 0x0101_0101_0101_0101) & ~d & high
        return below20 | del == 0
    }
}
