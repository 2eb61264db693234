import Foundation
import XCTest
import Objects
@testable import ControlPlane

/// Secrets and ConfigMaps in the store: Kubernetes' write semantics (stringData, type, immutable),
/// its validation messages, and encryption at rest (issue 6).
final class SecretStoreTests: XCTestCase {
    private var dir: String!
    private var store: Store!
    /// A value that must never appear on disk or in a message.
    private let secretValue = "PorticoTopSecret-7f3a9c1e-hunter2"
    private var secretBase64: String { Data(secretValue.utf8).base64EncodedString() }

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "portico-secrets-\(UUID().uuidString)"
        store = try Store(directory: dir)
    }

    override func tearDownWithError() throws {
        store?.close()
        store = nil
        try? FileManager.default.removeItem(atPath: dir)
    }

    private func secret(_ name: String, type: String? = nil, data: [String: String] = [:], stringData: [String: String]? = nil,
                        immutable: Bool? = nil) -> JSONValue {
        var o: JSONValue = .object(["apiVersion": .string("v1"), "kind": .string("Secret"),
                                    "metadata": .object(["name": .string(name)])])
        if let type { o["type"] = .string(type) }
        if !data.isEmpty { o["data"] = .object(data.mapValues { .string($0) }) }
        if let stringData { o["stringData"] = .object(stringData.mapValues { .string($0) }) }
        if let immutable { o["immutable"] = .bool(immutable) }
        return o
    }

    private func configMap(_ name: String, data: [String: String] = [:], binaryData: [String: String] = [:], immutable: Bool? = nil) -> JSONValue {
        var o: JSONValue = .object(["apiVersion": .string("v1"), "kind": .string("ConfigMap"),
                                    "metadata": .object(["name": .string(name)])])
        if !data.isEmpty { o["data"] = .object(data.mapValues { .string($0) }) }
        if !binaryData.isEmpty { o["binaryData"] = .object(binaryData.mapValues { .string($0) }) }
        if let immutable { o["immutable"] = .bool(immutable) }
        return o
    }

    private func b64(_ s: String) -> String { Data(s.utf8).base64EncodedString() }

    /// The Invalid error of `body`, or a failure.
    private func invalid(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> StoreError? {
        do {
            try body()
            XCTFail("expected a 422 Invalid error", file: file, line: line)
            return nil
        } catch let e as StoreError {
            XCTAssertEqual(e.code, 422, "\(e)", file: file, line: line)
            XCTAssertEqual(e.reason, .invalid, file: file, line: line)
            return e
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
            return nil
        }
    }

    private func fileBytes(_ name: String) -> [UInt8] {
        FileManager.default.contents(atPath: (dir as NSString).appendingPathComponent(name)).map(Array.init) ?? []
    }

    private func contains(_ haystack: [UInt8], _ needle: String) -> Bool {
        let n = Array(needle.utf8)
        guard !n.isEmpty, haystack.count >= n.count else { return false }
        for i in 0...(haystack.count - n.count) where haystack[i] == n[0] && Array(haystack[i..<(i + n.count)]) == n { return true }
        return false
    }

    /// Fails if the secret value or its base64 is in the database file or its WAL.
    private func assertNoPlaintextOnDisk(_ what: String, file: StaticString = #filePath, line: UInt = #line) {
        for name in ["store.db", "store.db-wal", "store.db-journal"] {
            let bytes = fileBytes(name)
            XCTAssertFalse(contains(bytes, secretValue), "\(what): the secret value is in \(name)", file: file, line: line)
            XCTAssertFalse(contains(bytes, secretBase64), "\(what): the base64 secret value is in \(name)", file: file, line: line)
        }
    }

    private func reopen() throws {
        store.close()
        store = nil
        store = try Store(directory: dir)
    }

    // MARK: Write semantics

    /// Kubernetes: stringData is write-only, merged into data (base64), its values winning; type
    /// defaults to Opaque.
    func testStringDataMergesIntoDataAndIsNeverStoredOrReturned() throws {
        let created = try store.create(.secrets, secret("s", data: ["a": b64("from-data"), "b": b64("kept")],
                                                        stringData: ["a": "from-stringData", "c": "new"]))
        XCTAssertNil(created["stringData"])
        XCTAssertEqual(created["type"], .string("Opaque"))
        XCTAssertEqual(created["data"]?.stringMap, ["a": b64("from-stringData"), "b": b64("kept"), "c": b64("new")])
        let stored = try store.get(.secrets, namespace: "default", name: "s")
        XCTAssertNil(stored["stringData"])
        XCTAssertEqual(stored["data"], created["data"])

        // Merge patch and strategic merge patch (kubectl apply) merge stringData too.
        let merged = try store.patch(.secrets, namespace: "default", name: "s",
                                     patch: .object(["stringData": .object(["b": .string("patched")])]), as: .merge)
        XCTAssertNil(merged["stringData"])
        XCTAssertEqual(merged[path: ["data", "b"]], .string(b64("patched")))
        let strategic = try store.patch(.secrets, namespace: "default", name: "s",
                                        patch: .object(["stringData": .object(["d": .string("four")])]), as: .strategic)
        XCTAssertEqual(strategic[path: ["data", "d"]], .string(b64("four")))
        XCTAssertEqual(strategic[path: ["data", "a"]], .string(b64("from-stringData")))

        // Update (PUT) with stringData only keeps nothing of the old data that is not sent.
        var put = secret("s", stringData: ["only": "this"])
        put[path: ["metadata", "resourceVersion"]] = .string(strategic.resourceVersion)
        let updated = try store.update(.secrets, put)
        XCTAssertEqual(updated["data"]?.stringMap, ["only": b64("this")])
        XCTAssertNil(try store.get(.secrets, namespace: "default", name: "s")["stringData"])

        // dryRun returns the merged object too.
        let dry = try store.create(.secrets, secret("dry", stringData: ["x": "y"]), dryRun: true)
        XCTAssertEqual(dry["data"]?.stringMap, ["x": b64("y")])
        XCTAssertNil(dry["stringData"])
    }

    func testSecretTypeIsImmutable() throws {
        let created = try store.create(.secrets, secret("t", type: "kubernetes.io/basic-auth", stringData: ["username": "u"]))
        XCTAssertEqual(created["type"], .string("kubernetes.io/basic-auth"))
        let e = invalid { try store.patch(.secrets, namespace: "default", name: "t", patch: .object(["type": .string("Opaque")]), as: .merge) }
        XCTAssertEqual(e?.causes.map(\.field), ["type"])
        XCTAssertEqual(e?.causes.first?.message, "Invalid value: \"Opaque\": field is immutable")
        // A PUT without type is defaulted to Opaque, which is a change too.
        let e2 = invalid { try store.update(.secrets, secret("t", stringData: ["username": "u"])) }
        XCTAssertEqual(e2?.causes.map(\.field), ["type"])
    }

    /// `immutable: true`: data (whether sent as data or stringData) cannot change and immutable
    /// cannot be unset; metadata can still change.
    func testImmutableSecretRejectsDataChanges() throws {
        try store.create(.secrets, secret("frozen", data: ["k": b64("v1")], immutable: true))
        let msg = "Forbidden: field is immutable when `immutable` is set"
        var e = invalid { try store.patch(.secrets, namespace: "default", name: "frozen", patch: .object(["data": .object(["k": .string(b64("v2"))])]), as: .merge) }
        XCTAssertEqual(e?.causes.map(\.field), ["data"])
        XCTAssertEqual(e?.causes.first?.message, msg)
        XCTAssertEqual(e?.causes.first?.reason, "FieldValueForbidden")
        e = invalid { try store.patch(.secrets, namespace: "default", name: "frozen", patch: .object(["stringData": .object(["k2": .string("x")])]), as: .strategic) }
        XCTAssertEqual(e?.causes.map(\.field), ["data"])
        e = invalid { try store.patch(.secrets, namespace: "default", name: "frozen", patch: .object(["immutable": .bool(false)]), as: .merge) }
        XCTAssertEqual(e?.causes.map(\.field), ["immutable"])
        e = invalid { try store.patch(.secrets, namespace: "default", name: "frozen", patch: .object(["immutable": .null]), as: .merge) }
        XCTAssertEqual(e?.causes.map(\.field), ["immutable"])
        let labelled = try store.patch(.secrets, namespace: "default", name: "frozen",
                                       patch: .object(["metadata": .object(["labels": .object(["a": .string("b")])])]), as: .merge)
        XCTAssertEqual(labelled.labels, ["a": "b"])
        // Not immutable yet: data may change, then it can be frozen.
        try store.create(.secrets, secret("thaw", data: ["k": b64("v1")], immutable: false))
        try store.patch(.secrets, namespace: "default", name: "thaw", patch: .object(["data": .object(["k": .string(b64("v2"))]), "immutable": .bool(true)]), as: .merge)
        XCTAssertNotNil(invalid { try store.patch(.secrets, namespace: "default", name: "thaw", patch: .object(["data": .object(["k": .string(b64("v3"))])]), as: .merge) })
    }

    func testImmutableConfigMapRejectsDataAndBinaryDataChanges() throws {
        try store.create(.configMaps, configMap("frozen", data: ["a": "1"], binaryData: ["b": b64("2")], immutable: true))
        var e = invalid { try store.patch(.configMaps, namespace: "default", name: "frozen", patch: .object(["data": .object(["a": .string("9")])]), as: .merge) }
        XCTAssertEqual(e?.causes.map(\.field), ["data"])
        e = invalid { try store.patch(.configMaps, namespace: "default", name: "frozen", patch: .object(["binaryData": .object(["b": .string(b64("9"))])]), as: .merge) }
        XCTAssertEqual(e?.causes.map(\.field), ["binaryData"])
        e = invalid { try store.patch(.configMaps, namespace: "default", name: "frozen", patch: .object(["immutable": .bool(false)]), as: .merge) }
        XCTAssertEqual(e?.causes.map(\.field), ["immutable"])
        XCTAssertEqual(e?.causes.first?.message, "Forbidden: field is immutable when `immutable` is set")
        try store.patch(.configMaps, namespace: "default", name: "frozen", patch: .object(["metadata": .object(["labels": .object(["x": .string("y")])])]), as: .merge)
    }

    // MARK: Validation

    func testDataKeysFollowTheConfigKeyRule() throws {
        let rule = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
        var e = invalid { try store.create(.secrets, secret("k", data: ["bad key": b64("v")])) }
        XCTAssertEqual(e?.causes.map(\.field), ["data[bad key]"])
        XCTAssertTrue(e?.causes.first?.message.hasPrefix("Invalid value: \"bad key\": \(rule)") == true, "\(e?.causes ?? [])")
        XCTAssertTrue(e?.message.contains("Secret \"k\" is invalid: data[bad key]: Invalid value: \"bad key\": \(rule)") == true, e?.message ?? "")
        // Sent as stringData, the key is reported where Kubernetes reports it: in data.
        e = invalid { try store.create(.secrets, secret("k", stringData: ["bad/key": "v"])) }
        XCTAssertEqual(e?.causes.map(\.field), ["data[bad/key]"])
        e = invalid { try store.create(.secrets, secret("k", data: [".": b64("v")])) }
        XCTAssertEqual(e?.causes.map(\.message), ["Invalid value: \".\": must not be '.'"])
        e = invalid { try store.create(.secrets, secret("k", data: ["..": b64("v")])) }
        XCTAssertEqual(e?.causes.map(\.message), ["Invalid value: \"..\": must not be '..'"])
        e = invalid { try store.create(.secrets, secret("k", data: [String(repeating: "a", count: 254): b64("v")])) }
        XCTAssertEqual(e?.causes.map(\.message), ["Invalid value: \"\(String(repeating: "a", count: 254))\": must be no more than 253 characters"])
        try store.create(.secrets, secret("ok", data: [String(repeating: "a", count: 253): b64("v"), "-._Az09": b64("v"), ".hidden": b64("v")]))
        e = invalid { try store.create(.configMaps, configMap("c", data: ["bad key": "v"])) }
        XCTAssertEqual(e?.causes.map(\.field), ["data[bad key]"])
        XCTAssertTrue(e?.message.hasPrefix("ConfigMap \"c\" is invalid: data[bad key]: Invalid value: \"bad key\": \(rule)") == true, e?.message ?? "")
        e = invalid { try store.create(.configMaps, configMap("c", binaryData: ["bad key": b64("v")])) }
        XCTAssertEqual(e?.causes.map(\.field), ["binaryData[bad key]"])
    }

    func testDataMustBeBase64() throws {
        var e = invalid { try store.create(.secrets, secret("b", data: ["token": "not base64!"])) }
        XCTAssertEqual(e?.causes.map(\.field), ["data[token]"])
        XCTAssertEqual(e?.causes.first?.message, "Invalid value: \"<secret contents redacted>\": illegal base64 data")
        e = invalid { try store.create(.configMaps, configMap("c", binaryData: ["blob": "%%%"])) }
        XCTAssertEqual(e?.causes.map(\.field), ["binaryData[blob]"])
        // Line breaks inside base64 are accepted, as Go's decoder skips them.
        try store.create(.secrets, secret("wrapped", data: ["k": "aGVs\nbG8="]))
    }

    func testTypeSpecificRequiredKeys() throws {
        var e = invalid { try store.create(.secrets, secret("tls", type: "kubernetes.io/tls", stringData: ["tls.crt": "c"])) }
        XCTAssertEqual(e?.causes.map(\.field), ["data[tls.key]"])
        XCTAssertEqual(e?.causes.first?.message, "Required value")
        XCTAssertEqual(e?.causes.first?.reason, "FieldValueRequired")
        e = invalid { try store.create(.secrets, secret("tls", type: "kubernetes.io/tls")) }
        XCTAssertEqual(e?.causes.map(\.field), ["data[tls.crt]", "data[tls.key]"])
        try store.create(.secrets, secret("tls", type: "kubernetes.io/tls", stringData: ["tls.crt": "c", "tls.key": "k"]))

        e = invalid { try store.create(.secrets, secret("ba", type: "kubernetes.io/basic-auth", stringData: ["other": "x"])) }
        XCTAssertEqual(e?.causes.map(\.field), ["data[username]", "data[password]"])
        try store.create(.secrets, secret("ba", type: "kubernetes.io/basic-auth", stringData: ["password": ""]))

        e = invalid { try store.create(.secrets, secret("ssh", type: "kubernetes.io/ssh-auth")) }
        XCTAssertEqual(e?.causes.map(\.field), ["data[ssh-privatekey]"])
        try store.create(.secrets, secret("ssh", type: "kubernetes.io/ssh-auth", stringData: ["ssh-privatekey": "KEY"]))

        e = invalid { try store.create(.secrets, secret("dc", type: "kubernetes.io/dockerconfigjson")) }
        XCTAssertEqual(e?.causes.map(\.field), ["data[.dockerconfigjson]"])
        XCTAssertEqual(e?.causes.first?.message, "Required value")
        e = invalid { try store.create(.secrets, secret("dc", type: "kubernetes.io/dockerconfigjson", stringData: [".dockerconfigjson": "{not json"])) }
        XCTAssertEqual(e?.causes.map(\.field), ["data[.dockerconfigjson]"])
        XCTAssertEqual(e?.causes.first?.message, "Invalid value: \"<secret contents redacted>\": must be a JSON object")
        try store.create(.secrets, secret("dc", type: "kubernetes.io/dockerconfigjson", stringData: [".dockerconfigjson": #"{"auths":{}}"#]))

        // Types Kubernetes does not know have no required keys.
        try store.create(.secrets, secret("custom", type: "example.com/custom"))
    }

    func testTotalSizeIsAtMostOneMebibyte() throws {
        let half = String(repeating: "x", count: 1 << 19)
        try store.create(.secrets, secret("max", stringData: ["a": half, "b": half]))
        var e = invalid { try store.create(.secrets, secret("big", stringData: ["a": half, "b": half + "x"])) }
        XCTAssertEqual(e?.causes.map(\.field), ["data"])
        XCTAssertEqual(e?.causes.first?.message, "Too long: must have at most 1048576 bytes")
        e = invalid { try store.create(.configMaps, configMap("big", data: ["a": half], binaryData: ["b": b64(half + "x")])) }
        XCTAssertEqual(e?.causes.map(\.field), ["data"])
        XCTAssertEqual(e?.causes.first?.message, "Too long: must have at most 1048576 bytes")
    }

    func testConfigMapDataAndBinaryDataKeysMustNotOverlap() throws {
        let e = invalid { try store.create(.configMaps, configMap("dup", data: ["k": "v"], binaryData: ["k": b64("v")])) }
        XCTAssertEqual(e?.causes.map(\.field), ["data[k]", "binaryData[k]"])
        XCTAssertEqual(e?.causes.map(\.message), ["Invalid value: \"k\": duplicate of key present in binaryData",
                                                   "Invalid value: \"k\": duplicate of key present in data"])
    }

    func testMalformedDataShapesAreInvalidNotDropped() throws {
        var o = secret("shape")
        o["stringData"] = .object(["n": .int(5)])
        var e = invalid { try store.create(.secrets, o) }
        XCTAssertEqual(e?.causes.map(\.field), ["stringData[n]"])
        o = secret("shape")
        o["data"] = .array([])
        e = invalid { try store.create(.secrets, o) }
        XCTAssertEqual(e?.causes.map(\.field), ["data"])
        o = secret("shape")
        o["bogus"] = .string("x")
        e = invalid { try store.create(.secrets, o) }
        XCTAssertEqual(e?.causes.map(\.field), ["bogus"])
    }

    /// No error message carries a secret value: every failing path is fed the recognisable value.
    func testSecretValuesNeverAppearInErrors() throws {
        var messages: [String] = []
        var failures = 0
        func collect(_ body: () throws -> Void) {
            do { try body(); XCTFail("expected an error") } catch {
                failures += 1
                messages.append("\(error)")
                if let e = error as? StoreError {
                    messages.append(e.message)
                    messages += e.causes.map { "\($0.field) \($0.message)" }
                    messages.append(APIStatus.failure(e).jsonString)
                }
            }
        }
        collect { try store.create(.secrets, secret("v1", data: ["k": secretValue + "!"])) }
        collect { try store.create(.secrets, secret("v2", type: "kubernetes.io/dockerconfigjson", stringData: [".dockerconfigjson": secretValue])) }
        collect { try store.create(.secrets, secret("v3", stringData: ["bad key": secretValue])) }
        collect { try store.create(.secrets, secret("v4", type: "kubernetes.io/tls", stringData: ["tls.crt": secretValue])) }
        var nonString = secret("v5")
        nonString["data"] = .object(["k": .array([.string(secretValue)])])
        collect { try store.create(.secrets, nonString) }
        collect { try store.create(.configMaps, configMap("v6", binaryData: ["k": secretValue + "!"])) }
        try store.create(.secrets, secret("frozen", stringData: ["k": secretValue], immutable: true))
        collect { try store.patch(.secrets, namespace: "default", name: "frozen", patch: .object(["stringData": .object(["k": .string(secretValue + "2")])]), as: .merge) }
        collect { try store.patch(.secrets, namespace: "default", name: "frozen", patch: .object(["type": .string("kubernetes.io/tls")]), as: .merge) }
        XCTAssertEqual(failures, 8, "every path failed: \(messages)")
        for m in messages {
            XCTAssertFalse(m.contains(secretValue), "secret value in: \(m)")
            XCTAssertFalse(m.contains(secretBase64), "base64 secret value in: \(m)")
        }
    }

    // MARK: Encryption at rest

    func testSecretsAreEncryptedOnDiskAndReadBackDecrypted() throws {
        var s = secret("db-password", stringData: ["password": secretValue])
        // kubectl apply keeps the whole applied object, stringData included, in an annotation.
        s[path: ["metadata", "annotations"]] = .object(["kubectl.kubernetes.io/last-applied-configuration":
            .string(#"{"apiVersion":"v1","kind":"Secret","stringData":{"password":"\#(secretValue)"}}"#)])
        let created = try store.create(.secrets, s)
        try store.create(.configMaps, configMap("plain", data: ["visible": "config-value-in-clear"]))
        XCTAssertEqual(created[path: ["data", "password"]], .string(secretBase64))

        // While the store is open the latest pages are in the WAL: both files are checked.
        XCTAssertFalse(fileBytes("store.db-wal").isEmpty, "the WAL holds the writes")
        assertNoPlaintextOnDisk("open store")
        let all = fileBytes("store.db") + fileBytes("store.db-wal")
        XCTAssertTrue(contains(all, "k8s:enc:aesgcm:v1:key1:"), "rows carry the aesgcm envelope with the key name")
        XCTAssertTrue(contains(all, "config-value-in-clear"), "ConfigMaps are not encrypted (the check itself finds plaintext)")
        XCTAssertFalse(contains(all, "db-password\",\"namespace"), "the Secret's JSON is not stored in clear")

        try reopen()
        let read = try store.get(.secrets, namespace: "default", name: "db-password")
        XCTAssertEqual(read, created, "decrypted round trip")
        XCTAssertEqual(store.resealedAtOpen, 0)
        try store.delete(.secrets, namespace: "default", name: "db-password")
        assertNoPlaintextOnDisk("after delete")
        store.close()
        store = nil
        assertNoPlaintextOnDisk("closed store")
    }

    /// The cipher is AES-256-GCM: test case 16 of the GCM specification (McGrew & Viega), and a
    /// flipped tag bit or different AAD is refused.
    func testCipherMatchesTheGCMSpecificationVector() throws {
        func hex(_ s: String) -> [UInt8] {
            var out: [UInt8] = []
            var i = s.startIndex
            while i < s.endIndex { let j = s.index(i, offsetBy: 2); out.append(UInt8(s[i..<j], radix: 16)!); i = j }
            return out
        }
        let key = hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
        let nonce = hex("cafebabefacedbaddecaf888")
        let plaintext = hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39")
        let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
        let expected = hex("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
            + "76fc6ece0f4e1768cddf8853bb2d551b")
        let sealed = try SecretCipher.gcm(encrypt: true, key: key, nonce: nonce, input: plaintext, aad: aad, tag: nil)
        XCTAssertEqual(sealed, expected)
        let body = Array(sealed.dropLast(16)), tag = Array(sealed.suffix(16))
        XCTAssertEqual(try SecretCipher.gcm(encrypt: false, key: key, nonce: nonce, input: body, aad: aad, tag: tag), plaintext)
        var badTag = tag
        badTag[0] ^= 1
        XCTAssertThrowsError(try SecretCipher.gcm(encrypt: false, key: key, nonce: nonce, input: body, aad: aad, tag: badTag))
        XCTAssertThrowsError(try SecretCipher.gcm(encrypt: false, key: key, nonce: nonce, input: body, aad: aad + [0], tag: tag))

        // The envelope: prefix, key name, 12-byte nonce, ciphertext and tag; fresh nonce each time.
        let cipher = SecretCipher(keys: [EncryptionKey(name: "k", bytes: key)], source: "test")
        let a = try cipher.seal(Array("{}".utf8), aad: "secrets/ns/n"), b = try cipher.seal(Array("{}".utf8), aad: "secrets/ns/n")
        XCTAssertTrue(a.starts(with: Array("k8s:enc:aesgcm:v1:k:".utf8)))
        XCTAssertEqual(a.count, "k8s:enc:aesgcm:v1:k:".utf8.count + 12 + 2 + 16)
        XCTAssertNotEqual(a, b, "random nonces")
        guard case let .decrypted(plain, keyName) = try cipher.open(a, aad: "secrets/ns/n", what: "t") else { return XCTFail("not opened") }
        XCTAssertEqual(plain, Array("{}".utf8))
        XCTAssertEqual(keyName, "k")
    }

    func testKeyFileIsPrivateAndHoldsOneKey() throws {
        let path = Store.keyFilePath(dir)
        var st = stat()
        XCTAssertEqual(stat(path, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600, "key file mode")
        XCTAssertEqual(stat(dir, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o700, "store directory mode")
        let cipher = try EncryptionKeyFile.load(path: path)
        XCTAssertEqual(cipher.keys.map(\.name), ["key1"])
        XCTAssertEqual(cipher.keys[0].bytes.count, 32)
        // The same key is used after a restart (the file is not recreated).
        try reopen()
        XCTAssertEqual(try EncryptionKeyFile.load(path: path).keys, cipher.keys)
        // A key file others can read is refused, naming the file.
        XCTAssertEqual(chmod(path, 0o644), 0)
        store.close()
        store = nil
        XCTAssertThrowsError(try Store(directory: dir)) {
            XCTAssertTrue("\($0)".contains(path) && "\($0)".contains("chmod 600"), "\($0)")
        }
    }

    func testRotationReencryptsEverySecretAndOldKeysCanThenBeRemoved() throws {
        try store.create(.secrets, secret("a", stringData: ["v": secretValue]))
        try store.create(.secrets, secret("b", stringData: ["v": "other"]))
        let before = try store.get(.secrets, namespace: "default", name: "a")

        // With the store open (a running server), the key is added and resealing waits.
        let online = try Store.rotateEncryptionKey(directory: dir)
        XCTAssertEqual(online.newKey, "key2")
        XCTAssertEqual(online.keys, ["key2", "key1"])
        XCTAssertNil(online.resealed)
        XCTAssertEqual(try Store.encryptionKeyUsage(directory: dir).usage, ["key1": 2])
        try reopen()
        XCTAssertEqual(store.resealedAtOpen, 2, "the next start re-encrypts with key2")
        XCTAssertEqual(try Store.encryptionKeyUsage(directory: dir).usage, ["key2": 2])

        // Offline: resealed at once.
        store.close()
        store = nil
        let offline = try Store.rotateEncryptionKey(directory: dir)
        XCTAssertEqual(offline.keys, ["key3", "key2", "key1"])
        XCTAssertEqual(offline.resealed, 2)
        XCTAssertEqual(try Store.encryptionKeyUsage(directory: dir).usage, ["key3": 2])
        var st = stat()
        XCTAssertEqual(stat(Store.keyFilePath(dir), &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600, "the rewritten key file stays private")

        // Drop the old keys: everything still opens.
        let cipher = try EncryptionKeyFile.load(path: Store.keyFilePath(dir))
        try EncryptionKeyFile.write([cipher.keys[0]], to: Store.keyFilePath(dir), exclusive: false)
        store = try Store(directory: dir)
        XCTAssertEqual(store.resealedAtOpen, 0)
        XCTAssertEqual(try store.get(.secrets, namespace: "default", name: "a"), before)
        assertNoPlaintextOnDisk("after rotation")
    }

    func testSecretUnderAKeyNotInTheFileIsAClearError() throws {
        try store.create(.secrets, secret("api-token", stringData: ["t": secretValue]))
        store.close()
        store = nil
        // Another key file: key1 is gone.
        let path = Store.keyFilePath(dir)
        try EncryptionKeyFile.write([try EncryptionKeyFile.fresh(name: "other")], to: path, exclusive: false)
        XCTAssertThrowsError(try Store(directory: dir)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("secrets default/api-token is encrypted with key \"key1\", which is not in \(path)"), text)
            XCTAssertFalse(text.contains(secretValue))
        }
    }

    /// A deleted key file is not silently replaced by a fresh key while encrypted Secrets exist.
    func testLostKeyFileIsNotRecreatedOverEncryptedSecrets() throws {
        try store.create(.secrets, secret("kept", stringData: ["t": secretValue]))
        store.close()
        store = nil
        let path = Store.keyFilePath(dir)
        try FileManager.default.removeItem(atPath: path)
        XCTAssertThrowsError(try Store(directory: dir)) {
            XCTAssertTrue("\($0)".contains("\(path) is missing, but") && "\($0)".contains("encrypted with \"key1\": restore the key file"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path), "no new key file was made")
        XCTAssertThrowsError(try Store.rotateEncryptionKey(directory: dir))
        XCTAssertFalse(FileManager.default.fileExists(atPath: path), "rotation did not make one either")
    }

    /// The row identity is authenticated: a Secret's ciphertext copied over another row does not open.
    func testCiphertextSwappedBetweenRowsDoesNotOpen() throws {
        try store.create(.secrets, secret("a", stringData: ["v": "A"]))
        try store.create(.secrets, secret("b", stringData: ["v": "B"]))
        store.close()
        store = nil
        let sql = "UPDATE objects SET json = (SELECT json FROM objects WHERE resource='secrets' AND name='a') WHERE resource='secrets' AND name='b';"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        p.arguments = [(dir as NSString).appendingPathComponent("store.db"), sql]
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        XCTAssertThrowsError(try Store(directory: dir)) {
            XCTAssertTrue("\($0)".contains("secrets default/b: cannot decrypt with key \"key1\": authentication failed"), "\($0)")
        }
    }

    /// A store written before encryption (plaintext Secret rows, one larger than a page so it
    /// spills into overflow pages) is re-encrypted at open, and secure_delete plus the WAL
    /// checkpoint leave no plaintext in the file's free space or the WAL.
    func testPlaintextRowsOfAnOlderStoreAreReencryptedWithoutATrace() throws {
        store.close()
        store = nil
        try FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let big = String(repeating: secretValue, count: 400)
        let legacy = try StoreDatabase(path: (dir as NSString).appendingPathComponent("store.db"), cipher: nil)
        var rows: [StoreDatabase.Write] = []
        for (name, value) in [("small", secretValue), ("large", big)] {
            let o: JSONValue = .object(["apiVersion": .string("v1"), "kind": .string("Secret"), "type": .string("Opaque"),
                                        "metadata": .object(["name": .string(name), "namespace": .string("default"), "uid": .string("u-\(name)"),
                                                             "resourceVersion": .string("1")]),
                                        "data": .object(["v": .string(Data(value.utf8).base64EncodedString())])])
            rows.append(.put(resource: "secrets", namespace: "default", name: name, uid: "u-\(name)", json: o.jsonString))
        }
        rows.append(.put(resource: "namespaces", namespace: "", name: "default", uid: "u-ns",
                         json: #"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"default","uid":"u-ns","resourceVersion":"1"}}"#))
        try legacy.commit(rows, revision: 1)
        legacy.close()
        XCTAssertTrue(contains(fileBytes("store.db"), Data(big.utf8).base64EncodedString().prefix(64).description), "the old store is plaintext")

        store = try Store(directory: dir)
        XCTAssertEqual(store.resealedAtOpen, 2)
        XCTAssertEqual(try store.get(.secrets, namespace: "default", name: "small")[path: ["data", "v"]], .string(secretBase64))
        XCTAssertEqual(try store.get(.secrets, namespace: "default", name: "large")[path: ["data", "v"]],
                       .string(Data(big.utf8).base64EncodedString()))
        XCTAssertEqual(store.revision, 1, "re-encryption is not a change of the objects")
        assertNoPlaintextOnDisk("right after the re-encryption, store open")
        // Base64 of the repeated value at other alignments.
        for shift in 1...2 {
            let tail = Data(big.utf8.dropFirst(shift)).base64EncodedString().prefix(40).description
            XCTAssertFalse(contains(fileBytes("store.db") + fileBytes("store.db-wal"), tail), "shifted base64 (\(shift)) found")
        }
        try reopen()
        XCTAssertEqual(store.resealedAtOpen, 0)
    }
}
