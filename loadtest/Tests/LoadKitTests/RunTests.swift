import Foundation
import XCTest
@testable import LoadKit

/// End-to-end runs against `TestServer` on loopback: counts, statuses, error kinds, rate.
final class RunTests: XCTestCase {
    func config(_ url: String, _ edit: (inout LoadArguments) -> Void) throws -> LoadConfig {
        var a = LoadArguments()
        a.url = url
        a.connections = 2
        edit(&a)
        return try a.makeConfig()
    }

    func testClosedLoopSendsExactlyN() throws {
        let server = try TestServer()
        defer { server.stop() }
        let r = try LoadRunner.run(try config(server.url + "/x") { $0.requests = 501; $0.connections = 5; $0.threads = 2 })
        XCTAssertEqual(r.responses, 501)
        XCTAssertEqual(r.statuses, [200: 501])
        XCTAssertEqual(r.errorCount, 0)
        XCTAssertEqual(server.count("/x"), 501)
        XCTAssertEqual(r.histogram.totalCount, 501)
        XCTAssertEqual(r.connectionsOpened, 5)
        XCTAssertEqual(r.bytesRead, 501 * UInt64("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n".utf8.count))
    }

    func testNewConnectionPerRequest() throws {
        let server = try TestServer()
        defer { server.stop() }
        let r = try LoadRunner.run(try config(server.url + "/") { $0.requests = 40; $0.newConnection = true })
        XCTAssertEqual(r.responses, 40)
        XCTAssertEqual(r.connectionsOpened, 40)
        XCTAssertEqual(r.errorCount, 0)
    }

    func testStatusCodesAreCountedPerCode() throws {
        let server = try TestServer()
        defer { server.stop() }
        let dir = NSTemporaryDirectory() + "lt-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let file = dir + "/s.yaml"
        try """
        requests:
          - path: /ok
          - path: /fail
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let r = try LoadRunner.run(try config(server.url) { $0.requests = 400; $0.scenario = file })
        XCTAssertEqual(r.responses, 400)
        XCTAssertEqual(r.statuses[200, default: 0] + r.statuses[500, default: 0], 400)
        XCTAssertEqual(UInt64(server.count("/ok")), r.statuses[200])
        XCTAssertEqual(UInt64(server.count("/fail")), r.statuses[500])
        XCTAssertEqual(r.non2xx3xx, r.statuses[500])
        XCTAssertGreaterThan(r.statuses[500, default: 0], 100)
        XCTAssertGreaterThan(r.statuses[200, default: 0], 100)
    }

    func testScenarioWeightsShapeTheMix() throws {
        let server = try TestServer()
        defer { server.stop() }
        let specs = try Scenario.parse("""
            requests:
              - { path: /heavy, weight: 3 }
              - { path: /light, weight: 1, method: POST, body: "abc" }
            """, baseURL: try LoadURL(parsing: server.url))
        var c = LoadConfig(requests: specs, address: try LoadURL(parsing: server.url).resolve())
        c.connections = 4
        c.totalRequests = 4000
        let r = try LoadRunner.run(c)
        XCTAssertEqual(r.responses, 4000)
        let ratio = Double(server.count("/heavy")) / Double(server.count("/light"))
        XCTAssertEqual(ratio, 3, accuracy: 0.5)
    }

    func testConnectRefusedIsAConnectError() throws {
        // A port nobody listens on: bind one, then close it.
        let s = try TestServer()
        let url = s.url
        s.stop()
        usleep(50_000)
        let c = try config(url + "/") { $0.requests = 5; $0.connections = 1 }
        XCTAssertNotNil(Preflight.connectProblem(c.address, timeoutNanos: 1_000_000_000))
        let r = try LoadRunner.run(c)
        XCTAssertEqual(r.responses, 0)
        XCTAssertEqual(r.errors[.connect], 5)
        XCTAssertTrue(r.warnings.contains { $0.contains("no response") })
    }

    func testRefusedConnectsAreNotCountedAsOpened() throws {
        let s = try TestServer()
        let url = s.url
        s.stop()
        usleep(50_000)
        let r = try LoadRunner.run(try config(url + "/") { $0.requests = 5; $0.connections = 1 })
        XCTAssertEqual(r.errors[.connect], 5)
        XCTAssertEqual(r.connectionsOpened, 0)
        XCTAssertTrue(r.text(title: "t").contains(" 0 connection(s) opened"), r.text(title: "t"))
    }

    func testHTTPSToAPlainHTTPServerSaysSo() throws {
        let server = try TestServer(mode: .rejectAnything)
        defer { server.stop() }
        let r = try LoadRunner.run(try config("https://127.0.0.1:\(server.port)/") { $0.requests = 3; $0.connections = 1; $0.insecure = true })
        XCTAssertEqual(r.errors, [.connect: 3])
        let warning = r.warnings.first { $0.hasPrefix("TLS handshake failed") } ?? "\(r.warnings)"
        XCTAssertEqual(warning, "TLS handshake failed: the server did not answer with TLS, is it plain HTTP? (wrong version number)")
    }

    func testSilentServerTimesOut() throws {
        let server = try TestServer(mode: .silent)
        defer { server.stop() }
        let t0 = Date()
        let r = try LoadRunner.run(try config(server.url + "/") { $0.requests = 4; $0.timeout = "150ms" })
        XCTAssertEqual(r.errors, [.timeout: 4])
        XCTAssertEqual(r.responses, 0)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 3)
    }

    func testResetIsAResetError() throws {
        let server = try TestServer(mode: .reset)
        defer { server.stop() }
        let r = try LoadRunner.run(try config(server.url + "/") { $0.requests = 6; $0.connections = 1 })
        XCTAssertEqual(r.errorCount, 6)
        XCTAssertEqual(r.errors[.reset], 6, "\(r.errors)")
    }

    func testGarbageIsMalformed() throws {
        let server = try TestServer(mode: .garbage)
        defer { server.stop() }
        let r = try LoadRunner.run(try config(server.url + "/") { $0.requests = 6 })
        XCTAssertEqual(r.errors, [.malformed: 6])
    }

    func testOpenLoopHoldsTheRate() throws {
        let server = try TestServer()
        defer { server.stop() }
        let r = try LoadRunner.run(try config(server.url + "/") { $0.rate = 200; $0.duration = "1s"; $0.connections = 4 })
        XCTAssertEqual(Double(r.responses), 200, accuracy: 40)
        XCTAssertEqual(r.errorCount, 0)
        XCTAssertTrue(r.warnings.isEmpty, "\(r.warnings)")
        XCTAssertEqual(r.targetRate, 200)
    }

    func testUnreachableRateIsWarned() throws {
        let server = try TestServer(mode: .silent)
        defer { server.stop() }
        let r = try LoadRunner.run(try config(server.url + "/") { $0.rate = 100; $0.duration = "300ms"; $0.timeout = "5s" })
        XCTAssertTrue(r.warnings.contains { $0.contains("below 95%") }, "\(r.warnings)")
    }

    func testJSONReportShape() throws {
        let server = try TestServer()
        defer { server.stop() }
        let r = try LoadRunner.run(try config(server.url + "/") { $0.requests = 20 })
        let obj = try JSONSerialization.jsonObject(with: Data(r.json(target: "t").utf8)) as! [String: Any]
        XCTAssertEqual(Set(obj.keys), ["target", "threads", "connections", "mode", "target_rate", "duration_s", "responses",
                                       "requests_per_sec", "bytes_read", "bytes_per_sec", "connections_opened",
                                       "latency_ms", "status", "errors", "warnings"])
        XCTAssertEqual(obj["responses"] as? Int, 20)
        XCTAssertEqual(obj["mode"] as? String, "closed")
        XCTAssertEqual((obj["status"] as? [String: Int])?["200"], 20)
        let latency = obj["latency_ms"] as! [String: Double]
        XCTAssertEqual(Set(latency.keys), ["p50", "p90", "p99", "p99.9", "p99.99", "max", "mean"])
        XCTAssertLessThanOrEqual(latency["p50"]!, latency["max"]!)
        let errors = obj["errors"] as! [String: Int]
        XCTAssertEqual(Set(errors.keys), ["total", "connect", "timeout", "reset", "closed", "malformed"])
        let table = r.percentileTable()
        XCTAssertTrue(table.contains("Percentile"))
        XCTAssertTrue(table.contains("#[Max"))
        let svg = r.svg(title: "t")
        XCTAssertTrue(svg.hasPrefix("<svg") && svg.contains("<polyline") && svg.contains("99.99%"))
    }
}
