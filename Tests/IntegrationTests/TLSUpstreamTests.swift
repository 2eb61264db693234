// Upstream TLS (portico.io/backend-protocol: HTTPS): the proxy is an OpenSSL client towards the
// pod, verifying its certificate with the CA of a Secret by default; `openssl s_server -www`
// plays the HTTPS pod (HTTP/1.0, a status page as body, then close).

import Foundation
import Glibc
import XCTest

final class TLSUpstreamTests: XCTestCase {
    struct State {
        var server: PorticoServer
        var pod: ManagedProcess
    }

    static let shared = SharedFixture<State> { fx in
        let certs = try TestCertificates(in: fx.dir)
        let podPort = try freePort()
        // The pod serves shop.test's certificate (issued by the test CA).
        let pod = try ManagedProcess(name: "pod-s_server", executable: "/usr/bin/openssl",
                                     arguments: ["s_server", "-accept", "127.0.0.1:\(podPort)", "-cert", certs.path("shop.crt"),
                                                 "-key", certs.path("shop.key"), "-www", "-quiet"], logDir: fx.dir)
        podProcesses.append(pod)
        guard waitUntil(timeout: 10, { (try? RawClient(port: podPort, timeout: 1)) != nil }) else {
            throw HarnessError("openssl s_server did not listen: \(pod.stderr)")
        }
        let https = "portico.io/backend-protocol"
        let route: [Manifest.Path] = [.init("/", "Prefix", "svc-pod")]
        let m = try fx.dir.write("upstream.yaml", Manifest.join([
            Manifest.service("svc-pod", endpoints: ["127.0.0.1:\(podPort)"]),
            """
            apiVersion: v1
            kind: Secret
            metadata:
              name: pod-ca
              namespace: default
            type: Opaque
            data:
              ca.crt: \(Data(try certs.text("ca.crt").utf8).base64EncodedString())

            """,
            """
            apiVersion: v1
            kind: Secret
            metadata:
              name: bad-ca
              namespace: default
            type: Opaque
            data:
              ca.crt: \(Data("not a certificate\n".utf8).base64EncodedString())

            """,
            TLSManifest.ingress("bad-ca", host: "bad-ca.test", paths: route, secret: nil,
                                annotations: [https: "HTTPS", "portico.io/proxy-ssl-secret": "bad-ca"]),
            TLSManifest.ingress("verified", host: "verified.test", paths: route, secret: nil,
                                annotations: [https: "HTTPS", "portico.io/proxy-ssl-secret": "pod-ca",
                                              "portico.io/proxy-ssl-name": "shop.test"]),
            TLSManifest.ingress("wrong-name", host: "wrong-name.test", paths: route, secret: nil,
                                annotations: [https: "HTTPS", "portico.io/proxy-ssl-secret": "pod-ca",
                                              "portico.io/proxy-ssl-name": "api.test"]),
            TLSManifest.ingress("system-store", host: "system-store.test", paths: route, secret: nil,
                                annotations: [https: "HTTPS"]),
            TLSManifest.ingress("no-verify", host: "no-verify.test", paths: route, secret: nil,
                                annotations: [https: "HTTPS", "portico.io/proxy-ssl-verify": "false"]),
        ]))
        let server = try fx.serve([m], ["--tries", "1", "--eject-after", "0"])
        return State(server: server, pod: pod)
    }

    private static var podProcesses: [ManagedProcess] = []

    override class func tearDown() {
        shared.stop()
        for p in podProcesses { p.stop() }
        podProcesses = []
        super.tearDown()
    }

    private func get(_ host: String) throws -> RawResponse {
        let st = try Self.shared.get()
        return try RawClient.exchange(port: st.server.httpPort, "GET /pod HTTP/1.1\r\nHost: \(host)\r\n\r\n")
    }

    func testVerifiedUpstreamTLS() throws {
        let r = try get("verified.test")
        XCTAssertEqual(r.status, 200, r.rawHead + r.bodyText)
        XCTAssertTrue(r.bodyText.contains("Ciphers") || r.bodyText.contains("s_server"), "s_server's -www page\n\(r.bodyText.prefix(400))")
        // The pod saw SNI shop.test (its page lists the session; the proxy sent TLS 1.2 or 1.3).
        XCTAssertTrue(r.bodyText.contains("TLSv1.3") || r.bodyText.contains("TLSv1.2"), String(r.bodyText.prefix(600)))
    }

    /// The status and the log written while answering, for a verification failure.
    private func getLogging(_ host: String) throws -> (RawResponse, String) {
        let st = try Self.shared.get()
        let before = st.server.process.stderr.count
        let r = try get(host)
        Thread.sleep(forTimeInterval: 0.1)
        return (r, String(st.server.process.stderr.dropFirst(before)))
    }

    func testWrongNameIsRefused() throws {
        let (r, log) = try getLogging("wrong-name.test")
        XCTAssertEqual(r.status, 502, "the pod's certificate does not name api.test\n\(r.rawHead)")
        XCTAssertFalse(lines(log, containing: ["verif"]).isEmpty,
                       "a 502 for the certificate verification (not for some other reason) is logged\n\(log)")
    }

    func testSystemStoreDoesNotTrustTheTestCA() throws {
        let (r, log) = try getLogging("system-store.test")
        XCTAssertEqual(r.status, 502, "verification is on by default")
        XCTAssertFalse(lines(log, containing: ["verif"]).isEmpty, "the verification failure is logged\n\(log)")
    }

    /// A CA Secret whose ca.crt holds no certificate: a 502 that names the Secret and its key.
    func testUnusableCASecretIsNamedInThe502() throws {
        let r = try get("bad-ca.test")
        XCTAssertEqual(r.status, 502, r.rawHead)
        XCTAssertTrue(r.bodyText.contains("Secret default/bad-ca ca.crt: no PEM certificate found"), r.bodyText)
    }

    func testVerificationOffWhenAsked() throws {
        XCTAssertEqual(try get("no-verify.test").status, 200)
    }
}
