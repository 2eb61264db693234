import Foundation
import Objects

/// Secrets: what the store does to them on write (Kubernetes' defaulting and the write-only
/// `stringData`) and the encryption key rotation of the store directory.
extension Store {
    /// Kubernetes' defaulting and conversion of a Secret on write: `type` defaults to Opaque, and
    /// `stringData` (write-only) is merged into `data` base64-encoded, its values winning, then
    /// dropped. A malformed stringData or data is left in place for validation to report.
    static func normalizeSecret(_ o: inout JSONValue) {
        if o["type"] == nil || o["type"] == .null || o["type"]?.stringValue == "" { o["type"] = .string("Opaque") }
        guard let stringData = o["stringData"] else { return }
        if stringData == .null { o["stringData"] = nil; return }
        guard let map = stringData.objectValue, map.values.allSatisfy({ $0.stringValue != nil }) else { return }
        var data: [String: JSONValue]
        switch o["data"] {
        case nil, .null?: data = [:]
        case let .object(existing)?: data = existing
        default: return
        }
        for (k, v) in map { data[k] = .string(Data(v.stringValue!.utf8).base64EncodedString()) }
        if !data.isEmpty { o["data"] = .object(data) }
        o["stringData"] = nil
    }

    /// `<directory>/encryption-keys`.
    public static func keyFilePath(_ directory: String) -> String {
        (directory as NSString).appendingPathComponent(EncryptionKeyFile.fileName)
    }

    /// A missing key file is created, unless the database already holds encrypted Secrets: a
    /// fresh key would not open them, and the file has to be restored instead.
    static func checkKeyFileIsNotLost(directory: String, databasePath: String) throws {
        let keyPath = keyFilePath(directory)
        guard !FileManager.default.fileExists(atPath: keyPath), FileManager.default.fileExists(atPath: databasePath) else { return }
        let database = try StoreDatabase(path: databasePath, cipher: nil)
        defer { database.close() }
        let names = Set(try database.sealingKeys().filter { !$0.isEmpty })
        if !names.isEmpty {
            throw StoreError(.internalError, "\(keyPath) is missing, but \(databasePath) holds Secrets encrypted with "
                + "\(names.sorted().map { "\"\($0)\"" }.joined(separator: ", ")): restore the key file (from the backup of this data directory)")
        }
    }

    /// What `rotateEncryptionKey` did.
    public struct KeyRotation: Sendable {
        /// The key file that was rewritten.
        public var keyFile: String
        /// The new first key, which encrypts from now on.
        public var newKey: String
        /// Every key in the file, first to last.
        public var keys: [String]
        /// How many Secrets were re-encrypted with the new key now; nil when a `portico serve`
        /// has the store open (they are re-encrypted when it next starts).
        public var resealed: Int?
    }

    /// Adds a new first key to `<directory>/encryption-keys`. When no process has the store open,
    /// every Secret is re-encrypted with it at once; otherwise at the store's next start. Once
    /// every Secret is sealed with the new key, older keys can be removed from the file.
    public static func rotateEncryptionKey(directory: String) throws -> KeyRotation {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw StoreError(.notFound, "\(directory): no store directory")
        }
        let exclusive = try StoreLock(directory: directory, exclusive: true, wait: false)
        defer { exclusive?.release() }
        let path = keyFilePath(directory)
        let databasePath = (directory as NSString).appendingPathComponent("store.db")
        try checkKeyFileIsNotLost(directory: directory, databasePath: databasePath)
        let current = try EncryptionKeyFile.loadOrCreate(path: path)
        let keys = try EncryptionKeyFile.rotated(current.keys)
        try EncryptionKeyFile.write(keys, to: path, exclusive: false)
        var rotation = KeyRotation(keyFile: path, newKey: keys[0].name, keys: keys.map(\.name), resealed: nil)
        guard exclusive != nil else { return rotation }
        guard FileManager.default.fileExists(atPath: databasePath) else {
            rotation.resealed = 0
            return rotation
        }
        let database = try StoreDatabase(path: databasePath, cipher: try EncryptionKeyFile.load(path: path))
        defer { database.close() }
        let stale = try database.loadAll().filter(\.stale)
        try database.reseal(stale)
        rotation.resealed = stale.count
        return rotation
    }

    /// How many Secrets are sealed with each key (plaintext rows under ""), read from the
    /// database file; safe while a server has the store open. A key with no Secret left can be
    /// removed from the key file.
    public static func encryptionKeyUsage(directory: String) throws -> (keys: [String], usage: [String: Int]) {
        let cipher = try EncryptionKeyFile.load(path: keyFilePath(directory))
        let databasePath = (directory as NSString).appendingPathComponent("store.db")
        var usage: [String: Int] = [:]
        if FileManager.default.fileExists(atPath: databasePath) {
            let database = try StoreDatabase(path: databasePath, cipher: nil)
            defer { database.close() }
            for name in try database.sealingKeys() { usage[name, default: 0] += 1 }
        }
        return (cipher.keys.map(\.name), usage)
    }
}

/// An advisory lock (flock) on `<store>/store.lock`: every open Store holds it shared, a key
/// rotation that re-encrypts offline holds it exclusive, so the two never rewrite rows at once.
final class StoreLock {
    private var fd: Int32

    /// nil when `wait` is false and the lock is held elsewhere.
    init?(directory: String, exclusive: Bool, wait: Bool) throws {
        let path = (directory as NSString).appendingPathComponent("store.lock")
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError(.internalError, "\(path): cannot open: \(String(cString: strerror(errno)))") }
        var rc: Int32
        repeat {
            rc = flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB))
        } while rc != 0 && errno == EINTR
        if rc != 0 {
            let e = errno
            close(fd)
            fd = -1
            if e == EWOULDBLOCK { return nil }
            throw StoreError(.internalError, "\(path): cannot lock: \(String(cString: strerror(e)))")
        }
    }

    func release() {
        if fd >= 0 { close(fd); fd = -1 }
    }

    deinit { release() }
}
