// What the proxy does to request headers on the way to the backend (RFC 9110 §7.6.1 hop-by-hop
// fields, the de-facto X-Forwarded-* set) and what its own responses look like. The echo backend
// reports the headers it received.

import Foundation
import XCTest

final class ProxyHeaderTests: XCTestCase {
    struct State {
        var server: PorticoServer
    }

    static let shared = SharedFixture<State> { fx in
        let echo = try fx.echo("h")
        let m = try fx.dir.write("headers.yaml", Manifest.join([
            Manifest.service("svc-h", endpoints: [echo.address]),
            Manifest.ingress("headers", rules: [.init(host: "headers.test", [.init("/", "Prefix", "svc-h")])]),
        ]))
        return State(server: try fx.serve([m]))
    }

    override class func tearDown() {
        shared.stop()
        super.tearDown()
    }

    private func echoed(_ request: String) throws -> (RawResponse, EchoReply) {
        let st = try Self.shared.get()
        let r = try RawClient.exchange(port: st.server.httpPort, request)
        XCTAssertEqual(r.status, 200, r.rawHead + r.bodyText)
        return (r, try EchoReply(r.body))
    }

    func testHostIsKeptAndForwardedHeadersAreAdded() throws {
        let st = try Self.shared.get()
        let (_, e) = try echoed("GET /p?q=1 HTTP/1.1\r\nHost: headers.test\r\nUser-Agent: it\r\n\r\n")
        XCTAssertEqual(e.host, "headers.test")
        XCTAssertEqual(e.headers["host"], "headers.test")
        XCTAssertEqual(e.headers["x-forwarded-for"], "127.0.0.1")
        XCTAssertEqual(e.headers["x-forwarded-proto"], "http")
        XCTAssertEqual(e.headers["x-forwarded-host"], "headers.test")
        XCTAssertEqual(e.headers["x-forwarded-port"], String(st.server.httpPort))
        XCTAssertEqual(e.headers["x-real-ip"], "127.0.0.1")
        XCTAssertEqual(e.headers["user-agent"], "it", "end-to-end fields pass unchanged")
        XCTAssertEqual(e.path, "/p")
        XCTAssertEqual(e.query, "q=1")
    }

    func testXForwardedForIsAppendedToTheIncomingOne() throws {
        let (_, e) = try echoed("GET / HTTP/1.1\r\nHost: headers.test\r\nX-Forwarded-For: 203.0.113.7, 198.51.100.1\r\n\r\n")
        XCTAssertEqual(e.headers["x-forwarded-for"], "203.0.113.7, 198.51.100.1, 127.0.0.1")
    }

    func testRequestIdIsKeptWhenSent() throws {
        let (_, e) = try echoed("GET / HTTP/1.1\r\nHost: headers.test\r\nX-Request-Id: abc-123\r\n\r\n")
        XCTAssertEqual(e.headers["x-request-id"], "abc-123")
    }

    func testRequestIdIsGeneratedAndUnique() throws {
        let (_, e1) = try echoed("GET / HTTP/1.1\r\nHost: headers.test\r\n\r\n")
        let (_, e2) = try echoed("GET / HTTP/1.1\r\nHost: headers.test\r\n\r\n")
        let id1 = try XCTUnwrap(e1.headers["x-request-id"], "X-Request-Id generated")
        let id2 = try XCTUnwrap(e2.headers["x-request-id"])
        XCTAssertFalse(id1.isEmpty)
        XCTAssertNotEqual(id1, id2)
    }

    func testHopByHopFieldsAreRemoved() throws {
        let (_, e) = try echoed("GET / HTTP/1.1\r\nHost: headers.test\r\n"
            + "Connection: keep-alive, X-Hop-Custom\r\nX-Hop-Custom: secret\r\nKeep-Alive: timeout=5\r\n"
            + "Proxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-Checksum\r\nX-End-To-End: kept\r\n\r\n")
        for hop in ["x-hop-custom", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"] {
            XCTAssertNil(e.headers[hop], "\(hop) is hop-by-hop and must not be forwarded")
        }
        if let c = e.headers["connection"] {
            XCTAssertFalse(c.lowercased().contains("x-hop-custom"), "Connection as received must not be forwarded: \(c)")
        }
        XCTAssertEqual(e.headers["x-end-to-end"], "kept")
    }

    func testDuplicateFieldsReachTheBackend() throws {
        let (_, e) = try echoed("GET / HTTP/1.1\r\nHost: headers.test\r\nX-Multi: one\r\nX-Multi: two\r\n\r\n")
        XCTAssertEqual(e.headers["x-multi"], "one, two")
    }

    func testResponseFromBackendKeepsItsStatus() throws {
        let st = try Self.shared.get()
        let r = try Curl.request(st.server.base + "/", host: "headers.test", headers: ["X-Echo-Status: 418"])
        XCTAssertEqual(r.status, 418)
    }

    func testProxyGeneratedResponseHasDateServerAndContentLength() throws {
        let st = try Self.shared.get()
        let r = try RawClient.exchange(port: st.server.httpPort, "GET / HTTP/1.1\r\nHost: unknown.test\r\n\r\n")
        XCTAssertEqual(r.status, 404)
        XCTAssertEqual(r.headerCount("date"), 1, r.rawHead)
        XCTAssertEqual(r.headerCount("server"), 1, r.rawHead)
        XCTAssertEqual(r.header("content-length"), String(r.body.count), r.rawHead)
        XCTAssertGreaterThan(r.body.count, 0)
        XCTAssertLessThan(r.body.count, 512, "a short plain body")
        // IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 §5.6.7).
        let date = r.header("date") ?? ""
        XCTAssertNotNil(date.range(of: #"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$"#,
                                   options: .regularExpression), date)
    }
}
