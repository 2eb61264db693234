// Slow and stalled clients: slowloris (many connections trickling a request head) is cut off with
// 408 at --client-header-timeout while well-behaved clients keep being served; a slow request body
// that stops gets 408 at --client-body-timeout; a client that stops reading a 1 GiB response, and
// a backend that stops reading a 1 GiB upload, hold the proxy's memory bounded (backpressure stops
// reading the other side) until --send-timeout / --upstream-timeout ends the exchange.
// The full-size run (1000 slow connections, p99 ratio against a clean run) is loadtest/slowloris.sh.

import Foundation
import Glibc
import XCTest

final class SlowClientTests: XCTestCase {
    /// Slow connections in the test; PORTICO_IT_SLOW_CONNS overrides (loadtest/slowloris.sh runs 1000).
    static let slowConnections = Int(ProcessInfo.processInfo.environment["PORTICO_IT_SLOW_CONNS"] ?? "") ?? 300
    static let headerTimeout: TimeInterval = 3

    private func startProxy(_ fx: Fixture, _ extra: [String]) throws -> PorticoServer {
        let echo = try fx.echo("slow")
        let m = try fx.dir.write("slow.yaml", Manifest.join([
            Manifest.service("svc-slow", endpoints: [echo.address]),
            Manifest.ingress("slow", rules: [.init(host: nil, [.init("/", "Prefix", "svc-slow")])]),
        ]))
        return try fx.serve([m], ["--access-log", "off"] + extra)
    }

    // MARK: slowloris

    func testSlowlorisIsCutOffWith408WhileOthersAreServed() throws {
        let fx = try Fixture()
        defer { fx.stop() }
        let s = try startProxy(fx, ["--client-header-timeout", "\(Int(Self.headerTimeout))s"])
        let load = ["-c", "8", "-R", "200", "-d", "3s", "--timeout", "2s", "-H", "Host: slow.test", s.base + "/load"]
        let clean = try LoadTool.run(load)
        XCTAssertEqual(clean.errors, 0, "clean run: \(clean.json)")
        let fdsBefore = try XCTUnwrap(openDescriptors(pid: s.process.pid))

        let attack = try Slowloris(port: s.httpPort, count: Self.slowConnections)
        let attackDone = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            attack.run(until: Date().addingTimeInterval(Self.headerTimeout + 5))
            attackDone.signal()
        }
        // The load runs while every slow connection is open and trickling.
        XCTAssertTrue(attack.started.wait(timeout: .now() + 10) == .success, "slow connections opened")
        let fdsDuring = openDescriptors(pid: s.process.pid) ?? 0
        let during = try LoadTool.run(load)
        XCTAssertTrue(attackDone.wait(timeout: .now() + Self.headerTimeout + 10) == .success, "attack finished")

        let results = attack.results()
        let answered408 = results.filter { $0.reply.hasPrefix("HTTP/1.1 408") }
        let elapsed = answered408.compactMap { $0.answeredAfter }.sorted()
        print("figure: slowloris \(results.count) connections, \(answered408.count) answered 408, "
            + "after \(elapsed.first ?? -1)...\(elapsed.last ?? -1) s; proxy fds \(fdsBefore) -> \(fdsDuring); "
            + "load p99 clean \(clean.p99) ms, under attack \(during.p99) ms; responses \(during.responses), errors \(during.errors)")
        XCTAssertEqual(answered408.count, results.count,
                       "every slow connection gets 408; others: \(results.filter { !$0.reply.hasPrefix("HTTP/1.1 408") }.prefix(3).map { $0.reply })")
        XCTAssertTrue(results.allSatisfy { $0.closed }, "every slow connection is closed after its 408")
        // Cut off at the header timeout (measured from the first byte), not before, not much after.
        XCTAssertGreaterThanOrEqual(elapsed.first ?? 0, Self.headerTimeout - 0.3)
        XCTAssertLessThanOrEqual(elapsed.last ?? .infinity, Self.headerTimeout + 2.5)
        XCTAssertGreaterThanOrEqual(fdsDuring, fdsBefore + Self.slowConnections / 2, "the slow connections were really held open")

        // Well-behaved requests keep succeeding during the attack, at a latency near the clean run's.
        XCTAssertEqual(during.errors, 0, "load during the attack: \(during.json)")
        XCTAssertEqual(during.status.filter { $0.key != "200" }, [:], "only 200s during the attack")
        XCTAssertGreaterThanOrEqual(during.responses, 500, "about 600 requests at 200/s for 3 s")
        XCTAssertLessThanOrEqual(during.p99, max(clean.p99, 2) * 10, "p99 under attack vs clean (loose: CI is noisy)")

        // Nothing leaks: the descriptors come back once the slow connections are gone.
        XCTAssertTrue(waitUntil(timeout: 5) { (openDescriptors(pid: s.process.pid) ?? .max) <= fdsBefore + 4 },
                      "descriptors back to \(fdsBefore): \(openDescriptors(pid: s.process.pid) ?? -1)")
    }

    // MARK: slow and stalled bodies

    func testSlowUploadThatStopsGets408AtTheBodyTimeout() throws {
        let fx = try Fixture()
        defer { fx.stop() }
        let s = try startProxy(fx, ["--client-body-timeout", "2s"])
        let c = try RawClient(port: s.httpPort, timeout: 10)
        try c.send("POST /slow-upload HTTP/1.1\r\nHost: slow.test\r\nContent-Length: 1073741824\r\n\r\n")
        let chunk = [UInt8](repeating: 0x61, count: 16384)
        var growth = 0
        growth = try peakResidentGrowth(pid: s.process.pid) {
            // 16 KiB every 100 ms for 2 s: slow, but never a pause as long as the body timeout.
            for _ in 0..<20 {
                try c.send(chunk)
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
        let stopped = Date()
        let r = try c.readResponse()
        let waited = Date().timeIntervalSince(stopped)
        print("figure: slow upload: 320 KiB over 2 s, then silent: \(r.status) after \(waited) s, RSS growth \(growth >> 10) KiB")
        XCTAssertEqual(r.status, 408, "a body that stops for --client-body-timeout: \(r.rawHead)")
        XCTAssertGreaterThan(waited, 1.5)
        XCTAssertLessThan(waited, 5)
        XCTAssertLessThan(growth, 16 << 20)
        XCTAssertTrue(c.isClosedByPeer(within: 5))
    }

    func testClientThatStopsReadingA1GiBDownloadKeepsMemoryBoundedAndIsDropped() throws {
        let fx = try Fixture()
        defer { fx.stop() }
        let s = try startProxy(fx, ["--send-timeout", "3s"])
        let pid = s.process.pid
        _ = try RawClient.exchange(port: s.httpPort, "GET /warm HTTP/1.1\r\nHost: slow.test\r\nX-Echo-Bytes: 1048576\r\n\r\n")
        let c = try RawClient(port: s.httpPort, timeout: 10)
        let growth = try peakResidentGrowth(pid: pid) {
            try c.send("GET /never-read HTTP/1.1\r\nHost: slow.test\r\nX-Echo-Bytes: \(1 << 30)\r\n\r\n")
            // Read nothing for longer than the send timeout.
            Thread.sleep(forTimeInterval: 5)
        }
        // The proxy gave up on the client: what is left is what the socket buffers held.
        let received = try c.readToEOF().count
        print("figure: never-read 1 GiB download: RSS growth \(growth >> 10) KiB, client got \(received >> 10) KiB before the close")
        XCTAssertLessThan(growth, 32 << 20, "RSS growth while the client does not read")
        XCTAssertLessThan(received, 64 << 20, "the proxy stopped reading the backend and closed at --send-timeout")
        XCTAssertTrue(s.process.stderr.contains("client stopped reading the response"), s.process.stderrTail())
        XCTAssertEqual(try RawClient.exchange(port: s.httpPort, "GET /after HTTP/1.1\r\nHost: slow.test\r\n\r\n").status, 200)
    }

    func testBackendThatStopsReadingAnUploadKeepsMemoryBoundedAndTimesOut() throws {
        let fx = try Fixture()
        defer { fx.stop() }
        let sink = try fx.scripted(.silent)
        let m = try fx.dir.write("stall.yaml", Manifest.join([
            Manifest.service("svc-stall", endpoints: ["127.0.0.1:\(sink.port)"]),
            Manifest.ingress("stall", rules: [.init(host: nil, [.init("/", "Prefix", "svc-stall")])]),
        ]))
        let s = try fx.serve([m], ["--access-log", "off", "--upstream-timeout", "3s"])
        let c = try RawClient(port: s.httpPort, timeout: 0.2)
        try c.send("POST /upload HTTP/1.1\r\nHost: stall.test\r\nContent-Length: \(1 << 30)\r\n\r\n")
        var pushed = 0
        let growth = peakResidentGrowth(pid: s.process.pid) {
            // Send as fast as the proxy takes it for 2 s (before the 3 s upstream timeout); a
            // blocked send gives up after 0.2 s (SO_SNDTIMEO) and tries again. Without
            // backpressure loopback would take hundreds of MiB in that time.
            let chunk = [UInt8](repeating: 0x62, count: 65536)
            let deadline = Date().addingTimeInterval(2)
            while pushed < (1 << 30), Date() < deadline {
                let n = chunk.withUnsafeBytes { Glibc.send(c.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n > 0 { pushed += n } else if errno != EAGAIN && errno != EINTR { break }
            }
        }
        c.setTimeout(10)
        let r = try c.readResponse()
        print("figure: backend never reads a 1 GiB upload: the proxy took \(pushed >> 10) KiB from the client in 2 s, RSS growth \(growth >> 10) KiB, answer \(r.status)")
        XCTAssertLessThan(pushed, 64 << 20, "the proxy stopped reading the client when the backend stopped reading")
        XCTAssertLessThan(growth, 32 << 20)
        XCTAssertEqual(r.status, 504, "the stalled upload ends at --upstream-timeout: \(r.rawHead)")
    }
}

// MARK: - Helpers

/// Many connections that each send one byte of a never-ending request head per second.
final class Slowloris: @unchecked Sendable {
    struct Result {
        var reply: String
        var closed: Bool
        /// Seconds from the connection's first byte to the first byte of the answer.
        var answeredAfter: TimeInterval?
    }

    private var fds: [Int32] = []
    private var replies: [[UInt8]]
    private var closed: [Bool]
    private var firstSent: [Date?]
    private var answeredAt: [Date?]
    private let lock = NSLock()
    let started = DispatchSemaphore(value: 0)
    private let head = Array("GET /slowloris HTTP/1.1\r\nHost: slow.test\r\nX-Slow: ".utf8)

    init(port: UInt16, count: Int) throws {
        replies = Array(repeating: [], count: count)
        closed = Array(repeating: false, count: count)
        firstSent = Array(repeating: nil, count: count)
        answeredAt = Array(repeating: nil, count: count)
        var addr = loopback(port: port)
        for _ in 0..<count {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { closeAll(); throw HarnessError("socket: errno \(errno)") }
            let rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard rc == 0 else { Glibc.close(fd); closeAll(); throw HarnessError("connect: errno \(errno)") }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            fds.append(fd)
        }
    }

    deinit { closeAll() }

    private func closeAll() { for fd in fds where fd >= 0 { Glibc.close(fd) }; fds = [] }

    /// Sends a byte per connection per second, reading whatever comes back, until every connection
    /// is closed by the proxy or `deadline` passes; then closes what is left.
    func run(until deadline: Date) {
        var sent = 0
        var nextTick = Date()
        var signalled = false
        while Date() < deadline {
            if Date() >= nextTick {
                for i in fds.indices where !closed[i] && replies[i].isEmpty {
                    let byte = sent < head.count ? head[sent] : UInt8(ascii: "a")
                    var b = byte
                    let n = Glibc.send(fds[i], &b, 1, Int32(MSG_NOSIGNAL))
                    if n == 1 {
                        if firstSent[i] == nil { firstSent[i] = Date() }
                    } else if errno != EAGAIN {
                        markClosed(i)
                    }
                }
                sent += 1
                nextTick = nextTick.addingTimeInterval(1)
                if !signalled { signalled = true; started.signal() }
            }
            drain()
            if closed.allSatisfy({ $0 }) { break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        drain()
        if !signalled { started.signal() }
    }

    private func drain() {
        var buf = [UInt8](repeating: 0, count: 4096)
        for i in fds.indices where !closed[i] {
            while true {
                let n = buf.withUnsafeMutableBytes { recv(fds[i], $0.baseAddress, $0.count, 0) }
                if n > 0 {
                    lock.lock()
                    if answeredAt[i] == nil { answeredAt[i] = Date() }
                    if replies[i].count < 512 { replies[i] += buf[0..<min(n, 512)] }
                    lock.unlock()
                    continue
                }
                if n == 0 || (errno != EAGAIN && errno != EINTR) { markClosed(i) }
                break
            }
        }
    }

    private func markClosed(_ i: Int) {
        lock.lock(); closed[i] = true; lock.unlock()
    }

    func results() -> [Result] {
        lock.lock(); defer { lock.unlock() }
        return fds.indices.map { i in
            Result(reply: String(decoding: replies[i], as: UTF8.self), closed: closed[i],
                   answeredAfter: zip(firstSent[i], answeredAt[i]).map { $1.timeIntervalSince($0) })
        }
    }
}

private func zip<A, B>(_ a: A?, _ b: B?) -> (A, B)? {
    guard let a = a, let b = b else { return nil }
    return (a, b)
}
