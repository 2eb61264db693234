import XCTest
@testable import LoadKit

final class ParsingTests: XCTestCase {
    func testURLParts() throws {
        let u = try LoadURL(parsing: "http://example.local:8080/a/b?x=1#frag")
        XCTAssertEqual(u, LoadURL(isTLS: false, host: "example.local", port: 8080, target: "/a/b?x=1"))
        XCTAssertEqual(u.authority, "example.local:8080")
        let s = try LoadURL(parsing: "https://[::1]/")
        XCTAssertEqual(s.port, 443)
        XCTAssertEqual(s.authority, "[::1]")
        XCTAssertEqual(try LoadURL(parsing: "http://h").target, "/")
        XCTAssertEqual(try LoadURL(parsing: "http://h?q").target, "/?q")
    }
}
