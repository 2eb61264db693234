// swift-tools-version:6.0
import PackageDescription

// The fuzz targets, as a package of their own so that the main package stays untouched: the
// modules under test are the main package's own sources (Linked/* are symlinks into ../Sources),
// built here with libFuzzer coverage and ASan by run.sh:
//   swift build -c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
// Each fuzz-* executable's @main hands its test function to libFuzzer's LLVMFuzzerRunDriver.
// Exclusivity checks stay on here (the main package turns them off on the hot path): a fuzzer
// should trap on every bug it can see.
let swift5: [SwiftSetting] = [.swiftLanguageMode(.v5)]

let package = Package(
    name: "portico-fuzz",
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        .target(name: "CSystem", path: "Linked/CSystem"),
        .systemLibrary(name: "CSQLite", path: "Linked/CSQLite", pkgConfig: "sqlite3"),
        .systemLibrary(name: "COpenSSL", path: "Linked/COpenSSL", pkgConfig: "openssl"),
        .target(name: "Reactor", dependencies: ["CSystem"], path: "Linked/Reactor", swiftSettings: swift5),
        .target(name: "HTTP1", path: "Linked/HTTP1", swiftSettings: swift5),
        .target(name: "Server", dependencies: ["Reactor", "HTTP1", "CSystem"], path: "Linked/Server", swiftSettings: swift5),
        .target(name: "Objects", dependencies: [.product(name: "Yams", package: "Yams")], path: "Linked/Objects", swiftSettings: swift5),
        .target(name: "ControlPlane", dependencies: ["Objects", "Server", "Reactor", "HTTP1", "CSQLite", "CSystem", "COpenSSL"],
                path: "Linked/ControlPlane", swiftSettings: swift5),
        .target(name: "CFuzzDriver"),
        .target(name: "FuzzSupport", dependencies: ["CFuzzDriver"], swiftSettings: swift5),
        .executableTarget(name: "fuzz-request", dependencies: ["HTTP1", "FuzzSupport"], swiftSettings: swift5),
        .executableTarget(name: "fuzz-response", dependencies: ["HTTP1", "FuzzSupport"], swiftSettings: swift5),
        .executableTarget(name: "fuzz-chunked", dependencies: ["HTTP1", "FuzzSupport"], swiftSettings: swift5),
        .executableTarget(name: "fuzz-manifest", dependencies: ["Objects", "FuzzSupport"], swiftSettings: swift5),
        .executableTarget(name: "fuzz-api", dependencies: ["ControlPlane", "Objects", "FuzzSupport"], swiftSettings: swift5),
    ]
)
