// Helpers for the control-plane end-to-end tests: kubectl through Process, the pod processes the
// node agent starts (found through /proc), and the manifests the tests apply.

import Foundation
import Glibc
import XCTest

struct KubectlResult {
    var exitCode: Int32
    var stdout: String
    var stderr: String
    var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(stdout.utf8))) as? [String: Any] }
}

/// Runs the real kubectl against one server's API port, hermetically (no kubeconfig, a private
/// discovery cache), killed after `timeout`.
struct Kubectl {
    let apiPort: UInt16
    let dir: TempDir

    var server: String { "http://127.0.0.1:\(apiPort)" }

    @discardableResult
    func run(_ args: [String], timeout: TimeInterval = 30) throws -> KubectlResult {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Kubectl.path)
        p.arguments = ["--server", server, "--cache-dir", dir.file("kube-cache"), "--request-timeout", "15s"] + args
        var env = ProcessInfo.processInfo.environment
        env["KUBECONFIG"] = dir.file("no-kubeconfig")
        env["HOME"] = dir.path
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let watchdog = DispatchWorkItem { if p.isRunning { p.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: watchdog)
        let errBox = KubectlBox()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { errBox.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let body = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        p.waitUntilExit()
        watchdog.cancel()
        return KubectlResult(exitCode: p.terminationStatus, stdout: String(decoding: body, as: UTF8.self),
                             stderr: String(decoding: errBox.data, as: UTF8.self))
    }

    /// Runs and requires exit 0.
    @discardableResult
    func ok(_ args: [String], timeout: TimeInterval = 30) throws -> KubectlResult {
        let r = try run(args, timeout: timeout)
        guard r.exitCode == 0 else {
            throw HarnessError("kubectl \(args.joined(separator: " ")) exited \(r.exitCode): \(r.stderr)\(r.stdout.prefix(500))")
        }
        return r
    }

    /// `kubectl get ARGS -o json`, parsed.
    func json(_ args: [String]) throws -> [String: Any] {
        let r = try ok(["get"] + args + ["-o", "json"])
        guard let j = r.json else { throw HarnessError("kubectl get \(args): not JSON: \(r.stdout.prefix(300))") }
        return j
    }

    /// The pods matching `selector`, without those already being deleted unless `terminating`.
    func pods(_ selector: String, terminating: Bool = false) throws -> [KPod] {
        let items = try json(["pods", "-l", selector])["items"] as? [[String: Any]] ?? []
        return items.map(KPod.init).filter { terminating || !$0.deleting }
    }

    static let path: String = {
        for p in ["/usr/local/bin/kubectl", "/usr/bin/kubectl"] where FileManager.default.isExecutableFile(atPath: p) { return p }
        return "/usr/local/bin/kubectl"
    }()
}

private final class KubectlBox: @unchecked Sendable { var data = Data() }

/// The parts of a Pod the tests read.
struct KPod {
    var raw: [String: Any]
    init(_ raw: [String: Any]) { self.raw = raw }

    var meta: [String: Any] { raw["metadata"] as? [String: Any] ?? [:] }
    var status: [String: Any] { raw["status"] as? [String: Any] ?? [:] }
    var name: String { meta["name"] as? String ?? "" }
    var uid: String { meta["uid"] as? String ?? "" }
    var deleting: Bool { meta["deletionTimestamp"] != nil }
    var labels: [String: String] { meta["labels"] as? [String: String] ?? [:] }
    var creationTimestamp: String { meta["creationTimestamp"] as? String ?? "" }
    var ip: String { status["podIP"] as? String ?? "" }
    var phase: String { status["phase"] as? String ?? "" }
    var conditions: [[String: Any]] { status["conditions"] as? [[String: Any]] ?? [] }
    func condition(_ type: String) -> [String: Any]? { conditions.first { $0["type"] as? String == type } }
    var ready: Bool { !deleting && phase == "Running" && condition("Ready")?["status"] as? String == "True" }
    var containerStatuses: [[String: Any]] { status["containerStatuses"] as? [[String: Any]] ?? [] }
    var restartCount: Int { (containerStatuses.first?["restartCount"] as? NSNumber)?.intValue ?? -1 }
}

/// Pod processes on this machine, from /proc: pid → the pod name its `portico echo --name` names.
enum PodProcesses {
    /// Every `portico echo --listen 127.1.…` process whose --name starts with `prefix`.
    static func echoes(prefix: String) -> [(pid: Int32, pod: String)] {
        var out: [(Int32, String)] = []
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        for e in entries {
            guard let pid = Int32(e) else { continue }
            guard let data = FileManager.default.contents(atPath: "/proc/\(e)/cmdline"), !data.isEmpty else { continue }
            let args = data.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
            guard args.contains("echo"), let l = args.firstIndex(of: "--listen"), l + 1 < args.count,
                  args[l + 1].hasPrefix("127.1."), let n = args.firstIndex(of: "--name"), n + 1 < args.count,
                  args[n + 1].hasPrefix(prefix) else { continue }
            // A zombie has an empty cmdline, so it is not counted here; count it apart.
            out.append((pid, args[n + 1]))
        }
        return out
    }

    /// The environment of a process (empty if it is gone or unreadable).
    static func environment(_ pid: Int32) -> [String: String] {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return [:] }
        var out: [String: String] = [:]
        for entry in data.split(separator: 0) {
            let s = String(decoding: entry, as: UTF8.self)
            if let eq = s.firstIndex(of: "=") { out[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
        }
        return out
    }

    /// How many processes run per pod name.
    static func countByPod(prefix: String) -> [String: Int] {
        var c: [String: Int] = [:]
        for e in echoes(prefix: prefix) { c[e.pod, default: 0] += 1 }
        return c
    }
}

/// One test's names and addresses, random so concurrent runs on the machine do not meet
/// (pod IPs come from 127.1.0.0/16 per server, so the container port is random too).
struct CPNames {
    let app: String
    let port: Int
    let clusterIP: String
    var host: String { "\(app).test" }

    init(_ base: String) {
        let letters = Array("abcdefghijklmnopqrstuvwxyz")
        app = base + "-" + String((0..<5).map { _ in letters.randomElement()! })
        port = Int.random(in: 20000...39999)
        clusterIP = "127.2.\(Int.random(in: 1...250)).\(Int.random(in: 2...250))"
    }
}

enum CPManifest {
    static func container(port: Int, version: String) -> String {
        """
              containers:
                - name: echo
                  image: portico/echo:test
                  command: ["portico", "echo", "--listen", "$(POD_IP):\(port)", "--name", "$(POD_NAME)"]
                  env:
                    - name: POD_NAME
                      valueFrom: {fieldRef: {fieldPath: metadata.name}}
                    - name: POD_IP
                      valueFrom: {fieldRef: {fieldPath: status.podIP}}
                    - name: VERSION
                      value: "\(version)"
                  ports: [{name: http, containerPort: \(port)}]
                  readinessProbe:
                    httpGet: {path: /, port: http}
                    periodSeconds: 1

        """
    }

    static func deployment(_ n: CPNames, replicas: Int = 3, version: String = "1") -> String {
        """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: \(n.app)
          labels: {app: \(n.app)}
        spec:
          replicas: \(replicas)
          selector:
            matchLabels: {app: \(n.app)}
          strategy:
            type: RollingUpdate
            rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
          template:
            metadata:
              labels: {app: \(n.app)}
            spec:
              terminationGracePeriodSeconds: 5

        """ + container(port: n.port, version: version)
    }

    static func service(_ n: CPNames, headless: Bool = false) -> String {
        """
        apiVersion: v1
        kind: Service
        metadata:
          name: \(n.app)
        spec:
          clusterIP: \(headless ? "None" : n.clusterIP)
          selector: {app: \(n.app)}
          ports: [{name: http, port: 80, targetPort: http}]

        """
    }

    static func ingress(_ n: CPNames) -> String {
        """
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata:
          name: \(n.app)
        spec:
          ingressClassName: portico
          rules:
            - host: \(n.host)
              http:
                paths:
                  - path: /
                    pathType: Prefix
                    backend: {service: {name: \(n.app), port: {number: 80}}}

        """
    }

    static func statefulSet(_ n: CPNames, replicas: Int = 2) -> String {
        """
        apiVersion: apps/v1
        kind: StatefulSet
        metadata:
          name: \(n.app)
        spec:
          serviceName: \(n.app)
          replicas: \(replicas)
          podManagementPolicy: OrderedReady
          selector:
            matchLabels: {app: \(n.app)}
          template:
            metadata:
              labels: {app: \(n.app)}
            spec:
              terminationGracePeriodSeconds: 5

        """ + container(port: n.port, version: "1")
    }

    /// Deployment + Service + Ingress.
    static func web(_ n: CPNames, replicas: Int = 3, version: String = "1") -> String {
        Manifest.join([deployment(n, replicas: replicas, version: version), service(n), ingress(n)])
    }
}

/// The base class of the control-plane suites: a fresh fixture per test, and in tearDown the
/// check that stopping the server left none of the test's pod processes behind.
class ControlPlaneTestCase: XCTestCase {
    var fx: Fixture!
    /// Prefixes of the pod names this test created (its apps).
    var podPrefixes: [String] = []

    override func setUpWithError() throws {
        try Binary.require()
        fx = try Fixture()
    }

    override func tearDown() {
        fx.stop()
        for prefix in podPrefixes {
            let gone = waitUntil(timeout: 10, interval: 0.1) { PodProcesses.echoes(prefix: prefix + "-").isEmpty }
            if !gone {
                let left = PodProcesses.echoes(prefix: prefix + "-")
                XCTFail("pod processes of \(prefix) left after the server stopped: \(left)")
                for e in left { kill(e.pid, SIGKILL) }
            }
        }
        podPrefixes = []
    }

    /// Names for one app of this test (remembered for the tearDown check).
    func names(_ base: String) -> CPNames {
        let n = CPNames(base)
        podPrefixes.append(n.app)
        return n
    }

    /// Starts `portico serve` on `manifests` and returns it with a kubectl for its API.
    func start(_ manifests: [String], name: String = "serve") throws -> (PorticoServer, Kubectl) {
        let s = try fx.serve(manifests, name: name)
        return (s, Kubectl(apiPort: try s.apiPort(), dir: fx.dir))
    }

    /// Waits until exactly `count` pods of `app` are Ready (and none other is left, being deleted
    /// or not) and returns them.
    @discardableResult
    func waitForReady(_ k: Kubectl, _ app: String, count: Int, timeout: TimeInterval = 30,
                      file: StaticString = #filePath, line: UInt = #line) throws -> [KPod] {
        var last: [KPod] = []
        let ok = try waitUntil(timeout: timeout, interval: 0.2) {
            last = try k.pods("app=\(app)", terminating: true)
            return last.count == count && last.allSatisfy { $0.ready }
        }
        if !ok {
            throw HarnessError("\(app): wanted \(count) Ready pods within \(timeout)s, have "
                + last.map { "\($0.name) phase=\($0.phase) ready=\($0.ready) deleting=\($0.deleting)" }.joined(separator: ", "))
        }
        return last
    }

    /// One GET through the ingress; the echo reply's pod name, or nil on any failure.
    func get(_ s: PorticoServer, host: String, path: String = "/") -> (status: Int, pod: String?) {
        do {
            let r = try RawClient.exchange(port: s.httpPort,
                                           "GET \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n", timeout: 5)
            return (r.status, (try? EchoReply(r.body))?.name)
        } catch {
            return (0, nil)
        }
    }

    /// Sends `count` requests through the ingress; returns the pod names that answered 200 and
    /// the failures.
    func spray(_ s: PorticoServer, host: String, count: Int) -> (pods: [String], failures: [String]) {
        var pods: [String] = [], failures: [String] = []
        for i in 0..<count {
            let r = get(s, host: host)
            if r.status == 200, let p = r.pod { pods.append(p) } else { failures.append("#\(i): status \(r.status)") }
        }
        return (pods, failures)
    }
}

/// A client that sends GETs through the ingress at a steady rate on its own thread until stopped.
final class SteadyLoad: @unchecked Sendable {
    private let lock = NSLock()
    private var stopping = false
    private(set) var sent = 0
    private(set) var failures: [String] = []
    private(set) var pods: [String: Int] = [:]
    private let done = DispatchSemaphore(value: 0)

    init(port: UInt16, host: String, interval: TimeInterval = 0.02) {
        let t = Thread { [self] in
            let start = Date()
            while true {
                lock.lock(); let stop = stopping; lock.unlock()
                if stop { break }
                var line = ""
                var pod: String?
                do {
                    let r = try RawClient.exchange(port: port, "GET /load HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n", timeout: 5)
                    if r.status == 200 { pod = (try? EchoReply(r.body))?.name } else { line = "status \(r.status): \(r.bodyText.prefix(120))" }
                } catch {
                    line = "\(error)"
                }
                lock.lock()
                sent += 1
                if let p = pod { pods[p, default: 0] += 1 } else {
                    failures.append(String(format: "t+%.2fs ", Date().timeIntervalSince(start)) + (line.isEmpty ? "no echo body" : line))
                }
                lock.unlock()
                Thread.sleep(forTimeInterval: interval)
            }
            done.signal()
        }
        t.start()
    }

    /// Stops the loop and returns (sent, failures, answers per pod).
    func stop() -> (sent: Int, failures: [String], pods: [String: Int]) {
        lock.lock(); stopping = true; lock.unlock()
        _ = done.wait(timeout: .now() + 10)
        lock.lock(); defer { lock.unlock() }
        return (sent, failures, pods)
    }
}
