// libFuzzer target for the HTTP/1.1 response parser (Sources/HTTP1/ResponseParser.swift), as the
// proxy drives it: heads parsed one after another (1xx heads are skipped with reset()), then the
// body framed by what the head said. Invariants: ranges inside the head; the status is the three
// digits of the status line; framing follows RFC 9112 §6.3 recomputed from the field bytes (the
// Content-Length is what the bytes say); the same answer whole, in two pieces and byte by byte.
import FuzzSupport
import HTTP1

struct Outcome: Equatable {
    var status: ParseStatus
    var code = 0, minor: UInt8 = 0, headLength = 0
    var reason = 0..<0
    var fields: [HeaderField] = []
    var framing: BodyFraming = .none
    var keepAlive = false, upgrade = false

    init(_ status: ParseStatus, _ h: ResponseHead) {
        self.status = status
        guard status == .complete else { return }
        code = h.status; minor = h.versionMinor; headLength = h.headLength; reason = h.reason
        fields = h.fields; framing = h.framing; keepAlive = h.keepAlive; upgrade = h.upgrade
    }
}

let maxHead = 2048

func parseWhole(_ buf: UnsafeRawBufferPointer, _ method: HTTPMethod) -> (Outcome, ResponseHead) {
    var p = ResponseParser(maxHeadBytes: maxHead, maxFields: 32)
    var h = ResponseHead()
    return (Outcome(p.parse(buf, requestMethod: method, into: &h), h), h)
}

func checkHead(_ o: Outcome, _ h: ResponseHead, _ buf: UnsafeRawBufferPointer, _ method: HTTPMethod) {
    guard o.status == .complete else {
        if case .failed(let f) = o.status { check(f == .invalidStatusLine || f == .invalidResponse, "response failures are 502s: \(f)") }
        return
    }
    let n = h.headLength
    check(n >= 16 && n <= buf.count && n <= maxHead, "headLength in bounds")
    check(buf[n - 4] == 0x0D && buf[n - 3] == 0x0A && buf[n - 2] == 0x0D && buf[n - 1] == 0x0A, "head ends with CRLF CRLF")
    let digits = (9...11).map { Int(buf[$0]) - 0x30 }
    check(digits.allSatisfy { $0 >= 0 && $0 <= 9 } && digits[0] * 100 + digits[1] * 10 + digits[2] == h.status,
          "status is the three digits after the version")
    check(h.status >= 100 && h.status <= 599, "status range")
    check(buf[7] == 0x30 + h.versionMinor && h.versionMinor <= 1, "version minor is the byte")
    checkRange(h.reason, n, "reason in head")
    var lengths: [UInt64] = []
    var codings: [[UInt8]] = []
    var sawTE = false
    for f in h.fields {
        checkRange(f.name, n, "name in head")
        checkRange(f.value, n, "value in head")
        check(!f.name.isEmpty, "name not empty")
        for b in buf[f.name] { check(isTchar(b), "name is all tchar") }
        let value = Array(buf[f.value])
        for b in value { check(b != 0x0D && b != 0x0A && b != 0, "no CR, LF or NUL in a value") }
        if let first = value.first { check(first != 0x20 && first != 0x09, "no leading whitespace") }
        if let last = value.last { check(last != 0x20 && last != 0x09, "no trailing whitespace") }
        if equalsLowercase(buf[f.name], "content-length") {
            check(f.kind == .contentLength, "Content-Length classified")
            lengths += referenceContentLengths(value) ?? [UInt64.max]
        } else if equalsLowercase(buf[f.name], "transfer-encoding") {
            check(f.kind == .transferEncoding, "Transfer-Encoding classified")
            sawTE = true
            for part in value.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: true) {
                var p = ArraySlice(part)
                while let c = p.first, c == 0x20 || c == 0x09 { p = p.dropFirst() }
                while let c = p.last, c == 0x20 || c == 0x09 { p = p.dropLast() }
                if !p.isEmpty { codings.append(Array(p)) }
            }
        }
    }
    let noBody = method == .head || h.status < 200 || h.status == 204 || h.status == 304
        || (method == .connect && h.status < 300)
    if noBody {
        check(h.framing == .none, "HEAD, 1xx, 204, 304 and 2xx to CONNECT have no body")
    } else {
        switch h.framing {
        case .none:
            check(false, "a response with a body is never .none")
        case .contentLength(let cl):
            check(!sawTE, "no Transfer-Encoding with a Content-Length body")
            check(!lengths.isEmpty && lengths.allSatisfy { $0 == cl }, "Content-Length \(cl) is what the bytes say: \(lengths)")
        case .chunked:
            check(lengths.isEmpty, "never chunked with a Content-Length")
            check(h.versionMinor == 1, "chunked only in HTTP/1.1")
            check(codings.last.map { equalsLowercase($0, "chunked") } ?? false, "chunked is the final coding")
            check(codings.filter { equalsLowercase($0, "chunked") }.count == 1, "chunked once")
        case .untilClose:
            check(!h.keepAlive, "until-close is not keep-alive")
            check(lengths.isEmpty, "never until-close with a Content-Length")
        }
    }
    check(h.upgrade == (h.status == 101), "upgrade is 101")
}

/// The proxy's loop over one upstream connection: heads (skipping at most 64 interim 1xx heads,
/// as a bounded proxy must), then the body by its framing. Returns the bytes accounted for.
func drive(_ buf: UnsafeRawBufferPointer, _ method: HTTPMethod) {
    var offset = 0
    var interim = 0
    while offset < buf.count {
        let rest = UnsafeRawBufferPointer(rebasing: buf[offset...])
        let (o, h) = parseWhole(rest, method)
        checkHead(o, h, rest, method)
        guard o.status == .complete else { return }
        offset += h.headLength
        if h.status < 200 && h.status != 101 {
            interim += 1
            if interim > 64 { return }
            continue
        }
        switch h.framing {
        case .chunked:
            var d = ChunkedDecoder(maxExtension: 64)
            let body = UnsafeRawBufferPointer(rebasing: buf[offset...])
            if case .success(let used) = d.consume(body) {
                check(used <= body.count, "chunked consumed within the body")
                if !d.isComplete { check(used == body.count, "incomplete chunked body consumes everything") }
                check(d.payloadBytes <= UInt64(used), "payload <= consumed")
            }
        case .contentLength(let n):
            check(n <= 1 << 62, "Content-Length bounded")
        default:
            break
        }
        return
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
    let split = splitPoint(buf)
    let methods: [HTTPMethod] = [.get, .head, .post, .connect]
    let method = methods[split % 4]
    let (whole, h) = parseWhole(buf, method)
    checkHead(whole, h, buf, method)

    // Two pieces.
    var p2 = ResponseParser(maxHeadBytes: maxHead, maxFields: 32)
    var h2 = ResponseHead()
    var st2 = p2.parse(UnsafeRawBufferPointer(rebasing: buf[0..<split]), requestMethod: method, into: &h2)
    if st2 == .incomplete { st2 = p2.parse(buf, requestMethod: method, into: &h2) }
    check(Outcome(st2, h2) == whole, "two pieces equal whole")

    // Byte by byte.
    var p3 = ResponseParser(maxHeadBytes: maxHead, maxFields: 32)
    var h3 = ResponseHead()
    var st3 = ParseStatus.incomplete
    var k = 0
    while st3 == .incomplete && k < buf.count {
        k += 1
        st3 = p3.parse(UnsafeRawBufferPointer(rebasing: buf[0..<k]), requestMethod: method, into: &h3)
    }
    check(Outcome(st3, h3) == whole, "byte by byte equals whole")
    if st3 == .complete { check(h3.headLength == k, "complete at the byte that ends the head") }

    // Reset and reparse.
    p3.reset()
    check(Outcome(p3.parse(buf, requestMethod: method, into: &h3), h3) == whole, "reset and reparse")

    drive(buf, method)
    return 0
}
