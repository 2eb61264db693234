// Failing backends, counted on both sides: a backend that closes mid-response, closes before a
// response byte, resets, hangs or answers garbage; every endpoint of a Service down; an endpoint
// that flaps. Each gets the right status (502/504, 503 when there is no endpoint), a retry only
// where it is safe (an idempotent method, no response byte sent to the client yet; never after a
// timeout or a garbage answer), passive ejection and recovery, and no request answered twice:
// the requests each backend saw are compared with the responses the client got.
// (UpstreamFailureTests covers the single-endpoint statuses, the log line and the first ejection.)

import Foundation
import Glibc
import XCTest

final class FailingBackendTests: XCTestCase {
    struct State {
        var server: PorticoServer
        /// Behaves by request path (see `ScriptedBackend`).
        var scripted: ScriptedBackend
        /// Resets every request; paired with `good` in svc-mixed.
        var resetter: ScriptedBackend
        var good: ScriptedBackend
        var flappy: ScriptedBackend
        var stable: ScriptedBackend
    }

    static let shared = SharedFixture<State> { fx in
        let scripted = try fx.scripted(.byPath)
        let resetter = try fx.scripted(.always("/reset"))
        let good = try fx.scripted(.byPath)
        let flappy = try fx.scripted(.byPath)
        let stable = try fx.scripted(.byPath)
        let down1 = try freePort(), down2 = try freePort()
        let m = try fx.dir.write("failing.yaml", Manifest.join([
            Manifest.service("svc-scripted", endpoints: [scripted.address]),
            Manifest.service("svc-mixed", endpoints: [resetter.address, good.address]),
            Manifest.service("svc-alldown", endpoints: ["127.0.0.1:\(down1)", "127.0.0.1:\(down2)"]),
            Manifest.service("svc-flap", endpoints: [stable.address, flappy.address]),
            Manifest.ingress("failing", rules: [
                .init(host: "scripted.test", [.init("/", "Prefix", "svc-scripted")]),
                .init(host: "mixed.test", [.init("/", "Prefix", "svc-mixed")]),
                .init(host: "alldown.test", [.init("/", "Prefix", "svc-alldown")]),
                .init(host: "flap.test", [.init("/", "Prefix", "svc-flap")]),
            ]),
        ]))
        // One worker: ejection state is per worker, so the counts below are exact.
        let server = try fx.serve([m], ["--workers", "1", "--upstream-timeout", "1s", "--upstream-connect-timeout", "1s",
                                        "--tries", "2", "--eject-after", "3", "--eject-time", "2s"])
        return State(server: server, scripted: scripted, resetter: resetter, good: good, flappy: flappy, stable: stable)
    }

    override class func tearDown() {
        shared.stop()
        super.tearDown()
    }

    private func send(_ host: String, _ method: String, _ path: String, body: String? = nil) throws -> RawClient {
        let st = try Self.shared.get()
        let c = try RawClient(port: st.server.httpPort, timeout: 10)
        var req = "\(method) \(path) HTTP/1.1\r\nHost: \(host)\r\n"
        if let b = body { req += "Content-Length: \(b.utf8.count)\r\n\r\n\(b)" } else { req += "\r\n" }
        try c.send(req)
        return c
    }

    private func exchange(_ host: String, _ method: String, _ path: String, body: String? = nil) throws -> RawResponse {
        let c = try send(host, method, path, body: body)
        defer { c.close() }
        return try c.readResponse()
    }

    // MARK: one endpoint, by behaviour

    func testClosedMidResponseBodyIsCutOffNotRetried() throws {
        let st = try Self.shared.get()
        let before = st.scripted.seen("/cut-body")
        let t0 = Date()
        let c = try send("scripted.test", "GET", "/cut-body")
        // The head (200, Content-Length 100000) already reached the client: the proxy can only
        // close, and must not try again (the client would get two responses' bytes).
        XCTAssertThrowsError(try c.readResponse(), "the response is cut short") { e in
            XCTAssertTrue("\(e)".contains("connection closed after"), "\(e)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(t0), 0.8, "the close is passed on at once, not at --upstream-timeout")
        XCTAssertEqual(st.scripted.seen("/cut-body") - before, 1, "not retried once a response byte was sent")
    }

    func testClosedBeforeAnyResponseByteRetriesGETButNotPOST() throws {
        let st = try Self.shared.get()
        var before = st.scripted.seen("/close")
        XCTAssertEqual(try exchange("scripted.test", "GET", "/close").status, 502)
        // --tries 2, plus one more when a try went out on a reused keep-alive connection (it may
        // have been closed by the backend just before: the usual keep-alive race).
        XCTAssertTrue((2...3).contains(st.scripted.seen("/close") - before),
                      "GET: idempotent, nothing sent to the client: retried; seen \(st.scripted.seen("/close") - before)")
        before = st.scripted.seen("/close")
        XCTAssertEqual(try exchange("scripted.test", "POST", "/close", body: "pay once").status, 502)
        XCTAssertEqual(st.scripted.seen("/close") - before, 1, "POST is never retried")
    }

    func testPartialResponseHeadIs502() throws {
        let st = try Self.shared.get()
        let before = st.scripted.seen("/cut-head")
        let t0 = Date()
        let r = try exchange("scripted.test", "PUT", "/cut-head", body: "x")
        XCTAssertEqual(r.status, 502, r.rawHead)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 0.8, "the close after a partial head is seen at once")
        XCTAssertEqual(st.scripted.seen("/cut-head") - before, 1, "PUT is idempotent but carried a body: not retried")
    }

    func testResetIs502AndRetriedOnlyForIdempotentRequests() throws {
        let st = try Self.shared.get()
        var before = st.scripted.seen("/reset")
        XCTAssertEqual(try exchange("scripted.test", "DELETE", "/reset").status, 502)
        XCTAssertTrue((2...3).contains(st.scripted.seen("/reset") - before),
                      "DELETE is idempotent and bodiless: retried; seen \(st.scripted.seen("/reset") - before)")
        before = st.scripted.seen("/reset")
        XCTAssertEqual(try exchange("scripted.test", "POST", "/reset", body: "{}").status, 502)
        XCTAssertEqual(st.scripted.seen("/reset") - before, 1, "POST: not retried")
        before = st.scripted.seen("/reset")
        XCTAssertEqual(try exchange("scripted.test", "PATCH", "/reset").status, 502)
        XCTAssertEqual(st.scripted.seen("/reset") - before, 1, "PATCH is not idempotent (RFC 9110 §9.2.2): not retried")
    }

    func testHangingBackendIs504AndNotRetried() throws {
        let st = try Self.shared.get()
        let before = st.scripted.seen("/hang")
        let t0 = Date()
        let r = try exchange("scripted.test", "GET", "/hang")
        let waited = Date().timeIntervalSince(t0)
        XCTAssertEqual(r.status, 504, r.rawHead)
        XCTAssertGreaterThan(waited, 0.8)
        XCTAssertLessThan(waited, 1.9, "one --upstream-timeout (1s), not two: a timed-out request may be in progress, so no retry")
        XCTAssertEqual(st.scripted.seen("/hang") - before, 1)
    }

    func testGarbageIs502AndNotRetried() throws {
        let st = try Self.shared.get()
        let before = st.scripted.seen("/garbage")
        XCTAssertEqual(try exchange("scripted.test", "GET", "/garbage").status, 502)
        XCTAssertEqual(st.scripted.seen("/garbage") - before, 1, "the backend did answer (badly): not retried")
    }

    func testProxyStillAnswersAfterEveryFailureKind() throws {
        let st = try Self.shared.get()
        // Failures above ejected the only endpoint at times; with every endpoint ejected the
        // picker still uses them (panic mode), so a good request is answered, not refused.
        let r = try exchange("scripted.test", "GET", "/ok")
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.bodyText, "ok /ok")
        XCTAssertTrue(st.server.process.isRunning)
    }

    // MARK: several endpoints

    func testOneEndpointResettingEverythingIsHiddenForGETsAndCountedExactlyForPOSTs() throws {
        let st = try Self.shared.get()
        let resetBefore = st.resetter.seenTotal, goodBefore = st.good.seenTotal
        // POSTs first (before the resetting endpoint is ejected): never retried, so each is answered exactly once, by whichever endpoint got it.
        var ok = 0, failed = 0
        for i in 0..<20 {
            let r = try exchange("mixed.test", "POST", "/ok/p\(i)", body: "n=\(i)")
            if r.status == 200 { ok += 1 } else { XCTAssertEqual(r.status, 502); failed += 1 }
        }
        // Once ejected (--eject-time 2s), and then again after it, GETs hide it: a reset try is
        // retried on the good endpoint.
        Thread.sleep(forTimeInterval: 2.1)
        // GETs: every one answered 200 — a reset try is retried on the good endpoint.
        var gets = 0
        for i in 0..<20 {
            let r = try exchange("mixed.test", "GET", "/ok/\(i)")
            XCTAssertEqual(r.status, 200, "GET \(i): \(r.rawHead)")
            if r.status == 200 { gets += 1 }
        }
        let resetSaw = st.resetter.seenTotal - resetBefore, goodSaw = st.good.seenTotal - goodBefore
        let resetPOSTs = st.resetter.seen(method: "POST"), goodPOSTs = st.good.seen(method: "POST")
        print("figure: svc-mixed: resetter saw \(resetSaw), good saw \(goodSaw); POST 200 \(ok), 502 \(failed)")
        XCTAssertEqual(gets, 20)
        XCTAssertEqual(goodPOSTs, ok, "every POST the good endpoint saw was answered 200, once")
        XCTAssertEqual(resetPOSTs, failed, "every POST the resetting endpoint saw was answered 502, once, not retried")
        XCTAssertEqual(ok + failed, 20)
        XCTAssertGreaterThanOrEqual(failed, 1, "round-robin sent POSTs to the resetting endpoint before it was ejected")
        XCTAssertLessThanOrEqual(resetSaw, 8, "ejected after 3 consecutive failures (then a probe each second)")
        let ejections = try st.server.metric("portico_endpoint_ejections_total", labels: ["svc-mixed"]) ?? 0
        XCTAssertGreaterThanOrEqual(ejections, 1)
    }

    func testEveryEndpointDownIs502Quickly() throws {
        let st = try Self.shared.get()
        let t0 = Date()
        for i in 0..<10 {
            let r = try exchange("alldown.test", "GET", "/down/\(i)")
            XCTAssertEqual(r.status, 502, "both endpoints refuse: \(r.rawHead)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(t0), 5, "refused connects answer at once, ejected or not")
        let ejections = try st.server.metric("portico_endpoint_ejections_total", labels: ["svc-alldown"]) ?? 0
        XCTAssertGreaterThanOrEqual(ejections, 2, "both endpoints ejected")
        XCTAssertEqual(try exchange("flap.test", "GET", "/ok").status, 200, "other Services unaffected")
    }

    func testFlappingEndpointIsEjectedAndComesBack() throws {
        let st = try Self.shared.get()
        func round(_ label: String, _ n: Int = 20) throws -> (stable: Int, flappy: Int) {
            let s0 = st.stable.seenTotal, f0 = st.flappy.seenTotal
            for i in 0..<n {
                let r = try exchange("flap.test", "GET", "/ok/\(label)/\(i)")
                XCTAssertEqual(r.status, 200, "\(label) \(i): no failure reaches the client")
            }
            let seen = (st.stable.seenTotal - s0, st.flappy.seenTotal - f0)
            XCTAssertEqual(seen.0 + seen.1, n, "\(label): the backends saw exactly one request per response")
            return seen
        }
        func ejections() throws -> Double { try st.server.metric("portico_endpoint_ejections_total", labels: ["svc-flap"]) ?? 0 }

        let up = try round("up")
        XCTAssertGreaterThan(up.flappy, 0, "both endpoints serve while up")
        XCTAssertGreaterThan(up.stable, 0)

        // Ejections start during the first few requests of a "down" round; waits are measured
        // from the round's start, with margins of a second or more for a slow machine.
        let e0 = try ejections()
        st.flappy.stop()
        let down1 = Date()
        let down = try round("down")
        XCTAssertEqual(down.flappy, 0)
        XCTAssertEqual(try ejections() - e0, 1, "the refusing endpoint is ejected once")

        try st.flappy.restart()
        Thread.sleep(until: down1.addingTimeInterval(3))  // --eject-time 2s
        let back = try round("back")
        XCTAssertGreaterThan(back.flappy, 0, "back in rotation after the ejection period")

        st.flappy.stop()
        let down2 = Date()
        _ = try round("down-again")
        XCTAssertEqual(try ejections() - e0, 2, "ejected again")
        try st.flappy.restart()
        // The second ejection lasts twice as long (4 s): 2 s after it began it is still out,
        // although it answers again.
        Thread.sleep(until: down2.addingTimeInterval(2))
        let stillOut = try round("still-out", 10)
        XCTAssertLessThan(Date().timeIntervalSince(down2), 3.8, "the check ran inside the second ejection")
        XCTAssertEqual(stillOut.flappy, 0, "the second ejection is 4 s")
        Thread.sleep(until: down2.addingTimeInterval(5))
        let backAgain = try round("back-again")
        XCTAssertGreaterThan(backAgain.flappy, 0, "back after the doubled period")
    }
}

