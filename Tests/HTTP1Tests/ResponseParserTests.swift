import XCTest
@testable import HTTP1

final class ResponseParserTests: XCTestCase {
    func testStatusLineAndFields() {
        let s = "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nServer: x\r\n\r\nnot found"
        let r = parseResponse(s)
        XCTAssertEqual(r.status, .complete)
        XCTAssertEqual(r.code, 404)
        XCTAssertEqual(r.reason, "Not Found")
        XCTAssertEqual(r.framing, .contentLength(9))
        XCTAssertTrue(r.keepAlive)
        XCTAssertEqual(r.headLength, s.utf8.count - 9)
        XCTAssertEqual(r.fields, ["Content-Length=9|e2e", "Server=x|e2e"])
    }

    func testMissingReasonWithOrWithoutSpace() {
        let a = parseResponse("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n")
        XCTAssertEqual(a.status, .complete)
        XCTAssertEqual(a.reason, "")
        let b = parseResponse("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n")
        XCTAssertEqual(b.status, .complete)
        XCTAssertEqual(b.reason, "")
    }

    /// (what, request method, response, expected framing, keepAlive)
    static let framingTable: [(String, HTTPMethod, String, BodyFraming, Bool)] = [
        ("HEAD ignores Content-Length", .head, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", .none, true),
        ("HEAD ignores chunked", .head, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", .none, true),
        ("100 Continue", .post, "HTTP/1.1 100 Continue\r\n\r\n", .none, true),
        ("103 Early Hints", .get, "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", .none, true),
        ("204 ignores Content-Length", .get, "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", .none, true),
        ("304", .get, "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", .none, true),
        ("2xx to CONNECT", .connect, "HTTP/1.1 200 Connection Established\r\n\r\n", .none, true),
        ("Content-Length", .get, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", .contentLength(5), true),
        ("Content-Length zero", .get, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", .contentLength(0), true),
        ("identical Content-Lengths", .get, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\n", .contentLength(5), true),
        ("chunked", .get, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", .chunked, true),
        ("gzip then chunked", .get, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", .chunked, true),
        ("unknown coding then chunked", .get, "HTTP/1.1 200 OK\r\nTransfer-Encoding: br, chunked\r\n\r\n", .chunked, true),
        ("TE not ending in chunked", .get, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", .untilClose, false),
        ("no framing fields", .get, "HTTP/1.1 200 OK\r\n\r\n", .untilClose, false),
        ("Connection: close", .get, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", .contentLength(1), false),
        ("HTTP/1.0 default close", .get, "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", .contentLength(1), false),
        ("HTTP/1.0 keep-alive", .get, "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", .contentLength(1), true),
        ("101 Switching Protocols", .get, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", .none, true),
    ]

    func testFramingTable() {
        for (what, method, response, framing, keepAlive) in Self.framingTable {
            let r = parseResponse(response, method: method)
            XCTAssertEqual(r.status, .complete, what)
            XCTAssertEqual(r.framing, framing, what)
            XCTAssertEqual(r.keepAlive, keepAlive, what)
        }
    }

    func testUpgradeIsSetFor101Only() {
        XCTAssertTrue(parseResponse("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n").upgrade)
        XCTAssertFalse(parseResponse("HTTP/1.1 200 OK\r\nUpgrade: websocket\r\nConnection: upgrade\r\nContent-Length: 0\r\n\r\n").upgrade)
    }

    func testHopByHopInResponses() {
        let r = parseResponse("HTTP/1.1 200 OK\r\nConnection: x-a\r\nX-A: 1\r\nKeep-Alive: t\r\nContent-Length: 0\r\n\r\n")
        XCTAssertEqual(r.fields, ["Connection=x-a|hop", "X-A=1|hop", "Keep-Alive=t|hop", "Content-Length=0|e2e"])
    }

    func testInterimResponseThenFinalResponse() {
        let s = b("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        var p = ResponseParser()
        var h = ResponseHead()
        s.withUnsafeBytes { all in
            XCTAssertEqual(p.parse(all, requestMethod: .post, into: &h), .complete)
            XCTAssertEqual(h.status, 100)
            let next = h.headLength
            p.reset()
            XCTAssertEqual(p.parse(UnsafeRawBufferPointer(rebasing: all[next...]), requestMethod: .post, into: &h), .complete)
            XCTAssertEqual(h.status, 200)
            XCTAssertEqual(h.framing, .contentLength(2))
        }
    }

    static let rejections: [(String, String, ParseFailure)] = [
        ("HTTP/2", "HTTP/2 200 OK\r\n\r\n", .invalidStatusLine),
        ("HTTP/1.2", "HTTP/1.2 200 OK\r\n\r\n", .invalidStatusLine),
        ("lowercase", "http/1.1 200 OK\r\n\r\n", .invalidStatusLine),
        ("two-digit status", "HTTP/1.1 20 OK\r\n\r\n", .invalidStatusLine),
        ("four-digit status", "HTTP/1.1 2000 OK\r\n\r\n", .invalidStatusLine),
        ("status 099", "HTTP/1.1 099 X\r\n\r\n", .invalidStatusLine),
        ("status 600", "HTTP/1.1 600 X\r\n\r\n", .invalidStatusLine),
        ("double space", "HTTP/1.1  200 OK\r\n\r\n", .invalidStatusLine),
        ("control in reason", "HTTP/1.1 200 O\u{1}K\r\n\r\n", .invalidStatusLine),
        ("bare LF status line", "HTTP/1.1 200 OK\n\r\n", .invalidStatusLine),
        ("bare CR in reason", "HTTP/1.1 200 O\rK\r\n\r\n", .invalidStatusLine),
        ("leading empty line", "\r\nHTTP/1.1 200 OK\r\n\r\n", .invalidStatusLine),
        ("CL with TE", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", .invalidResponse),
        ("TE in HTTP/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", .invalidResponse),
        ("differing CL", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", .invalidResponse),
        ("bad CL", "HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\n", .invalidResponse),
        ("chunked twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", .invalidResponse),
        ("chunked with parameter", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked;x=1\r\n\r\n", .invalidResponse),
        ("obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n", .invalidResponse),
        ("space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n", .invalidResponse),
        ("NUL in value", "HTTP/1.1 200 OK\r\nX: \u{0}\r\n\r\n", .invalidResponse),
        ("bare LF in fields", "HTTP/1.1 200 OK\r\nX: a\n\r\n", .invalidResponse),
        ("missing colon", "HTTP/1.1 200 OK\r\nX\r\n\r\n", .invalidResponse),
    ]

    func testRejectionsAreBadGateway() {
        for (what, response, failure) in Self.rejections {
            XCTAssertEqual(parseResponse(response).status, .failed(failure), what)
            XCTAssertEqual(failure.status, 502, what)
        }
    }

    func testHeadSizeAndFieldCountLimits() {
        var p = ResponseParser(maxHeadBytes: 64, maxFields: 2)
        var h = ResponseHead()
        b("HTTP/1.1 200 OK\r\nX: " + String(repeating: "a", count: 100)).withUnsafeBytes {
            XCTAssertEqual(p.parse($0, requestMethod: .get, into: &h), .failed(.invalidResponse))
        }
        p.reset()
        b("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n").withUnsafeBytes {
            XCTAssertEqual(p.parse($0, requestMethod: .get, into: &h), .failed(.invalidResponse))
        }
        p.reset()
        b("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n").withUnsafeBytes {
            XCTAssertEqual(p.parse($0, requestMethod: .get, into: &h), .complete)
        }
    }
}
