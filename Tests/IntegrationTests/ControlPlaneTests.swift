// End to end with the real binary: `portico serve` runs Deployments, StatefulSets and Services as
// local pod processes, and the real kubectl drives its API (issue 5, "Tests").

import Foundation
import Glibc
import XCTest

final class ControlPlaneTests: ControlPlaneTestCase {

    // MARK: Deployment → pods → Service → Ingress

    /// A Deployment of 3 behind a Service and an Ingress: 30 requests reach 3 different pods.
    func testDeploymentOfThreeServesThroughTheIngress() throws {
        let n = names("web")
        let m = try fx.dir.write("web.yaml", CPManifest.web(n))
        let (s, k) = try start([m])
        let pods = try waitForReady(k, n.app, count: 3)
        XCTAssertEqual(Set(pods.map { $0.ip }).count, 3, "each pod has its own IP: \(pods.map { $0.ip })")
        XCTAssertTrue(pods.allSatisfy { $0.ip.hasPrefix("127.1.") }, "pod IPs from 127.1.0.0/16: \(pods.map { $0.ip })")
        XCTAssertEqual(PodProcesses.countByPod(prefix: n.app + "-"), Dictionary(uniqueKeysWithValues: pods.map { ($0.name, 1) }),
                       "one process per pod")

        // The Endpoints follow readiness: wait until the proxy routes to all three.
        var seen = Set<String>()
        waitUntil(timeout: 10, interval: 0.1) {
            if let p = get(s, host: n.host).pod { seen.insert(p) }
            return seen.count == 3
        }
        let r = spray(s, host: n.host, count: 30)
        XCTAssertEqual(r.failures, [], "every request through the ingress answered 200 by a pod")
        XCTAssertEqual(Set(r.pods), Set(pods.map { $0.name }), "30 requests reach the 3 pods")

        // What kubectl reads: the Deployment's status, the Ingress's address, the EndpointSlices.
        let status = try waitStatus(k, "deployment/\(n.app)") { ($0["availableReplicas"] as? Int) == 3 }
        for field in ["replicas", "readyReplicas", "updatedReplicas", "availableReplicas"] {
            XCTAssertEqual(status[field] as? Int, 3, "status.\(field): \(status)")
        }
        XCTAssertEqual(status["observedGeneration"] as? Int, 1, "\(status)")
        let conditions = status["conditions"] as? [[String: Any]] ?? []
        XCTAssertTrue(conditions.contains { $0["type"] as? String == "Available" && $0["status"] as? String == "True" }, "\(conditions)")
        XCTAssertTrue(conditions.contains { $0["type"] as? String == "Progressing" && $0["status"] as? String == "True" }, "\(conditions)")
        let ing = try waitStatus(k, "ingress/\(n.app)") { (($0["loadBalancer"] as? [String: Any])?["ingress"] as? [Any])?.isEmpty == false }
        XCTAssertFalse(((ing["loadBalancer"] as? [String: Any])?["ingress"] as? [Any] ?? []).isEmpty, "status.loadBalancer.ingress set: \(ing)")
        let slices = try k.json(["endpointslices", "-l", "kubernetes.io/service-name=\(n.app)"])["items"] as? [[String: Any]] ?? []
        let sliceIPs = Set(slices.flatMap { ($0["endpoints"] as? [[String: Any]]) ?? [] }.flatMap { ($0["addresses"] as? [String]) ?? [] })
        XCTAssertEqual(sliceIPs, Set(pods.map { $0.ip }), "the EndpointSlices list the 3 pods")
        XCTAssertEqual(zombies(of: s), [], "no zombie processes")

        // The ClusterIP balances over the same pods (the kube-proxy role).
        let c = try Curl.request("http://\(n.clusterIP):80/", maxTime: 5)
        XCTAssertEqual(c.status, 200, "ClusterIP \(n.clusterIP):80 answers: \(c.stderr)")
        if c.status == 200 { XCTAssertTrue(pods.map { $0.name }.contains(try EchoReply(c.body).name)) }
    }

    /// `kill -9` of a container's process: the same pod restarts it (restartCount 1) and traffic
    /// continues on the other pods meanwhile.
    func testKilledContainerRestartsInItsPodAndTrafficContinues() throws {
        let n = names("crash")
        let m = try fx.dir.write("web.yaml", CPManifest.web(n))
        let (s, k) = try start([m])
        let pods = try waitForReady(k, n.app, count: 3)
        waitUntil(timeout: 10, interval: 0.1) { Set(spray(s, host: n.host, count: 6).pods).count == 3 }
        let victim = pods[0]
        guard let proc = PodProcesses.echoes(prefix: victim.name).first else {
            return XCTFail("no process for pod \(victim.name)")
        }
        let load = SteadyLoad(port: s.httpPort, host: n.host)
        let killedAt = Date()
        kill(proc.pid, SIGKILL)
        var now = victim
        var restartedAt: Date?
        let restarted = try waitUntil(timeout: 30, interval: 0.25) {
            guard let p = try k.pods("app=\(n.app)").first(where: { $0.name == victim.name }) else { return false }
            now = p
            if restartedAt == nil, p.restartCount >= 1 { restartedAt = Date() }
            return p.restartCount >= 1 && p.ready
        }
        // Keep the load going a little after the restart, so "traffic continues" is measured
        // over a few seconds whatever the restart took.
        Thread.sleep(until: max(Date(), killedAt.addingTimeInterval(3)))
        let result = load.stop()
        // kubelet restarts a container the first time it exits without delay; the 10 s back-off
        // (doubling to 5 min) applies from the second exit on (kuberuntime_manager doBackOff:
        // IsInBackOffSince is false while the container has no back-off entry yet).
        let delay = (restartedAt ?? Date()).timeIntervalSince(killedAt)
        XCTAssertLessThan(delay, 5, "the first restart is immediate, as kubelet's; it took \(String(format: "%.1f", delay)) s")
        XCTAssertTrue(restarted, "the container restarts in its pod within 30 s; status now: \(now.containerStatuses)")
        XCTAssertEqual(now.uid, victim.uid, "the same pod (uid) restarted its container")
        XCTAssertEqual(now.restartCount, 1, "restartCount 1: \(now.containerStatuses)")
        XCTAssertEqual(now.ip, victim.ip, "a restarted container keeps its pod's IP")
        let last = (now.containerStatuses.first?["lastState"] as? [String: Any])?["terminated"] as? [String: Any]
        XCTAssertEqual((last?["exitCode"] as? NSNumber)?.intValue, 137, "lastState.terminated says SIGKILL (137): \(String(describing: last))")
        let procs = PodProcesses.echoes(prefix: victim.name)
        XCTAssertEqual(procs.count, 1, "one process for the pod again: \(procs)")
        XCTAssertNotEqual(procs.first?.pid, proc.pid, "a new process")
        XCTAssertEqual(try k.pods("app=\(n.app)").count, 3, "no pod was replaced")
        XCTAssertGreaterThan(result.sent, 20, "the client kept sending")
        XCTAssertEqual(result.failures, [], "traffic continues: \(result.failures.count) of \(result.sent) requests failed while the container was down; serve log:\n\(s.process.stderrTail(40))")
        XCTAssertEqual(get(s, host: n.host).status, 200)
        XCTAssertEqual(zombies(of: s), [], "the killed process was reaped")
    }

    /// `kubectl delete pod` → a new pod with a new name and a new IP takes its place.
    func testDeletedPodIsReplacedWithNewNameAndIP() throws {
        let n = names("del")
        let m = try fx.dir.write("web.yaml", CPManifest.web(n))
        let (s, k) = try start([m])
        let before = try waitForReady(k, n.app, count: 3)
        let victim = before[1]
        waitUntil(timeout: 10, interval: 0.1) { Set(spray(s, host: n.host, count: 6).pods).count == 3 }
        let load = SteadyLoad(port: s.httpPort, host: n.host)
        try k.ok(["delete", "pod", victim.name, "--wait=true", "--timeout=30s"], timeout: 40)
        let after = try waitForReady(k, n.app, count: 3)
        let during = load.stop()
        XCTAssertEqual(during.failures, [], "no request failed while the pod was deleted (\(during.failures.count) of \(during.sent))")
        let newcomers = after.filter { p in !before.contains { $0.name == p.name } }
        XCTAssertEqual(newcomers.count, 1, "one new pod: before \(before.map { $0.name }), after \(after.map { $0.name })")
        XCTAssertFalse(after.contains { $0.name == victim.name }, "the deleted pod is gone")
        if let fresh = newcomers.first {
            XCTAssertNotEqual(fresh.ip, victim.ip, "a recreated Deployment pod gets a new IP")
            XCTAssertFalse(before.map { $0.ip }.contains(fresh.ip), "and not another pod's")
            XCTAssertEqual(fresh.labels["pod-template-hash"], victim.labels["pod-template-hash"])
        }
        XCTAssertTrue(waitUntil(timeout: 10, interval: 0.1) { PodProcesses.echoes(prefix: victim.name).isEmpty },
                      "the deleted pod's process is gone")
        XCTAssertEqual(Set(PodProcesses.echoes(prefix: n.app + "-").map { $0.pod }), Set(after.map { $0.name }))
        var seen = Set<String>()
        waitUntil(timeout: 10, interval: 0.1) {
            if let p = get(s, host: n.host).pod { seen.insert(p) }
            return seen.isSuperset(of: newcomers.map { $0.name })
        }
        XCTAssertTrue(seen.isSuperset(of: newcomers.map { $0.name }), "the new pod serves through the ingress: \(seen)")
        XCTAssertFalse(seen.contains(victim.name))
    }

    /// `kubectl scale` 3 → 5 → 1: pods (and processes) follow, and so does the traffic.
    func testKubectlScaleThreeToFiveToOne() throws {
        let n = names("scale")
        let m = try fx.dir.write("web.yaml", CPManifest.web(n))
        let (s, k) = try start([m])
        try waitForReady(k, n.app, count: 3)

        try k.ok(["scale", "deployment/\(n.app)", "--replicas=5"])
        let five = try waitForReady(k, n.app, count: 5)
        XCTAssertTrue(waitUntil(timeout: 10, interval: 0.1) { PodProcesses.echoes(prefix: n.app + "-").count == 5 },
                      "5 pod processes: \(PodProcesses.echoes(prefix: n.app + "-"))")
        var seen = Set<String>()
        waitUntil(timeout: 10, interval: 0.05) {
            if let p = get(s, host: n.host).pod { seen.insert(p) }
            return seen.count == 5
        }
        XCTAssertEqual(seen, Set(five.map { $0.name }), "all 5 pods serve through the ingress")
        let deploy = try k.json(["deployment", n.app])
        XCTAssertEqual((deploy["spec"] as? [String: Any])?["replicas"] as? Int, 5)

        // Scaling down under load: a pod leaves the Endpoints before it is signalled, so no
        // request fails.
        let load = SteadyLoad(port: s.httpPort, host: n.host)
        Thread.sleep(forTimeInterval: 0.3)
        try k.ok(["scale", "deployment/\(n.app)", "--replicas=1"])
        let one = try waitForReady(k, n.app, count: 1)
        XCTAssertTrue(waitUntil(timeout: 15, interval: 0.1) { PodProcesses.echoes(prefix: n.app + "-").count == 1 },
                      "1 pod process: \(PodProcesses.echoes(prefix: n.app + "-"))")
        Thread.sleep(forTimeInterval: 0.5)
        let during = load.stop()
        XCTAssertEqual(during.failures, [], "no request failed while scaling 5 → 1 (\(during.failures.count) of \(during.sent))")
        let status = try waitStatus(k, "deployment/\(n.app)") { ($0["readyReplicas"] as? Int) == 1 && ($0["replicas"] as? Int) == 1 }
        XCTAssertEqual(status["availableReplicas"] as? Int, 1, "\(status)")
        let r = spray(s, host: n.host, count: 5)
        XCTAssertEqual(r.failures, [])
        XCTAssertEqual(Set(r.pods), [one[0].name], "only the remaining pod answers")
    }

    /// A rolling update (an env var of the template changed) while a client sends a steady
    /// rate through the ingress: no request fails, rollout status succeeds, every pod ends up on
    /// the new template hash.
    func testRollingUpdateUnderSteadyLoadDropsNothing() throws {
        let n = names("roll")
        let m = try fx.dir.write("web.yaml", CPManifest.web(n))
        let (s, k) = try start([m])
        let before = try waitForReady(k, n.app, count: 3)
        let oldHash = before[0].labels["pod-template-hash"] ?? ""
        XCTAssertFalse(oldHash.isEmpty)
        waitUntil(timeout: 10, interval: 0.1) { Set(spray(s, host: n.host, count: 6).pods).count == 3 }

        let load = SteadyLoad(port: s.httpPort, host: n.host, interval: 0.02)
        Thread.sleep(forTimeInterval: 0.5)
        try k.ok(["set", "env", "deployment/\(n.app)", "VERSION=2"])
        let rollout = try k.run(["rollout", "status", "deployment/\(n.app)", "--timeout=60s"], timeout: 70)
        Thread.sleep(forTimeInterval: 1)
        let result = load.stop()
        XCTAssertEqual(rollout.exitCode, 0, "rollout status: \(rollout.stdout) \(rollout.stderr)")
        XCTAssertTrue(rollout.stdout.contains("successfully rolled out"), rollout.stdout)

        let after = try waitForReady(k, n.app, count: 3)
        let hashes = Set(after.map { $0.labels["pod-template-hash"] ?? "" })
        XCTAssertEqual(hashes.count, 1, "all pods on one template hash: \(hashes)")
        XCTAssertFalse(hashes.contains(oldHash), "the new hash, not \(oldHash)")
        XCTAssertTrue(Set(after.map { $0.name }).isDisjoint(with: before.map { $0.name }), "every pod replaced")
        for p in after {
            let env = ((p.raw["spec"] as? [String: Any])?["containers"] as? [[String: Any]])?.first?["env"] as? [[String: Any]] ?? []
            XCTAssertTrue(env.contains { $0["name"] as? String == "VERSION" && $0["value"] as? String == "2" }, "\(p.name) has VERSION=2")
        }
        let rs = try k.json(["replicasets", "-l", "app=\(n.app)"])["items"] as? [[String: Any]] ?? []
        let active = rs.filter { (($0["spec"] as? [String: Any])?["replicas"] as? Int ?? 0) > 0 }
        XCTAssertEqual(active.count, 1, "only the new ReplicaSet keeps replicas")
        XCTAssertEqual(Set(PodProcesses.echoes(prefix: n.app + "-").map { $0.pod }), Set(after.map { $0.name }),
                       "the old pods' processes are gone")

        XCTAssertGreaterThan(result.sent, 50, "the client sent at a steady rate throughout")
        XCTAssertEqual(result.failures, [], "zero failed requests during the rolling update (\(result.failures.count) of \(result.sent))")
        let newNames = Set(after.map { $0.name })
        XCTAssertFalse(Set(result.pods.keys).isDisjoint(with: newNames), "new pods answered during the load: \(result.pods)")
    }

    // MARK: StatefulSet

    /// OrderedReady: pod-1 is created only once pod-0 is Ready; a deleted ordinal comes back with
    /// its name and its IP.
    func testStatefulSetOrderedReadyAndStableIdentity() throws {
        let n = names("db")
        let m = try fx.dir.write("sts.yaml", Manifest.join([CPManifest.service(n, headless: true), CPManifest.statefulSet(n)]))
        let (s, k) = try start([m])
        let pods = try waitForReady(k, n.app, count: 2)
        let byName = Dictionary(uniqueKeysWithValues: pods.map { ($0.name, $0) })
        guard let p0 = byName["\(n.app)-0"], let p1 = byName["\(n.app)-1"] else {
            return XCTFail("pods are NAME-0 and NAME-1: \(pods.map { $0.name })")
        }
        let iso = ISO8601DateFormatter()
        guard let ready0 = (p0.condition("Ready")?["lastTransitionTime"] as? String).flatMap(iso.date(from:)),
              let created1 = iso.date(from: p1.creationTimestamp), let created0 = iso.date(from: p0.creationTimestamp) else {
            return XCTFail("timestamps: pod-0 Ready \(String(describing: p0.condition("Ready"))), pod-1 created \(p1.creationTimestamp)")
        }
        XCTAssertLessThanOrEqual(created0, created1)
        XCTAssertGreaterThanOrEqual(created1, ready0, "pod-1 (created \(p1.creationTimestamp)) only after pod-0 was Ready (\(ready0))")
        // The timestamps are whole seconds and can tie: the node agent's log orders them exactly.
        let log = s.process.stderr
        let ready0Line = log.range(of: "pod default/\(p0.name) container echo: readiness passed")
        let start1Line = log.range(of: "pod default/\(p1.name) (")
        XCTAssertNotNil(ready0Line, "pod-0's readiness in the log")
        XCTAssertNotNil(start1Line, "pod-1's start in the log")
        if let r0 = ready0Line, let s1 = start1Line {
            XCTAssertLessThan(r0.lowerBound, s1.lowerBound, "pod-1 starts only after pod-0 passed its readiness probe")
        }
        XCTAssertNotEqual(p0.ip, p1.ip)

        // The headless Service lists each pod and has no ClusterIP.
        let svc = try k.json(["service", n.app])
        XCTAssertEqual((svc["spec"] as? [String: Any])?["clusterIP"] as? String, "None")
        var addresses = Set<String>()
        waitUntil(timeout: 10, interval: 0.2) {
            let ep = (try? k.json(["endpoints", n.app])) ?? [:]
            addresses = Set(((ep["subsets"] as? [[String: Any]]) ?? []).flatMap { ($0["addresses"] as? [[String: Any]]) ?? [] }
                .compactMap { $0["ip"] as? String })
            return addresses == [p0.ip, p1.ip]
        }
        XCTAssertEqual(addresses, [p0.ip, p1.ip], "the headless Service's Endpoints list both pods")

        try k.ok(["delete", "pod", p1.name, "--wait=true", "--timeout=30s"], timeout: 40)
        var back: KPod?
        let cameBack = try waitUntil(timeout: 30, interval: 0.2) {
            back = try k.pods("app=\(n.app)").first { $0.name == p1.name && $0.uid != p1.uid }
            return back?.ready == true
        }
        XCTAssertTrue(cameBack, "\(p1.name) recreated and Ready: \(String(describing: back?.status))")
        XCTAssertEqual(back?.ip, p1.ip, "a StatefulSet ordinal keeps its pod IP")
        XCTAssertEqual(PodProcesses.countByPod(prefix: n.app + "-"), [p0.name: 1, p1.name: 1], "one process per ordinal")
        let still0 = try k.pods("app=\(n.app)").first { $0.name == p0.name }
        XCTAssertEqual(still0?.uid, p0.uid, "pod-0 untouched")

        // kubectl scale: up creates the next ordinal, down removes from the highest ordinal.
        try k.ok(["scale", "statefulset/\(n.app)", "--replicas=3"])
        let three = try waitForReady(k, n.app, count: 3)
        XCTAssertEqual(Set(three.map { $0.name }), [p0.name, p1.name, "\(n.app)-2"])
        try k.ok(["scale", "statefulset/\(n.app)", "--replicas=1"])
        let one = try waitForReady(k, n.app, count: 1)
        XCTAssertEqual(one.map { $0.name }, [p0.name], "scale down removes the highest ordinals first")
        XCTAssertEqual(one.first?.uid, p0.uid)
        XCTAssertTrue(waitUntil(timeout: 10, interval: 0.1) { PodProcesses.countByPod(prefix: n.app + "-") == [p0.name: 1] },
                      "only pod-0's process is left: \(PodProcesses.countByPod(prefix: n.app + "-"))")
    }

    // MARK: Durability

    /// `kill -9` of the server and a restart on the same --data: the same objects (uids), one
    /// process per pod, no orphans, traffic served.
    func testServerKill9AndRestartKeepsObjectsWithoutDuplicateProcesses() throws {
        let n = names("dur")
        let m = try fx.dir.write("web.yaml", CPManifest.web(n))
        let (s1, k1) = try start([m])
        try waitForReady(k1, n.app, count: 3)
        waitUntil(timeout: 10, interval: 0.1) { Set(spray(s1, host: n.host, count: 6).pods).count == 3 }
        func identities(_ k: Kubectl) throws -> [String] {
            let items = try k.json(["deploy,svc,ing", "--field-selector", "metadata.name=\(n.app)"])["items"] as? [[String: Any]] ?? []
            return items.map {
                let meta = $0["metadata"] as? [String: Any] ?? [:]
                return "\($0["kind"] ?? "")/\(meta["name"] ?? "")/\(meta["uid"] ?? "")"
            }.sorted()
        }
        let objects = try identities(k1)
        XCTAssertEqual(objects.count, 3, "a Deployment, a Service and an Ingress: \(objects)")
        let podsBefore = try k1.pods("app=\(n.app)")

        s1.process.signal(SIGKILL)
        XCTAssertNotNil(s1.process.waitForExit(timeout: 10), "the server died")

        let (s2, k2) = try start([m])
        XCTAssertEqual(try identities(k2), objects, "the same objects with the same uids after the restart")
        let podsAfter = try waitForReady(k2, n.app, count: 3)
        print("ControlPlaneTests: after the server's kill -9, pods before \(podsBefore.map { "\($0.name)@\($0.ip)" }), "
              + "after \(podsAfter.map { "\($0.name)@\($0.ip) restarts=\($0.restartCount)" })")
        // Give the node agent a moment to settle (adopt or restart), then count processes.
        Thread.sleep(forTimeInterval: 2)
        let counts = PodProcesses.countByPod(prefix: n.app + "-")
        let current = try k2.pods("app=\(n.app)", terminating: true)
        XCTAssertEqual(current.count, 3, "still 3 pods: \(current.map { $0.name })")
        XCTAssertEqual(counts, Dictionary(uniqueKeysWithValues: current.map { ($0.name, 1) }),
                       "exactly one process per pod and none for pods that no longer exist "
                       + "(pods before: \(podsBefore.map { $0.name }), after: \(podsAfter.map { $0.name }))")
        var seen = Set<String>()
        waitUntil(timeout: 10, interval: 0.1) {
            if let p = get(s2, host: n.host).pod { seen.insert(p) }
            return seen.count == 3
        }
        let r = spray(s2, host: n.host, count: 15)
        XCTAssertEqual(r.failures, [], "traffic served after the restart")
        XCTAssertEqual(Set(r.pods).union(seen), Set(current.map { $0.name }))

        // An adopted pod is still supervised: kill its process and the new server restarts it.
        guard let victim = current.first, let proc = PodProcesses.echoes(prefix: victim.name).first else {
            return XCTFail("no process to kill")
        }
        kill(proc.pid, SIGKILL)
        var now = victim
        let restarted = try waitUntil(timeout: 30, interval: 0.25) {
            guard let p = try k2.pods("app=\(n.app)").first(where: { $0.name == victim.name }) else { return false }
            now = p
            return p.restartCount > victim.restartCount && p.ready
        }
        XCTAssertTrue(restarted, "the killed process of an adopted pod is restarted: \(now.containerStatuses)")
        XCTAssertTrue(waitUntil(timeout: 5, interval: 0.1) { PodProcesses.countByPod(prefix: n.app + "-") == Dictionary(uniqueKeysWithValues: current.map { ($0.name, 1) }) },
                      "one process per pod again: \(PodProcesses.countByPod(prefix: n.app + "-"))")
    }

    // MARK: The API with kubectl

    /// Bad manifests through the API answer 422 Invalid naming the field.
    func testBadManifestsAnswer422NamingTheField() throws {
        let empty = fx.dir.file("manifests")
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        let (_, k) = try start([empty])
        let n = names("bad")

        // A selector that does not match the template labels, through kubectl apply.
        let mismatched = CPManifest.deployment(n).replacingOccurrences(of: "matchLabels: {app: \(n.app)}",
                                                                      with: "matchLabels: {app: other}")
        let file = try fx.dir.write("bad.yaml", mismatched)
        let r = try k.run(["apply", "-f", file])
        XCTAssertNotEqual(r.exitCode, 0, "kubectl apply of a bad Deployment fails")
        XCTAssertTrue(r.stderr.contains("is invalid"), "kubectl reports Invalid: \(r.stderr)")
        XCTAssertTrue(r.stderr.contains("spec.template.metadata.labels") || r.stderr.contains("spec.selector"),
                      "kubectl names the field: \(r.stderr)")
        XCTAssertEqual(try k.run(["get", "deployment", n.app]).exitCode, 1, "nothing was stored")

        // The same over plain HTTP: 422 with a Status whose causes name the field.
        let status = try postJSON(k, path: "/apis/apps/v1/namespaces/default/deployments", yaml: mismatched)
        XCTAssertEqual(status.code, 422, status.body)
        let st = (try? JSONSerialization.jsonObject(with: Data(status.body.utf8))) as? [String: Any] ?? [:]
        XCTAssertEqual(st["kind"] as? String, "Status")
        XCTAssertEqual(st["reason"] as? String, "Invalid")
        let causes = ((st["details"] as? [String: Any])?["causes"] as? [[String: Any]]) ?? []
        XCTAssertTrue(causes.contains { ($0["field"] as? String ?? "").hasPrefix("spec.template.metadata.labels") || ($0["field"] as? String ?? "").hasPrefix("spec.selector") },
                      "a cause names the field: \(causes)")

        // A name that is not DNS-1123.
        let badName = CPManifest.deployment(n).replacingOccurrences(of: "name: \(n.app)\n  labels", with: "name: Bad_Name\n  labels")
        XCTAssertTrue(badName.contains("Bad_Name"))
        let r2 = try k.run(["apply", "-f", try fx.dir.write("bad-name.yaml", badName)])
        XCTAssertNotEqual(r2.exitCode, 0)
        XCTAssertTrue(r2.stderr.contains("metadata.name"), "kubectl names metadata.name: \(r2.stderr)")
        let status2 = try postJSON(k, path: "/apis/apps/v1/namespaces/default/deployments", yaml: badName)
        XCTAssertEqual(status2.code, 422, status2.body)
        XCTAssertTrue(status2.body.contains("metadata.name"), status2.body)

        // A Service without ports (a required field).
        let noPorts = "apiVersion: v1\nkind: Service\nmetadata: {name: \(n.app)}\nspec:\n  selector: {app: \(n.app)}\n"
        let status3 = try postJSON(k, path: "/api/v1/namespaces/default/services", yaml: noPorts)
        XCTAssertEqual(status3.code, 422, status3.body)
        XCTAssertTrue(status3.body.contains("spec.ports"), status3.body)
        XCTAssertTrue(PodProcesses.echoes(prefix: n.app + "-").isEmpty, "no pod was started")
    }

    /// `kubectl apply -f`, `kubectl get pods,svc,ing,deploy,sts,rs,endpoints`, and
    /// `kubectl delete -f` removing the objects and their pods' processes.
    func testKubectlApplyGetAndDeleteRemovesObjectsAndPods() throws {
        let empty = fx.dir.file("manifests")
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        let (s, k) = try start([empty])
        let web = names("kweb"), db = names("kdb")
        let file = try fx.dir.write("all.yaml", Manifest.join([
            CPManifest.web(web, replicas: 2),
            CPManifest.service(db, headless: true), CPManifest.statefulSet(db),
        ]))
        let applied = try k.ok(["apply", "-f", file])
        XCTAssertTrue(applied.stdout.contains("deployment.apps/\(web.app) created"), applied.stdout)
        XCTAssertTrue(applied.stdout.contains("statefulset.apps/\(db.app) created"), applied.stdout)
        let webPods = try waitForReady(k, web.app, count: 2)
        let dbPods = try waitForReady(k, db.app, count: 2)

        let listed = try k.run(["get", "pods,svc,ing,deploy,sts,rs,endpoints"])
        XCTAssertEqual(listed.exitCode, 0, listed.stderr)
        for name in webPods.map({ $0.name }) + dbPods.map({ $0.name }) + ["deployment.apps/\(web.app)", "statefulset.apps/\(db.app)",
                                                                        "service/\(web.app)", "ingress.networking.k8s.io/\(web.app)",
                                                                        "endpoints/\(db.app)"] {
            XCTAssertTrue(listed.stdout.contains(name), "kubectl get lists \(name):\n\(listed.stdout)")
        }
        XCTAssertTrue(waitUntil(timeout: 10, interval: 0.1) { get(s, host: web.host).status == 200 }, "the applied Ingress serves")
        // Applying the same file again changes nothing.
        let again = try k.ok(["apply", "-f", file])
        XCTAssertTrue(again.stdout.contains("deployment.apps/\(web.app) unchanged"), again.stdout)

        // A modified file (an env var of the template) applied: a rolling update that
        // `kubectl rollout status` follows to the end.
        let oldHash = webPods[0].labels["pod-template-hash"] ?? ""
        _ = try fx.dir.write("all.yaml", Manifest.join([
            CPManifest.web(web, replicas: 2, version: "2"),
            CPManifest.service(db, headless: true), CPManifest.statefulSet(db),
        ]))
        let updated = try k.ok(["apply", "-f", file])
        XCTAssertTrue(updated.stdout.contains("deployment.apps/\(web.app) configured"), updated.stdout)
        XCTAssertTrue(updated.stdout.contains("statefulset.apps/\(db.app) unchanged"), updated.stdout)
        let rollout = try k.run(["rollout", "status", "deployment/\(web.app)", "--timeout=60s"], timeout: 70)
        XCTAssertEqual(rollout.exitCode, 0, "rollout status: \(rollout.stdout) \(rollout.stderr)")
        let rolled = try waitForReady(k, web.app, count: 2)
        XCTAssertFalse(rolled.contains { $0.labels["pod-template-hash"] == oldHash }, "every pod on the new template")
        let history = try k.run(["rollout", "history", "deployment/\(web.app)"])
        XCTAssertEqual(history.exitCode, 0, history.stderr)
        XCTAssertTrue(history.stdout.contains("1") && history.stdout.contains("2"), "two revisions: \(history.stdout)")

        let deleted = try k.run(["delete", "-f", file, "--timeout=40s"], timeout: 50)
        XCTAssertEqual(deleted.exitCode, 0, deleted.stderr)
        XCTAssertTrue(deleted.stdout.contains("deployment.apps \"\(web.app)\" deleted"), deleted.stdout)
        let gone = try waitUntil(timeout: 30, interval: 0.2) {
            try k.pods("app=\(web.app)", terminating: true).isEmpty && k.pods("app=\(db.app)", terminating: true).isEmpty
                && PodProcesses.echoes(prefix: web.app + "-").isEmpty && PodProcesses.echoes(prefix: db.app + "-").isEmpty
        }
        XCTAssertTrue(gone, "pods and their processes gone: \(PodProcesses.echoes(prefix: web.app + "-")) \(PodProcesses.echoes(prefix: db.app + "-"))")
        let rs = try k.json(["replicasets", "-l", "app=\(web.app)"])["items"] as? [[String: Any]] ?? []
        XCTAssertEqual(rs.count, 0, "the ReplicaSets went with their Deployment")
        for obj in ["deployment/\(web.app)", "statefulset/\(db.app)", "service/\(web.app)", "ingress/\(web.app)", "service/\(db.app)"] {
            let r = try k.run(["get", obj])
            XCTAssertEqual(r.exitCode, 1, "\(obj) is gone: \(r.stdout)")
            XCTAssertTrue(r.stderr.contains("NotFound") || r.stderr.contains("not found"), r.stderr)
        }
        XCTAssertTrue(waitUntil(timeout: 10, interval: 0.1) { get(s, host: web.host).status == 404 },
                      "the deleted Ingress no longer routes")
    }

    /// Events the agent records are what `kubectl describe` shows: describe asks for them with a
    /// field selector on involvedObject (name, namespace, uid), as `kubectl get events` does; and
    /// `kubectl logs` reads the container's output through the pods/log subresource.
    func testKubectlDescribeEventsAndLogsOfAPod() throws {
        let n = names("ev")
        let m = try fx.dir.write("web.yaml", CPManifest.web(n, replicas: 1))
        let (_, k) = try start([m])
        let pod = try waitForReady(k, n.app, count: 1)[0]
        let all = try k.run(["get", "events"])
        XCTAssertEqual(all.exitCode, 0, all.stderr)
        XCTAssertTrue(all.stdout.contains("pod/\(pod.name)") && all.stdout.contains("Started"), "events recorded: \(all.stdout)")

        let selected = try k.run(["get", "events", "--field-selector", "involvedObject.name=\(pod.name)"])
        XCTAssertEqual(selected.exitCode, 0, "a field selector on involvedObject.name: \(selected.stderr)")
        XCTAssertTrue(selected.stdout.contains("Started"), selected.stdout)

        let described = try k.run(["describe", "pod", pod.name])
        XCTAssertEqual(described.exitCode, 0, described.stderr)
        XCTAssertTrue(described.stdout.contains(pod.ip), described.stdout)
        let events = described.stdout.components(separatedBy: "Events:").last ?? ""
        XCTAssertTrue(events.contains("Started"), "kubectl describe lists the pod's events, not <none>:\nEvents:\(events)")

        // The container's output through the log subresource.
        let logs = try k.run(["logs", pod.name])
        XCTAssertEqual(logs.exitCode, 0, "kubectl logs: \(logs.stderr)")
        XCTAssertTrue(logs.stdout.contains("listening on \(pod.ip):\(n.port)"), "kubectl logs shows the container's output: \(logs.stdout)")
    }

    // MARK: Helpers

    /// The zombie children of the server (state Z in /proc/PID/stat with the server as parent).
    private func zombies(of s: PorticoServer) -> [Int32] {
        var out: [Int32] = []
        for e in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(e), let stat = try? String(contentsOfFile: "/proc/\(e)/stat", encoding: .utf8),
                  let close = stat.range(of: ") ", options: .backwards) else { continue }
            let fields = stat[close.upperBound...].split(separator: " ")
            if fields.count > 1, fields[0] == "Z", Int32(fields[1]) == s.process.pid { out.append(pid) }
        }
        return out
    }

    /// POSTs a YAML manifest (converted to JSON by kubectl) to the API and returns the status and body.
    private func postJSON(_ k: Kubectl, path: String, yaml: String) throws -> (code: Int, body: String) {
        let file = try fx.dir.write("post-\(UUID().uuidString.prefix(8)).yaml", yaml)
        let converted = try k.ok(["create", "-f", file, "--dry-run=client", "-o", "json", "--validate=false"])
        let json = try fx.dir.write("post.json", converted.stdout)
        let r = try Curl.run(["-X", "POST", "-H", "Content-Type: application/json", "--data-binary", "@\(json)",
                              k.server + path], maxTime: 10)
        return (r.status, r.bodyText)
    }

    /// Polls `kubectl get OBJ -o json` until its status satisfies `condition`; returns the status.
    private func waitStatus(_ k: Kubectl, _ obj: String, timeout: TimeInterval = 15,
                            _ condition: ([String: Any]) -> Bool) throws -> [String: Any] {
        var status: [String: Any] = [:]
        _ = try waitUntil(timeout: timeout, interval: 0.2) {
            status = try k.json([obj])["status"] as? [String: Any] ?? [:]
            return condition(status)
        }
        return status
    }
}
