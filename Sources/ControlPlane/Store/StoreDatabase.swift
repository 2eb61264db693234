import CSQLite
import Foundation

/// The SQLite file behind the store: one table of objects and one row holding the revision.
/// Every write of the store is one transaction here, so a crash leaves either the old or the
/// new state (WAL mode, synchronous=NORMAL: durable across a process kill).
final class StoreDatabase {
    private var db: OpaquePointer?

    init(path: String) throws {
        guard sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nil) == SQLITE_OK else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close(db)
            throw StoreError(.internalError, "cannot open \(path): \(message)")
        }
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
        }
        while true {
            let rc = sqlite3_step(s)
            if rc == SQLITE_ROW { row?(s); continue }
            if rc == SQLITE_DONE { return }
            throw StoreError(.internalError, "sqlite: \(String(cString: sqlite3_errmsg(db)))")
        }
    }

    /// Every stored row: (resource, namespace, name, json).
    func loadAll() throws -> [(String, String, String, String)] {
        var rows: [(String, String, String, String)] = []
        try run("SELECT resource, namespace, name, json FROM objects", []) { s in
            func text(_ i: Int32) -> String { String(cString: sqlite3_column_text(s, i)) }
            rows.append((text(0), text(1), text(2), text(3)))
        }
        return rows
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
                            [resource, namespace, name, uid, revision, json])
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
