// Certificates change live: a rewritten Secret is served to new handshakes right after the reload
// while a keep-alive TLS connection opened before keeps answering; a Secret broken at reload is
// logged and leaves the other hosts served. Also: the generated self-signed default certificate,
// --https off and --tls-protocols.

import Foundation
import Glibc
import XCTest

final class TLSRotationTests: XCTestCase {
    private var fx: Fixture!
    private var sessions: [SClientSession] = []

    override func setUpWithError() throws {
        try Binary.require()
        fx = try Fixture()
    }

    private var servers: [PorticoServer] = []

    override func tearDown() {
        for s in servers where !s.process.isRunning {
            XCTFail("the proxy exited during \(name): \(s.process.stderrTail(60))")
        }
        servers = []
        for s in sessions { s.stop() }
        sessions = []
        fx?.stop()
        fx = nil
        super.tearDown()
    }

    private func writeAtomically(_ path: String, _ text: String) throws {
        let tmp = path + ".tmp-\(UInt32.random(in: 0...UInt32.max))"
        try text.write(toFile: tmp, atomically: false, encoding: .utf8)
        guard rename(tmp, path) == 0 else { throw HarnessError("rename: errno \(errno)") }
    }

    private func reloads(_ server: PorticoServer) -> Int {
        server.process.stderr.components(separatedBy: "reloaded (").count - 1
    }

    /// The certificates, made once for the class (openssl keygen is the slow part).
    private static var certDir: TempDir?
    private static var cachedCerts: TestCertificates?
    private func certificates() throws -> TestCertificates {
        if let c = Self.cachedCerts { return c }
        let d = try TempDir("portico-tls-certs")
        Self.certDir = d
        let c = try TestCertificates(in: d)
        Self.cachedCerts = c
        return c
    }

    override class func tearDown() {
        certDir?.remove()
        certDir = nil; cachedCerts = nil
        super.tearDown()
    }

    func testUnusableDefaultCertificateStopsTheStartWithAClearError() throws {
        let certs = try certificates()
        let m = try fx.dir.write("empty.yaml", Manifest.service("svc-none", endpoints: []))
        for (cert, key, reason) in [("shop.crt", "api.key", "does not match"), ("shop.key", "shop.key", "tls.crt")] {
            let p = try ManagedProcess(name: "serve-bad-default-\(reason.prefix(4))", executable: Binary.path,
                                       arguments: ["serve", "-f", m, "--http", "127.0.0.1:0", "--https", "127.0.0.1:0",
                                                   "--admin", "127.0.0.1:0", "--workers", "1",
                                                   "--api", "127.0.0.1:0", "--data", fx.dir.file("data-\(reason.prefix(4))"),
                                                   "--default-cert", certs.path(cert), "--default-key", certs.path(key)],
                                       logDir: fx.dir)
            let status = p.waitForExit(timeout: 10)
            if status == nil { p.stop() }
            XCTAssertNotNil(status, "exits instead of serving with a bad --default-cert/--default-key (\(cert), \(key))")
            XCTAssertNotEqual(status ?? 0, 0, p.stderr)
            XCTAssertEqual(lines(p.stderr, containing: ["default certificate", reason]).count, 1,
                           "one line says what is wrong with the default certificate\n\(p.stderr)")
        }
    }

    func testHTTPSOffServesTLSHostsOverPlainHTTPWithoutRedirect() throws {
        let certs = try certificates()
        let echo = try fx.echo("off")
        let m = try fx.dir.write("off.yaml", Manifest.join([
            Manifest.service("svc-off", endpoints: [echo.address]),
            TLSManifest.secret("shop-tls", cert: try certs.text("shop.crt"), key: try certs.text("shop.key")),
            TLSManifest.ingress("shop", host: "shop.test", paths: [.init("/", "Prefix", "svc-off")], secret: "shop-tls",
                                annotations: ["portico.io/hsts": "true"]),
        ]))
        // The last --https wins over the harness's own.
        let server = try fx.serve([m], ["--https", "off"])
        servers.append(server)
        XCTAssertFalse(server.process.stderr.contains("https="), server.process.stderr)
        let r = try RawClient.exchange(port: server.httpPort, "GET /x HTTP/1.1\r\nHost: shop.test\r\n\r\n")
        XCTAssertEqual(r.status, 200, "no https listener to redirect to\n\(r.rawHead)")
        XCTAssertNil(r.header("strict-transport-security"))
    }

    /// `--tls-protocols` (nginx's ssl_protocols) reaches the listener for every certificate, and
    /// a version Portico does not speak stops the start with a message naming the flag.
    func testTLSProtocolsFlagLimitsTheVersions() throws {
        let certs = try certificates()
        let echo = try fx.echo("proto")
        let m = try fx.dir.write("proto.yaml", Manifest.join([
            Manifest.service("svc-proto", endpoints: [echo.address]),
            TLSManifest.secret("shop-tls", cert: try certs.text("shop.crt"), key: try certs.text("shop.key")),
            TLSManifest.ingress("shop", host: "shop.test", paths: [.init("/", "Prefix", "svc-proto")], secret: "shop-tls"),
        ]))
        let server = try fx.serve([m], ["--tls-protocols", "TLSv1.3"])
        servers.append(server)
        let port = try server.httpsPort()
        for name in ["shop.test", "unknown.test"] {
            let old = try SClient.connect(port: port, serverName: name, extra: ["-tls1_2"])
            XCTAssertFalse(old.handshakeDone, "TLS 1.2 refused for \(name)\n\(old.output)")
            XCTAssertTrue(old.output.contains("protocol version") || old.output.contains("unsupported protocol"), old.output)
            let new = try SClient.connect(port: port, serverName: name)
            XCTAssertTrue(new.output.contains("New, TLSv1.3"), new.output)
        }

        let bad = try ManagedProcess(name: "serve-bad-protocols", executable: Binary.path,
                                     arguments: ["serve", "-f", m, "--http", "127.0.0.1:0", "--https", "127.0.0.1:0",
                                                 "--admin", "127.0.0.1:0", "--api", "127.0.0.1:0",
                                                 "--data", fx.dir.file("data-bad-protocols"),
                                                 "--tls-protocols", "TLSv1.1 TLSv1.2"],
                                     logDir: fx.dir)
        let status = bad.waitForExit(timeout: 10)
        if status == nil { bad.stop() }
        XCTAssertNotNil(status, "exits instead of serving with --tls-protocols TLSv1.1")
        XCTAssertNotEqual(status ?? 0, 0, bad.stderr)
        XCTAssertEqual(lines(bad.stderr, containing: ["--tls-protocols", "'TLSv1.1' is not supported"]).count, 1, bad.stderr)
    }

    func testRotationServesTheNewCertificateAndKeepsOpenConnections() throws {
        let certs = try certificates()
        let echo = try fx.echo("rot")
        let dir = fx.dir.file("manifests")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        func secrets(rot cert: String, _ key: String) throws -> String {
            Manifest.join([
                TLSManifest.secret("rot-tls", cert: try certs.text(cert), key: try certs.text(key)),
                TLSManifest.secret("other-tls", cert: try certs.text("other.crt"), key: try certs.text("other.key")),
            ])
        }
        try Manifest.join([
            Manifest.service("svc-rot", endpoints: [echo.address]),
            TLSManifest.ingress("rot", host: "rot.test", paths: [.init("/", "Prefix", "svc-rot")], secret: "rot-tls"),
            TLSManifest.ingress("other", host: "other.test", paths: [.init("/", "Prefix", "svc-rot")], secret: "other-tls"),
        ]).write(toFile: dir + "/routes.yaml", atomically: true, encoding: .utf8)
        let secretsFile = dir + "/secrets.yaml"
        try writeAtomically(secretsFile, try secrets(rot: "rot1.crt", "rot1.key"))

        // No --default-cert: a self-signed one is generated, with a warning.
        let server = try fx.serve([dir])
        servers.append(server)
        let port = try server.httpsPort()
        XCTAssertEqual(lines(server.process.stderr, containing: ["self-signed"]).count, 1, server.process.stderr)
        let noSNI = try SClient.connect(port: port, serverName: nil)
        XCTAssertEqual(noSNI.subject, "CN = portico default certificate", noSNI.output)

        func subject(_ name: String) throws -> String? {
            try SClient.connect(port: port, serverName: name, caFile: certs.caFile).subject
        }
        XCTAssertEqual(try subject("rot.test"), "O = Rotation One, CN = rot.test")

        // A keep-alive TLS connection opened before the rotation.
        let old = try SClientSession(port: port, serverName: "rot.test", caFile: certs.caFile, dir: fx.dir, name: "old")
        sessions.append(old)
        let request = "GET /old HTTP/1.1\r\nHost: rot.test\r\n\r\n"
        try old.send(request)
        XCTAssertTrue(waitUntil(timeout: 5) { old.count("HTTP/1.1 200") == 1 }, "first answer on the old connection\n\(old.output)")
        XCTAssertTrue(old.output.contains("O = Rotation One"), old.output)

        // Rotate: new handshakes see the new certificate as soon as the reload is logged.
        let before = reloads(server)
        try writeAtomically(secretsFile, try secrets(rot: "rot2.crt", "rot2.key"))
        XCTAssertTrue(waitUntil(timeout: 5) { reloads(server) > before }, "reload logged\n\(server.process.stderrTail())")
        XCTAssertEqual(try subject("rot.test"), "O = Rotation Two, CN = rot.test", "new handshakes use the new certificate")
        let viaCurl = try HTTPS.get("rot.test", port: port, ca: certs.caFile, headerDir: fx.dir)
        XCTAssertEqual(viaCurl.status, 200, viaCurl.curl.stderr)

        try old.send(request)
        XCTAssertTrue(waitUntil(timeout: 5) { old.count("HTTP/1.1 200") == 2 },
                      "the connection opened before the rotation still answers\n\(old.output)")

        // A Secret broken at reload: logged by name, its host falls back to the default
        // certificate, the other host and the open connection keep working.
        let before2 = reloads(server)
        try writeAtomically(secretsFile, try secrets(rot: "rot2.crt", "rot1.key"))
        XCTAssertTrue(waitUntil(timeout: 5) { reloads(server) > before2 }, "reload logged\n\(server.process.stderrTail())")
        XCTAssertEqual(lines(server.process.stderr, containing: ["default/rot-tls", "does not match"]).count, 1,
                       server.process.stderrTail())
        XCTAssertEqual(try subject("other.test"), "CN = other.test")
        XCTAssertEqual(try HTTPS.get("other.test", port: port, ca: certs.caFile, headerDir: fx.dir).status, 200)
        XCTAssertEqual(try subject("rot.test"), "CN = portico default certificate")
        try old.send(request)
        XCTAssertTrue(waitUntil(timeout: 5) { old.count("HTTP/1.1 200") == 3 }, "the old connection survives a bad reload\n\(old.output)")

        // SIGHUP after fixing the Secret brings it back.
        try writeAtomically(secretsFile, try secrets(rot: "rot1.crt", "rot1.key"))
        server.process.signal(SIGHUP)
        XCTAssertTrue(waitUntil(timeout: 5) { (try? subject("rot.test")) == "O = Rotation One, CN = rot.test" },
                      server.process.stderrTail())
        XCTAssertTrue(server.process.isRunning)
    }

    /// The same through the API: `kubectl apply` of a changed kubernetes.io/tls Secret (stored
    /// encrypted) is served to new handshakes within seconds, nothing restarts, and a connection
    /// opened before keeps answering.
    func testKubectlApplyOfATLSSecretRotatesTheServedCertificate() throws {
        let certs = try certificates()
        let echo = try fx.echo("krot")
        let dir = fx.dir.file("manifests")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let server = try fx.serve([dir])
        servers.append(server)
        let pid = server.process.pid
        let port = try server.httpsPort()
        let k = Kubectl(apiPort: try server.apiPort(), dir: fx.dir)
        let routes = try fx.dir.write("krot.yaml", Manifest.join([
            Manifest.service("svc-krot", endpoints: [echo.address]),
            TLSManifest.ingress("krot", host: "rot.test", paths: [.init("/", "Prefix", "svc-krot")], secret: "krot-tls"),
        ]))
        func secret(_ n: String) throws -> String {
            try fx.dir.write("secret-\(n).yaml", TLSManifest.secret("krot-tls", cert: try certs.text("rot\(n).crt"), key: try certs.text("rot\(n).key")))
        }
        try k.ok(["apply", "-f", routes, "-f", try secret("1")])
        func subject() -> String? { try? SClient.connect(port: port, serverName: "rot.test", caFile: certs.caFile).subject }
        XCTAssertTrue(waitUntil(timeout: 10, interval: 0.1) { subject() == "O = Rotation One, CN = rot.test" }, server.process.stderrTail())

        let old = try SClientSession(port: port, serverName: "rot.test", caFile: certs.caFile, dir: fx.dir, name: "kold")
        sessions.append(old)
        let request = "GET /old HTTP/1.1\r\nHost: rot.test\r\n\r\n"
        try old.send(request)
        XCTAssertTrue(waitUntil(timeout: 5) { old.count("HTTP/1.1 200") == 1 }, old.output)

        let applied = Date()
        try k.ok(["apply", "-f", try secret("2")])
        var now: String?
        XCTAssertTrue(waitUntil(timeout: 5, interval: 0.05) { now = subject(); return now == "O = Rotation Two, CN = rot.test" },
                      "new handshakes see the new certificate: \(now ?? "nil")\n\(server.process.stderrTail())")
        XCTAssertLessThan(Date().timeIntervalSince(applied), 5)
        try old.send(request)
        XCTAssertTrue(waitUntil(timeout: 5) { old.count("HTTP/1.1 200") == 2 }, "the connection opened before still answers\n\(old.output)")
        XCTAssertEqual(server.process.pid, pid)
        XCTAssertTrue(server.process.isRunning)
    }
}
