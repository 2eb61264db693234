// Secrets end to end with the real binary and the real kubectl (issue 6): stringData is
// write-only, data comes back base64, nothing under the data directory holds the value in clear,
// invalid Secrets get Kubernetes' 422 messages (from kubectl and from `serve -f`), and
// `portico encryption rotate` re-encrypts what a later server reads back.

import Foundation
import Glibc
import XCTest

final class SecretTests: ControlPlaneTestCase {
    /// The value no file, log line or error message may contain.
    let value = "PorticoIntegrationSecret-d41d8cd98f"
    var base64: String { Data(value.utf8).base64EncodedString() }

    /// A manifest for `-f` (serve needs one); nothing in it is secret.
    func placeholder() throws -> String {
        try fx.dir.write("placeholder.yaml", """
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: placeholder
            data:
              greeting: hello
            """)
    }

    func secretYAML(_ name: String, stringData: [String: String], type: String? = nil) -> String {
        var text = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: \(name)\n"
        if let type { text += "type: \(type)\n" }
        text += "stringData:\n" + stringData.sorted { $0.key < $1.key }.map { "  \"\($0.key)\": \"\($0.value)\"\n" }.joined()
        return text
    }

    /// `grep -r -c -a NEEDLE DIR`: the files under `dir` that contain `needle`, with their counts.
    func grepCounts(_ needle: String, in dir: String) throws -> (files: Int, matches: [String]) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/grep")
        p.arguments = ["-r", "-c", "-a", "-F", needle, dir]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        let lines = text.split(separator: "\n").map(String.init)
        return (lines.count, lines.filter { !$0.hasSuffix(":0") })
    }

    func testAppliedStringDataIsReturnedAsBase64AndStoredEncrypted() throws {
        let (s, k) = try start([try placeholder()])
        let data = fx.dir.file("serve.data")
        let file = try fx.dir.write("secret.yaml", secretYAML("db-credentials", stringData: ["password": value, "user": "admin"]))
        let applied = try k.ok(["apply", "-f", file])
        XCTAssertTrue(applied.stdout.contains("secret/db-credentials created"), applied.stdout)

        let o = try k.json(["secret", "db-credentials"])
        XCTAssertNil(o["stringData"], "stringData is write-only: \(o.keys.sorted())")
        XCTAssertEqual(o["type"] as? String, "Opaque")
        let returned = o["data"] as? [String: String] ?? [:]
        XCTAssertEqual(returned["password"], base64)
        XCTAssertEqual(returned["user"], Data("admin".utf8).base64EncodedString())

        // A second apply with a changed value goes through kubectl's patch and merges too.
        try fx.dir.write("secret.yaml", secretYAML("db-credentials", stringData: ["password": value + "-v2", "user": "admin"]))
        try k.ok(["apply", "-f", file])
        let updated = try k.json(["secret", "db-credentials"])
        XCTAssertNil(updated["stringData"])
        XCTAssertEqual((updated["data"] as? [String: String])?["password"], Data((value + "-v2").utf8).base64EncodedString())

        // Nothing under the data directory (store, WAL, key file, node state) holds the value,
        // in clear or base64, although the store, its WAL and kubectl's annotation carry it.
        XCTAssertTrue(FileManager.default.fileExists(atPath: data + "/store/store.db-wal"), "the server keeps a WAL")
        for needle in [value, base64, String(base64.prefix(24))] {
            let g = try grepCounts(needle, in: data)
            XCTAssertGreaterThan(g.files, 2, "grep looked at the store files")
            XCTAssertEqual(g.matches, [], "files under \(data) containing \(needle)")
        }
        XCTAssertFalse(try grepCounts("greeting", in: data).matches.isEmpty, "control: the ConfigMap (not encrypted) is found by the same grep")
        var st = stat()
        XCTAssertEqual(stat(data + "/store/encryption-keys", &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600, "key file mode")

        // `describe` shows sizes, as kubectl does, never values.
        let d = try runCLI(["describe", "secret", "db-credentials", "--server", k.server])
        XCTAssertEqual(d.status, 0, d.stderr)
        XCTAssertTrue(d.stdout.contains("password:  \(value.utf8.count + 3) bytes"), d.stdout)
        XCTAssertFalse(d.stdout.contains(Data((value + "-v2").utf8).base64EncodedString()) || d.stdout.contains(value), d.stdout)

        XCTAssertFalse(s.process.stderr.contains(value), "the server log has no secret value")
        XCTAssertFalse(s.process.stderr.contains(base64), "the server log has no secret value")
    }

    func testInvalidSecretsAreRejectedWithKubernetesMessages() throws {
        let (s, k) = try start([try placeholder()])
        let bad = try fx.dir.write("bad.yaml", secretYAML("bad", stringData: ["bad key": value]))
        let r = try k.run(["apply", "-f", bad])
        XCTAssertNotEqual(r.exitCode, 0)
        XCTAssertTrue(r.stderr.contains(#"The Secret "bad" is invalid: data[bad key]: Invalid value: "bad key": a valid config key must consist of alphanumeric characters, '-', '_' or '.'"#),
                      r.stderr)
        XCTAssertFalse(r.stderr.contains(value), "the value is not echoed: \(r.stderr)")

        let tls = try fx.dir.write("tls.yaml", secretYAML("cert", stringData: ["tls.crt": value], type: "kubernetes.io/tls"))
        let t = try k.run(["apply", "-f", tls])
        XCTAssertNotEqual(t.exitCode, 0)
        XCTAssertTrue(t.stderr.contains(#"The Secret "cert" is invalid: data[tls.key]: Required value"#), t.stderr)

        let base64 = try fx.dir.write("b64.yaml", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: b64\ndata:\n  token: \"\(value)!\"\n")
        let b = try k.run(["apply", "-f", base64])
        XCTAssertNotEqual(b.exitCode, 0)
        XCTAssertTrue(b.stderr.contains("data[token]: Invalid value: \"<secret contents redacted>\": illegal base64 data"), b.stderr)
        XCTAssertFalse(b.stderr.contains(value), b.stderr)

        // Over 1 MiB of (decoded) data: Kubernetes' limit, reported on `data`.
        let big = Data(repeating: 0x41, count: (1 << 20) + 1).base64EncodedString()
        let large = try fx.dir.write("large.yaml", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: large\ndata:\n  blob: \(big)\n")
        let l = try k.run(["create", "-f", large])
        XCTAssertNotEqual(l.exitCode, 0)
        XCTAssertTrue(l.stderr.contains(#"The Secret "large" is invalid: data: Too long: must have at most 1048576 bytes"#), String(l.stderr.prefix(500)))

        // Immutable: a later change of the data is refused.
        let frozen = try fx.dir.write("frozen.yaml", secretYAML("frozen", stringData: ["k": "one"]) + "immutable: true\n")
        try k.ok(["apply", "-f", frozen])
        try fx.dir.write("frozen.yaml", secretYAML("frozen", stringData: ["k": "two"]) + "immutable: true\n")
        let f = try k.run(["apply", "-f", frozen])
        XCTAssertNotEqual(f.exitCode, 0)
        XCTAssertTrue(f.stderr.contains("data: Forbidden: field is immutable when `immutable` is set"), f.stderr)

        XCTAssertEqual(try k.run(["get", "secret", "bad"]).exitCode, 1, "nothing was stored")
        XCTAssertFalse(s.process.stderr.contains(value), "the server log has no secret value")
    }

    /// `serve -f` with an invalid Secret: the server does not start, and says which file and field.
    func testServeRejectsAnInvalidSecretFileNamingFileAndField() throws {
        let file = try fx.dir.write("auth.yaml", secretYAML("auth", stringData: ["other": value], type: "kubernetes.io/basic-auth"))
        let r = try runCLI(["serve", "-f", file, "--http", "127.0.0.1:0", "--https", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                            "--api", "127.0.0.1:0", "--workers", "1", "--data", fx.dir.file("bad.data")], timeout: 30)
        XCTAssertEqual(r.status, 1, r.stderr)
        let errors = r.stderr.split(separator: "\n").filter { $0.contains(" error ") }
        XCTAssertEqual(errors.count, 1, "one error line: \(r.stderr)")
        XCTAssertTrue(errors.first?.contains(file) == true, r.stderr)
        XCTAssertTrue(errors.first?.contains("data[username]: Required value") == true, r.stderr)
        XCTAssertFalse(r.stderr.contains(value), r.stderr)
    }

    /// Rotation while the server runs waits for its next start; with the server stopped it
    /// re-encrypts at once; old keys can then go; without the sealing key the server refuses to
    /// start, naming the key and the Secret.
    func testRotationAndAMissingKeyEndToEnd() throws {
        let manifest = try placeholder()
        var (s, k) = try start([manifest])
        let data = fx.dir.file("serve.data")
        let keyFile = data + "/store/encryption-keys"
        let file = try fx.dir.write("secret.yaml", secretYAML("api-token", stringData: ["token": value]))
        try k.ok(["apply", "-f", file])

        let online = try runCLI(["encryption", "rotate", "--data", data])
        XCTAssertEqual(online.status, 0, online.stderr)
        XCTAssertTrue(online.stdout.contains("new key key2 encrypts from now on (keys: key2, key1)"), online.stdout)
        XCTAssertTrue(online.stdout.contains("the store is in use"), online.stdout)
        var status = try runCLI(["encryption", "status", "--data", data])
        XCTAssertTrue(status.stdout.contains("key2\t0\t(encrypts)") && status.stdout.contains("key1\t1"), status.stdout)
        s.stop()

        // The next start re-encrypts with key2.
        (s, k) = try start([manifest])
        s.stop()
        status = try runCLI(["encryption", "status", "--data", data])
        XCTAssertTrue(status.stdout.contains("key2\t1\t(encrypts)") && status.stdout.contains("key1\t0"), status.stdout)

        // Stopped: rotation re-encrypts at once.
        let offline = try runCLI(["encryption", "rotate", "--data", data])
        XCTAssertEqual(offline.status, 0, offline.stderr)
        XCTAssertTrue(offline.stdout.contains("re-encrypted 1 Secret(s) with key3"), offline.stdout)
        status = try runCLI(["encryption", "status", "--data", data])
        XCTAssertTrue(status.stdout.contains("key3\t1\t(encrypts)") && status.stdout.contains("key2\t0"), status.stdout)

        // Remove the unused keys and start again on the same data directory.
        let lines = try String(contentsOfFile: keyFile, encoding: .utf8).split(separator: "\n")
            .filter { !$0.hasPrefix("key1:") && !$0.hasPrefix("key2:") }
        try (lines.joined(separator: "\n") + "\n").write(toFile: keyFile, atomically: false, encoding: .utf8)
        (s, k) = try start([manifest])
        let o = try k.json(["secret", "api-token"])
        XCTAssertEqual((o["data"] as? [String: String])?["token"], base64)
        s.stop()
        for needle in [value, base64] { XCTAssertEqual(try grepCounts(needle, in: data).matches, []) }

        // A key file without key3: the store cannot be opened, and the error says why.
        try "other:\(Data(repeating: 7, count: 32).base64EncodedString())\n".write(toFile: keyFile, atomically: false, encoding: .utf8)
        let r = try runCLI(["serve", "-f", manifest, "--http", "127.0.0.1:0", "--https", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                            "--api", "127.0.0.1:0", "--workers", "1", "--data", data], timeout: 30)
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("secrets default/api-token is encrypted with key \"key3\", which is not in \(keyFile)"), r.stderr)
        XCTAssertFalse(r.stderr.contains("Fatal error"), r.stderr)
        XCTAssertFalse(r.stderr.contains(value), r.stderr)
    }
}
