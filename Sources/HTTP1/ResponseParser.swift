/// Incremental, strict HTTP/1.1 response-head parser for upstream responses (RFC 9112 §4, §6.3).
///
/// Same calling convention as `RequestParser`: pass everything received so far (head at offset
/// 0) and the same `ResponseHead`; work is linear however the bytes arrive. A malformed status
/// line (including a bare CR/LF in it, a version other than HTTP/1.0 or HTTP/1.1, or a status
/// outside 100...599) is `.invalidStatusLine`; every other problem (field syntax, limits,
/// Content-Length, Transfer-Encoding) is `.invalidResponse`, so the proxy answers 502.
///
/// After a 1xx head the caller calls `reset()` and parses the next head (from the byte after
/// `headLength`). Framing follows RFC 9112 §6.3 in order: a response to HEAD, a 1xx, 204 or 304,
/// and a 2xx to CONNECT have no body (`.none`, Content-Length and Transfer-Encoding are not
/// examined); then Transfer-Encoding with Content-Length, or in an HTTP/1.0 response, is refused; chunked as the final coding
/// gives `.chunked` (chunked twice or with parameters is refused); any other Transfer-Encoding
/// gives `.untilClose`; then Content-Length (identical repeats allowed); else `.untilClose`.
public struct ResponseParser {
    public var maxHeadBytes: Int
    public var maxFields: Int

    var phase: UInt8 = 0  // 0 start, 1 status line, 2 fields, 3 done
    var lineStart = 0
    var scanPos = 0
    var result: ParseStatus = .incomplete
    /// The fields' meaning, gathered as they are read.
    var sem = FieldSemantics()
    /// False for a response without a body (decided by the status line and the request method).
    var examineFraming = true

    public init(maxHeadBytes: Int = 65536, maxFields: Int = 100) {
        self.maxHeadBytes = maxHeadBytes
        self.maxFields = maxFields
    }

    public mutating func reset() {
        phase = 0
        lineStart = 0
        scanPos = 0
        result = .incomplete
    }

    public mutating func parse(_ bytes: UnsafeRawBufferPointer, requestMethod: HTTPMethod, into head: inout ResponseHead) -> ParseStatus {
        if phase == 3 { return result }
        if phase == 0 {
            head.status = 0
            head.versionMinor = 1
            head.reason = 0..<0
            head.fields.removeAll(keepingCapacity: true)
            head.framing = .none
            head.keepAlive = true
            head.upgrade = false
            head.headLength = 0
            sem = FieldSemantics()
            phase = 1
        }
        guard let base = bytes.baseAddress else { return .incomplete }
        let end = bytes.count
        while true {
            let limit = Swift.min(end, maxHeadBytes)
            guard let lf = Bytes.findByte(LF, base, scanPos, limit) else {
                scanPos = Swift.max(scanPos, limit)
                if end >= maxHeadBytes { return fail(.invalidResponse) }
                return .incomplete
            }
            scanPos = lf &+ 1
            let ls = lineStart
            lineStart = lf &+ 1
            let bare = lf == ls || loadByte(base, lf &- 1) != CR
            let le = lf &- 1
            if phase == 1 {
                if bare { return fail(.invalidStatusLine) }
                if let failure = parseStatusLine(base, ls, le, &head) { return fail(failure) }
                let status = head.status
                examineFraming = !(requestMethod == .head || status < 200 || status == 204 || status == 304
                    || (requestMethod == .connect && status < 300))
                phase = 2
                continue
            }
            if bare { return fail(.invalidResponse) }
            if le == ls {
                head.headLength = lf &+ 1
                if let failure = finish(base, &head) { return fail(failure) }
                phase = 3
                result = .complete
                return .complete
            }
            if head.fields.count >= maxFields { return fail(.invalidResponse) }
            var field = HeaderField(name: 0..<0, value: 0..<0, kind: .other, hopByHop: false)
            if FieldLine.parse(base, ls, le, into: &field) != nil { return fail(.invalidResponse) }
            sem.add(base, field, isRequest: false, examineFraming: examineFraming)
            head.fields.append(field)
        }
    }

    @inline(__always)
    mutating func fail(_ f: ParseFailure) -> ParseStatus {
        phase = 3
        result = .failed(f)
        return result
    }

    /// HTTP-version SP 3DIGIT SP [ reason-phrase ]; the SP before an empty reason may be missing.
    func parseStatusLine(_ base: UnsafeRawPointer, _ ls: Int, _ le: Int, _ head: inout ResponseHead) -> ParseFailure? {
        let n = le &- ls
        guard n >= 12 else { return .invalidStatusLine }
        guard loadByte(base, ls) == 0x48, loadByte(base, ls &+ 1) == 0x54, loadByte(base, ls &+ 2) == 0x54,
              loadByte(base, ls &+ 3) == 0x50, loadByte(base, ls &+ 4) == 0x2F, loadByte(base, ls &+ 5) == 0x31,
              loadByte(base, ls &+ 6) == 0x2E else { return .invalidStatusLine }
        let minor = loadByte(base, ls &+ 7) &- 0x30
        guard minor <= 1, loadByte(base, ls &+ 8) == SP else { return .invalidStatusLine }
        let d0 = loadByte(base, ls &+ 9) &- 0x30
        let d1 = loadByte(base, ls &+ 10) &- 0x30
        let d2 = loadByte(base, ls &+ 11) &- 0x30
        guard d0 < 10, d1 < 10, d2 < 10 else { return .invalidStatusLine }
        let status = Int(d0) * 100 + Int(d1) * 10 + Int(d2)
        guard status >= 100 && status <= 599 else { return .invalidStatusLine }
        var reasonStart = le
        if n > 12 {
            guard loadByte(base, ls &+ 12) == SP else { return .invalidStatusLine }
            reasonStart = ls &+ 13
            var i = reasonStart
            while i < le {
                if !ByteClass.isFieldValueByte(loadByte(base, i)) { return .invalidStatusLine }
                i &+= 1
            }
        }
        head.versionMinor = minor
        head.status = status
        head.reason = reasonStart..<le
        return nil
    }

    mutating func finish(_ base: UnsafeRawPointer, _ head: inout ResponseHead) -> ParseFailure? {
        let status = head.status
        if !examineFraming {
            // Only the connection options matter; framing fields were ignored (RFC 9112 §6.3).
            sem.finish(base, &head.fields)
            head.framing = .none
        } else {
            if sem.failure != nil { return .invalidResponse }
            sem.finish(base, &head.fields)
            if sem.transferEncoding {
                // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing.
                if sem.contentLength != nil || head.versionMinor == 0 { return .invalidResponse }
                if sem.chunkedCount > 1 || sem.chunkedWithParameters { return .invalidResponse }
                head.framing = sem.lastIsChunked ? .chunked : .untilClose
            } else if let cl = sem.contentLength {
                head.framing = .contentLength(cl)
            } else {
                head.framing = .untilClose
            }
        }
        head.keepAlive = head.versionMinor == 1 ? !sem.close : (sem.keepAlive && !sem.close)
        if head.framing == .untilClose { head.keepAlive = false }
        head.upgrade = status == 101
        return nil
    }
}
