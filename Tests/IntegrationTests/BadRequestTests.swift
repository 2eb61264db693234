// Malformed, oversized and slow requests, as raw bytes, each with the status RFC 9112 / RFC 9110
// give it. A proxy that reads a message differently from its backend is a request-smuggling hole
// (RFC 9112 §6.1, §6.3), so every ambiguous framing is refused and the connection closed.

import Foundation
import XCTest

final class BadRequestTests: XCTestCase {
    struct State {
        var server: PorticoServer
    }

    static let shared = SharedFixture<State> { fx in
        let echo = try fx.echo("strict")
        let m = try fx.dir.write("strict.yaml", Manifest.join([
            Manifest.service("svc-strict", endpoints: [echo.address]),
            Manifest.ingress("strict", rules: [.init(host: "bad.test", [.init("/", "Prefix", "svc-strict")])]),
        ]))
        return State(server: try fx.serve([m], ["--client-header-timeout", "1s", "--max-body-size", "10k"]))
    }

    override class func tearDown() {
        shared.stop()
        super.tearDown()
    }

    /// Sends `bytes` on a fresh connection and asserts the status; with `closes`, also that the
    /// proxy closes the connection afterwards (nothing after a rejected message may be read as a
    /// request). Then checks the proxy still serves.
    private func expect(_ status: Int, _ bytes: String, closes: Bool = true, _ why: String,
                        file: StaticString = #filePath, line: UInt = #line) throws {
        let st = try Self.shared.get()
        let c = try RawClient(port: st.server.httpPort, timeout: 5)
        try c.send(bytes)
        let r: RawResponse
        do { r = try c.readResponse() } catch {
            XCTFail("\(why): no response (\(error))", file: file, line: line)
            return
        }
        XCTAssertEqual(r.status, status, "\(why)\n\(r.rawHead)\(r.bodyText)", file: file, line: line)
        if closes {
            XCTAssertTrue(c.isClosedByPeer(within: 5), "\(why): connection closed after \(status)", file: file, line: line)
        }
        XCTAssertTrue(st.server.process.isRunning, "proxy still running", file: file, line: line)
        let ok = try RawClient.exchange(port: st.server.httpPort, "GET / HTTP/1.1\r\nHost: bad.test\r\n\r\n")
        XCTAssertEqual(ok.status, 200, "proxy still serves after: \(why)", file: file, line: line)
    }

    private let host = "Host: bad.test\r\n"

    func testBaselineIsServed() throws {
        try expect(200, "GET / HTTP/1.1\r\n\(host)\r\n", closes: false, "a plain request is fine")
    }

    func testContentLengthWithTransferEncodingIs400() throws {
        try expect(400, "POST / HTTP/1.1\r\n\(host)Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            + "GET /smuggled HTTP/1.1\r\n\(host)\r\n", "CL + TE (RFC 9112 §6.1)")
    }

    func testDifferingContentLengthsAre400() throws {
        try expect(400, "POST / HTTP/1.1\r\n\(host)Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
                   "two differing Content-Length fields (RFC 9112 §6.3)")
        try expect(400, "POST / HTTP/1.1\r\n\(host)Content-Length: 5, 6\r\n\r\nhello!",
                   "a Content-Length list with differing values")
    }

    func testMalformedContentLengthIs400() throws {
        for v in ["5a", "-1", "+5", "0x10", ""] {
            try expect(400, "POST / HTTP/1.1\r\n\(host)Content-Length: \(v)\r\n\r\nhello", "Content-Length: \(v.debugDescription)")
        }
    }

    func testObsFoldIs400() throws {
        try expect(400, "GET / HTTP/1.1\r\n\(host)X-Folded: a\r\n b\r\n\r\n", "obs-fold (RFC 9112 §5.2)")
    }

    func testWhitespaceBeforeColonIs400() throws {
        try expect(400, "GET / HTTP/1.1\r\n\(host)X-Space : 1\r\n\r\n", "whitespace between field name and colon (RFC 9112 §5.1)")
    }

    func testTwoHostsAre400() throws {
        try expect(400, "GET / HTTP/1.1\r\n\(host)Host: other.test\r\n\r\n", "more than one Host (RFC 9112 §3.2)")
    }

    func testMissingHostIs400() throws {
        try expect(400, "GET / HTTP/1.1\r\nUser-Agent: x\r\n\r\n", "HTTP/1.1 request without Host (RFC 9112 §3.2)")
    }

    func testHostDisagreeingWithAbsoluteFormIs400() throws {
        try expect(400, "GET http://other.test/ HTTP/1.1\r\n\(host)\r\n", "Host differs from the absolute-form authority")
    }

    func testBareCRIs400() throws {
        try expect(400, "GET / HTTP/1.1\r\n\(host)X-CR: a\rb\r\n\r\n", "bare CR in a field value (RFC 9112 §2.2)")
    }

    func testInvalidCharactersAre400() throws {
        try expect(400, "GET / HTTP/1.1\r\n\(host)X(Bad): 1\r\n\r\n", "invalid token character in a field name")
        try expect(400, "GET / HTTP/1.1\r\n\(host)X-Nul: a\u{0}b\r\n\r\n", "NUL in a field value (RFC 9110 §5.5)")
    }

    func testMalformedRequestLineIs400() throws {
        try expect(400, "GET  / HTTP/1.1\r\n\(host)\r\n", "two spaces in the request line")
        try expect(400, "NONSENSE\r\n\(host)\r\n", "no target or version")
    }

    func testChunkedNotFinalIs400() throws {
        try expect(400, "POST / HTTP/1.1\r\n\(host)Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
                   "chunked is not the final transfer coding (RFC 9112 §6.3)")
    }

    func testUnknownTransferCodingIs501() throws {
        try expect(501, "POST / HTTP/1.1\r\n\(host)Transfer-Encoding: foo, chunked\r\n\r\n0\r\n\r\n",
                   "unknown transfer coding (RFC 9112 §6.1)")
    }

    func testLongRequestLineIs414() throws {
        let path = "/" + String(repeating: "a", count: 9000)
        try expect(414, "GET \(path) HTTP/1.1\r\n\(host)\r\n", "request line over 8 KiB")
    }

    func testHugeHeaderSectionIs431() throws {
        let big = String(repeating: "b", count: 70 * 1024)
        try expect(431, "GET / HTTP/1.1\r\n\(host)X-Big: \(big)\r\n\r\n", "header section over 64 KiB")
    }

    func testTooManyFieldsIs431() throws {
        let fields = (0..<100).map { "X-F\($0): v\r\n" }.joined()  // plus Host: 101 fields
        try expect(431, "GET / HTTP/1.1\r\n\(host)\(fields)\r\n", "more than 100 header fields")
    }

    func testExactlyOneHundredFieldsIsFine() throws {
        let fields = (0..<99).map { "X-F\($0): v\r\n" }.joined()  // plus Host: 100 fields
        try expect(200, "GET / HTTP/1.1\r\n\(host)\(fields)\r\n", closes: false, "100 header fields is at the limit")
    }

    func testBodyOverLimitIs413() throws {
        try expect(413, "POST / HTTP/1.1\r\n\(host)Content-Length: 20000\r\n\r\n", "Content-Length over --max-body-size 10k")
    }

    func testChunkedBodyOverLimitIs413() throws {
        let chunk = String(repeating: "z", count: 4096)
        let body = (0..<4).map { _ in "1000\r\n\(chunk)\r\n" }.joined() + "0\r\n\r\n"
        try expect(413, "POST / HTTP/1.1\r\n\(host)Transfer-Encoding: chunked\r\n\r\n\(body)", "chunked body over --max-body-size 10k")
    }

    func testBodyUnderLimitIsForwarded() throws {
        let body = String(repeating: "y", count: 10_000)
        try expect(200, "POST / HTTP/1.1\r\n\(host)Content-Length: 10000\r\n\r\n\(body)", closes: false, "10000 bytes fit in 10k")
    }

    func testRejectedConnectionsAreAllClosed() throws {
        let st = try Self.shared.get()
        for bytes in ["GET / HTTP/1.1\r\n\(host)Host: x\r\n\r\n", "GET / HTTP/1.1\r\n\(host)X: a\r\n b\r\n\r\n",
                      "POST / HTTP/1.1\r\n\(host)Transfer-Encoding: foo, chunked\r\n\r\n", "\u{1}\u{2}\u{3}\r\n\r\n"] {
            for _ in 0..<5 {
                let c = try RawClient(port: st.server.httpPort, timeout: 5)
                try c.send(bytes)
                _ = try? c.readResponse()
                c.close()
            }
        }
        let drained = waitUntil(timeout: 5) { (try? st.server.metric("portico_open_connections")) == 0 }
        XCTAssertTrue(drained, "portico_open_connections back to 0: \(String(describing: try? st.server.metric("portico_open_connections")))")
        XCTAssertTrue(st.server.process.isRunning)
    }

    func testSlowHeadersAre408() throws {
        let st = try Self.shared.get()
        let c = try RawClient(port: st.server.httpPort, timeout: 6)
        try c.send("GET / HTTP/1.1\r\n\(host)X-Slow: ")
        let t0 = Date()
        let r = try c.readResponse()
        let waited = Date().timeIntervalSince(t0)
        XCTAssertEqual(r.status, 408, r.rawHead)
        XCTAssertGreaterThan(waited, 0.5, "not before --client-header-timeout 1s")
        XCTAssertLessThan(waited, 4, "soon after --client-header-timeout 1s")
        XCTAssertTrue(c.isClosedByPeer(within: 3))
    }
}
