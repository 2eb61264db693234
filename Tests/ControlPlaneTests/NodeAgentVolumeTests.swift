import Foundation
import Objects
import CSystem
import Reactor
import XCTest
@testable import ControlPlane

/// Pod volumes in the node agent: real directories under the pod's data directory, real bind
/// mounts in a private mount namespace per container (the tests run as root, as the agent does).
final class NodeAgentVolumeTests: XCTestCase {
    private func json(_ text: String) -> JSONValue { try! JSONValue.parse(text) }

    /// A `volumeMounts[]` entry.
    private func volumeMount(_ name: String, _ path: String, readOnly: Bool = false, subPath: String? = nil) -> JSONValue {
        var o: [String: JSONValue] = ["name": .string(name), "mountPath": .string(path)]
        if readOnly { o["readOnly"] = .bool(true) }
        if let subPath { o["subPath"] = .string(subPath) }
        return .object(o)
    }

    /// The mount namespace of a process (`mnt:[4026531841]`).
    private func mountNamespace(_ pid: Int32) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/mnt")
    }

    private func waiting(_ h: NodeAgentHarness, _ uid: String, _ i: Int = 0) -> ContainerState.Waiting? {
        h.status(uid)?.containerStatuses?[i].state?.waiting
    }

    func testEmptyDirIsSharedByTheContainersOfAPodAndOutlivesContainerRestarts() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        let w = h.workDir, m = w + "/mnt/data"
        var pod = shellPod("share", [
            ("writer", "echo hello > \(m)/shared; exec sleep 30"),
            ("reader", "i=0; while [ ! -f \(m)/shared ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; cat \(m)/shared > \(w)/seen; exec sleep 30"),
        ]) { $0.volumeMounts = [volumeMount("cache", m)] }
        pod.spec!.volumes = [json(#"{"name": "cache", "emptyDir": {}}"#)]
        var plain = shellPod("plain", [("c", "exec sleep 30")])
        plain.metadata.uid = "uid-plain"
        h.run(pod)
        h.run(plain)
        h.waitUntil("both Running") { $0.status(of: "uid-share")?.phase == "Running" && $0.status(of: "uid-plain")?.phase == "Running" }
        XCTAssertEqual(h.readFile("\(w)/seen"), "hello\n", "the reader sees the writer's file")
        let volume = "\(h.dataDir)/pods/default_share_uid-share/volumes/kubernetes.io~empty-dir/cache"
        XCTAssertEqual(try String(contentsOfFile: volume + "/shared", encoding: .utf8), "hello\n", "the data lives in the pod's directory")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: m), [], "on the host the mount point stays empty")
        // Containers with mounts run in their own mount namespace; one without, in the agent's.
        let mine = mountNamespace(getpid())
        let pids = h.pids("uid-share")
        XCTAssertNotEqual(mountNamespace(pids["writer"]!), mine)
        XCTAssertNotEqual(mountNamespace(pids["writer"]!), mountNamespace(pids["reader"]!))
        XCTAssertEqual(mountNamespace(h.pids("uid-plain")["c"]!), mine)
        // The recorded pid is the container's process itself (adoption relies on it).
        XCTAssertEqual(try String(contentsOfFile: "/proc/\(pids["writer"]!)/cmdline", encoding: .utf8), "sleep\u{0}30\u{0}")
        XCTAssertEqual(getpgid(pids["writer"]!), pids["writer"]!)
        // A container restart keeps the volume.
        kill(pids["writer"]!, SIGKILL)
        h.waitUntil("writer restarted") { ($0.status(of: "uid-share")?.containerStatuses?[0].restartCount ?? 0) == 1 && $0.processIDs(podUID: "uid-share")["writer"] != nil }
        XCTAssertTrue(FileManager.default.fileExists(atPath: volume + "/shared"))
        h.stop("uid-share", grace: 1)
        XCTAssertFalse(FileManager.default.fileExists(atPath: volume), "removed with the pod")
        XCTAssertFalse(FileManager.default.fileExists(atPath: w + "/mnt"), "mount points the agent created are removed with the pod")
    }

    func testReadOnlyMountRefusesWritesWithEROFS() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        let w = h.workDir
        // Mount points outside the test's directory: the agent creates them and removes them again.
        let base = "/mnt/portico-test-\(UUID().uuidString.prefix(8))"
        let host = w + "/host"
        var pod = shellPod("ro", restartPolicy: "Never", [
            ("c", "echo x > \(base)/ro/f; echo \"ro=$?\" > \(w)/result; echo y > \(base)/rw/g; echo \"rw=$?\" >> \(w)/result; cat \(base)/ro/existing >> \(w)/result"),
        ]) {
            $0.volumeMounts = [
                volumeMount("data", base + "/ro", readOnly: true),
                volumeMount("data", base + "/rw"),
            ]
        }
        pod.spec!.volumes = [json(#"{"name": "data", "hostPath": {"path": "\#(host)", "type": "DirectoryOrCreate"}}"#)]
        h.run(pod)
        h.waitUntil("hostPath created") { _ in FileManager.default.fileExists(atPath: host) }
        h.waitUntil("finished") { $0.status(of: "uid-ro")?.phase == "Failed" || $0.status(of: "uid-ro")?.phase == "Succeeded" }
        let result = try XCTUnwrap(h.readFile("\(w)/result"))
        XCTAssertTrue(result.hasPrefix("ro=2\nrw=0\n"), result)
        let log = try String(contentsOfFile: h.onLoop { h.agent.logPath(podUID: "uid-ro", container: "c")! }, encoding: .utf8)
        XCTAssertTrue(log.contains("Read-only file system"), "the kernel refused the write: \(log)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: host + "/f"))
        XCTAssertEqual(try String(contentsOfFile: host + "/g", encoding: .utf8), "y\n", "the same volume mounted read-write")
        var mode = stat()
        XCTAssertEqual(stat(host, &mode), 0)
        XCTAssertEqual(mode.st_mode & 0o777, 0o755, "DirectoryOrCreate makes a 0755 directory")
        XCTAssertTrue(FileManager.default.fileExists(atPath: base + "/ro"), "mount points exist while the pod does")
        h.stop("uid-ro", grace: 1)
        XCTAssertFalse(FileManager.default.fileExists(atPath: base), "created mount points removed with the pod")
        XCTAssertTrue(FileManager.default.fileExists(atPath: host + "/g"), "a hostPath's data is not the pod's to remove")
    }

    func testSubPathMountsADirectoryOrFileOfTheVolume() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        let w = h.workDir
        let host = w + "/host"
        try FileManager.default.createDirectory(atPath: host, withIntermediateDirectories: true)
        try "port=8080\n".write(toFile: host + "/app.conf", atomically: true, encoding: .utf8)
        var pod = shellPod("sub", [
            ("c", "echo one > \(w)/m/logs/out; cat \(w)/m/etc/app.conf > \(w)/conf; ls \(w)/m/logs > \(w)/listing; exec sleep 30"),
        ]) {
            $0.volumeMounts = [
                volumeMount("scratch", w + "/m/logs", subPath: "pods/logs"),
                volumeMount("config", w + "/m/etc/app.conf", subPath: "app.conf"),
            ]
        }
        pod.spec!.volumes = [json(#"{"name": "scratch", "emptyDir": {}}"#),
                             json(#"{"name": "config", "hostPath": {"path": "\#(host)", "type": "Directory"}}"#)]
        h.run(pod)
        h.waitUntil("Running") { $0.status(of: "uid-sub")?.phase == "Running" }
        XCTAssertEqual(h.readFile("\(w)/conf"), "port=8080\n", "a single file of the volume")
        XCTAssertEqual(h.readFile("\(w)/listing"), "out\n", "only the sub-directory is visible")
        let volume = "\(h.dataDir)/pods/default_sub_uid-sub/volumes/kubernetes.io~empty-dir/scratch"
        XCTAssertEqual(try String(contentsOfFile: volume + "/pods/logs/out", encoding: .utf8), "one\n", "created inside the volume")

        // A subPath whose symlink leads out of the volume is refused (CVE-2017-1002101).
        try FileManager.default.createSymbolicLink(atPath: host + "/escape", withDestinationPath: "/etc")
        var evil = shellPod("evil", [("c", "exec sleep 30")]) {
            $0.volumeMounts = [volumeMount("config", w + "/m2", subPath: "escape")]
        }
        evil.spec!.volumes = [json(#"{"name": "config", "hostPath": {"path": "\#(host)"}}"#)]
        h.run(evil)
        h.waitUntil("refused") { ($0.status(of: "uid-evil")?.containerStatuses?[0].state?.waiting?.message ?? "").contains("outside the volume") }
        XCTAssertEqual(waiting(h, "uid-evil")?.reason, "ContainerCreating")
        XCTAssertTrue(h.podEvents("uid-evil").contains { $0.hasPrefix("FailedMount: volume \"config\": subPath \"escape\" resolves to /etc") },
                      "\(h.podEvents("uid-evil"))")
        XCTAssertEqual(h.pids("uid-evil"), [:])
        // A subPath with '..' is a spec error: not retried.
        var dots = shellPod("dots", [("c", "exec sleep 30")]) {
            $0.volumeMounts = [volumeMount("config", w + "/m3", subPath: "a/../../etc")]
        }
        dots.spec!.volumes = evil.spec!.volumes
        h.run(dots)
        XCTAssertEqual(waiting(h, "uid-dots")?.reason, "CreateContainerConfigError")
        XCTAssertEqual(waiting(h, "uid-dots")?.message, "spec.containers[\"c\"].volumeMounts[0].subPath: must not contain or start with '..' (\"a/../../etc\")")
    }

    func testAMountInsideAnotherMountLandsOnTopOfIt() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        let w = h.workDir, host = w + "/host"
        try FileManager.default.createDirectory(atPath: host, withIntermediateDirectories: true)
        try "inner\n".write(toFile: host + "/inner.txt", atomically: true, encoding: .utf8)
        // Listed child first: the agent orders mounts parents first whatever the spec's order.
        var pod = shellPod("nested", [("c", "cat \(w)/n/data/conf/inner.txt > \(w)/inner; echo outer > \(w)/n/data/outer.txt; exec sleep 30")]) {
            $0.volumeMounts = [volumeMount("conf", w + "/n/data/conf", readOnly: true), volumeMount("data", w + "/n/data")]
        }
        pod.spec!.volumes = [json(#"{"name": "data", "emptyDir": {}}"#),
                             json(#"{"name": "conf", "hostPath": {"path": "\#(host)", "type": "Directory"}}"#)]
        h.run(pod)
        h.waitUntil("Running") { $0.status(of: "uid-nested")?.phase == "Running" }
        XCTAssertEqual(h.readFile("\(w)/inner"), "inner\n")
        let volume = "\(h.dataDir)/pods/default_nested_uid-nested/volumes/kubernetes.io~empty-dir/data"
        XCTAssertEqual(h.readFile(volume + "/outer.txt"), "outer\n")
        var isDir: ObjCBool = false
        XCTAssertTrue(FileManager.default.fileExists(atPath: volume + "/conf", isDirectory: &isDir) && isDir.boolValue,
                      "the inner mount point is made inside the outer volume, as a container runtime does")
    }

    func testConfigMapProjectionWithItemsAndModes() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        let w = h.workDir, m = w + "/cfg"
        h.onLoop {
            h.agent.configContents = { ns, kind, name in
                guard ns == "default", kind == "ConfigMap", name == "settings" else { return nil }
                return ConfigContents(entries: ["a": Array("alpha".utf8), "b": Array("beta".utf8), "c": [0, 1, 2]], resourceVersion: "7")
            }
        }
        var pod = shellPod("proj", [("c", "{ cat \(m)/nested/dir/a.txt \(m)/b; echo; } > \(w)/read; exec sleep 30")]) {
            $0.volumeMounts = [volumeMount("config", m, readOnly: true), volumeMount("all", w + "/all")]
        }
        pod.spec!.volumes = [json(#"""
            {"name": "config", "configMap": {"name": "settings", "defaultMode": 416,
             "items": [{"key": "a", "path": "nested/dir/a.txt", "mode": 384}, {"key": "b", "path": "b"}]}}
            """#), json(#"{"name": "all", "configMap": {"name": "settings", "items": []}}"#)]
        h.run(pod)
        h.waitUntil("Running") { $0.status(of: "uid-proj")?.phase == "Running" }
        XCTAssertEqual(h.readFile("\(w)/read"), "alphabeta\n")
        let v = "\(h.dataDir)/pods/default_proj_uid-proj/volumes/kubernetes.io~configmap/config"
        let fm = FileManager.default
        let version = try fm.destinationOfSymbolicLink(atPath: v + "/..data")
        XCTAssertTrue(version.hasPrefix("..20"), version)
        XCTAssertEqual(try fm.destinationOfSymbolicLink(atPath: v + "/nested"), "..data/nested")
        XCTAssertEqual(try fm.destinationOfSymbolicLink(atPath: v + "/b"), "..data/b")
        XCTAssertEqual(Set(try fm.contentsOfDirectory(atPath: v)), ["..data", version, "nested", "b"], "key c is not selected")
        func mode(_ p: String) -> mode_t { var st = stat(); _ = stat(p, &st); return st.st_mode & 0o7777 }
        XCTAssertEqual(mode(v + "/nested/dir/a.txt"), 0o600, "per-item mode")
        XCTAssertEqual(mode(v + "/b"), 0o640, "defaultMode")
        let all = "\(h.dataDir)/pods/default_proj_uid-proj/volumes/kubernetes.io~configmap/all"
        XCTAssertEqual(Set(try fm.contentsOfDirectory(atPath: all).filter { !$0.hasPrefix("..") }), ["a", "b", "c"], "empty items: every key")
        XCTAssertEqual(try XCTUnwrap(fm.contents(atPath: all + "/c")), Data([0, 1, 2]), "bytes as they are")
        XCTAssertEqual(mode(all + "/a"), 0o644, "the default defaultMode")
        // Unchanged resourceVersion: no new version written.
        usleep(1_500_000)
        XCTAssertEqual(try fm.destinationOfSymbolicLink(atPath: v + "/..data"), version)
    }

    func testConfigMapUpdateSwapsDataAtomically() throws {
        let h = try NodeAgentHarness { $0.volumeCheckInterval = 0.05 }
        defer { h.finish() }
        let w = h.workDir, m = w + "/cfg"
        let lock = NSLock()
        var generation = 1
        h.onLoop {
            h.agent.configContents = { _, kind, name in
                guard kind == "ConfigMap", name == "pair" else { return nil }
                lock.lock(); defer { lock.unlock() }
                // Two keys that always change together.
                return ConfigContents(entries: ["first": Array("v\(generation)".utf8), "second": Array("v\(generation)".utf8)],
                                      resourceVersion: "\(generation)")
            }
        }
        // The reader opens both files through one resolution of ..data per round: each round must
        // see one version of both (or fail to open, when the version it entered was removed).
        let reader = "i=0; while [ ! -f \(w)/stop ] && [ $i -lt 3000 ]; do (cd \(m)/..data 2>/dev/null && echo \"$(cat first) $(cat second)\") >> \(w)/reads 2>/dev/null; i=$((i+1)); done; echo done >> \(w)/reads; exec sleep 30"
        var pod = shellPod("atomic", [("reader", reader)]) {
            $0.volumeMounts = [volumeMount("pair", m)]
        }
        pod.spec!.volumes = [json(#"{"name": "pair", "configMap": {"name": "pair"}}"#)]
        h.run(pod)
        h.waitUntil("Running") { $0.status(of: "uid-atomic")?.phase == "Running" }
        let start = Date()
        for g in 2...40 {
            lock.lock(); generation = g; lock.unlock()
            usleep(60_000)
        }
        // The last value reaches the files within a couple of check intervals.
        h.waitUntil("v40 visible") { _ in (try? String(contentsOfFile: "\(h.dataDir)/pods/default_atomic_uid-atomic/volumes/kubernetes.io~configmap/pair/first", encoding: .utf8)) == "v40" }
        let updateSeconds = Date().timeIntervalSince(start)
        _ = FileManager.default.createFile(atPath: "\(w)/stop", contents: nil)
        h.waitUntil("reader done", timeout: 10) { _ in ((try? String(contentsOfFile: "\(w)/reads", encoding: .utf8)) ?? "").hasSuffix("done\n") }
        let lines = try String(contentsOfFile: "\(w)/reads", encoding: .utf8).split(separator: "\n").dropLast()
        let pairs = lines.map { $0.split(separator: " ", omittingEmptySubsequences: false) }.filter { $0.count == 2 && !$0[0].isEmpty && !$0[1].isEmpty }
        let mixed = pairs.filter { $0[0] != $0[1] }
        XCTAssertEqual(mixed.count, 0, "a read saw two versions at once: \(mixed.prefix(5))")
        let versions = Set(pairs.map { String($0[0]) })
        XCTAssertGreaterThan(versions.count, 5, "the reader ran across many updates (\(versions.count) versions in \(pairs.count) reads, \(updateSeconds)s)")
        // Old version directories are removed: only the current one is left.
        let v = "\(h.dataDir)/pods/default_atomic_uid-atomic/volumes/kubernetes.io~configmap/pair"
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: v).filter { $0.hasPrefix("..20") }.count, 1)
    }

    func testMissingConfigMapOrSecretWaitsAndOptionalDoesNot() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        let w = h.workDir
        let lock = NSLock()
        var objects: [String: ConfigContents] = [:]
        h.onLoop {
            h.agent.configContents = { ns, kind, name in
                lock.lock(); defer { lock.unlock() }
                return objects["\(ns)/\(kind)/\(name)"]
            }
        }
        var pod = shellPod("wait", [("c", "{ cat \(w)/s/token; echo; } > \(w)/token; ls -A \(w)/o > \(w)/optional; exec sleep 30")]) {
            $0.volumeMounts = [volumeMount("creds", w + "/s"),
                               volumeMount("opt", w + "/o")]
        }
        pod.spec!.volumes = [
            json(#"{"name": "creds", "secret": {"secretName": "creds", "items": [{"key": "token", "path": "token"}]}}"#),
            json(#"{"name": "opt", "configMap": {"name": "absent", "optional": true}}"#),
        ]
        h.run(pod)
        XCTAssertEqual(waiting(h, "uid-wait")?.reason, "CreateContainerConfigError")
        XCTAssertEqual(waiting(h, "uid-wait")?.message, "secret \"creds\" not found")
        XCTAssertEqual(h.status("uid-wait")?.phase, "Pending")
        lock.lock(); objects["default/Secret/creds"] = ConfigContents(entries: ["other": [1]], resourceVersion: "1"); lock.unlock()
        h.waitUntil("missing key reported") { $0.status(of: "uid-wait")?.containerStatuses?[0].state?.waiting?.message == "couldn't find key token in Secret default/creds" }
        lock.lock(); objects["default/Secret/creds"] = ConfigContents(entries: ["token": Array("s3cret".utf8)], resourceVersion: "2"); lock.unlock()
        h.waitUntil("Running") { $0.status(of: "uid-wait")?.phase == "Running" }
        XCTAssertEqual(h.readFile("\(w)/token"), "s3cret\n")
        // An optional missing ConfigMap is an empty volume: only the atomic writer's ..data and its version.
        // (written by the container right after the token file: wait for it too)
        let listing = try XCTUnwrap(h.readFile("\(w)/optional"), "the container listed the optional volume").split(separator: "\n")
        XCTAssertEqual(listing.count, 2, "\(listing)")
        XCTAssertTrue(listing.contains("..data") && listing.allSatisfy { $0.hasPrefix("..") }, "\(listing)")
        let secrets = "\(h.dataDir)/pods/default_wait_uid-wait/volumes/kubernetes.io~secret"
        var st = stat()
        XCTAssertEqual(stat(secrets, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o700, "secret volumes live under a 0700 directory")
        XCTAssertEqual(stat(secrets + "/creds/token", &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o644, "Secret files are 0644 by default, as in Kubernetes")
        XCTAssertTrue(h.podEvents("uid-wait").contains("Failed: Error: secret \"creds\" not found"), "\(h.podEvents("uid-wait"))")
    }

    func testBadVolumeSpecsFailWithAClearMessage() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        let cases: [(String, String, String)] = [
            ("nfs", #"{"name": "share", "nfs": {"server": "x", "path": "/"}}"#,
             "spec.volumes[0] (\"share\"): unsupported volume type nfs (supported: emptyDir, hostPath, configMap, secret, persistentVolumeClaim)"),
            ("dots", #"{"name": "c", "configMap": {"name": "x", "items": [{"key": "k", "path": "../k"}]}}"#,
             "spec.volumes[0] (\"c\").configMap.items[0].path: must not contain or start with '..' (\"../k\")"),
            ("abs", #"{"name": "c", "secret": {"secretName": "x", "items": [{"key": "k", "path": "/etc/k"}]}}"#,
             "spec.volumes[0] (\"c\").secret.items[0].path: must be a relative path, not \"/etc/k\""),
            ("size", #"{"name": "e", "emptyDir": {"sizeLimit": "lots"}}"#,
             "spec.volumes[0] (\"e\").emptyDir.sizeLimit: \"lots\" is not a quantity (like 64Mi or 1G)"),
            ("type", #"{"name": "h", "hostPath": {"path": "/tmp", "type": "Weird"}}"#,
             "spec.volumes[0] (\"h\").hostPath.type: unsupported value \"Weird\" (one of DirectoryOrCreate, Directory, FileOrCreate, File, Socket, CharDevice, BlockDevice or \"\")"),
        ]
        for (name, volume, message) in cases {
            var pod = shellPod(name, [("c", "exec sleep 30")])
            pod.spec!.volumes = [json(volume)]
            h.run(pod)
            XCTAssertEqual(waiting(h, "uid-\(name)")?.reason, "CreateContainerConfigError", name)
            XCTAssertEqual(waiting(h, "uid-\(name)")?.message, message, name)
            XCTAssertEqual(h.status("uid-\(name)")?.phase, "Pending", name)
            XCTAssertEqual(h.podEvents("uid-\(name)"), ["Failed: Error: \(message)"], name)
        }
        var unknown = shellPod("nomount", [("c", "exec sleep 30")]) {
            $0.volumeMounts = [volumeMount("ghost", "/ghost")]
        }
        unknown.spec!.volumes = [json(#"{"name": "real", "emptyDir": {}}"#)]
        h.run(unknown)
        XCTAssertEqual(waiting(h, "uid-nomount")?.message, "spec.containers[\"c\"].volumeMounts[0].name: no volume \"ghost\" in spec.volumes")
        // Not retried: still no process a while later.
        usleep(400_000)
        XCTAssertEqual(h.pids("uid-nomount"), [:])
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/ghost"))
    }

    func testEmptyDirOverItsSizeLimitEvictsThePod() throws {
        let h = try NodeAgentHarness { $0.volumeCheckInterval = 0.2 }
        defer { h.finish() }
        let w = h.workDir
        var big = shellPod("big", [("c", "dd if=/dev/zero of=\(w)/big/fill bs=1024 count=2048 2>/dev/null; exec sleep 30")]) {
            $0.volumeMounts = [volumeMount("scratch", w + "/big")]
        }
        big.spec!.volumes = [json(#"{"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}}"#)]
        var small = shellPod("small", [("c", "dd if=/dev/zero of=\(w)/small/fill bs=1024 count=512 2>/dev/null; exec sleep 30")]) {
            $0.volumeMounts = [volumeMount("scratch", w + "/small")]
        }
        small.spec!.volumes = big.spec!.volumes
        h.run(big)
        h.run(small)
        h.waitUntil("evicted") { $0.status(of: "uid-big")?.phase == "Failed" }
        let s = try XCTUnwrap(h.status("uid-big"))
        XCTAssertEqual(s.reason, "Evicted")
        XCTAssertEqual(s.message, "Usage of EmptyDir volume \"scratch\" exceeds the limit \"1Mi\".")
        XCTAssertEqual(s.conditions?.first?.type, "DisruptionTarget")
        XCTAssertEqual(s.conditions?.first?.reason, "TerminationByKubelet")
        h.waitUntil("container killed") { $0.processIDs(podUID: "uid-big").isEmpty && $0.status(of: "uid-big")?.containerStatuses?[0].state?.terminated != nil }
        let t = try XCTUnwrap(h.status("uid-big")?.containerStatuses?[0].state?.terminated)
        XCTAssertEqual(t.exitCode, 137, "SIGKILL")
        XCTAssertTrue(h.podEvents("uid-big").contains("Evicted: Usage of EmptyDir volume \"scratch\" exceeds the limit \"1Mi\"."), "\(h.podEvents("uid-big"))")
        // Not restarted, though restartPolicy is Always.
        usleep(500_000)
        XCTAssertEqual(h.status("uid-big")?.containerStatuses?[0].restartCount, 0)
        XCTAssertEqual(h.pids("uid-big"), [:])
        XCTAssertEqual(h.status("uid-small")?.phase, "Running", "512 KiB stays under 1Mi")
        XCTAssertNil(h.status("uid-small")?.reason)
        // A new agent (after a crash) keeps the evicted pod Failed instead of starting it again.
        try h.startAgent()
        h.run(big)
        XCTAssertEqual(h.status("uid-big")?.phase, "Failed")
        XCTAssertEqual(h.status("uid-big")?.reason, "Evicted")
        XCTAssertEqual(h.pids("uid-big"), [:])
        h.run(small)
    }

    func testHostPathTypeChecks() throws {
        let h = try NodeAgentHarness { $0.volumeRetryInterval = 0.1 }
        defer { h.finish() }
        let w = h.workDir
        try "x".write(toFile: w + "/file", atomically: true, encoding: .utf8)
        func pod(_ name: String, path: String, type: String) -> Pod {
            var p = shellPod(name, [("c", "exec sleep 30")]) {
                $0.volumeMounts = [volumeMount("h", w + "/m-" + name)]
            }
            p.spec!.volumes = [json(#"{"name": "h", "hostPath": {"path": "\#(path)", "type": "\#(type)"}}"#)]
            return p
        }
        let failing: [(String, String, String, String)] = [
            ("nodir", w + "/absent", "Directory", "does not exist"),
            ("notdir", w + "/file", "Directory", "is not a directory"),
            ("notfile", w, "File", "is not a file"),
            ("nosock", w + "/file", "Socket", "is not a socket file"),
            ("nochar", w + "/file", "CharDevice", "is not a character device"),
            ("noblock", "/dev/null", "BlockDevice", "is not a block device"),
        ]
        for (name, path, type, why) in failing {
            h.run(pod(name, path: path, type: type))
            let message = "MountVolume.SetUp failed for volume \"h\" : hostPath type check failed: \(path) \(why)"
            XCTAssertEqual(waiting(h, "uid-\(name)")?.reason, "ContainerCreating", name)
            XCTAssertEqual(waiting(h, "uid-\(name)")?.message, message, name)
            XCTAssertEqual(h.podEvents("uid-\(name)"), ["FailedMount: \(message)"], name)
            XCTAssertEqual(h.status("uid-\(name)")?.phase, "Pending", name)
        }
        let passing: [(String, String, String)] = [
            ("dir", w, "Directory"), ("file", w + "/file", "File"), ("char", "/dev/null", "CharDevice"),
            ("mkdir", w + "/made/dir/deep", "DirectoryOrCreate"), ("touch", w + "/touched", "FileOrCreate"), ("none", w, ""),
        ]
        for (name, path, type) in passing { h.run(pod(name, path: path, type: type)) }
        for (name, _, _) in passing {
            h.waitUntil("\(name) Running") { $0.status(of: "uid-\(name)")?.phase == "Running" }
        }
        var isDir: ObjCBool = false
        XCTAssertTrue(FileManager.default.fileExists(atPath: w + "/made/dir/deep", isDirectory: &isDir) && isDir.boolValue, "with its parents")
        XCTAssertTrue(FileManager.default.fileExists(atPath: w + "/touched", isDirectory: &isDir) && !isDir.boolValue)
        // The check is retried: once the directory exists the pod starts.
        try FileManager.default.createDirectory(atPath: w + "/absent", withIntermediateDirectories: true)
        h.waitUntil("nodir Running after the directory appeared") { $0.status(of: "uid-nodir")?.phase == "Running" }
        XCTAssertEqual(h.podEvents("uid-nodir").filter { $0.hasPrefix("FailedMount") }.count, 1, "the same failure is reported once")
    }

    func testPersistentVolumeClaimThroughTheHook() throws {
        let h = try NodeAgentHarness { $0.volumeRetryInterval = 0.1 }
        defer { h.finish() }
        let w = h.workDir, claimDir = w + "/pv-0001"
        try FileManager.default.createDirectory(atPath: claimDir, withIntermediateDirectories: true)
        let lock = NSLock()
        var lookup: ClaimLookup = .missing
        var asked: [String] = []
        h.onLoop {
            h.agent.claimLookup = { ns, claim in
                lock.lock(); defer { lock.unlock() }
                asked.append("\(ns)/\(claim)")
                return lookup
            }
        }
        func counter(_ uid: String) -> Pod {
            var p = shellPod("counter", uid: uid, [("c", "n=$(cat \(w)/d/n 2>/dev/null || echo 0); echo $((n+1)) > \(w)/d/n || exit 1; exec sleep 30")]) {
                $0.volumeMounts = [volumeMount("data", w + "/d")]
            }
            p.spec!.volumes = [json(#"{"name": "data", "persistentVolumeClaim": {"claimName": "data-counter"}}"#)]
            return p
        }
        h.run(counter("uid-c1"))
        var s = try XCTUnwrap(h.status("uid-c1"))
        XCTAssertEqual(s.phase, "Pending")
        var scheduled = try XCTUnwrap(s.conditions?.first { $0.type == "PodScheduled" })
        XCTAssertEqual(scheduled.status, "False")
        XCTAssertEqual(scheduled.reason, "Unschedulable")
        XCTAssertEqual(scheduled.message, "0/1 nodes are available: persistentvolumeclaim \"data-counter\" not found.")
        XCTAssertEqual(lock.withLock { asked.first }, "default/data-counter")
        lock.withLock { lookup = .pending(reason: "waiting for a volume to be created") }
        h.waitUntil("not bound reported") {
            $0.status(of: "uid-c1")?.conditions?.first { $0.type == "PodScheduled" }?.message
                == "0/1 nodes are available: persistentvolumeclaim \"data-counter\" not bound: waiting for a volume to be created."
        }
        lock.withLock { lookup = .bound(path: claimDir, readOnly: false) }
        h.waitUntil("Running once bound") { $0.status(of: "uid-c1")?.phase == "Running" }
        s = try XCTUnwrap(h.status("uid-c1"))
        scheduled = try XCTUnwrap(s.conditions?.first { $0.type == "PodScheduled" })
        XCTAssertEqual(scheduled.status, "True")
        XCTAssertEqual(h.readFile(claimDir + "/n"), "1\n")
        XCTAssertTrue(h.podEvents("uid-c1").contains("FailedScheduling: 0/1 nodes are available: persistentvolumeclaim \"data-counter\" not found."))
        // The data outlives the pod: a new pod with the same claim counts on.
        h.stop("uid-c1", grace: 1)
        XCTAssertEqual(try String(contentsOfFile: claimDir + "/n", encoding: .utf8), "1\n")
        h.run(counter("uid-c2"))
        h.waitUntil("second pod Running") { $0.status(of: "uid-c2")?.phase == "Running" }
        h.waitUntil("counted on") { _ in (try? String(contentsOfFile: claimDir + "/n", encoding: .utf8)) == "2\n" }
        h.stop("uid-c2", grace: 1)
        // A read-only claim: the kernel refuses writes.
        lock.withLock { lookup = .bound(path: claimDir, readOnly: true) }
        var ro = counter("uid-c3")
        ro.spec!.restartPolicy = "Never"
        h.run(ro)
        h.waitUntil("read-only pod done") { $0.status(of: "uid-c3")?.phase == "Failed" }
        XCTAssertEqual(try String(contentsOfFile: claimDir + "/n", encoding: .utf8), "2\n")
        let log = try String(contentsOfFile: h.onLoop { h.agent.logPath(podUID: "uid-c3", container: "c")! }, encoding: .utf8)
        XCTAssertTrue(log.contains("Read-only file system"), log)
    }

    func testExecProbeRunsInTheContainersMountNamespace() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        let m = h.workDir + "/state"
        var pod = shellPod("probe", [("c", "touch \(m)/ready; exec sleep 30")]) {
            $0.volumeMounts = [volumeMount("state", m)]
            $0.readinessProbe = .init(exec: .init(command: ["test", "-f", m + "/ready"]), periodSeconds: 1, failureThreshold: 1)
        }
        pod.spec!.volumes = [json(#"{"name": "state", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}"#)]
        h.run(pod)
        h.waitUntil("Ready") { $0.status(of: "uid-probe")?.isReady == true }
        XCTAssertFalse(FileManager.default.fileExists(atPath: m + "/ready"), "the file exists only inside the container's mounts")
        // medium Memory: a tmpfs, mounted on the host at the volume's directory and removed with the pod.
        let volume = "\(h.dataDir)/pods/default_probe_uid-probe/volumes/kubernetes.io~empty-dir/state"
        let mounts = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        XCTAssertTrue(mounts.contains(" \(volume) ") && mounts.contains("tmpfs"), "tmpfs at \(volume)")
        h.stop("uid-probe", grace: 1)
        XCTAssertFalse(try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8).contains(volume))
        XCTAssertFalse(FileManager.default.fileExists(atPath: volume))
    }

    func testWithoutCapSysAdminAContainerGetsAUserNamespaceThatOwnsItsMounts() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        // The agent's thread (and what it forks) loses CAP_SYS_ADMIN: unshare(CLONE_NEWNS) is refused.
        XCTAssertEqual(h.onLoop { portico_thread_drop_capability(21) }, 0)
        let w = h.workDir, m = w + "/state", ro = w + "/ro", host = w + "/host"
        try FileManager.default.createDirectory(atPath: host, withIntermediateDirectories: true)
        var pod = shellPod("userns", [("c", "echo x > \(ro)/f; echo \"ro=$?\" > \(w)/result; touch \(m)/ready; exec sleep 30")]) {
            $0.volumeMounts = [volumeMount("state", m), volumeMount("host", ro, readOnly: true)]
            $0.readinessProbe = .init(exec: .init(command: ["test", "-f", m + "/ready"]), periodSeconds: 1, failureThreshold: 1)
        }
        pod.spec!.volumes = [json(#"{"name": "state", "emptyDir": {}}"#),
                             json(#"{"name": "host", "hostPath": {"path": "\#(host)"}}"#)]
        h.run(pod)
        h.waitUntil("Ready (the exec probe joins the container's namespaces)") { $0.status(of: "uid-userns")?.isReady == true }
        XCTAssertEqual(h.readFile("\(w)/result"), "ro=2\n", "the read-only remount holds in the user namespace too")
        let pid = try XCTUnwrap(h.pids("uid-userns")["c"])
        let userNS = { (p: Int32) in try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(p)/ns/user") }
        XCTAssertNotEqual(userNS(pid), userNS(getpid()), "a user namespace of its own")
        XCTAssertNotEqual(mountNamespace(pid), mountNamespace(getpid()))
        XCTAssertFalse(FileManager.default.fileExists(atPath: host + "/f"))
    }

    func testWithoutAnyMountNamespaceTheContainerFailsSayingWhy() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        // No namespaces at all on the agent's thread: unshare(2) fails with EPERM, whatever the flags.
        XCTAssertEqual(h.onLoop { portico_thread_deny_unshare() }, 0)
        let w = h.workDir
        var pod = shellPod("nons", restartPolicy: "Never", [("c", "exec sleep 30")]) {
            $0.volumeMounts = [volumeMount("state", w + "/state")]
        }
        pod.spec!.volumes = [json(#"{"name": "state", "emptyDir": {}}"#)]
        h.run(pod)
        var plain = shellPod("plain", [("c", "exec sleep 30")])
        plain.metadata.uid = "uid-plain"
        h.run(plain)
        h.waitUntil("Failed") { $0.status(of: "uid-nons")?.phase == "Failed" }
        let t = try XCTUnwrap(h.status("uid-nons")?.containerStatuses?[0].state?.terminated)
        XCTAssertEqual(t.reason, "StartError")
        let expected = "volume mounts need a private mount namespace: unshare(CLONE_NEWNS) was refused and an unprivileged user "
            + "namespace could not be used either (Operation not permitted); run the agent as root or allow user namespaces"
        XCTAssertEqual(t.message, expected)
        XCTAssertTrue(h.podEvents("uid-nons").contains("Failed: Error: failed to start container c: \(expected)"), "\(h.podEvents("uid-nons"))")
        XCTAssertEqual(h.pids("uid-nons"), [:], "no silent fallback to the host's mounts")
        h.waitUntil("a pod without mounts still runs") { $0.status(of: "uid-plain")?.phase == "Running" }
    }

    func testAfterAnAgentRestartAdoptedPodsKeepTheirMountsAndProjectedVolumesKeepSyncing() throws {
        let h = try NodeAgentHarness()
        defer { h.finish() }
        let w = h.workDir
        let lock = NSLock()
        var value = "one", version = 1
        let hook: (String, String, String) -> ConfigContents? = { _, kind, name in
            guard kind == "ConfigMap", name == "live" else { return nil }
            lock.lock(); defer { lock.unlock() }
            return ConfigContents(entries: ["value": Array(value.utf8)], resourceVersion: "\(version)")
        }
        h.onLoop { h.agent.configContents = hook }
        func pod(_ name: String) -> Pod {
            var p = shellPod(name, [("c", "echo kept > \(w)/\(name)/x/data/f; exec sleep 30")]) {
                $0.volumeMounts = [volumeMount("cfg", w + "/\(name)/x/cfg"), volumeMount("data", w + "/\(name)/x/data")]
            }
            p.spec!.volumes = [json(#"{"name": "cfg", "configMap": {"name": "live"}}"#), json(#"{"name": "data", "emptyDir": {}}"#)]
            return p
        }
        let keep = pod("keep"), gone = pod("gone")
        h.run(keep); h.run(gone)
        h.waitUntil("running") { $0.status(of: "uid-keep")?.phase == "Running" && $0.status(of: "uid-gone")?.phase == "Running" }
        let pid = try XCTUnwrap(h.pids("uid-keep")["c"])
        let orphan = try XCTUnwrap(h.pids("uid-gone")["c"])
        XCTAssertEqual(try String(contentsOfFile: "/proc/\(pid)/root\(w)/keep/x/cfg/value", encoding: .utf8), "one")

        // The agent dies without stopping anything; a new one adopts `keep` and drops `gone`.
        try h.startAgent { $0.volumeCheckInterval = 0.1 }
        h.onLoop { h.agent.configContents = hook }
        h.onLoop { h.agent.reconcile(desired: [keep]) }
        XCTAssertEqual(h.pids("uid-keep")["c"], pid, "adopted, not restarted")
        XCTAssertEqual(try String(contentsOfFile: "/proc/\(pid)/root\(w)/keep/x/data/f", encoding: .utf8), "kept\n", "its mounts are intact")
        lock.lock(); value = "two"; version = 2; lock.unlock()
        h.waitUntil("the edit reaches the adopted pod") { _ in
            (try? String(contentsOfFile: "/proc/\(pid)/root\(w)/keep/x/cfg/value", encoding: .utf8)) == "two"
        }
        h.waitUntil("the undesired pod's process is killed") { _ in !FileManager.default.fileExists(atPath: "/proc/\(orphan)") }
        h.waitUntil("and its mount points removed") { _ in !FileManager.default.fileExists(atPath: w + "/gone") }
        XCTAssertTrue(FileManager.default.fileExists(atPath: w + "/keep/x/cfg"))
        h.stop("uid-keep")
        XCTAssertFalse(FileManager.default.fileExists(atPath: w + "/keep"), "mount points recorded by the earlier agent are removed")
    }

    func testQuantities() {
        XCTAssertEqual(Quantity.bytes("1Mi"), 1 << 20)
        XCTAssertEqual(Quantity.bytes("64Ki"), 64 << 10)
        XCTAssertEqual(Quantity.bytes("1G"), 1_000_000_000)
        XCTAssertEqual(Quantity.bytes("1.5Gi"), 3 << 29)
        XCTAssertEqual(Quantity.bytes("129e6"), 129_000_000)
        XCTAssertEqual(Quantity.bytes("128974848"), 128_974_848)
        XCTAssertEqual(Quantity.bytes("500m"), 1, "milli-bytes round up")
        XCTAssertNil(Quantity.bytes("lots"))
        XCTAssertNil(Quantity.bytes("-1Mi"))
        XCTAssertNil(Quantity.bytes("Mi"))
    }
}

/// The controllers' side of the seam: ConfigMap and Secret bytes for projected volumes.
final class ControllerConfigContentsTests: XCTestCase {
    func testConfigMapAndSecretBytesWithTheirResourceVersion() throws {
        let h = try ControllerHarness()
        defer { h.finish() }
        try h.apply(.configMaps, #"{"metadata":{"name":"cfg"},"data":{"text":"héllo\n"},"binaryData":{"blob":"AAEC/w=="}}"#)
        try h.apply(.secrets, #"{"metadata":{"name":"sec"},"data":{"token":"czNjcmV0","bin":"/wA="},"stringData":{"plain":"p"}}"#)
        let cm = try XCTUnwrap(h.onLoop { h.manager.configContents(namespace: "default", kind: "ConfigMap", name: "cfg") })
        XCTAssertEqual(cm.entries, ["text": Array("héllo\n".utf8), "blob": [0, 1, 2, 255]])
        XCTAssertEqual(cm.resourceVersion, h.get(.configMaps, "cfg")?.resourceVersion)
        XCTAssertFalse(cm.resourceVersion.isEmpty)
        let sec = try XCTUnwrap(h.onLoop { h.manager.configContents(namespace: "default", kind: "Secret", name: "sec") })
        XCTAssertEqual(sec.entries["token"], Array("s3cret".utf8))
        XCTAssertEqual(sec.entries["bin"], [255, 0], "binary Secret values stay bytes")
        XCTAssertEqual(sec.entries["plain"], Array("p".utf8))
        XCTAssertNil(h.onLoop { h.manager.configContents(namespace: "default", kind: "Secret", name: "missing") })
        XCTAssertNil(h.onLoop { h.manager.configContents(namespace: "other", kind: "ConfigMap", name: "cfg") })
        // An edit changes the resourceVersion the agent compares.
        try h.edit(.configMaps, "cfg") { $0["data"] = .object(["text": .string("bye")]) }
        let edited = try XCTUnwrap(h.onLoop { h.manager.configContents(namespace: "default", kind: "ConfigMap", name: "cfg") })
        XCTAssertNotEqual(edited.resourceVersion, cm.resourceVersion)
        XCTAssertEqual(edited.entries["text"], Array("bye".utf8))
    }
}
