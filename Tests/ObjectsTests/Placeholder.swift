import XCTest
final class PlaceholderObjectsTests: XCTestCase { func testBuilds() {} }
