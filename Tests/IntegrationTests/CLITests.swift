// The client commands (`portico apply|get|describe|delete|logs|scale|rollout`) run as the real
// binary: their help and usage errors, manifest validation before any request, the unreachable
// server message, requests and answers against a scripted loopback API server (exact verbs,
// paths and bodies), and end to end against `portico serve --api` when that binary has it.

import Foundation
import Glibc
import XCTest

/// The result of one `portico` run.
struct CLIRun {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `portico args...` (or `executable`) with a deadline and an environment without PORTICO_SERVER.
func runCLI(_ args: [String], timeout: TimeInterval = 30, env: [String: String] = [:], executable: String = Binary.path,
            stdin: String? = nil) throws -> CLIRun {
    try Binary.require()
    let dir = try TempDir("portico-cli-run")
    defer { dir.remove() }
    let out = dir.file("out"), err = dir.file("err")
    _ = FileManager.default.createFile(atPath: out, contents: nil)
    _ = FileManager.default.createFile(atPath: err, contents: nil)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = args
    var environment = ProcessInfo.processInfo.environment
    environment["PORTICO_SERVER"] = nil
    for (k, v) in env { environment[k] = v }
    p.environment = environment
    if let stdin {
        let input = dir.file("in")
        try stdin.write(toFile: input, atomically: false, encoding: .utf8)
        p.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: input))
    } else {
        p.standardInput = FileHandle.nullDevice
    }
    p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
    p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
    try p.run()
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { usleep(10_000) }
    if p.isRunning { p.terminate() }
    p.waitUntilExit()
    return CLIRun(status: p.terminationStatus,
                  stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
                  stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
}

/// A loopback HTTP server answering from a script: each request (method, path with query,
/// body) is recorded and answered by `handler`. One connection at a time, `Connection: close`.
final class ScriptedAPI {
    struct Request: Equatable { var method: String; var path: String; var body: String }
    struct Answer { var status: Int; var body: String; var chunks: [String]? = nil }

    let port: UInt16
    private let fd: Int32
    private let lock = NSLock()
    private var recorded: [Request] = []
    private var handler: (Request) -> Answer
    private var thread: Thread?
    private var stopping = false

    init(_ handler: @escaping (Request) -> Answer) throws {
        self.handler = handler
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = loopback(port: 0)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(s, 16) == 0 else { close(s); throw HarnessError("scripted API: bind/listen errno \(errno)") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &addr) { _ = $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
        fd = s
        port = UInt16(bigEndian: addr.sin_port)
        let t = Thread { [unowned self] in self.serve() }
        thread = t
        t.start()
    }

    var url: String { "http://127.0.0.1:\(port)" }
    var requests: [Request] { lock.lock(); defer { lock.unlock() }; return recorded }

    func stop() {
        lock.lock(); stopping = true; lock.unlock()
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }

    private func serve() {
        while true {
            let c = accept(fd, nil, nil)
            if c < 0 {
                lock.lock(); let done = stopping; lock.unlock()
                if done { return }
                continue
            }
            var tv = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            handle(c)
            close(c)
        }
    }

    private func handle(_ c: Int32) {
        var data: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        var headEnd: Int?
        var length = 0
        while true {
            if let h = headEnd, data.count >= h + length { break }
            let n = buf.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return }
            data += buf[..<n]
            if headEnd == nil, let r = data.firstRange(of: Array("\r\n\r\n".utf8)) {
                headEnd = r.upperBound
                let head = String(decoding: data[..<r.lowerBound], as: UTF8.self)
                for line in head.split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
                    length = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) ?? 0
                }
            }
        }
        let h = headEnd!
        let requestLine = String(decoding: data[..<h], as: UTF8.self).split(separator: "\r\n")[0].split(separator: " ")
        let request = Request(method: String(requestLine[0]), path: String(requestLine[1]),
                              body: String(decoding: data[h..<h + length], as: UTF8.self))
        lock.lock(); recorded.append(request); let handler = self.handler; lock.unlock()
        let answer = handler(request)
        var out = "HTTP/1.1 \(answer.status) X\r\nContent-Type: application/json\r\nConnection: close\r\n"
        if let chunks = answer.chunks {
            out += "Transfer-Encoding: chunked\r\n\r\n"
            for chunk in chunks { out += String(chunk.utf8.count, radix: 16) + "\r\n" + chunk + "\r\n" }
            out += "0\r\n\r\n"
        } else {
            out += "Content-Length: \(answer.body.utf8.count)\r\n\r\n" + answer.body
        }
        let bytes = Array(out.utf8)
        _ = bytes.withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }
}

/// A Deployment of `portico echo` pods and its Service.
let cliWebManifest = """
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
      - name: echo
        image: portico/echo
        command: ["portico", "echo", "--listen", "$(POD_IP):8080", "--name", "$(POD_NAME)"]
        env:
        - name: POD_IP
          valueFrom: {fieldRef: {fieldPath: status.podIP}}
        - name: POD_NAME
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        ports: [{containerPort: 8080}]
        readinessProbe:
          tcpSocket: {port: 8080}
          periodSeconds: 1
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

final class CLITests: XCTestCase {
    var dir: TempDir!

    override func setUpWithError() throws {
        try Binary.require()
        dir = try TempDir("portico-cli")
    }

    override func tearDown() { dir?.remove() }

    // MARK: Help and usage

    func testEveryCommandHasHelp() throws {
        for command in [["apply"], ["get"], ["describe"], ["delete"], ["logs"], ["scale"], ["rollout"],
                        ["rollout", "status"], ["rollout", "restart"], ["rollout", "undo"], ["rollout", "history"]] {
            let r = try runCLI(command + ["--help"])
            XCTAssertEqual(r.status, 0, "\(command): \(r.stderr)")
            XCTAssertTrue(r.stdout.contains("USAGE: portico \(command.joined(separator: " "))"), "\(command): \(r.stdout)")
        }
        let top = try runCLI(["--help"])
        for c in ["apply", "get", "describe", "delete", "logs", "scale", "rollout"] {
            XCTAssertTrue(top.stdout.contains("  \(c) "), "portico --help lists \(c):\n\(top.stdout)")
        }
        XCTAssertTrue(try runCLI(["get", "--help"]).stdout.contains("--all-namespaces"))
    }

    func testUsageErrorsExitTwo() throws {
        let noKind = try runCLI(["get", "--server", "http://127.0.0.1:1"])
        XCTAssertEqual(noKind.status, 2)
        XCTAssertTrue(noKind.stderr.contains("you must specify the type of resource"), noKind.stderr)
        XCTAssertEqual(try runCLI(["get", "pods", "-o", "jsonpath", "--server", "http://127.0.0.1:1"]).status, 2)
        XCTAssertEqual(try runCLI(["scale", "deploy/web", "--replicas=-1", "--server", "http://127.0.0.1:1"]).status, 2)
        XCTAssertEqual(try runCLI(["scale", "deploy", "--replicas", "2", "--server", "http://127.0.0.1:1"]).status, 2)
        XCTAssertEqual(try runCLI(["apply", "--server", "http://127.0.0.1:1"]).status, 2)
        XCTAssertEqual(try runCLI(["rollout", "undo", "svc/web", "--server", "http://127.0.0.1:1"]).status, 2)
        let unknownKind = try runCLI(["get", "widgets", "--server", "http://127.0.0.1:1"])
        XCTAssertEqual(unknownKind.status, 1)
        XCTAssertEqual(unknownKind.stderr, "error: the server doesn't have a resource type \"widgets\"\n")
    }

    // MARK: Before any request

    func testUnreachableServerSaysSo() throws {
        let port = try freePort()
        let r = try runCLI(["get", "pods", "--server", "http://127.0.0.1:\(port)"])
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(r.stderr, "error: cannot reach the Portico API server at http://127.0.0.1:\(port): connection refused (is `portico serve` running?)\n")
        // The environment variable names the server too.
        let env = try runCLI(["get", "pods"], env: ["PORTICO_SERVER": "http://127.0.0.1:\(port)"])
        XCTAssertTrue(env.stderr.contains("http://127.0.0.1:\(port)"), env.stderr)
    }

    func testBadManifestFailsBeforeAnyRequest() throws {
        let api = try ScriptedAPI { _ in .init(status: 500, body: "{}") }
        defer { api.stop() }
        let file = try dir.write("bad.yaml", """
        apiVersion: v1
        kind: Service
        metadata:
          name: web
        spec:
          selector: {app: web}
          ports:
          - port: 80
            targetPort: 8080
            protocl: TCP
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: api
        spec:
          selector:
            matchLabels: {app: api}
          template:
            metadata:
              labels: {app: other}
            spec:
              containers:
              - name: c
                command: ["portico", "echo"]
        """)
        let r = try runCLI(["apply", "-f", file, "--server", api.url])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("error: \(file) (document 1, Service default/web): spec.ports[0].protocl: unknown field \"protocl\""), r.stderr)
        XCTAssertTrue(r.stderr.contains("error: \(file) (document 2, Deployment default/api): spec.template.metadata.labels: invalid value: `selector` does not match template `labels`"), r.stderr)
        XCTAssertEqual(r.stdout, "")
        XCTAssertEqual(api.requests, [], "nothing is sent when a file is invalid")

        let yaml = try dir.write("syntax.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: x\n")
        let s = try runCLI(["apply", "-f", yaml, "--server", api.url])
        XCTAssertEqual(s.status, 1)
        XCTAssertTrue(s.stderr.contains("\(yaml) (document 1): line"), s.stderr)

        let piped = try runCLI(["apply", "-f", "-", "--server", api.url], stdin: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndta: {a: b}\n")
        XCTAssertTrue(piped.stderr.contains("error: <stdin> (document 1, ConfigMap default/c): dta: unknown field \"dta\""), piped.stderr)

        let missing = try runCLI(["apply", "-f", dir.file("nope.yaml"), "--server", api.url])
        XCTAssertTrue(missing.stderr.contains("nope.yaml: no such file or directory"), missing.stderr)
        XCTAssertEqual(api.requests, [])
    }

    // MARK: Requests against a scripted server

    func testApplyCreatesThenPatchesOnlyWhatChanged() throws {
        let file = try dir.write("web.yaml", cliWebManifest)
        // First run: nothing exists.
        var live: [String: String] = [:]
        let api = try ScriptedAPI { r in
            switch r.method {
            case "GET": return live[r.path].map { .init(status: 200, body: $0) }
                ?? .init(status: 404, body: #"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404,"message":"not found"}"#)
            case "POST": return .init(status: 201, body: r.body)
            case "PATCH": return .init(status: 200, body: "{}")
            default: return .init(status: 405, body: "{}")
            }
        }
        defer { api.stop() }
        let created = try runCLI(["apply", "-f", file, "--server", api.url])
        XCTAssertEqual(created.status, 0, created.stderr)
        XCTAssertEqual(created.stdout, "deployment.apps/web created\nservice/web created\n")
        let posts = api.requests.filter { $0.method == "POST" }
        XCTAssertEqual(posts.map(\.path), ["/apis/apps/v1/namespaces/default/deployments", "/api/v1/namespaces/default/services"])
        XCTAssertTrue(posts[0].body.contains("kubectl.kubernetes.io/last-applied-configuration"), posts[0].body)
        XCTAssertTrue(posts[1].body.contains(#""targetPort":8080"#), "YAML numbers stay numbers: \(posts[1].body)")

        // Second run: the live objects are what was posted plus server fields.
        for p in posts {
            var o = try JSONSerialization.jsonObject(with: Data(p.body.utf8)) as! [String: Any]
            var meta = o["metadata"] as! [String: Any]
            meta["uid"] = "u1"; meta["resourceVersion"] = "7"
            o["metadata"] = meta
            if o["kind"] as? String == "Service" { o["spec"] = (o["spec"] as! [String: Any]).merging(["clusterIP": "127.2.0.9"]) { a, _ in a } }
            let name = (meta["name"] as! String)
            live[p.path + "/" + name] = String(decoding: try JSONSerialization.data(withJSONObject: o), as: UTF8.self)
        }
        let unchanged = try runCLI(["apply", "-f", file, "--server", api.url])
        XCTAssertEqual(unchanged.stdout, "deployment.apps/web unchanged\nservice/web unchanged\n", unchanged.stderr)

        // Third run: replicas changed in the file, one merge patch with just that.
        try dir.write("web.yaml", cliWebManifest.replacingOccurrences(of: "replicas: 2", with: "replicas: 4"))
        let configured = try runCLI(["apply", "-f", file, "--server", api.url])
        XCTAssertEqual(configured.stdout, "deployment.apps/web configured\nservice/web unchanged\n", configured.stderr)
        let patches = api.requests.filter { $0.method == "PATCH" }
        XCTAssertEqual(patches.count, 1)
        XCTAssertEqual(patches.first?.path, "/apis/apps/v1/namespaces/default/deployments/web")
        XCTAssertTrue(patches.first?.body.contains(#""spec":{"replicas":4}"#) == true, patches.first?.body ?? "")
    }

    func testServerStatusErrorsNameTheReasonAndFields() throws {
        let invalid = #"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Invalid","code":422,"message":"Deployment \"web\" is invalid: spec.replicas: Invalid value: must be a non-negative integer","details":{"causes":[{"field":"spec.replicas","reason":"FieldValueInvalid","message":"Invalid value: must be a non-negative integer"},{"field":"metadata.labels","reason":"FieldValueInvalid","message":"bad label"}]}}"#
        let api = try ScriptedAPI { r in
            if r.method == "GET" && r.path.hasSuffix("/deployments/web") { return .init(status: 404, body: #"{"kind":"Status","reason":"NotFound","code":404,"message":"deployments.apps \"web\" not found"}"#) }
            if r.method == "GET" && r.path.hasSuffix("/services/web") { return .init(status: 200, body: #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"default"}}"#) }
            if r.method == "POST" { return .init(status: 422, body: invalid) }
            return .init(status: 200, body: "{}")
        }
        defer { api.stop() }
        let file = try dir.write("web.yaml", cliWebManifest)
        let r = try runCLI(["apply", "-f", file, "--server", api.url])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.hasPrefix("Error from server (Invalid): Deployment \"web\" is invalid: spec.replicas: Invalid value: must be a non-negative integer\n  metadata.labels: bad label\n"), r.stderr)
        XCTAssertTrue(r.stdout.contains("service/web configured"), "the other objects are still applied: \(r.stdout)")

        let get = try runCLI(["get", "deploy", "web", "--server", api.url])
        XCTAssertEqual(get.status, 1)
        XCTAssertEqual(get.stderr, "Error from server (NotFound): deployments.apps \"web\" not found\n")
    }

    func testGetTablesAndOutputs() throws {
        let now = ISO8601DateFormatter().string(from: Date().addingTimeInterval(-30 * 86400))
        let deployments = #"{"kind":"DeploymentList","apiVersion":"apps/v1","metadata":{"resourceVersion":"9"},"items":[{"metadata":{"name":"web","namespace":"default","creationTimestamp":"\#(now)"},"spec":{"replicas":3,"selector":{"matchLabels":{"app":"web"}},"template":{"spec":{"containers":[{"name":"echo","image":"portico/echo"}]}}},"status":{"replicas":3,"readyReplicas":2,"updatedReplicas":3,"availableReplicas":2}}]}"#
        let pods = #"{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"9"},"items":[{"metadata":{"name":"web-1","namespace":"default","creationTimestamp":"\#(now)"},"spec":{"containers":[{"name":"echo"}]},"status":{"phase":"Running","podIP":"127.1.0.4","containerStatuses":[{"name":"echo","ready":false,"restartCount":4,"state":{"waiting":{"reason":"CrashLoopBackOff"}}}]}}]}"#
        let services = #"{"kind":"ServiceList","apiVersion":"v1","metadata":{},"items":[{"metadata":{"name":"web","namespace":"default","creationTimestamp":"\#(now)"},"spec":{"type":"NodePort","clusterIP":"127.2.0.1","ports":[{"port":80,"nodePort":30080,"protocol":"TCP"}]}}]}"#
        let ingresses = #"{"kind":"IngressList","apiVersion":"networking.k8s.io/v1","metadata":{},"items":[{"metadata":{"name":"demo","namespace":"default","creationTimestamp":"\#(now)"},"spec":{"ingressClassName":"portico","rules":[{"host":"demo.localhost"},{"host":"b.localhost"}],"tls":[{"hosts":["demo.localhost"]}]},"status":{"loadBalancer":{"ingress":[{"ip":"127.0.0.1"}]}}}]}"#
        let endpoints = #"{"kind":"EndpointsList","apiVersion":"v1","metadata":{},"items":[{"metadata":{"name":"web","namespace":"default","creationTimestamp":"\#(now)"},"subsets":[{"addresses":[{"ip":"127.1.0.1"},{"ip":"127.1.0.2"},{"ip":"127.1.0.3"},{"ip":"127.1.0.4"}],"ports":[{"port":8080}]}]}]}"#
        let api = try ScriptedAPI { r in
            let path = r.path.split(separator: "?")[0]
            if path.hasSuffix("/deployments") { return .init(status: 200, body: deployments) }
            if path.hasSuffix("/pods") { return .init(status: 200, body: pods) }
            if path.hasSuffix("/services") { return .init(status: 200, body: services) }
            if path.hasSuffix("/ingresses") { return .init(status: 200, body: ingresses) }
            if path.hasSuffix("/endpoints") { return .init(status: 200, body: endpoints, chunks: [String(endpoints.prefix(40)), String(endpoints.dropFirst(40))]) }
            if path.hasSuffix("/replicasets") || path.hasSuffix("/statefulsets") { return .init(status: 200, body: #"{"items":[]}"#) }
            return .init(status: 404, body: #"{"kind":"Status","reason":"NotFound","code":404,"message":"nope"}"#)
        }
        defer { api.stop() }
        let s = ["--server", api.url]
        XCTAssertEqual(try runCLI(["get", "deploy"] + s).stdout, """
        NAME   READY   UP-TO-DATE   AVAILABLE   AGE
        web    2/3     3            2           30d

        """)
        XCTAssertEqual(try runCLI(["get", "po", "-o", "wide"] + s).stdout, """
        NAME    READY   STATUS             RESTARTS   AGE   IP          NODE
        web-1   0/1     CrashLoopBackOff   4          30d   127.1.0.4   <none>

        """)
        XCTAssertEqual(try runCLI(["get", "svc"] + s).stdout, """
        NAME   TYPE       CLUSTER-IP   EXTERNAL-IP   PORT(S)        AGE
        web    NodePort   127.2.0.1    <none>        80:30080/TCP   30d

        """)
        XCTAssertEqual(try runCLI(["get", "ing"] + s).stdout, """
        NAME   CLASS     HOSTS                        ADDRESS     PORTS     AGE
        demo   portico   demo.localhost,b.localhost   127.0.0.1   80, 443   30d

        """)
        XCTAssertEqual(try runCLI(["get", "ep"] + s).stdout, """
        NAME   ENDPOINTS                                                  AGE
        web    127.1.0.1:8080,127.1.0.2:8080,127.1.0.3:8080 + 1 more...   30d

        """)
        XCTAssertEqual(try runCLI(["get", "deploy,svc", "-o", "name"] + s).stdout, "deployment.apps/web\nservice/web\n")
        let multi = try runCLI(["get", "deploy,svc"] + s).stdout
        XCTAssertTrue(multi.contains("deployment.apps/web   2/3") && multi.contains("\n\nNAME          TYPE"), multi)

        let json = try runCLI(["get", "deploy", "-o", "json"] + s)
        let list = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        XCTAssertEqual(list?["kind"] as? String, "List")
        XCTAssertEqual(((list?["items"] as? [[String: Any]])?.first?["kind"]) as? String, "Deployment")
        let yaml = try runCLI(["get", "svc", "-o", "yaml"] + s).stdout
        XCTAssertTrue(yaml.hasPrefix("apiVersion: v1\nitems:\n- apiVersion: v1\n  kind: Service\n"), yaml)
        XCTAssertTrue(yaml.contains("    clusterIP: 127.2.0.1\n"), yaml)

        XCTAssertTrue(try runCLI(["get", "deploy", "-l", "app=web,tier!=db"] + s).status == 0)
        XCTAssertTrue(api.requests.contains { $0.path == "/apis/apps/v1/namespaces/default/deployments?labelSelector=app%3Dweb%2Ctier%21%3Ddb" },
                      api.requests.map(\.path).joined(separator: "\n"))
        _ = try runCLI(["get", "po", "-A"] + s)
        XCTAssertEqual(api.requests.last?.path, "/api/v1/pods")
        _ = try runCLI(["get", "po", "-n", "kube-system"] + s)
        XCTAssertEqual(api.requests.last?.path, "/api/v1/namespaces/kube-system/pods")
    }

    func testWatchPrintsEachChangeFromTheListsVersion() throws {
        let old = ISO8601DateFormatter().string(from: Date().addingTimeInterval(-30 * 86400))
        func deployment(_ ready: Int) -> String {
            #"{"metadata":{"name":"web","namespace":"default","creationTimestamp":"\#(old)"},"spec":{"replicas":3},"status":{"readyReplicas":\#(ready),"updatedReplicas":3,"availableReplicas":\#(ready)}}"#
        }
        let events = [1, 3].map { #"{"type":"MODIFIED","object":\#(deployment($0))}"# + "\n" }.joined()
        let api = try ScriptedAPI { r in
            if r.path.contains("watch=1") {
                // Split mid-line across chunks: the client joins them before parsing.
                return .init(status: 200, body: "", chunks: [String(events.prefix(50)), String(events.dropFirst(50))])
            }
            return .init(status: 200, body: #"{"kind":"DeploymentList","metadata":{"resourceVersion":"41"},"items":[\#(deployment(0))]}"#)
        }
        defer { api.stop() }
        let r = try runCLI(["get", "deploy", "-w", "--server", api.url])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, """
        NAME   READY   UP-TO-DATE   AVAILABLE   AGE
        web    0/3     3            0           30d
        web    1/3     3            1           30d
        web    3/3     3            3           30d

        """)
        XCTAssertEqual(api.requests.last?.path, "/apis/apps/v1/namespaces/default/deployments?watch=1&resourceVersion=41")
    }

    func testScaleRolloutAndDeleteRequests() throws {
        let deployment = #"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"default","uid":"d1","generation":2,"annotations":{"deployment.kubernetes.io/revision":"2"}},"spec":{"replicas":2,"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"echo","image":"v2"}]}}},"status":{"observedGeneration":2,"replicas":2,"updatedReplicas":2,"availableReplicas":2}}"#
        let replicaSets = #"{"items":[{"metadata":{"name":"web-a","uid":"r1","annotations":{"deployment.kubernetes.io/revision":"1"},"ownerReferences":[{"uid":"d1","kind":"Deployment","name":"web"}]},"spec":{"template":{"metadata":{"labels":{"app":"web","pod-template-hash":"a"}},"spec":{"containers":[{"name":"echo","image":"v1"}]}}}},{"metadata":{"name":"web-b","annotations":{"deployment.kubernetes.io/revision":"2"},"ownerReferences":[{"uid":"d1"}]},"spec":{"template":{"metadata":{"labels":{"app":"web","pod-template-hash":"b"}},"spec":{"containers":[{"name":"echo","image":"v2"}]}}}},{"metadata":{"name":"other","annotations":{"deployment.kubernetes.io/revision":"5"},"ownerReferences":[{"uid":"zz"}]}}]}"#
        let api = try ScriptedAPI { r in
            if r.path.hasSuffix("/replicasets") { return .init(status: 200, body: replicaSets) }
            if r.method == "DELETE" && r.path.hasSuffix("/gone") { return .init(status: 404, body: #"{"kind":"Status","reason":"NotFound","code":404,"message":"deployments.apps \"gone\" not found"}"#) }
            if r.method == "GET" || r.method == "PUT" { return .init(status: 200, body: deployment) }
            return .init(status: 200, body: "{}")
        }
        defer { api.stop() }
        let s = ["--server", api.url]
        XCTAssertEqual(try runCLI(["scale", "deploy/web", "--replicas", "5"] + s).stdout, "deployment.apps/web scaled\n")
        XCTAssertEqual(api.requests.last, .init(method: "PATCH", path: "/apis/apps/v1/namespaces/default/deployments/web/scale", body: #"{"spec":{"replicas":5}}"#))
        XCTAssertEqual(try runCLI(["scale", "sts", "db", "--replicas", "0"] + s).stdout, "statefulset.apps/db scaled\n")

        let status = try runCLI(["rollout", "status", "deploy/web", "--timeout", "5s"] + s)
        XCTAssertEqual(status.stdout, "deployment \"web\" successfully rolled out\n", status.stderr)

        XCTAssertEqual(try runCLI(["rollout", "restart", "deploy/web"] + s).stdout, "deployment.apps/web restarted\n")
        XCTAssertTrue(api.requests.last?.body.contains("kubectl.kubernetes.io/restartedAt") == true)

        XCTAssertEqual(try runCLI(["rollout", "history", "deploy/web"] + s).stdout, "deployment.apps/web \nREVISION   CHANGE-CAUSE\n1          <none>\n2          <none>\n\n")
        let undo = try runCLI(["rollout", "undo", "deploy/web"] + s)
        XCTAssertEqual(undo.stdout, "deployment.apps/web rolled back\n", undo.stderr)
        let put = try XCTUnwrap(api.requests.last)
        XCTAssertEqual(put.method, "PUT")
        XCTAssertTrue(put.body.contains(#""image":"v1""#) && !put.body.contains("pod-template-hash"), put.body)
        XCTAssertEqual(try runCLI(["rollout", "undo", "deploy/web", "--to-revision", "9"] + s).status, 1)

        let deleted = try runCLI(["delete", "deploy", "web", "gone"] + s)
        XCTAssertEqual(deleted.status, 1)
        XCTAssertEqual(deleted.stdout, "deployment.apps \"web\" deleted\n")
        XCTAssertEqual(deleted.stderr, "Error from server (NotFound): deployments.apps \"gone\" not found\n")
        XCTAssertEqual(try runCLI(["delete", "deploy/gone", "--ignore-not-found"] + s).status, 0)
    }

    func testLogsReadTheNodeAgentsFilesWhenTheAPIHasNoLogEndpoint() throws {
        let api = try ScriptedAPI { r in
            if r.path.hasPrefix("/api/v1/namespaces/default/pods/web-1/log") {
                return .init(status: 404, body: #"{"kind":"Status","reason":"NotFound","code":404,"message":"the server could not find the requested resource (/api/v1/namespaces/default/pods/web-1/log)"}"#)
            }
            if r.path == "/api/v1/namespaces/default/pods/web-1" {
                return .init(status: 200, body: #"{"metadata":{"name":"web-1","namespace":"default","uid":"u-1"},"spec":{"containers":[{"name":"echo"},{"name":"side"}]}}"#)
            }
            return .init(status: 404, body: #"{"kind":"Status","reason":"NotFound","code":404,"message":"pods \"x\" not found"}"#)
        }
        defer { api.stop() }
        let podDir = dir.file("data/node/pods/default_web-1_u-1")
        try FileManager.default.createDirectory(atPath: podDir, withIntermediateDirectories: true)
        try "first\n".write(toFile: podDir + "/echo.log.1", atomically: true, encoding: .utf8)
        try "second\n".write(toFile: podDir + "/echo.log", atomically: true, encoding: .utf8)
        try "before restart\n".write(toFile: podDir + "/side.previous.log", atomically: true, encoding: .utf8)
        let s = ["--server", api.url, "--data", dir.file("data")]
        let r = try runCLI(["logs", "web-1"] + s)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "first\nsecond\n")
        XCTAssertTrue(r.stderr.contains("Defaulted container \"echo\" out of: echo, side"), r.stderr)
        XCTAssertEqual(try runCLI(["logs", "web-1", "-c", "side", "--previous"] + s).stdout, "before restart\n")
        XCTAssertEqual(try runCLI(["logs", "web-1", "-c", "nope"] + s).status, 1)
        XCTAssertEqual(try runCLI(["logs", "x"] + s).stderr, "Error from server (NotFound): pods \"x\" not found\n")
    }

    // MARK: End to end with `portico serve --api`

    func testEndToEndAgainstServe() throws {
        let help = try runCLI(["serve", "--help"])
        XCTAssertTrue(help.stdout.contains("--api"), "`portico serve` serves the API the client commands use")
        let data = dir.file("data")
        let manifests = dir.file("manifests")   // serve needs an -f; the objects come through the API
        try FileManager.default.createDirectory(atPath: manifests, withIntermediateDirectories: true)
        // Started through a differently named link: on a shared machine, others stopping their
        // own `portico serve` by name must not stop this one (pods still find `portico` on PATH,
        // which the agent takes from /proc/self/exe).
        let link = dir.file("portico-cli-e2e")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: Binary.path)
        let serve = try ManagedProcess(name: "serve-cli", executable: link, arguments: [
            "serve", "-f", manifests, "--http", "127.0.0.1:0", "--https", "off", "--admin", "127.0.0.1:0", "--workers", "1",
            "--api", "127.0.0.1:0", "--data", data, "--access-log", "off",
        ], logDir: dir)
        defer { serve.stop(grace: 15) }
        let g = try serve.waitForLine(matching: #"api=([0-9.]+:[0-9]+)"#, timeout: 20)
        let s = ["--server", "http://\(g[1])"]
        // Other programs on the machine may hold 127.1.x.y:8080: the pods listen on a random port.
        let port = String(Int.random(in: 20000...29999))
        let file = try dir.write("web.yaml", cliWebManifest.replacingOccurrences(of: "8080", with: port))

        let applied = try runCLI(["apply", "-f", file] + s)
        XCTAssertEqual(applied.stdout, "deployment.apps/web created\nservice/web created\n", applied.stderr)
        XCTAssertEqual(try runCLI(["apply", "-f", file] + s).stdout, "deployment.apps/web unchanged\nservice/web unchanged\n")
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/kubectl") {
            // kubectl reads portico's last-applied-configuration as its own.
            let k = try runCLI(["apply", "-f", file] + s, env: ["KUBECONFIG": "/dev/null", "HOME": dir.path], executable: "/usr/bin/kubectl")
            XCTAssertEqual(k.stdout, "deployment.apps/web unchanged\nservice/web unchanged\n", k.stderr)
        }

        let rolled = try runCLI(["rollout", "status", "deploy/web", "--timeout", "60s"] + s, timeout: 70)
        XCTAssertEqual(rolled.status, 0, rolled.stdout + rolled.stderr + serve.stderrTail())
        XCTAssertTrue(rolled.stdout.hasSuffix("deployment \"web\" successfully rolled out\n"), rolled.stdout)

        let table = try runCLI(["get", "deploy,svc"] + s).stdout
        XCTAssertTrue(table.contains("deployment.apps/web   2/2     2            2"), table)
        XCTAssertTrue(table.contains("service/web   ClusterIP"), table)
        XCTAssertEqual(try runCLI(["get", "deploy", "-o", "name"] + s).stdout, "deployment.apps/web\n")
        XCTAssertTrue(try runCLI(["get", "svc", "web", "-o", "yaml"] + s).stdout.contains("kind: Service\n"))
        let json = try runCLI(["get", "deploy", "web", "-o", "json"] + s).stdout
        XCTAssertEqual((try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])?["kind"] as? String, "Deployment")

        XCTAssertEqual(try runCLI(["scale", "deploy/web", "--replicas", "3"] + s).stdout, "deployment.apps/web scaled\n")
        XCTAssertEqual(try runCLI(["rollout", "status", "deploy/web", "--timeout", "60s"] + s, timeout: 70).status, 0)
        let pods = try runCLI(["get", "pods", "-o", "name"] + s).stdout.split(separator: "\n")
        XCTAssertEqual(pods.count, 3, pods.joined(separator: ","))

        let described = try runCLI(["describe", "deploy", "web"] + s).stdout
        XCTAssertTrue(described.contains("Replicas:           3 desired"), described)
        XCTAssertTrue(described.contains("Events:") && !described.contains("Events:             <none>"), described)

        if let pod = pods.first.map({ String($0.dropFirst("pod/".count)) }) {
            var logs = CLIRun(status: -1, stdout: "", stderr: "")
            waitUntil(timeout: 10) { logs = (try? runCLI(["logs", pod, "--data", data] + s)) ?? logs; return logs.status == 0 && !logs.stdout.isEmpty }
            XCTAssertEqual(logs.status, 0, logs.stderr)
            XCTAssertTrue(logs.stdout.contains("listening"), logs.stdout)
            XCTAssertTrue(try runCLI(["describe", "pod", pod] + s).stdout.contains("State:          Running"))
        }

        XCTAssertEqual(try runCLI(["rollout", "restart", "deploy/web"] + s).stdout, "deployment.apps/web restarted\n")
        let restarted = try runCLI(["rollout", "status", "deploy/web", "--timeout", "60s"] + s, timeout: 70)
        XCTAssertEqual(restarted.status, 0, restarted.stdout + restarted.stderr)
        let history = try runCLI(["rollout", "history", "deploy/web"] + s).stdout
        XCTAssertTrue(history.contains("\n1          <none>\n2          <none>\n"), history)
        XCTAssertEqual(try runCLI(["rollout", "undo", "deploy/web"] + s).stdout, "deployment.apps/web rolled back\n")
        XCTAssertEqual(try runCLI(["rollout", "status", "deploy/web", "--timeout", "60s"] + s, timeout: 70).status, 0)
        XCTAssertTrue(try runCLI(["rollout", "history", "deploy/web"] + s).stdout.contains("\n2          <none>\n3          <none>\n"))

        let deleted = try runCLI(["delete", "-f", file] + s)
        XCTAssertEqual(deleted.stdout, "deployment.apps \"web\" deleted\nservice \"web\" deleted\n", deleted.stderr)
        XCTAssertTrue(waitUntil(timeout: 30) { (try? runCLI(["get", "pods", "-o", "name"] + s).stdout) == "" })
    }
}
