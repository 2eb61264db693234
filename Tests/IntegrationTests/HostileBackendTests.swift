// Backends that answer with bytes no honest server sends: malformed status lines, ambiguous
// framing, injected CR/LF, oversized heads, floods of 1xx, bodies longer than announced, two
// responses in one write, an answer before the request is sent. The client must get a clean 502
// or a cleanly closed connection, never bytes of a second response (RFC 9112 §6.3, §4; RFC 9110
// §15.2), and the next request, on the same or a new connection, must work.

import Foundation
import Glibc
import XCTest

// MARK: - Raw sockets shared by the hostile-input suites

/// Writes all of `bytes` (false when the peer is gone).
@discardableResult
func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var off = 0
    while off < bytes.count {
        let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return false }
        off += n
    }
    return true
}

/// What a client saw on one connection: every byte until the peer closed or went quiet.
struct RawTranscript {
    var bytes: [UInt8]
    /// The peer closed (EOF or reset) rather than going quiet for the idle time.
    var closed: Bool
    var text: String { String(decoding: bytes, as: UTF8.self) }
    /// The text without the Date field line, which changes every second.
    var withoutDate: String {
        // (In Swift "\r\n" is one Character: split on the string, not on "\n".)
        text.components(separatedBy: "\r\n").filter { !$0.hasPrefix("Date: ") }.joined(separator: "\r\n")
    }
}

/// A client connection that sends exact bytes and records exact bytes.
final class RawConversation {
    let fd: Int32

    init(port: UInt16) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket: errno \(errno)") }
        var addr = loopback(port: port)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { close(fd); throw HarnessError("connect 127.0.0.1:\(port): errno \(errno)") }
    }

    deinit { close(fd) }

    @discardableResult
    func send(_ text: String) -> Bool { sendAll(fd, Array(text.utf8)) }
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool { sendAll(fd, bytes) }

    /// Reads until the peer closes, `idle` seconds pass without a byte, or `until` returns true
    /// for what was read so far; never longer than `limit` seconds in all.
    func read(idle: TimeInterval = 1.5, limit: TimeInterval = 10, until: (([UInt8]) -> Bool)? = nil) -> RawTranscript {
        setSocketTimeouts(fd, idle)
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        let deadline = Date().addingTimeInterval(limit)
        while Date() < deadline {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                out += chunk[0..<n]
                if let u = until, u(out) { return RawTranscript(bytes: out, closed: false) }
                continue
            }
            if n == 0 { return RawTranscript(bytes: out, closed: true) }
            if errno == EINTR { continue }
            if errno == ECONNRESET { return RawTranscript(bytes: out, closed: true) }
            break  // timeout: quiet
        }
        return RawTranscript(bytes: out, closed: false)
    }

    /// Reads one response with a Content-Length body (what the proxy writes itself and what these
    /// backends send), then returns without waiting for more.
    func readOneResponse(limit: TimeInterval = 10) -> RawTranscript {
        read(idle: limit, limit: limit) { bytes in
            guard let end = bytes.firstRange(of: Array("\r\n\r\n".utf8))?.upperBound else { return false }
            let head = String(decoding: bytes[0..<end], as: UTF8.self).lowercased()
            guard let r = head.range(of: "\r\ncontent-length: ") else { return true }
            let n = Int(head[r.upperBound...].prefix { $0.isNumber }) ?? 0
            return bytes.count >= end + n
        }
    }
}

// MARK: - The suite

final class HostileBackendTests: XCTestCase {
    struct State {
        var server: PorticoServer
        var backends: [String: ScriptedBackend]
    }

    static let hints = "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"

    /// host → the exact bytes its backend answers with.
    static let scripts: [(host: String, reply: [UInt8], beforeRequest: Bool)] = {
        func s(_ host: String, _ reply: String, before: Bool = false) -> (String, [UInt8], Bool) { (host, Array(reply.utf8), before) }
        return [
            s("status-digits.test", "HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok"),
            s("status-version.test", "HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            s("status-junk.test", "HELLO\r\n\r\n"),
            s("status-lf.test", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok"),
            s("status-600.test", "HTTP/1.1 600 Nope\r\nContent-Length: 2\r\n\r\nok"),
            s("cl-te.test", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            s("te-cl.test", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"),
            s("cl-differ.test", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nokk"),
            s("te-http10.test", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            s("cr-injected.test", "HTTP/1.1 200 OK\r\nX-A: a\rSet-Cookie: evil=1\r\nContent-Length: 2\r\n\r\nok"),
            s("lf-injected.test", "HTTP/1.1 200 OK\r\nX-A: a\nSet-Cookie: evil=1\r\nContent-Length: 2\r\n\r\nok"),
            s("nul-injected.test", "HTTP/1.1 200 OK\r\nX-A: a\u{0}b\r\nContent-Length: 2\r\n\r\nok"),
            s("obs-fold.test", "HTTP/1.1 200 OK\r\nX-A: a\r\n Set-Cookie: evil=1\r\nContent-Length: 2\r\n\r\nok"),
            s("oversized.test", "HTTP/1.1 200 OK\r\nX-Big: " + String(repeating: "b", count: 70 * 1024) + "\r\nContent-Length: 2\r\n\r\nok"),
            s("unrequested-101.test", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"),
            s("hints-flood.test", String(repeating: hints, count: 1000) + "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate"),
            s("hints-three.test", String(repeating: hints, count: 3) + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            s("longer-body.test", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nextra"),
            s("two-responses.test", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil"),
            s("two-chunked.test", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil"),
            s("bad-chunk.test", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\nZZ\r\nHTTP/1.1 200 OK\r\n\r\n"),
            s("early.test", "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\n\r\nbig", before: true),
            s("gzip-chunked.test", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\ngz1\r\n0\r\n\r\n"),
            s("gzip-close.test", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\ngzipped-bytes"),
        ]
    }()

    static let shared = SharedFixture<State> { fx in
        let echo = try fx.echo("hostile-ok")
        var backends: [String: ScriptedBackend] = [:]
        var docs = [Manifest.service("svc-ok", endpoints: [echo.address])]
        var rules: [Manifest.Rule] = [.init(host: "ok.test", [.init("/", "Prefix", "svc-ok")])]
        for (i, script) in scripts.enumerated() {
            // gzip-close closes after its body: an until-close body ends at EOF.
            let b = try fx.scripted(.exact(script.reply, afterFirstBytes: script.beforeRequest,
                                           linger: script.host == "gzip-close.test" ? 0 : 1))
            backends[script.host] = b
            docs.append(Manifest.service("svc-h\(i)", endpoints: [b.address]))
            rules.append(.init(host: script.host, [.init("/", "Prefix", "svc-h\(i)")]))
        }
        docs.append(Manifest.ingress("hostile", rules: rules))
        let m = try fx.dir.write("hostile.yaml", Manifest.join(docs))
        let server = try fx.serve([m], ["--upstream-timeout", "3s", "--upstream-connect-timeout", "1s"])
        return State(server: server, backends: backends)
    }
    override class func tearDown() {
        shared.stop()
        super.tearDown()
    }

    private func request(_ host: String, _ path: String = "/") -> String { "GET \(path) HTTP/1.1\r\nHost: \(host)\r\n\r\n" }

    /// The 502 the proxy writes itself, exactly (the Date line aside).
    private let badGateway = "HTTP/1.1 502 Bad Gateway\r\nServer: portico\r\nContent-Type: text/plain; charset=utf-8\r\n"
        + "Content-Length: 31\r\n\r\ninvalid response from upstream\n"

    /// The next request works: on a new connection, to a healthy backend.
    private func assertStillServes(_ why: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let st = try Self.shared.get()
        XCTAssertTrue(st.server.process.isRunning, "\(why): proxy still running", file: file, line: line)
        let ok = try RawClient.exchange(port: st.server.httpPort, request("ok.test"))
        XCTAssertEqual(ok.status, 200, "\(why): a new connection is served", file: file, line: line)
        XCTAssertEqual(try EchoReply(ok.body).name, "hostile-ok", file: file, line: line)
    }

    /// Sends one GET for `host` and returns what came back, up to the end of the first response.
    private func exchange(_ host: String) throws -> (RawConversation, RawTranscript) {
        let st = try Self.shared.get()
        let c = try RawConversation(port: st.server.httpPort)
        c.send(request(host))
        return (c, c.readOneResponse())
    }

    func testMalformedStatusLinesAre502() throws {
        for host in ["status-digits.test", "status-version.test", "status-junk.test", "status-lf.test", "status-600.test"] {
            let (c, t) = try exchange(host)
            XCTAssertEqual(t.withoutDate, badGateway, "\(host): \(t.text.debugDescription)")
            // The 502 is the proxy's own answer: the client connection stays usable.
            c.send(request("ok.test"))
            let next = c.readOneResponse()
            XCTAssertTrue(next.text.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(host): same connection serves again: \(next.text.prefix(80))")
            try assertStillServes(host)
        }
    }

    func testAmbiguousFramingIs502() throws {
        // RFC 9112 §6.1: Content-Length with Transfer-Encoding, or Transfer-Encoding in HTTP/1.0,
        // is framing the proxy cannot trust; §6.3: differing Content-Lengths are unrecoverable.
        for host in ["cl-te.test", "te-cl.test", "cl-differ.test", "te-http10.test"] {
            let (_, t) = try exchange(host)
            XCTAssertEqual(t.withoutDate, badGateway, "\(host): \(t.text.debugDescription)")
            try assertStillServes(host)
        }
    }

    func testInjectedLineBreaksAndControlsInFieldsAre502() throws {
        // RFC 9112 §2.2 and RFC 9110 §5.5: a bare CR, a bare LF, a NUL or an obs-fold in a response
        // head would let the backend add fields (Set-Cookie) that the proxy never saw.
        for host in ["cr-injected.test", "lf-injected.test", "nul-injected.test", "obs-fold.test"] {
            let (_, t) = try exchange(host)
            XCTAssertEqual(t.withoutDate, badGateway, "\(host): \(t.text.debugDescription)")
            XCTAssertFalse(t.text.contains("evil"), "\(host): no injected field reaches the client")
            try assertStillServes(host)
        }
    }

    func testOversizedResponseHeadIs502() throws {
        let (_, t) = try exchange("oversized.test")
        XCTAssertEqual(t.withoutDate, badGateway, "a 70 KiB response head: \(t.text.prefix(200).debugDescription)")
        try assertStillServes("oversized head")
    }

    func testUnrequestedSwitchingProtocolsIs502() throws {
        // RFC 9110 §15.2.2: 101 only answers a request that asked for an upgrade.
        let (_, t) = try exchange("unrequested-101.test")
        XCTAssertEqual(t.withoutDate, badGateway, t.text.debugDescription)
        try assertStillServes("unrequested 101")
    }

    func testFloodOfEarlyHintsEndsTheConnection() throws {
        // 1000 × 103 then a 200: the proxy forwards at most a few interim responses and then gives
        // up on the exchange; the client sees only whole 103 heads, never the final response.
        let st = try Self.shared.get()
        let c = try RawConversation(port: st.server.httpPort)
        c.send(request("hints-flood.test"))
        let t = c.read(idle: 5, limit: 10)
        XCTAssertTrue(t.closed, "the proxy closes the connection")
        var rest = Substring(t.text)
        var interim = 0
        while rest.hasPrefix(Self.hints) { rest = rest.dropFirst(Self.hints.count); interim += 1 }
        XCTAssertTrue(rest.isEmpty, "only whole 103 heads, then nothing: \(rest.prefix(200).debugDescription)")
        XCTAssertLessThanOrEqual(interim, 8, "a bounded number of interim responses is forwarded")
        XCTAssertFalse(t.text.contains("late"), "never the final response after the flood")
        try assertStillServes("1xx flood")
    }

    func testAFewEarlyHintsAreForwarded() throws {
        // RFC 9110 §15.2: interim responses are forwarded, then the final one.
        let (_, t) = try exchange("hints-three.test")
        XCTAssertEqual(t.withoutDate, String(repeating: Self.hints, count: 3) + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    }

    /// The backend wrote more than one response's worth: the client gets exactly the first
    /// response, and its next request on the same connection gets a fresh upstream exchange (the
    /// backend's extra bytes are never read as the answer to it).
    private func assertExtraBytesDropped(_ host: String, first: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let st = try Self.shared.get()
        let backend = st.backends[host]!
        let before = backend.connections
        let c = try RawConversation(port: st.server.httpPort)
        c.send(request(host, "/1"))
        let t1 = c.readOneResponse()
        XCTAssertEqual(t1.withoutDate, first, "\(host): the first response, exactly", file: file, line: line)
        c.send(request(host, "/2"))
        let t2 = c.read(idle: 1.5) { $0.count >= first.utf8.count }
        XCTAssertEqual(t2.withoutDate, first, "\(host): the second request gets its own answer, not the extra bytes", file: file, line: line)
        XCTAssertFalse(t1.text.contains("evil") || t2.text.contains("evil") || t2.text.contains("extra"), file: file, line: line)
        XCTAssertEqual(backend.connections - before, 2, "\(host): the connection that sent extra bytes is not reused", file: file, line: line)
        try assertStillServes(host, file: file, line: line)
    }

    func testBodyLongerThanContentLengthIsCutAndTheConnectionDropped() throws {
        try assertExtraBytesDropped("longer-body.test", first: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    }

    func testTwoResponsesInOneWriteGiveOnlyTheFirst() throws {
        try assertExtraBytesDropped("two-responses.test", first: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        try assertExtraBytesDropped("two-chunked.test",
                                    first: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
    }

    func testBrokenChunkedBodyClosesTheClientConnection() throws {
        // The head was already forwarded: the only honest end is to close, without the bad bytes.
        let st = try Self.shared.get()
        let c = try RawConversation(port: st.server.httpPort)
        c.send(request("bad-chunk.test"))
        let t = c.read(idle: 5, limit: 10)
        XCTAssertTrue(t.closed, "closed")
        XCTAssertFalse(t.text.contains("ZZ"), "the malformed chunk is not forwarded: \(t.text.debugDescription)")
        let validPart = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n"
        XCTAssertTrue(validPart.hasPrefix(t.text), "at most the valid part: \(t.text.debugDescription)")
        XCTAssertFalse(t.text.hasSuffix("0\r\n\r\n"), "the body never looks complete to the client")
        try assertStillServes("broken chunked body")
    }

    func testResponseBeforeTheRequestBodyIsSentClosesCleanly() throws {
        // The backend answers after the first bytes; the client is still sending its body. The
        // answer is forwarded with Connection: close and neither connection is reused.
        let st = try Self.shared.get()
        let c = try RawConversation(port: st.server.httpPort)
        c.send("POST /upload HTTP/1.1\r\nHost: early.test\r\nContent-Length: 100000\r\n\r\n" + String(repeating: "x", count: 1000))
        let t = c.read(idle: 3, limit: 10) { String(decoding: $0, as: UTF8.self).hasSuffix("\r\n\r\nbig") }
        XCTAssertEqual(t.withoutDate, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbig", t.text.debugDescription)
        c.send(String(repeating: "y", count: 2000))
        let after = c.read(idle: 5, limit: 10)
        XCTAssertTrue(after.closed, "then the proxy closes the connection")
        XCTAssertTrue(after.bytes.isEmpty, "and sends nothing more: \(after.text.debugDescription)")
        try assertStillServes("early response")
    }

    func testTransferCodingsOfAResponseAreKept() throws {
        // RFC 9112 §6.1: the proxy passes the body through without decoding it, so it must not drop
        // the codings applied to it; otherwise the client reads gzip bytes as the content.
        let (_, t) = try exchange("gzip-chunked.test")
        XCTAssertEqual(t.withoutDate, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\ngz1\r\n0\r\n\r\n",
                       t.text.debugDescription)
        let st = try Self.shared.get()
        let c = try RawConversation(port: st.server.httpPort)
        c.send(request("gzip-close.test"))
        let u = c.read(idle: 5, limit: 10)
        XCTAssertTrue(u.closed, "an until-close body ends with the connection")
        XCTAssertEqual(u.withoutDate, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\ngzipped-bytes",
                       u.text.debugDescription)
    }
}
