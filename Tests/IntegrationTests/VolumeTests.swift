// End to end: ConfigMap and Secret volumes through the real server, kubectl and the pod's own
// mount namespace (read through /proc/<pid>/root, which resolves paths in the process's mounts).

import Foundation
import Glibc
import XCTest

final class VolumeTests: ControlPlaneTestCase {

    private func configMap(_ n: CPNames, greeting: String) -> String {
        """
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: \(n.app)-cfg
        data:
          greeting: \(greeting)
          colour: blue
        """
    }

    private func deployment(_ n: CPNames, mountPath: String) -> String {
        """
        apiVersion: v1
        kind: Secret
        metadata:
          name: \(n.app)-sec
        type: Opaque
        data:
          token: czNjcmV0
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: \(n.app)
        spec:
          replicas: 1
          selector:
            matchLabels: {app: \(n.app)}
          template:
            metadata:
              labels: {app: \(n.app)}
            spec:
              terminationGracePeriodSeconds: 5
              volumes:
                - name: config
                  configMap:
                    name: \(n.app)-cfg
                    items: [{key: greeting, path: greeting}]
                - name: creds
                  secret: {secretName: \(n.app)-sec}
              containers:
                - name: echo
                  command: ["portico", "echo", "--listen", "$(POD_IP):\(n.port)", "--name", "$(POD_NAME)"]
                  env:
                    - name: POD_NAME
                      valueFrom: {fieldRef: {fieldPath: metadata.name}}
                    - name: POD_IP
                      valueFrom: {fieldRef: {fieldPath: status.podIP}}
                    - name: GREETING
                      valueFrom: {configMapKeyRef: {name: \(n.app)-cfg, key: greeting}}
                  volumeMounts:
                    - {name: config, mountPath: \(mountPath)/config, readOnly: true}
                    - {name: creds, mountPath: \(mountPath)/creds, readOnly: true}
                  ports: [{name: http, containerPort: \(n.port)}]
                  readinessProbe:
                    httpGet: {path: /, port: http}
                    periodSeconds: 1
        """
    }

    /// The one pod process of the app (its pid), once exactly one runs.
    private func podProcess(_ n: CPNames) throws -> Int32 {
        var found: [(pid: Int32, pod: String)] = []
        let ok = waitUntil(timeout: 30, interval: 0.1) {
            found = PodProcesses.echoes(prefix: n.app + "-")
            return found.count == 1
        }
        guard ok else { throw HarnessError("\(n.app): wanted one pod process, have \(found)") }
        return found[0].pid
    }

    private func file(_ pid: Int32, _ path: String) -> String? {
        try? String(contentsOfFile: "/proc/\(pid)/root\(path)", encoding: .utf8)
    }

    private func environment(_ pid: Int32) -> [String] {
        guard let d = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return [] }
        return d.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    /// A ConfigMap value reaches a mounted file and an env var; `kubectl apply` of an edit
    /// changes the file within seconds but not the env var, until `rollout restart`.
    func testConfigMapEditReachesTheFileAtOnceAndTheEnvironmentAfterRolloutRestart() throws {
        let n = names("vol")
        let mountPath = fx.dir.file("mnt-\(n.app)")
        let cm = try fx.dir.write("cm.yaml", configMap(n, greeting: "hello"))
        let app = try fx.dir.write("app.yaml", deployment(n, mountPath: mountPath))
        let (s, k) = try start([cm, app])
        try waitForReady(k, n.app, count: 1)
        let pid = try podProcess(n)

        XCTAssertEqual(file(pid, mountPath + "/config/greeting"), "hello")
        XCTAssertNil(file(pid, mountPath + "/config/colour"), "items select the keys")
        XCTAssertEqual(file(pid, mountPath + "/creds/token"), "s3cret", "Secret data decoded from base64")
        XCTAssertTrue(environment(pid).contains("GREETING=hello"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: mountPath + "/config"), [],
                       "the mount exists only in the pod's mount namespace")
        // Writes are refused: the mount is read-only.
        let write = open("/proc/\(pid)/root\(mountPath)/config/new", O_WRONLY | O_CREAT, 0o644)
        let writeErrno = errno
        if write >= 0 { close(write) }
        XCTAssertEqual(write, -1)
        XCTAssertEqual(writeErrno, EROFS, "read-only bind mount: \(String(cString: strerror(writeErrno)))")

        // Edit the ConfigMap with kubectl apply: the file follows within seconds.
        try fx.dir.write("cm.yaml", configMap(n, greeting: "bonjour"))
        let edited = Date()
        try k.ok(["apply", "-f", cm])
        let updated = waitUntil(timeout: 15, interval: 0.05) { self.file(pid, mountPath + "/config/greeting") == "bonjour" }
        let seconds = Date().timeIntervalSince(edited)
        XCTAssertTrue(updated, "the mounted file shows the edit within 15 s: \(file(pid, mountPath + "/config/greeting") ?? "nil")")
        print("configmap edit visible in the pod's file after \(String(format: "%.2f", seconds)) s")
        XCTAssertEqual(PodProcesses.echoes(prefix: n.app + "-").map(\.pid), [pid], "the same process: no restart")
        XCTAssertTrue(environment(pid).contains("GREETING=hello"), "the environment is fixed at start")

        // rollout restart replaces the pod; the new one starts with the new value.
        let restart = try runCLI(["rollout", "restart", "deployment/\(n.app)", "--server", "http://127.0.0.1:\(try s.apiPort())"])
        XCTAssertEqual(restart.status, 0, restart.stderr)
        XCTAssertEqual(restart.stdout, "deployment.apps/\(n.app) restarted\n")
        var newPid: Int32 = 0
        let replaced = waitUntil(timeout: 30, interval: 0.1) {
            let procs = PodProcesses.echoes(prefix: n.app + "-")
            guard procs.count == 1, procs[0].pid != pid else { return false }
            newPid = procs[0].pid
            return true
        }
        XCTAssertTrue(replaced, "a new pod process replaces the old one: \(PodProcesses.echoes(prefix: n.app + "-"))")
        try waitForReady(k, n.app, count: 1)
        XCTAssertTrue(environment(newPid).contains("GREETING=bonjour"), "\(environment(newPid).filter { $0.hasPrefix("GREETING") })")
        XCTAssertEqual(file(newPid, mountPath + "/config/greeting"), "bonjour")
        // The old pod's mount points on the host are gone only when no pod uses them; the new pod does.
        XCTAssertTrue(FileManager.default.fileExists(atPath: mountPath + "/config"))
    }
}
