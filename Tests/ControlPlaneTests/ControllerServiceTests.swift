import Foundation
import Objects
import Reactor
import XCTest
@testable import ControlPlane

final class ControllerServiceTests: XCTestCase {
    /// Other programs on this machine may serve on pod addresses (127.1.x.y) at common ports.
    let port = Int.random(in: 20000...29999)
    var httpScript: String { "trap 'date +%s.%N > $MARK/$POD_NAME.term; kill $!; exit 0' TERM; python3 -m http.server \(port) --bind $POD_IP >/dev/null 2>&1 & wait" }

    func testEndpointsListReadyPodsWithNamedPortsAndDropAPodBeforeItIsSignalled() throws {
        let h = try ControllerHarness()
        defer { h.finish() }
        try h.apply(.services, #"{"metadata":{"name":"web"},"spec":{"selector":{"app":"web"},"ports":[{"name":"http","port":80,"targetPort":"http"}]}}"#)
        let probe = #"{"tcpSocket":{"port":"http"},"periodSeconds":1}"#
        let script = "MARK=\(h.workDir); " + httpScript
        try h.apply(.deployments, deploymentJSON("web", replicas: 2, script: script, probe: probe,
                                                 ports: #"[{"name":"http","containerPort":\#(port)}]"#))
        // A matching pod that never becomes ready.
        try h.apply(.pods, #"{"metadata":{"name":"lame","labels":{"app":"web"}},"spec":{"terminationGracePeriodSeconds":1,"containers":[{"name":"main","command":["sleep","60"],"ports":[{"name":"http","containerPort":\#(port)}],"readinessProbe":{"exec":{"command":["false"]},"periodSeconds":1}}]}}"#)

        h.waitUntil("2 ready addresses, 1 not ready") {
            let s = h.get(.endpoints, "web")?["subsets"]?.arrayValue ?? []
            return s.count == 1 && s[0]["addresses"]?.arrayValue?.count == 2 && s[0]["notReadyAddresses"]?.arrayValue?.count == 1
        }
        let subset = try XCTUnwrap(h.get(.endpoints, "web")?["subsets"]?.arrayValue?.first)
        XCTAssertEqual(subset["ports"], try JSONValue.parse(#"[{"name":"http","port":\#(port),"protocol":"TCP"}]"#))
        let ready = Set(h.readyPods("app=web").compactMap { $0[path: ["status", "podIP"]]?.stringValue })
        XCTAssertEqual(Set(subset["addresses"]!.arrayValue!.compactMap { $0["ip"]?.stringValue }), ready)
        XCTAssertEqual(subset["notReadyAddresses"]?.arrayValue?.first?[path: ["targetRef", "name"]]?.stringValue, "lame")
        // The pods really serve on their own address and the named port.
        for ip in ready {
            XCTAssertTrue(try connects(ip, UInt16(port)), "pod \(ip) serves \(port)")
        }
        // The EndpointSlice says the same (it is written in a step of its own: wait for it too).
        h.waitUntil("the EndpointSlice has 2 ready, 1 not ready") {
            let eps = (try? h.store.list(.endpointSlices, namespace: "default", labelSelector: "kubernetes.io/service-name=web").items.first)??["endpoints"]?.arrayValue ?? []
            return eps.filter { $0[path: ["conditions", "ready"]] == .bool(true) }.count == 2
                && eps.filter { $0[path: ["conditions", "ready"]] == .bool(false) }.count == 1
        }
        let slices = try h.store.list(.endpointSlices, namespace: "default", labelSelector: "kubernetes.io/service-name=web").items
        XCTAssertEqual(slices.count, 1)
        let eps = slices[0]["endpoints"]?.arrayValue ?? []
        XCTAssertEqual(eps.filter { $0[path: ["conditions", "ready"]] == .bool(true) }.count, 2)
        XCTAssertEqual(eps.filter { $0[path: ["conditions", "ready"]] == .bool(false) }.count, 1)
        XCTAssertEqual(slices[0]["ports"], try JSONValue.parse(#"[{"name":"http","port":\#(port),"protocol":"TCP"}]"#))
        // ClusterIP from 127.2/16.
        let clusterIP = try XCTUnwrap(h.get(.services, "web")?[path: ["spec", "clusterIP"]]?.stringValue)
        XCTAssertTrue(clusterIP.hasPrefix("127.2."), clusterIP)

        // Deleting a ready pod: it leaves the Endpoints before its processes get SIGTERM.
        let victim = try XCTUnwrap(h.readyPods("app=web").first)
        let victimIP = victim[path: ["status", "podIP"]]!.stringValue!
        let lock = NSLock()
        var removedAt: Date?
        let watch = try h.store.watch(.endpoints) { e in
            let ips = (e.object["subsets"]?.arrayValue ?? []).flatMap { ($0["addresses"]?.arrayValue ?? []) }.compactMap { $0["ip"]?.stringValue }
            lock.lock(); if !ips.contains(victimIP) && removedAt == nil { removedAt = Date() }; lock.unlock()
        }
        defer { watch.cancel() }
        lock.lock(); removedAt = nil; lock.unlock()
        try h.store.delete(.pods, namespace: "default", name: victim.name)
        let termFile = h.workDir + "/\(victim.name).term"
        h.waitUntil("the victim got SIGTERM") { FileManager.default.fileExists(atPath: termFile) && ((try? String(contentsOfFile: termFile, encoding: .utf8)) ?? "").hasSuffix("\n") }
        let termAt = Date(timeIntervalSince1970: Double(try String(contentsOfFile: termFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))!)
        lock.lock()
        let removed = try XCTUnwrap(removedAt)
        lock.unlock()
        XCTAssertLessThan(removed, termAt, "Endpoints updated before the signal")
        h.waitUntil("replacement ready") { h.readyPods("app=web").count == 2 && h.get(.endpoints, "web")?["subsets"]?.arrayValue?.first?["addresses"]?.arrayValue?.count == 2 }

        // Deleting the Service removes its Endpoints and slices.
        try h.store.delete(.services, namespace: "default", name: "web")
        h.waitUntil("endpoints gone") {
            try h.get(.endpoints, "web") == nil && (h.store.list(.endpointSlices, namespace: "default").items.isEmpty)
        }
    }

    func testDrainDelayKeepsTheSignalBackAfterEndpointsDropThePod() throws {
        var options = ControllerOptions()
        options.endpointDrainDelay = 0.6
        let h = try ControllerHarness(options: options)
        defer { h.finish() }
        try h.apply(.services, #"{"metadata":{"name":"w"},"spec":{"selector":{"app":"w"},"ports":[{"port":80}]}}"#)
        let mark = h.workDir + "/term"
        try h.apply(.pods, #"{"metadata":{"name":"w1","labels":{"app":"w"}},"spec":{"terminationGracePeriodSeconds":1,"containers":[{"name":"main","command":["/bin/sh","-c","trap 'date +%s.%N > \#(mark); exit 0' TERM; while true; do sleep 0.1; done"]}]}}"#)
        h.waitUntil("in Endpoints") { h.get(.endpoints, "w")?["subsets"]?.arrayValue?.first?["addresses"]?.arrayValue?.count == 1 }
        try h.store.delete(.pods, namespace: "default", name: "w1")
        h.waitUntil("out of Endpoints") { h.get(.endpoints, "w")?["subsets"] == nil }
        let dropped = Date()
        h.waitUntil("signalled") { ((try? String(contentsOfFile: mark, encoding: .utf8)) ?? "").hasSuffix("\n") }
        let signalled = Date(timeIntervalSince1970: Double(try String(contentsOfFile: mark, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))!)
        XCTAssertGreaterThan(signalled.timeIntervalSince(dropped), 0.4)
        h.waitUntil("stopped") { h.runningPods.isEmpty }
    }

    func testANamedTargetPortResolvesPerPod() throws {
        let h = try ControllerHarness()
        defer { h.finish() }
        try h.apply(.services, #"{"metadata":{"name":"m"},"spec":{"selector":{"app":"m"},"ports":[{"name":"main","port":80,"targetPort":"web"}]}}"#)
        for (name, port) in [("m1", 7001), ("m2", 7002)] {
            try h.apply(.pods, #"{"metadata":{"name":"\#(name)","labels":{"app":"m"}},"spec":{"terminationGracePeriodSeconds":1,"containers":[{"name":"c","command":["sleep","60"],"ports":[{"name":"web","containerPort":\#(port)}]}]}}"#)
        }
        // A pod without the named port is left out.
        try h.apply(.pods, #"{"metadata":{"name":"m3","labels":{"app":"m"}},"spec":{"terminationGracePeriodSeconds":1,"containers":[{"name":"c","command":["sleep","60"]}]}}"#)
        h.waitUntil("two subsets") { h.get(.endpoints, "m")?["subsets"]?.arrayValue?.count == 2 && h.readyPods("app=m").count == 3 }
        let subsets = h.get(.endpoints, "m")!["subsets"]!.arrayValue!
        let ports = Set(subsets.compactMap { $0["ports"]?.arrayValue?.first?["port"]?.intValue })
        XCTAssertEqual(ports, [7001, 7002])
        XCTAssertTrue(subsets.allSatisfy { $0["ports"]?.arrayValue?.first?["name"]?.stringValue == "main" })
        XCTAssertEqual(subsets.map { $0["addresses"]?.arrayValue?.count ?? 0 }, [1, 1])
        h.waitUntil("two slices") {
            try h.store.list(.endpointSlices, namespace: "default", labelSelector: "kubernetes.io/service-name=m").items.count == 2
        }
    }

    func testServiceAddressesAndEnvironment() throws {
        let h = try ControllerHarness()
        defer { h.finish() }
        try h.apply(.services, #"{"metadata":{"name":"backend-api"},"spec":{"selector":{"app":"x"},"ports":[{"name":"http","port":8080},{"name":"metrics","port":9090}]}}"#)
        try h.apply(.services, #"{"metadata":{"name":"np"},"spec":{"type":"NodePort","selector":{"app":"x"},"ports":[{"name":"a","port":80},{"name":"b","port":81,"nodePort":30000}]}}"#)
        try h.apply(.services, #"{"metadata":{"name":"manual"},"spec":{"ports":[{"port":80}]}}"#)
        try h.apply(.endpoints, #"{"metadata":{"name":"manual"},"subsets":[{"addresses":[{"ip":"127.0.0.9"}],"ports":[{"port":9}]}]}"#)
        h.waitUntil("ClusterIPs") {
            ["backend-api", "np", "manual"].allSatisfy { h.get(.services, $0)?[path: ["spec", "clusterIP"]]?.stringValue?.hasPrefix("127.2.") == true }
        }
        let ips = ["backend-api", "np", "manual"].compactMap { h.get(.services, $0)?[path: ["spec", "clusterIP"]]?.stringValue }
        XCTAssertEqual(Set(ips).count, 3, "distinct ClusterIPs")
        let np = try XCTUnwrap(h.get(.services, "np")?[path: ["spec", "ports"]]?.arrayValue)
        XCTAssertEqual(np[1]["nodePort"]?.intValue, 30000)
        let allocated = try XCTUnwrap(np[0]["nodePort"]?.intValue)
        XCTAssertTrue((30001...32767).contains(allocated), "\(allocated)")

        try h.apply(.services, #"{"metadata":{"name":"lb"},"spec":{"type":"LoadBalancer","selector":{"app":"x"},"ports":[{"port":80}]}}"#)
        h.waitUntil("LoadBalancer address") {
            h.get(.services, "lb")?[path: ["status", "loadBalancer", "ingress"]] == .array([.object(["ip": .string("127.0.0.1")])])
        }
        XCTAssertNotNil(h.get(.services, "lb")?[path: ["spec", "ports"]]?.arrayValue?.first?["nodePort"]?.intValue)
        let host = ips[0]
        let out = h.workDir + "/env"
        try h.apply(.pods, #"{"metadata":{"name":"client"},"spec":{"terminationGracePeriodSeconds":1,"containers":[{"name":"main","command":["/bin/sh","-c","echo $BACKEND_API_SERVICE_HOST $BACKEND_API_SERVICE_PORT $BACKEND_API_SERVICE_PORT_METRICS $BACKEND_API_PORT > \#(out); exec sleep 60"]}]}}"#)
        h.waitUntil("env written") { ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").hasSuffix("\n") }
        XCTAssertEqual(try String(contentsOfFile: out, encoding: .utf8), "\(host) 8080 9090 tcp://\(host):8080\n")
        // Endpoints of a Service without a selector are the user's.
        usleep(200_000)
        XCTAssertEqual(h.get(.endpoints, "manual")?["subsets"]?.arrayValue?.first?["addresses"]?.arrayValue?.first?["ip"]?.stringValue, "127.0.0.9")
    }

    func testIngressStatusForOurClass() throws {
        let h = try ControllerHarness()
        defer { h.finish() }
        let backend = #""defaultBackend":{"service":{"name":"web","port":{"number":80}}}"#
        try h.apply(.ingresses, #"{"metadata":{"name":"ours"},"spec":{"ingressClassName":"portico",\#(backend)}}"#)
        try h.apply(.ingresses, #"{"metadata":{"name":"unclassed"},"spec":{\#(backend)}}"#)
        try h.apply(.ingresses, #"{"metadata":{"name":"theirs"},"spec":{"ingressClassName":"nginx",\#(backend)}}"#)
        h.waitUntil("status set") {
            ["ours", "unclassed"].allSatisfy {
                h.get(.ingresses, $0)?[path: ["status", "loadBalancer", "ingress"]] == .array([.object(["ip": .string("127.0.0.1")])])
            }
        }
        XCTAssertNil(h.get(.ingresses, "theirs")?[path: ["status", "loadBalancer", "ingress"]])
    }
}

/// True if a TCP connection to ip:port succeeds.
func connects(_ ip: String, _ port: UInt16) throws -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = port.bigEndian
    inet_pton(AF_INET, ip, &addr.sin_addr)
    return withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
}
