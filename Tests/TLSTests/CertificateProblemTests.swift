import Foundation
@testable import TLS
import XCTest

/// Bad Secrets: each is reported once, naming the Secret and the reason; the rest are served.
final class CertificateProblemTests: XCTestCase {
    var certs: TestCertificates { TestCertificates.shared }

    func makeContext() throws -> TLSServerContext {
        try TLSServerContext(defaultCertificate: certs.source("default", hosts: []), warn: { _ in })
    }

    func testMalformedCertificatePEM() throws {
        let context = try makeContext()
        var bad = certs.source("demo", hosts: ["demo.localhost"])
        // Damage the base64 inside the PEM block.
        let text = String(decoding: bad.certPEM, as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        bad.certPEM = Array((lines[0..<3] + ["!!!!not base64!!!!"] + lines[3...]).joined(separator: "\n").utf8)
        let problems = context.update([bad, certs.source("api", hosts: ["api.localhost"])])
        XCTAssertEqual(problems.count, 1, "\(problems)")
        XCTAssertEqual(problems.first?.secret, "default/demo-tls")
        XCTAssertEqual(problems.first?.isWarning, false)
        XCTAssertTrue(problems.first?.description.hasPrefix("Secret default/demo-tls: tls.crt: malformed PEM certificate") ?? false, "\(problems)")
        XCTAssertEqual(context.subject(forServerName: "demo.localhost"), "test default")
        XCTAssertEqual(context.subject(forServerName: "api.localhost"), "api.localhost")
    }

    func testNotPEMAtAll() throws {
        let context = try makeContext()
        let bad = CertificateSource(name: "shop/empty", hosts: ["shop.localhost"], certPEM: Array("hello".utf8), keyPEM: [])
        let problems = context.update([bad])
        XCTAssertEqual(problems.map(\.description), ["Secret shop/empty: tls.crt: no PEM certificate found"])
    }

    func testMalformedKey() throws {
        let context = try makeContext()
        var bad = certs.source("demo", hosts: ["demo.localhost"])
        bad.keyPEM = Array("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".utf8)
        let problems = context.update([bad])
        XCTAssertEqual(problems.count, 1)
        XCTAssertTrue(problems[0].message.hasPrefix("tls.key: no valid PEM private key"), problems[0].message)
    }

    func testMismatchedKey() throws {
        let context = try makeContext()
        var bad = certs.source("demo", hosts: ["demo.localhost"])
        bad.keyPEM = certs.bytes("apps.key")
        let problems = context.update([bad])
        XCTAssertEqual(problems.map(\.description), ["Secret default/demo-tls: tls.key does not match the certificate in tls.crt"])
        XCTAssertEqual(context.subject(forServerName: "demo.localhost"), "test default")
    }

    func testExpiredCertificateIsServedWithWarning() throws {
        let context = try makeContext()
        let (cert, key) = try XCTUnwrap(TLSServerContext.selfSignedPEM(commonName: "old.localhost", notBefore: -30 * 86400, notAfter: -86400))
        let problems = context.update([CertificateSource(name: "default/old", hosts: ["old.localhost"], certPEM: cert, keyPEM: key)])
        XCTAssertEqual(problems.count, 1)
        XCTAssertEqual(problems.first?.isWarning, true)
        XCTAssertTrue(problems.first?.message.hasPrefix("certificate expired at ") ?? false, "\(problems)")
        XCTAssertEqual(context.subject(forServerName: "old.localhost"), "old.localhost")
    }

    func testNotYetValidCertificateIsServedWithWarning() throws {
        let context = try makeContext()
        let (cert, key) = try XCTUnwrap(TLSServerContext.selfSignedPEM(commonName: "new.localhost", notBefore: 86400, notAfter: 30 * 86400))
        let problems = context.update([CertificateSource(name: "default/new", hosts: ["new.localhost"], certPEM: cert, keyPEM: key)])
        XCTAssertEqual(problems.count, 1)
        XCTAssertEqual(problems.first?.isWarning, true)
        XCTAssertTrue(problems.first?.message.hasPrefix("certificate is not valid before ") ?? false, "\(problems)")
        XCTAssertEqual(context.subject(forServerName: "new.localhost"), "new.localhost")
    }

    func testUnchangedCertificateKeepsItsContextAndItsWarning() throws {
        let context = try makeContext()
        let (cert, key) = try XCTUnwrap(TLSServerContext.selfSignedPEM(commonName: "old.localhost", notBefore: -30 * 86400, notAfter: -86400))
        let old = CertificateSource(name: "default/old", hosts: ["old.localhost"], certPEM: cert, keyPEM: key)
        XCTAssertEqual(context.update([old, certs.source("demo", hosts: ["demo.localhost"])]).count, 1)
        let first = context.contextPointer(forServerName: "demo.localhost")
        // Renamed and re-hosted, same PEM: same SSL_CTX; the expired one is still reported.
        var renamed = certs.source("demo", hosts: ["www.demo.localhost"])
        renamed.name = "other/demo"
        let problems = context.update([old, renamed])
        XCTAssertEqual(problems.map(\.description), [
            "Secret default/old: \(problems.first?.message ?? "")",
            "Secret other/demo: certificate does not cover host www.demo.localhost; clients will reject it",
        ])
        XCTAssertTrue(problems[0].message.hasPrefix("certificate expired"))
        XCTAssertEqual(problems.map(\.isWarning), [true, true])
        XCTAssertEqual(context.contextPointer(forServerName: "www.demo.localhost"), first)
        XCTAssertEqual(context.subject(forServerName: "demo.localhost"), "test default")
        XCTAssertEqual(context.update([certs.source("demo2", hosts: ["www.demo.localhost"])]).count, 1)
        XCTAssertNotEqual(context.contextPointer(forServerName: "www.demo.localhost"), first)
    }

    func testHostNotCoveredByTheCertificateIsAWarning() throws {
        let context = try makeContext()
        let problems = context.update([certs.source("apps", hosts: ["*.apps.localhost", "shop.apps.localhost", "apps.localhost", "*.other.localhost"])])
        XCTAssertEqual(problems.map(\.message), [
            "certificate does not cover host apps.localhost; clients will reject it",
            "certificate does not cover host *.other.localhost; clients will reject it",
        ])
        XCTAssertEqual(context.subject(forServerName: "apps.localhost"), "*.apps.localhost", "still served")
    }

    func testFirstSourceWinsForAHost() throws {
        let context = try makeContext()
        let problems = context.update([certs.source("demo", hosts: ["demo.localhost"]), certs.source("demo2", hosts: ["demo.localhost"])])
        XCTAssertEqual(problems.count, 1)
        XCTAssertEqual(problems.first?.isWarning, true)
        XCTAssertEqual(context.subject(forServerName: "demo.localhost"), "demo.localhost")
    }

    func testBadDefaultCertificateThrows() {
        var bad = certs.source("demo", hosts: [])
        bad.keyPEM = certs.bytes("apps.key")
        XCTAssertThrowsError(try TLSServerContext(defaultCertificate: bad, warn: { _ in })) { error in
            XCTAssertTrue("\(error)".contains("does not match"), "\(error)")
        }
    }

    func testGeneratedDefaultCertificateWarns() throws {
        let warnings = WarningLog()
        let context = try TLSServerContext(defaultCertificate: nil, warn: { warnings.append($0) })
        XCTAssertEqual(context.defaultSubject, "portico default certificate")
        XCTAssertEqual(warnings.lines.count, 1)
        XCTAssertTrue(warnings.lines.first?.contains("self-signed") ?? false)
    }

    func testRSAAndECDSAKeysLoad() throws {
        let context = try makeContext()
        XCTAssertEqual(context.update([certs.source("api", hosts: ["api.localhost"]), certs.source("demo", hosts: ["demo.localhost"])]), [])
    }
}

final class WarningLog: @unchecked Sendable {
    private let lock = NSLock()
    private var _lines: [String] = []
    func append(_ s: String) { lock.lock(); _lines.append(s); lock.unlock() }
    var lines: [String] { lock.lock(); defer { lock.unlock() }; return _lines }
}
