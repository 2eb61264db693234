import XCTest
@testable import Dataplane

final class MetricsTests: XCTestCase {
    /// Checks every line against the text exposition format 0.0.4 grammar and returns the samples
    /// as `name{labels}` → value text.
    func parseExposition(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> [String: String] {
        XCTAssertTrue(text.hasSuffix("\n"), file: file, line: line)
        var samples: [String: String] = [:]
        var types: [String: String] = [:]
        func isNameStart(_ c: UInt8) -> Bool { (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 95 || c == 58 }
        func isNameChar(_ c: UInt8) -> Bool { isNameStart(c) || (c >= 48 && c <= 57) }
        func validName(_ s: Substring) -> Bool {
            let u = Array(s.utf8)
            return !u.isEmpty && isNameStart(u[0]) && u.allSatisfy(isNameChar)
        }
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            let l = String(raw)
            if l.hasPrefix("# HELP ") {
                let parts = l.dropFirst(7).split(separator: " ", maxSplits: 1)
                XCTAssertTrue(validName(parts[0]), l, file: file, line: line)
                continue
            }
            if l.hasPrefix("# TYPE ") {
                let parts = l.dropFirst(7).split(separator: " ")
                XCTAssertEqual(parts.count, 2, l, file: file, line: line)
                XCTAssertTrue(validName(parts[0]), l, file: file, line: line)
                XCTAssertTrue(["counter", "gauge", "histogram", "summary", "untyped"].contains(String(parts[1])), l,
                              file: file, line: line)
                XCTAssertNil(types[String(parts[0])], "TYPE given twice: \(l)", file: file, line: line)
                types[String(parts[0])] = String(parts[1])
                continue
            }
            XCTAssertFalse(l.hasPrefix("#"), l, file: file, line: line)
            // metric_name [ "{" label_name "=" `"` label_value `"` { "," ... } [ "," ] "}" ] value
            let u = Array(l.utf8)
            var p = 0
            while p < u.count && isNameChar(u[p]) { p += 1 }
            let name = String(decoding: u[0..<p], as: UTF8.self)
            XCTAssertTrue(validName(Substring(name)), l, file: file, line: line)
            if p < u.count && u[p] == UInt8(ascii: "{") {
                p += 1
                while p < u.count && u[p] != UInt8(ascii: "}") {
                    let start = p
                    while p < u.count && isNameChar(u[p]) { p += 1 }
                    XCTAssertTrue(validName(Substring(String(decoding: u[start..<p], as: UTF8.self))), l,
                                  file: file, line: line)
                    guard p + 1 < u.count, u[p] == UInt8(ascii: "="), u[p + 1] == UInt8(ascii: "\"") else {
                        XCTFail("bad label in \(l)", file: file, line: line); return samples
                    }
                    p += 2
                    while p < u.count && u[p] != UInt8(ascii: "\"") {
                        if u[p] == UInt8(ascii: "\\") {
                            p += 1
                            XCTAssertTrue(p < u.count && [UInt8(ascii: "\\"), UInt8(ascii: "\""), UInt8(ascii: "n")].contains(u[p]),
                                          "bad escape in \(l)", file: file, line: line)
                        }
                        p += 1
                    }
                    p += 1 // closing quote
                    if p < u.count && u[p] == UInt8(ascii: ",") { p += 1 }
                }
                XCTAssertTrue(p < u.count, l, file: file, line: line)
                p += 1
            }
            XCTAssertTrue(p < u.count && u[p] == UInt8(ascii: " "), l, file: file, line: line)
            let key = String(decoding: u[0..<p], as: UTF8.self)
            let value = String(decoding: u[(p + 1)...], as: UTF8.self)
            XCTAssertTrue(Double(value) != nil || ["+Inf", "-Inf", "NaN"].contains(value), l, file: file, line: line)
            XCTAssertNil(samples[key], "duplicate sample \(key)", file: file, line: line)
            samples[key] = value
            // Every sample belongs to a declared family.
            var family = name
            if types[family] == nil {
                for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
                    family = String(name.dropLast(suffix.count))
                }
            }
            XCTAssertNotNil(types[family], "no TYPE for \(name)", file: file, line: line)
        }
        return samples
    }

    func testRecordAndRender() {
        let s = WorkerStats()
        s.configure(ingresses: ["default/demo"], backends: ["default/web:80", "default/api:http"])
        s.connectionOpened(); s.connectionOpened(); s.connectionClosed()
        s.recordRequest(ingress: 0, backend: 0, status: 200, upstreamNanos: 1_500_000, bytesIn: 100, bytesOut: 1000)
        s.recordRequest(ingress: 0, backend: 0, status: 204, upstreamNanos: 20_000_000_000, bytesIn: 50, bytesOut: 10)
        s.recordRequest(ingress: 0, backend: 1, status: 503, upstreamNanos: nil, bytesIn: 1, bytesOut: 2)
        s.recordRequest(ingress: -1, backend: -1, status: 404, upstreamNanos: nil, bytesIn: 3, bytesOut: 4)
        s.recordRequest(ingress: 7, backend: 9, status: 0, upstreamNanos: nil, bytesIn: 0, bytesOut: 0) // stale indexes
        s.recordEjection(backend: 1)
        s.recordUpstreamConnect(reused: false); s.recordUpstreamConnect(reused: true); s.recordUpstreamConnect(reused: true)
        let text = s.snapshot().prometheusText()
        let m = parseExposition(text)
        XCTAssertEqual(m[#"portico_requests_total{ingress="default/demo",service="default/web:80",code_class="2xx"}"#], "2")
        XCTAssertEqual(m[#"portico_requests_total{ingress="default/demo",service="default/api:http",code_class="5xx"}"#], "1")
        XCTAssertEqual(m[#"portico_requests_total{ingress="",service="",code_class="4xx"}"#], "1")
        XCTAssertEqual(m[#"portico_requests_total{ingress="",service="",code_class="other"}"#], "1")
        XCTAssertEqual(m[#"portico_upstream_latency_seconds_bucket{service="default/web:80",le="0.001"}"#], "0")
        XCTAssertEqual(m[#"portico_upstream_latency_seconds_bucket{service="default/web:80",le="0.0025"}"#], "1")
        XCTAssertEqual(m[#"portico_upstream_latency_seconds_bucket{service="default/web:80",le="10"}"#], "1")
        XCTAssertEqual(m[#"portico_upstream_latency_seconds_bucket{service="default/web:80",le="+Inf"}"#], "2")
        XCTAssertEqual(m[#"portico_upstream_latency_seconds_sum{service="default/web:80"}"#], "20.0015")
        XCTAssertEqual(m[#"portico_upstream_latency_seconds_count{service="default/web:80"}"#], "2")
        XCTAssertNil(m[#"portico_upstream_latency_seconds_count{service="default/api:http"}"#])
        XCTAssertEqual(m["portico_open_connections"], "1")
        XCTAssertEqual(m["portico_connections_total"], "2")
        XCTAssertEqual(m["portico_bytes_received_total"], "154")
        XCTAssertEqual(m["portico_bytes_sent_total"], "1016")
        XCTAssertEqual(m[#"portico_upstream_connections_total{reused="false"}"#], "1")
        XCTAssertEqual(m[#"portico_upstream_connections_total{reused="true"}"#], "2")
        XCTAssertEqual(m[#"portico_endpoint_ejections_total{service="default/api:http"}"#], "1")
        XCTAssertTrue(text.contains("# TYPE portico_upstream_latency_seconds histogram\n"))
        XCTAssertTrue(text.contains("# HELP portico_requests_total "))
    }

    func testBucketBoundaryIsInclusive() {
        let s = WorkerStats()
        s.configure(ingresses: [], backends: ["b"])
        s.recordRequest(ingress: -1, backend: 0, status: 200, upstreamNanos: 500_000, bytesIn: 0, bytesOut: 0)
        let m = parseExposition(s.snapshot().prometheusText())
        XCTAssertEqual(m[#"portico_upstream_latency_seconds_bucket{service="b",le="0.0005"}"#], "1")
        XCTAssertEqual(m[#"portico_upstream_latency_seconds_sum{service="b"}"#], "0.0005")
    }

    func testLabelValuesAreEscaped() {
        let s = WorkerStats()
        s.configure(ingresses: ["we\"ird\\name\nx"], backends: ["ns/svc:80"])
        s.recordRequest(ingress: 0, backend: 0, status: 301, upstreamNanos: nil, bytesIn: 0, bytesOut: 0)
        let m = parseExposition(s.snapshot().prometheusText())
        XCTAssertEqual(m[#"portico_requests_total{ingress="we\"ird\\name\nx",service="ns/svc:80",code_class="3xx"}"#], "1")
    }

    func testMergeOfTwoWorkersSums() {
        let a = WorkerStats(), b = WorkerStats()
        a.configure(ingresses: ["i"], backends: ["s1", "s2"])
        b.configure(ingresses: ["i"], backends: ["s2", "s1"])   // another order: names decide
        a.recordRequest(ingress: 0, backend: 0, status: 200, upstreamNanos: 1_000_000, bytesIn: 10, bytesOut: 20)
        b.recordRequest(ingress: 0, backend: 1, status: 200, upstreamNanos: 3_000_000, bytesIn: 1, bytesOut: 2)
        b.recordRequest(ingress: 0, backend: 0, status: 500, upstreamNanos: 3_000_000, bytesIn: 1, bytesOut: 2)
        a.connectionOpened(); b.connectionOpened(); b.connectionOpened()
        a.recordEjection(backend: 0); b.recordEjection(backend: 1)
        var total = MetricsSnapshot()
        total.merge(a.snapshot())
        total.merge(b.snapshot())
        XCTAssertEqual(total.requests[.init(ingress: "i", service: "s1", codeClass: "2xx")], 2)
        XCTAssertEqual(total.requests[.init(ingress: "i", service: "s2", codeClass: "5xx")], 1)
        XCTAssertEqual(total.upstreamLatency["s1"]?.count, 2)
        XCTAssertEqual(total.upstreamLatency["s1"]?.sumNanos, 4_000_000)
        XCTAssertEqual(total.openConnections, 3)
        XCTAssertEqual(total.connectionsTotal, 3)
        XCTAssertEqual(total.bytesReceived, 12)
        XCTAssertEqual(total.ejections["s1"], 2)
        let m = parseExposition(total.prometheusText())
        XCTAssertEqual(m[#"portico_upstream_latency_seconds_bucket{service="s1",le="0.001"}"#], "1")
        XCTAssertEqual(m[#"portico_upstream_latency_seconds_bucket{service="s1",le="0.005"}"#], "2")
        XCTAssertEqual(m["portico_open_connections"], "3")
    }

    func testConfigureKeepsTotalsOfOldLabels() {
        let s = WorkerStats()
        s.configure(ingresses: ["a"], backends: ["old", "kept"])
        s.recordRequest(ingress: 0, backend: 0, status: 200, upstreamNanos: 1_000, bytesIn: 1, bytesOut: 1)
        s.recordRequest(ingress: 0, backend: 1, status: 200, upstreamNanos: 1_000, bytesIn: 1, bytesOut: 1)
        s.recordEjection(backend: 0)
        s.connectionOpened()
        s.configure(ingresses: ["b", "a"], backends: ["kept", "new"])
        s.recordRequest(ingress: 1, backend: 0, status: 200, upstreamNanos: 1_000, bytesIn: 1, bytesOut: 1)
        s.recordRequest(ingress: 0, backend: 1, status: 404, upstreamNanos: nil, bytesIn: 1, bytesOut: 1)
        let snap = s.snapshot()
        XCTAssertEqual(snap.requests[.init(ingress: "a", service: "old", codeClass: "2xx")], 1)
        XCTAssertEqual(snap.requests[.init(ingress: "a", service: "kept", codeClass: "2xx")], 2)
        XCTAssertEqual(snap.requests[.init(ingress: "b", service: "new", codeClass: "4xx")], 1)
        XCTAssertEqual(snap.upstreamLatency["kept"]?.count, 2)
        XCTAssertEqual(snap.upstreamLatency["old"]?.count, 1)
        XCTAssertEqual(snap.ejections["old"], 1)
        XCTAssertEqual(snap.openConnections, 1)
        XCTAssertEqual(snap.bytesReceived, 4)
        // A second snapshot is identical: snapshotting does not move anything.
        XCTAssertEqual(s.snapshot(), snap)
        _ = parseExposition(snap.prometheusText())
    }

    func testEmptyStatsRender() {
        let m = parseExposition(WorkerStats().snapshot().prometheusText())
        XCTAssertEqual(m["portico_open_connections"], "0")
        XCTAssertEqual(m[#"portico_upstream_connections_total{reused="true"}"#], "0")
    }

    func testSecondsFormatting() {
        XCTAssertEqual(PrometheusWriter.seconds(nanos: 0), "0")
        XCTAssertEqual(PrometheusWriter.seconds(nanos: 1), "0.000000001")
        XCTAssertEqual(PrometheusWriter.seconds(nanos: 2_000_000_000), "2")
        XCTAssertEqual(PrometheusWriter.seconds(nanos: 12_345_000_000), "12.345")
    }
}
