import CSystem
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes a projected volume (ConfigMap, Secret) the way the kubelet's atomic writer does, so a
/// reader sees either the old set of files or the new one, never a mix:
///
///     <dir>/..2026_11_25_06_07_20.123456789/<files>   one directory per version
///     <dir>/..data -> ..2026_11_25_06_07_20.123456789
///     <dir>/<key>  -> ..data/<key>                     one link per top-level name
///
/// An update writes a new version directory, points a temporary link at it and rename(2)s that
/// over `..data` (atomic), then adds and removes the top-level links and deletes the old version.
struct AtomicWriter {
    let directory: String

    struct File: Equatable {
        var bytes: [UInt8]
        var mode: Int
    }

    struct WriteError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    static let dataLink = "..data"

    /// Replaces the volume's contents with `files` (relative path → bytes and mode).
    func write(_ files: [String: File]) throws {
        try makeDirectory(directory, mode: 0o755)
        let old = currentVersion()
        let version = try newVersionDirectory()
        let versionPath = directory + "/" + version
        do {
            for path in files.keys.sorted() {
                let f = files[path]!
                let full = versionPath + "/" + path
                let parent = (full as NSString).deletingLastPathComponent
                if parent != versionPath { try makeDirectory(parent, mode: 0o755, intermediate: true) }
                try writeFile(full, f.bytes, mode: f.mode)
            }
            // The new version becomes visible in one step.
            let tmp = directory + "/..data_tmp"
            _ = unlink(tmp)
            guard symlink(version, tmp) == 0 else { throw WriteError(message: "symlink \(tmp): \(Self.errno())") }
            guard rename(tmp, directory + "/" + Self.dataLink) == 0 else {
                throw WriteError(message: "rename \(tmp) to ..data: \(Self.errno())")
            }
        } catch {
            try? FileManager.default.removeItem(atPath: versionPath)
            throw error
        }
        let top = Set(files.keys.map { String($0.split(separator: "/", maxSplits: 1)[0]) })
        for name in top {
            let link = directory + "/" + name
            if (try? FileManager.default.destinationOfSymbolicLink(atPath: link)) == Self.dataLink + "/" + name { continue }
            _ = unlink(link)
            guard symlink(Self.dataLink + "/" + name, link) == 0 else { throw WriteError(message: "symlink \(link): \(Self.errno())") }
        }
        if let old, old != version { try? FileManager.default.removeItem(atPath: directory + "/" + old) }
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        where !entry.hasPrefix("..") && !top.contains(entry) {
            var st = stat()
            if lstat(directory + "/" + entry, &st) == 0, (st.st_mode & S_IFMT) == S_IFLNK { _ = unlink(directory + "/" + entry) }
        }
    }

    /// The version directory `..data` points at, if any.
    func currentVersion() -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: directory + "/" + Self.dataLink)
    }

    private func newVersionDirectory() throws -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = ts.tv_sec
        var tm = tm()
        gmtime_r(&t, &tm)
        func p(_ v: Int32, _ w: Int = 2) -> String { String(repeating: "0", count: max(0, w - String(v).count)) + String(v) }
        let base = "..\(tm.tm_year + 1900)_\(p(tm.tm_mon + 1))_\(p(tm.tm_mday))_\(p(tm.tm_hour))_\(p(tm.tm_min))_\(p(tm.tm_sec))."
            + p(Int32(ts.tv_nsec), 9)
        for attempt in 0..<100 {
            let name = attempt == 0 ? base : base + "_\(attempt)"
            if mkdir(directory + "/" + name, 0o755) == 0 {
                _ = chmod(directory + "/" + name, 0o755)
                return name
            }
            if Glibc.errno != EEXIST { break }
        }
        throw WriteError(message: "mkdir in \(directory): \(Self.errno())")
    }

    private func writeFile(_ path: String, _ bytes: [UInt8], mode: Int) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw WriteError(message: "create \(path): \(Self.errno())") }
        defer { close(fd) }
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, bytes.count - off) }
            if n < 0 && Glibc.errno == EINTR { continue }
            guard n > 0 else { throw WriteError(message: "write \(path): \(Self.errno())") }
            off += n
        }
        // The exact mode, whatever the umask.
        guard fchmod(fd, mode_t(mode)) == 0 else { throw WriteError(message: "chmod \(path): \(Self.errno())") }
    }

    private func makeDirectory(_ path: String, mode: mode_t, intermediate: Bool = true) throws {
        var st = stat()
        if stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR { return }
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: intermediate,
                                                    attributes: [.posixPermissions: Int(mode)])
        } catch {
            throw WriteError(message: "mkdir \(path): \(error.localizedDescription)")
        }
    }

    static func errno() -> String { String(cString: strerror(Glibc.errno)) }
}
