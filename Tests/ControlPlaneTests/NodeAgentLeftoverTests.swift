import Foundation
import Objects
import Reactor
import XCTest
@testable import ControlPlane

/// The agent finds its containers' processes without the pod record, through the PORTICO_*
/// variables it puts in their environment: a server killed (-9) between a spawn and the record
/// write must not run the pod twice, and must never touch another node's processes.
final class NodeAgentLeftoverTests: XCTestCase {
    /// The variables of a process (nil if it is gone or unreadable).
    private func environment(_ pid: Int32) -> [String: String]? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return nil }
        var out: [String: String] = [:]
        for entry in data.split(separator: 0) {
            let s = String(decoding: entry, as: UTF8.self)
            if let eq = s.firstIndex(of: "=") { out[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
        }
        return out
    }

    /// What the agent puts in PORTICO_NODE: its data directory, symlinks resolved.
    private func nodeMarker(_ h: NodeAgentHarness) -> String {
        URL(fileURLWithPath: h.dataDir).resolvingSymlinksInPath().path
    }

    /// Live (not zombie) processes on the machine whose environment names this node and `uid`.
    private func markedProcesses(_ h: NodeAgentHarness, uid: String) -> [Int32] {
        let node = nodeMarker(h)
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")"),
                  stat[stat.index(after: close)...].split(separator: " ").first != "Z",
                  let env = environment(pid) else { return false }
            return env["PORTICO_NODE"] == node && env["PORTICO_POD_UID"] == uid
        }.sorted()
    }

    /// Killed after the spawn but before the pid reached the record (the record written before
    /// the spawn names no process yet): the new agent adopts the running processes, found by
    /// their environment, instead of starting the pod a second time. One container has a volume
    /// mount, so it went through the fork helper of the mount namespace path.
    func testAContainerSpawnedJustBeforeTheAgentDiedIsAdoptedNotStartedAgain() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        let m = h.workDir + "/mnt/cache"
        var pod = shellPod("race", [("plain", "exec sleep 30"), ("mounted", "exec sleep 30")])
        pod.spec!.containers[1].volumeMounts = [.object(["name": .string("cache"), "mountPath": .string(m)])]
        pod.spec!.volumes = [try JSONValue.parse(#"{"name": "cache", "emptyDir": {}}"#)]
        h.run(pod)
        h.waitUntil("Running") { $0.status(of: "uid-race")?.phase == "Running" && $0.processIDs(podUID: "uid-race").count == 2 }
        let before = h.pids("uid-race")
        let startedBefore = try XCTUnwrap(h.status("uid-race")?.containerStatuses?[0].state?.running?.startedAt)
        for (name, pid) in before {
            let env = try XCTUnwrap(environment(pid), "environment of \(name)")
            XCTAssertEqual(env["PORTICO_NODE"], nodeMarker(h), name)
            XCTAssertEqual(env["PORTICO_POD_UID"], "uid-race", name)
            XCTAssertEqual(env["PORTICO_CONTAINER"], name, name)
        }
        XCTAssertEqual(markedProcesses(h, uid: "uid-race"), before.values.sorted())

        // An exec probe the agent had running: never adopted as the container, killed.
        let probe = try ChildProcess.spawn(argv: ["/bin/sleep", "30"], environment: [
            "PORTICO_NODE=\(nodeMarker(h))", "PORTICO_POD_UID=uid-race", "PORTICO_CONTAINER=plain", "PORTICO_EXEC_PROBE=1",
        ], workingDir: nil, logPath: nil)
        h.pidsSeen.insert(probe)
        // The agent dies; its record is what it was between the spawn and the pid's write.
        h.abandonAgent()
        let path = h.dataDir + "/pods/default_race_uid-race/pod.json"
        var record = try XCTUnwrap(PodRecord.load(path))
        for name in record.containers.keys {
            record.containers[name]!.pid = 0
            record.containers[name]!.startTicks = 0
            record.containers[name]!.startedAt = ""
        }
        record.save(path)
        try h.startAgent()
        h.onLoop { h.agent.reconcile(desired: [pod]) }

        XCTAssertEqual(h.pids("uid-race"), before, "the same processes, adopted")
        h.waitUntil("the leftover exec probe is killed") { _ in !FileManager.default.fileExists(atPath: "/proc/\(probe)") }
        XCTAssertEqual(markedProcesses(h, uid: "uid-race"), before.values.sorted(), "one process per container, no second copy")
        h.waitUntil("Running and Ready") { $0.status(of: "uid-race")?.phase == "Running" && $0.status(of: "uid-race")?.isReady == true }
        let s = try XCTUnwrap(h.status("uid-race"))
        XCTAssertEqual(s.containerStatuses?.map(\.restartCount), [0, 0])
        // startedAt comes from the kernel's start time of the process (within a second or two).
        let iso = ISO8601DateFormatter()
        let was = try XCTUnwrap(iso.date(from: startedBefore))
        let now = try XCTUnwrap(iso.date(from: XCTUnwrap(s.containerStatuses?[0].state?.running?.startedAt)))
        XCTAssertLessThanOrEqual(abs(now.timeIntervalSince(was)), 2)
        XCTAssertTrue(h.podEvents("uid-race").contains("Adopted: Adopted running container mounted (pid \(before["mounted"]!)) after an agent restart"),
                      "\(h.podEvents("uid-race"))")
        // The record names the processes again, so a further restart adopts them the usual way.
        XCTAssertEqual(PodRecord.load(path)?.containers["plain"]?.pid, before["plain"])
        // An adopted process that dies is restarted as usual.
        kill(before["plain"]!, SIGKILL)
        h.waitUntil("restarted") { ($0.status(of: "uid-race")?.containerStatuses?[0].restartCount ?? 0) == 1 && $0.processIDs(podUID: "uid-race")["plain"] != nil }
        XCTAssertEqual(markedProcesses(h, uid: "uid-race").count, 2)
    }

    /// No record at all (lost, or removed): the pod's address and history are unknown, so its
    /// marked processes are stopped (SIGTERM, SIGKILL after the grace period) and the pod starts
    /// afresh only once they are gone: never two copies at once.
    func testMarkedProcessesOfAPodWithoutARecordAreStoppedBeforeItStartsAgain() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        // The old copy takes half a second to go after SIGTERM, so starting at once would overlap.
        let pod = shellPod("norec", grace: 5, [("c", "trap 'sleep 0.5; exit 0' TERM; sleep 30 & wait")])
        h.run(pod)
        h.waitUntil("Running") { $0.status(of: "uid-norec")?.phase == "Running" }
        let old = markedProcesses(h, uid: "uid-norec")
        XCTAssertEqual(old.count, 2, "the shell and its sleep")
        h.pidsSeen.formUnion(old)
        // The old copy is the old container's process group (its trap's `sleep 0.5` included).
        let oldGroup = try XCTUnwrap(h.pids("uid-norec")["c"])
        h.abandonAgent()
        try FileManager.default.removeItem(atPath: h.dataDir + "/pods/default_norec_uid-norec/pod.json")
        try h.startAgent()
        h.onLoop { h.agent.reconcile(desired: [pod]) }

        var overlap: [Int32] = []
        let deadline = Date().addingTimeInterval(8)
        var now: [Int32] = []
        while Date() < deadline {
            now = markedProcesses(h, uid: "uid-norec")
            let stillOld = now.filter { getpgid($0) == oldGroup }, new = now.filter { getpgid($0) != oldGroup }
            if !new.isEmpty && !stillOld.isEmpty && overlap.isEmpty { overlap = now }
            if stillOld.isEmpty && new.count == 2 { break }
            usleep(10_000)
        }
        XCTAssertEqual(overlap, [], "no new process while an old one runs")
        XCTAssertEqual(now.filter { old.contains($0) }, [], "the old processes are gone")
        XCTAssertEqual(now.count, 2, "one shell and its sleep again: \(now)")
        XCTAssertNotEqual(h.pids("uid-norec")["c"], oldGroup)
        h.waitUntil("Running and Ready") { $0.status(of: "uid-norec")?.phase == "Running" && $0.status(of: "uid-norec")?.isReady == true }
        XCTAssertEqual(h.status("uid-norec")?.containerStatuses?[0].restartCount, 0)
        XCTAssertEqual(markedProcesses(h, uid: "uid-norec").count, 2)
    }

    /// A marked process of this node for a pod nobody wants is killed; one marked for another
    /// node (another data directory), and one with no marker, are never touched.
    func testLeftoversOfThisNodeAreKilledAndOtherNodesProcessesAreNot() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        func spawn(_ extra: [String]) throws -> Int32 {
            try ChildProcess.spawn(argv: ["/bin/sleep", "30"], environment: ["PATH=/usr/bin:/bin"] + extra, workingDir: nil, logPath: nil)
        }
        let mine = try spawn(["PORTICO_NODE=\(nodeMarker(h))", "PORTICO_POD_UID=uid-ghost", "PORTICO_CONTAINER=c"])
        let other = try spawn(["PORTICO_NODE=\(nodeMarker(h))-other", "PORTICO_POD_UID=uid-ghost", "PORTICO_CONTAINER=c"])
        let plain = try spawn(["POD_NAME=ghost"])
        h.pidsSeen.insert(mine)
        defer {
            for p in [other, plain] { kill(p, SIGKILL); var st: Int32 = 0; waitpid(p, &st, 0) }
        }
        XCTAssertEqual(markedProcesses(h, uid: "uid-ghost"), [mine])
        try h.startAgent()
        h.onLoop { h.agent.reconcile(desired: []) }
        h.waitUntil("the leftover of this node is killed") { _ in !FileManager.default.fileExists(atPath: "/proc/\(mine)") }
        usleep(200_000)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "/proc/\(other)"), "another node's process is left alone")
        XCTAssertTrue(FileManager.default.fileExists(atPath: "/proc/\(plain)"), "a process without the marker is left alone")
        var st: Int32 = 0
        XCTAssertEqual(waitpid(other, &st, WNOHANG), 0, "still running, not killed")
        XCTAssertEqual(waitpid(plain, &st, WNOHANG), 0, "still running, not killed")
    }
}
