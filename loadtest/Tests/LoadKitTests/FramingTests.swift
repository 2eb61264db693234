import XCTest
@testable import LoadKit

/// Response framings and connection handling, byte for byte (RFC 9112 §6.3, §9.6).
final class FramingTests: XCTestCase {
    func run(_ response: String, close: Bool = false, n: Int = 6, method: String = "GET") throws -> LoadResult {
        let server = try TestServer(mode: .custom(response, close: close))
        defer { server.stop() }
        var a = LoadArguments()
        a.url = server.url + "/"
        a.connections = 2
        a.requests = n
        a.method = method
        a.timeout = "2s"
        return try LoadRunner.run(try a.makeConfig())
    }

    func testChunkedBodyKeepsTheConnection() throws {
        let r = try run("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n")
        XCTAssertEqual(r.statuses, [200: 6])
        XCTAssertEqual(r.errorCount, 0)
        XCTAssertEqual(r.connectionsOpened, 2)
    }

    func testBodyUntilCloseEndsAtEOF() throws {
        let r = try run("HTTP/1.1 200 OK\r\n\r\nbody until close", close: true)
        XCTAssertEqual(r.statuses, [200: 6])
        XCTAssertEqual(r.errorCount, 0)
        XCTAssertEqual(r.connectionsOpened, 6)
    }

    func testConnectionCloseMeansReconnect() throws {
        let r = try run("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", close: true)
        XCTAssertEqual(r.statuses, [200: 6])
        XCTAssertEqual(r.errorCount, 0)
        XCTAssertEqual(r.connectionsOpened, 6)
    }

    func testInterimResponseIsSkipped() throws {
        let r = try run("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
        XCTAssertEqual(r.statuses, [204: 6])
        XCTAssertEqual(r.errorCount, 0)
    }

    func testHeadResponseHasNoBody() throws {
        let r = try run("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", method: "HEAD")
        XCTAssertEqual(r.statuses, [200: 6])
        XCTAssertEqual(r.errorCount, 0)
        XCTAssertEqual(r.connectionsOpened, 2)
    }

    func testCloseInsideTheBodyIsAClosedError() throws {
        let r = try run("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", close: true)
        XCTAssertEqual(r.errors, [.closed: 6])
        XCTAssertEqual(r.responses, 0)
    }

    func testBadChunkIsMalformed() throws {
        let r = try run("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
        XCTAssertEqual(r.errors, [.malformed: 6])
    }

    func testSmugglingShapedResponseIsMalformed() throws {
        let r = try run("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        XCTAssertEqual(r.errors, [.malformed: 6])
    }
}

/// Idle mode: one request per connection, then the connections stay open and silent.
final class IdleModeTests: XCTestCase {
    func testIdleModeHoldsEveryConnectionAfterOneRequest() throws {
        let server = try TestServer()
        defer { server.stop() }
        var a = LoadArguments()
        a.url = server.url + "/idle"
        a.connections = 20
        a.threads = 2
        a.duration = "400ms"
        a.idle = true
        let r = try LoadRunner.run(try a.makeConfig())
        XCTAssertEqual(r.responses, 20)
        XCTAssertEqual(server.count("/idle"), 20)
        XCTAssertEqual(r.idleOpenAtEnd, 20)
        XCTAssertEqual(r.connectionsOpened, 20)
        XCTAssertTrue(r.text(title: "t").contains("Idle connections held open at the end: 20 of 20"))
    }

    func testIdleModeNeedsADuration() {
        var a = LoadArguments()
        a.url = "http://127.0.0.1:9/"
        a.idle = true
        a.requests = 5
        XCTAssertThrowsError(try a.makeConfig()) { XCTAssertTrue("\($0)".contains("--idle")) }
    }
}
