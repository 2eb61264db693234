// Many clients: running out of file descriptors (RLIMIT_NOFILE lowered with prlimit) and
// `--max-connections`. The proxy must keep serving the connections it has, not spin on a listener
// it cannot accept from, log the condition once, and accept again as soon as room is made.

import Foundation
import XCTest

final class ConnectionLimitTests: XCTestCase {
    /// A proxy of its own (one worker, so every connection counts against one limit) in front of
    /// one echo backend.
    private func startProxy(_ fx: Fixture, _ extra: [String] = []) throws -> PorticoServer {
        let echo = try fx.echo("limit")
        let m = try fx.dir.write("limit.yaml", Manifest.join([
            Manifest.service("svc-limit", endpoints: [echo.address]),
            Manifest.ingress("limit", rules: [.init(host: nil, [.init("/", "Prefix", "svc-limit")])]),
        ]))
        let s = try fx.serve([m], ["--workers", "1", "--access-log", "off"] + extra)
        // Warm: the upstream keep-alive connection exists before the descriptors run out.
        XCTAssertEqual(try RawClient.exchange(port: s.httpPort, "GET /warm HTTP/1.1\r\nHost: limit.test\r\n\r\n").status, 200)
        return s
    }

    /// Opens keep-alive connections one by one, each sending a request, until one is not answered
    /// within `wait` (the proxy stopped accepting); returns the answered ones and the one left
    /// waiting in the listen queue.
    private func fillUntilRefused(_ s: PorticoServer, max: Int, wait: TimeInterval = 1.5) throws -> ([RawClient], RawClient?) {
        var served: [RawClient] = []
        for i in 0..<max {
            let c = try RawClient(port: s.httpPort, timeout: wait)
            try c.send("GET /fill/\(i) HTTP/1.1\r\nHost: limit.test\r\n\r\n")
            do {
                let r = try c.readResponse()
                XCTAssertEqual(r.status, 200, "connection \(i)")
                served.append(c)
            } catch {
                return (served, c)
            }
        }
        return (served, nil)
    }

    /// CPU seconds the process uses over `seconds` of wall time.
    private func cpuUsed(pid: Int32, over seconds: TimeInterval) throws -> Double {
        let before = try XCTUnwrap(cpuSeconds(pid: pid))
        Thread.sleep(forTimeInterval: seconds)
        let after = try XCTUnwrap(cpuSeconds(pid: pid))
        return after - before
    }

    func testOutOfDescriptorsKeepsServingDoesNotSpinAndRecovers() throws {
        let fx = try Fixture()
        defer { fx.stop() }
        let s = try startProxy(fx)
        let pid = s.process.pid
        let open = try XCTUnwrap(openDescriptors(pid: pid))
        // Room for about 12 more descriptors: client connections and the odd upstream one.
        try setDescriptorLimit(pid: pid, open + 12)
        let (served, waiting) = try fillUntilRefused(s, max: 40)
        let pending = try XCTUnwrap(waiting, "the proxy ran out of descriptors within 40 connections")
        XCTAssertGreaterThanOrEqual(served.count, 5, "connections accepted before EMFILE")
        // More clients queue up in the listen backlog behind the one already waiting.
        var queued: [RawClient] = [pending]
        for i in 0..<3 {
            let c = try RawClient(port: s.httpPort, timeout: 8)
            try c.send("GET /queued/\(i) HTTP/1.1\r\nHost: limit.test\r\n\r\n")
            queued.append(c)
        }

        // The admin listener (the small HTTP server) is out of descriptors too: its client waits.
        let admin = try RawClient(port: s.adminPort, timeout: 8)
        try admin.send("GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n")

        // Saturated, with connections waiting to be accepted: the proxy must idle, not spin.
        let cpu = try cpuUsed(pid: pid, over: 2)
        print("figure: EMFILE: \(served.count) connections served, \(queued.count) queued, CPU \(cpu) s over 2 s")
        XCTAssertLessThan(cpu, 0.2, "CPU seconds used in 2 s while out of descriptors")

        // The connections it has keep working (their requests reuse the pooled upstream connection).
        for (i, c) in served.prefix(3).enumerated() {
            try c.send("GET /still/\(i) HTTP/1.1\r\nHost: limit.test\r\n\r\n")
            XCTAssertEqual(try c.readResponse().status, 200, "served connection \(i) during EMFILE")
        }

        // Logged once, however many accepts were retried.
        XCTAssertEqual(countLines(s.process, containing: ["Too many open files", "open connections are"]), 1,
                       "EMFILE logged once:\n\(s.process.stderrTail(30))")

        // Free descriptors: every waiting client is accepted and answered.
        for c in served.prefix(6) { c.close() }
        for (i, c) in queued.enumerated() {
            c.setTimeout(8)
            let r = try c.readResponse()
            XCTAssertEqual(r.status, 200, "queued connection \(i) answered once descriptors were freed")
        }
        XCTAssertTrue(waitUntil(timeout: 5) { countLines(s.process, containing: ["accepting again"]) >= 1 },
                      "recovery logged:\n\(s.process.stderrTail(30))")
        for c in served { c.close() }
        // The admin listener retries on its own: its queued client is answered without another
        // connection arriving to wake it, and its shortage was logged at most once.
        XCTAssertEqual(try admin.readResponse().status, 200, "queued admin request answered once descriptors were freed")
        admin.close()
        XCTAssertLessThanOrEqual(countLines(s.process, containing: ["[admin]", "Too many open files"]), 1, s.process.stderrTail(30))
        XCTAssertTrue(s.process.isRunning)
    }

    /// Out of descriptors, a request that needs a new upstream connection spends one of the
    /// worker's reserve; when those are gone too it is answered 503 — the proxy's shortage —
    /// without counting a failure against (and ejecting) the endpoint.
    func testUpstreamConnectsOutOfDescriptorsAre503AndEjectNothing() throws {
        let fx = try Fixture()
        defer { fx.stop() }
        let s = try startProxy(fx)
        let pid = s.process.pid
        try setDescriptorLimit(pid: pid, try XCTUnwrap(openDescriptors(pid: pid)) + 12)
        let (served, waiting) = try fillUntilRefused(s, max: 40)
        let pending = try XCTUnwrap(waiting, "the proxy ran out of descriptors within 40 connections")
        // Every served connection asks at once for a slow answer: each needs an upstream
        // connection of its own, more than the pooled one and the reserve of 8 together.
        for (i, c) in served.enumerated() {
            try c.send("GET /concurrent/\(i) HTTP/1.1\r\nHost: limit.test\r\nX-Echo-Delay-Ms: 500\r\n\r\n")
        }
        var statuses: [Int] = []
        for c in served {
            c.setTimeout(10)
            statuses.append(try c.readResponse().status)
        }
        print("figure: \(served.count) concurrent requests out of descriptors: \(statuses.filter { $0 == 200 }.count) x 200, "
            + "\(statuses.filter { $0 == 503 }.count) x 503")
        XCTAssertEqual(statuses.filter { $0 != 200 && $0 != 503 }, [], "200 or 503 (the proxy's shortage), never 502")
        XCTAssertGreaterThanOrEqual(statuses.filter { $0 == 200 }.count, 9, "the pooled connection and the reserve of 8 were used")
        XCTAssertGreaterThanOrEqual(statuses.filter { $0 == 503 }.count, 1, "more requests than descriptors")
        XCTAssertEqual(countLines(s.process, containing: ["out of file descriptors"]), 1, s.process.stderrTail(30))

        for c in served { c.close() }
        pending.setTimeout(8)
        XCTAssertEqual(try pending.readResponse().status, 200, "accepted once descriptors were freed")
        XCTAssertEqual(try s.metric("portico_endpoint_ejections_total") ?? 0, 0, "the endpoint was not blamed")
        XCTAssertEqual(try RawClient.exchange(port: s.httpPort, "GET /after HTTP/1.1\r\nHost: limit.test\r\n\r\n").status, 200)
    }

    func testMaxConnectionsHoldsTheLimitWithoutSpinningAndResumes() throws {
        let fx = try Fixture()
        defer { fx.stop() }
        let s = try startProxy(fx, ["--max-connections", "5"])
        let pid = s.process.pid
        let (served, waiting) = try fillUntilRefused(s, max: 10)
        XCTAssertEqual(served.count, 5, "--max-connections 5 with one worker")
        let pending = try XCTUnwrap(waiting, "the sixth connection waits")
        var queued: [RawClient] = [pending]
        for i in 0..<2 {
            let c = try RawClient(port: s.httpPort, timeout: 8)
            try c.send("GET /queued/\(i) HTTP/1.1\r\nHost: limit.test\r\n\r\n")
            queued.append(c)
        }

        let cpu = try cpuUsed(pid: pid, over: 2)
        print("figure: --max-connections 5: \(queued.count) queued, CPU \(cpu) s over 2 s")
        XCTAssertLessThan(cpu, 0.2, "CPU seconds used in 2 s at the connection limit")

        for (i, c) in served.enumerated() {
            try c.send("GET /still/\(i) HTTP/1.1\r\nHost: limit.test\r\n\r\n")
            XCTAssertEqual(try c.readResponse().status, 200, "connection \(i) at the limit")
        }
        XCTAssertEqual(countLines(s.process, containing: ["max-connections"]), 1,
                       "the limit logged once:\n\(s.process.stderrTail(30))")

        // Closing three makes room for the three waiting, in the order they came.
        for c in served.prefix(3) { c.close() }
        for (i, c) in queued.enumerated() {
            c.setTimeout(8)
            XCTAssertEqual(try c.readResponse().status, 200, "queued connection \(i) answered after others closed")
        }
        // Back at the limit (2 + 3 = 5): one more waits again.
        let extra = try RawClient(port: s.httpPort, timeout: 1.5)
        try extra.send("GET /over HTTP/1.1\r\nHost: limit.test\r\n\r\n")
        XCTAssertThrowsError(try extra.readResponse(), "a sixth connection waits again")
        for c in served { c.close() }
        extra.setTimeout(8)
        XCTAssertEqual(try extra.readResponse().status, 200)
        XCTAssertTrue(s.process.isRunning)
    }
}
