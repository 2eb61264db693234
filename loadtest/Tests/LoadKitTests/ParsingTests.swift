import XCTest
@testable import LoadKit

final class ParsingTests: XCTestCase {
    func testURLParts() throws {
        let u = try LoadURL(parsing: "http://example.local:8080/a/b?x=1#frag")
        XCTAssertEqual(u, LoadURL(isTLS: false, host: "example.local", port: 8080, target: "/a/b?x=1"))
        XCTAssertEqual(u.authority, "example.local:8080")
        let s = try LoadURL(parsing: "https://[::1]/")
        XCTAssertEqual(s.port, 443)
        XCTAssertEqual(s.authority, "[::1]")
        XCTAssertEqual(try LoadURL(parsing: "http://h").target, "/")
        XCTAssertEqual(try LoadURL(parsing: "http://h?q").target, "/?q")
    }

    func testBadURLsAreUsageErrors() {
        for bad in ["example.com/", "ftp://h/", "http://", "http://h:0/", "http://h:70000/", "http://u@h/",
                    "http://[::1/", "http://h/a b", "http://h:x/"] {
            XCTAssertThrowsError(try LoadURL(parsing: bad), bad) { XCTAssertTrue($0 is UsageError, bad) }
        }
    }

    func testDurationsHeadersAndHostPort() throws {
        XCTAssertEqual(try Parse.duration("10s"), 10_000_000_000)
        XCTAssertEqual(try Parse.duration("500ms"), 500_000_000)
        XCTAssertEqual(try Parse.duration("2m"), 120_000_000_000)
        XCTAssertEqual(try Parse.duration("1.5"), 1_500_000_000)
        XCTAssertThrowsError(try Parse.duration("soon"))
        XCTAssertThrowsError(try Parse.duration("-1s"))
        let h = try Parse.header("X-Test:  a b ")
        XCTAssertEqual(h.0, "X-Test")
        XCTAssertEqual(h.1, "a b")
        XCTAssertThrowsError(try Parse.header("no colon"))
        XCTAssertThrowsError(try Parse.header("Bad Name: v"))
        XCTAssertThrowsError(try Parse.header("X: a\r\nInjected: 1"))
        XCTAssertThrowsError(try Parse.header("X: a\nb"))
        XCTAssertTrue(try Parse.hostPort("127.0.0.1:8090") == ("127.0.0.1", 8090))
        XCTAssertTrue(try Parse.hostPort("[::1]:443") == ("::1", 443))
        XCTAssertThrowsError(try Parse.hostPort("127.0.0.1"))
    }

    func testFlagCombinationsAreChecked() {
        func check(_ why: String, _ edit: (inout LoadArguments) -> Void) {
            var a = LoadArguments()
            a.url = "http://127.0.0.1:9/"
            edit(&a)
            XCTAssertThrowsError(try a.makeConfig(), why) { e in
                XCTAssertTrue(e is UsageError, why)
                XCTAssertTrue((e as? UsageError)?.message.contains(why) ?? false, "\(e) should mention \(why)")
            }
        }
        check("-t (4) cannot exceed -c (2)") { $0.threads = 4; $0.connections = 2 }
        check("either -d or -n") { $0.duration = "1s"; $0.requests = 5 }
        check("-n must be at least 1") { $0.requests = 0 }
        check("-R must be") { $0.rate = -5 }
        check("bad duration") { $0.timeout = "fast" }
        check("bad method") { $0.method = "GE T" }
        check("cannot read --body") { $0.bodyFile = "/nonexistent/body" }
        check("cannot read scenario") { $0.scenario = "/nonexistent/s.yaml" }
        check("need an https") { $0.insecure = true }
        check("give a URL") { $0.url = nil }
        check("bad --connect-to") { $0.connectTo = "nowhere" }
        check("bad URL") { $0.url = "localhost:8080" }
        check("do not apply with --scenario") { $0.scenario = "/nonexistent/s.yaml"; $0.method = "POST" }
    }

    func testUnwritableOutputPathsAreRefusedBeforeTheRun() throws {
        let dir = NSTemporaryDirectory() + "lt-out-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func problem(_ edit: (inout LoadArguments) -> Void) -> String? {
            var a = LoadArguments()
            a.url = "http://127.0.0.1:9/"
            edit(&a)
            do { _ = try a.makeConfig(); return nil } catch { return "\(error)" }
        }
        XCTAssertEqual(problem { $0.svg = "/nonexistent-dir/lat.svg" },
                       "cannot write --svg '/nonexistent-dir/lat.svg': no directory '/nonexistent-dir'")
        XCTAssertEqual(problem { $0.histOut = dir }, "cannot write --hist-out '\(dir)': it is a directory")
        XCTAssertNil(problem { $0.histOut = dir + "/h.txt"; $0.svg = "lat.svg" })
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/h.txt"), "the check writes nothing")
    }

    func testRateTooFastToPaceIsRefused() throws {
        func config(_ rate: Double, connections: Int) throws -> LoadConfig {
            var a = LoadArguments()
            a.url = "http://127.0.0.1:9/"
            a.rate = rate
            a.connections = connections
            return try a.makeConfig()
        }
        // 10 connections at 1e12 req/s: 0.01 ns between a connection's requests, which used to
        // truncate to 0 and silently run a closed loop.
        XCTAssertThrowsError(try config(1e12, connections: 10)) { e in
            XCTAssertTrue(e is UsageError)
            XCTAssertTrue("\(e)".hasPrefix("-R 1e+12 is too fast to pace"), "\(e)")
        }
        XCTAssertThrowsError(try config(1e-12, connections: 10)) { XCTAssertTrue("\($0)".hasPrefix("-R 1e-12 is too slow"), "\($0)") }
        // The fastest rate that can be paced: 1 µs per connection.
        XCTAssertEqual(try config(10_000_000, connections: 10).intervalNanos, 1000)
        XCTAssertThrowsError(try config(10_000_001, connections: 10))
        XCTAssertEqual(try config(3, connections: 2).intervalNanos, 666_666_667)
    }

    func testTLSFollowsTheRequestsSchemeNotTheBaseURL() throws {
        let dir = NSTemporaryDirectory() + "lt-scheme-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "target: https://a.test\nrequests:\n  - path: /\n".write(toFile: dir + "/s.yaml", atomically: true, encoding: .utf8)
        var a = LoadArguments()
        a.url = "http://127.0.0.1:9/"
        a.scenario = dir + "/s.yaml"
        a.connectTo = "127.0.0.1:9"
        a.insecure = true
        // The file's target wins, so every request is https: the run must speak TLS.
        XCTAssertNotNil(try a.makeConfig().tls)
    }

    func testUnresolvableHostIsUnreachable() {
        var a = LoadArguments()
        a.url = "http://no-such-host.invalid/"
        XCTAssertThrowsError(try a.makeConfig()) { XCTAssertTrue($0 is UnreachableError, "\($0)") }
    }

    func testDefaultsAndConnectTo() throws {
        var a = LoadArguments()
        a.url = "http://www.example.test:8080/p"
        a.connectTo = "127.0.0.1:9"
        let c = try a.makeConfig()
        XCTAssertEqual(c.address.description, "127.0.0.1:9")
        XCTAssertEqual(c.durationNanos, 10_000_000_000)
        XCTAssertEqual(c.requests[0].hostHeader, "www.example.test:8080")
        let t = RequestTemplate(c.requests[0], closeConnection: false)
        XCTAssertEqual(String(decoding: t.bytes, as: UTF8.self), "GET /p HTTP/1.1\r\nHost: www.example.test:8080\r\n\r\n")
    }

    func testRequestBytesArePrebuilt() throws {
        let spec = RequestSpec(method: "POST", url: try LoadURL(parsing: "http://h/api?q=1"),
                               headers: [("Content-Type", "text/plain")], body: Array("hello".utf8))
        let t = RequestTemplate(spec, closeConnection: true)
        XCTAssertEqual(String(decoding: t.bytes, as: UTF8.self),
                       "POST /api?q=1 HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
        XCTAssertEqual(t.method, .post)
        let own = RequestSpec(url: try LoadURL(parsing: "http://h/"), headers: [("host", "other")])
        let ownTemplate = RequestTemplate(own, closeConnection: false)
        XCTAssertEqual(String(decoding: ownTemplate.bytes, as: UTF8.self),
                       "GET / HTTP/1.1\r\nhost: other\r\n\r\n")
    }

    func testScenarioParsing() throws {
        let base = try LoadURL(parsing: "http://127.0.0.1:8080")
        let specs = try Scenario.parse("""
            requests:
              - name: home
                path: /
                host: www.example.local
                weight: 5
              - url: http://127.0.0.1:8080/api
                method: put
                headers: { X-A: "1" }
                body: "{}"
            """, baseURL: base)
        XCTAssertEqual(specs.count, 2)
        XCTAssertEqual(specs[0].hostHeader, "www.example.local")
        XCTAssertEqual(specs[0].weight, 5)
        XCTAssertEqual(specs[0].url.target, "/")
        XCTAssertEqual(specs[1].method, "PUT")
        XCTAssertEqual(specs[1].body, Array("{}".utf8))
        XCTAssertEqual(specs[1].headers.first?.0, "X-A")
        XCTAssertEqual(specs[1].weight, 1)
    }

    func testServerNameIsTheHostWithoutItsPort() throws {
        let u = try LoadURL(parsing: "https://load.test:8443/")
        XCTAssertEqual(RequestSpec(url: u).serverName, "load.test")
        XCTAssertEqual(RequestSpec(url: u, hostOverride: "www.example.local:8443").serverName, "www.example.local")
        XCTAssertEqual(RequestSpec(url: u, hostOverride: "[::1]:8443").serverName, "::1")
        XCTAssertEqual(RequestSpec(url: u, hostOverride: "api.example.local").serverName, "api.example.local")
    }

    func testScenarioErrorsNameTheEntry() {
        func check(_ yaml: String, _ expect: String, base: LoadURL? = nil) {
            XCTAssertThrowsError(try Scenario.parse(yaml, name: "s.yaml", baseURL: base)) { e in
                XCTAssertTrue("\(e)".contains(expect), "\(e) should contain \(expect)")
            }
        }
        check("requests: []", "no requests")
        check("requests:\n  - path: /", "request 1: path without a target")
        check("target: http://h\nrequests:\n  - { path: /, weight: 0 }", "weight must be at least 1")
        check("target: http://h\nrequests:\n  - { path: x }", "path must start with '/'")
        check("requests:\n  - { name: n }", "request 1 (n): needs url or path")
        check("requests:\n  - { url: 'ftp://h/' }", "bad URL")
        check("requests: [ {", "scenario 's.yaml'")
        check("target: http://h\nrequests:\n  - { path: /, weight: lots }", "wrong type")
        check("target: http://h\nrequests:\n  - { path: /, wieght: 3 }", "request 1: unknown key 'wieght'")
        check("target: http://h\nrequest:\n  - { path: / }", "unknown key 'request'")
        check("- a\n- b", "expected a mapping")
    }

    func testYAMLSyntaxErrorIsOneLineWithFileLineAndColumn() {
        // libyaml's positions: the end of the input for an unclosed flow, else the offending token.
        for (yaml, position) in [("requests: [ {", "line 2, column 1"),
                                 ("target: http://h\nrequests:\n  - path: /\n   weight: 2", "line 4, column 4"),
                                 ("requests:\n  - { path: '/ }", "line 2, column 17"),
                                 ("target: http://h\ntarget: http://g\nrequests: []", "line 1, column 1")] {
            XCTAssertThrowsError(try Scenario.parse(yaml, name: "s.yaml", baseURL: nil)) { e in
                let m = "\(e)"
                XCTAssertFalse(m.contains("\n"), "one line: \(m)")
                XCTAssertTrue(m.hasPrefix("scenario 's.yaml': \(position): "), m)
            }
        }
    }

    func testWeightedPickerFollowsWeights() {
        var p = WeightedPicker(weights: [1, 3], seed: 42)
        var counts = [0, 0]
        for _ in 0..<40_000 { counts[p.next()] += 1 }
        XCTAssertEqual(Double(counts[1]) / Double(counts[0]), 3, accuracy: 0.2)
    }
}
