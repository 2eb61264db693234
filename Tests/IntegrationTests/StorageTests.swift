import Foundation
import XCTest

/// Storage through the real server and the real kubectl: a claim applied is provisioned by the
/// default class (`local-path`, `portico.io/local`) under `<data>/volumes`, shown by `get pv,pvc,sc`
/// and `describe pvc`, and deleting it removes its directory (reclaimPolicy Delete).
final class StorageTests: ControlPlaneTestCase {
    func testKubectlApplyPVCIsProvisionedBoundAndDeletedWithItsDirectory() throws {
        let empty = fx.dir.file("manifests")
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        let (_, k) = try start([empty])
        let claim = "data-" + String((0..<5).map { _ in "abcdefghijklmnopqrstuvwxyz".randomElement()! })
        let file = try fx.dir.write("pvc.yaml", """
            apiVersion: v1
            kind: PersistentVolumeClaim
            metadata:
              name: \(claim)
            spec:
              accessModes: [ReadWriteOnce]
              resources:
                requests:
                  storage: 256Mi
            """)
        let applied = try k.ok(["apply", "-f", file])
        XCTAssertTrue(applied.stdout.contains("persistentvolumeclaim/\(claim) created"), applied.stdout)
        var phase = ""
        let bound = try waitUntil(timeout: 15, interval: 0.1) {
            phase = try k.ok(["get", "pvc", claim, "-o", "jsonpath={.status.phase}"]).stdout
            return phase == "Bound"
        }
        XCTAssertTrue(bound, "the claim is Bound, not \(phase)")
        let uid = try k.ok(["get", "pvc", claim, "-o", "jsonpath={.metadata.uid}"]).stdout
        let pvName = "pvc-\(uid)"
        let directory = ((fx.dir.file("serve.data") + "/volumes/\(pvName)") as NSString).standardizingPath
        var isDir: ObjCBool = false
        XCTAssertTrue(FileManager.default.fileExists(atPath: directory, isDirectory: &isDir) && isDir.boolValue, "\(directory) exists")

        let listed = try k.ok(["get", "pv,pvc,sc"]).stdout
        let rows = listed.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        XCTAssertTrue(rows.contains { $0.prefix(7) == ["persistentvolume/\(pvName)", "256Mi", "RWO", "Delete", "Bound", "default/\(claim)", "local-path"] },
                      listed)
        XCTAssertTrue(rows.contains { $0.prefix(6) == ["persistentvolumeclaim/\(claim)", "Bound", pvName, "256Mi", "RWO", "local-path"] }, listed)
        XCTAssertTrue(rows.contains { $0.prefix(6) == ["storageclass.storage.k8s.io/local-path", "(default)", "portico.io/local", "Delete", "Immediate", "true"] },
                      listed)

        let described = try k.ok(["describe", "pvc", claim]).stdout
        for line in ["Status:        Bound", "Volume:        \(pvName)", "StorageClass:  local-path", "Finalizers:    [kubernetes.io/pvc-protection]",
                     "ProvisioningSucceeded"] {
            XCTAssertTrue(described.contains(line), "describe pvc shows \(line):\n\(described)")
        }
        let describedPV = try k.ok(["describe", "pv", pvName]).stdout
        XCTAssertTrue(describedPV.contains("Path:          \(directory)\n"), describedPV)

        // Bad input: the field is named, and nothing is stored.
        let bad = try fx.dir.write("bad.yaml", """
            apiVersion: v1
            kind: PersistentVolumeClaim
            metadata:
              name: bad
            spec:
              accessModes: [ReadWriteEverywhere]
              resources:
                requests:
                  storage: 1Gi
            """)
        let refused = try k.run(["apply", "-f", bad])
        XCTAssertNotEqual(refused.exitCode, 0)
        XCTAssertTrue(refused.stderr.contains(#"spec.accessModes: Unsupported value: "ReadWriteEverywhere""#), refused.stderr)

        try FileManager.default.createDirectory(atPath: directory + "/sub", withIntermediateDirectories: true)
        try "x".write(toFile: directory + "/sub/file", atomically: false, encoding: .utf8)
        let deleted = try k.ok(["delete", "pvc", claim, "--timeout=20s"], timeout: 30)
        XCTAssertTrue(deleted.stdout.contains("persistentvolumeclaim \"\(claim)\" deleted"), deleted.stdout)
        let gone = try waitUntil(timeout: 15, interval: 0.1) {
            try !FileManager.default.fileExists(atPath: directory) && k.run(["get", "pv", pvName]).exitCode == 1
        }
        XCTAssertTrue(gone, "the volume and its directory are deleted with the claim")
        XCTAssertEqual(try k.run(["get", "pvc", claim]).exitCode, 1)
    }

    /// A claim from a `-f` file, edited in the file after it was bound: the reload keeps what
    /// binding set (volumeName, the defaulted class, the protection finalizer) instead of failing
    /// on PVC spec immutability or unbinding it.
    func testEditingAManifestFileKeepsTheClaimBound() throws {
        let dir = fx.dir.file("manifests")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        func claim(_ label: String) -> String {
            """
            apiVersion: v1
            kind: PersistentVolumeClaim
            metadata:
              name: kept
              labels: {edit: "\(label)"}
            spec:
              accessModes: [ReadWriteOnce]
              resources: {requests: {storage: 1Mi}}
            """
        }
        let file = dir + "/pvc.yaml"
        try claim("one").write(toFile: file, atomically: true, encoding: .utf8)
        let (server, k) = try start([dir])
        func state() throws -> String {
            try k.ok(["get", "pvc", "kept", "-o", "jsonpath={.status.phase} {.spec.volumeName} {.metadata.labels.edit}"]).stdout
        }
        var first = ""
        XCTAssertTrue(try waitUntil(timeout: 15, interval: 0.1) { first = try state(); return first.hasPrefix("Bound pvc-") }, first)
        let volume = first.split(separator: " ")[1]
        let tmp = file + ".tmp"
        try claim("two").write(toFile: tmp, atomically: false, encoding: .utf8)
        XCTAssertEqual(rename(tmp, file), 0)
        var now = ""
        XCTAssertTrue(try waitUntil(timeout: 10, interval: 0.1) { now = try state(); return now.hasSuffix(" two") },
                      "the edit is applied: \(now)\n\(server.process.stderrTail())")
        XCTAssertEqual(now, "Bound \(volume) two")
        XCTAssertFalse(server.process.stderr.contains("immutable"), server.process.stderrTail())
    }
}
