import CSystem
#if canImport(Glibc)
import Glibc
#endif

/// Starting and identifying local processes: posix_spawn (Swift cannot fork), a process group
/// per container, a pidfd to watch for exit without a SIGCHLD handler, and the kernel start time
/// that tells a recorded pid from a reused one.
enum ChildProcess {
    struct SpawnError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    /// Spawns `argv` in its own process group with stdout and stderr appended to `logPath`.
    /// The signal mask and dispositions are reset so a server that blocks SIGTERM for a
    /// signalfd does not hand that to its pods.
    static func spawn(argv: [String], environment: [String], workingDir: String?, logPath: String?) throws -> pid_t {
        guard let exe = argv.first else { throw SpawnError(message: "empty command") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        if let logPath {
            posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        if let dir = workingDir, !dir.isEmpty {
            guard let addchdir = addChdir else { throw SpawnError(message: "workingDir is not supported by this libc") }
            var st = stat()
            guard stat(dir, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
                throw SpawnError(message: "workingDir \"\(dir)\": not a directory")
            }
            _ = addchdir(&actions, dir)
        }
        // Descriptors the server forgot to mark close-on-exec (a listener, the database) must not
        // outlive it in a pod: a pod holding the API's listening socket would block a restart.
        if let closefrom = addClosefrom { _ = closefrom(&actions, 3) }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var defaults = sigset_t()
        sigfillset(&defaults)
        sigdelset(&defaults, SIGKILL)
        sigdelset(&defaults, SIGSTOP)
        posix_spawnattr_setsigmask(&attr, &empty)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setpgroup(&attr, 0)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) }; cEnv.forEach { free($0) } }
        var pid: pid_t = 0
        // A command without a slash is looked up on the pod's PATH, not the agent's.
        let rc: Int32
        if exe.contains("/") {
            rc = posix_spawn(&pid, exe, &actions, &attr, cArgs, cEnv)
        } else if let resolved = lookup(exe, environment: environment) {
            rc = posix_spawn(&pid, resolved, &actions, &attr, cArgs, cEnv)
        } else {
            throw SpawnError(message: "executable file \"\(exe)\" not found in $PATH")
        }
        guard rc == 0 else { throw SpawnError(message: "\(exe): \(String(cString: strerror(rc)))") }
        return pid
    }

    /// A volume bind-mounted into a container: `source` (a directory or file on the host) at
    /// `target`, read-only when asked.
    struct Bind: Equatable {
        let source: String
        let target: String
        let readOnly: Bool
    }

    /// Like `spawn`, but the process runs in a private mount namespace with `binds` mounted (a
    /// container with volumeMounts), or — with `joinMountNamespaceOf` — in that process's
    /// namespace (an exec probe of such a container). A command without a slash is searched on
    /// the pod's PATH after the mounts, so it may live in a volume.
    static func spawnInMountNamespace(argv: [String], environment: [String], workingDir: String?, logPath: String?,
                                      binds: [Bind], joinMountNamespaceOf joinPID: pid_t = 0) throws -> pid_t {
        guard let exe = argv.first, !exe.isEmpty else { throw SpawnError(message: "empty command") }
        let searchPath = environment.last { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) } ?? "/usr/bin:/bin"
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup($0) } + [nil]
        let sources = binds.map { strdup($0.source) }, targets = binds.map { strdup($0.target) }
        defer { (cArgs + cEnv + sources + targets).forEach { free($0) } }
        var cBinds = binds.indices.map { i in
            portico_bind(source: sources[i], target: targets[i], read_only: binds[i].readOnly ? 1 : 0)
        }
        var stage: Int32 = 0, err: Int32 = 0, index: Int32 = -1
        let pid = cBinds.withUnsafeMutableBufferPointer { b in
            portico_spawn_in_mount_namespace(exe, cArgs, cEnv, searchPath, logPath, workingDir, b.baseAddress, Int32(b.count),
                                             joinPID, &stage, &err, &index)
        }
        guard pid < 0 else { return pid }
        let reason = String(cString: strerror(err))
        let bind = index >= 0 && Int(index) < binds.count ? binds[Int(index)] : nil
        switch Int(stage) {
        case Int(PORTICO_SPAWN_UNSHARE), Int(PORTICO_SPAWN_USERNS):
            throw SpawnError(message: "volume mounts need a private mount namespace: unshare(CLONE_NEWNS) was refused and "
                + "an unprivileged user namespace could not be used either (\(reason)); run the agent as root or allow user namespaces")
        case Int(PORTICO_SPAWN_SETNS):
            throw SpawnError(message: "cannot enter the mount namespace of pid \(joinPID): \(reason)")
        case Int(PORTICO_SPAWN_PRIVATE):
            throw SpawnError(message: "making / private in the container's mount namespace: \(reason)")
        case Int(PORTICO_SPAWN_BIND):
            throw SpawnError(message: "mounting \(bind?.source ?? "?") at \(bind?.target ?? "?"): \(reason)")
        case Int(PORTICO_SPAWN_READONLY):
            throw SpawnError(message: "remounting \(bind?.target ?? "?") read-only: \(reason)")
        case Int(PORTICO_SPAWN_CHDIR):
            throw SpawnError(message: "workingDir \"\(workingDir ?? "")\": \(reason)")
        case Int(PORTICO_SPAWN_EXEC) where err == ENOENT && !exe.contains("/"):
            throw SpawnError(message: "executable file \"\(exe)\" not found in $PATH")
        case Int(PORTICO_SPAWN_EXEC):
            throw SpawnError(message: "\(exe): \(reason)")
        default:
            throw SpawnError(message: "starting \(exe): \(reason)")
        }
    }

    /// The first executable `name` on the PATH of `environment`.
    static func lookup(_ name: String, environment: [String]) -> String? {
        let path = environment.last { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) } ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    private typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
    private typealias AddClosefrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private typealias PidfdOpen = @convention(c) (pid_t, UInt32) -> Int32

    // glibc ≥ 2.29 and ≥ 2.36 have these; Swift's Glibc module does not import them (GNU only).
    private static let addChdir: AddChdir? = symbol("posix_spawn_file_actions_addchdir_np")
    private static let addClosefrom: AddClosefrom? = symbol("posix_spawn_file_actions_addclosefrom_np")
    private static let pidfdOpenFunction: PidfdOpen? = symbol("pidfd_open")

    private static func symbol<T>(_ name: String) -> T? {
        guard let handle = dlopen(nil, RTLD_NOW), let p = dlsym(handle, name) else { return nil }
        return unsafeBitCast(p, to: T.self)
    }

    /// A pidfd for `pid` (readable once it exits), or -1.
    static func pidfdOpen(_ pid: pid_t) -> Int32 {
        guard let f = pidfdOpenFunction else { return -1 }
        let fd = f(pid, 0)
        if fd >= 0 { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return fd
    }

    /// Field 22 of /proc/<pid>/stat: when the process started, in clock ticks since boot. With the
    /// pid it names one process for the life of the machine.
    static func startTime(_ pid: pid_t) -> UInt64? {
        guard let text = readFile("/proc/\(pid)/stat") else { return nil }
        // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state); starttime is field 22.
        guard fields.count > 19 else { return nil }
        return UInt64(fields[19])
    }

    /// True when `pid` exists, is not a zombie, and started at `startTime`.
    static func isAlive(_ pid: pid_t, startTime expected: UInt64) -> Bool {
        guard pid > 0, let text = readFile("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return false }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 19, fields[0] != "Z", fields[0] != "X" else { return false }
        return UInt64(fields[19]) == expected
    }

    /// Reaps an exited container: first SIGKILL to what is left of its process group (a container
    /// ends with its main process, as a runtime tears down its cgroup) — safe while the unreaped
    /// zombie still holds the pid — then its wait status; nil if it was not our child.
    static func reapContainer(_ pid: pid_t) -> Int32? {
        if let text = readFile("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") {
            let fields = text[text.index(after: close)...].split(separator: " ")
            if fields.count > 1, fields[0] == "Z", Int32(fields[1]) == getpid() { _ = kill(-pid, SIGKILL) }
        }
        return reap(pid)
    }

    /// Reaps `pid` if it has exited: its wait status, or nil if still running or not our child.
    static func reap(_ pid: pid_t) -> Int32? {
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        return r == pid ? status : nil
    }

    static func readFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, 4096) }
            if n <= 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Exit code and reason as the kubelet reports them: 128+signal for a signalled process.
    static func exitCode(fromWaitStatus s: Int32) -> (code: Int32, signal: Int32?) {
        let sig = s & 0x7f
        if sig == 0 { return ((s >> 8) & 0xff, nil) }
        return (128 + sig, sig)
    }
}
