import CFuzzDriver
#if canImport(Glibc)
import Glibc
#endif

/// What every fuzz target shares: invariant checks that trap (libFuzzer records the input as a
/// crash), and a deterministic split point derived from the input.

/// Traps with `what` when `ok` is false.
@inline(__always)
public func check(_ ok: Bool, _ what: @autoclosure () -> String) {
    if !ok { fatalError("invariant violated: \(what())") }
}

/// Traps unless `r` lies inside `0..<limit`.
public func checkRange(_ r: Range<Int>, _ limit: Int, _ what: StaticString) {
    check(r.lowerBound >= 0 && r.upperBound <= limit, "\(what): \(r) outside 0..<\(limit)")
}

/// A split point in `0...size` that depends on the input's bytes, so that every input is also
/// tried in two pieces at a place the fuzzer can steer.
public func splitPoint(_ buf: UnsafeRawBufferPointer) -> Int {
    let size = buf.count
    if size == 0 { return 0 }
    var hash: UInt = 0
    for i in stride(from: 0, to: size, by: Swift.max(1, size / 16)) { hash = hash &* 31 &+ UInt(buf[i]) }
    return Int(hash % UInt(size + 1))
}

/// ASCII case-insensitive comparison of `bytes` with a lower-case literal.
public func equalsLowercase<C: Collection>(_ bytes: C, _ lower: String) -> Bool where C.Element == UInt8 {
    let l = Array(lower.utf8)
    guard bytes.count == l.count else { return false }
    for (a, b) in zip(bytes, l) {
        let la = (a >= 0x41 && a <= 0x5A) ? a | 0x20 : a
        if la != b { return false }
    }
    return true
}

/// tchar (RFC 9110 §5.6.2).
public func isTchar(_ b: UInt8) -> Bool {
    switch b {
    case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
    case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
         UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
         UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
        return true
    default: return false
    }
}

/// The Content-Length values a field value lists, read independently of the parser
/// (comma-separated, OWS-trimmed, decimal digits only); nil when any element is not 1*DIGIT or
/// does not fit in 63 bits.
public func referenceContentLengths(_ value: [UInt8]) -> [UInt64]? {
    var out: [UInt64] = []
    for part in value.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
        var p = ArraySlice(part)
        while let f = p.first, f == 0x20 || f == 0x09 { p = p.dropFirst() }
        while let l = p.last, l == 0x20 || l == 0x09 { p = p.dropLast() }
        if p.isEmpty { return nil }
        var v: UInt64 = 0
        for b in p {
            guard b >= 0x30 && b <= 0x39 else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(UInt64(b - 0x30))
            if o1 || o2 || s > (1 << 62) { return nil }
            v = s
        }
        out.append(v)
    }
    return out
}

/// Runs libFuzzer with the process arguments, calling `testOneInput` for each input.
public func runFuzzer(_ testOneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Never {
    exit(portico_fuzz_run(CommandLine.argc, CommandLine.unsafeArgv, testOneInput))
}
