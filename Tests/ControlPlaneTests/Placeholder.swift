import XCTest
final class PlaceholderControlPlane: XCTestCase { func testBuilds() {} }
