import XCTest
final class PlaceholderDataplaneTests: XCTestCase { func testBuilds() {} }
