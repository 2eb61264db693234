// Connection handling: keep-alive and pipelining towards the client (RFC 9112 §9.3), and the
// per-endpoint keep-alive pool towards the backends.

import Foundation
import XCTest

final class ConnectionTests: XCTestCase {
    struct State {
        var server: PorticoServer
    }

    static let shared = SharedFixture<State> { fx in
        let echo = try fx.echo("k")
        let m = try fx.dir.write("conn.yaml", Manifest.join([
            Manifest.service("svc-k", endpoints: [echo.address]),
            Manifest.ingress("conn", rules: [.init(host: "conn.test", [.init("/", "Prefix", "svc-k")])]),
        ]))
        return State(server: try fx.serve([m]))
    }

    override class func tearDown() {
        shared.stop()
        super.tearDown()
    }

    func testCurlReusesTheClientConnection() throws {
        let st = try Self.shared.get()
        let url = st.server.base + "/ka"
        // Three transfers in one curl: one connect, then "Re-using existing connection".
        let r = try Curl.run(["-H", "Host: conn.test", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null",
                              "-w", "%{http_code} %{num_connects}\n", url, url, url])
        XCTAssertEqual(r.exitCode, 0, r.stderr)
        let lines = r.bodyText.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines, ["200 1", "200 0", "200 0"], "one connection for three requests")
    }

    /// Connections queued while the proxy cannot accept (stopped with SIGSTOP) are all taken
    /// once it runs again, though it accepts only a few per turn of its loop
    /// (`Listener.acceptsPerEvent`) and no new connection arrives to wake it up.
    func testABurstOfQueuedConnectionsIsAllAccepted() throws {
        let st = try Self.shared.get()
        let pid = st.server.process.pid
        var clients: [RawClient] = []
        XCTAssertEqual(kill(pid, SIGSTOP), 0)
        do {
            defer { kill(pid, SIGCONT) }
            for _ in 0..<48 { clients.append(try RawClient(port: st.server.httpPort, timeout: 5)) }
            for (i, c) in clients.enumerated() { try c.send("GET /burst/\(i) HTTP/1.1\r\nHost: conn.test\r\n\r\n") }
        }
        for (i, c) in clients.enumerated() {
            let r = try c.readResponse()
            XCTAssertEqual(r.status, 200, "connection \(i)")
            XCTAssertEqual(try EchoReply(r.body).path, "/burst/\(i)")
        }
    }

    func testRawKeepAliveSeveralRequestsOnOneConnection() throws {
        let st = try Self.shared.get()
        let c = try RawClient(port: st.server.httpPort)
        for i in 0..<5 {
            try c.send("GET /seq/\(i) HTTP/1.1\r\nHost: conn.test\r\n\r\n")
            let r = try c.readResponse()
            XCTAssertEqual(r.status, 200)
            XCTAssertEqual(try EchoReply(r.body).path, "/seq/\(i)")
        }
    }

    func testPipelinedRequestsAnswerInOrder() throws {
        let st = try Self.shared.get()
        let c = try RawClient(port: st.server.httpPort)
        // Two requests in one write, the first delayed by the backend: the answers still come in order.
        try c.send("GET /one HTTP/1.1\r\nHost: conn.test\r\nX-Echo-Delay-Ms: 200\r\n\r\n"
            + "GET /two HTTP/1.1\r\nHost: conn.test\r\n\r\n")
        let r1 = try c.readResponse()
        let r2 = try c.readResponse()
        XCTAssertEqual(r1.status, 200)
        XCTAssertEqual(r2.status, 200)
        XCTAssertEqual(try EchoReply(r1.body).path, "/one")
        XCTAssertEqual(try EchoReply(r2.body).path, "/two")
    }

    func testPipelinedHeadThenGet() throws {
        let st = try Self.shared.get()
        let c = try RawClient(port: st.server.httpPort)
        try c.send("HEAD /h HTTP/1.1\r\nHost: conn.test\r\n\r\nGET /g HTTP/1.1\r\nHost: conn.test\r\n\r\n")
        let head = try c.readResponse(toHEAD: true)
        XCTAssertEqual(head.status, 200)
        let get = try c.readResponse()
        XCTAssertEqual(get.status, 200, "a HEAD response carries no body, so the next response starts right after its head")
        XCTAssertEqual(try EchoReply(get.body).path, "/g")
    }

    func testConnectionCloseIsHonoured() throws {
        let st = try Self.shared.get()
        let c = try RawClient(port: st.server.httpPort)
        try c.send("GET / HTTP/1.1\r\nHost: conn.test\r\nConnection: close\r\n\r\n")
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 200)
        XCTAssertTrue(c.isClosedByPeer(within: 5), "the proxy closes after a Connection: close request")
    }

    func testHTTP10WithoutKeepAliveIsClosed() throws {
        let st = try Self.shared.get()
        let c = try RawClient(port: st.server.httpPort)
        try c.send("GET /old HTTP/1.0\r\nHost: conn.test\r\n\r\n")
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 200)
        XCTAssertTrue(c.isClosedByPeer(within: 5), "HTTP/1.0 defaults to close")
    }

    func testUpstreamConnectionsAreReused() throws {
        let st = try Self.shared.get()
        let before = try st.server.metric("portico_upstream_connections_total", labels: [#"reused="true""#]) ?? 0
        let url = st.server.base + "/pool"
        var args = ["-H", "Host: conn.test"]
        for _ in 0..<10 { args += ["-o", "/dev/null", url] }
        let r = try Curl.run(args)
        XCTAssertEqual(r.exitCode, 0, r.stderr)
        let after = try XCTUnwrap(try st.server.metric("portico_upstream_connections_total", labels: [#"reused="true""#]),
                                  "/metrics has portico_upstream_connections_total{reused=\"true\"}")
        XCTAssertGreaterThanOrEqual(after - before, 5, "most of 10 sequential requests reuse a pooled upstream connection")
    }

    func testBackendClosingItsConnectionDoesNotFailTheNextRequest() throws {
        let st = try Self.shared.get()
        // The backend answers with Connection: close; the pool must not hand that connection out again.
        for i in 0..<6 {
            let h = i % 2 == 0 ? ["X-Echo-Close: 1"] : []
            let r = try Curl.request(st.server.base + "/close/\(i)", host: "conn.test", headers: h)
            XCTAssertEqual(r.status, 200, "request \(i): \(r.stderr)")
        }
    }

    func testIdleKeepAliveConnectionIsClosedAfterTheTimeout() throws {
        // A proxy of its own with a 1s keep-alive timeout.
        let fx = try Fixture()
        defer { fx.stop() }
        let echo = try fx.echo("idle")
        let m = try fx.dir.write("idle.yaml", Manifest.join([
            Manifest.service("svc-idle", endpoints: [echo.address]),
            Manifest.ingress("idle", rules: [.init(host: nil, [.init("/", "Prefix", "svc-idle")])]),
        ]))
        let s = try fx.serve([m], ["--keepalive-timeout", "1s"])
        let c = try RawClient(port: s.httpPort)
        try c.send("GET / HTTP/1.1\r\nHost: any.test\r\n\r\n")
        XCTAssertEqual(try c.readResponse().status, 200)
        let t0 = Date()
        XCTAssertTrue(c.isClosedByPeer(within: 5), "idle keep-alive connection closed")
        XCTAssertLessThan(Date().timeIntervalSince(t0), 4)
    }
}
