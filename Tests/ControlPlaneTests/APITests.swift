import Foundation
import XCTest
import Objects
import Reactor
@testable import ControlPlane

/// The API server over real loopback HTTP: curl for raw requests, and the real kubectl.
final class APITests: XCTestCase {
    private var dir: String!
    private var store: Store!
    private var loop: EventLoop!
    private var thread: OSThread!
    private var api: APIServer!
    private var base: String { "http://\(api.boundAddress)" }

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "portico-api-\(UUID().uuidString)"
        store = try Store(directory: dir)
        loop = EventLoop()
        api = try APIServer(store: store, loop: loop, address: SocketAddress(ip: "127.0.0.1", port: 0)!)
        let l = loop!
        thread = OSThread(name: "api-test") { l.run() }
    }

    override func tearDownWithError() throws {
        let l = loop!, a = api!
        l.execute { a.shutdown(); l.stop() }
        thread.join()
        store.close()
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Runs a program with a deadline; returns (exit status, stdout, stderr).
    @discardableResult
    func run(_ program: String, _ args: [String], stdin: String? = nil, timeout: TimeInterval = 20) throws -> (Int32, String, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: program)
        p.arguments = args
        let out = Pipe(), err = Pipe(), input = Pipe()
        p.standardOutput = out; p.standardError = err; p.standardInput = input
        var env = ProcessInfo.processInfo.environment
        env["KUBECONFIG"] = "/dev/null"
        env["HOME"] = dir
        p.environment = env
        try p.run()
        if let s = stdin { input.fileHandleForWriting.write(Data(s.utf8)) }
        try input.fileHandleForWriting.close()
        final class Collected: @unchecked Sendable { var data = Data() }
        let outData = Collected(), errData = Collected()
        let group = DispatchGroup()
        group.enter(); DispatchQueue.global().async { outData.data = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        group.enter(); DispatchQueue.global().async { errData.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(10_000) }
        if p.isRunning { p.terminate() }
        p.waitUntilExit()
        group.wait()
        return (p.terminationStatus, String(decoding: outData.data, as: UTF8.self), String(decoding: errData.data, as: UTF8.self))
    }

    /// One HTTP request with curl: (status code, body).
    func curl(_ method: String, _ path: String, body: String? = nil, contentType: String = "application/json",
              extra: [String] = []) throws -> (Int, JSONValue) {
        var args = ["-s", "-S", "-X", method, "-o", "-", "-w", "\n%{http_code}", "--max-time", "10"]
        if let b = body { args += ["-H", "Content-Type: \(contentType)", "--data-binary", b] }
        args += extra + [base + path]
        let (_, out, err) = try run("/usr/bin/curl", args)
        let lines = out.split(separator: "\n", omittingEmptySubsequences: false)
        let code = Int(lines.last ?? "") ?? 0
        let text = lines.dropLast().joined(separator: "\n")
        XCTAssertTrue(err.isEmpty, err)
        return (code, (try? JSONValue.parse(text)) ?? .string(text))
    }

    func kubectl(_ args: String..., stdin: String? = nil) throws -> (Int32, String, String) {
        try run("/usr/bin/kubectl", ["--server", base] + args, stdin: stdin)
    }

    static let configMap = #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"settings","labels":{"app":"web"}},"data":{"a":"1"}}"#

    func testCreateGetListUpdateDelete() throws {
        let (c1, created) = try curl("POST", "/api/v1/namespaces/default/configmaps", body: Self.configMap)
        XCTAssertEqual(c1, 201)
        XCTAssertEqual(created[path: ["metadata", "namespace"]], .string("default"))
        let (c2, got) = try curl("GET", "/api/v1/namespaces/default/configmaps/settings")
        XCTAssertEqual(c2, 200)
        XCTAssertEqual(got, created)
        let (c3, list) = try curl("GET", "/api/v1/configmaps?labelSelector=app%3Dweb")
        XCTAssertEqual(c3, 200)
        XCTAssertEqual(list["kind"], .string("ConfigMapList"))
        XCTAssertEqual(list["items"]?.arrayValue?.map(\.name), ["settings"])
        let (_, none) = try curl("GET", "/api/v1/configmaps?labelSelector=app+in+(db)")
        XCTAssertEqual(none["items"]?.arrayValue?.count, 0)
        var changed = got
        changed[path: ["data", "a"]] = .string("2")
        let (c4, updated) = try curl("PUT", "/api/v1/namespaces/default/configmaps/settings", body: changed.jsonString)
        XCTAssertEqual(c4, 200)
        XCTAssertEqual(updated[path: ["data", "a"]], .string("2"))
        let (c5, patched) = try curl("PATCH", "/api/v1/namespaces/default/configmaps/settings", body: #"{"data":{"b":"3"}}"#,
                                     contentType: "application/merge-patch+json")
        XCTAssertEqual(c5, 200)
        XCTAssertEqual(patched["data"], .object(["a": .string("2"), "b": .string("3")]))
        let (c6, _) = try curl("DELETE", "/api/v1/namespaces/default/configmaps/settings")
        XCTAssertEqual(c6, 200)
        let (c7, _) = try curl("GET", "/api/v1/namespaces/default/configmaps/settings")
        XCTAssertEqual(c7, 404)
    }

    func testErrorsAreStatusObjectsWithCodes() throws {
        _ = try curl("POST", "/api/v1/namespaces/default/configmaps", body: Self.configMap)
        let (c1, exists) = try curl("POST", "/api/v1/namespaces/default/configmaps", body: Self.configMap)
        XCTAssertEqual(c1, 409)
        XCTAssertEqual(exists["kind"], .string("Status"))
        XCTAssertEqual(exists["reason"], .string("AlreadyExists"))
        XCTAssertEqual(exists["code"], .int(409))
        XCTAssertEqual(exists[path: ["details", "name"]], .string("settings"))

        let (c2, missing) = try curl("GET", "/apis/apps/v1/namespaces/default/deployments/nope")
        XCTAssertEqual(c2, 404)
        XCTAssertEqual(missing["reason"], .string("NotFound"))

        let stale = #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"settings","resourceVersion":"1"},"data":{}}"#
        let (c3, conflict) = try curl("PUT", "/api/v1/namespaces/default/configmaps/settings", body: stale)
        XCTAssertEqual(c3, 409)
        XCTAssertEqual(conflict["reason"], .string("Conflict"))

        let bad = #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"Web"},"spec":{"ports":[{"port":80}]}}"#
        let (c4, invalid) = try curl("POST", "/api/v1/namespaces/default/services", body: bad)
        XCTAssertEqual(c4, 422)
        XCTAssertEqual(invalid["reason"], .string("Invalid"))
        XCTAssertEqual(invalid[path: ["details", "causes"]]?.arrayValue?.first?["field"], .string("metadata.name"))

        let (c5, unsupported) = try curl("PATCH", "/api/v1/namespaces/default/configmaps/settings", body: "{}",
                                         contentType: "application/apply-patch+yaml")
        XCTAssertEqual(c5, 415)
        XCTAssertEqual(unsupported["kind"], .string("Status"))

        let (c6, notAllowed) = try curl("DELETE", "/api/v1/namespaces/default/configmaps")
        XCTAssertEqual(c6, 405)
        XCTAssertEqual(notAllowed["reason"], .string("MethodNotAllowed"))

        let (c7, badRequest) = try curl("POST", "/api/v1/namespaces/default/configmaps", body: "{not json")
        XCTAssertEqual(c7, 400)
        XCTAssertEqual(badRequest["reason"], .string("BadRequest"))
    }

    func testNamespacesAreClusterScopedAndDefaultExists() throws {
        let (c1, ns) = try curl("GET", "/api/v1/namespaces/default")
        XCTAssertEqual(c1, 200)
        XCTAssertEqual(ns[path: ["status", "phase"]], .string("Active"))
        let (c2, _) = try curl("POST", "/api/v1/namespaces", body: #"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"team"}}"#)
        XCTAssertEqual(c2, 201)
        let (c3, _) = try curl("POST", "/api/v1/namespaces/team/configmaps", body: Self.configMap)
        XCTAssertEqual(c3, 201)
        let (c4, _) = try curl("POST", "/api/v1/namespaces/absent/configmaps", body: Self.configMap)
        XCTAssertEqual(c4, 404)
    }

    func testWatchStreamsEventsAsTheyHappen() throws {
        let from = store.revision
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        p.arguments = ["-s", "-N", "--max-time", "10", base + "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=\(from)"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        defer { if p.isRunning { p.terminate() }; p.waitUntilExit() }
        usleep(300_000)
        try store.create(.configMaps, try JSONValue.parse(Self.configMap))
        var text = ""
        let deadline = Date().addingTimeInterval(10)
        while !text.contains("\n") && Date() < deadline {
            let d = out.fileHandleForReading.availableData
            if d.isEmpty { break }
            text += String(decoding: d, as: UTF8.self)
        }
        let event = try JSONValue.parse(String(text.split(separator: "\n").first ?? ""))
        XCTAssertEqual(event["type"], .string("ADDED"))
        XCTAssertEqual(event["object"]?.name, "settings")
        XCTAssertEqual(store.watchCount, 1)
        p.terminate()
        p.waitUntilExit()
        let gone = Date().addingTimeInterval(5)
        while store.watchCount > 0 && Date() < gone { usleep(20_000) }
        XCTAssertEqual(store.watchCount, 0, "the store watch ends when the client goes away")
    }

    func testWatchFromAnExpiredResourceVersionEndsWithA410ErrorEvent() throws {
        store.close()
        store = try Store(directory: dir, windowCapacity: 1)
        // The API server still holds the first store; use a fresh server on the new one.
        let l = loop!
        var second: APIServer!
        let ready = Latch(count: 1)
        l.execute { second = try? APIServer(store: self.store, loop: l, address: SocketAddress(ip: "127.0.0.1", port: 0)!); ready.countDown() }
        ready.wait()
        for i in 0..<3 { try store.create(.configMaps, .object(["metadata": .object(["name": .string("m\(i)")])])) }
        let (_, out, _) = try run("/usr/bin/curl", ["-s", "--max-time", "10", "http://\(second.boundAddress)/api/v1/configmaps?watch=true&resourceVersion=1"])
        let event = try JSONValue.parse(String(out.split(separator: "\n").first ?? ""))
        XCTAssertEqual(event["type"], .string("ERROR"))
        XCTAssertEqual(event[path: ["object", "code"]], .int(410))
        XCTAssertEqual(event[path: ["object", "reason"]], .string("Expired"))
        l.execute { second.shutdown() }
    }

    func testDiscoveryListsKindsWithShortNames() throws {
        let (_, core) = try curl("GET", "/api/v1")
        let pods = core["resources"]?.arrayValue?.first { $0["name"] == .string("pods") }
        XCTAssertEqual(pods?["shortNames"], .array([.string("po")]))
        let (_, groups) = try curl("GET", "/apis")
        XCTAssertEqual(Set(groups["groups"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []),
                       ["apps", "networking.k8s.io", "discovery.k8s.io", "storage.k8s.io"])
        let pv = core["resources"]?.arrayValue?.first { $0["name"] == .string("persistentvolumes") }
        XCTAssertEqual(pv?["shortNames"], .array([.string("pv")]))
        XCTAssertEqual(pv?["namespaced"], .bool(false))
        let (_, storage) = try curl("GET", "/apis/storage.k8s.io/v1")
        let sc = storage["resources"]?.arrayValue?.first { $0["name"] == .string("storageclasses") }
        XCTAssertEqual(sc?["shortNames"], .array([.string("sc")]))
        XCTAssertEqual(sc?["namespaced"], .bool(false))
        let (_, apps) = try curl("GET", "/apis/apps/v1")
        XCTAssertTrue(apps["resources"]?.arrayValue?.contains { $0["name"] == .string("deployments/scale") } ?? false)
    }

    static let manifest = """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
        spec:
          replicas: 2
          selector:
            matchLabels: {app: web}
          template:
            metadata:
              labels: {app: web}
            spec:
              containers:
              - name: web
                image: portico/echo
                command: ["portico", "echo"]
                ports:
                - containerPort: 8080
        ---
        apiVersion: v1
        kind: Service
        metadata:
          name: web
        spec:
          selector: {app: web}
          ports:
          - port: 80
            targetPort: 8080
        """

    func testKubectlApplyGetScaleDelete() throws {
        let file = dir + "/app.yaml"
        try Self.manifest.write(toFile: file, atomically: true, encoding: .utf8)
        let (s1, o1, e1) = try kubectl("apply", "-f", file)
        XCTAssertEqual(s1, 0, e1)
        XCTAssertTrue(o1.contains("deployment.apps/web created"), o1)
        XCTAssertTrue(o1.contains("service/web created"), o1)

        let (s2, o2, e2) = try kubectl("get", "deploy,svc", "-o", "name")
        XCTAssertEqual(s2, 0, e2)
        XCTAssertEqual(o2.split(separator: "\n").map(String.init), ["deployment.apps/web", "service/web"])

        let (s3, o3, e3) = try kubectl("get", "svc", "web", "-o", "jsonpath={.spec.ports[0].port}")
        XCTAssertEqual(s3, 0, e3)
        XCTAssertEqual(o3, "80")

        // A second apply with a changed image goes through kubectl's strategic merge patch.
        try Self.manifest.replacingOccurrences(of: "image: portico/echo", with: "image: portico/echo:2")
            .write(toFile: file, atomically: true, encoding: .utf8)
        let (s4, o4, e4) = try kubectl("apply", "-f", file)
        XCTAssertEqual(s4, 0, e4)
        XCTAssertTrue(o4.contains("deployment.apps/web configured"), o4)
        XCTAssertTrue(o4.contains("service/web unchanged"), o4)
        let d = try store.get(.deployments, namespace: "default", name: "web")
        XCTAssertEqual(d[path: ["spec", "template", "spec", "containers"]]?.arrayValue?.first?["image"], .string("portico/echo:2"))
        XCTAssertEqual(d[path: ["metadata", "generation"]], .int(2))

        let (s5, o5, e5) = try kubectl("scale", "deploy/web", "--replicas=3")
        XCTAssertEqual(s5, 0, e5)
        XCTAssertTrue(o5.contains("scaled"), o5)
        XCTAssertEqual(try store.get(.deployments, namespace: "default", name: "web")[path: ["spec", "replicas"]], .int(3))

        let (s6, o6, e6) = try kubectl("delete", "-f", file)
        XCTAssertEqual(s6, 0, e6)
        XCTAssertTrue(o6.contains("deployment.apps \"web\" deleted"), o6)
        XCTAssertEqual(try store.list(.deployments).items.count, 0)
        XCTAssertEqual(try store.list(.services).items.count, 0)
    }

    func testKubectlReportsInvalidObjectsWithTheField() throws {
        let bad = Self.manifest.replacingOccurrences(of: "labels: {app: web}\n    spec:", with: "labels: {app: other}\n    spec:")
        let (s, _, e) = try kubectl("apply", "-f", "-", stdin: bad)
        XCTAssertNotEqual(s, 0)
        XCTAssertTrue(e.contains("spec.template.metadata.labels"), e)
    }

    func testKubectlGetPrintsServerSideColumns() throws {
        let file = dir + "/app.yaml"
        try Self.manifest.write(toFile: file, atomically: true, encoding: .utf8)
        XCTAssertEqual(try kubectl("apply", "-f", file).0, 0)
        let (s, out, err) = try kubectl("get", "deploy,svc")
        XCTAssertEqual(s, 0, err)
        let lines = out.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        XCTAssertEqual(lines.first, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"])
        XCTAssertEqual(lines.dropFirst().first?.prefix(4), ["deployment.apps/web", "0/2", "0", "0"])
        XCTAssertTrue(lines.contains { $0.first == "TYPE" || $0.contains("CLUSTER-IP") }, out)
        XCTAssertTrue(lines.contains { $0.first == "service/web" && $0.contains("80/TCP") }, out)
    }

    func testKubectlCreateGeneratorsForNamespacesConfigMapsAndSecrets() throws {
        XCTAssertEqual(try kubectl("create", "namespace", "team").0, 0)
        let (s1, _, e1) = try kubectl("create", "configmap", "settings", "-n", "team", "--from-literal=a=1")
        XCTAssertEqual(s1, 0, e1)
        let (s2, _, e2) = try kubectl("create", "secret", "generic", "pw", "-n", "team", "--from-literal=password=hunter2")
        XCTAssertEqual(s2, 0, e2)
        XCTAssertEqual(try store.get(.configMaps, namespace: "team", name: "settings")["data"], .object(["a": .string("1")]))
        XCTAssertEqual(try store.get(.secrets, namespace: "team", name: "pw")[path: ["data", "password"]], .string("aHVudGVyMg=="))
        let (s3, _, e3) = try kubectl("create", "deployment", "d", "--image=x")
        XCTAssertNotEqual(s3, 0)
        XCTAssertTrue(e3.contains("kubectl apply -f"), e3)
    }

    func testScaleSubresourceIsAnAutoscalingV1Scale() throws {
        try store.create(.deployments, try StoreTests.deployment("web", replicas: 2))
        let (c1, scale) = try curl("GET", "/apis/apps/v1/namespaces/default/deployments/web/scale")
        XCTAssertEqual(c1, 200)
        XCTAssertEqual(scale["apiVersion"], .string("autoscaling/v1"))
        XCTAssertEqual(scale[path: ["spec", "replicas"]], .int(2))
        XCTAssertEqual(scale[path: ["status", "selector"]], .string("app=web"))
        let (c2, scaled) = try curl("PATCH", "/apis/apps/v1/namespaces/default/deployments/web/scale", body: #"{"spec":{"replicas":5}}"#,
                                    contentType: "application/merge-patch+json")
        XCTAssertEqual(c2, 200)
        XCTAssertEqual(scaled[path: ["spec", "replicas"]], .int(5))
        XCTAssertEqual(try store.get(.deployments, namespace: "default", name: "web")[path: ["spec", "replicas"]], .int(5))
        let (c3, _) = try curl("GET", "/api/v1/namespaces/default/configmaps/x/scale")
        XCTAssertEqual(c3, 404)
    }

    func testStatusSubresourceChangesOnlyStatus() throws {
        let d = try store.create(.deployments, try StoreTests.deployment("web"))
        var body = d
        body[path: ["status", "replicas"]] = .int(1)
        body[path: ["spec", "replicas"]] = .int(9)
        let (c1, updated) = try curl("PUT", "/apis/apps/v1/namespaces/default/deployments/web/status", body: body.jsonString)
        XCTAssertEqual(c1, 200)
        XCTAssertEqual(updated[path: ["status", "replicas"]], .int(1))
        XCTAssertEqual(updated[path: ["spec", "replicas"]], .int(1))
    }

    func testDryRunChangesNothing() throws {
        let file = dir + "/app.yaml"
        try Self.manifest.write(toFile: file, atomically: true, encoding: .utf8)
        XCTAssertEqual(try kubectl("apply", "-f", file).0, 0)
        let revision = store.revision
        try Self.manifest.replacingOccurrences(of: "replicas: 2", with: "replicas: 4")
            .write(toFile: file, atomically: true, encoding: .utf8)
        let (s1, o1, e1) = try kubectl("diff", "-f", file)
        XCTAssertEqual(s1, 1, "kubectl diff exits 1 when there are differences: \(e1)")
        XCTAssertTrue(o1.contains("+  replicas: 4"), o1)
        let (s2, o2, e2) = try kubectl("apply", "-f", file, "--dry-run=server")
        XCTAssertEqual(s2, 0, e2)
        XCTAssertTrue(o2.contains("(server dry run)"), o2)
        let (s3, _, e3) = try kubectl("delete", "deploy", "web", "--dry-run=server")
        XCTAssertEqual(s3, 0, e3)
        XCTAssertEqual(store.revision, revision)
        XCTAssertEqual(try store.get(.deployments, namespace: "default", name: "web")[path: ["spec", "replicas"]], .int(2))
    }
}
