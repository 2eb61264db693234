import XCTest
import Glibc
@testable import Dataplane

/// Ingress routing semantics, from https://kubernetes.io/docs/concepts/services-networking/ingress/
final class RouterTests: XCTestCase {
    private func rule(_ host: String?, _ path: String, _ type: RouteRule.PathType, _ backend: Int32,
                      ingress: Int32 = 0, order: Int? = nil) -> RouteRule {
        RouteRule(host: host, path: path, pathType: type, match: RouteMatch(backend: backend, ingress: ingress),
                  order: order ?? Int(backend))
    }

    private func table(_ rules: [RouteRule], defaultMatch: RouteMatch = .notFound) -> RouteTable {
        RouteTable(generation: 1, backends: [], ingresses: [], rules: rules, defaultMatch: defaultMatch)
    }

    private func backend(_ t: RouteTable, _ host: String, _ path: String) -> Int32 {
        t.route(host: host, path: path).backend
    }

    // MARK: The "Examples" table of the Kubernetes docs (section "Path types" → "Examples").

    func testDocsExamplesTable() {
        struct Row { let rules: [(String, RouteRule.PathType)]; let request: String; let matches: Bool; let expect: Int32? }
        let rows: [Row] = [
            Row(rules: [("/", .prefix)], request: "/anything/at/all", matches: true, expect: 0),
            Row(rules: [("/", .prefix)], request: "/", matches: true, expect: 0),
            Row(rules: [("/foo", .exact)], request: "/foo", matches: true, expect: 0),
            Row(rules: [("/foo", .exact)], request: "/bar", matches: false, expect: nil),
            Row(rules: [("/foo", .exact)], request: "/foo/", matches: false, expect: nil),
            Row(rules: [("/foo/", .exact)], request: "/foo", matches: false, expect: nil),
            Row(rules: [("/foo", .prefix)], request: "/foo", matches: true, expect: 0),
            Row(rules: [("/foo", .prefix)], request: "/foo/", matches: true, expect: 0),
            Row(rules: [("/foo/", .prefix)], request: "/foo", matches: true, expect: 0),
            Row(rules: [("/foo/", .prefix)], request: "/foo/", matches: true, expect: 0),
            Row(rules: [("/aaa/bb", .prefix)], request: "/aaa/bbb", matches: false, expect: nil),
            Row(rules: [("/aaa/bbb", .prefix)], request: "/aaa/bbb", matches: true, expect: 0),
            Row(rules: [("/aaa/bbb/", .prefix)], request: "/aaa/bbb", matches: true, expect: 0),
            Row(rules: [("/aaa/bbb", .prefix)], request: "/aaa/bbb/", matches: true, expect: 0),
            Row(rules: [("/aaa/bbb", .prefix)], request: "/aaa/bbb/ccc", matches: true, expect: 0),
            Row(rules: [("/aaa/bbb", .prefix)], request: "/aaa/bbbxyz", matches: false, expect: nil),
            Row(rules: [("/", .prefix), ("/aaa", .prefix)], request: "/aaa/ccc", matches: true, expect: 1),
            Row(rules: [("/", .prefix), ("/aaa", .prefix), ("/aaa/bbb", .prefix)], request: "/aaa/bbb", matches: true, expect: 2),
            Row(rules: [("/", .prefix), ("/aaa", .prefix), ("/aaa/bbb", .prefix)], request: "/ccc", matches: true, expect: 0),
            Row(rules: [("/aaa", .prefix)], request: "/ccc", matches: false, expect: nil),
            Row(rules: [("/foo", .prefix), ("/foo", .exact)], request: "/foo", matches: true, expect: 1),
        ]
        for row in rows {
            let rules = row.rules.enumerated().map { rule(nil, $0.element.0, $0.element.1, Int32($0.offset)) }
            let t = table(rules)
            let m = t.route(host: "example.com", path: row.request)
            XCTAssertEqual(m.isFound, row.matches, "\(row.rules) \(row.request)")
            if let e = row.expect { XCTAssertEqual(m.backend, e, "\(row.rules) \(row.request)") }
        }
    }

    func testMixedExactAndPrefixPrefersExactRegardlessOfOrder() {
        let t = table([rule(nil, "/foo", .exact, 0, order: 5), rule(nil, "/foo", .prefix, 1, order: 0)])
        XCTAssertEqual(backend(t, "h", "/foo"), 0)
        XCTAssertEqual(backend(t, "h", "/foo/x"), 1)
    }

    // MARK: Paths

    func testExactIsCaseSensitiveAndByteEqual() {
        let t = table([rule(nil, "/Foo", .exact, 0)])
        XCTAssertEqual(backend(t, "h", "/Foo"), 0)
        XCTAssertEqual(backend(t, "h", "/foo"), -1)
        XCTAssertEqual(backend(t, "h", "/Foo/"), -1)
        XCTAssertEqual(backend(t, "h", "/Fo"), -1)
    }

    func testPrefixIsCaseSensitive() {
        let t = table([rule(nil, "/Api", .prefix, 0)])
        XCTAssertEqual(backend(t, "h", "/Api/v1"), 0)
        XCTAssertEqual(backend(t, "h", "/api/v1"), -1)
    }

    func testEmptyRequestPathIsRoot() {
        let t = table([rule(nil, "/", .exact, 0)])
        XCTAssertEqual(backend(t, "h", ""), 0)
        let p = table([rule(nil, "/", .prefix, 3)])
        XCTAssertEqual(backend(p, "h", ""), 3)
    }

    func testLongestPrefixWins() {
        let t = table([rule(nil, "/a", .prefix, 0), rule(nil, "/a/b/c", .prefix, 1), rule(nil, "/a/b", .prefix, 2)])
        XCTAssertEqual(backend(t, "h", "/a/b/c/d"), 1)
        XCTAssertEqual(backend(t, "h", "/a/b/cd"), 2)
        XCTAssertEqual(backend(t, "h", "/a/bc"), 0)
        XCTAssertEqual(backend(t, "h", "/a"), 0)
        XCTAssertEqual(backend(t, "h", "/ab"), -1)
    }

    func testLongerPrefixBeatsShorterExact() {
        let t = table([rule(nil, "/a", .exact, 0), rule(nil, "/a/b", .prefix, 1)])
        XCTAssertEqual(backend(t, "h", "/a/b/c"), 1)
        XCTAssertEqual(backend(t, "h", "/a"), 0)
    }

    func testExactWithTrailingSlashBeatsPrefixWithout() {
        let t = table([rule(nil, "/foo/", .exact, 0), rule(nil, "/foo", .prefix, 1)])
        XCTAssertEqual(backend(t, "h", "/foo/"), 0)
        XCTAssertEqual(backend(t, "h", "/foo"), 1)
    }

    func testRepeatedSlashes() {
        let t = table([rule(nil, "/aaa", .prefix, 0)])
        XCTAssertEqual(backend(t, "h", "/aaa//bbb"), 0)
        XCTAssertEqual(backend(t, "h", "/aaa///"), 0)
        let r = table([rule(nil, "/", .prefix, 0)])
        XCTAssertEqual(backend(r, "h", "//"), 0)
    }

    func testPrefixPathsDifferingOnlyByTrailingSlashAreTheSameRule() {
        let t = table([rule(nil, "/foo/", .prefix, 0, order: 0), rule(nil, "/foo", .prefix, 1, order: 1)])
        XCTAssertEqual(backend(t, "h", "/foo/bar"), 0)
        XCTAssertEqual(t.shadowedRules.count, 1)
    }

    // MARK: Hosts

    func testExactHostIsCaseInsensitive() {
        let t = table([rule("Foo.Example.com", "/", .prefix, 0)])
        XCTAssertEqual(backend(t, "foo.example.com", "/"), 0)
        XCTAssertEqual(backend(t, "FOO.EXAMPLE.COM", "/x"), 0)
        XCTAssertEqual(backend(t, "bar.example.com", "/"), -1)
    }

    func testPortIsIgnored() {
        let t = table([rule("foo.example.com", "/", .prefix, 0)])
        XCTAssertEqual(backend(t, "foo.example.com:8080", "/"), 0)
        XCTAssertEqual(backend(t, "foo.example.com:", "/"), 0)
        XCTAssertEqual(backend(t, "Foo.Example.Com:443", "/a"), 0)
    }

    func testTrailingDotIsStripped() {
        let t = table([rule("foo.example.com", "/", .prefix, 0), rule("*.wild.org", "/", .prefix, 1)])
        XCTAssertEqual(backend(t, "foo.example.com.", "/"), 0)
        XCTAssertEqual(backend(t, "foo.example.com.:80", "/"), 0)
        XCTAssertEqual(backend(t, "x.wild.org.", "/"), 1)
        XCTAssertEqual(backend(t, "foo.example.com..", "/"), -1)
    }

    func testRuleHostWithTrailingDotMatches() {
        let t = table([rule("foo.example.com.", "/", .prefix, 0)])
        XCTAssertEqual(backend(t, "foo.example.com", "/"), 0)
    }

    func testIPv6HostLiteralOnlyMatchesHostlessRules() {
        let t = table([rule("foo.example.com", "/", .prefix, 0), rule(nil, "/", .prefix, 1)])
        XCTAssertEqual(backend(t, "[::1]:8080", "/"), 1)
        XCTAssertEqual(backend(t, "[::1]", "/x"), 1)
        XCTAssertEqual(backend(t, "[2001:db8::1]:443", "/x"), 1)
        XCTAssertEqual(backend(t, "[::1", "/x"), 1)
        let hostOnly = table([rule("foo.example.com", "/", .prefix, 0)])
        XCTAssertEqual(backend(hostOnly, "[::1]:8080", "/"), -1)
    }

    func testIPv4HostMatchesHostlessRules() {
        let t = table([rule("foo.example.com", "/", .prefix, 0), rule(nil, "/", .prefix, 1)])
        XCTAssertEqual(backend(t, "127.0.0.1:8080", "/"), 1)
    }

    func testEmptyHostUsesHostlessRules() {
        let t = table([rule("foo.example.com", "/", .prefix, 0), rule(nil, "/", .prefix, 1)])
        XCTAssertEqual(backend(t, "", "/"), 1)
        XCTAssertEqual(backend(t, ":80", "/"), 1)
    }

    func testWildcardCoversExactlyOneLabel() {
        let t = table([rule("*.example.com", "/", .prefix, 0)])
        XCTAssertEqual(backend(t, "foo.example.com", "/"), 0)
        XCTAssertEqual(backend(t, "FOO.Example.COM:8443", "/"), 0)
        XCTAssertEqual(backend(t, "example.com", "/"), -1)
        XCTAssertEqual(backend(t, "a.b.example.com", "/"), -1)
        XCTAssertEqual(backend(t, ".example.com", "/"), -1)
        XCTAssertEqual(backend(t, "fooexample.com", "/"), -1)
        XCTAssertEqual(backend(t, "foo.example.org", "/"), -1)
    }

    func testExactHostBeatsWildcardWithoutFallingThroughToIt() {
        let t = table([
            rule("*.example.com", "/", .prefix, 0),
            rule("foo.example.com", "/api", .prefix, 1),
        ])
        XCTAssertEqual(backend(t, "foo.example.com", "/api/x"), 1)
        XCTAssertEqual(backend(t, "bar.example.com", "/api/x"), 0)
        // The exact host's rule set has no match; the wildcard's rules are not consulted.
        XCTAssertEqual(backend(t, "foo.example.com", "/other"), -1)
    }

    func testHostRulesThenHostlessRulesThenDefault() {
        let def = RouteMatch(backend: 9, ingress: 2)
        let t = table([
            rule("foo.example.com", "/api", .prefix, 0),
            rule(nil, "/static", .prefix, 1),
        ], defaultMatch: def)
        XCTAssertEqual(backend(t, "foo.example.com", "/api"), 0)
        XCTAssertEqual(backend(t, "foo.example.com", "/static/a.css"), 1)
        XCTAssertEqual(backend(t, "foo.example.com", "/nope"), 9)
        XCTAssertEqual(backend(t, "other.example.com", "/api"), 9)
        XCTAssertEqual(backend(t, "other.example.com", "/static"), 1)
        XCTAssertEqual(t.route(host: "x", path: "/nope"), def)
    }

    func testHostSpecificRuleBeatsLongerHostlessRule() {
        let t = table([rule("foo.example.com", "/", .prefix, 0), rule(nil, "/api/v1", .prefix, 1)])
        XCTAssertEqual(backend(t, "foo.example.com", "/api/v1/x"), 0)
    }

    func testNotFoundWithoutDefault() {
        let t = table([rule("foo.example.com", "/api", .exact, 0)])
        XCTAssertEqual(t.route(host: "foo.example.com", path: "/"), .notFound)
        XCTAssertEqual(RouteTable.empty.route(host: "a", path: "/"), .notFound)
    }

    // MARK: Merging and conflicts

    func testRulesFromSeveralIngressesForOneHostMerge() {
        let t = table([
            rule("foo.example.com", "/a", .prefix, 0, ingress: 0, order: 0),
            rule("foo.example.com", "/b", .prefix, 1, ingress: 1, order: 100),
        ])
        XCTAssertEqual(t.route(host: "foo.example.com", path: "/a"), RouteMatch(backend: 0, ingress: 0))
        XCTAssertEqual(t.route(host: "foo.example.com", path: "/b/c"), RouteMatch(backend: 1, ingress: 1))
    }

    func testConflictLowestOrderWinsWhateverTheInputOrder() {
        let newer = rule("foo.example.com", "/a", .prefix, 1, ingress: 1, order: 100)
        let older = rule("FOO.example.com", "/a", .prefix, 0, ingress: 0, order: 0)
        let t = table([newer, older])
        XCTAssertEqual(t.route(host: "foo.example.com", path: "/a"), RouteMatch(backend: 0, ingress: 0))
        XCTAssertEqual(t.rules, [older])
        XCTAssertEqual(t.shadowedRules, [newer])
    }

    func testSamePathDifferentTypeIsNoConflict() {
        let t = table([rule(nil, "/a", .prefix, 0, order: 0), rule(nil, "/a", .exact, 1, order: 1)])
        XCTAssertTrue(t.shadowedRules.isEmpty)
        XCTAssertEqual(backend(t, "h", "/a"), 1)
        XCTAssertEqual(backend(t, "h", "/a/"), 0)
    }

    func testManyRulesAndHosts() {
        var rules: [RouteRule] = []
        for i in 0..<200 {
            rules.append(rule("host\(i).example.com", "/p\(i)", .prefix, Int32(i)))
            rules.append(rule("*.w\(i).example.com", "/", .prefix, Int32(1000 + i)))
        }
        let t = table(rules)
        for i in 0..<200 {
            XCTAssertEqual(backend(t, "host\(i).example.com", "/p\(i)/x"), Int32(i))
            XCTAssertEqual(backend(t, "host\(i).example.com", "/p\(i + 1)"), -1)
            XCTAssertEqual(backend(t, "a.w\(i).example.com", "/q"), Int32(1000 + i))
        }
    }

    // MARK: ByteKeyMap

    func testByteKeyMap() {
        var m = ByteKeyMap<Int>()
        for i in 0..<100 { XCTAssertTrue(m.insertIfAbsent(Array("key\(i)".utf8), i)) }
        XCTAssertFalse(m.insertIfAbsent(Array("key5".utf8), 99))
        XCTAssertEqual(m.count, 100)
        for i in 0..<100 { XCTAssertEqual(m.lookup("key\(i)"), i) }
        XCTAssertNil(m.lookup("key100"))
        XCTAssertNil(m.lookup(""))
        XCTAssertTrue(m.insertIfAbsent([], -1))
        XCTAssertEqual(m.lookup(""), -1)
        XCTAssertEqual(Array("KEY7".utf8).withUnsafeBytes { m.lookupLowercased($0) }, 7)
        m.set(Array("key1".utf8), 111)
        XCTAssertEqual(m.lookup("key1"), 111)
        XCTAssertEqual(m.maxKeyLength, 5)
    }

    // MARK: JSON

    func testJSONDescriptionEscapes() {
        let ep = Endpoint(address: SocketAddressForTests.loopback(8080))
        let b = Backend(namespace: "default", service: "we\"b", port: "http", endpoints: [ep],
                        affinity: .cookie(name: "C", maxAgeSeconds: 5))
        let t = RouteTable(generation: 7, backends: [b], ingresses: ["default/a\\b"],
                           rules: [rule("x.example.com", "/p\n", .exact, 0)],
                           defaultMatch: RouteMatch(backend: 0, ingress: 0))
        let json = t.jsonDescription()
        XCTAssertTrue(json.hasPrefix("{\"generation\":7,\"ingresses\":[\"default/a\\\\b\"]"), json)
        XCTAssertTrue(json.contains("\"service\":\"we\\\"b\""), json)
        XCTAssertTrue(json.contains("\"path\":\"/p\\n\""), json)
        XCTAssertTrue(json.contains("\"address\":\"127.0.0.1:8080\""), json)
        XCTAssertTrue(json.contains("\"affinity\":{\"type\":\"cookie\",\"name\":\"C\",\"maxAgeSeconds\":5}"), json)
        XCTAssertTrue(json.hasSuffix("\"defaultBackend\":{\"backend\":0,\"ingress\":0}}"), json)
        XCTAssertEqual(RouteTable.empty.jsonDescription(),
                       "{\"generation\":0,\"ingresses\":[],\"backends\":[],\"rules\":[],\"shadowedRules\":[],\"defaultBackend\":null}")
    }
}

/// Many lookups over a realistic table; run under `valgrind` with PORTICO_ROUTE_ITERATIONS set
/// to two values to check that the heap allocation count does not grow with the request count.
final class RouterLoopTests: XCTestCase {
    func testRouteLoop() {
        var rules: [RouteRule] = []
        for i in 0..<50 {
            rules.append(RouteRule(host: "h\(i).example.com", path: "/api/v\(i)", pathType: .prefix,
                                   match: RouteMatch(backend: Int32(i), ingress: 0), order: i))
            rules.append(RouteRule(host: "*.w\(i).example.com", path: "/", pathType: .prefix,
                                   match: RouteMatch(backend: Int32(i), ingress: 0), order: i))
            rules.append(RouteRule(host: nil, path: "/e\(i)", pathType: .exact,
                                   match: RouteMatch(backend: Int32(i), ingress: 0), order: i))
        }
        let table = RouteTable(generation: 1, backends: [], ingresses: [], rules: rules)
        var iterations = 1000
        if let text = getenv("PORTICO_ROUTE_ITERATIONS"), let n = Int(String(cString: text)) { iterations = n }
        let hosts: [[UInt8]] = ["H7.Example.com:8080", "x.w3.example.com", "nothing.example.org", "[::1]:80"].map { Array($0.utf8) }
        let paths: [[UInt8]] = ["/api/v7/users/42", "/", "/e9", "/deep/a/b/c/d/e/f"].map { Array($0.utf8) }
        var found = 0
        hosts.withUnsafeBufferPointer { hs in
            paths.withUnsafeBufferPointer { ps in
                for i in 0..<iterations {
                    let m = hs[i & 3].withUnsafeBytes { h in ps[i & 3].withUnsafeBytes { p in table.route(host: h, path: p) } }
                    if m.isFound { found += 1 }
                }
            }
        }
        XCTAssertEqual(found, iterations / 4 * 3 + min(iterations % 4, 3))
    }
}
