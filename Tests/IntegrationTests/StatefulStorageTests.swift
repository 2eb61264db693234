// End to end: a StatefulSet's volumeClaimTemplates give each ordinal its own claim, bound by the
// local provisioner and mounted at the same mountPath in every pod; the data outlives the pod and
// a scale-down, and comes back to the same ordinal (Kubernetes' StatefulSet stable storage).

import Foundation
import Glibc
import XCTest

final class StatefulStorageTests: ControlPlaneTestCase {
    /// Each pod writes `<pod> <nanoseconds>` to /…/data/id on its first start only, and prints the
    /// file's contents (what it sees through its mount) before it serves.
    static func statefulSet(_ n: CPNames, replicas: Int, mountPath: String) -> String {
        """
        apiVersion: apps/v1
        kind: StatefulSet
        metadata:
          name: \(n.app)
        spec:
          serviceName: \(n.app)
          replicas: \(replicas)
          selector:
            matchLabels: {app: \(n.app)}
          template:
            metadata:
              labels: {app: \(n.app)}
            spec:
              terminationGracePeriodSeconds: 5
              containers:
                - name: app
                  image: portico/echo:test
                  command:
                    - sh
                    - -c
                    - |
                      f=\(mountPath)/id
                      [ -f "$f" ] || echo "$POD_NAME `date +%s%N`" > "$f"
                      echo "sees: `cat $f`"
                      exec portico echo --listen "$POD_IP:\(n.port)" --name "$POD_NAME"
                  env:
                    - name: POD_NAME
                      valueFrom: {fieldRef: {fieldPath: metadata.name}}
                    - name: POD_IP
                      valueFrom: {fieldRef: {fieldPath: status.podIP}}
                  ports: [{name: http, containerPort: \(n.port)}]
                  readinessProbe:
                    httpGet: {path: /, port: http}
                    periodSeconds: 1
                  volumeMounts:
                    - {name: data, mountPath: \(mountPath)}
          volumeClaimTemplates:
            - metadata: {name: data}
              spec:
                accessModes: [ReadWriteOnce]
                resources: {requests: {storage: 16Mi}}

        """
    }

    /// What the pod's container printed about the file it sees at start (latest start).
    func sees(_ k: Kubectl, _ pod: String) throws -> String? {
        let out = try k.run(["logs", pod]).stdout
        return out.split(separator: "\n").last { $0.hasPrefix("sees: ") }.map { String($0.dropFirst(6)) }
    }

    func testClaimPerOrdinalSurvivesPodDeletionAndScaleDown() throws {
        let n = names("sts-data")
        let mountPath = fx.dir.file("mnt-\(n.app)") + "/data"
        let m = try fx.dir.write("sts.yaml", Manifest.join([Self.statefulSet(n, replicas: 3, mountPath: mountPath), CPManifest.service(n, headless: true)]))
        let (_, k) = try start([m])
        try waitForReady(k, n.app, count: 3, timeout: 60)

        // One claim per ordinal, Bound, named TEMPLATE-STS-ORDINAL.
        var firstSeen: [String: String] = [:]
        var claimUIDs: [String: String] = [:]
        for i in 0..<3 {
            let pod = "\(n.app)-\(i)"
            let claim = try k.json(["pvc", "data-\(pod)"])
            XCTAssertEqual((claim["status"] as? [String: Any])?["phase"] as? String, "Bound", "claim data-\(pod)")
            claimUIDs[pod] = (claim["metadata"] as? [String: Any])?["uid"] as? String
            var seen: String?
            XCTAssertTrue(try waitUntil(timeout: 10, interval: 0.2) { seen = try sees(k, pod); return seen != nil }, "\(pod) printed what it sees")
            XCTAssertTrue(seen?.hasPrefix(pod + " ") == true, "\(pod) sees its own file, not another ordinal's: \(seen ?? "nil")")
            firstSeen[pod] = seen
        }
        XCTAssertEqual(Set(firstSeen.values).count, 3, "three pods, three volumes")
        // The mount point itself is not where the data went: the host's directory stays empty.
        XCTAssertFalse(FileManager.default.fileExists(atPath: mountPath + "/id"), "data written through a mount, not to the host path")

        // A deleted pod comes back with the same name and the same data.
        let pod1 = "\(n.app)-1"
        let oldUID = try k.json(["pod", pod1])["metadata"].flatMap { ($0 as? [String: Any])?["uid"] as? String }
        try k.ok(["delete", "pod", pod1, "--wait=false"])
        XCTAssertTrue(try waitUntil(timeout: 40, interval: 0.3) {
            let p = try k.pods("app=\(n.app)").first { $0.name == pod1 }
            return p != nil && p!.uid != oldUID && p!.ready
        }, "\(pod1) recreated and Ready")
        XCTAssertTrue(try waitUntil(timeout: 10, interval: 0.2) { try sees(k, pod1) == firstSeen[pod1] }, "\(pod1) sees its old data after recreation")

        // Scale 3 → 1 → 3: the claims stay, and ordinal 2 gets its own data back.
        try k.ok(["scale", "statefulset", n.app, "--replicas=1"])
        try waitForReady(k, n.app, count: 1, timeout: 60)
        for i in 1..<3 {
            let claim = try k.json(["pvc", "data-\(n.app)-\(i)"])
            XCTAssertEqual((claim["metadata"] as? [String: Any])?["uid"] as? String, claimUIDs["\(n.app)-\(i)"], "claim of ordinal \(i) kept on scale-down")
        }
        try k.ok(["scale", "statefulset", n.app, "--replicas=3"])
        try waitForReady(k, n.app, count: 3, timeout: 60)
        let pod2 = "\(n.app)-2"
        var seen2: String?
        XCTAssertTrue(try waitUntil(timeout: 10, interval: 0.2) { seen2 = try sees(k, pod2); return seen2 == firstSeen[pod2] },
                      "ordinal 2 sees its old data after 3→1→3: \(seen2 ?? "nil") vs \(firstSeen[pod2] ?? "nil")")
        let claim2 = try k.json(["pvc", "data-\(pod2)"])
        XCTAssertEqual((claim2["metadata"] as? [String: Any])?["uid"] as? String, claimUIDs[pod2], "the same claim, not a new one")
    }
}
