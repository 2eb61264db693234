import Foundation
import XCTest
@testable import LoadKit

/// https against `openssl s_server -www` (one TLS connection at a time, HTTP/1.0 answer, then
/// close): SNI and verification by the URL's host while connecting elsewhere (--connect-to).
final class TLSRunTests: XCTestCase {
    var server: Process?
    var dir = ""
    var port: UInt16 = 0

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "lt-tls-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try run("/usr/bin/openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                                     "-keyout", "\(dir)/key.pem", "-out", "\(dir)/cert.pem", "-days", "2",
                                     "-subj", "/CN=load.test", "-addext", "subjectAltName=DNS:load.test"])
        // A free port: bind :0, note it, release it.
        let probe = try TestServer()
        port = probe.port
        probe.stop()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        p.arguments = ["s_server", "-quiet", "-www", "-accept", "127.0.0.1:\(port)", "-cert", "\(dir)/cert.pem", "-key", "\(dir)/key.pem"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        server = p
        let address = try LoadURL.resolve(host: "127.0.0.1", port: port)
        for _ in 0..<100 {
            if Preflight.connectProblem(address, timeoutNanos: 100_000_000) == nil { return }
            usleep(50_000)
        }
        XCTFail("openssl s_server did not start")
    }

    override func tearDown() {
        server?.terminate()
        server?.waitUntilExit()
        try? FileManager.default.removeItem(atPath: dir)
    }

    func run(_ exe: String, _ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "\(exe) \(args)")
    }

    func config(_ edit: (inout LoadArguments) -> Void) throws -> LoadConfig {
        var a = LoadArguments()
        a.url = "https://load.test:\(port)/"
        a.connectTo = "127.0.0.1:\(port)"
        a.connections = 1
        a.requests = 5
        edit(&a)
        return try a.makeConfig()
    }

    func testVerifiedHandshakeWithSNIFromTheURL() throws {
        let c = try config { $0.cacert = "\(dir)/cert.pem" }
        XCTAssertEqual(c.requests[0].serverName, "load.test")
        let r = try LoadRunner.run(c)
        XCTAssertEqual(r.responses, 5, "\(r.errors) \(r.warnings)")
        XCTAssertEqual(r.statuses, [200: 5])
        XCTAssertEqual(r.connectionsOpened, 5)  // HTTP/1.0 answer, then close
    }

    func testUnknownCAIsAConnectErrorWithTheReason() throws {
        let r = try LoadRunner.run(try config { _ in })
        XCTAssertEqual(r.responses, 0)
        XCTAssertEqual(r.errors[.connect], 5)
        XCTAssertEqual(r.connectionsOpened, 0, "a failed handshake is a connect error, not an opened connection")
        XCTAssertTrue(r.warnings.contains { $0.contains("certificate verify failed") }, "\(r.warnings)")
    }

    func testInsecureSkipsVerification() throws {
        let r = try LoadRunner.run(try config { $0.insecure = true })
        XCTAssertEqual(r.responses, 5, "\(r.errors) \(r.warnings)")
    }
}
