// libFuzzer entry for the HTTP1 parsers. Built together with Sources/HTTP1/*.swift as one module
// by fuzz/run.sh (so no `import HTTP1`). Every invariant violation traps.

@inline(__always)
func check(_ ok: Bool, _ what: StaticString) {
    if !ok { fatalError("invariant violated: \(what)") }
}

func checkRange(_ r: Range<Int>, _ limit: Int, _ what: StaticString) {
    check(r.lowerBound >= 0 && r.upperBound <= limit, what)
}

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

func checkRequest(_ o: RequestOutcome, _ h: RequestHead, count: Int) {
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
}

func fuzzRequest(_ buf: UnsafeRawBufferPointer, split: Int) {
    var limits = ParseLimits()
    limits.maxRequestLine = 512
    limits.maxHeadBytes = 2048
    limits.maxFields = 32

    var p = RequestParser(limits: limits)
    var h = RequestHead()
    let whole = RequestOutcome(p.parse(buf, into: &h), h)
    checkRequest(whole, h, count: buf.count)
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
    checkRequest(second, h2, count: buf.count)
    check(second == whole, "split parse equals whole parse")

    // Pipelining: parse what follows a complete head.
    if whole.status == .complete, h.headLength < buf.count {
        p.reset()
        let rest = UnsafeRawBufferPointer(rebasing: buf[h.headLength...])
        let o = RequestOutcome(p.parse(rest, into: &h), h)
        checkRequest(o, h, count: rest.count)
    }
}

func fuzzResponse(_ buf: UnsafeRawBufferPointer, method: HTTPMethod, split: Int) {
    var p = ResponseParser(maxHeadBytes: 2048, maxFields: 32)
    var h = ResponseHead()
    let st = p.parse(buf, requestMethod: method, into: &h)
    // Split in two: same status, head length and framing as whole.
    var p2 = ResponseParser(maxHeadBytes: 2048, maxFields: 32)
    var h2 = ResponseHead()
    var st2 = p2.parse(UnsafeRawBufferPointer(rebasing: buf[0..<split]), requestMethod: method, into: &h2)
    if st2 == .incomplete { st2 = p2.parse(buf, requestMethod: method, into: &h2) }
    check(st2 == st, "split response status equals whole")
    if st == .complete {
        check(h2.headLength == h.headLength && h2.framing == h.framing && h2.fields == h.fields
              && h2.keepAlive == h.keepAlive && h2.status == h.status, "split response head equals whole")
    }
    guard st == .complete else { return }
    check(h.headLength > 0 && h.headLength <= buf.count, "response headLength <= count")
    check(h.status >= 100 && h.status <= 599, "status range")
    checkRange(h.reason, h.headLength, "reason in head")
    for f in h.fields {
        checkRange(f.name, h.headLength, "response name in head")
        checkRange(f.value, h.headLength, "response value in head")
    }
    if h.framing == .untilClose { check(!h.keepAlive, "until-close is not keep-alive") }
}

func fuzzChunked(_ buf: UnsafeRawBufferPointer, split: Int) {
    var d = ChunkedDecoder(maxExtension: 64)
    let whole = d.consume(buf)
    if case .success(let n) = whole {
        check(n >= 0 && n <= buf.count, "consume <= count")
        if !d.isComplete { check(n == buf.count, "incomplete consumes everything") }
        check(d.payloadBytes <= UInt64(n), "payload <= consumed")
    }
    // Same input in two pieces: same outcome.
    var d2 = ChunkedDecoder(maxExtension: 64)
    var total = 0
    var failure: ParseFailure? = nil
    switch d2.consume(UnsafeRawBufferPointer(rebasing: buf[0..<split])) {
    case .success(let n):
        check(n <= split, "consume <= piece")
        total = n
        if !d2.isComplete {
            switch d2.consume(UnsafeRawBufferPointer(rebasing: buf[split...])) {
            case .success(let m): check(m <= buf.count - split, "consume <= piece"); total += m
            case .failure(let f): failure = f
            }
        }
    case .failure(let f): failure = f
    }
    switch whole {
    case .success(let n): check(failure == nil && total == n && d2.isComplete == d.isComplete
                                && d2.payloadBytes == d.payloadBytes, "split chunked equals whole")
    case .failure(let f): check(failure == f, "split chunked fails the same way")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let buf = UnsafeRawBufferPointer(start: data, count: size)
    var hash: UInt = 0
    for i in stride(from: 0, to: size, by: Swift.max(1, size / 16)) { hash = hash &* 31 &+ UInt(data[i]) }
    let split = size == 0 ? 0 : Int(hash % UInt(size + 1))
    fuzzRequest(buf, split: split)
    let methods: [HTTPMethod] = [.get, .head, .post, .connect]
    fuzzResponse(buf, method: methods[Int(hash % 4)], split: split)
    fuzzChunked(buf, split: split)
    return 0
}
