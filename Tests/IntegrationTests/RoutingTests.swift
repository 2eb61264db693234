// Routing through the real proxy, rule by rule from the Kubernetes Ingress spec
// (https://kubernetes.io/docs/concepts/services-networking/ingress/): host exact and one-label
// wildcard, Prefix element-wise, Exact, longest wins, defaultBackend, ingressClassName, 404.

import Foundation
import XCTest

final class RoutingTests: XCTestCase {
    struct State {
        /// No defaultBackend anywhere: unmatched requests get 404.
        var plain: PorticoServer
        /// The same manifests plus an Ingress whose defaultBackend is `svc-e`.
        var withDefault: PorticoServer
        /// The manifest directory both servers read.
        var manifests: String
    }

    static let shared = SharedFixture<State> { fx in
        for n in ["a", "b", "c", "d", "e"] { try fx.echo(n) }
        func svc(_ n: String) throws -> String { Manifest.service("svc-\(n)", endpoints: [try fx.echo(n).address]) }
        let (a, b) = (try fx.echo("a").address, try fx.echo("b").address)
        let services = Manifest.join(try ["a", "b", "c", "d", "e"].map(svc) + [
            Manifest.serviceWithSlices("svc-slice", endpoints: [try fx.echo("d").address]),
            Manifest.service("svc-rr", endpoints: [a, b]),
            Manifest.service("svc-sticky", endpoints: [a, b], clientIPAffinity: true),
        ])
        let site = Manifest.ingress("site", rules: [
            .init(host: "foo.test", [
                .init("/", "Prefix", "svc-a"),
                .init("/foo", "Prefix", "svc-b"),
                .init("/foo/bar", "Exact", "svc-c"),
                .init("/aaa/bbb/", "Prefix", "svc-c"),
                .init("/impl", "ImplementationSpecific", "svc-d"),
                .init("/same", "Prefix", "svc-a"),
                .init("/same", "Exact", "svc-c"),
            ]),
            .init(host: "exact.wild.test", [.init("/", "Prefix", "svc-a")]),
            .init(host: "*.wild.test", [.init("/", "Prefix", "svc-d")]),
            .init(host: "named.test", [.init("/", "Prefix", "svc-b", portName: "http")]),
            .init(host: "slice.test", [.init("/", "Prefix", "svc-slice")]),
            .init(host: "rr.test", [.init("/", "Prefix", "svc-rr")]),
            .init(host: "sticky.test", [.init("/", "Prefix", "svc-sticky")]),
        ])
        // No ingressClassName: served too, and its rules merge with "site" for the same host.
        let merged = Manifest.ingress("merged", className: nil, rules: [
            .init(host: "foo.test", [.init("/merged", "Prefix", "svc-e")]),
        ])
        // Another controller's Ingress: never served.
        let foreign = Manifest.ingress("foreign", className: "nginx", rules: [
            .init(host: "other.test", [.init("/", "Prefix", "svc-a")]),
            .init(host: "foo.test", [.init("/foreign", "Prefix", "svc-e")]),
        ])
        let dirA = fx.dir.file("plain")
        try FileManager.default.createDirectory(atPath: dirA, withIntermediateDirectories: true)
        try services.write(toFile: dirA + "/services.yaml", atomically: true, encoding: .utf8)
        try Manifest.join([site, merged, foreign]).write(toFile: dirA + "/ingresses.yaml", atomically: true, encoding: .utf8)
        let fallback = try fx.dir.write("fallback.yaml", Manifest.ingress("fallback", defaultBackend: "svc-e", rules: []))
        let plain = try fx.serve([dirA], name: "serve-plain")
        let withDefault = try fx.serve([dirA, fallback], name: "serve-default")
        return State(plain: plain, withDefault: withDefault, manifests: dirA)
    }

    override class func tearDown() {
        shared.stop()
        super.tearDown()
    }

    /// The echo backend that answered, or "404"-style status text when the proxy answered itself.
    private func route(_ host: String, _ path: String, default useDefault: Bool = false,
                       file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let st = try Self.shared.get()
        let server = useDefault ? st.withDefault : st.plain
        let r = try Curl.request(server.base + path, host: host)
        XCTAssertEqual(r.exitCode, 0, "curl failed: \(r.stderr)", file: file, line: line)
        if r.status != 200 { return String(r.status) }
        return try EchoReply(r.body).name
    }

    private func assertRoute(_ host: String, _ path: String, _ expected: String, default useDefault: Bool = false,
                             _ why: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let got = try route(host, path, default: useDefault, file: file, line: line)
        XCTAssertEqual(got, expected, "\(host)\(path): \(why)", file: file, line: line)
    }

    func testPrefixSlashMatchesEverything() throws {
        try assertRoute("foo.test", "/", "a", "Prefix / matches /")
        try assertRoute("foo.test", "/anything/else", "a", "Prefix / matches every path")
    }

    func testPrefixMatchesElementWise() throws {
        try assertRoute("foo.test", "/foo", "b", "Prefix /foo matches /foo")
        try assertRoute("foo.test", "/foo/", "b", "Prefix /foo matches /foo/ (trailing slash ignored)")
        try assertRoute("foo.test", "/foo/baz/qux", "b", "Prefix /foo matches /foo/baz/qux")
        try assertRoute("foo.test", "/foobar", "a", "Prefix /foo does not match /foobar (element-wise)")
    }

    func testTrailingSlashInRuleIsIgnored() throws {
        try assertRoute("foo.test", "/aaa/bbb", "c", "Prefix /aaa/bbb/ matches /aaa/bbb")
        try assertRoute("foo.test", "/aaa/bbb/ccc", "c", "Prefix /aaa/bbb/ matches /aaa/bbb/ccc")
        try assertRoute("foo.test", "/aaa/bbbxyz", "a", "Prefix /aaa/bbb/ does not match /aaa/bbbxyz")
    }

    func testExactMatchesOnlyThePath() throws {
        try assertRoute("foo.test", "/foo/bar", "c", "Exact /foo/bar matches, and is longer than Prefix /foo")
        try assertRoute("foo.test", "/foo/bar/", "b", "Exact /foo/bar does not match /foo/bar/; Prefix /foo does")
        try assertRoute("foo.test", "/foo/bar/x", "b", "Exact /foo/bar does not match /foo/bar/x")
    }

    func testExactBeatsPrefixOnEqualPaths() throws {
        try assertRoute("foo.test", "/same", "c", "Exact /same beats Prefix /same")
        try assertRoute("foo.test", "/same/x", "a", "only Prefix /same matches /same/x")
    }

    func testImplementationSpecificIsPrefix() throws {
        try assertRoute("foo.test", "/impl", "d", "ImplementationSpecific /impl matches /impl")
        try assertRoute("foo.test", "/impl/sub", "d", "ImplementationSpecific /impl matches /impl/sub as a Prefix")
    }

    func testPathsAreCaseSensitive() throws {
        try assertRoute("foo.test", "/FOO", "a", "paths are case-sensitive: /FOO is not /foo")
    }

    func testQueryIsNotPartOfThePath() throws {
        let st = try Self.shared.get()
        let r = try Curl.request(st.plain.base + "/foo?x=1&y=2", host: "foo.test")
        XCTAssertEqual(r.status, 200)
        let e = try EchoReply(r.body)
        XCTAssertEqual(e.name, "b")
        XCTAssertEqual(e.path, "/foo")
        XCTAssertEqual(e.query, "x=1&y=2")
    }

    func testHostIsCaseInsensitiveAndPortIgnored() throws {
        try assertRoute("FOO.Test", "/foo", "b", "host match is case-insensitive")
        try assertRoute("foo.test:8080", "/foo", "b", "the port in Host is ignored")
    }

    func testWildcardCoversExactlyOneLabel() throws {
        try assertRoute("x.wild.test", "/", "d", "*.wild.test matches x.wild.test")
        try assertRoute("a.b.wild.test", "/", "404", "*.wild.test does not match a.b.wild.test")
        try assertRoute("wild.test", "/", "404", "*.wild.test does not match wild.test")
    }

    func testExactHostBeatsWildcard() throws {
        try assertRoute("exact.wild.test", "/", "a", "exact host beats *.wild.test")
    }

    func testBackendPortByName() throws {
        try assertRoute("named.test", "/", "b", "service port referenced by name")
    }

    func testEndpointSliceEndpoints() throws {
        try assertRoute("slice.test", "/", "d", "a selector-less Service with a discovery.k8s.io/v1 EndpointSlice")
    }

    /// Names of the backends answering `count` GETs sent on one keep-alive connection.
    private func backends(host: String, count: Int) throws -> [String] {
        let st = try Self.shared.get()
        let c = try RawClient(port: st.plain.httpPort)
        return try (0..<count).map { _ in
            try c.send("GET / HTTP/1.1\r\nHost: \(host)\r\n\r\n")
            return try EchoReply(try c.readResponse().body).name
        }
    }

    func testRoundRobinOverTwoEndpoints() throws {
        let names = try backends(host: "rr.test", count: 10)
        let a = names.filter { $0 == "a" }.count, b = names.filter { $0 == "b" }.count
        XCTAssertEqual(a + b, 10, "\(names)")
        XCTAssertTrue((4...6).contains(a), "equal weights share the load: \(names)")
    }

    func testClientIPAffinityPinsOneEndpoint() throws {
        let names = try backends(host: "sticky.test", count: 10)
        XCTAssertEqual(Set(names).count, 1, "sessionAffinity: ClientIP sends one client to one endpoint: \(names)")
        // A new connection from the same IP lands on the same endpoint.
        XCTAssertEqual(try backends(host: "sticky.test", count: 1), [names[0]])
    }

    func testRulesOfSeveralIngressesMerge() throws {
        try assertRoute("foo.test", "/merged/x", "e", "rule from a second Ingress (no class) for the same host")
    }

    func testOtherIngressClassIsNotServed() throws {
        try assertRoute("other.test", "/", "404", "ingressClassName nginx is not ours")
        try assertRoute("foo.test", "/foreign", "a", "a foreign Ingress's rule does not merge in")
    }

    func testIngressClassFlagSelectsWhichIngressesAreServed() throws {
        let st = try Self.shared.get()
        let fx = try Fixture()
        defer { fx.stop() }
        let nginxClass = try fx.serve([st.manifests], ["--ingress-class", "nginx"], name: "serve-nginx-class")
        func via(_ host: String, _ path: String) throws -> String {
            let r = try Curl.request(nginxClass.base + path, host: host)
            return r.status == 200 ? try EchoReply(r.body).name : String(r.status)
        }
        XCTAssertEqual(try via("other.test", "/"), "a", "--ingress-class nginx serves the nginx Ingress")
        XCTAssertEqual(try via("foo.test", "/foreign"), "e", "and its rules")
        XCTAssertEqual(try via("foo.test", "/foo"), "404", "not the portico-class Ingress")
        XCTAssertEqual(try via("foo.test", "/merged"), "e", "Ingresses without a class are served by every class")
    }

    func testUnmatchedHostIs404WithAShortPlainBody() throws {
        let st = try Self.shared.get()
        let r = try RawClient.exchange(port: st.plain.httpPort, "GET / HTTP/1.1\r\nHost: nowhere.test\r\n\r\n")
        XCTAssertEqual(r.status, 404)
        XCTAssertNotNil(r.header("date"), r.rawHead)
        XCTAssertNotNil(r.header("server"), r.rawHead)
        XCTAssertEqual(r.header("content-length"), String(r.body.count), r.rawHead)
        XCTAssertFalse(r.body.isEmpty, "a proxy-generated response names its reason")
        XCTAssertLessThan(r.body.count, 512)
    }

    func testDefaultBackendTakesWhatNoRuleMatches() throws {
        try assertRoute("nowhere.test", "/", "e", default: true, "unknown host goes to spec.defaultBackend")
        try assertRoute("a.b.wild.test", "/x", "e", default: true, "no rule matches: defaultBackend")
        try assertRoute("foo.test", "/foo/x", "b", default: true, "rules still win over the defaultBackend")
        try assertRoute("other.test", "/", "e", default: true, "a foreign class's host falls to the defaultBackend")
    }
}
