import Foundation
import Objects
import Reactor
import XCTest
@testable import ControlPlane

/// Runs a NodeAgent on its own event loop thread for one test: every call hops onto the loop and
/// waits, every wait has a deadline, and `finish()` stops all pods, checks that no process the
/// test started is left (not even as a zombie), and removes the data directory.
final class NodeAgentHarness {
    let dataDir: String
    let workDir: String
    private(set) var loop: EventLoop
    private(set) var agent: NodeAgent!
    private var thread: OSThread?
    private let lock = NSLock()
    private var _events: [(PodIdentity, PodStatus)] = []
    private var _terminations: [(PodIdentity, Date)] = []
    private var _podEvents: [(PodIdentity, PodEvent)] = []
    /// Every pid seen in a container, for the leftover check.
    var pidsSeen = Set<Int32>()

    init(dataDir: String? = nil, configure: (inout NodeAgent.Configuration) -> Void = { _ in }) throws {
        let base = dataDir ?? NSTemporaryDirectory() + "portico-node-\(getpid())-\(UUID().uuidString.prefix(8))"
        self.dataDir = base
        workDir = base + "/work"
        try FileManager.default.createDirectory(atPath: workDir, withIntermediateDirectories: true)
        loop = EventLoop()
        try startAgent(configure: configure)
    }

    /// A new loop and agent on the same data directory (the old agent is simply abandoned, as
    /// after a kill -9 of the server).
    func startAgent(configure: (inout NodeAgent.Configuration) -> Void = { _ in }) throws {
        if thread != nil { abandonAgent() }
        loop = EventLoop()
        var config = NodeAgent.Configuration(dataDirectory: dataDir)
        config.backOffBase = 0.1
        config.backOffMax = 0.4
        config.binDirectory = "/nonexistent-bin"
        configure(&config)
        let l = loop
        var made: Result<NodeAgent, Error>!
        let ready = Latch(count: 1)
        // The agent is created on the loop thread, as every call to it must be.
        let t = OSThread(name: "node-test") {
            made = Result { try NodeAgent(loop: l, configuration: config) }
            ready.countDown()
            if case .success = made { l.run() }
        }
        ready.wait()
        agent = try made.get()
        thread = t
        onLoop {
            self.agent.onStatusChange = { [weak self] id, s in
                guard let self else { return }
                self.lock.lock(); self._events.append((id, s)); self.lock.unlock()
            }
            self.agent.onEvent = { [weak self] id, e in
                guard let self else { return }
                self.lock.lock(); self._podEvents.append((id, e)); self.lock.unlock()
            }
            self.agent.beforeTerminate = { [weak self] id in
                guard let self else { return }
                self.lock.lock(); self._terminations.append((id, Date())); self.lock.unlock()
            }
        }
    }

    /// Stops the loop without stopping any pod: the agent is gone, its processes live on.
    func abandonAgent() {
        let l = loop
        l.execute { l.stop() }
        thread?.join()
        thread = nil
    }

    var events: [(PodIdentity, PodStatus)] { lock.lock(); defer { lock.unlock() }; return _events }
    /// `reason: message` of each event recorded for the pod with `uid`.
    func podEvents(_ uid: String) -> [String] {
        lock.lock(); defer { lock.unlock() }
        return _podEvents.filter { $0.0.uid == uid }.map { "\($0.1.reason): \($0.1.message)" }
    }
    var terminations: [(PodIdentity, Date)] { lock.lock(); defer { lock.unlock() }; return _terminations }

    /// Runs `body` on the loop thread and returns its result.
    @discardableResult
    func onLoop<T>(_ body: @escaping () -> T) -> T { loop.runAndWait(body) }

    /// Polls `condition` on the loop until it holds or `timeout` (≤ 10 s) passes.
    @discardableResult
    func waitUntil(_ what: String, timeout: Double = 8, file: StaticString = #filePath, line: UInt = #line,
                   _ condition: @escaping (NodeAgent) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(min(timeout, 10))
        while Date() < deadline {
            if onLoop({ condition(self.agent) }) { return true }
            usleep(20_000)
        }
        XCTFail("timed out waiting for \(what)", file: file, line: line)
        return false
    }

    func status(_ uid: String) -> PodStatus? { onLoop { self.agent.status(of: uid) } }

    func pids(_ uid: String) -> [String: Int32] {
        let p = onLoop { self.agent.processIDs(podUID: uid) }
        pidsSeen.formUnion(p.values)
        return p
    }

    func run(_ pod: Pod, stableKey: String? = nil) {
        onLoop { self.agent.run(pod, stableKey: stableKey) }
    }

    /// Stops a pod and waits until its processes are gone.
    func stop(_ uid: String, grace: Double? = nil, timeout: Double = 8) {
        _ = pids(uid)
        let latch = Latch(count: 1)
        onLoop { self.agent.stop(podUID: uid, gracePeriod: grace) { latch.countDown() } }
        let deadline = Date().addingTimeInterval(timeout)
        while !latch.isDone && Date() < deadline { usleep(10_000) }
        XCTAssertTrue(latch.isDone, "pod \(uid) did not stop in \(timeout)s")
    }

    /// Stops every pod, the loop and its thread; asserts no process of the test is left.
    func finish(file: StaticString = #filePath, line: UInt = #line) {
        for uid in onLoop({ self.agent.runningPods.map(\.uid) }) { _ = pids(uid) }
        let latch = Latch(count: 1)
        onLoop { self.agent.stopAll(gracePeriod: 1) { latch.countDown() } }
        let deadline = Date().addingTimeInterval(5)
        while !latch.isDone && Date() < deadline { usleep(10_000) }
        XCTAssertTrue(latch.isDone, "pods did not stop", file: file, line: line)
        abandonAgent()
        // A process that was not our child is reaped by its new parent, a moment later.
        let goneDeadline = Date().addingTimeInterval(3)
        while pidsSeen.contains(where: { FileManager.default.fileExists(atPath: "/proc/\($0)") }) && Date() < goneDeadline {
            usleep(20_000)
        }
        for pid in pidsSeen {
            XCTAssertFalse(FileManager.default.fileExists(atPath: "/proc/\(pid)"),
                           "process \(pid) is left over (or a zombie)", file: file, line: line)
            if FileManager.default.fileExists(atPath: "/proc/\(pid)") { kill(-pid, SIGKILL); kill(pid, SIGKILL) }
        }
        // Nothing the agent spawned (containers, exec probes) is left as a child, not even a zombie.
        let childDeadline = Date().addingTimeInterval(3)
        while !Self.children().isEmpty && Date() < childDeadline { usleep(20_000) }
        XCTAssertEqual(Self.children(), [], "child processes left over", file: file, line: line)
        try? FileManager.default.removeItem(atPath: dataDir)
    }

    /// Pids whose parent is this process, with their state letter.
    static func children() -> [String] {
        let me = getpid()
        return ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
            guard Int32(entry) != nil, let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 1, Int32(fields[1]) == me else { return nil }
            return "\(entry) \(fields[0]) \(stat.prefix(upTo: close))"
        }
    }

    /// Reads a file the container wrote, waiting for it to appear with content.
    func readFile(_ path: String, timeout: Double = 5) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let d = FileManager.default.contents(atPath: path), !d.isEmpty,
               let s = String(data: d, encoding: .utf8), s.hasSuffix("\n") { return s }
            usleep(20_000)
        }
        return nil
    }
}

/// A pod of `sh -c` containers.
func shellPod(_ name: String, uid: String? = nil, restartPolicy: String? = nil, grace: Int64? = 1,
              _ containers: [(String, String)], configure: (inout Pod.Container) -> Void = { _ in }) -> Pod {
    let cs = containers.map { (n, script) -> Pod.Container in
        var c = Pod.Container(name: n, image: "busybox", command: ["/bin/sh", "-c", script])
        configure(&c)
        return c
    }
    return Pod(metadata: ObjectMeta(name: name, uid: uid ?? "uid-\(name)"),
               spec: Pod.Spec(containers: cs, restartPolicy: restartPolicy, terminationGracePeriodSeconds: grace))
}
