// swift-tools-version:6.0
import PackageDescription

// Swift 5 language mode: the data plane shares nothing between threads except the RouteTable
// snapshot handed over through a mailbox, and strict-concurrency annotations on raw pointers and
// epoll callbacks would add noise without catching anything the design does not already rule out.
let swift5: [SwiftSetting] = [.swiftLanguageMode(.v5)]

// The hot-path modules keep their state in final classes owned by one thread; Swift's dynamic
// exclusivity checks on every class-property access cost ~40% of the proxy's instructions per
// request under callgrind (swift_beginAccess and its thread-local access set), and catch nothing
// the single-owner design does not already rule out. Static (compile-time) checks stay on.
let hotPath: [SwiftSetting] = swift5 + [.unsafeFlags(["-enforce-exclusivity=unchecked"])]

let package = Package(
    name: "portico",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "portico", targets: ["portico"]),
        .executable(name: "portico-load", targets: ["portico-load"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        .target(name: "CSystem"),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .target(name: "TLS", dependencies: ["COpenSSL", "Reactor", "CSystem"], swiftSettings: hotPath),
        .target(name: "Reactor", dependencies: ["CSystem"], swiftSettings: hotPath),
        .target(name: "HTTP1", swiftSettings: hotPath),
        .target(name: "Dataplane", dependencies: ["Reactor", "HTTP1", "TLS", "CSystem"], swiftSettings: hotPath),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .target(name: "ControlPlane", dependencies: ["Objects", "Server", "Reactor", "HTTP1", "CSQLite", "CSystem", "COpenSSL"], swiftSettings: swift5),
        .target(name: "Server", dependencies: ["Reactor", "HTTP1", "CSystem"], swiftSettings: hotPath),
        .target(name: "Objects", dependencies: ["Yams"], swiftSettings: swift5),
        .target(name: "RouteCompiler", dependencies: ["Objects", "Dataplane"], swiftSettings: swift5),
        .executableTarget(
            name: "portico",
            dependencies: [
                "Reactor", "HTTP1", "Dataplane", "Objects", "RouteCompiler", "CSystem", "Server", "ControlPlane",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swift5),
        .executableTarget(
            name: "portico-load",
            dependencies: [
                "LoadKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "loadtest/Sources/portico-load",
            swiftSettings: swift5),
        .target(
            name: "LoadKit",
            dependencies: [
                "Reactor", "HTTP1", "TLS", "CSystem", "Yams",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "loadtest/Sources/LoadKit",
            swiftSettings: hotPath),
        .testTarget(name: "LoadKitTests", dependencies: ["LoadKit", "TLS"], path: "loadtest/Tests/LoadKitTests", swiftSettings: swift5),
        .testTarget(name: "ControlPlaneTests", dependencies: ["ControlPlane", "Objects", "Reactor"], swiftSettings: swift5),
        .testTarget(name: "TLSTests", dependencies: ["TLS"], swiftSettings: swift5),
        .testTarget(name: "HTTP1Tests", dependencies: ["HTTP1"], swiftSettings: swift5),
        .testTarget(name: "DataplaneTests", dependencies: ["Dataplane", "Reactor", "HTTP1"], swiftSettings: swift5),
        .testTarget(name: "ObjectsTests", dependencies: ["Objects", "RouteCompiler", "Dataplane"], swiftSettings: swift5),
        .testTarget(name: "IntegrationTests", dependencies: [], swiftSettings: swift5),
    ]
)
