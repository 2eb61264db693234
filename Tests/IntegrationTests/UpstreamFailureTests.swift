// When the backend is missing, down, slow or broken: 503, 502, 504, 502, each a short response
// the proxy writes itself; and retries on another endpoint after a connect failure.

import Foundation
import XCTest

final class UpstreamFailureTests: XCTestCase {
    struct State {
        var server: PorticoServer
        var closedPort: UInt16
    }

    static let shared = SharedFixture<State> { fx in
        let echo = try fx.echo("up")
        let closedPort = try freePort()
        let garbage = try fx.scripted(.exact(Array("garbage\r\n\r\n".utf8), afterFirstBytes: true, linger: 0))
        // Accepts and closes without a byte: a request written to it is cut off before any
        // response byte (what a pod killed mid-request looks like).
        let hangup = try fx.scripted(.exact([], afterFirstBytes: true, linger: 0))
        let m = try fx.dir.write("upstreams.yaml", Manifest.join([
            Manifest.service("svc-up", endpoints: [echo.address]),
            Manifest.service("svc-empty", endpoints: []),
            Manifest.service("svc-down", endpoints: ["127.0.0.1:\(closedPort)"]),
            Manifest.service("svc-garbage", endpoints: ["127.0.0.1:\(garbage.port)"]),
            // One dead endpoint and one live one: retries must hide the dead one.
            Manifest.service("svc-half", endpoints: ["127.0.0.1:\(closedPort)", echo.address]),
            Manifest.service("svc-hangup", endpoints: ["127.0.0.1:\(hangup.port)", echo.address]),
            Manifest.ingress("failures", rules: [
                .init(host: "up.test", [.init("/", "Prefix", "svc-up")]),
                .init(host: "empty.test", [.init("/", "Prefix", "svc-empty")]),
                .init(host: "down.test", [.init("/", "Prefix", "svc-down")]),
                .init(host: "garbage.test", [.init("/", "Prefix", "svc-garbage")]),
                .init(host: "half.test", [.init("/", "Prefix", "svc-half")]),
                .init(host: "hangup.test", [.init("/", "Prefix", "svc-hangup")]),
            ]),
        ]))
        // Service without an Endpoints object at all.
        let orphan = try fx.dir.write("orphan.yaml", """
            apiVersion: v1
            kind: Service
            metadata:
              name: svc-orphan
            spec:
              ports:
                - name: http
                  port: 80
            ---
            \(Manifest.ingress("orphan", rules: [.init(host: "orphan.test", [.init("/", "Prefix", "svc-orphan")])]))
            """)
        return State(server: try fx.serve([m, orphan], ["--upstream-timeout", "1s", "--upstream-connect-timeout", "1s"]),
                     closedPort: closedPort)
    }

    override class func tearDown() {
        shared.stop()
        super.tearDown()
    }

    private func assertProxyAnswer(_ r: RawResponse, _ status: Int, _ why: String,
                                   file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, status, "\(why)\n\(r.rawHead)\(r.bodyText)", file: file, line: line)
        XCTAssertNotNil(r.header("date"), "\(why): Date", file: file, line: line)
        XCTAssertNotNil(r.header("server"), "\(why): Server", file: file, line: line)
        XCTAssertEqual(r.header("content-length"), String(r.body.count), "\(why): Content-Length", file: file, line: line)
        XCTAssertFalse(r.body.isEmpty, "\(why): a short body naming the reason", file: file, line: line)
    }

    private func get(_ host: String, _ extra: String = "") throws -> RawResponse {
        let st = try Self.shared.get()
        return try RawClient.exchange(port: st.server.httpPort, "GET / HTTP/1.1\r\nHost: \(host)\r\n\(extra)\r\n", timeout: 10)
    }

    func testLiveBackendAnswers() throws {
        XCTAssertEqual(try get("up.test").status, 200)
    }

    func testNoEndpointsIs503() throws {
        assertProxyAnswer(try get("empty.test"), 503, "Endpoints with no addresses")
    }

    func testServiceWithoutEndpointsObjectIs503() throws {
        assertProxyAnswer(try get("orphan.test"), 503, "Service with no Endpoints object")
    }

    func testConnectRefusedIs502() throws {
        assertProxyAnswer(try get("down.test"), 502, "nothing listens on the endpoint")
    }

    func testSlowBackendIs504() throws {
        let t0 = Date()
        let r = try get("up.test", "X-Echo-Delay-Ms: 3000\r\n")
        let waited = Date().timeIntervalSince(t0)
        assertProxyAnswer(r, 504, "backend slower than --upstream-timeout 1s")
        XCTAssertGreaterThan(waited, 0.8)
        XCTAssertLessThan(waited, 2.9, "the proxy gave up before the backend answered")
    }

    func testGarbageFromBackendIs502() throws {
        assertProxyAnswer(try get("garbage.test"), 502, "backend answered bytes that are not HTTP")
    }

    func testRetriesHideADeadEndpoint() throws {
        let st = try Self.shared.get()
        let url = st.server.base + "/retry"
        var args = ["-H", "Host: half.test", "-w", "%{http_code}\n"]
        for _ in 0..<20 { args += ["-o", "/dev/null", url] }
        let r = try Curl.run(args, maxTime: 60)
        let codes = r.bodyText.split(separator: "\n").map(String.init)
        XCTAssertEqual(codes.count, 20, r.stderr)
        XCTAssertEqual(codes.filter { $0 != "200" }, [], "every GET succeeds on the live endpoint")
    }

    /// Regression: a retry after the first try had sent the whole request never wrote the
    /// request again (the exchange still counted it as sent) and hung until the upstream timeout.
    func testRetryAfterTheRequestWasSentAnswers() throws {
        let st = try Self.shared.get()
        let url = st.server.base + "/hangup"
        var args = ["-H", "Host: hangup.test", "-w", "%{http_code}\n"]
        for _ in 0..<10 { args += ["-o", "/dev/null", url] }
        let started = Date()
        let r = try Curl.run(args, maxTime: 30)
        let codes = r.bodyText.split(separator: "\n").map(String.init)
        XCTAssertEqual(codes.count, 10, r.stderr)
        XCTAssertEqual(codes.filter { $0 != "200" }, [], "each GET cut off by one endpoint is answered by the other")
        XCTAssertLessThan(Date().timeIntervalSince(started), 10, "no retry waited for a timeout")
    }

    func testConnectFailureIsLoggedWithTheEndpoint() throws {
        let st = try Self.shared.get()
        _ = try? get("down.test")
        let endpoint = "127.0.0.1:\(st.closedPort)"
        XCTAssertTrue(waitUntil(timeout: 5) { st.server.process.stderr.contains(endpoint) },
                      "the log names the endpoint \(endpoint):\n\(st.server.process.stderrTail())")
    }

    func testDeadEndpointIsEjected() throws {
        let st = try Self.shared.get()
        let url = st.server.base + "/eject"
        var args = ["-H", "Host: half.test"]
        for _ in 0..<12 { args += ["-o", "/dev/null", url] }
        _ = try Curl.run(args, maxTime: 60)
        let ejections = try st.server.metric("portico_endpoint_ejections_total") ?? 0
        XCTAssertGreaterThanOrEqual(ejections, 1, "--eject-after 3 (default): the refusing endpoint is ejected")
    }

    func testProxyKeepsServingAfterFailures() throws {
        _ = try get("down.test")
        _ = try get("garbage.test")
        XCTAssertEqual(try get("up.test").status, 200)
        let st = try Self.shared.get()
        XCTAssertTrue(st.server.process.isRunning)
    }
}
