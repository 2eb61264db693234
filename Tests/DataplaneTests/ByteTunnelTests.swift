import XCTest
import Glibc
import Reactor
@testable import Dataplane

/// The byte pump shared by the Upgrade tunnel and the TCP Service tunnel, driven without an event
/// loop over two Unix socket pairs: test client <-> end A, end B <-> test server.
final class ByteTunnelTests: XCTestCase {
    /// A proxy-side end: a non-blocking socket whose readiness the test sets, as epoll would.
    final class End: Channel, PlainSocketTunnelEnd {
        var canRead = false
        var canWrite = true
    }

    private var fds: [Int32] = []
    private var client: Int32 = -1, server: Int32 = -1
    private var a: End!, b: End!
    private let fromA = Buffer(capacity: 16384), fromB = Buffer(capacity: 16384)

    override func setUpWithError() throws {
        var p = [Int32](repeating: -1, count: 2), q = [Int32](repeating: -1, count: 2)
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &p), 0)
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &q), 0)
        fds = p + q
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        client = p[0]; a = End(fd: p[1])
        b = End(fd: q[0]); server = q[1]
    }

    override func tearDown() {
        for fd in fds { close(fd) }
    }

    /// What epoll would report after bytes, an end of file or buffer space arrived.
    private func wake() {
        a.canRead = true; a.canWrite = true
        b.canRead = true; b.canWrite = true
    }

    private func send(_ fd: Int32, _ text: String) {
        XCTAssertEqual(Array(text.utf8).withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }, text.utf8.count)
    }

    /// Everything readable on `fd` now, and whether it ended with an end of file.
    private func drain(_ fd: Int32) -> (text: String, eof: Bool) {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { out += chunk[0..<n]; continue }
            return (String(decoding: out, as: UTF8.self), n == 0)
        }
    }

    func testHalfCloseIsPassedOnAndTheOtherDirectionGoesOn() {
        var t = ByteTunnel(onEndOfFile: .halfClose)
        send(client, "question")
        shutdown(client, Int32(SHUT_WR))
        wake()
        XCTAssertFalse(t.pump(a, fromA, b, fromB), "one side finished: the tunnel stays open")
        let atServer = drain(server)
        XCTAssertEqual(atServer.text, "question")
        XCTAssertTrue(atServer.eof, "the client's end of file reached the server")
        XCTAssertTrue(t.aFinished)

        send(server, "answer")
        shutdown(server, Int32(SHUT_WR))
        wake()
        XCTAssertTrue(t.pump(a, fromA, b, fromB), "both sides finished and both buffers drained")
        let atClient = drain(client)
        XCTAssertEqual(atClient.text, "answer", "the answer still flowed after the client's half-close")
        XCTAssertTrue(atClient.eof)
    }

    func testEndOfFileEndsTheTunnelWhenHalfCloseIsOff() {
        var t = ByteTunnel(onEndOfFile: .end)
        send(client, "last words")
        shutdown(client, Int32(SHUT_WR))
        wake()
        XCTAssertTrue(t.pump(a, fromA, b, fromB), "the first end of file ends the tunnel")
        XCTAssertEqual(drain(server).text, "last words", "bytes before the end of file were passed on")
        XCTAssertFalse(t.aFinished, "no half-close was passed on")
    }

    func testHeadGoesToAFirstThenBsBytes() {
        var t = ByteTunnel(onEndOfFile: .end)
        let head = Buffer(capacity: 64)
        head.append("HTTP/1.1 101 Switching Protocols\r\n\r\n")
        send(server, "frame")
        wake()
        XCTAssertFalse(t.pump(a, fromA, b, fromB, headForA: head))
        XCTAssertTrue(head.isEmpty)
        XCTAssertEqual(drain(client).text, "HTTP/1.1 101 Switching Protocols\r\n\r\nframe")
    }

    /// A server that does not read: the pump stops reading the client once its buffer cannot be
    /// passed on, and everything arrives intact, in order, once the server reads again.
    func testSlowReaderStopsReadingOnTheOtherSide() {
        var t = ByteTunnel(onEndOfFile: .halfClose)
        let total = 4 << 20
        let payload = (0..<total).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) }
        var sent = 0, received: [UInt8] = []
        func sendMore(_ limit: Int = 65536) -> Int {
            let n = payload[sent...].withUnsafeBytes { Glibc.send(client, $0.baseAddress, min($0.count, limit), 0) }
            if n > 0 { sent += n }
            return n
        }
        // Fill everything between the client and the stalled server.
        for _ in 0..<10_000 {
            let n = sendMore()
            wake()
            _ = t.pump(a, fromA, b, fromB)
            if n <= 0 && !b.canWrite { break }
        }
        for _ in 0..<10_000 where sendMore() > 0 {}
        wake()
        XCTAssertFalse(t.pump(a, fromA, b, fromB))
        XCTAssertFalse(b.canWrite, "the server side is full")
        XCTAssertLessThan(sendMore(1), 0, "the client's socket stays full: nothing read from it while the server side is full")
        XCTAssertLessThan(sent, total)
        XCTAssertLessThanOrEqual(fromA.readableCount, 16384, "the proxy holds at most one buffer of it")

        // The server reads again: the rest flows (bounded in rounds), then both sides finish.
        var chunk = [UInt8](repeating: 0, count: 65536)
        var over = false
        for _ in 0..<100_000 where !over {
            if sent < total, sendMore() > 0, sent == total { shutdown(client, Int32(SHUT_WR)) }
            wake()
            _ = t.pump(a, fromA, b, fromB)
            let n = chunk.withUnsafeMutableBytes { recv(server, $0.baseAddress, $0.count, 0) }
            if n > 0 { received += chunk[0..<n] }
            if n == 0 { over = true }
        }
        XCTAssertTrue(over, "the client's end of file reached the server after the last byte")
        XCTAssertEqual(received.count, total)
        XCTAssertTrue(received == payload, "every byte, in order")
    }
}
