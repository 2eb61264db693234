import Foundation
import Objects
import Reactor
import XCTest
@testable import ControlPlane

final class NodeAgentTests: XCTestCase {
    func testPodRunsWithItsOwnIPAndKubernetesEnvironment() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        let w = h.workDir
        var pod = shellPod("web", [
            ("app", "echo \"$POD_NAME $POD_NAMESPACE $POD_IP $MY_UID $MY_NODE $CUSTOM $EXPANDED\" > \(w)/app.env; exec sleep 30"),
            ("sidecar", "echo \"$POD_IP $(pwd)\" > \(w)/sidecar.env; exec sleep 30"),
        ])
        pod.spec!.containers[0].env = [
            .init(name: "MY_UID", valueFrom: .init(fieldRef: .init(fieldPath: "metadata.uid"))),
            .init(name: "MY_NODE", valueFrom: .init(fieldRef: .init(fieldPath: "spec.nodeName"))),
            .init(name: "CUSTOM", value: "hello"),
            .init(name: "EXPANDED", value: "$(CUSTOM)-world"),
        ]
        pod.spec!.containers[1].workingDir = w
        h.run(pod)
        h.waitUntil("Running and Ready") { $0.status(of: "uid-web")?.phase == "Running" && $0.status(of: "uid-web")?.isReady == true }
        let s = try XCTUnwrap(h.status("uid-web"))
        let ip = try XCTUnwrap(s.podIP)
        XCTAssertTrue(ip.hasPrefix("127.1."), ip)
        XCTAssertEqual(h.readFile("\(w)/app.env"), "web default \(ip) uid-web portico hello hello-world\n")
        XCTAssertEqual(h.readFile("\(w)/sidecar.env"), "\(ip) \(w)\n", "both containers share the pod IP")
        XCTAssertEqual(s.conditions?.map(\.type), ["PodScheduled", "Initialized", "ContainersReady", "Ready"])
        XCTAssertTrue(s.conditions!.allSatisfy { $0.status == "True" && $0.lastTransitionTime != nil })
        XCTAssertEqual(s.containerStatuses?.map(\.name), ["app", "sidecar"])
        XCTAssertEqual(s.containerStatuses?.first?.state?.running != nil, true)
        XCTAssertEqual(h.pids("uid-web").count, 2)
        // Each container leads its own process group, so signals reach its children.
        for pid in h.pids("uid-web").values { XCTAssertEqual(getpgid(pid), pid) }
        // run is idempotent.
        let before = h.pids("uid-web")
        h.run(pod)
        XCTAssertEqual(h.pids("uid-web"), before)
    }

    func testFailingContainerRestartsWithBackOff() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        h.run(shellPod("crash", [("c", "echo run; exit 3")]))
        h.waitUntil("two restarts") { ($0.status(of: "uid-crash")?.containerStatuses?[0].restartCount ?? 0) >= 2 }
        let cs = try XCTUnwrap(h.status("uid-crash")?.containerStatuses?.first)
        XCTAssertEqual(cs.lastState?.terminated?.exitCode, 3)
        XCTAssertEqual(cs.lastState?.terminated?.reason, "Error")
        XCTAssertNotNil(cs.lastState?.terminated?.finishedAt)
        let reasons = h.events.compactMap { $0.1.containerStatuses?.first?.state?.waiting?.reason }
        XCTAssertTrue(reasons.contains("CrashLoopBackOff"), "\(reasons)")
        let message = h.events.compactMap { $0.1.containerStatuses?.first?.state?.waiting?.message }.first ?? ""
        XCTAssertTrue(message.hasPrefix("back-off 100ms restarting failed container=c pod=crash_default"), message)
        XCTAssertEqual(h.status("uid-crash")?.phase, "Running", "a pod whose container is restarting stays Running")
        // The previous instance's output is kept.
        let previous = h.onLoop { h.agent.logPath(podUID: "uid-crash", container: "c", previous: true) }!
        h.waitUntil("previous log") { _ in (try? String(contentsOfFile: previous, encoding: .utf8)) == "run\n" }
        XCTAssertEqual(previous, NodeAgent.logPath(dataDirectory: h.dataDir, pod: PodIdentity(namespace: "default", name: "crash", uid: "uid-crash"),
                                                   container: "c", previous: true))
        let events = h.podEvents("uid-crash")
        XCTAssertEqual(events.first, "Started: Started container c")
        XCTAssertTrue(events.contains("BackOff: Back-off restarting failed container c in pod crash_default(uid-crash)"), "\(events)")
    }

    func testBackOffDoublesUpToTheCap() throws {
        let h = try NodeAgentHarness { $0.backOffBase = 0.05; $0.backOffMax = 0.2 }
        defer { h.finish() }
        h.run(shellPod("crash", [("c", "exit 1")]))
        // The first restart is immediate (kubelet); the back-off applies from the second exit.
        h.waitUntil("five restarts") { ($0.status(of: "uid-crash")?.containerStatuses?[0].restartCount ?? 0) >= 5 }
        let messages = h.events.compactMap { $0.1.containerStatuses?.first?.state?.waiting?.message }
        let delays = messages.map { String($0.split(separator: " ")[1]) }
        XCTAssertEqual(Array(delays.prefix(4)), ["50ms", "100ms", "200ms", "200ms"])
    }

    func testRestartPolicyOnFailureAndNever() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        let marker = h.workDir + "/ran-once"
        h.run(shellPod("onfailure", restartPolicy: "OnFailure", [("c", "test -f \(marker) && exit 0; touch \(marker); exit 1")]))
        h.run(shellPod("done", restartPolicy: "Never", [("c", "exit 0")]))
        h.run(shellPod("broken", restartPolicy: "Never", [("c", "exit 2")]))
        h.waitUntil("OnFailure pod Succeeded") { $0.status(of: "uid-onfailure")?.phase == "Succeeded" }
        XCTAssertEqual(h.status("uid-onfailure")?.containerStatuses?[0].restartCount, 1)
        XCTAssertEqual(h.status("uid-onfailure")?.containerStatuses?[0].state?.terminated?.reason, "Completed")
        h.waitUntil("Never pod Succeeded") { $0.status(of: "uid-done")?.phase == "Succeeded" }
        h.waitUntil("Never pod Failed") { $0.status(of: "uid-broken")?.phase == "Failed" }
        let broken = try XCTUnwrap(h.status("uid-broken"))
        XCTAssertEqual(broken.containerStatuses?[0].restartCount, 0)
        XCTAssertEqual(broken.containerStatuses?[0].state?.terminated?.exitCode, 2)
        XCTAssertEqual(broken.condition("Ready")?.reason, "PodCompleted")
    }

    func testMissingCommandIsAClearConfigError() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        let pod = Pod(metadata: ObjectMeta(name: "nginx", uid: "uid-nginx"),
                      spec: Pod.Spec(containers: [Pod.Container(name: "web", image: "nginx:1.27")]))
        h.run(pod)
        let s = try XCTUnwrap(h.status("uid-nginx"))
        XCTAssertEqual(s.phase, "Pending")
        let waiting = try XCTUnwrap(s.containerStatuses?.first?.state?.waiting)
        XCTAssertEqual(waiting.reason, "CreateContainerConfigError")
        XCTAssertTrue(waiting.message?.contains("container \"web\" has no command") == true, waiting.message ?? "")
        XCTAssertTrue(waiting.message?.contains("nginx:1.27") == true)
        XCTAssertEqual(s.isReady, false)
    }

    func testReadinessProbesFlipReady() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        // The server starts after a second: Ready must wait for it.
        let server = "sleep 1; exec python3 -m http.server --bind $POD_IP 8080"
        var http = shellPod("http", [("web", server)])
        http.spec!.containers[0].ports = [.init(name: "http", containerPort: 8080)]
        http.spec!.containers[0].readinessProbe = .init(httpGet: .init(path: "/", port: .string("http")), periodSeconds: 1)
        var tcp = shellPod("tcp", [("web", server)])
        tcp.spec!.containers[0].readinessProbe = .init(tcpSocket: .init(port: .int(8080)), periodSeconds: 1)
        var missing = shellPod("missing", [("web", server)])
        missing.spec!.containers[0].readinessProbe = .init(httpGet: .init(path: "/nothing-here", port: .int(8080)), periodSeconds: 1)
        h.run(http); h.run(tcp); h.run(missing)
        XCTAssertEqual(h.status("uid-http")?.phase, "Running")
        XCTAssertEqual(h.status("uid-http")?.isReady, false)
        h.waitUntil("httpGet readiness") { $0.status(of: "uid-http")?.isReady == true }
        h.waitUntil("tcpSocket readiness") { $0.status(of: "uid-tcp")?.isReady == true }
        // A 404 is a failure: that pod stays unready.
        XCTAssertEqual(h.status("uid-missing")?.isReady, false)
        XCTAssertEqual(h.status("uid-missing")?.condition("ContainersReady")?.message, "containers with unready status: [web]")
        let readyFlips = h.events.filter { $0.0.uid == "uid-http" }.map { $0.1.isReady }
        XCTAssertEqual(readyFlips.first, false)
        XCTAssertEqual(readyFlips.last, true)
    }

    func testLivenessFailureRestartsTheContainer() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        var pod = shellPod("live", [("c", "exec sleep 30")])
        pod.spec!.containers[0].env = [.init(name: "HEALTH", value: h.workDir + "/healthy")]
        pod.spec!.containers[0].livenessProbe = .init(exec: .init(command: ["/bin/sh", "-c", "test -f $HEALTH"]),
                                                      periodSeconds: 1, failureThreshold: 2)
        h.run(pod)
        let first = h.pids("uid-live")["c"]
        h.waitUntil("liveness restart") { ($0.status(of: "uid-live")?.containerStatuses?[0].restartCount ?? 0) >= 1 }
        let cs = try XCTUnwrap(h.status("uid-live")?.containerStatuses?.first)
        XCTAssertEqual(cs.lastState?.terminated?.exitCode, 128 + SIGTERM, "killed with SIGTERM")
        h.waitUntil("new process") { $0.processIDs(podUID: "uid-live")["c"] != nil }
        XCTAssertNotEqual(h.pids("uid-live")["c"], first)
        let events = h.podEvents("uid-live")
        XCTAssertTrue(events.contains("Unhealthy: Liveness probe failed"), "\(events)")
        XCTAssertTrue(events.contains("Killing: Container c failed liveness probe, will be restarted"), "\(events)")
        // Healthy from now on: no more restarts.
        XCTAssertTrue(FileManager.default.createFile(atPath: h.workDir + "/healthy", contents: Data()))
        let count = h.status("uid-live")?.containerStatuses?[0].restartCount
        usleep(2_500_000)
        XCTAssertEqual(h.status("uid-live")?.containerStatuses?[0].restartCount, count)
    }

    func testStartupProbeGatesStarted() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        let flag = h.workDir + "/started"
        var pod = shellPod("slow", [("c", "sleep 1; touch \(flag); exec sleep 30")])
        pod.spec!.containers[0].startupProbe = .init(exec: .init(command: ["test", "-f", flag]), periodSeconds: 1, failureThreshold: 5)
        h.run(pod)
        XCTAssertEqual(h.status("uid-slow")?.containerStatuses?[0].started, false)
        XCTAssertEqual(h.status("uid-slow")?.isReady, false)
        h.waitUntil("started") { $0.status(of: "uid-slow")?.containerStatuses?[0].started == true }
        XCTAssertEqual(h.status("uid-slow")?.isReady, true)
    }

    func testTerminationLeavesEndpointsThenTermThenKill() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        let w = h.workDir
        // The first container ignores SIGTERM (it notes it and keeps going): SIGKILL after 1 s.
        // The second exits on SIGTERM at once.
        h.run(shellPod("stubborn", grace: 1, [
            ("stubborn", "trap 'date +%s.%N > \(w)/term' TERM; echo up > \(w)/up; while true; do sleep 0.05; done"),
            ("polite", "exec sleep 30"),
        ]))
        XCTAssertEqual(h.readFile("\(w)/up"), "up\n")
        let began = Date()
        h.stop("uid-stubborn")
        let took = Date().timeIntervalSince(began)
        XCTAssertGreaterThanOrEqual(took, 0.9, "SIGKILL only after the grace period")
        XCTAssertLessThan(took, 4)
        let term = try XCTUnwrap(h.readFile("\(w)/term"), "the container got SIGTERM first")
        let termTime = Date(timeIntervalSince1970: Double(term.trimmingCharacters(in: .whitespacesAndNewlines))!)
        let hook = try XCTUnwrap(h.terminations.first { $0.0.uid == "uid-stubborn" })
        XCTAssertLessThanOrEqual(hook.1, termTime, "beforeTerminate runs before the signal")
        let last = try XCTUnwrap(h.events.last { $0.0.uid == "uid-stubborn" }?.1)
        let states = last.containerStatuses!.map { $0.state?.terminated?.exitCode }
        XCTAssertEqual(states, [137, 143])
        XCTAssertNil(h.status("uid-stubborn"), "a stopped pod is forgotten")
        XCTAssertEqual(h.podEvents("uid-stubborn").filter { $0.hasPrefix("Killing") },
                       ["Killing: Stopping container stubborn", "Killing: Stopping container polite"])
        XCTAssertEqual(last.condition("Ready")?.status, "False")
        XCTAssertTrue(h.onLoop { h.agent.runningPods.isEmpty })
    }

    func testLogsAreWrittenAndRotated() throws {
        let h = try NodeAgentHarness { $0.logMaxBytes = 2000; $0.logCheckInterval = 0.1 }
        defer { h.finish() }
        h.run(shellPod("chatty", [("c", "echo hello; echo oops >&2; i=0; while [ $i -lt 60 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done; exec sleep 30")]))
        let path = try XCTUnwrap(h.onLoop { h.agent.logPath(podUID: "uid-chatty", container: "c") })
        XCTAssertTrue(path.hasSuffix("/pods/default_chatty_uid-chatty/c.log"), path)
        h.waitUntil("rotated") { _ in FileManager.default.fileExists(atPath: path + ".1") }
        let old = try String(contentsOfFile: path + ".1", encoding: .utf8)
        XCTAssertTrue(old.hasPrefix("hello\noops\nline-0-"), String(old.prefix(40)))
        let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? -1
        XCTAssertLessThan(size, 2000)
    }

    func testAdoptsRunningPodAfterAgentRestart() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        let keep = shellPod("keep", [("c", "exec sleep 30")])
        let gone = shellPod("gone", [("c", "exec sleep 30")])
        h.run(keep); h.run(gone)
        h.waitUntil("running") { $0.status(of: "uid-keep")?.phase == "Running" && $0.status(of: "uid-gone")?.phase == "Running" }
        let pid = try XCTUnwrap(h.pids("uid-keep")["c"])
        let orphan = try XCTUnwrap(h.pids("uid-gone")["c"])
        let ip = h.status("uid-keep")?.podIP
        // The agent dies without stopping anything; a new one starts on the same data directory.
        try h.startAgent()
        h.onLoop { h.agent.reconcile(desired: [keep]) }
        XCTAssertEqual(h.pids("uid-keep")["c"], pid, "the same process, no duplicate")
        XCTAssertEqual(h.status("uid-keep")?.podIP, ip)
        XCTAssertEqual(h.status("uid-keep")?.phase, "Running")
        XCTAssertEqual(h.status("uid-keep")?.containerStatuses?[0].restartCount, 0)
        h.waitUntil("leftover of an undesired pod killed") { _ in !FileManager.default.fileExists(atPath: "/proc/\(orphan)") }
        // Reconcile is idempotent.
        h.onLoop { h.agent.reconcile(desired: [keep]) }
        XCTAssertEqual(h.pids("uid-keep")["c"], pid)
        let sleeps = try FileManager.default.contentsOfDirectory(atPath: "/proc").compactMap(Int32.init).filter {
            (try? String(contentsOfFile: "/proc/\($0)/cmdline", encoding: .utf8))?.hasPrefix("sleep\u{0}30") == true
                && getpgid($0) == $0 && ($0 == pid || $0 == orphan)
        }
        XCTAssertEqual(sleeps, [pid])
        h.stop("uid-keep")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/proc/\(pid)"))
    }

    func testAdoptedProcessThatDiesIsRestarted() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        let pod = shellPod("p", [("c", "exec sleep 30")])
        h.run(pod)
        let pid = try XCTUnwrap(h.pids("uid-p")["c"])
        try h.startAgent()
        h.run(pod)
        XCTAssertEqual(h.pids("uid-p")["c"], pid)
        kill(pid, SIGKILL)
        h.waitUntil("restarted") { ($0.status(of: "uid-p")?.containerStatuses?[0].restartCount ?? 0) == 1 }
        XCTAssertNotEqual(h.pids("uid-p")["c"], pid)
    }

    func testStableKeyKeepsItsIPAndOthersGetNewOnes() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        var sts = shellPod("web-0", uid: "a", [("c", "exec sleep 30")])
        sts.metadata.ownerReferences = [OwnerReference(apiVersion: "apps/v1", kind: "StatefulSet", name: "web", uid: "s")]
        h.run(sts)
        let ip = try XCTUnwrap(h.status("a")?.podIP)
        h.run(shellPod("deploy-x", uid: "d1", [("c", "exec sleep 30")]))
        let deployIP = try XCTUnwrap(h.status("d1")?.podIP)
        h.stop("a"); h.stop("d1")
        sts.metadata.uid = "b"
        h.run(sts)
        XCTAssertEqual(h.status("b")?.podIP, ip, "a StatefulSet pod keeps its IP")
        h.run(shellPod("deploy-x", uid: "d2", [("c", "exec sleep 30")]))
        let newIP = try XCTUnwrap(h.status("d2")?.podIP)
        XCTAssertNotEqual(newIP, deployIP, "a recreated pod gets a new IP")
        XCTAssertNotEqual(newIP, ip)
        h.run(shellPod("other", uid: "e", [("c", "exec sleep 30")]), stableKey: "default/db-0")
        let stableIP = h.status("e")?.podIP
        h.stop("e")
        // The table survives an agent restart.
        try h.startAgent()
        h.run(shellPod("other", uid: "f", [("c", "exec sleep 30")]), stableKey: "default/db-0")
        XCTAssertEqual(h.status("f")?.podIP, stableIP)
    }

    func testReconcileMakesTheRunningSetEqualTheDesiredSet() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        let a = shellPod("a", [("c", "exec sleep 30")]), b = shellPod("b", [("c", "exec sleep 30")])
        h.onLoop { h.agent.reconcile(desired: [a, b]) }
        let pa = h.pids("uid-a"), pb = h.pids("uid-b")
        h.onLoop { h.agent.reconcile(desired: [a, b]) }
        XCTAssertEqual(h.pids("uid-a"), pa)
        XCTAssertEqual(h.pids("uid-b"), pb)
        h.onLoop { h.agent.reconcile(desired: [a]) }
        h.waitUntil("b gone") { $0.status(of: "uid-b") == nil }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/proc/\(pb["c"]!)"))
        XCTAssertEqual(h.pids("uid-a"), pa)
    }

    func testPodDecodesFromKubernetesJSON() throws {
        let json = """
        {"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"restartPolicy":"OnFailure","containers":[
          {"name":"c","image":"x","command":["portico","echo"],"args":["--listen","$(POD_IP):8080"],
           "env":[{"name":"N","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}],
           "ports":[{"name":"http","containerPort":8080,"protocol":"TCP"}],
           "readinessProbe":{"httpGet":{"path":"/healthz","port":"http"},"periodSeconds":2},
           "livenessProbe":{"tcpSocket":{"port":8080},"failureThreshold":5}}]},
         "status":{"phase":"Running","containerStatuses":[{"name":"c","ready":true,"restartCount":2,
           "state":{"running":{"startedAt":"2026-01-01T00:00:00Z"}},
           "lastState":{"terminated":{"exitCode":1,"reason":"Error"}}}]}}
        """
        let pod = try JSONDecoder().decode(Pod.self, from: Data(json.utf8))
        XCTAssertEqual(pod.metadata.namespace, "default")
        let c = pod.spec!.containers[0]
        XCTAssertEqual(c.readinessProbe?.httpGet?.port, .string("http"))
        XCTAssertEqual(c.livenessProbe?.tcpSocket?.port, .int(8080))
        XCTAssertEqual(c.env?[0].valueFrom?.fieldRef?.fieldPath, "metadata.name")
        XCTAssertEqual(pod.status?.containerStatuses?[0].lastState?.terminated?.exitCode, 1)
        XCTAssertEqual(try JSONDecoder().decode(Pod.self, from: JSONEncoder().encode(pod)), pod)
        XCTAssertEqual(pod.validate(), [])
        var bad = pod
        bad.spec!.restartPolicy = "Sometimes"
        bad.spec!.containers.append(c)
        XCTAssertEqual(bad.validate().map(\.field), ["spec.containers[1].name", "spec.restartPolicy"])
        XCTAssertEqual(NodeAgent.expand("$(POD_IP):8080 $$(X) $(UNSET)", [("POD_IP", "127.1.0.9")]), "127.1.0.9:8080 $(X) $(UNSET)")
    }

    func testProcessesLeftInAContainerDieWithIt() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        let w = h.workDir
        h.run(shellPod("bg", restartPolicy: "Never", [("c", "sleep 30 & echo $! > \(w)/bg.pid; sleep 0.2; exit 1")]))
        h.waitUntil("Failed") { $0.status(of: "uid-bg")?.phase == "Failed" }
        let text = try XCTUnwrap(h.readFile("\(w)/bg.pid"))
        let bg = try XCTUnwrap(Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)))
        h.waitUntil("background process killed") { _ in !FileManager.default.fileExists(atPath: "/proc/\(bg)") }
    }

    func testContainersDoNotInheritTheAgentsDescriptors() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0) // no close-on-exec, as a careless server might leave one
        defer { close(fds[0]); close(fds[1]) }
        let w = h.workDir
        h.run(shellPod("fds", restartPolicy: "Never",
                       [("c", "if [ -e /proc/$$/fd/\(fds[1]) ]; then echo leaked; else echo clean; fi > \(w)/fds")]))
        XCTAssertEqual(h.readFile("\(w)/fds"), "clean\n")
    }

    func testBadWorkingDirAndUnknownExecutableAreStartErrors() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        var pod = shellPod("wd", restartPolicy: "Never", [("c", "true")]) { $0.workingDir = "/no/such/dir" }
        h.run(pod)
        var t = try XCTUnwrap(h.status("uid-wd")?.containerStatuses?[0].state?.terminated)
        XCTAssertEqual(t.reason, "StartError")
        XCTAssertEqual(t.message, "workingDir \"/no/such/dir\": not a directory")
        pod = Pod(metadata: ObjectMeta(name: "exe", uid: "uid-exe"), spec: Pod.Spec(
            containers: [Pod.Container(name: "c", command: ["no-such-program-xyz"])], restartPolicy: "Never"))
        h.run(pod)
        t = try XCTUnwrap(h.status("uid-exe")?.containerStatuses?[0].state?.terminated)
        XCTAssertEqual(t.message, "executable file \"no-such-program-xyz\" not found in $PATH")
        XCTAssertEqual(h.status("uid-exe")?.phase, "Failed")
        // A command made of `$(VAR)` (which may come from a Secret) is named as written, not expanded.
        pod = Pod(metadata: ObjectMeta(name: "var", uid: "uid-var"), spec: Pod.Spec(
            containers: [Pod.Container(name: "c", command: ["$(TOKEN)"], env: [Pod.EnvVar(name: "TOKEN", value: "s3cret-xyzzy")])],
            restartPolicy: "Never"))
        h.run(pod)
        t = try XCTUnwrap(h.status("uid-var")?.containerStatuses?[0].state?.terminated)
        XCTAssertEqual(t.message, "executable file \"$(TOKEN)\" not found in $PATH")
    }

    /// After a real `kill -9` of the server its pods' processes are no longer the new agent's
    /// children: they are adopted through the record, their exit is seen through the pidfd, and
    /// the container is restarted with its exit status reported as unknown.
    func testAdoptsAProcessThatIsNotItsChild() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        // `sleep` outlives the shell that started it, so it is re-parented away from this process.
        let out = h.workDir + "/orphan.pid"
        let sh = try ChildProcess.spawn(argv: ["/bin/sh", "-c", "sleep 30 & echo $!"], environment: ["PATH=/usr/bin:/bin"],
                                        workingDir: nil, logPath: out)
        var status: Int32 = 0
        XCTAssertEqual(waitpid(sh, &status, 0), sh)
        let pid = try XCTUnwrap(Int32(XCTUnwrap(h.readFile(out)).trimmingCharacters(in: .whitespacesAndNewlines)))
        h.pidsSeen.insert(pid)
        defer { kill(pid, SIGKILL) }
        let ticks = try XCTUnwrap(ChildProcess.startTime(pid))
        let pod = shellPod("orph", [("c", "exec sleep 30")])
        let dir = h.dataDir + "/pods/default_orph_uid-orph"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        PodRecord(namespace: "default", name: "orph", uid: "uid-orph", podIP: "127.1.200.1", startTime: "2026-01-01T00:00:00Z",
                  gracePeriodSeconds: 1, containers: ["c": .init(pid: pid, startTicks: ticks, startedAt: "2026-01-01T00:00:01Z",
                                                                  restartCount: 4)]).save(dir + "/pod.json")
        // A record whose process is gone (or whose pid now names another process) is not adopted.
        try FileManager.default.createDirectory(atPath: h.dataDir + "/pods/default_stale_uid-stale", withIntermediateDirectories: true)
        PodRecord(namespace: "default", name: "stale", uid: "uid-stale", podIP: "127.1.200.2", startTime: "2026-01-01T00:00:00Z",
                  gracePeriodSeconds: 1, containers: ["c": .init(pid: getpid(), startTicks: 1, startedAt: "", restartCount: 0)])
            .save(h.dataDir + "/pods/default_stale_uid-stale/pod.json")
        try h.startAgent()
        h.onLoop { h.agent.reconcile(desired: [pod, shellPod("stale", [("c", "exec sleep 30")])]) }
        XCTAssertEqual(h.pids("uid-orph")["c"], pid)
        let s = try XCTUnwrap(h.status("uid-orph"))
        XCTAssertEqual(s.podIP, "127.1.200.1")
        XCTAssertEqual(s.startTime, "2026-01-01T00:00:00Z")
        XCTAssertEqual(s.containerStatuses?[0].restartCount, 4)
        XCTAssertEqual(s.containerStatuses?[0].state?.running?.startedAt, "2026-01-01T00:00:01Z")
        XCTAssertTrue(h.podEvents("uid-orph").contains("Adopted: Adopted running container c (pid \(pid)) after an agent restart"))
        XCTAssertNotEqual(h.pids("uid-stale")["c"], getpid())
        XCTAssertEqual(h.status("uid-stale")?.containerStatuses?[0].restartCount, 1)
        XCTAssertEqual(h.status("uid-stale")?.podIP, "127.1.200.2")
        kill(pid, SIGKILL)
        h.waitUntil("restarted") { ($0.status(of: "uid-orph")?.containerStatuses?[0].restartCount ?? 0) == 5 }
        let last = try XCTUnwrap(h.status("uid-orph")?.containerStatuses?[0].lastState?.terminated)
        XCTAssertEqual(last.message, "exit status unknown: the process was adopted from an earlier agent")
        XCTAssertNotEqual(h.pids("uid-orph")["c"], pid)
    }

    func testEnvFromConfigMapAndSecretWaitsUntilTheyExist() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        let w = h.workDir
        let lock = NSLock()
        var objects: [String: [String: String]] = [:]
        h.onLoop {
            h.agent.configData = { ns, kind, name in
                lock.lock(); defer { lock.unlock() }
                return objects["\(ns)/\(kind)/\(name)"]
            }
        }
        var pod = shellPod("cfg", [("c", "echo \"$CFG_mode $CFG_level $PASSWORD ${OPTIONAL-unset}\" > \(w)/cfg.env; exec sleep 30")])
        pod.spec!.containers[0].envFrom = [.init(prefix: "CFG_", configMapRef: .init(name: "settings"))]
        pod.spec!.containers[0].env = [
            .init(name: "PASSWORD", valueFrom: .init(secretKeyRef: .init(name: "creds", key: "password"))),
            .init(name: "OPTIONAL", valueFrom: .init(configMapKeyRef: .init(name: "absent", key: "k", optional: true))),
        ]
        h.run(pod)
        var waiting = h.status("uid-cfg")?.containerStatuses?[0].state?.waiting
        XCTAssertEqual(waiting?.reason, "CreateContainerConfigError")
        XCTAssertEqual(waiting?.message, "configmap \"settings\" not found")
        XCTAssertEqual(h.status("uid-cfg")?.phase, "Pending")
        lock.lock(); objects["default/ConfigMap/settings"] = ["mode": "fast", "level": "3"]; lock.unlock()
        h.waitUntil("secret reported missing") {
            $0.status(of: "uid-cfg")?.containerStatuses?[0].state?.waiting?.message == "secret \"creds\" not found"
        }
        lock.lock(); objects["default/Secret/creds"] = ["user": "u"]; lock.unlock()
        h.waitUntil("missing key reported") {
            $0.status(of: "uid-cfg")?.containerStatuses?[0].state?.waiting?.message == "couldn't find key password in Secret default/creds"
        }
        lock.lock(); objects["default/Secret/creds"] = ["password": "s3cret"]; lock.unlock()
        h.waitUntil("Running") { $0.status(of: "uid-cfg")?.phase == "Running" }
        waiting = h.status("uid-cfg")?.containerStatuses?[0].state?.waiting
        XCTAssertNil(waiting)
        XCTAssertEqual(h.status("uid-cfg")?.containerStatuses?[0].restartCount, 0)
        XCTAssertEqual(h.readFile("\(w)/cfg.env"), "fast 3 s3cret unset\n")
    }

    func testFailingReadinessMakesThePodUnreadyWithoutRestart() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        let flag = h.workDir + "/ready"
        var pod = shellPod("flap", [("c", "exec sleep 30")])
        pod.spec!.containers[0].readinessProbe = .init(exec: .init(command: ["test", "-f", flag]), periodSeconds: 1, failureThreshold: 1)
        h.run(pod)
        XCTAssertEqual(h.status("uid-flap")?.isReady, false)
        XCTAssertTrue(FileManager.default.createFile(atPath: flag, contents: Data()))
        h.waitUntil("ready") { $0.status(of: "uid-flap")?.isReady == true }
        try FileManager.default.removeItem(atPath: flag)
        h.waitUntil("unready") { $0.status(of: "uid-flap")?.isReady == false }
        XCTAssertEqual(h.status("uid-flap")?.phase, "Running")
        XCTAssertEqual(h.status("uid-flap")?.containerStatuses?[0].restartCount, 0)
        XCTAssertTrue(h.podEvents("uid-flap").contains("Unhealthy: Readiness probe failed"))
    }

    func testTheBinaryDirectoryComesFirstOnThePodsPath() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        let bin = h.workDir + "/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        XCTAssertTrue(FileManager.default.createFile(atPath: bin + "/portico", contents: Data("#!/bin/sh\necho \"portico $*\"\n".utf8),
                                                    attributes: [.posixPermissions: 0o755]))
        try h.startAgent { $0.binDirectory = bin }
        let pod = Pod(metadata: ObjectMeta(name: "echo", uid: "uid-echo"), spec: Pod.Spec(
            containers: [Pod.Container(name: "c", command: ["portico", "echo"], args: ["--listen", "$(POD_IP):8080"])],
            restartPolicy: "Never"))
        h.run(pod)
        h.waitUntil("Succeeded") { $0.status(of: "uid-echo")?.phase == "Succeeded" }
        let ip = try XCTUnwrap(h.status("uid-echo")?.podIP)
        let log = try XCTUnwrap(h.onLoop { h.agent.logPath(podUID: "uid-echo", container: "c") })
        XCTAssertEqual(try String(contentsOfFile: log, encoding: .utf8), "portico echo --listen \(ip):8080\n")
    }

    func testHTTPProbeSendsItsHeaders() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        let server = """
        exec python3 -c "
        import http.server, os
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                ok = self.headers.get('X-Probe') == 'yes' and self.headers.get('Host') == 'custom'
                self.send_response(204 if ok else 500); self.end_headers()
            def log_message(self, *a): pass
        http.server.HTTPServer((os.environ['POD_IP'], 8080), H).serve_forever()"
        """
        var with = shellPod("with", [("web", server)])
        with.spec!.containers[0].readinessProbe = .init(httpGet: .init(path: "/healthz", port: .int(8080)), periodSeconds: 1)
        with.spec!.containers[0].readinessProbe!.httpGet!.httpHeaders = [.init(name: "X-Probe", value: "yes"), .init(name: "host", value: "custom")]
        var without = shellPod("without", [("web", server)])
        without.spec!.containers[0].readinessProbe = .init(httpGet: .init(path: "/healthz", port: .int(8080)), periodSeconds: 1)
        h.run(with); h.run(without)
        h.waitUntil("ready with headers") { $0.status(of: "uid-with")?.isReady == true }
        h.waitUntil("probe of the other pod failed") { _ in h.podEvents("uid-without").contains("Unhealthy: Readiness probe failed") }
        XCTAssertEqual(h.status("uid-without")?.isReady, false)
        XCTAssertEqual(h.status("uid-with")?.containerStatuses?[0].containerID, "portico://\(h.pids("uid-with")["web"]!)")
    }

    func testADesiredPodBeingDeletedIsTerminatedWithItsDeletionGracePeriod() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        var pod = shellPod("del", grace: 30, [("c", "trap '' TERM; while true; do sleep 0.05; done")])
        h.onLoop { h.agent.reconcile(desired: [pod]) }
        XCTAssertEqual(h.pids("uid-del").count, 1)
        pod.metadata.deletionTimestamp = "2026-01-01T00:00:00Z"
        pod.metadata.deletionGracePeriodSeconds = 0
        h.onLoop { h.agent.reconcile(desired: [pod]) }
        h.waitUntil("gone after a zero grace period", timeout: 3) { $0.status(of: "uid-del") == nil }
        h.onLoop { h.agent.reconcile(desired: [pod]) }
        XCTAssertNil(h.status("uid-del"), "not started again")
        XCTAssertEqual(h.terminations.map(\.0.uid), ["uid-del"])
    }
}
