import Foundation
@testable import TLS
import XCTest

/// `--tls-protocols` (nginx's `ssl_protocols`): which versions a server accepts.
final class TLSProtocolsTests: XCTestCase {
    var certs: TestCertificates { TestCertificates.shared }

    func testParsesNginxSpelling() throws {
        XCTAssertEqual(try TLSProtocols(parsing: "TLSv1.2 TLSv1.3"), .all)
        XCTAssertEqual(try TLSProtocols(parsing: "TLSv1.3,TLSv1.2"), .all)
        XCTAssertEqual(try TLSProtocols(parsing: " TLSv1.3 ").description, "TLSv1.3")
        XCTAssertEqual(try TLSProtocols(parsing: "TLSv1.2").description, "TLSv1.2")
    }

    func testRefusesOtherVersionsByName() {
        for (text, expected) in [
            ("TLSv1.1 TLSv1.2", "'TLSv1.1' is not supported: Portico speaks TLSv1.2 and TLSv1.3 only"),
            ("SSLv3", "'SSLv3' is not supported: Portico speaks TLSv1.2 and TLSv1.3 only"),
            ("tlsv1.3", "'tlsv1.3' is not a TLS version (expected TLSv1.2 and/or TLSv1.3)"),
            ("", "no TLS version given (expected TLSv1.2 and/or TLSv1.3)"),
        ] {
            XCTAssertThrowsError(try TLSProtocols(parsing: text), text) { error in
                XCTAssertEqual("\(error)", expected)
            }
        }
    }

    private func server(_ protocols: String) throws -> TestTLSServer {
        let context = try TLSServerContext(defaultCertificate: certs.source("default", hosts: []),
                                           protocols: try TLSProtocols(parsing: protocols), warn: { _ in })
        // Certificates added later (Ingress Secrets) get the same versions.
        XCTAssertEqual(context.update([certs.source("demo", hosts: ["demo.localhost"])]), [])
        return try TestTLSServer(context: context)
    }

    func testTLS13OnlyRefusesTLS12() throws {
        let s = try server("TLSv1.3")
        defer { s.stop() }
        for name in ["demo.localhost", "other.localhost"] {
            let old = sClient(port: s.port, ["-servername", name, "-tls1_2"])
            XCTAssertFalse(old.contains("HTTP/1.1 200 OK"), old)
            XCTAssertTrue(old.contains("protocol version") || old.contains("unsupported protocol"), old)
            let new = sClient(port: s.port, ["-servername", name])
            XCTAssertTrue(new.contains("New, TLSv1.3"), new)
            XCTAssertTrue(new.contains("HTTP/1.1 200 OK"), new)
        }
    }

    func testTLS12OnlyIsChosenByAClientThatOffersBoth() throws {
        let s = try server("TLSv1.2")
        defer { s.stop() }
        for name in ["demo.localhost", "other.localhost"] {
            let out = sClient(port: s.port, ["-servername", name])
            XCTAssertTrue(out.contains("New, TLSv1.2"), out)
            XCTAssertTrue(out.contains("HTTP/1.1 200 OK"), out)
            let refused = sClient(port: s.port, ["-servername", name, "-tls1_3"])
            XCTAssertFalse(refused.contains("HTTP/1.1 200 OK"), refused)
        }
    }
}
