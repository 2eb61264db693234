import XCTest
final class PlaceholderTLS: XCTestCase { func testBuilds() {} }
