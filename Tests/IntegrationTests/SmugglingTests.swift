// Request smuggling, as raw-byte conversations (RFC 9112 §6.1, §6.3, §7.1; RFC 9110 §5.5). For
// every ambiguous message either the proxy answers it itself (the exact status line,
// `Connection: close`, the socket closed) and the backend receives nothing, or the backend
// receives exactly one well-formed request, whose bytes are recorded between the proxy and the
// echo backend and checked here. BadRequestTests has the basic cases (CL with TE, differing and
// malformed Content-Length, obs-fold, two Hosts ...); these are the obfuscated variants.

import Foundation
import Glibc
import XCTest

/// A TCP relay between the proxy and a backend that records every byte the backend receives, so
/// a test can tell exactly what was forwarded (and that nothing was smuggled behind it).
final class RecordingRelay {
    let port: UInt16
    private let target: UInt16
    private let fd: Int32
    private let lock = NSLock()
    private var stopping = false
    private var received: [UInt8] = []
    private var sockets: [Int32] = []
    private var pumps = 0
    private let done = DispatchSemaphore(value: 0)

    init(to target: UInt16) throws {
        self.target = target
        (fd, port) = try listenOnLoopback()
        setSocketTimeouts(fd, 0.2)
        Thread { [self] in self.acceptLoop() }.start()
    }

    var address: String { "127.0.0.1:\(port)" }
    /// How many bytes the backend has received so far (a mark for `bytes(since:)`).
    var mark: Int { lock.lock(); defer { lock.unlock() }; return received.count }
    /// What the backend received after `mark`.
    func bytes(since mark: Int) -> [UInt8] { lock.lock(); defer { lock.unlock() }; return Array(received[mark...]) }
    private var isStopping: Bool { lock.lock(); defer { lock.unlock() }; return stopping }

    private func acceptLoop() {
        while !isStopping {
            let c = accept(fd, nil, nil)
            if c < 0 { continue }
            let u = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = loopback(port: target)
            let rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(u, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if rc != 0 { close(c); close(u); continue }
            lock.lock(); sockets += [c, u]; pumps += 2; lock.unlock()
            Thread { [self] in self.pump(from: c, to: u, record: true) }.start()
            Thread { [self] in self.pump(from: u, to: c, record: false) }.start()
        }
        done.signal()
    }

    /// Copies bytes one way; records them before passing them on, so that whatever the backend
    /// answered to is already recorded when the answer reaches the client.
    private func pump(from a: Int32, to b: Int32, record: Bool) {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(a, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            if record { lock.lock(); received += chunk[0..<n]; lock.unlock() }
            if !sendAll(b, Array(chunk[0..<n])) { break }
        }
        shutdown(b, Int32(SHUT_WR))
        lock.lock(); pumps -= 1; lock.unlock()
    }

    func stop() {
        lock.lock(); let already = stopping; stopping = true; let open = sockets; lock.unlock()
        if already { return }
        _ = done.wait(timeout: .now() + 3)
        close(fd)
        for s in open { shutdown(s, Int32(SHUT_RDWR)) }
        _ = waitUntil(timeout: 5) { lock.lock(); defer { lock.unlock() }; return pumps == 0 }
        for s in open { close(s) }
    }
}

/// One HTTP/1.1 request as the backend received it, read strictly from recorded bytes.
struct ForwardedRequest {
    var requestLine: String
    var fields: [(name: String, value: String)]
    /// The body as it was on the wire (chunked framing included).
    var rawBody: [UInt8]

    func values(_ name: String) -> [String] { fields.filter { $0.name.lowercased() == name }.map(\.value) }

    /// Splits `bytes` into requests; nil when they are not a sequence of complete, well-formed
    /// messages (a stray byte, a partial message, a body that does not match its framing).
    static func parseAll(_ bytes: [UInt8]) -> [ForwardedRequest]? {
        var out: [ForwardedRequest] = []
        var i = 0
        let crlf: [UInt8] = [13, 10]
        func line() -> String? {
            guard let r = bytes[i...].firstRange(of: crlf) else { return nil }
            let s = String(decoding: bytes[i..<r.lowerBound], as: UTF8.self)
            i = r.upperBound
            return s
        }
        while i < bytes.count {
            guard let requestLine = line(), requestLine.split(separator: " ").count == 3 else { return nil }
            var fields: [(String, String)] = []
            while true {
                guard let l = line() else { return nil }
                if l.isEmpty { break }
                guard let colon = l.firstIndex(of: ":"), !l.contains("\r"), !l.contains("\n") else { return nil }
                fields.append((String(l[..<colon]), l[l.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
            }
            let te = fields.filter { $0.0.lowercased() == "transfer-encoding" }
            let cl = fields.filter { $0.0.lowercased() == "content-length" }
            if !te.isEmpty && !cl.isEmpty || cl.count > 1 { return nil }
            let start = i
            if let last = te.last {
                guard last.1.lowercased().hasSuffix("chunked") else { return nil }
                while true {
                    guard let sizeLine = line(), let size = Int(sizeLine.split(separator: ";").first ?? "", radix: 16) else { return nil }
                    if size == 0 {
                        while true { guard let t = line() else { return nil }; if t.isEmpty { break } }
                        break
                    }
                    guard i + size + 2 <= bytes.count, bytes[i + size] == 13, bytes[i + size + 1] == 10 else { return nil }
                    i += size + 2
                }
            } else if let c = cl.first {
                guard let n = Int(c.1), n >= 0, i + n <= bytes.count else { return nil }
                i += n
            }
            out.append(ForwardedRequest(requestLine: requestLine, fields: fields, rawBody: Array(bytes[start..<i])))
        }
        return out
    }
}

final class SmugglingTests: XCTestCase {
    struct State {
        var server: PorticoServer
        var relay: RecordingRelay
    }

    static var relay: RecordingRelay?

    static let shared = SharedFixture<State> { fx in
        let echo = try fx.echo("smuggle")
        let relay = try RecordingRelay(to: echo.port)
        SmugglingTests.relay = relay
        let m = try fx.dir.write("smuggle.yaml", Manifest.join([
            Manifest.service("svc-smuggle", endpoints: [relay.address]),
            Manifest.ingress("smuggle", rules: [.init(host: "s.test", [.init("/", "Prefix", "svc-smuggle")])]),
        ]))
        return State(server: try fx.serve([m], ["--client-header-timeout", "2s"]), relay: relay)
    }

    override class func tearDown() {
        shared.stop()
        relay?.stop()
        relay = nil
        super.tearDown()
    }

    private let host = "Host: s.test\r\n"

    /// The proxy answers `bytes` itself with exactly `statusLine`, `Connection: close` and the
    /// reason in the body, closes the connection, and the backend receives nothing.
    private func assertRefused(_ statusLine: String, _ reason: String, _ bytes: String, _ why: String,
                               file: StaticString = #filePath, line: UInt = #line) throws {
        let st = try Self.shared.get()
        let mark = st.relay.mark
        let c = try RawConversation(port: st.server.httpPort)
        c.send(bytes)
        let t = c.read(idle: 5, limit: 10)
        let body = reason + "\n"
        let expected = "\(statusLine)\r\nServer: portico\r\nContent-Type: text/plain; charset=utf-8\r\n"
            + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
        XCTAssertEqual(t.withoutDate, expected, why, file: file, line: line)
        XCTAssertTrue(t.closed, "\(why): the connection is closed", file: file, line: line)
        Thread.sleep(forTimeInterval: 0.1)
        XCTAssertEqual(String(decoding: st.relay.bytes(since: mark), as: UTF8.self), "", "\(why): nothing reached the backend",
                       file: file, line: line)
        XCTAssertTrue(st.server.process.isRunning, file: file, line: line)
    }

    /// The proxy forwards `bytes` as exactly `count` well-formed requests (checked on the bytes the
    /// backend received), each answered 200 by the echo backend. Returns them.
    @discardableResult
    private func assertForwarded(_ bytes: String, count: Int = 1, _ why: String,
                                 file: StaticString = #filePath, line: UInt = #line) throws -> [ForwardedRequest] {
        let st = try Self.shared.get()
        let mark = st.relay.mark
        let c = try RawClient(port: st.server.httpPort, timeout: 5)
        try c.send(bytes)
        var replies: [EchoReply] = []
        for _ in 0..<count {
            let r = try c.readResponse()
            XCTAssertEqual(r.status, 200, "\(why): \(r.rawHead)\(r.bodyText)", file: file, line: line)
            replies.append(try EchoReply(r.body))
        }
        let received = st.relay.bytes(since: mark)
        guard let requests = ForwardedRequest.parseAll(received) else {
            XCTFail("\(why): the backend received malformed bytes: \(String(decoding: received, as: UTF8.self).debugDescription)",
                    file: file, line: line)
            return []
        }
        XCTAssertEqual(requests.count, count, "\(why): requests the backend received: \(requests.map(\.requestLine))", file: file, line: line)
        for (r, e) in zip(requests, replies) {
            XCTAssertEqual(r.values("host"), ["s.test"], "\(why): one Host", file: file, line: line)
            let framed = r.values("content-length").count + r.values("transfer-encoding").count
            XCTAssertLessThanOrEqual(framed, 1, "\(why): one framing field", file: file, line: line)
            XCTAssertEqual(e.method + " " + e.path, r.requestLine.split(separator: " ").prefix(2).joined(separator: " ").components(separatedBy: "?")[0],
                           "\(why): the echo backend answered the request that was recorded", file: file, line: line)
        }
        return requests
    }

    // MARK: CL.TE and TE.CL

    func testTransferEncodingBeforeContentLengthIsRefused() throws {
        // BadRequestTests sends CL then TE; the other order and an obfuscated TE must fail the same.
        try assertRefused("HTTP/1.1 400 Bad Request", "both Content-Length and Transfer-Encoding",
                          "POST / HTTP/1.1\r\n\(host)Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
                          "TE.CL (RFC 9112 §6.1)")
        try assertRefused("HTTP/1.1 400 Bad Request", "both Content-Length and Transfer-Encoding",
                          "POST / HTTP/1.1\r\n\(host)Content-Length: 6\r\nTransfer-Encoding: CHUNKED \r\n\r\n0\r\n\r\nG",
                          "CL.TE with an upper-case, space-padded TE")
        try assertRefused("HTTP/1.1 400 Bad Request", "both Content-Length and Transfer-Encoding",
                          "POST / HTTP/1.1\r\n\(host)Content-Length: 0\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                          "CL with TE split over two field lines")
    }

    // MARK: TE.TE: obfuscated Transfer-Encoding

    func testTransferEncodingIsCaseInsensitiveAndTrimmed() throws {
        // RFC 9112 §7: transfer-coding names are case-insensitive; OWS around a value is not part of it.
        for (value, why) in [("ChUnKeD", "mixed case"), ("\tchunked", "a leading tab"), ("chunked \t", "trailing SP and HTAB")] {
            let r = try assertForwarded("POST /te HTTP/1.1\r\n\(host)Transfer-Encoding: \(value)\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "TE \(why)")
            XCTAssertEqual(r.first?.values("transfer-encoding"), ["chunked"], why)
            XCTAssertEqual(r.first.map { String(decoding: $0.rawBody, as: UTF8.self) }, "5\r\nhello\r\n0\r\n\r\n", "\(why): the chunked body, exactly")
        }
    }

    func testObfuscatedTransferEncodingsAreRefused() throws {
        let refused: [(String, String, String)] = [
            ("Transfer-Encoding : chunked\r\n", "whitespace between header name and colon", "SP before the colon"),
            ("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "chunked applied more than once", "duplicated field lines"),
            ("Transfer-Encoding: chunked, chunked\r\n", "chunked applied more than once", "chunked twice in a list"),
            ("Transfer-Encoding: chunked, identity\r\n", "chunked is not the final transfer coding", "chunked, identity"),
            ("Transfer-Encoding: identity\r\n", "chunked is not the final transfer coding", "identity alone"),
            ("Transfer-Encoding: xchunked\r\n", "chunked is not the final transfer coding", "xchunked"),
            ("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n", "chunked is not the final transfer coding",
             "a second field line after chunked"),
            ("Transfer-Encoding: \r\n", "chunked is not the final transfer coding", "an empty value"),
            ("Transfer-Encoding: ,\r\n", "chunked is not the final transfer coding", "an empty list"),
            ("Transfer-Encoding:\r\n chunked\r\n", "obsolete line folding is not allowed", "the value on an obs-fold line"),
            ("Transfer-Encoding:\u{B}chunked\r\n", "invalid character in header value", "a vertical tab"),
            ("Transfer-Encoding: \"chunked\"\r\n", "invalid character in header value", "a quoted coding"),
            ("Transfer-Encoding: chunked;q=1\r\n", "chunked is not the final transfer coding", "chunked with a parameter"),
        ]
        for (field, reason, why) in refused {
            try assertRefused("HTTP/1.1 400 Bad Request", reason, "POST / HTTP/1.1\r\n\(host)\(field)\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\(host)\r\n",
                              "TE.TE: \(why) (RFC 9112 §6.3)")
        }
        try assertRefused("HTTP/1.1 400 Bad Request", "Transfer-Encoding in an HTTP/1.0 request",
                          "POST / HTTP/1.0\r\n\(host)Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "TE in HTTP/1.0 (RFC 9112 §6.1)")
    }

    func testTransferCodingsBeforeChunkedAreForwarded() throws {
        // gzip then chunked, in one list or over two field lines (RFC 9110 §5.3 combines them): the
        // proxy does not decode gzip, so the backend must be told about it, not just "chunked".
        for (fields, why) in [("Transfer-Encoding: gzip, chunked\r\n", "one line"),
                              ("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", "two field lines"),
                              ("Transfer-Encoding: gzip,\t ChUnKeD\r\n", "chunked in mixed case, re-sent lower-case")] {
            let r = try assertForwarded("POST /gz HTTP/1.1\r\n\(host)\(fields)\r\n3\r\ngz1\r\n0\r\n\r\n", "gzip, chunked on \(why)")
            XCTAssertEqual(r.first?.values("transfer-encoding"), ["gzip, chunked"], why)
            XCTAssertEqual(r.first.map { String(decoding: $0.rawBody, as: UTF8.self) }, "3\r\ngz1\r\n0\r\n\r\n", why)
        }
    }

    // MARK: Content-Length

    func testContentLengthVariantsRefused() throws {
        // BadRequestTests covers "5a", "-1", "+5", "0x10", "" and "5, 6".
        for (value, why) in [("-0", "a signed zero"), ("1 0", "a space inside the digits"), ("5,", "an empty list element"),
                             (", 5", "a leading empty element"), ("99999999999999999999999", "more than 64 bits"),
                             ("٥", "a non-ASCII digit")] {
            try assertRefused("HTTP/1.1 400 Bad Request", "invalid Content-Length",
                              "POST / HTTP/1.1\r\n\(host)Content-Length: \(value)\r\n\r\nhelloGET /smuggled HTTP/1.1\r\n\(host)\r\n",
                              "Content-Length \(why) (RFC 9110 §8.6)")
        }
        try assertRefused("HTTP/1.1 400 Bad Request", "invalid character in header value",
                          "POST / HTTP/1.1\r\n\(host)Content-Length: 5\u{0}\r\n\r\nhello", "Content-Length with a NUL after the digits")
        try assertRefused("HTTP/1.1 400 Bad Request", "conflicting Content-Length values",
                          "POST / HTTP/1.1\r\n\(host)Content-Length: 5\r\nContent-Length: 5, 6\r\n\r\nhello!",
                          "a list that disagrees with another line")
    }

    func testEquivalentContentLengthsAreForwardedAsOne() throws {
        // RFC 9112 §6.3: identical values in a list or repeated lines may be accepted as one;
        // leading zeros are still the same decimal. The backend sees one Content-Length: 5.
        for (fields, why) in [("Content-Length: 5, 5\r\n", "5, 5"), ("Content-Length: 5\r\nContent-Length: 5\r\n", "two lines of 5"),
                              ("Content-Length: 0005\r\n", "leading zeros")] {
            let r = try assertForwarded("POST /cl HTTP/1.1\r\n\(host)\(fields)\r\nhelloGET /next HTTP/1.1\r\n\(host)\r\n",
                                        count: 2, "Content-Length \(why)")
            XCTAssertEqual(r.first?.values("content-length"), ["5"], why)
            XCTAssertEqual(r.first.map { String(decoding: $0.rawBody, as: UTF8.self) }, "hello", why)
            XCTAssertEqual(r.last?.requestLine, "GET /next HTTP/1.1", "\(why): the pipelined request follows the 5 bytes")
        }
    }

    // MARK: Chunked framing (RFC 9112 §7.1)

    func testChunkFramingAttacksAreRefused() throws {
        let te = "POST / HTTP/1.1\r\n\(host)Transfer-Encoding: chunked\r\n\r\n"
        try assertRefused("HTTP/1.1 400 Bad Request", "chunk size too large",
                          te + "10000000000000005\r\nhello\r\n0\r\n\r\n", "a chunk size that overflows 64 bits")
        try assertRefused("HTTP/1.1 400 Bad Request", "chunk size too large",
                          te + "FFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n", "a chunk size of 2^64-1")
        try assertRefused("HTTP/1.1 400 Bad Request", "chunk extension too long",
                          te + "5;" + String(repeating: "a", count: 5000) + "\r\nhello\r\n0\r\n\r\n", "a 5000-byte chunk extension")
        try assertRefused("HTTP/1.1 400 Bad Request", "invalid chunked framing", te + "5\nhello\r\n0\r\n\r\n", "a bare LF after the size")
        try assertRefused("HTTP/1.1 400 Bad Request", "invalid chunked framing", te + "5\r\nhello\n0\r\n\r\n", "a bare LF after the data")
        try assertRefused("HTTP/1.1 400 Bad Request", "invalid chunk size", te + "-5\r\nhello\r\n0\r\n\r\n", "a signed size")
        try assertRefused("HTTP/1.1 400 Bad Request", "invalid chunk size", te + "0x5\r\nhello\r\n0\r\n\r\n", "a 0x size")
        try assertRefused("HTTP/1.1 400 Bad Request", "invalid chunked framing", te + "3\r\nhello\r\n0\r\n\r\n",
                          "data longer than its chunk size")
        try assertRefused("HTTP/1.1 400 Bad Request", "invalid trailer section", te + "0\r\nGET /x HTTP/1.1\r\n\r\n",
                          "a request line in the trailer section")
    }

    func testChunkExtensionsWithinLimitAreForwardedAsSent() throws {
        let r = try assertForwarded("POST /ext HTTP/1.1\r\n\(host)Transfer-Encoding: chunked\r\n\r\n5;a=b;q=\"x;y\"\r\nhello\r\n0\r\n\r\n",
                                    "chunk extensions")
        XCTAssertEqual(r.first.map { String(decoding: $0.rawBody, as: UTF8.self) }, "5;a=b;q=\"x;y\"\r\nhello\r\n0\r\n\r\n")
    }

    // MARK: Field syntax: NUL, CR, LF, bare LF, obs-fold

    func testControlBytesInFieldNamesAndValuesAreRefused() throws {
        // BadRequestTests covers a bare CR and a NUL in a value.
        try assertRefused("HTTP/1.1 400 Bad Request", "invalid character in header name",
                          "GET / HTTP/1.1\r\n\(host)X-A\u{0}b: 1\r\n\r\n", "NUL in a field name")
        try assertRefused("HTTP/1.1 400 Bad Request", "bare CR in message",
                          "GET / HTTP/1.1\r\n\(host)X-A\rb: 1\r\n\r\n", "CR in a field name")
        try assertRefused("HTTP/1.1 400 Bad Request", "bare CR in message",
                          "GET / HTTP/1.1\r\n\(host)X-A\nTransfer-Encoding: chunked\r\n\r\n", "LF in a field name")
        try assertRefused("HTTP/1.1 400 Bad Request", "bare CR in message",
                          "GET / HTTP/1.1\r\n\(host)X-A: a\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "LF inside a field value")
        try assertRefused("HTTP/1.1 400 Bad Request", "invalid character in header value",
                          "GET / HTTP/1.1\r\n\(host)X-A: a\u{7F}\r\n\r\n", "DEL in a field value")
    }

    func testBareLineFeedsAreRefused() throws {
        // RFC 9112 §2.2 lets a recipient accept a bare LF; a proxy must not, since the backend may not.
        try assertRefused("HTTP/1.1 400 Bad Request", "bare CR in message", "GET / HTTP/1.1\nHost: s.test\n\n", "LF-only lines")
        try assertRefused("HTTP/1.1 400 Bad Request", "bare CR in message", "GET / HTTP/1.1\r\n\(host)\n", "the head ended by a bare LF")
        try assertRefused("HTTP/1.1 400 Bad Request", "bare CR in message",
                          "GET / HTTP/1.1\r\n\(host)Content-Length: 0\n\r\n", "a field line ended by a bare LF")
    }

    func testObsFoldWithTabIsRefused() throws {
        try assertRefused("HTTP/1.1 400 Bad Request", "obsolete line folding is not allowed",
                          "GET / HTTP/1.1\r\n\(host)X-A: a\r\n\tContent-Length: 5\r\n\r\nhello", "obs-fold with HTAB (RFC 9112 §5.2)")
    }

    // MARK: Host and absolute-form (RFC 9112 §3.2)

    func testHostAndAbsoluteFormDisagreementsAreRefused() throws {
        try assertRefused("HTTP/1.1 400 Bad Request", "Host header disagrees with the request target",
                          "GET http://s.test:80/ HTTP/1.1\r\n\(host)\r\n", "authority with a port, Host without")
        try assertRefused("HTTP/1.1 400 Bad Request", "Host header disagrees with the request target",
                          "GET https://evil.test/p HTTP/1.1\r\n\(host)\r\n", "https absolute-form naming another host")
        try assertRefused("HTTP/1.1 400 Bad Request", "missing Host header",
                          "GET http://s.test/ HTTP/1.1\r\n\r\n", "absolute-form without Host in HTTP/1.1")
        try assertRefused("HTTP/1.1 400 Bad Request", "more than one Host header",
                          "GET / HTTP/1.1\r\n\(host)\(host)\r\n", "the same Host twice")
        try assertRefused("HTTP/1.1 400 Bad Request", "invalid Host header",
                          "GET / HTTP/1.1\r\nHost: \r\n\r\n", "an empty Host")
        try assertRefused("HTTP/1.1 400 Bad Request", "invalid Host header",
                          "GET / HTTP/1.1\r\nHost: s.test, evil.test\r\n\r\n", "a list in Host")
        try assertRefused("HTTP/1.1 400 Bad Request", "invalid Host header",
                          "GET / HTTP/1.1\r\nHost: s.test@evil.test\r\n\r\n", "userinfo in Host")
    }

    func testAbsoluteFormMatchingHostIsForwardedInOriginForm() throws {
        let r = try assertForwarded("GET http://s.test/p?q=1 HTTP/1.1\r\n\(host)\r\n", "absolute-form (RFC 9112 §3.2.2)")
        XCTAssertEqual(r.first?.requestLine, "GET /p?q=1 HTTP/1.1", "origin-form towards the backend")
    }

    // MARK: Pipelining behind a rejected request

    func testNothingPipelinedBehindARejectedRequestIsForwarded() throws {
        try assertRefused("HTTP/1.1 400 Bad Request", "conflicting Content-Length values",
                          "POST / HTTP/1.1\r\n\(host)Content-Length: 5\r\nContent-Length: 6\r\n\r\nhelloGET /smuggled HTTP/1.1\r\n\(host)\r\n",
                          "a pipelined request behind conflicting lengths")
        try assertRefused("HTTP/1.1 400 Bad Request", "invalid chunk size",
                          "POST / HTTP/1.1\r\n\(host)Transfer-Encoding: chunked\r\n\r\nZ\r\nGET /smuggled HTTP/1.1\r\n\(host)\r\n\r\n",
                          "a pipelined request behind a bad chunk size")
    }

    func testGoodThenBadThenGoodStopsAtTheBadOne() throws {
        let st = try Self.shared.get()
        let mark = st.relay.mark
        let c = try RawClient(port: st.server.httpPort, timeout: 5)
        try c.send("GET /a HTTP/1.1\r\n\(host)\r\nGET /b HTTP/1.1\r\n\(host)Host: x\r\n\r\nGET /c HTTP/1.1\r\n\(host)\r\n")
        let a = try c.readResponse()
        XCTAssertEqual(a.status, 200)
        XCTAssertEqual(try EchoReply(a.body).path, "/a")
        let b = try c.readResponse()
        XCTAssertEqual(b.status, 400, b.rawHead)
        XCTAssertEqual(b.header("connection"), "close")
        XCTAssertEqual(b.bodyText, "more than one Host header\n")
        XCTAssertTrue(c.isClosedByPeer(within: 5), "closed after the 400: /c is never read")
        let requests = ForwardedRequest.parseAll(st.relay.bytes(since: mark))
        XCTAssertEqual(requests?.map(\.requestLine), ["GET /a HTTP/1.1"], "the backend saw /a only")
    }

    func testABodyIsNeverReadAsARequest() throws {
        // A GET with a Content-Length body that looks like a request: it is body, forwarded as such.
        let smuggled = "GET /smuggled HTTP/1.1\r\n\(host)\r\n"
        let r = try assertForwarded("GET /a HTTP/1.1\r\n\(host)Content-Length: \(smuggled.utf8.count)\r\n\r\n\(smuggled)GET /b HTTP/1.1\r\n\(host)\r\n",
                                    count: 2, "a request-shaped body")
        XCTAssertEqual(r.map(\.requestLine), ["GET /a HTTP/1.1", "GET /b HTTP/1.1"])
        XCTAssertEqual(r.first.map { String(decoding: $0.rawBody, as: UTF8.self) }, smuggled)
    }

    func testConnectionOptionsCannotStripFraming() throws {
        // RFC 9110 §7.6.1: a Connection option names hop-by-hop fields, but Content-Length and Host
        // define the message and are never removed.
        let r = try assertForwarded("POST /c HTTP/1.1\r\n\(host)Connection: Content-Length, Host\r\nContent-Length: 5\r\n\r\nhello",
                                    "Connection: Content-Length, Host")
        XCTAssertEqual(r.first?.values("content-length"), ["5"])
        XCTAssertEqual(r.first.map { String(decoding: $0.rawBody, as: UTF8.self) }, "hello")
    }
}
