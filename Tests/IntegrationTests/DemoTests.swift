// The demo a new user runs (configs/demo/, started by `make run`) works end to end: every pod
// Ready, the ConfigMap reaching the demo pods as env and as a file that follows edits, and each
// StatefulSet pod keeping its claim's data when it is recreated.

import Foundation
import Glibc
import XCTest

final class DemoTests: ControlPlaneTestCase {
    static let demoDirectory: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("configs/demo").path

    func testDemoManifestsServeConfigMapsAndClaims() throws {
        let mountPoints = ["/etc/demo", "/var/lib/db"].filter { !FileManager.default.fileExists(atPath: $0) }
        let (server, k) = try start([Self.demoDirectory])
        defer {
            // Delete the workloads so their pods go and the agent removes the mount points it made
            // on this machine (/etc/demo, /var/lib/db).
            _ = try? k.run(["delete", "deployment", "demo", "api-v1", "api-v2", "--wait=false"])
            _ = try? k.run(["delete", "statefulset", "db", "--wait=false"])
            _ = waitUntil(timeout: 20, interval: 0.2) { (try? k.pods("app in (demo,api-v1,api-v2,db)", terminating: true))?.isEmpty ?? false }
            // Replicas share a mount point the first of them made: the last one to go removes it.
            XCTAssertTrue(waitUntil(timeout: 5, interval: 0.1) { mountPoints.allSatisfy { !FileManager.default.fileExists(atPath: $0) } },
                          "mount points made for the pods are removed with them: \(mountPoints)")
        }
        try waitForReady(k, "demo", count: 3, timeout: 60)
        try waitForReady(k, "db", count: 2, timeout: 60)

        // Through the proxy: the defaultBackend is the demo Service.
        func demo() throws -> [String: Any] {
            let r = try Curl.run(["-H", "Host: unknown.example", "http://127.0.0.1:\(server.httpPort)/"])
            guard r.status == 200, let j = r.json else { throw HarnessError("demo answered \(r.status): \(r.bodyText) \(r.stderr)") }
            return j
        }
        var j = try demo()
        XCTAssertEqual((j["env"] as? [String: Any])?["GREETING"] as? String, "hello", "\(j)")
        XCTAssertEqual((j["files"] as? [String: Any])?["/etc/demo/message.txt"] as? String,
                       "Edit me: kubectl edit configmap demo-config, then ask again.\n", "\(j)")

        try k.ok(["patch", "configmap", "demo-config", "--type", "merge", "-p", #"{"data":{"message.txt":"changed\n","greeting":"bonjour"}}"#])
        // Every demo pod's file follows the edit within seconds; the environment does not change.
        let pods = try k.pods("app=demo")
        XCTAssertEqual(pods.count, 3)
        for p in pods {
            var seen: [String: Any] = [:]
            XCTAssertTrue(try waitUntil(timeout: 10, interval: 0.2) {
                let r = try Curl.run(["http://\(p.ip):8080/"])
                seen = r.json ?? [:]
                return (seen["files"] as? [String: Any])?["/etc/demo/message.txt"] as? String == "changed\n"
            }, "\(p.name) sees the edited file: \(seen)")
            XCTAssertEqual((seen["env"] as? [String: Any])?["GREETING"] as? String, "hello", "env changes only on restart")
        }
        j = try demo()
        XCTAssertEqual((j["env"] as? [String: Any])?["GREETING"] as? String, "hello")

        // db-1 recreated: same name, same claim, its earlier start still in the file.
        func starts(_ pod: String) throws -> [Substring] {
            guard let p = try k.pods("app=db").first(where: { $0.name == pod && $0.ready }) else { return [] }
            let r = try Curl.run(["http://\(p.ip):8080/"])
            let text = (r.json?["files"] as? [String: Any])?["/var/lib/db/starts"] as? String ?? ""
            return text.split(separator: "\n")
        }
        let before = try starts("db-1")
        XCTAssertEqual(before.count, 1, "one start so far: \(before)")
        let uid = try k.pods("app=db").first { $0.name == "db-1" }?.uid
        try k.ok(["delete", "pod", "db-1", "--wait=false"])
        var after: [Substring] = []
        XCTAssertTrue(try waitUntil(timeout: 40, interval: 0.3) {
            guard let p = try k.pods("app=db").first(where: { $0.name == "db-1" }), p.uid != uid, p.ready else { return false }
            after = try starts("db-1")
            return after.count == 2
        }, "db-1 back with its claim's data: \(after)")
        XCTAssertEqual(after.first, before.first)
        XCTAssertEqual(try k.ok(["get", "pvc", "data-db-0", "data-db-1", "-o", "jsonpath={.items[*].status.phase}"]).stdout, "Bound Bound")
    }
}
