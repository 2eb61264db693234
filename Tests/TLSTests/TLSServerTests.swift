import Foundation
import Reactor
@testable import TLS
import XCTest

/// The TLS server driven by the real `openssl s_client`.
final class TLSServerTests: XCTestCase {
    var certs: TestCertificates { TestCertificates.shared }
    var server: TestTLSServer!
    var warnings: [String] = []

    override func setUpWithError() throws {
        let context = try TLSServerContext(defaultCertificate: certs.source("default", hosts: []), warn: { _ in })
        let problems = context.update([
            certs.source("demo", hosts: ["demo.localhost"]),
            certs.source("api", hosts: ["API.localhost"]),
            certs.source("apps", hosts: ["*.apps.localhost"]),
            certs.source("chained", hosts: ["chained.localhost"], withChain: true),
        ])
        XCTAssertEqual(problems, [])
        server = try TestTLSServer(context: context)
    }

    override func tearDown() {
        server?.stop()
        server = nil
    }

    func testExactHostGetsItsCertificate() {
        let out = sClient(port: server.port, ["-servername", "demo.localhost"])
        XCTAssertEqual(servedSubject(out), "CN = demo.localhost", out)
        XCTAssertTrue(out.contains("HTTP/1.1 200 OK"), out)
        XCTAssertEqual(server.served.last?.serverName, "demo.localhost")
        XCTAssertEqual(server.served.last?.request, "GET / HTTP/1.0\r\n\r\n")
    }

    func testExactHostIsCaseInsensitiveAndRSAWorks() {
        let out = sClient(port: server.port, ["-servername", "Api.LocalHost"])
        XCTAssertEqual(servedSubject(out), "CN = api.localhost", out)
        XCTAssertTrue(out.contains("Server public key is 2048 bit"), out)
    }

    /// Kubernetes Ingress: `*.apps.localhost` covers exactly one label.
    func testWildcardCoversOneLabel() {
        let out = sClient(port: server.port, ["-servername", "shop.apps.localhost"])
        XCTAssertEqual(servedSubject(out), "CN = *.apps.localhost", out)
        let deeper = sClient(port: server.port, ["-servername", "a.b.apps.localhost"])
        XCTAssertEqual(servedSubject(deeper), "CN = test default", deeper)
        let bare = sClient(port: server.port, ["-servername", "apps.localhost"])
        XCTAssertEqual(servedSubject(bare), "CN = test default", bare)
    }

    func testUnknownNameGetsDefaultCertificate() {
        let out = sClient(port: server.port, ["-servername", "unknown.example"])
        XCTAssertEqual(servedSubject(out), "CN = test default", out)
        XCTAssertTrue(out.contains("HTTP/1.1 200 OK"), out)
    }

    func testNoSNIGetsDefaultCertificate() {
        let out = sClient(port: server.port, ["-noservername"])
        XCTAssertEqual(servedSubject(out), "CN = test default", out)
        XCTAssertNil(server.served.last?.serverName)
    }

    func testFullChainIsSent() {
        let out = sClient(port: server.port, ["-servername", "chained.localhost", "-showcerts", "-CAfile", certs.path("ca.crt"), "-verify_return_error"])
        XCTAssertTrue(out.contains("0 s:CN = chained.localhost"), out)
        XCTAssertTrue(out.contains("1 s:CN = Portico Test Intermediate"), out)
        XCTAssertTrue(out.contains("Verify return code: 0 (ok)"), out)
    }

    func testTLS13IsNegotiatedByDefault() {
        let out = sClient(port: server.port, ["-servername", "demo.localhost"])
        XCTAssertTrue(out.contains("New, TLSv1.3"), out)
        XCTAssertEqual(server.served.last?.version, "TLSv1.3")
    }

    func testTLS12Works() {
        let out = sClient(port: server.port, ["-servername", "demo.localhost", "-tls1_2"])
        XCTAssertTrue(out.contains("Protocol  : TLSv1.2"), out)
        XCTAssertTrue(out.contains("ECDHE-ECDSA-AES"), out)
        XCTAssertEqual(server.served.last?.version, "TLSv1.2")
    }

    func testTLS11IsRefused() {
        // SECLEVEL=0 so that the client itself is willing to speak TLS 1.1.
        let out = sClient(port: server.port, ["-servername", "demo.localhost", "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"])
        XCTAssertNil(servedSubject(out), out)
        XCTAssertFalse(out.contains("HTTP/1.1 200 OK"), out)
        waitForServed(1)
        guard case .failed(let reason)? = server.served.last?.status else {
            return XCTFail("expected a failed handshake, got \(String(describing: server.served.last))")
        }
        XCTAssertTrue(reason.contains("unsupported protocol"), reason)
    }

    /// Mozilla intermediate: TLS 1.2 only with ECDHE and AEAD ciphers.
    func testWeakTLS12CiphersAreRefused() {
        for cipher in ["AES128-SHA", "AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-SHA"] {
            let out = sClient(port: server.port, ["-servername", "demo.localhost", "-tls1_2", "-cipher", cipher])
            XCTAssertFalse(out.contains("HTTP/1.1 200 OK"), "\(cipher): \(out)")
        }
        let good = sClient(port: server.port, ["-servername", "demo.localhost", "-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"])
        XCTAssertTrue(good.contains("HTTP/1.1 200 OK"), good)
    }

    /// Key exchange groups: X25519 and P-256 only.
    func testGroups() {
        let p256 = sClient(port: server.port, ["-servername", "demo.localhost", "-groups", "P-256"])
        XCTAssertTrue(p256.contains("HTTP/1.1 200 OK"), p256)
        let p384 = sClient(port: server.port, ["-servername", "demo.localhost", "-groups", "P-384"])
        XCTAssertFalse(p384.contains("HTTP/1.1 200 OK"), p384)
        let x25519 = sClient(port: server.port, ["-servername", "demo.localhost", "-groups", "X25519"])
        XCTAssertTrue(x25519.contains("Server Temp Key: X25519"), x25519)
    }

    func testALPNHTTP11IsNegotiated() {
        let out = sClient(port: server.port, ["-servername", "demo.localhost", "-alpn", "h2,http/1.1"])
        XCTAssertTrue(out.contains("ALPN protocol: http/1.1"), out)
        XCTAssertEqual(server.served.last?.alpn, "http/1.1")
    }

    func testALPNWithoutCommonProtocolStillConnects() {
        let out = sClient(port: server.port, ["-servername", "demo.localhost", "-alpn", "h2"])
        XCTAssertTrue(out.contains("No ALPN negotiated"), out)
        XCTAssertTrue(out.contains("HTTP/1.1 200 OK"), out)
    }

    func testSessionResumptionTLS13() throws {
        let file = certs.path("session-\(UUID().uuidString).pem")
        let first = sClient(port: server.port, ["-servername", "demo.localhost", "-sess_out", file])
        XCTAssertTrue(first.contains("New, TLSv1.3"), first)
        let second = sClient(port: server.port, ["-servername", "demo.localhost", "-sess_in", file])
        XCTAssertTrue(second.contains("Reused, TLSv1.3"), second)
        XCTAssertEqual(server.served.last?.resumed, true)
    }

    /// Regression: a resumed TLS 1.3 connection got no new ticket, and clients use a TLS 1.3
    /// ticket once, so every other connection of wrk's pattern was a full handshake.
    func testResumedTLS13ConnectionGetsAFreshTicket() throws {
        let file = certs.path("session-\(UUID().uuidString).pem")
        _ = sClient(port: server.port, ["-servername", "demo.localhost", "-sess_out", file])
        let resumed = sClient(port: server.port, ["-servername", "demo.localhost", "-sess_in", file, "-msg"])
        XCTAssertTrue(resumed.contains("Reused, TLSv1.3"), resumed)
        XCTAssertTrue(resumed.contains("NewSessionTicket"), "a resumed connection is given a new ticket:\n\(resumed)")
    }

    func testSessionResumptionTLS12() throws {
        let file = certs.path("session-\(UUID().uuidString).pem")
        let first = sClient(port: server.port, ["-servername", "api.localhost", "-tls1_2", "-sess_out", file])
        XCTAssertTrue(first.contains("New, TLSv1.2"), first)
        let second = sClient(port: server.port, ["-servername", "api.localhost", "-tls1_2", "-sess_in", file])
        XCTAssertTrue(second.contains("Reused, TLSv1.2"), second)
    }

    /// TLS 1.2 clients keep using their ticket, so a resumption with the current key issues no
    /// new one (as nginx and OpenSSL's own ticket keys do: a ticket costs a session encoding, an
    /// encryption and a handshake message); a ticket of the previous key is replaced.
    func testResumedTLS12ConnectionKeepsItsTicketUnlessTheKeyRotated() throws {
        let file = certs.path("session-\(UUID().uuidString).pem")
        let first = sClient(port: server.port, ["-servername", "api.localhost", "-tls1_2", "-sess_out", file, "-msg"])
        XCTAssertTrue(first.contains("NewSessionTicket"), "a full handshake issues a ticket:\n\(first)")
        let resumed = sClient(port: server.port, ["-servername", "api.localhost", "-tls1_2", "-sess_in", file, "-msg"])
        XCTAssertTrue(resumed.contains("Reused, TLSv1.2"), resumed)
        XCTAssertFalse(resumed.contains("NewSessionTicket"), "the same ticket goes on:\n\(resumed)")
        server.context.rotateTicketKeys()
        let rotated = sClient(port: server.port, ["-servername", "api.localhost", "-tls1_2", "-sess_in", file, "-msg"])
        XCTAssertTrue(rotated.contains("Reused, TLSv1.2"), rotated)
        XCTAssertTrue(rotated.contains("NewSessionTicket"), "a ticket of the previous key is replaced:\n\(rotated)")
    }

    /// Tickets of the previous key still resume after one rotation, not after two.
    func testTicketKeyRotationKeepsThePreviousKey() throws {
        let file = certs.path("session-\(UUID().uuidString).pem")
        _ = sClient(port: server.port, ["-servername", "demo.localhost", "-sess_out", file])
        server.context.rotateTicketKeys()
        let afterOne = sClient(port: server.port, ["-servername", "demo.localhost", "-sess_in", file])
        XCTAssertTrue(afterOne.contains("Reused, TLSv1.3"), afterOne)
        server.context.rotateTicketKeys()
        server.context.rotateTicketKeys()
        let afterTwo = sClient(port: server.port, ["-servername", "demo.localhost", "-sess_in", file])
        XCTAssertTrue(afterTwo.contains("New, TLSv1.3"), afterTwo)
        XCTAssertTrue(afterTwo.contains("HTTP/1.1 200 OK"), afterTwo)
    }

    /// A session made under one certificate does not resume on a connection served another
    /// (it would skip authenticating the second host); it does under a shared wildcard one.
    func testNoResumptionAcrossCertificates() {
        for version in ["-tls1_3", "-tls1_2"] {
            let file = certs.path("session-\(UUID().uuidString).pem")
            _ = sClient(port: server.port, ["-servername", "demo.localhost", version, "-sess_out", file])
            let other = sClient(port: server.port, ["-servername", "api.localhost", version, "-sess_in", file])
            XCTAssertTrue(other.contains("New, TLSv1."), "\(version): \(other)")
            XCTAssertEqual(servedSubject(other), "CN = api.localhost", other)
            let toDefault = sClient(port: server.port, ["-noservername", version, "-sess_in", file])
            XCTAssertTrue(toDefault.contains("New, TLSv1."), "\(version): \(toDefault)")
            let wildcard = certs.path("session-\(UUID().uuidString).pem")
            _ = sClient(port: server.port, ["-servername", "a.apps.localhost", version, "-sess_out", wildcard])
            let sibling = sClient(port: server.port, ["-servername", "b.apps.localhost", version, "-sess_in", wildcard])
            XCTAssertTrue(sibling.contains("Reused, TLSv1."), "\(version): \(sibling)")
        }
    }

    /// TLS 1.2 without tickets: the server's session cache.
    func testSessionCacheResumptionTLS12() {
        let file = certs.path("session-\(UUID().uuidString).pem")
        _ = sClient(port: server.port, ["-servername", "demo.localhost", "-tls1_2", "-no_ticket", "-sess_out", file])
        let again = sClient(port: server.port, ["-servername", "demo.localhost", "-tls1_2", "-no_ticket", "-sess_in", file])
        XCTAssertTrue(again.contains("Reused, TLSv1.2"), again)
        let other = sClient(port: server.port, ["-servername", "api.localhost", "-tls1_2", "-no_ticket", "-sess_in", file])
        XCTAssertTrue(other.contains("New, TLSv1.2"), other)
    }

    func testServerNameExtensionParsing() {
        func parse(_ bytes: [UInt8]) -> String? { bytes.withUnsafeBufferPointer { hostName(fromServerNameExtension: $0) } }
        let name = Array("demo.localhost".utf8)
        XCTAssertEqual(parse([0, UInt8(name.count + 3), 0, 0, UInt8(name.count)] + name), "demo.localhost")
        XCTAssertNil(parse([0, 5, 0, 0, 9, 0x61, 0x62]))
        XCTAssertNil(parse([0]))
        XCTAssertNil(parse([0, 3, 0, 0, 0]))
    }

    /// A session started on one certificate resumes on the same name after the store changed.
    func testResumptionSurvivesUpdate() {
        let file = certs.path("session-\(UUID().uuidString).pem")
        _ = sClient(port: server.port, ["-servername", "shop.apps.localhost", "-sess_out", file])
        _ = server.context.update([certs.source("apps", hosts: ["*.apps.localhost"])])
        let again = sClient(port: server.port, ["-servername", "shop.apps.localhost", "-sess_in", file])
        XCTAssertTrue(again.contains("Reused, TLSv1.3"), again)
    }

    func testPlainHTTPIsDetected() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = server.port.bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        XCTAssertEqual(rc, 0)
        let request = "GET / HTTP/1.1\r\nHost: demo.localhost\r\n\r\n"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        var answer = [UInt8](repeating: 0, count: 512)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let n = recv(fd, &answer, answer.count, 0)
        XCTAssertGreaterThan(n, 0)
        XCTAssertTrue(String(decoding: answer[0..<max(0, n)], as: UTF8.self).hasPrefix("HTTP/1.1 400 Bad Request"))
        waitForServed(1)
        XCTAssertEqual(server.served.last?.status, .plainHTTP)
    }

    func testGarbageIsNotPlainHTTP() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = server.port.bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var bytes: [UInt8] = [0x01, 0x02, 0x03]
        _ = send(fd, &bytes, 3, 0)
        let before = server.served.count
        waitForServed(before + 1)
        guard case .failed(let reason)? = server.served.last?.status else { return XCTFail("\(String(describing: server.served.last))") }
        XCTAssertTrue(reason.contains("not a TLS handshake"), reason)
    }

    func testClientVanishingMidHandshakeFails() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = server.port.bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        // The first 5 bytes of a handshake record header, then gone.
        var bytes: [UInt8] = [0x16, 0x03, 0x01, 0x02, 0x00]
        _ = send(fd, &bytes, bytes.count, 0)
        close(fd)
        waitForServed(1)
        guard case .failed? = server.served.last?.status else { return XCTFail("\(String(describing: server.served.last))") }
        // The server keeps serving.
        XCTAssertEqual(servedSubject(sClient(port: server.port, ["-servername", "demo.localhost"])), "CN = demo.localhost")
    }

    /// update() takes effect for the next handshake.
    func testUpdateSwapsCertificate() {
        XCTAssertEqual(servedSubject(sClient(port: server.port, ["-servername", "demo.localhost"])), "CN = demo.localhost")
        let problems = server.context.update([certs.source("demo2", hosts: ["demo.localhost"])])
        XCTAssertEqual(problems, [])
        XCTAssertEqual(servedSubject(sClient(port: server.port, ["-servername", "demo.localhost"])), "CN = demo.localhost rotated")
        // Hosts that were dropped fall back to the default.
        XCTAssertEqual(servedSubject(sClient(port: server.port, ["-servername", "api.localhost"])), "CN = test default")
        XCTAssertEqual(server.context.subject(forServerName: "DEMO.localhost."), "demo.localhost rotated")
    }

    private func waitForServed(_ count: Int) {
        let deadline = Date().addingTimeInterval(5)
        while server.served.count < count && Date() < deadline { usleep(10_000) }
    }
}
