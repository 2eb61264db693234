// The admin listener (/healthz, /readyz, /metrics, /routes), the command line, and a graceful
// stop: SIGTERM lets an in-flight request finish and exits 0.

import Foundation
import XCTest

final class AdminTests: XCTestCase {
    struct State {
        var server: PorticoServer
    }

    static let shared = SharedFixture<State> { fx in
        let echo = try fx.echo("adm")
        let m = try fx.dir.write("admin.yaml", Manifest.join([
            Manifest.service("svc-adm", endpoints: [echo.address]),
            Manifest.ingress("admin-demo", rules: [.init(host: "admin.test", [.init("/api", "Prefix", "svc-adm")])]),
        ]))
        return State(server: try fx.serve([m]))
    }

    override class func tearDown() {
        shared.stop()
        super.tearDown()
    }

    func testHealthzAndReadyz() throws {
        let st = try Self.shared.get()
        XCTAssertEqual(try Curl.run([st.server.adminBase + "/healthz"]).status, 200)
        XCTAssertEqual(try Curl.run([st.server.adminBase + "/readyz"]).status, 200)
    }

    func testMetricsCountRequests() throws {
        let st = try Self.shared.get()
        XCTAssertEqual(try Curl.request(st.server.base + "/api/x", host: "admin.test").status, 200)
        XCTAssertEqual(try Curl.request(st.server.base + "/", host: "nothing.test").status, 404)
        let m = try Curl.run([st.server.adminBase + "/metrics"])
        XCTAssertEqual(m.status, 200)
        XCTAssertTrue(m.bodyText.contains("portico_requests_total"), m.bodyText.prefix(2000).description)
        let total = try XCTUnwrap(try st.server.metric("portico_requests_total"))
        XCTAssertGreaterThanOrEqual(total, 2, "both requests counted")
    }

    /// The heap in use (what a growing structure shows in, unlike pages the allocator keeps) is a
    /// gauge: more than the program's static data, less than what the process holds in memory.
    func testMetricsReportTheHeapInUse() throws {
        let st = try Self.shared.get()
        let heap = try XCTUnwrap(try st.server.metric("portico_heap_bytes"), "portico_heap_bytes in /metrics")
        let status = try String(contentsOfFile: "/proc/\(st.server.process.pid)/status", encoding: .utf8)
        let rssKiB = try XCTUnwrap(status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
            .flatMap { $0.split(separator: " ").dropFirst().first.flatMap { Double($0) } })
        XCTAssertGreaterThan(heap, 64 * 1024)
        XCTAssertLessThan(heap, rssKiB * 1024, "the heap in use is part of the resident set")
    }

    func testRoutesIsJSONNamingTheIngress() throws {
        let st = try Self.shared.get()
        let r = try Curl.run([st.server.adminBase + "/routes"])
        XCTAssertEqual(r.status, 200)
        XCTAssertNotNil(try? JSONSerialization.jsonObject(with: r.body), "valid JSON: \(r.bodyText.prefix(500))")
        XCTAssertTrue(r.bodyText.contains("admin-demo"), "names the Ingress: \(r.bodyText.prefix(500))")
        XCTAssertTrue(r.bodyText.contains("admin.test"), "names the host")
    }

    func testUnknownAdminPathIs404() throws {
        let st = try Self.shared.get()
        XCTAssertEqual(try Curl.run([st.server.adminBase + "/no-such-page"]).status, 404)
    }

    func testVersionAndHelp() throws {
        try Binary.require()
        let dir = try TempDir()
        defer { dir.remove() }
        for args in [["version"], ["--help"], ["serve", "--help"], ["echo", "--help"]] {
            let p = try ManagedProcess(name: "cli-\(args.joined(separator: "_"))", executable: Binary.path,
                                       arguments: args, logDir: dir)
            let status = p.waitForExit(timeout: 10)
            p.stop()
            XCTAssertEqual(status, 0, "portico \(args.joined(separator: " ")) exits 0")
            XCTAssertFalse((p.stdout + p.stderr).isEmpty, "portico \(args.joined(separator: " ")) prints something")
        }
    }

    func testSigtermDrainsTheInFlightRequestAndExitsZero() throws {
        let fx = try Fixture()
        defer { fx.stop() }
        let echo = try fx.echo("slow")
        let m = try fx.dir.write("drain.yaml", Manifest.join([
            Manifest.service("svc-slow", endpoints: [echo.address]),
            Manifest.ingress("drain", rules: [.init(host: nil, [.init("/", "Prefix", "svc-slow")])]),
        ]))
        let server = try fx.serve([m], ["--drain-timeout", "5s"])

        let result = ResultBox()
        let finished = DispatchSemaphore(value: 0)
        let url = server.base + "/slow"
        Thread.detachNewThread {
            result.value = try? Curl.request(url, host: "drain.test", headers: ["X-Echo-Delay-Ms: 1000"], maxTime: 10)
            finished.signal()
        }
        // Let the request reach the backend before the signal.
        Thread.sleep(forTimeInterval: 0.3)
        server.process.signal(SIGTERM)
        XCTAssertEqual(finished.wait(timeout: .now() + 10), .success, "the in-flight request finished")
        let r = try XCTUnwrap(result.value)
        XCTAssertEqual(r.status, 200, "in-flight request completes: \(r.stderr)")
        XCTAssertEqual(try EchoReply(r.body).name, "slow")
        let status = server.process.waitForExit(timeout: 10)
        XCTAssertEqual(status, 0, "exit 0 after draining; stderr:\n\(server.process.stderrTail())")
    }

    func testAccessLogHasOneLinePerRequest() throws {
        for format in ["text", "json"] {
            let fx = try Fixture()
            defer { fx.stop() }
            let echo = try fx.echo("log")
            let m = try fx.dir.write("log.yaml", Manifest.join([
                Manifest.service("svc-log", endpoints: [echo.address]),
                Manifest.ingress("log", rules: [.init(host: nil, [.init("/", "Prefix", "svc-log")])]),
            ]))
            let logPath = fx.dir.file("access-\(format).log")
            let server = try fx.serve([m], ["--access-log", logPath, "--access-log-format", format])
            let id = "it-\(format)-\(UInt32.random(in: 0...UInt32.max))"
            XCTAssertEqual(try Curl.request(server.base + "/logged", host: "log.test",
                                            headers: ["X-Request-Id: \(id)"]).status, 200)
            let read = { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
            // The log is buffered: give it a moment, and at the latest it is flushed on exit.
            if !waitUntil(timeout: 3, { read().contains(id) }) { server.stop() }
            let lines = read().split(separator: "\n").filter { $0.contains(id) }
            XCTAssertEqual(lines.count, 1, "\(format): one line for the request: \(read().suffix(500))")
            guard let line = lines.first else { continue }
            XCTAssertTrue(line.contains("/logged"), "\(format): the path: \(line)")
            XCTAssertTrue(line.contains("200"), "\(format): the status: \(line)")
            if format == "json" {
                XCTAssertNotNil(try? JSONSerialization.jsonObject(with: Data(line.utf8)), "a JSON object per line: \(line)")
            }
        }
    }

    func testSigintExitsZero() throws {
        let fx = try Fixture()
        defer { fx.stop() }
        let m = try fx.dir.write("empty.yaml", Manifest.service("svc-none", endpoints: []))
        let server = try fx.serve([m])
        server.process.signal(SIGINT)
        XCTAssertEqual(server.process.waitForExit(timeout: 10), 0, "stderr:\n\(server.process.stderrTail())")
    }
}

private final class ResultBox: @unchecked Sendable {
    var value: CurlResult?
}
