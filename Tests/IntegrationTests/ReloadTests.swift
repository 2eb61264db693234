// Reloading the manifests: SIGHUP and file changes swap the route table while requests keep
// flowing; an invalid manifest leaves the old table serving (at reload) or stops the start.

import Foundation
import XCTest

final class ReloadTests: XCTestCase {
    private var fx: Fixture!

    override func setUpWithError() throws {
        try Binary.require()
        fx = try Fixture()
    }

    override func tearDown() {
        fx?.stop()
        fx = nil
        super.tearDown()
    }

    /// A manifest dir with services a and b and an Ingress for reload.test; returns (dir, ingress file).
    private func setUpManifests() throws -> (String, String) {
        let a = try fx.echo("a"), b = try fx.echo("b")
        let dir = fx.dir.file("manifests")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Manifest.join([
            Manifest.service("svc-a", endpoints: [a.address]),
            Manifest.service("svc-b", endpoints: [b.address]),
        ]).write(toFile: dir + "/services.yaml", atomically: true, encoding: .utf8)
        let ing = dir + "/ingress.yaml"
        try writeAtomically(ing, ingress(withNewRule: false))
        return (dir, ing)
    }

    private func ingress(withNewRule: Bool) -> String {
        var paths: [Manifest.Path] = [.init("/", "Prefix", "svc-a")]
        if withNewRule { paths.append(.init("/new", "Prefix", "svc-b")) }
        return Manifest.ingress("reload", rules: [.init(host: "reload.test", paths)])
    }

    /// Replace by rename, as editors and `kubectl`-style tools do, so the proxy never reads half a file.
    private func writeAtomically(_ path: String, _ text: String) throws {
        let tmp = path + ".tmp-\(UInt32.random(in: 0...UInt32.max))"
        try text.write(toFile: tmp, atomically: false, encoding: .utf8)
        guard rename(tmp, path) == 0 else { throw HarnessError("rename: errno \(errno)") }
    }

    private func backend(_ server: PorticoServer, _ path: String) -> String {
        guard let r = try? Curl.request(server.base + path, host: "reload.test", maxTime: 5) else { return "curl error" }
        if r.status != 200 { return String(r.status) }
        return (try? EchoReply(r.body).name) ?? "not echo"
    }

    func testReloadUnderLoadFailsNoRequest() throws {
        let (dir, ing) = try setUpManifests()
        let server = try fx.serve([dir])
        XCTAssertEqual(backend(server, "/new"), "a", "before the reload /new falls under Prefix /")

        let load = LoadLoop(port: server.httpPort, request: "GET /load HTTP/1.1\r\nHost: reload.test\r\n\r\n")
        load.start()
        Thread.sleep(forTimeInterval: 1)
        // Three swaps (add the rule, take it out, add it again), each changing the set of
        // backends, each waited for: connections that began under one table end under another.
        var switched = true
        for (withNew, expected) in [(true, "b"), (false, "a"), (true, "b")] {
            try writeAtomically(ing, ingress(withNewRule: withNew))
            server.process.signal(SIGHUP)
            switched = switched && waitUntil(timeout: 10) { backend(server, "/new") == expected }
            Thread.sleep(forTimeInterval: 0.5)
        }
        Thread.sleep(forTimeInterval: 1)
        let (ok, failed, first) = load.stop()
        XCTAssertTrue(server.process.isRunning, "proxy alive after the reload; stderr:\n\(server.process.stderrTail())")
        XCTAssertTrue(switched, "the new rule answers after SIGHUP; stderr:\n\(server.process.stderrTail())")
        XCTAssertEqual(failed, 0, "no request failed during the reload; first failures: \(first)")
        XCTAssertGreaterThan(ok, 50, "the load loop kept sending")
        XCTAssertEqual(backend(server, "/load"), "a", "old rules still served")
    }

    func testFileChangeReloadsWithoutSignal() throws {
        let (dir, ing) = try setUpManifests()
        let server = try fx.serve([dir])
        XCTAssertEqual(backend(server, "/new"), "a")
        try writeAtomically(ing, ingress(withNewRule: true))
        XCTAssertTrue(waitUntil(timeout: 10) { backend(server, "/new") == "b" },
                      "a change under -f is picked up (inotify); stderr:\n\(server.process.stderrTail())")
    }

    func testNewFileInWatchedDirectoryIsPickedUp() throws {
        let (dir, _) = try setUpManifests()
        let server = try fx.serve([dir])
        XCTAssertEqual(backend(server, "/extra"), "a")
        try writeAtomically(dir + "/extra.yaml", Manifest.ingress("extra", rules: [
            .init(host: "reload.test", [.init("/extra", "Prefix", "svc-b")]),
        ]))
        server.process.signal(SIGHUP)
        XCTAssertTrue(waitUntil(timeout: 10) { backend(server, "/extra") == "b" },
                      "a new file in the -f directory joins the table; stderr:\n\(server.process.stderrTail())")
    }

    func testInvalidManifestAtReloadKeepsTheOldRoutes() throws {
        let (dir, ing) = try setUpManifests()
        let server = try fx.serve([dir])
        XCTAssertEqual(backend(server, "/"), "a")
        let broken = ingress(withNewRule: true).replacingOccurrences(of: "pathType: Prefix", with: "pathType: Sideways")
        try writeAtomically(ing, broken)
        server.process.signal(SIGHUP)
        let logged = waitUntil(timeout: 10) { server.process.stderr.contains("ingress.yaml") && server.process.stderr.contains("pathType") }
        XCTAssertTrue(logged, "the error names the file and the field; stderr:\n\(server.process.stderrTail())")
        XCTAssertTrue(server.process.isRunning)
        XCTAssertEqual(backend(server, "/"), "a", "old routes keep serving")
        XCTAssertEqual(backend(server, "/new"), "a", "nothing of the broken manifest is applied")

        // Fixing the file brings the new rule in.
        try writeAtomically(ing, ingress(withNewRule: true))
        server.process.signal(SIGHUP)
        XCTAssertTrue(waitUntil(timeout: 10) { backend(server, "/new") == "b" })
    }

    func testInvalidManifestAtStartExitsOneNamingFileAndField() throws {
        let bad = try fx.dir.write("bad-ingress.yaml", Manifest.ingress("bad", rules: [
            .init(host: "bad.test", [.init("/", "Sideways", "svc-a")]),
        ]))
        let p = try ManagedProcess(name: "serve-bad", executable: Binary.path,
                                   arguments: ["serve", "-f", bad, "--http", "127.0.0.1:0", "--https", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                                               "--api", "127.0.0.1:0", "--data", fx.dir.file("data")],
                                   logDir: fx.dir)
        defer { p.stop() }
        let status = p.waitForExit(timeout: 10)
        XCTAssertEqual(status, 1, "exit 1 on an invalid manifest; stderr:\n\(p.stderrTail())")
        XCTAssertTrue(p.stderr.contains("bad-ingress.yaml"), "message names the file:\n\(p.stderrTail())")
        XCTAssertTrue(p.stderr.contains("pathType"), "message names the field:\n\(p.stderrTail())")
    }

    func testUnparsableYAMLAtStartExitsOne() throws {
        let bad = try fx.dir.write("broken.yaml", "apiVersion: v1\nkind: Service\nmetadata: [unclosed\n")
        let p = try ManagedProcess(name: "serve-yaml", executable: Binary.path,
                                   arguments: ["serve", "-f", bad, "--http", "127.0.0.1:0", "--https", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                                               "--api", "127.0.0.1:0", "--data", fx.dir.file("data")],
                                   logDir: fx.dir)
        defer { p.stop() }
        XCTAssertEqual(p.waitForExit(timeout: 10), 1, "stderr:\n\(p.stderrTail())")
        XCTAssertTrue(p.stderr.contains("broken.yaml"), "message names the file:\n\(p.stderrTail())")
    }
}

/// A client loop on a background thread: keep-alive requests (a fresh connection every 10), each
/// expected to answer 200. `stop()` returns the count of successes and the failures seen.
final class LoadLoop: @unchecked Sendable {
    private let port: UInt16
    private let request: String
    private let lock = NSLock()
    private var running = true
    private var ok = 0
    private var failures: [String] = []
    private var failureCount = 0
    private let done = DispatchSemaphore(value: 0)

    init(port: UInt16, request: String) {
        self.port = port
        self.request = request
    }

    private var isRunning: Bool { lock.lock(); defer { lock.unlock() }; return running }

    func start() {
        Thread.detachNewThread { [self] in
            var client: RawClient?
            var used = 0
            while isRunning {
                do {
                    if client == nil || used >= 10 {
                        client?.close()
                        client = try RawClient(port: port, timeout: 5)
                        used = 0
                    }
                    try client!.send(request)
                    let r = try client!.readResponse()
                    used += 1
                    lock.lock()
                    if r.status == 200 {
                        ok += 1
                    } else {
                        failureCount += 1
                        if failures.count < 10 { failures.append("status \(r.status)") }
                    }
                    lock.unlock()
                    if r.header("connection")?.lowercased() == "close" { client?.close(); client = nil }
                } catch {
                    lock.lock()
                    failureCount += 1
                    if failures.count < 10 { failures.append(String(describing: error)) }
                    lock.unlock()
                    client?.close(); client = nil
                    Thread.sleep(forTimeInterval: 0.05)  // a dead proxy must not turn this into a busy loop
                }
            }
            client?.close()
            done.signal()
        }
    }

    /// Stops the loop; returns the successes, the number of failures and the first few of them.
    func stop() -> (ok: Int, failed: Int, first: [String]) {
        lock.lock(); running = false; lock.unlock()
        _ = done.wait(timeout: .now() + 10)
        lock.lock(); defer { lock.unlock() }
        return (ok, failureCount, failures)
    }
}
