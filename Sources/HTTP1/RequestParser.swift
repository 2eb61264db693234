/// Incremental, strict HTTP/1.1 request-head parser (RFC 9112 §2-§6, RFC 9110).
///
/// Feed it everything received so far for the current message (head at offset 0); it resumes
/// where the previous call stopped, so total work is linear in the head size however the bytes
/// arrive. Pass the same `RequestHead` on every call for one message; the first call after
/// `init`/`reset()` clears it (keeping `fields`' capacity). After `.complete` or `.failed` further
/// calls return the same status until `reset()`.
///
/// Choices where the RFCs leave room (all strict, to read a message exactly one way):
/// - A line ending in a bare LF is refused as `.bareCR` (the line terminator must be CRLF).
/// - Empty lines (CRLF) before the request line are skipped; they count towards
///   `maxRequestLine` and the head size.
/// - The request line may be at most `maxRequestLine` bytes (without its CRLF, including any
///   skipped empty lines); exceeding it, even before the line is complete, gives 414.
/// - A missing or extra part of the request line is `.invalidRequestLine`; a target with `#` or
///   a non-visible byte is `.invalidTarget`.
/// - Absolute-form with an empty path ("http://h" or "http://h?q") gives an empty `path` range:
///   the proxy must send "/" for it. Authority-form (CONNECT only) gives empty `path`/`query`
///   ranges at the end of the target. Userinfo in an absolute-form authority is `.invalidTarget`.
/// - Host ports are 1-5 digits (≤ 65535); an empty Host value is `.invalidHost`.
/// - A malformed Transfer-Encoding list (not tokens/parameters) is `.invalidHeaderValue`.
public struct RequestParser {
    public var limits: ParseLimits

    enum Phase: UInt8 { case start, requestLine, fields, done }
    var phase: Phase = .start
    var lineStart = 0
    var scanPos = 0
    var result: ParseStatus = .incomplete
    /// Authority of an absolute-form target (checked against Host at the end of the head).
    var authority: Range<Int>? = nil
    /// The fields' meaning, gathered as they are read.
    var sem = FieldSemantics()

    public init(limits: ParseLimits = ParseLimits()) {
        self.limits = limits
    }

    /// Forgets the current message; call before parsing the next one on the connection.
    public mutating func reset() {
        phase = .start
        lineStart = 0
        scanPos = 0
        result = .incomplete
        authority = nil
    }

    /// `bytes` = everything received so far for this message, head starting at offset 0. Call
    /// again with the larger buffer when more bytes arrive; bytes already scanned are not scanned
    /// again. On `.complete`, `head` is fully populated and `head.headLength` says how many bytes
    /// the head used (body or pipelined bytes follow).
    public mutating func parse(_ bytes: UnsafeRawBufferPointer, into head: inout RequestHead) -> ParseStatus {
        if phase == .done { return result }
        if phase == .start {
            head.method = .get
            head.methodRange = 0..<0
            head.target = 0..<0
            head.path = 0..<0
            head.query = 0..<0
            head.versionMinor = 1
            head.fields.removeAll(keepingCapacity: true)
            head.host = nil
            head.framing = .none
            head.keepAlive = true
            head.expectContinue = false
            head.upgrade = false
            head.headLength = 0
            sem = FieldSemantics()
            phase = .requestLine
        }
        guard let base = bytes.baseAddress else { return .incomplete }
        let end = bytes.count
        while true {
            let limit: Int
            if phase == .requestLine {
                limit = Swift.min(end, Swift.min(limits.maxRequestLine &+ 2, limits.maxHeadBytes))
            } else {
                limit = Swift.min(end, limits.maxHeadBytes)
            }
            guard let lf = Bytes.findByte(LF, base, scanPos, limit) else {
                scanPos = Swift.max(scanPos, limit)
                if phase == .requestLine && end >= limits.maxRequestLine &+ 2 { return fail(.requestLineTooLong) }
                if end >= limits.maxHeadBytes { return fail(.headerSectionTooLarge) }
                return .incomplete
            }
            scanPos = lf &+ 1
            let ls = lineStart
            if lf == ls || loadByte(base, lf &- 1) != CR { return fail(.bareCR) }
            let le = lf &- 1
            lineStart = lf &+ 1
            if phase == .requestLine {
                if le == ls { continue }  // RFC 9112 §2.2: ignore empty lines before the request line
                if le > limits.maxRequestLine { return fail(.requestLineTooLong) }
                if let failure = parseRequestLine(base, ls, le, &head) { return fail(failure) }
                phase = .fields
                continue
            }
            if le == ls {
                head.headLength = lf &+ 1
                if let failure = finish(base, &head) { return fail(failure) }
                phase = .done
                result = .complete
                return .complete
            }
            if head.fields.count >= limits.maxFields { return fail(.tooManyHeaders) }
            var field = HeaderField(name: 0..<0, value: 0..<0, kind: .other, hopByHop: false)
            if let failure = FieldLine.parse(base, ls, le, into: &field) { return fail(failure) }
            sem.add(base, field, isRequest: true, examineFraming: true)
            head.fields.append(field)
        }
    }

    @inline(__always)
    mutating func fail(_ f: ParseFailure) -> ParseStatus {
        phase = .done
        result = .failed(f)
        return result
    }

    mutating func parseRequestLine(_ base: UnsafeRawPointer, _ ls: Int, _ le: Int, _ head: inout RequestHead) -> ParseFailure? {
        // method SP
        var i = ls
        while i < le && ByteClass.isTchar(loadByte(base, i)) { i &+= 1 }
        if i == le { return .invalidRequestLine }
        let sep = loadByte(base, i)
        if sep != SP {
            if sep == CR { return .bareCR }
            return i == ls && ByteClass.isOWS(sep) ? .invalidRequestLine : .invalidMethod
        }
        if i == ls { return .invalidRequestLine }
        head.methodRange = ls..<i
        head.method = RequestParser.method(base, ls, i)
        // request-target SP
        i &+= 1
        let ts = i
        var question = -1
        while i < le {
            let b = loadByte(base, i)
            if b == SP { break }
            if b <= 0x20 || b >= 0x7F || b == 0x23 {  // CTL, obs-text, "#"
                return b == CR ? .bareCR : .invalidTarget
            }
            if b == 0x3F && question < 0 { question = i }  // "?"
            i &+= 1
        }
        let te = i
        if te == ts || te == le { return .invalidRequestLine }
        head.target = ts..<te
        // HTTP-version
        i &+= 1
        if le &- i != 8 || !FieldLine.eq(base, i, "http/1.") || loadByte(base, i) != 0x48
            || loadByte(base, i &+ 1) != 0x54 || loadByte(base, i &+ 2) != 0x54 || loadByte(base, i &+ 3) != 0x50
            || loadByte(base, i &+ 7) &- 0x30 > 1 {
            var j = i
            while j < le {
                let b = loadByte(base, j)
                if b == SP { return .invalidRequestLine }
                if b == CR { return .bareCR }
                j &+= 1
            }
            return .invalidVersion
        }
        head.versionMinor = loadByte(base, i &+ 7) &- 0x30

        // request-target forms (RFC 9112 §3.2)
        let first = loadByte(base, ts)
        if first == 0x2F {  // "/" origin-form
            if head.method == .connect { return .invalidTarget }
            if question >= 0 {
                head.path = ts..<question
                head.query = (question &+ 1)..<te
            } else {
                head.path = ts..<te
                head.query = te..<te
            }
            return nil
        }
        if first == 0x2A && te &- ts == 1 {  // "*" asterisk-form
            if head.method != .options { return .invalidTarget }
            head.path = ts..<te
            head.query = te..<te
            return nil
        }
        if head.method == .connect {  // authority-form
            if !HostSyntax.isValid(base, ts..<te, requirePort: true) { return .invalidTarget }
            head.path = te..<te
            head.query = te..<te
            return nil
        }
        // absolute-form: "http://" or "https://" (case-insensitive) authority [path-abempty] ["?" query]
        var a: Int
        if te &- ts > 7 && FieldLine.eq(base, ts, "http://") {
            a = ts &+ 7
        } else if te &- ts > 8 && FieldLine.eq(base, ts, "https://") {
            a = ts &+ 8
        } else {
            return .invalidTarget
        }
        let authStart = a
        while a < te {
            let b = loadByte(base, a)
            if b == 0x2F || b == 0x3F { break }
            a &+= 1
        }
        let auth = authStart..<a
        if !HostSyntax.isValid(base, auth) { return .invalidTarget }
        authority = auth
        if question >= 0 {
            head.path = a..<question
            head.query = (question &+ 1)..<te
        } else {
            head.path = a..<te
            head.query = te..<te
        }
        return nil
    }

    static func method(_ base: UnsafeRawPointer, _ s: Int, _ e: Int) -> HTTPMethod {
        @inline(__always) func m(_ lit: StaticString) -> Bool {
            let p = lit.utf8Start
            var i = 0
            while i < lit.utf8CodeUnitCount {
                if loadByte(base, s &+ i) != p[i] { return false }
                i &+= 1
            }
            return true
        }
        switch e &- s {
        case 3:
            if m("GET") { return .get }
            if m("PUT") { return .put }
        case 4:
            if m("POST") { return .post }
            if m("HEAD") { return .head }
        case 5:
            if m("PATCH") { return .patch }
            if m("TRACE") { return .trace }
        case 6: if m("DELETE") { return .delete }
        case 7:
            if m("OPTIONS") { return .options }
            if m("CONNECT") { return .connect }
        default: break
        }
        return .other
    }

    mutating func finish(_ base: UnsafeRawPointer, _ head: inout RequestHead) -> ParseFailure? {
        if let failure = sem.failure { return failure }
        sem.finish(base, &head.fields)
        // Host (RFC 9112 §3.2)
        if let h = sem.host {
            if !HostSyntax.isValid(base, h) { return .invalidHost }
            if let auth = authority {
                if h.count != auth.count || !Bytes.rangesEqualIgnoringCase(base, h.lowerBound, auth.lowerBound, h.count) {
                    return .hostMismatch
                }
                head.host = auth
            } else {
                head.host = h
            }
        } else {
            if head.versionMinor == 1 { return .missingHost }
            head.host = authority
        }
        // Framing (RFC 9112 §6.1-§6.3)
        if sem.transferEncoding {
            if sem.contentLength != nil { return .contentLengthWithTransferEncoding }
            if head.versionMinor == 0 { return .transferEncodingInHTTP10 }
            if sem.chunkedCount > 1 { return .chunkedTwice }
            if !sem.lastIsChunked || sem.chunkedWithParameters { return .chunkedNotFinal }
            if sem.unknownCoding { return .unknownTransferCoding }
            head.framing = .chunked
        } else if let cl = sem.contentLength {
            head.framing = .contentLength(cl)
        } else {
            head.framing = .none
        }
        head.keepAlive = head.versionMinor == 1 ? !sem.close : (sem.keepAlive && !sem.close)
        head.upgrade = sem.connectionUpgrade && sem.upgradeField
        // RFC 9110 §10.1.1: a 100-continue expectation in an HTTP/1.0 request is ignored.
        head.expectContinue = sem.expectContinue && head.versionMinor == 1
        return nil
    }
}
