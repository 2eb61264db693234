import XCTest
import Foundation

/// The kube-proxy role: a Service's ClusterIP:port (and nodePort) accepts TCP and balances it
/// over the Service's endpoints (Kubernetes Service semantics on one machine).
final class ServiceAddressTests: XCTestCase {
    private var fx: Fixture!

    override func setUpWithError() throws { fx = try Fixture() }
    override func tearDown() { fx.stop() }

    /// A ClusterIP from 127.2.0.0/16 unlikely to collide with another test run.
    private func clusterIP() -> String { "127.2.\(Int.random(in: 1...250)).\(Int.random(in: 1...250))" }

    private func service(_ name: String, ip: String, port: Int, nodePort: Int? = nil, endpoints: [String],
                         clientIP: Bool = false) -> String {
        var s = """
        apiVersion: v1
        kind: Service
        metadata: {name: \(name)}
        spec:
          clusterIP: \(ip)
          type: \(nodePort == nil ? "ClusterIP" : "NodePort")
        \(clientIP ? "  sessionAffinity: ClientIP\n" : "")  ports:
            - name: http
              port: \(port)
        \(nodePort.map { "      nodePort: \($0)\n" } ?? "")---
        apiVersion: v1
        kind: Endpoints
        metadata: {name: \(name)}
        subsets:

        """
        for ep in endpoints {
            let parts = ep.split(separator: ":")
            s += "  - addresses: [{ip: \(parts[0])}]\n    ports: [{name: http, port: \(parts[1])}]\n"
        }
        return s
    }

    func testClusterIPBalancesAcrossEndpoints() throws {
        let a = try fx.echo("a"), b = try fx.echo("b")
        let ip = clusterIP()
        let m = try fx.dir.write("svc.yaml", service("web", ip: ip, port: 8080, endpoints: [a.address, b.address]))
        _ = try fx.serve([m])
        var seen = Set<String>()
        for _ in 0..<10 {
            let r = try Curl.request("http://\(ip):8080/hello")
            XCTAssertEqual(r.status, 200, r.stderr)
            seen.insert(try EchoReply(r.body).name)
        }
        XCTAssertEqual(seen, ["a", "b"], "connections to the ClusterIP reach both endpoints")
    }

    func testNodePortListensOnEveryAddress() throws {
        let a = try fx.echo("a")
        let nodePort = Int(try freePort())
        let m = try fx.dir.write("svc.yaml", service("np", ip: clusterIP(), port: 80, nodePort: nodePort, endpoints: [a.address]))
        _ = try fx.serve([m])
        let r = try Curl.request("http://127.0.0.1:\(nodePort)/x")
        XCTAssertEqual(r.status, 200, r.stderr)
        XCTAssertEqual(try EchoReply(r.body).path, "/x")
    }

    func testClientIPAffinityKeepsOneEndpoint() throws {
        let a = try fx.echo("a"), b = try fx.echo("b")
        let ip = clusterIP()
        let m = try fx.dir.write("svc.yaml", service("sticky", ip: ip, port: 8080, endpoints: [a.address, b.address], clientIP: true))
        _ = try fx.serve([m])
        var seen = Set<String>()
        for _ in 0..<6 { seen.insert(try EchoReply(try Curl.request("http://\(ip):8080/").body).name) }
        XCTAssertEqual(seen.count, 1, "sessionAffinity: ClientIP sends one client to one endpoint")
    }

    func testRemovedServiceStopsListening() throws {
        let a = try fx.echo("a")
        let ip = clusterIP()
        let m = try fx.dir.write("svc.yaml", service("gone", ip: ip, port: 8080, endpoints: [a.address]))
        let s = try fx.serve([m])
        XCTAssertEqual(try Curl.request("http://\(ip):8080/").status, 200)
        _ = try fx.dir.write("svc.yaml", "")
        kill(s.process.pid, SIGHUP)
        XCTAssertTrue(waitUntil(timeout: 10) { (try? Curl.request("http://\(ip):8080/", maxTime: 2).exitCode) == 7 },
                      "connection refused once the Service is gone")
    }

    /// A TCP connection through a ClusterIP passes a half-close on, both ways: the client's end
    /// of file reaches the endpoint while the endpoint's answer still flows back, and the
    /// endpoint's close ends the client's read after the last byte. 4 MiB each way crosses the
    /// proxy's 16 KiB buffers many times (short writes, EAGAIN, backpressure).
    func testTunnelPassesHalfCloseOnBothWays() throws {
        let backend = try fx.scripted(.echoAfterEndOfFile)
        let ip = clusterIP()
        let m = try fx.dir.write("svc.yaml", service("halfclose", ip: ip, port: 9000, endpoints: [backend.address]))
        _ = try fx.serve([m])
        let payload = (0..<(4 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 11) }
        let c = try RawClient(host: ip, port: 9000, timeout: 15)
        try c.send(payload)
        XCTAssertEqual(shutdown(c.fd, Int32(SHUT_WR)), 0)
        let back = try c.readToEOF()
        XCTAssertEqual(back.count, payload.count, "the whole answer, sent after the client's end of file")
        XCTAssertTrue(back == payload, "the bytes come back unchanged and in order")
        XCTAssertEqual(backend.connections, 1)
    }
}
