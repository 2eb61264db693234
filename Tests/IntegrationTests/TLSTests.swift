// TLS termination end to end: certificates chosen by SNI from kubernetes.io/tls Secrets (exact,
// wildcard, default), protocol versions, ALPN, resumption, full chains, curl through https,
// the redirect from http and HSTS, non-TLS bytes on the TLS port, and bad Secrets.
// One proxy serves every test of this class; live rotation is in TLSRotationTests.

import Foundation
import Glibc
import XCTest

final class TLSTests: XCTestCase {
    struct State {
        var server: PorticoServer
        var httpsPort: UInt16
        var certs: TestCertificates
        var dir: TempDir
    }

    static let shared = SharedFixture<State> { fx in
        let certs = try TestCertificates(in: fx.dir)
        let shop = try fx.echo("shop"), shopAPI = try fx.echo("shop-api"), apps = try fx.echo("apps"), api = try fx.echo("api")
        func pem(_ f: String) throws -> String { try certs.text(f) }
        // A certificate whose second base64 line is not base64.
        var malformed = try pem("shop.crt").components(separatedBy: "\n")
        malformed[1] = "@@@@ this line is not base64 @@@@"
        let S = TLSManifest.self
        let route: (String) -> [Manifest.Path] = { svc in [.init("/", "Prefix", svc)] }
        let docs: [String] = [
            Manifest.service("svc-shop", endpoints: [shop.address]),
            Manifest.service("svc-shop-api", endpoints: [shopAPI.address]),
            Manifest.service("svc-apps", endpoints: [apps.address]),
            Manifest.service("svc-api", endpoints: [api.address]),
            S.secret("shop-tls", cert: try pem("shop.crt"), key: try pem("shop.key")),
            S.secret("apps-tls", cert: try pem("apps.crt"), key: try pem("apps.key")),
            S.secretData("api-tls", cert: try pem("api.crt"), key: try pem("api.key")),
            S.secret("chain-tls", cert: try pem("chain-full.crt"), key: try pem("chain.key")),
            S.secret("expired-tls", cert: try pem("expired.crt"), key: try pem("expired.key")),
            S.secret("future-tls", cert: try pem("future.crt"), key: try pem("future.key")),
            S.secret("mismatch-tls", cert: try pem("mismatch.crt"), key: try pem("mismatch-other.key")),
            S.secret("malformed-tls", cert: malformed.joined(separator: "\n"), key: try pem("shop.key")),
            S.secret("badkey-tls", cert: try pem("shop.crt"),
                     key: "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"),
            S.ingress("shop", host: "shop.test", paths: [.init("/", "Prefix", "svc-shop"), .init("/api", "Prefix", "svc-shop-api")],
                      secret: "shop-tls", annotations: ["portico.io/hsts": "true", "portico.io/hsts-max-age": "600",
                                                        "portico.io/hsts-include-subdomains": "true"]),
            S.ingress("apps", host: "*.apps.test", paths: route("svc-apps"), secret: "apps-tls",
                      annotations: ["portico.io/ssl-redirect": "false", "portico.io/hsts": "true"]),
            S.ingress("api", host: "api.test", paths: route("svc-api"), secret: "api-tls"),
            S.ingress("chain", host: "chain.test", paths: route("svc-shop"), secret: "chain-tls"),
            S.ingress("expired", host: "expired.test", paths: route("svc-shop"), secret: "expired-tls"),
            S.ingress("future", host: "future.test", paths: route("svc-shop"), secret: "future-tls"),
            S.ingress("mismatch", host: "mismatch.test", paths: route("svc-shop"), secret: "mismatch-tls"),
            S.ingress("malformed", host: "malformed.test", paths: route("svc-shop"), secret: "malformed-tls"),
            S.ingress("badkey", host: "badkey.test", paths: route("svc-shop"), secret: "badkey-tls"),
            S.ingress("missing", host: "missing.test", paths: route("svc-shop"), secret: "missing-tls"),
            S.ingress("plain", host: "plain.test", paths: route("svc-shop"), secret: nil),
            // A wildcard TLS host with the default redirect.
            S.ingress("red", host: "*.red.test", paths: route("svc-shop"), secret: "apps-tls"),
            // An exact host under the wildcard, with a Secret another Ingress uses too.
            S.ingress("exact-apps", host: "exact.apps.test", paths: route("svc-apps"), secret: "shop-tls"),
            // A Secret of another namespace is not found from this one; a Secret of the wrong type.
            Manifest.service("svc-team", endpoints: [shop.address], namespace: "team"),
            S.ingress("team", host: "team.test", paths: route("svc-team"), secret: "shop-tls", namespace: "team"),
            S.secretOfType("opaque-tls", type: "Opaque", cert: try pem("shop.crt"), key: try pem("shop.key")),
            S.ingress("opaque", host: "opaque.test", paths: route("svc-shop"), secret: "opaque-tls"),
        ]
        let m = try fx.dir.write("tls.yaml", Manifest.join(docs))
        let server = try fx.serve([m], ["--default-cert", certs.path("default.crt"), "--default-key", certs.path("default.key"),
                                        "--client-header-timeout", "1s"])
        return State(server: server, httpsPort: try server.httpsPort(), certs: certs, dir: fx.dir)
    }

    /// A proxy that died during a test is reported with its last log lines (crash report first).
    override func tearDown() {
        if let st = try? Self.shared.get(), !st.server.process.isRunning {
            XCTFail("the proxy exited during \(name): \(st.server.process.stderrTail(60))")
        }
        super.tearDown()
    }

    override class func tearDown() {
        shared.stop()
        super.tearDown()
    }

    private func handshake(_ st: State, _ name: String?, _ extra: [String] = []) throws -> SClientResult {
        try SClient.connect(port: st.httpsPort, serverName: name, caFile: st.certs.caFile, extra: extra)
    }

    private func https(_ st: State, _ host: String, _ path: String = "/", extra: [String] = [],
                       moreURLs: [String] = []) throws -> HTTPSResult {
        try HTTPS.get(host, port: st.httpsPort, path: path, ca: st.certs.caFile, headerDir: st.dir,
                      extra: extra, moreURLs: moreURLs)
    }

    // MARK: Certificates by SNI

    func testExactHostsGetTheirCertificateECDSAAndRSA() throws {
        let st = try Self.shared.get()
        let shop = try handshake(st, "shop.test", ["-verify_hostname", "shop.test"])
        XCTAssertEqual(shop.subject, "CN = shop.test", shop.output)
        XCTAssertEqual(shop.issuer, "CN = \(TestCertificates.caName)", shop.output)
        XCTAssertEqual(shop.verify, "0 (ok)", shop.output)
        XCTAssertTrue(shop.output.contains("Server public key is 256 bit"), "ECDSA P-256 key\n\(shop.output)")

        let api = try handshake(st, "api.test", ["-verify_hostname", "api.test"])
        XCTAssertEqual(api.subject, "CN = api.test", api.output)
        XCTAssertEqual(api.verify, "0 (ok)", api.output)
        XCTAssertTrue(api.output.contains("Server public key is 2048 bit"), "RSA 2048 key (Secret given as base64 data)\n\(api.output)")

        // With TLS 1.2 too (the certificate's key type must match the ECDHE-ECDSA / ECDHE-RSA suite).
        for (name, cn) in [("shop.test", "CN = shop.test"), ("api.test", "CN = api.test")] {
            let r = try handshake(st, name, ["-tls1_2"])
            XCTAssertEqual(r.subject, cn, "TLS 1.2 handshake for \(name)\n\(r.output)")
            XCTAssertTrue(r.output.contains("New, TLSv1.2"), r.output)
        }
    }

    func testWildcardCertificateCoversExactlyOneLabel() throws {
        let st = try Self.shared.get()
        let www = try handshake(st, "www.apps.test", ["-verify_hostname", "www.apps.test"])
        XCTAssertEqual(www.subject, "CN = *.apps.test", www.output)
        XCTAssertEqual(www.verify, "0 (ok)", www.output)
        let upper = try handshake(st, "API.Apps.Test")
        XCTAssertEqual(upper.subject, "CN = *.apps.test", "SNI is matched case-insensitively\n\(upper.output)")
        let deep = try handshake(st, "a.b.apps.test")
        XCTAssertEqual(deep.subject, "CN = default.test", "a wildcard covers one label only\n\(deep.output)")
        let exact = try handshake(st, "exact.apps.test")
        XCTAssertEqual(exact.subject, "CN = shop.test", "an exact host beats the wildcard (shop-tls, shared by two Ingresses)\n\(exact.output)")
        let bare = try handshake(st, "apps.test")
        XCTAssertEqual(bare.subject, "CN = default.test", "*.apps.test does not cover apps.test\n\(bare.output)")
    }

    func testUnknownNameAndNoSNIGetTheDefaultCertificate() throws {
        let st = try Self.shared.get()
        let unknown = try handshake(st, "unknown.test")
        XCTAssertEqual(unknown.subject, "CN = default.test", unknown.output)
        XCTAssertEqual(unknown.issuer, "CN = \(TestCertificates.caName)", unknown.output)
        let none = try handshake(st, nil)
        XCTAssertEqual(none.subject, "CN = default.test", "no SNI → --default-cert\n\(none.output)")
        XCTAssertTrue(none.handshakeDone, none.output)
    }

    // MARK: Protocol versions, ALPN, resumption, chains

    func testTLS11IsRefusedAnd12And13AreAccepted() throws {
        let st = try Self.shared.get()
        // OpenSSL 3's client needs security level 0 to even offer TLS 1.1; then the server must refuse it.
        let old = try handshake(st, "shop.test", ["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"])
        XCTAssertNotEqual(old.status, 0, old.output)
        XCTAssertFalse(old.handshakeDone, "TLS 1.1 refused\n\(old.output)")
        XCTAssertFalse(old.output.contains("no protocols available"), "the client did offer TLS 1.1\n\(old.output)")
        XCTAssertTrue(old.output.contains("protocol version") || old.output.contains("unsupported protocol"),
                      "refused with a protocol_version alert\n\(old.output)")
        let t12 = try handshake(st, "shop.test", ["-tls1_2"])
        XCTAssertTrue(t12.output.contains("New, TLSv1.2"), t12.output)
        let t13 = try handshake(st, "shop.test", ["-tls1_3"])
        XCTAssertTrue(t13.output.contains("New, TLSv1.3"), t13.output)
    }

    /// The server's cipher order decides (testssl.sh rates a client-chosen order HIGH), except
    /// that a client listing ChaCha20 first (no AES hardware) gets it.
    func testServerCipherOrderWithChaChaForClientsThatPreferIt() throws {
        let st = try Self.shared.get()
        let aes256First = "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
        let r = try handshake(st, "shop.test", ["-tls1_2", "-cipher", aes256First])
        XCTAssertTrue(r.output.contains("-AES128-GCM-SHA256"), "the server's first choice\n\(r.output)")
        let chacha = "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:" + aes256First
        let c = try handshake(st, "shop.test", ["-tls1_2", "-cipher", chacha])
        XCTAssertTrue(c.output.contains("-CHACHA20-POLY1305"), "ChaCha20 for a client that lists it first\n\(c.output)")
        let c13 = try handshake(st, "shop.test", ["-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384"])
        XCTAssertTrue(c13.output.contains("TLS_CHACHA20_POLY1305_SHA256"), c13.output)
    }

    func testALPNSelectsHTTP11() throws {
        let st = try Self.shared.get()
        let r = try handshake(st, "shop.test", ["-alpn", "http/1.1"])
        XCTAssertTrue(r.output.contains("ALPN protocol: http/1.1"), r.output)
        let noSNI = try handshake(st, nil, ["-alpn", "http/1.1"])
        XCTAssertTrue(noSNI.output.contains("ALPN protocol: http/1.1"), "default certificate too\n\(noSNI.output)")
        let both = try handshake(st, "shop.test", ["-alpn", "h2,http/1.1"])
        XCTAssertTrue(both.output.contains("ALPN protocol: http/1.1"), "h2 is not offered yet\n\(both.output)")
    }

    /// Two handshakes with `flags`, the second offering the session the first saved.
    private func resumption(_ st: State, _ flags: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let version = flags.joined()
        let sess = st.dir.file("session\(version).pem")
        // TLS 1.3 tickets come after the handshake: keep the client a moment before it quits.
        let first = try SClient.connect(port: st.httpsPort, serverName: "shop.test", caFile: st.certs.caFile,
                                        extra: flags + ["-sess_out", sess], holdStdin: 0.5)
        XCTAssertTrue(first.output.contains("New, TLSv1."), "\(version) first\n\(first.output)", file: file, line: line)
        XCTAssertTrue(FileManager.default.fileExists(atPath: sess), "\(version): a session was written\n\(first.output)", file: file, line: line)
        let second = try SClient.connect(port: st.httpsPort, serverName: "shop.test", caFile: st.certs.caFile,
                                         extra: flags + ["-sess_in", sess], holdStdin: 0.5)
        XCTAssertTrue(second.reused, "\(version): the session is resumed\n\(second.output)", file: file, line: line)
    }

    func testSessionResumptionWithTicketsTLS12AndTLS13() throws {
        let st = try Self.shared.get()
        try resumption(st, ["-tls1_2"])
        try resumption(st, ["-tls1_3"])
    }

    /// TLS 1.2 clients without tickets resume by session id from the server's session cache.
    /// The cache only helps if a session outlives its connection: OpenSSL's SSL_free removes
    /// the session of a connection that did not send close_notify (ssl_clear_bad_session).
    func testSessionCacheResumesWithoutTickets() throws {
        let st = try Self.shared.get()
        try resumption(st, ["-tls1_2", "-no_ticket"])
    }

    /// RFC 6066 §3: "A server that implements this extension MUST NOT accept the request to
    /// resume the session if the server_name extension contains a different name. Instead, it
    /// proceeds with a full handshake to establish a new session." A TLS 1.2 session made for
    /// shop.test (shop.test's certificate) offered with SNI api.test must give a full handshake
    /// with api.test's certificate.
    func testTLS12SessionIsNotResumedUnderAnotherServerName() throws {
        let st = try Self.shared.get()
        let sess = st.dir.file("cross-sni.pem")
        let first = try SClient.connect(port: st.httpsPort, serverName: "shop.test", caFile: st.certs.caFile,
                                        extra: ["-tls1_2", "-sess_out", sess], holdStdin: 0.2)
        XCTAssertEqual(first.subject, "CN = shop.test", first.output)
        let other = try SClient.connect(port: st.httpsPort, serverName: "api.test", caFile: st.certs.caFile,
                                        extra: ["-tls1_2", "-sess_in", sess], holdStdin: 0.2)
        XCTAssertTrue(other.handshakeDone, other.output)
        XCTAssertFalse(other.reused, "a shop.test session resumed under SNI api.test (RFC 6066 §3)\n\(other.output)")
        XCTAssertEqual(other.subject, "CN = api.test", "api.test is authenticated by its own certificate\n\(other.output)")
    }

    func testFullChainIsSent() throws {
        let st = try Self.shared.get()
        let chain = try handshake(st, "chain.test", ["-showcerts", "-verify_hostname", "chain.test"])
        XCTAssertEqual(chain.certificateCount, 2, "leaf + intermediate\n\(chain.output)")
        XCTAssertEqual(chain.issuer, "CN = \(TestCertificates.intermediateName)", chain.output)
        XCTAssertEqual(chain.verify, "0 (ok)", "verifies against the root only: the intermediate was sent\n\(chain.output)")
        let shop = try handshake(st, "shop.test", ["-showcerts"])
        XCTAssertEqual(shop.certificateCount, 1, shop.output)
    }

    // MARK: curl through https

    func testRoutingByHostAndPathOverHTTPS() throws {
        let st = try Self.shared.get()
        for (host, path, backend) in [("shop.test", "/", "shop"), ("shop.test", "/api/items?x=1", "shop-api"),
                                      ("www.apps.test", "/", "apps"), ("api.test", "/v1", "api")] {
            let r = try https(st, host, path)
            XCTAssertEqual(r.curl.exitCode, 0, "\(host)\(path): \(r.curl.stderr)")
            XCTAssertEqual(r.status, 200, "\(host)\(path)")
            XCTAssertEqual(try? EchoReply(r.curl.body).name, backend, "\(host)\(path)")
        }
        let e = try EchoReply(try https(st, "shop.test", "/api/items?x=1").curl.body)
        XCTAssertEqual(e.path, "/api/items")
        XCTAssertEqual(e.query, "x=1")
        XCTAssertEqual(e.host, "shop.test:\(st.httpsPort)")
    }

    func testForwardedHeadersSayHTTPS() throws {
        let st = try Self.shared.get()
        let r = try https(st, "shop.test", "/headers")
        let e = try EchoReply(r.curl.body)
        XCTAssertEqual(e.headers["x-forwarded-proto"], "https")
        XCTAssertEqual(e.headers["x-forwarded-port"], String(st.httpsPort))
        XCTAssertEqual(e.headers["x-forwarded-host"].map { $0.hasPrefix("shop.test") }, true)
    }

    func testKeepAliveIsReusedOverTLS() throws {
        let st = try Self.shared.get()
        let r = try https(st, "shop.test", "/one", moreURLs: ["/two", "/three"])
        XCTAssertEqual(r.curl.exitCode, 0, r.curl.stderr)
        XCTAssertEqual(r.curl.numConnects, 1, "three requests on one TLS connection\n\(r.curl.stderr)")
        XCTAssertEqual(r.curl.stderr.components(separatedBy: "CURL_STATUS=200").count - 1, 3, r.curl.stderr)
        // HTTP/1.0 without keep-alive: answered, then the TLS connection is closed.
        let old = try https(st, "shop.test", "/http10", extra: ["--http1.0"])
        XCTAssertEqual(old.status, 200, old.curl.stderr)
        XCTAssertEqual(try? EchoReply(old.curl.body).name, "shop")
    }

    /// RFC 8446 §6.1: the server sends close_notify before it closes after a `Connection: close`
    /// response, so a client reading to EOF sees a clean end, not a truncation attack (OpenSSL
    /// reports "unexpected eof" and drops the session otherwise).
    func testConnectionCloseEndsWithCloseNotify() throws {
        let st = try Self.shared.get()
        for version in ["-tls1_2", "-tls1_3"] {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
            p.arguments = ["8", "openssl", "s_client", "-connect", "127.0.0.1:\(st.httpsPort)", "-servername", "shop.test",
                           "-CAfile", st.certs.caFile, "-msg", "-ign_eof", version]
            let input = Pipe(), out = Pipe()
            p.standardInput = input
            p.standardOutput = out
            p.standardError = out
            try p.run()
            try input.fileHandleForWriting.write(contentsOf: Data("GET /bye HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n".utf8))
            // stdin stays open: s_client ends only when the server closes the connection.
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            try? input.fileHandleForWriting.close()
            XCTAssertTrue(text.contains("HTTP/1.1 200"), text)
            XCTAssertTrue(text.contains("<<< TLS 1.\(version == "-tls1_2" ? "2" : "3"), Alert [length 0002], warning close_notify"),
                          "\(version): the server's close_notify\n\(text.suffix(1500))")
            XCTAssertFalse(text.contains("unexpected eof"), "\(version)\n\(text.suffix(1500))")
        }
    }

    func testLargeBodiesOverTLS() throws {
        let st = try Self.shared.get()
        let mib = 1 << 20
        let upload = st.dir.file("upload.bin")
        var bytes = [UInt8](repeating: 0, count: mib)
        for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: i &* 31 &+ i >> 9) }
        try Data(bytes).write(to: URL(fileURLWithPath: upload))
        let post = try https(st, "shop.test", "/upload", extra: ["--data-binary", "@\(upload)", "-H", "Content-Type: application/octet-stream"])
        XCTAssertEqual(post.status, 200, post.curl.stderr)
        XCTAssertEqual(try EchoReply(post.curl.body).bodyLength, mib, "1 MiB request body through TLS")

        let down = try https(st, "shop.test", "/download", extra: ["-H", "X-Echo-Bytes: \(10 * mib)"])
        XCTAssertEqual(down.status, 200, down.curl.stderr)
        XCTAssertEqual(down.curl.exitCode, 0, down.curl.stderr)
        XCTAssertEqual(down.curl.body.count, 10 * mib, "10 MiB response body through TLS")
        XCTAssertNil(echoPatternMismatch(down.curl.body), "the bytes arrive intact and in order")

        // Connection: close: close_notify and the half-close come after the last byte, not before.
        let closing = try https(st, "shop.test", "/close", extra: ["-H", "X-Echo-Bytes: \(2 * mib)", "-H", "Connection: close"])
        XCTAssertEqual(closing.curl.exitCode, 0, closing.curl.stderr)
        XCTAssertEqual(closing.curl.body.count, 2 * mib, closing.curl.stderr)
        XCTAssertNil(echoPatternMismatch(closing.curl.body))
    }

    func testSlowReaderGetsAnIntactBody() throws {
        // A reader slower than the proxy fills the socket buffer: SSL_write must be retried
        // (WANT_WRITE, partial writes) without losing or repeating bytes.
        let st = try Self.shared.get()
        let n = 3 << 20
        let r = try https(st, "shop.test", "/slow", extra: ["-H", "X-Echo-Bytes: \(n)", "--limit-rate", "6M"])
        XCTAssertEqual(r.status, 200, r.curl.stderr)
        XCTAssertEqual(r.curl.body.count, n, r.curl.stderr)
        XCTAssertNil(echoPatternMismatch(r.curl.body), "first wrong byte")
    }

    func testPipelinedRequestsInOneTLSRecord() throws {
        let st = try Self.shared.get()
        let s = try SClientSession(port: st.httpsPort, serverName: "shop.test", caFile: st.certs.caFile, dir: st.dir, name: "pipeline")
        defer { s.stop() }
        // Two requests in one write (one TLS record): the second is already decrypted inside
        // OpenSSL when the first is answered, with no new readable event on the socket.
        try s.send("GET /p1 HTTP/1.1\r\nHost: shop.test\r\n\r\nGET /p2 HTTP/1.1\r\nHost: shop.test\r\n\r\n")
        XCTAssertTrue(waitUntil(timeout: 5) { s.count("HTTP/1.1 200") == 2 }, "both pipelined requests answered\n\(s.output)")
        XCTAssertTrue(s.output.contains("\"path\":\"/p1\"") && s.output.contains("\"path\":\"/p2\""), s.output)
        // A head split over two writes (two records).
        try s.send("GET /p3 HTTP/1.1\r\nHo")
        Thread.sleep(forTimeInterval: 0.1)
        try s.send("st: shop.test\r\n\r\n")
        XCTAssertTrue(waitUntil(timeout: 5) { s.count("HTTP/1.1 200") == 3 }, "a head over two records\n\(s.output)")
    }

    /// RFC 8446 §4.6.3: a KeyUpdate with update_requested obliges the server to send one of its
    /// own, written from inside its read of the client's record (OpenSSL may then want to write
    /// to go on reading); requests before and after are answered on the same connection.
    func testClientKeyUpdateIsAnsweredAndTheConnectionGoesOn() throws {
        let st = try Self.shared.get()
        let s = try SClientSession(port: st.httpsPort, serverName: "shop.test", caFile: st.certs.caFile, dir: st.dir,
                                   name: "keyupdate", extra: ["-tls1_3", "-msg"], commands: true)
        defer { s.stop() }
        try s.send("GET /k1 HTTP/1.1\r\nHost: shop.test\r\n\r\n")
        XCTAssertTrue(waitUntil(timeout: 5) { s.count("HTTP/1.1 200") == 1 }, s.output)
        // s_client sends the KeyUpdate with its next record, so in the same read as the request.
        try s.send("K\n")
        Thread.sleep(forTimeInterval: 0.2)
        try s.send("GET /k2 HTTP/1.1\r\nHost: shop.test\r\n\r\n")
        XCTAssertTrue(waitUntil(timeout: 5) { s.count("HTTP/1.1 200") == 2 }, "answered under the new keys\n\(s.output.suffix(1500))")
        XCTAssertTrue(s.output.contains("\"path\":\"/k2\""), s.output.suffix(1500).description)
        XCTAssertEqual(s.count(">>> TLS 1.3, Handshake [length 0005], KeyUpdate"), 1, "the client sent one\n\(s.output.suffix(1500))")
        XCTAssertEqual(s.count("<<< TLS 1.3, Handshake [length 0005], KeyUpdate"), 1, "the server's own\n\(s.output.suffix(1500))")
    }

    func testWebSocketOverTLS() throws {
        let st = try Self.shared.get()
        let s = try SClientSession(port: st.httpsPort, serverName: "shop.test", caFile: st.certs.caFile, dir: st.dir, name: "wss")
        defer { s.stop() }
        try s.send("GET /ws HTTP/1.1\r\nHost: shop.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        XCTAssertTrue(waitUntil(timeout: 5) { s.output.contains("HTTP/1.1 101") }, "101 over TLS\n\(s.output)")
        // Two masked text frames in one write; the echo backend sends each back unmasked.
        func frame(_ text: String) -> [UInt8] {
            let payload = Array(text.utf8)
            let mask: [UInt8] = [0x37, 0xfa, 0x21, 0x3d]
            return [0x81, 0x80 | UInt8(payload.count)] + mask + payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
        }
        try s.send(frame("hello over wss") + frame("second frame"))
        let expected = Data([0x81, 14] + Array("hello over wss".utf8) + [0x81, 12] + Array("second frame".utf8))
        XCTAssertTrue(waitUntil(timeout: 5) { s.outputBytes.range(of: expected) != nil },
                      "frames tunnelled both ways through TLS\n\(s.output)")
    }

    func testConcurrentHandshakes() throws {
        let st = try Self.shared.get()
        let urls = (0..<40).map { "/c\($0)" }
        let r = try https(st, "shop.test", urls[0], extra: ["--parallel", "--parallel-max", "20", "--parallel-immediate"],
                          moreURLs: Array(urls.dropFirst()))
        XCTAssertEqual(r.curl.exitCode, 0, r.curl.stderr)
        XCTAssertEqual(r.curl.stderr.components(separatedBy: "CURL_STATUS=200").count - 1, 40, r.curl.stderr)
        XCTAssertGreaterThan(r.curl.numConnects, 5, "many TLS connections at once")
    }

    // MARK: Redirect and HSTS

    func testPlainHTTPToATLSHostIsRedirectedWith308() throws {
        let st = try Self.shared.get()
        let r = try RawClient.exchange(port: st.server.httpPort, "GET /some/path?a=1&b=two HTTP/1.1\r\nHost: shop.test\r\n\r\n")
        XCTAssertEqual(r.status, 308, r.rawHead)
        XCTAssertEqual(r.header("location"), "https://shop.test:\(st.httpsPort)/some/path?a=1&b=two", r.rawHead)
        XCTAssertNil(r.header("strict-transport-security"), "no HSTS over plain http (RFC 6797 §7.2)")

        // The port of the Host header is replaced by the https port.
        let withPort = try RawClient.exchange(port: st.server.httpPort, "GET /x HTTP/1.1\r\nHost: shop.test:\(st.server.httpPort)\r\n\r\n")
        XCTAssertEqual(withPort.status, 308, withPort.rawHead)
        XCTAssertEqual(withPort.header("location"), "https://shop.test:\(st.httpsPort)/x", withPort.rawHead)

        let wild = try RawClient.exchange(port: st.server.httpPort, "GET /w HTTP/1.1\r\nHost: a.red.test\r\n\r\n")
        XCTAssertEqual(wild.status, 308, "a host covered by a wildcard spec.tls host\n\(wild.rawHead)")
        XCTAssertEqual(wild.header("location"), "https://a.red.test:\(st.httpsPort)/w", wild.rawHead)

        // Host names are case-insensitive; an absolute-form target keeps only its path and query.
        let upper = try RawClient.exchange(port: st.server.httpPort, "GET /u?v=1 HTTP/1.1\r\nHost: SHOP.Test\r\n\r\n")
        XCTAssertEqual(upper.status, 308, upper.rawHead)
        XCTAssertEqual(upper.header("location")?.lowercased(), "https://shop.test:\(st.httpsPort)/u?v=1", upper.rawHead)
        let absolute = try RawClient.exchange(port: st.server.httpPort,
                                              "GET http://shop.test/abs?x=1 HTTP/1.1\r\nHost: shop.test\r\n\r\n")
        XCTAssertEqual(absolute.status, 308, absolute.rawHead)
        XCTAssertEqual(absolute.header("location"), "https://shop.test:\(st.httpsPort)/abs?x=1", absolute.rawHead)

        // curl follows it end to end, a POST staying a POST.
        let c = try Curl.run(["-L", "--cacert", st.certs.caFile,
                              "--resolve", "shop.test:\(st.server.httpPort):127.0.0.1",
                              "--resolve", "shop.test:\(st.httpsPort):127.0.0.1",
                              "--data-binary", "hello",
                              "http://shop.test:\(st.server.httpPort)/api/follow?q=1"])
        XCTAssertEqual(c.status, 200, c.stderr)
        let e = try EchoReply(c.body)
        XCTAssertEqual(e.name, "shop-api")
        XCTAssertEqual(e.method, "POST")
        XCTAssertEqual(e.query, "q=1")
        XCTAssertEqual(e.bodyLength, 5)
        XCTAssertEqual(e.headers["x-forwarded-proto"], "https")
    }

    func testNoRedirectWhenTheAnnotationIsOffOrTheHostHasNoTLS() throws {
        let st = try Self.shared.get()
        let apps = try RawClient.exchange(port: st.server.httpPort, "GET / HTTP/1.1\r\nHost: www.apps.test\r\n\r\n")
        XCTAssertEqual(apps.status, 200, "portico.io/ssl-redirect: \"false\"\n\(apps.rawHead)")
        XCTAssertEqual(try EchoReply(apps.body).name, "apps")
        XCTAssertNil(apps.header("strict-transport-security"), "HSTS only over https\n\(apps.rawHead)")
        let plain = try RawClient.exchange(port: st.server.httpPort, "GET / HTTP/1.1\r\nHost: plain.test\r\n\r\n")
        XCTAssertEqual(plain.status, 200, "a host without spec.tls\n\(plain.rawHead)")
    }

    func testHSTSHeaderByAnnotation() throws {
        let st = try Self.shared.get()
        let shop = try https(st, "shop.test")
        XCTAssertEqual(shop.header("strict-transport-security"), "max-age=600; includeSubDomains")
        let apps = try https(st, "www.apps.test")
        XCTAssertEqual(apps.header("strict-transport-security"), "max-age=31536000", "default max-age, no includeSubDomains")
        let api = try https(st, "api.test")
        XCTAssertEqual(api.status, 200)
        XCTAssertNil(api.header("strict-transport-security"), "no annotation, no HSTS")
    }

    // MARK: Not TLS on the TLS port, slow and vanishing clients

    func testPlainHTTPOnTheHTTPSPortGets400AndClose() throws {
        let st = try Self.shared.get()
        let c = try RawClient(port: st.httpsPort, timeout: 5)
        try c.send("GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n")
        let r = try c.readResponse()
        XCTAssertEqual(r.status, 400, r.rawHead)
        XCTAssertTrue(r.bodyText.contains("The plain HTTP request was sent to HTTPS port"), r.bodyText)
        XCTAssertTrue(r.header("content-type")?.hasPrefix("text/plain") ?? false, r.rawHead)
        XCTAssertTrue(c.isClosedByPeer(within: 3), "closed after the 400")
        XCTAssertEqual(try https(st, "shop.test").status, 200, "TLS clients still served")
    }

    func testSilentClientIsClosedAfterTheHeaderTimeout() throws {
        let st = try Self.shared.get()
        let c = try RawClient(port: st.httpsPort, timeout: 6)
        let start = Date()
        XCTAssertTrue(c.isClosedByPeer(within: 6), "a client that sends nothing is closed")
        let waited = Date().timeIntervalSince(start)
        XCTAssertGreaterThan(waited, 0.5, "not before --client-header-timeout 1s")
        XCTAssertLessThan(waited, 4, "soon after --client-header-timeout 1s")
    }

    /// The first 60 bytes of a TLS 1.2 ClientHello record announcing 512 bytes.
    private var halfClientHello: [UInt8] {
        var b: [UInt8] = [0x16, 0x03, 0x01, 0x02, 0x00,  // handshake record, 512 bytes
                          0x01, 0x00, 0x01, 0xFC,        // ClientHello, 508 bytes
                          0x03, 0x03]                    // client_version TLS 1.2
        b += (0..<32).map { UInt8(truncatingIfNeeded: $0 &* 7) }  // random
        b += [0x00, 0x00, 0x20, 0xC0, 0x2B, 0xC0, 0x2F]            // no session id, start of the suites
        return b
    }

    func testHalfAClientHelloThenVanishingDoesNotHurtTheNextClient() throws {
        let st = try Self.shared.get()
        for _ in 0..<5 {
            let c = try RawClient(port: st.httpsPort, timeout: 5)
            try c.send(halfClientHello)
            c.close()
        }
        let next = try https(st, "shop.test", "/after")
        XCTAssertEqual(next.status, 200, next.curl.stderr)
        XCTAssertEqual(try handshake(st, "api.test").subject, "CN = api.test")

        // One that stalls after half a ClientHello is closed by the handshake (header) timeout.
        let stalled = try RawClient(port: st.httpsPort, timeout: 6)
        try stalled.send(halfClientHello)
        let start = Date()
        XCTAssertTrue(stalled.isClosedByPeer(within: 6), "a stalled handshake is closed")
        XCTAssertLessThan(Date().timeIntervalSince(start), 4, "soon after --client-header-timeout 1s")
        XCTAssertTrue(st.server.process.isRunning, st.server.process.stderrTail())
    }

    // MARK: Bad Secrets

    func testEachBadSecretIsLoggedByNameAndOtherHostsKeepServing() throws {
        let st = try Self.shared.get()
        let log = st.server.process.stderr
        let cases: [(secret: String, reason: [String])] = [
            ("default/missing-tls", ["not found"]),
            ("default/malformed-tls", ["malformed PEM"]),
            ("default/mismatch-tls", ["does not match"]),
            ("default/badkey-tls", ["tls.key"]),
            ("default/expired-tls", ["expired"]),
            ("default/future-tls", ["not valid before"]),
            ("team/shop-tls", ["not found"]),
            ("default/opaque-tls", ["Opaque"]),
        ]
        for c in cases {
            let found = lines(log, containing: [c.secret] + c.reason)
            XCTAssertEqual(found.count, 1, "one log line names Secret \(c.secret) and says \(c.reason)\n\(log)")
        }
        // Unusable certificates: their hosts get the default certificate.
        for host in ["missing.test", "malformed.test", "mismatch.test", "badkey.test", "team.test", "opaque.test"] {
            XCTAssertEqual(try handshake(st, host).subject, "CN = default.test", host)
        }
        // Expired and not yet valid: served anyway.
        let expired = try handshake(st, "expired.test")
        XCTAssertEqual(expired.subject, "CN = expired.test", expired.output)
        XCTAssertEqual(expired.verify, "10 (certificate has expired)", expired.output)
        let future = try handshake(st, "future.test")
        XCTAssertEqual(future.subject, "CN = future.test", future.output)
        XCTAssertEqual(future.verify, "9 (certificate is not yet valid)", future.output)
        let viaExpired = try https(st, "expired.test", "/", extra: ["-k"])
        XCTAssertEqual(viaExpired.status, 200, "routes of a host with an expired certificate work\n\(viaExpired.curl.stderr)")
        // Everything else keeps serving.
        XCTAssertEqual(try https(st, "shop.test").status, 200)
        XCTAssertEqual(try https(st, "www.apps.test").status, 200)
        XCTAssertEqual(try handshake(st, "shop.test").subject, "CN = shop.test")
        XCTAssertTrue(st.server.process.isRunning)
    }
}
