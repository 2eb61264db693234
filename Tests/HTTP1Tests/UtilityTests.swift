import XCTest
@testable import HTTP1

final class UtilityTests: XCTestCase {
    func testEqualsIgnoringCase() {
        let s = b("Content-LENGTH: x")
        s.withUnsafeBytes { buf in
            XCTAssertTrue(Bytes.equalsIgnoringCase(buf, 0..<14, "content-length"))
            XCTAssertFalse(Bytes.equalsIgnoringCase(buf, 0..<14, "content-lengtx"))
            XCTAssertFalse(Bytes.equalsIgnoringCase(buf, 0..<13, "content-length"))
            XCTAssertFalse(Bytes.equalsIgnoringCase(buf, 10..<24, "content-length"), "out of bounds is unequal")
            XCTAssertTrue(Bytes.equalsIgnoringCase(buf, 3..<3, ""))
        }
        // "-" must not match CR, "@" must not match "`"
        b("a\rb").withUnsafeBytes { XCTAssertFalse(Bytes.equalsIgnoringCase($0, 0..<3, "a-b")) }
        b("@").withUnsafeBytes { XCTAssertFalse(Bytes.equalsIgnoringCase($0, 0..<1, "`")) }
    }

    func testFind() {
        b("abc:def:").withUnsafeBytes { buf in
            XCTAssertEqual(Bytes.find(UInt8(ascii: ":"), in: buf, 0..<8), 3)
            XCTAssertEqual(Bytes.find(UInt8(ascii: ":"), in: buf, 4..<8), 7)
            XCTAssertNil(Bytes.find(UInt8(ascii: ":"), in: buf, 4..<7))
            XCTAssertNil(Bytes.find(UInt8(ascii: ":"), in: buf, 4..<4))
            XCTAssertNil(Bytes.find(UInt8(ascii: ":"), in: buf, 4..<100))
        }
    }

    func testReasonPhrases() {
        XCTAssertEqual("\(HTTPStatus.reasonPhrase(200))", "OK")
        XCTAssertEqual("\(HTTPStatus.reasonPhrase(404))", "Not Found")
        XCTAssertEqual("\(HTTPStatus.reasonPhrase(414))", "URI Too Long")
        XCTAssertEqual("\(HTTPStatus.reasonPhrase(431))", "Request Header Fields Too Large")
        XCTAssertEqual("\(HTTPStatus.reasonPhrase(502))", "Bad Gateway")
        XCTAssertEqual("\(HTTPStatus.reasonPhrase(599))", "")
        for f in ParseFailure.allCases {
            XCTAssertNotEqual("\(HTTPStatus.reasonPhrase(f.status))", "", "\(f)")
        }
    }

    func testIMFFixdate() {
        func d(_ t: Int64) -> String { String(decoding: HTTPDate.imfFixdate(epochSeconds: t), as: UTF8.self) }
        XCTAssertEqual(d(784111777), "Sun, 06 Nov 1994 08:49:37 GMT")  // RFC 9110 §5.6.7
        XCTAssertEqual(d(0), "Thu, 01 Jan 1970 00:00:00 GMT")
        XCTAssertEqual(d(951782400), "Tue, 29 Feb 2000 00:00:00 GMT")
        XCTAssertEqual(d(1709251199), "Thu, 29 Feb 2024 23:59:59 GMT")
        XCTAssertEqual(d(4102444800), "Fri, 01 Jan 2100 00:00:00 GMT")
        XCTAssertEqual(d(-1), "Wed, 31 Dec 1969 23:59:59 GMT")
        XCTAssertEqual(d(253402300799), "Fri, 31 Dec 9999 23:59:59 GMT")
        XCTAssertEqual(HTTPDate.imfFixdate(epochSeconds: 1_000_000_000).count, 29)
    }
}
