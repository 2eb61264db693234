import Foundation
import Objects
import Reactor
import XCTest
@testable import ControlPlane

/// A store, a node agent and a ControllerManager on one event loop thread, in a temporary
/// directory; waits poll the store with deadlines (≤ 15 s); `finish()` stops every pod and
/// checks that no process is left.
final class ControllerHarness {
    let dir: String
    let workDir: String
    let store: Store
    let loop = EventLoop()
    private(set) var agent: NodeAgent!
    private(set) var manager: ControllerManager!
    private var thread: OSThread?
    var options = ControllerOptions()

    init(options: ControllerOptions = ControllerOptions()) throws {
        dir = NSTemporaryDirectory() + "portico-ctrl-\(getpid())-\(UUID().uuidString.prefix(8))"
        workDir = dir + "/work"
        try FileManager.default.createDirectory(atPath: workDir, withIntermediateDirectories: true)
        store = try Store(directory: dir + "/store")
        self.options = options
        var config = NodeAgent.Configuration(dataDirectory: dir + "/node")
        config.backOffBase = 0.1
        config.backOffMax = 0.4
        config.binDirectory = "/nonexistent-bin"
        let l = loop
        var made: Result<NodeAgent, Error>!
        let ready = Latch(count: 1)
        thread = OSThread(name: "ctrl-test") {
            made = Result { try NodeAgent(loop: l, configuration: config) }
            ready.countDown()
            if case .success = made { l.run() }
        }
        ready.wait()
        agent = try made.get()
        startManager()
    }

    /// A new ControllerManager over the same store and agent (the old one, if any, stopped).
    func startManager() {
        onLoop {
            self.manager?.stop()
            self.manager = ControllerManager(store: self.store, agent: self.agent, loop: self.loop, options: self.options)
            self.manager.start()
        }
    }

    func stopManager() { onLoop { self.manager.stop() } }

    @discardableResult
    func onLoop<T>(_ body: @escaping () -> T) -> T { loop.runAndWait(body) }

    /// Polls `condition` until it holds or `timeout` (≤ 15 s) passes.
    @discardableResult
    func waitUntil(_ what: String, timeout: Double = 12, file: StaticString = #filePath, line: UInt = #line,
                   _ condition: () throws -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(min(timeout, 15))
        while Date() < deadline {
            if (try? condition()) == true { return true }
            usleep(25_000)
        }
        XCTFail("timed out waiting for \(what)", file: file, line: line)
        return false
    }

    func pods(_ selector: String? = nil) -> [JSONValue] {
        (try? store.list(.pods, namespace: "default", labelSelector: selector).items) ?? []
    }

    func readyPods(_ selector: String) -> [JSONValue] { pods(selector).filter(ObjectFields.isReady) }

    func get(_ type: ResourceType, _ name: String) -> JSONValue? { try? store.get(type, namespace: "default", name: name) }

    func apply(_ type: ResourceType, _ json: String) throws {
        let o = try JSONValue.parse(json)
        if var old = get(type, o.name) {
            old["spec"] = o["spec"]
            try store.update(type, old)
        } else {
            try store.create(type, o)
        }
    }

    /// Changes `spec` of an object through `body`.
    func edit(_ type: ResourceType, _ name: String, _ body: (inout JSONValue) -> Void) throws {
        var o = try store.get(type, namespace: "default", name: name)
        body(&o)
        try store.update(type, o)
    }

    var runningPods: [PodIdentity] { onLoop { self.agent.runningPods } }

    func events(for name: String) -> [String] {
        ((try? store.list(.events, namespace: "default").items) ?? [])
            .filter { $0[path: ["involvedObject", "name"]]?.stringValue == name }
            .map { "\($0["reason"]?.stringValue ?? ""): \($0["message"]?.stringValue ?? "")" }
    }

    func finish(file: StaticString = #filePath, line: UInt = #line) {
        var pids = Set<Int32>()
        onLoop {
            for id in self.agent.runningPods { pids.formUnion(self.agent.processIDs(podUID: id.uid).values) }
            self.manager.stop()
        }
        let latch = Latch(count: 1)
        onLoop { self.agent.stopAll(gracePeriod: 1) { latch.countDown() } }
        let deadline = Date().addingTimeInterval(6)
        while !latch.isDone && Date() < deadline { usleep(10_000) }
        XCTAssertTrue(latch.isDone, "pods did not stop", file: file, line: line)
        let l = loop
        l.execute { l.stop() }
        thread?.join()
        for pid in pids where FileManager.default.fileExists(atPath: "/proc/\(pid)") {
            XCTFail("process \(pid) is left over", file: file, line: line)
            kill(-pid, SIGKILL); kill(pid, SIGKILL)
        }
        let childDeadline = Date().addingTimeInterval(3)
        while !NodeAgentHarness.children().isEmpty && Date() < childDeadline { usleep(20_000) }
        XCTAssertEqual(NodeAgentHarness.children(), [], "child processes left over", file: file, line: line)
        store.close()
        try? FileManager.default.removeItem(atPath: dir)
    }
}

/// A Deployment of `sh -c` pods (JSON), with an optional readiness probe.
func deploymentJSON(_ name: String, replicas: Int, script: String = "exec sleep 60", env: String = "v1",
                    strategy: String = #"{"type":"RollingUpdate"}"#, probe: String? = nil, ports: String = "[]") -> String {
    let probeField = probe.map { #","readinessProbe":\#($0)"# } ?? ""
    return #"""
    {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"\#(name)"},
     "spec":{"replicas":\#(replicas),"selector":{"matchLabels":{"app":"\#(name)"}},"strategy":\#(strategy),
       "template":{"metadata":{"labels":{"app":"\#(name)"}},
         "spec":{"terminationGracePeriodSeconds":1,"containers":[{"name":"main","image":"busybox",
           "command":["/bin/sh","-c",\#(jsonString(script))],"env":[{"name":"VERSION","value":"\#(env)"}],"ports":\#(ports)\#(probeField)}]}}}}
    """#
}

func jsonString(_ s: String) -> String {
    String(decoding: try! JSONEncoder().encode(s), as: UTF8.self)
}

extension EventLoop {
    /// Runs `body` on this loop's thread and returns its result (test helper).
    @discardableResult
    func runAndWait<T>(_ body: @escaping () -> T) -> T {
        let latch = Latch(count: 1)
        var out: T?
        execute { out = body(); latch.countDown() }
        latch.wait()
        return out!
    }
}
