import CSystem
import Foundation
import Objects
#if canImport(Glibc)
import Glibc
#endif

/// A volume of a running pod, set up on the host: the directory (or file) its mounts bind.
final class PreparedVolume {
    let spec: VolumeSpec
    /// What a mount of the whole volume binds.
    let path: String
    /// The volume itself is read-only (a ReadOnlyMany claim).
    let readOnly: Bool
    /// Of the ConfigMap/Secret last projected, to skip unchanged objects when re-syncing.
    var resourceVersion: String?
    /// The last re-sync problem logged (logged once, until it changes).
    var syncProblem: String?

    init(spec: VolumeSpec, path: String, readOnly: Bool) {
        self.spec = spec; self.path = path; self.readOnly = readOnly
    }
}

/// Pod volumes: where each kind lives on the host, setting them up before the first container
/// starts, binding them into each container's mount namespace, keeping projected ConfigMaps and
/// Secrets in sync, enforcing emptyDir `sizeLimit`, and removing what a pod leaves behind.
///
/// Layout under the pod's directory (as the kubelet's `pods/<uid>/volumes/<plugin>/<name>`):
///
///     volumes/kubernetes.io~empty-dir/<name>/
///     volumes/kubernetes.io~configmap/<name>/   (atomic-writer layout, see AtomicWriter)
///     volumes/kubernetes.io~secret/<name>/      (kubernetes.io~secret itself is 0700)
///
/// hostPath and persistentVolumeClaim volumes bind their own host directory.
extension NodeAgent {
    static let emptyDirPlugin = "kubernetes.io~empty-dir"
    static let configMapPlugin = "kubernetes.io~configmap"
    static let secretPlugin = "kubernetes.io~secret"
    /// Host paths created as mount points, one per line (removed with the pod if still empty).
    static let mountPointsFile = "mountpoints"

    // MARK: - Setup

    /// The pod's volumes, parsed once.
    func volumeSpecs(_ rt: PodRuntime) throws -> [VolumeSpec] {
        if let v = rt.volumeSpecs { return v }
        let raw = rt.pod.spec?.volumes ?? []
        var out: [VolumeSpec] = []
        for (i, v) in raw.enumerated() {
            let spec = try VolumeSpec.parse(v, index: i)
            guard !out.contains(where: { $0.name == spec.name }) else {
                throw VolumeError.invalid("spec.volumes[\(i)].name: duplicate volume \"\(spec.name)\"")
            }
            out.append(spec)
        }
        rt.volumeSpecs = out
        return out
    }

    /// Sets up every volume of the pod not set up yet (the kubelet mounts all of a pod's volumes
    /// before any container starts). Throws the first problem; a later call resumes.
    func prepareVolumes(_ rt: PodRuntime) throws {
        let specs = try volumeSpecs(rt)
        // Claims first: a pod whose claim is not bound is not schedulable, whatever else it has.
        for spec in specs where rt.volumes[spec.name] == nil {
            if case .persistentVolumeClaim(let claim, let readOnly) = spec.source {
                rt.volumes[spec.name] = try prepareClaim(spec, claim: claim, readOnly: readOnly, rt)
            }
        }
        rt.unschedulable = nil
        for spec in specs where rt.volumes[spec.name] == nil {
            switch spec.source {
            case .emptyDir(let medium, let limit, _):
                let dir = rt.dir + "/volumes/\(Self.emptyDirPlugin)/\(spec.name)"
                try makeVolumeDirectory(dir, mode: 0o777, spec)
                if medium == "Memory" { try mountMemory(dir, limit: limit, spec) }
                rt.volumes[spec.name] = PreparedVolume(spec: spec, path: dir, readOnly: false)
            case .hostPath(let path, let type):
                try checkHostPath(path, type: type, spec)
                rt.volumes[spec.name] = PreparedVolume(spec: spec, path: path, readOnly: false)
            case .projected(let p):
                let plugin = p.kind == "Secret" ? Self.secretPlugin : Self.configMapPlugin
                let parent = rt.dir + "/volumes/" + plugin
                try makeVolumeDirectory(parent, mode: p.kind == "Secret" ? 0o700 : 0o755, spec)
                let v = PreparedVolume(spec: spec, path: parent + "/" + spec.name, readOnly: false)
                try project(v, p, rt)
                rt.volumes[spec.name] = v
            case .persistentVolumeClaim:
                break
            }
        }
    }

    private func prepareClaim(_ spec: VolumeSpec, claim: String, readOnly: Bool, _ rt: PodRuntime) throws -> PreparedVolume {
        switch claimLookup?(rt.id.namespace, claim) ?? .missing {
        case .bound(let path, let volumeReadOnly):
            var st = stat()
            guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
                throw VolumeError.mount("MountVolume.SetUp failed for volume \"\(spec.name)\" : the data directory \(path) of persistentvolumeclaim \"\(claim)\" is not a directory")
            }
            return PreparedVolume(spec: spec, path: path, readOnly: readOnly || volumeReadOnly)
        case .pending(let reason):
            let m = "persistentvolumeclaim \"\(claim)\" not bound" + (reason.isEmpty ? "" : ": \(reason)")
            rt.unschedulable = m
            throw VolumeError(kind: .unschedulable, message: m)
        case .missing:
            let m = "persistentvolumeclaim \"\(claim)\" not found"
            rt.unschedulable = m
            throw VolumeError(kind: .unschedulable, message: m)
        }
    }

    private func makeVolumeDirectory(_ dir: String, mode: mode_t, _ spec: VolumeSpec) throws {
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } catch {
            throw VolumeError.mount("MountVolume.SetUp failed for volume \"\(spec.name)\" : mkdir \(dir): \(error.localizedDescription)")
        }
        _ = chmod(dir, mode)
    }

    /// `medium: Memory`: a tmpfs on the host at the volume's directory, so every container of the
    /// pod shares it (sized by `sizeLimit`, as the kubelet does).
    private func mountMemory(_ dir: String, limit: Int64?, _ spec: VolumeSpec) throws {
        if Self.isMountPoint(dir) { return }
        let options = "mode=0777" + (limit.map { ",size=\($0)" } ?? "")
        guard portico_mount_tmpfs(dir, options) == 0 else {
            throw VolumeError.mount("MountVolume.SetUp failed for volume \"\(spec.name)\" : mount tmpfs at \(dir): \(String(cString: strerror(errno)))")
        }
    }

    static func isMountPoint(_ path: String) -> Bool {
        var a = stat(), b = stat()
        guard stat(path, &a) == 0, stat(path + "/..", &b) == 0 else { return false }
        return a.st_dev != b.st_dev
    }

    /// Kubernetes' hostPath `type` checks (and the *OrCreate creations).
    func checkHostPath(_ path: String, type: String, _ spec: VolumeSpec) throws {
        func fail(_ why: String) -> VolumeError {
            VolumeError.mount("MountVolume.SetUp failed for volume \"\(spec.name)\" : hostPath type check failed: \(path) \(why)")
        }
        var st = stat()
        let exists = stat(path, &st) == 0
        let kind = st.st_mode & S_IFMT
        switch type {
        case "":
            return
        case "DirectoryOrCreate":
            if !exists {
                // As the kubelet: MkdirAll with 0755 (a FileOrCreate does not make parents).
                do {
                    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true,
                                                            attributes: [.posixPermissions: 0o755])
                } catch {
                    throw fail("could not be created: \(error.localizedDescription)")
                }
                _ = chmod(path, 0o755)
                return
            }
            guard kind == S_IFDIR else { throw fail("is not a directory") }
        case "Directory":
            guard exists else { throw fail("does not exist") }
            guard kind == S_IFDIR else { throw fail("is not a directory") }
        case "FileOrCreate":
            if !exists {
                let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
                guard fd >= 0 else { throw fail("could not be created: \(String(cString: strerror(errno)))") }
                _ = fchmod(fd, 0o644)
                close(fd)
                return
            }
            guard kind == S_IFREG else { throw fail("is not a file") }
        case "File":
            guard exists else { throw fail("does not exist") }
            guard kind == S_IFREG else { throw fail("is not a file") }
        case "Socket":
            guard exists, kind == S_IFSOCK else { throw fail("is not a socket file") }
        case "CharDevice":
            guard exists, kind == S_IFCHR else { throw fail("is not a character device") }
        case "BlockDevice":
            guard exists, kind == S_IFBLK else { throw fail("is not a block device") }
        default:
            throw VolumeError.invalid("volume \"\(spec.name)\": unsupported hostPath type \"\(type)\"")
        }
    }

    /// Writes a ConfigMap or Secret into the volume; unchanged objects (same resourceVersion)
    /// are skipped.
    func project(_ v: PreparedVolume, _ p: VolumeSpec.Projection, _ rt: PodRuntime) throws {
        let what = "\(p.kind.lowercased()) \"\(p.objectName)\""
        let contents = configContents?(rt.id.namespace, p.kind, p.objectName)
        if contents == nil && !p.optional { throw VolumeError.config("\(what) not found") }
        let version = contents?.resourceVersion ?? ""
        if v.resourceVersion == version, AtomicWriter(directory: v.path).currentVersion() != nil { return }
        let entries = contents?.entries ?? [:]
        var files: [String: AtomicWriter.File] = [:]
        if let items = p.items {
            for item in items {
                guard let bytes = entries[item.key] else {
                    if p.optional { continue }
                    throw VolumeError.config("couldn't find key \(item.key) in \(p.kind) \(rt.id.namespace)/\(p.objectName)")
                }
                files[item.path] = .init(bytes: bytes, mode: item.mode ?? p.defaultMode)
            }
        } else {
            for (key, bytes) in entries {
                // Keys are plain file names (the API server's key rule); skip what could escape.
                guard !key.contains("/"), !key.hasPrefix(".."), !key.isEmpty else {
                    log.warning("pod \(rt.id) volume \(v.spec.name): key \"\(key)\" of \(what) is not a valid file name, skipped")
                    continue
                }
                files[key] = .init(bytes: bytes, mode: p.defaultMode)
            }
        }
        do {
            try AtomicWriter(directory: v.path).write(files)
        } catch {
            throw VolumeError.mount("MountVolume.SetUp failed for volume \"\(v.spec.name)\" : \(error)")
        }
        v.resourceVersion = version
    }

    // MARK: - Mounts of a container

    /// The binds for `c`'s `volumeMounts`, mount points created on the host where missing.
    func binds(for c: ContainerRuntime, in rt: PodRuntime) throws -> [ChildProcess.Bind] {
        let raw = c.spec.volumeMounts ?? []
        var out: [ChildProcess.Bind] = []
        for (i, m) in raw.enumerated() {
            let mount = try VolumeMountSpec.parse(m, container: c.spec.name, index: i)
            guard let v = rt.volumes[mount.name] else {
                throw VolumeError.invalid("spec.containers[\"\(c.spec.name)\"].volumeMounts[\(i)].name: no volume \"\(mount.name)\" in spec.volumes")
            }
            var source = v.path
            if !mount.subPath.isEmpty {
                source = try subPathSource(v, mount.subPath)
            }
            var st = stat()
            guard stat(source, &st) == 0 else {
                throw VolumeError.mount("volume \"\(mount.name)\": \(source): \(String(cString: strerror(errno)))")
            }
            try createMountPoint(mount.mountPath, directory: (st.st_mode & S_IFMT) == S_IFDIR, rt)
            out.append(ChildProcess.Bind(source: source, target: mount.mountPath, readOnly: mount.readOnly || v.readOnly))
        }
        // Parents before children, so a mount inside another volume's mount lands on top of it.
        return out.enumerated().sorted {
            let (a, b) = ($0.element.target.split(separator: "/").count, $1.element.target.split(separator: "/").count)
            return a != b ? a < b : $0.offset < $1.offset
        }.map(\.element)
    }

    /// `subPath` inside the volume, created as a directory if missing (as the kubelet does for
    /// writable volumes); a path whose symlinks lead outside the volume is refused.
    private func subPathSource(_ v: PreparedVolume, _ sub: String) throws -> String {
        let full = v.path + "/" + sub
        var st = stat()
        if lstat(full, &st) != 0 {
            if case .projected = v.spec.source {
                throw VolumeError.mount("volume \"\(v.spec.name)\": subPath \"\(sub)\" does not exist")
            }
            do {
                try FileManager.default.createDirectory(atPath: full, withIntermediateDirectories: true)
            } catch {
                throw VolumeError.mount("volume \"\(v.spec.name)\": subPath \"\(sub)\": \(error.localizedDescription)")
            }
            _ = chmod(full, 0o777)
        }
        guard let base = Self.realPath(v.path), let resolved = Self.realPath(full) else {
            throw VolumeError.mount("volume \"\(v.spec.name)\": subPath \"\(sub)\" cannot be resolved")
        }
        guard resolved == base || resolved.hasPrefix(base == "/" ? "/" : base + "/") else {
            throw VolumeError.mount("volume \"\(v.spec.name)\": subPath \"\(sub)\" resolves to \(resolved), outside the volume")
        }
        return resolved
    }

    static func realPath(_ p: String) -> String? {
        guard let r = realpath(p, nil) else { return nil }
        defer { free(r) }
        return String(cString: r)
    }

    /// mkdir -p of a mount point (or an empty file for a file mount), remembering what was
    /// created so the pod's removal can take it away again.
    private func createMountPoint(_ path: String, directory: Bool, _ rt: PodRuntime) throws {
        var st = stat()
        if stat(path, &st) == 0 {
            guard ((st.st_mode & S_IFMT) == S_IFDIR) == directory else {
                throw VolumeError.mount("mount point \(path) is a \(directory ? "file" : "directory") but the volume is a \(directory ? "directory" : "file")")
            }
            // Made by another of our pods (replicas share mount paths): this pod shares the
            // ownership, so whichever of them goes last removes it.
            let made = pods.values.filter { $0 !== rt }.flatMap(\.createdMountPoints)
            var shared = false
            var p = path
            while p != "/" && !p.isEmpty {
                if made.contains(p) && !rt.createdMountPoints.contains(p) { rt.createdMountPoints.append(p); shared = true }
                p = (p as NSString).deletingLastPathComponent
            }
            if shared { saveMountPoints(rt) }
            return
        }
        var missing: [String] = []
        var p = path
        while p != "/" && !p.isEmpty && stat(p, &st) != 0 {
            missing.append(p)
            p = (p as NSString).deletingLastPathComponent
        }
        for (i, m) in missing.reversed().enumerated() {
            let isLast = i == missing.count - 1
            let ok: Bool
            if isLast && !directory {
                let fd = open(m, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
                ok = fd >= 0 || errno == EEXIST
                if fd >= 0 { close(fd) }
            } else {
                ok = mkdir(m, 0o755) == 0 || errno == EEXIST
            }
            guard ok else { throw VolumeError.mount("creating mount point \(m): \(String(cString: strerror(errno)))") }
            rt.createdMountPoints.append(m)
        }
        saveMountPoints(rt)
    }

    private func saveMountPoints(_ rt: PodRuntime) {
        let text = rt.createdMountPoints.joined(separator: "\n") + "\n"
        _ = FileManager.default.createFile(atPath: rt.dir + "/" + Self.mountPointsFile, contents: Data(text.utf8))
    }

    // MARK: - Periodic work: projected updates and emptyDir limits

    func scheduleVolumeCheck() {
        timers.after(configuration.volumeCheckInterval) { [weak self] in
            guard let self else { return }
            for rt in Array(self.pods.values) where !rt.terminating && rt.eviction == nil { self.checkVolumes(rt) }
            self.scheduleVolumeCheck()
        }
    }

    func checkVolumes(_ rt: PodRuntime) {
        for v in rt.volumes.values {
            switch v.spec.source {
            case .projected(let p):
                do {
                    try project(v, p, rt)
                    v.syncProblem = nil
                } catch {
                    // The files keep their last contents, as the kubelet leaves them.
                    let m = "\(error)"
                    if v.syncProblem != m { log.warning("pod \(rt.id) volume \(v.spec.name): not updated: \(m)"); v.syncProblem = m }
                }
            case .emptyDir(_, let limit?, let text):
                let used = Self.diskUsage(v.path, budget: 100_000)
                if used > limit {
                    evict(rt, message: "Usage of EmptyDir volume \"\(v.spec.name)\" exceeds the limit \"\(text ?? String(limit))\".")
                    return
                }
            default:
                break
            }
        }
    }

    /// Bytes allocated under `path` (st_blocks, like du), not following symlinks or crossing
    /// into other filesystems; stops after `budget` entries.
    static func diskUsage(_ path: String, budget: Int) -> Int64 {
        var total: Int64 = 0
        var remaining = budget
        var st = stat()
        guard lstat(path, &st) == 0 else { return 0 }
        let dev = st.st_dev
        var stack = [path]
        while let dir = stack.popLast(), remaining > 0 {
            guard let d = opendir(dir) else { continue }
            defer { closedir(d) }
            while let e = readdir(d), remaining > 0 {
                let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name == "." || name == ".." { continue }
                remaining -= 1
                let full = dir + "/" + name
                guard lstat(full, &st) == 0 else { continue }
                total += Int64(st.st_blocks) * 512
                if (st.st_mode & S_IFMT) == S_IFDIR && st.st_dev == dev { stack.append(full) }
            }
        }
        return total
    }

    /// The kubelet's eviction for a local-storage limit: every container killed at once, the pod
    /// Failed with reason Evicted, an Event saying why.
    func evict(_ rt: PodRuntime, message: String) {
        guard rt.eviction == nil, !rt.terminating else { return }
        rt.eviction = message
        log.warning("pod \(rt.id) evicted: \(message)")
        event(rt, "Warning", "Evicted", message)
        for c in rt.containers {
            c.stopProbes()
            c.restartTimer?.cancel()
            c.restartTimer = nil
            c.ready = false
            if c.pid > 0 {
                event(rt, "Normal", "Killing", "Stopping container \(c.spec.name)")
                signal(c, SIGKILL)
            } else if !c.finished {
                c.finished = true
                c.everRan = true
                c.state = Self.evictedContainerState
            }
        }
        saveRecord(rt)
        publish(rt)
    }

    /// What a container of an evicted pod shows when there was no process to kill (kubelet's words).
    static let evictedContainerState = ContainerState(terminated: .init(
        exitCode: 137, reason: "ContainerStatusUnknown", message: "The container could not be located when the pod was terminated"))

    // MARK: - Removal

    /// Undoes what the pod's volumes did to the host before its directory is removed: tmpfs
    /// emptyDirs are unmounted, created mount points removed if still empty and not used by
    /// another pod's mounts.
    func cleanUpVolumes(podDirectory dir: String, except: PodRuntime? = nil) {
        let emptyDirs = dir + "/volumes/\(Self.emptyDirPlugin)"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: emptyDirs)) ?? [] {
            let p = emptyDirs + "/" + name
            if Self.isMountPoint(p) { _ = portico_unmount_detach(p) }
        }
        guard let text = try? String(contentsOfFile: dir + "/" + Self.mountPointsFile, encoding: .utf8) else { return }
        // A path another pod mounts on (or below) stays: removing it would detach that mount.
        var inUse: [String] = []
        for rt in pods.values where rt.dir != dir {
            for c in rt.containers {
                for m in c.spec.volumeMounts ?? [] { if let p = m["mountPath"]?.stringValue { inUse.append(p) } }
            }
        }
        for path in text.split(separator: "\n").map(String.init).reversed() where !path.isEmpty {
            if inUse.contains(where: { $0 == path || $0.hasPrefix(path + "/") }) { continue }
            var st = stat()
            guard lstat(path, &st) == 0 else { continue }
            if (st.st_mode & S_IFMT) == S_IFDIR {
                _ = rmdir(path)
            } else if (st.st_mode & S_IFMT) == S_IFREG && st.st_size == 0 {
                _ = unlink(path)
            }
        }
    }
}
