import CSQLite
import Foundation

/// The SQLite file behind the store: one table of objects and one row holding the revision.
/// Every write of the store is one transaction here, so a crash leaves either the old or the
/// new state (WAL mode, synchronous=NORMAL: durable across a process kill).
///
/// Rows of the `encrypted` resources (Secrets) are stored sealed by `cipher` (a BLOB in the
/// `json` column, see `SecretCipher`); everything else is JSON text. secure_delete zeroes the
/// space a replaced or deleted row leaves behind, so a rewritten row's old bytes do not linger
/// in free space of the file (or in the WAL frames that carry those pages).
final class StoreDatabase {
    private var db: OpaquePointer?
    /// Seals and opens rows of `encrypted` resources; nil stores them as plaintext (only tests
    /// do this, to make a store as older versions wrote it).
    let cipher: SecretCipher?
    let encrypted: Set<String>
    let path: String

    /// One stored row, opened. `stale` when it is not sealed with the cipher's first key
    /// (plaintext from an older store, or an older key): `reseal` rewrites it.
    struct Row {
        var resource: String
        var namespace: String
        var name: String
        var json: [UInt8]
        var stale: Bool
    }

    init(path: String, cipher: SecretCipher? = nil, encrypted: Set<String> = [ResourceType.secrets.groupResource]) throws {
        self.path = path
        self.cipher = cipher
        self.encrypted = encrypted
        guard sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nil) == SQLITE_OK else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close(db)
            throw StoreError(.internalError, "cannot open \(path): \(message)")
        }
        // `portico encryption status` reads while a server writes: wait for a lock, briefly.
        sqlite3_busy_timeout(db, 2000)
        try exec("PRAGMA secure_delete=ON")
        try exec("PRAGMA journal_mode=WAL")
        try exec("PRAGMA synchronous=NORMAL")
        try exec("""
            CREATE TABLE IF NOT EXISTS objects (
                resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
                uid TEXT NOT NULL, revision INTEGER NOT NULL, json TEXT NOT NULL,
                PRIMARY KEY (resource, namespace, name))
            """)
        try exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
    }

    deinit { close() }

    func close() {
        if let d = db { sqlite3_close_v2(d); db = nil }
    }

    func exec(_ sql: String) throws {
        var err: UnsafeMutablePointer<CChar>?
        if sqlite3_exec(db, sql, nil, nil, &err) != SQLITE_OK {
            let message = err.map { String(cString: $0) } ?? "unknown error"
            sqlite3_free(err)
            throw StoreError(.internalError, "sqlite: \(message) in \(sql)")
        }
    }

    private func run(_ sql: String, _ args: [Any], row: ((OpaquePointer) -> Void)? = nil) throws {
        var stmt: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &stmt, nil) == SQLITE_OK, let s = stmt else {
            throw StoreError(.internalError, "sqlite: \(String(cString: sqlite3_errmsg(db)))")
        }
        defer { sqlite3_finalize(s) }
        for (i, a) in args.enumerated() {
            let index = Int32(i + 1)
            if let v = a as? Int64 { sqlite3_bind_int64(s, index, v) }
            else if let v = a as? String { sqlite3_bind_text(s, index, v, -1, portico_sqlite_transient()) }
            else if let v = a as? [UInt8] { sqlite3_bind_blob(s, index, v, Int32(v.count), portico_sqlite_transient()) }
        }
        while true {
            let rc = sqlite3_step(s)
            if rc == SQLITE_ROW { row?(s); continue }
            if rc == SQLITE_DONE { return }
            throw StoreError(.internalError, "sqlite: \(String(cString: sqlite3_errmsg(db)))")
        }
    }

    /// Every stored row, decrypted. Throws (naming the object and the key, never its contents)
    /// when a row is sealed with a key the cipher does not have or does not authenticate.
    func loadAll() throws -> [Row] {
        var raw: [(String, String, String, [UInt8])] = []
        try run("SELECT resource, namespace, name, json FROM objects", []) { s in
            func text(_ i: Int32) -> String { String(cString: sqlite3_column_text(s, i)) }
            // A BLOB (sealed) or TEXT (plain JSON) column: the bytes either way (pointer first, then length).
            let pointer = sqlite3_column_blob(s, 3)
            let count = Int(sqlite3_column_bytes(s, 3))
            let bytes = count == 0 || pointer == nil ? [] : Array(UnsafeRawBufferPointer(start: pointer, count: count))
            raw.append((text(0), text(1), text(2), bytes))
        }
        var rows: [Row] = []
        for (resource, namespace, name, stored) in raw {
            var row = Row(resource: resource, namespace: namespace, name: name, json: stored, stale: false)
            if encrypted.contains(resource), let cipher {
                let what = "\(resource) \(namespace.isEmpty ? "" : namespace + "/")\(name)"
                switch try cipher.open(stored, aad: Self.aad(resource, namespace, name), what: what) {
                case .plaintext:
                    row.stale = true
                case let .decrypted(plain, keyName):
                    row.json = plain
                    row.stale = keyName != cipher.primary.name
                }
            }
            rows.append(row)
        }
        return rows
    }

    /// Rewrites the rows sealed with the cipher's first key (their revision unchanged: the objects
    /// did not change), then checkpoints and truncates the WAL so the old copies are gone from it.
    func reseal(_ rows: [Row]) throws {
        guard !rows.isEmpty else { return }
        try exec("BEGIN IMMEDIATE")
        do {
            for r in rows {
                try run("UPDATE objects SET json = ? WHERE resource = ? AND namespace = ? AND name = ?",
                        [try stored(r.resource, r.namespace, r.name, String(decoding: r.json, as: UTF8.self)), r.resource, r.namespace, r.name])
            }
            try exec("COMMIT")
        } catch {
            try? exec("ROLLBACK")
            throw error
        }
        try exec("PRAGMA wal_checkpoint(TRUNCATE)")
    }

    /// The key name each encrypted row is sealed with ("" for a plaintext row), without opening it.
    func sealingKeys() throws -> [String] {
        var names: [String] = []
        let prefix = Array(SecretCipher.prefix.utf8)
        for resource in encrypted.sorted() {
            try run("SELECT json FROM objects WHERE resource = ?", [resource]) { s in
                let pointer = sqlite3_column_blob(s, 0)
                let count = Int(sqlite3_column_bytes(s, 0))
                let bytes = count == 0 || pointer == nil ? [] : Array(UnsafeRawBufferPointer(start: pointer, count: count))
                guard bytes.starts(with: prefix), let colon = bytes[prefix.count...].firstIndex(of: UInt8(ascii: ":")) else {
                    names.append("")
                    return
                }
                names.append(String(decoding: bytes[prefix.count..<colon], as: UTF8.self))
            }
        }
        return names
    }

    /// The additional authenticated data of a row: its identity, so sealed rows cannot be swapped.
    static func aad(_ resource: String, _ namespace: String, _ name: String) -> String {
        "\(resource)/\(namespace)/\(name)"
    }

    /// What goes into the `json` column: sealed bytes for encrypted resources, text otherwise.
    private func stored(_ resource: String, _ namespace: String, _ name: String, _ json: String) throws -> Any {
        if encrypted.contains(resource), let cipher {
            return try cipher.seal(Array(json.utf8), aad: Self.aad(resource, namespace, name))
        }
        return json
    }

    func loadRevision() throws -> Int64 {
        var revision: Int64 = 0
        try run("SELECT value FROM meta WHERE key = 'revision'", []) { revision = sqlite3_column_int64($0, 0) }
        return revision
    }

    enum Write {
        case put(resource: String, namespace: String, name: String, uid: String, json: String)
        case delete(resource: String, namespace: String, name: String)
    }

    /// Applies the writes and the new revision in one transaction.
    func commit(_ writes: [Write], revision: Int64) throws {
        try exec("BEGIN IMMEDIATE")
        do {
            for w in writes {
                switch w {
                case let .put(resource, namespace, name, uid, json):
                    try run("INSERT OR REPLACE INTO objects (resource, namespace, name, uid, revision, json) VALUES (?, ?, ?, ?, ?, ?)",
                            [resource, namespace, name, uid, revision, try stored(resource, namespace, name, json)])
                case let .delete(resource, namespace, name):
                    try run("DELETE FROM objects WHERE resource = ? AND namespace = ? AND name = ?", [resource, namespace, name])
                }
            }
            try run("INSERT OR REPLACE INTO meta (key, value) VALUES ('revision', ?)", [revision])
            try exec("COMMIT")
        } catch {
            try? exec("ROLLBACK")
            throw error
        }
    }
}
