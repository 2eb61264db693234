import Foundation
import TLS
import XCTest
@testable import LoadKit

/// https against `TestServer` with TLS (keep-alive, the SNI name recorded per connection): a
/// scenario's per-entry `host:` must be the SNI of the connection its request travels on.
final class TLSHostTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "lt-sni-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for name in ["a.test", "b.test"] {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            p.arguments = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                           "-keyout", "\(dir)/\(name).key", "-out", "\(dir)/\(name).crt", "-days", "2",
                           "-subj", "/CN=\(name)", "-addext", "subjectAltName=DNS:\(name)"]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            p.waitUntilExit()
            XCTAssertEqual(p.terminationStatus, 0, "openssl req for \(name)")
        }
        // Trust both self-signed certificates.
        try (read("a.test.crt") + read("b.test.crt")).write(toFile: "\(dir)/ca.pem", atomically: true, encoding: .utf8)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func read(_ file: String) throws -> String { try String(contentsOfFile: "\(dir)/\(file)", encoding: .utf8) }

    func source(_ name: String) throws -> CertificateSource {
        CertificateSource(name: name, hosts: [name], certPEM: Array(try read("\(name).crt").utf8),
                          keyPEM: Array(try read("\(name).key").utf8))
    }

    /// A keep-alive TLS server serving a.test's certificate by default and b.test's for SNI b.test.
    func server() throws -> TestServer {
        let context = try TLSServerContext(defaultCertificate: try source("a.test"), warn: { _ in })
        XCTAssertEqual(context.update([try source("b.test")]), [])
        return try TestServer(tls: context)
    }

    func testEachRequestTravelsOnAConnectionWithItsHostAsSNI() throws {
        let server = try server()
        defer { server.stop() }
        let file = "\(dir)/two-hosts.yaml"
        try """
        target: https://a.test:\(server.port)
        requests:
          - { path: /a, host: a.test }
          - { path: /b, host: b.test }
        """.write(toFile: file, atomically: true, encoding: .utf8)
        var a = LoadArguments()
        a.scenario = file
        a.connectTo = "127.0.0.1:\(server.port)"
        a.cacert = "\(dir)/ca.pem"
        a.connections = 2
        a.requests = 200
        let r = try LoadRunner.run(try a.makeConfig())
        XCTAssertEqual(r.responses, 200, "\(r.errors) \(r.warnings)")
        XCTAssertEqual(r.errorCount, 0)
        let arrivals = server.arrivals
        XCTAssertEqual(arrivals.count, 200)
        XCTAssertEqual(arrivals.filter { $0.sni != $0.host }.count, 0,
                       "requests on a connection opened for another name: \(arrivals.filter { $0.sni != $0.host }.prefix(3))")
        XCTAssertGreaterThan(server.count("/a"), 50)
        XCTAssertGreaterThan(server.count("/b"), 50)
        // Consecutive picks of different hosts reconnect, and each reconnect is counted.
        XCTAssertGreaterThan(r.connectionsOpened, 2)
        XCTAssertEqual(r.connectionsOpened, UInt64(server.connections))
    }

    func testCACertWithoutACertificateNamesTheFile() throws {
        let file = "\(dir)/not-a-cert.pem"
        try "not a certificate\n".write(toFile: file, atomically: true, encoding: .utf8)
        var a = LoadArguments()
        a.url = "https://a.test:9/"
        a.connectTo = "127.0.0.1:9"
        a.cacert = file
        // Found with the other arguments, before any connection.
        XCTAssertThrowsError(try a.makeConfig()) { e in
            XCTAssertTrue(e is UsageError)
            XCTAssertEqual("\(e)", "TLS setup: --cacert '\(file)': no PEM certificate found")
        }
    }

    func testOneHostKeepsItsConnections() throws {
        let server = try server()
        defer { server.stop() }
        var a = LoadArguments()
        a.url = "https://b.test:\(server.port)/"
        a.connectTo = "127.0.0.1:\(server.port)"
        a.cacert = "\(dir)/ca.pem"
        a.connections = 2
        a.requests = 100
        let r = try LoadRunner.run(try a.makeConfig())
        XCTAssertEqual(r.responses, 100, "\(r.errors) \(r.warnings)")
        XCTAssertEqual(r.connectionsOpened, 2)
        XCTAssertEqual(Set(server.arrivals.map { $0.sni }), ["b.test"])
    }
}
