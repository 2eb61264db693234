import XCTest
final class PlaceholderLoadKit: XCTestCase { func testBuilds() {} }
