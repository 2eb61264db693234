// libFuzzer target for the HTTP/1.1 request parser (Sources/HTTP1/RequestParser.swift). Every
// invariant violation traps. Invariants: ranges inside the head; at most one Host; never both
// Content-Length and Transfer-Encoding; the Content-Length the parser returns is what the bytes
// say; chunked only when "chunked" is the last coding; the same answer whole, in two pieces,
// byte by byte, and after reset.
import FuzzSupport
import HTTP1

struct RequestOutcome: Equatable {
    var status: ParseStatus
    var headLength = 0
    var fields: [HeaderField] = []
    var target = 0..<0, path = 0..<0, query = 0..<0
    var host: Range<Int>? = nil
    var framing: BodyFraming = .none
    var keepAlive = true

    init(_ status: ParseStatus, _ h: RequestHead) {
        self.status = status
        guard status == .complete else { return }
        headLength = h.headLength; fields = h.fields; target = h.target; path = h.path; query = h.query
        host = h.host; framing = h.framing; keepAlive = h.keepAlive
    }
}

func checkRequest(_ o: RequestOutcome, _ h: RequestHead, _ buf: UnsafeRawBufferPointer) {
    let count = buf.count
    guard o.status == .complete else { return }
    check(h.headLength > 0 && h.headLength <= count, "request headLength <= count")
    let n = h.headLength
    checkRange(h.methodRange, n, "method in head")
    checkRange(h.target, n, "target in head")
    checkRange(h.path, n, "path in head")
    checkRange(h.query, n, "query in head")
    if let host = h.host { checkRange(host, n, "host in head") }
    for f in h.fields {
        checkRange(f.name, n, "field name in head")
        checkRange(f.value, n, "field value in head")
        check(!f.name.isEmpty, "field name not empty")
    }
    if h.framing == .chunked { check(h.versionMinor == 1, "chunked only in 1.1") }
    var hosts = 0, cls = 0, tes = 0
    for f in h.fields {
        switch f.kind {
        case .host: hosts += 1
        case .contentLength: cls += 1; check(!f.hopByHop, "Content-Length never hop-by-hop")
        case .transferEncoding: tes += 1
        default: break
        }
        if f.kind == .host { check(!f.hopByHop, "Host never hop-by-hop") }
    }
    check(hosts <= 1, "at most one Host")
    check(!(cls > 0 && tes > 0), "never both Content-Length and Transfer-Encoding")
    switch h.framing {
    case .chunked: check(tes > 0, "chunked needs Transfer-Encoding")
    case .contentLength: check(cls > 0, "length needs Content-Length")
    case .none: check(cls == 0 && tes == 0, "no framing fields for .none")
    case .untilClose: check(false, "requests are never until-close")
    }
    if h.versionMinor == 1 { check(h.host != nil, "1.1 has a host") }
    checkFramingAgainstBytes(h, buf)
}

/// The framing the parser chose, recomputed from the field bytes by a simpler reader.
func checkFramingAgainstBytes(_ h: RequestHead, _ buf: UnsafeRawBufferPointer) {
    var lengths: [UInt64] = []
    var codings: [[UInt8]] = []
    for f in h.fields {
        for b in buf[f.name] { check(isTchar(b), "field name is all tchar") }
        let value = Array(buf[f.value])
        for b in value { check(b != 0x0D && b != 0x0A && b != 0, "no CR, LF or NUL in a value") }
        if let first = value.first { check(first != 0x20 && first != 0x09, "value has no leading whitespace") }
        if let last = value.last { check(last != 0x20 && last != 0x09, "value has no trailing whitespace") }
        let name = buf[f.name]
        if equalsLowercase(name, "content-length") {
            check(f.kind == .contentLength, "Content-Length classified")
            guard let ls = referenceContentLengths(value) else { check(false, "parser accepted a malformed Content-Length"); return }
            lengths += ls
        } else if equalsLowercase(name, "transfer-encoding") {
            check(f.kind == .transferEncoding, "Transfer-Encoding classified")
            for part in value.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: true) {
                var p = ArraySlice(part)
                while let c = p.first, c == 0x20 || c == 0x09 { p = p.dropFirst() }
                while let c = p.last, c == 0x20 || c == 0x09 { p = p.dropLast() }
                if !p.isEmpty { codings.append(Array(p)) }
            }
        } else if equalsLowercase(name, "host") {
            check(f.kind == .host, "Host classified")
        }
    }
    switch h.framing {
    case .contentLength(let n):
        check(!lengths.isEmpty && lengths.allSatisfy { $0 == n }, "Content-Length \(n) is what the bytes say: \(lengths)")
    case .chunked:
        check(codings.last.map { equalsLowercase($0, "chunked") } ?? false, "chunked is the final coding")
        check(codings.filter { equalsLowercase($0, "chunked") }.count == 1, "chunked exactly once")
    case .none:
        check(lengths.isEmpty && codings.isEmpty, "no framing fields")
    case .untilClose:
        check(false, "requests are never until-close")
    }
}

func fuzzRequest(_ buf: UnsafeRawBufferPointer, split: Int) {
    var limits = ParseLimits()
    limits.maxRequestLine = 512
    limits.maxHeadBytes = 2048
    limits.maxFields = 32

    var p = RequestParser(limits: limits)
    var h = RequestHead()
    let whole = RequestOutcome(p.parse(buf, into: &h), h)
    checkRequest(whole, h, buf)
    // Parsed again after reset with the same head: same answer.
    p.reset()
    let again = RequestOutcome(p.parse(buf, into: &h), h)
    check(again == whole, "reset and reparse gives the same result")

    // Split in two: first a prefix, then the whole buffer; same answer as whole.
    var p2 = RequestParser(limits: limits)
    var h2 = RequestHead()
    let first = p2.parse(UnsafeRawBufferPointer(rebasing: buf[0..<split]), into: &h2)
    let second: RequestOutcome
    if first == .incomplete {
        second = RequestOutcome(p2.parse(buf, into: &h2), h2)
    } else {
        second = RequestOutcome(first, h2)
        if case .complete = first { check(h2.headLength <= split, "complete prefix head within prefix") }
    }
    checkRequest(second, h2, buf)
    check(second == whole, "split parse equals whole parse")

    // Byte by byte: every prefix in turn, one more byte each call; same answer as whole.
    var p3 = RequestParser(limits: limits)
    var h3 = RequestHead()
    var st3 = ParseStatus.incomplete
    var k = 0
    while st3 == .incomplete && k < buf.count {
        k += 1
        st3 = p3.parse(UnsafeRawBufferPointer(rebasing: buf[0..<k]), into: &h3)
    }
    check(RequestOutcome(st3, h3) == whole, "byte-by-byte parse equals whole parse")
    if st3 == .complete { check(h3.headLength == k, "complete exactly at the byte that ends the head") }

    // Pipelining: parse what follows a complete head.
    if whole.status == .complete, h.headLength < buf.count {
        p.reset()
        let rest = UnsafeRawBufferPointer(rebasing: buf[h.headLength...])
        let o = RequestOutcome(p.parse(rest, into: &h), h)
        checkRequest(o, h, rest)
    }
}

@main
enum Main {
    static func main() {
        runFuzzer { data, size in data.map { testOneInput($0, size) } ?? 0 }
    }
}

func testOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let buf = UnsafeRawBufferPointer(start: data, count: size)
    fuzzRequest(buf, split: splitPoint(buf))
    return 0
}
