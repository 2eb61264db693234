import XCTest
import HTTP1
import Reactor
@testable import Dataplane

/// The Transfer-Encoding line the proxy writes towards the other side: the codings it passes
/// through undecoded, then chunked in lower case (RFC 9112 §6.1).
final class TransferEncodingForwardingTests: XCTestCase {
    private func forwarded(_ fields: String, chunked: Bool = true) -> String {
        let head = Array("POST / HTTP/1.1\r\nHost: h\r\n\(fields)\r\n".utf8)
        return head.withUnsafeBytes { bytes in
            var p = RequestParser()
            var h = RequestHead()
            XCTAssertEqual(p.parse(bytes, into: &h), .complete, fields)
            let o = Buffer(capacity: 256)
            ClientConnection.appendTransferEncoding(o, bytes, h.fields, chunked: chunked)
            return String(decoding: o.readable, as: UTF8.self)
        }
    }

    func testPlainChunkedIsLowerCase() {
        XCTAssertEqual(forwarded("Transfer-Encoding: chunked\r\n"), "Transfer-Encoding: chunked\r\n")
        XCTAssertEqual(forwarded("Transfer-Encoding: ChUnKeD\r\n"), "Transfer-Encoding: chunked\r\n")
    }

    func testCodingsBeforeChunkedAreKept() {
        XCTAssertEqual(forwarded("Transfer-Encoding: gzip, chunked\r\n"), "Transfer-Encoding: gzip, chunked\r\n")
        XCTAssertEqual(forwarded("Transfer-Encoding: gzip\r\nTransfer-Encoding: CHUNKED\r\n"), "Transfer-Encoding: gzip, chunked\r\n")
        XCTAssertEqual(forwarded("Transfer-Encoding: deflate;level=\"9,x\", gzip ,  chunked\r\n"),
                       "Transfer-Encoding: deflate;level=\"9,x\", gzip, chunked\r\n")
        XCTAssertEqual(forwarded("Transfer-Encoding: ,\r\nTransfer-Encoding: gzip,,chunked\r\n"), "Transfer-Encoding: gzip, chunked\r\n")
    }

    func testNothingWithoutCodings() {
        XCTAssertEqual(forwarded("Content-Length: 0\r\n", chunked: false), "")
    }
}
