import XCTest
import Foundation

/// The API and admin listeners: loopback by default; a token (`--token-file`) required on
/// every request when one is given, and required to bind either elsewhere.
final class AccessControlTests: XCTestCase {
    private var fx: Fixture!

    override func setUpWithError() throws { fx = try Fixture() }
    override func tearDown() { fx.stop() }

    func testTokenIsRequiredOnAPIAndAdmin() throws {
        let token = "s3cret-token-\(UUID().uuidString)"
        let tokenFile = try fx.dir.write("token", token + "\n")
        let m = try fx.dir.write("none.yaml", Manifest.service("svc", endpoints: []))
        let s = try fx.serve([m], ["--token-file", tokenFile])
        let api = try s.apiPort()
        let anonymous = try Curl.request("http://127.0.0.1:\(api)/api/v1/namespaces/default/services")
        XCTAssertEqual(anonymous.status, 401)
        XCTAssertEqual(anonymous.json?["kind"] as? String, "Status", "Kubernetes' Status format")
        XCTAssertEqual(anonymous.json?["reason"] as? String, "Unauthorized")
        let wrong = try Curl.request("http://127.0.0.1:\(api)/api/v1/namespaces/default/services",
                                     headers: ["Authorization: Bearer \(token.dropLast())x"])
        XCTAssertEqual(wrong.status, 401)
        let ok = try Curl.request("http://127.0.0.1:\(api)/api/v1/namespaces/default/services",
                                  headers: ["Authorization: Bearer \(token)"])
        XCTAssertEqual(ok.status, 200, ok.bodyText)
        XCTAssertEqual(try Curl.request(s.adminBase + "/metrics").status, 401)
        XCTAssertEqual(try Curl.request(s.adminBase + "/metrics", headers: ["Authorization: Bearer \(token)"]).status, 200)
    }

    func testNonLoopbackAPIWithoutTokenIsRefusedAtStart() throws {
        let m = try fx.dir.write("none.yaml", Manifest.service("svc", endpoints: []))
        // Refused before anything is bound, so nothing listens beyond loopback.
        let p = try ManagedProcess(name: "serve-open", executable: Binary.path,
                                   arguments: ["serve", "-f", m, "--http", "127.0.0.1:0", "--https", "off",
                                               "--admin", "127.0.0.1:0", "--api", "0.0.0.0:0", "--data", fx.dir.file("data")],
                                   logDir: fx.dir)
        defer { p.stop() }
        XCTAssertNotEqual(p.waitForExit(timeout: 10), 0)
        XCTAssertTrue(p.stderr.contains("--token-file"), p.stderrTail())
    }
}
