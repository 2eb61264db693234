#if canImport(Glibc)
import Glibc
#endif

/// The variables the agent puts in every container's environment so that a new agent can find
/// the processes of its pods without their record (a server killed between a spawn and the
/// record write). A runtime labels its containers instead (the kubelet finds its own by the
/// `io.kubernetes.pod.uid` label); Portico's containers are bare processes, and the environment
/// is what the kernel keeps for each one (/proc/<pid>/environ). Users see these names in `env`.
enum ProcessMarker {
    /// The agent's data directory (symlinks resolved): two agents never take each other's processes.
    static let node = "PORTICO_NODE"
    static let podUID = "PORTICO_POD_UID"
    static let container = "PORTICO_CONTAINER"
    /// Set for an exec probe's command: such a process is never a container, only a leftover.
    static let execProbe = "PORTICO_EXEC_PROBE"

    /// A live process carrying a node's marker.
    struct Found: Equatable {
        var pid: pid_t
        var parent: pid_t
        var group: pid_t
        /// /proc/<pid>/stat field 22 (with the pid, names the process for the machine's life).
        var startTicks: UInt64
        var podUID: String
        var container: String
        var execProbe: Bool
    }

    /// Processes whose environment carries `PORTICO_NODE=node`. Bounded: at most `limit` /proc
    /// entries and the first `maxEnvironment` bytes of each environment are read; processes that
    /// cannot be read (another user's, gone meanwhile) and zombies are skipped.
    static func scan(node: String, limit: Int = 1 << 16, maxEnvironment: Int = 1 << 18) -> [Found] {
        guard let dir = opendir("/proc") else { return [] }
        defer { closedir(dir) }
        let me = getpid()
        let needle = Array("\(Self.node)=\(node)".utf8) + [0]
        var out: [Found] = []
        var seen = 0
        while seen < limit, let entry = readdir(dir) {
            seen += 1
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let pid = pid_t(name), pid != me,
                  let env = readBytes("/proc/\(name)/environ", max: maxEnvironment),
                  let vars = markers(env, needle: needle),
                  let stat = ChildProcess.readFile("/proc/\(name)/stat"), let close = stat.lastIndex(of: ")") else { continue }
            // After the command name: state, ppid, pgrp, … starttime (field 22).
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 19, fields[0] != "Z", fields[0] != "X",
                  let parent = pid_t(fields[1]), let group = pid_t(fields[2]), let ticks = UInt64(fields[19]),
                  let uid = vars[podUID], !uid.isEmpty else { continue }
            out.append(Found(pid: pid, parent: parent, group: group, startTicks: ticks, podUID: uid,
                             container: vars[container] ?? "", execProbe: vars[execProbe] != nil))
        }
        return out
    }

    /// The PORTICO_* variables of an environment block, or nil if it lacks `needle`
    /// (`PORTICO_NODE=<node>\0`, matched as a whole entry).
    static func markers(_ env: [UInt8], needle: [UInt8]) -> [String: String]? {
        var out: [String: String] = [:]
        var matched = false
        var start = 0
        let prefix = Array("PORTICO_".utf8)
        while start < env.count {
            let end = env[start...].firstIndex(of: 0) ?? env.count
            let entry = env[start..<end]
            if entry.starts(with: prefix), let eq = entry.firstIndex(of: UInt8(ascii: "=")) {
                if end < env.count, env[start...end].elementsEqual(needle) { matched = true }
                out[String(decoding: entry[..<eq], as: UTF8.self)] = String(decoding: entry[(eq + 1)...], as: UTF8.self)
            }
            start = end + 1
        }
        return matched ? out : nil
    }

    private static func readBytes(_ path: String, max: Int) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while out.count < max {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, Swift.min(4096, max - out.count)) }
            if n < 0 { return nil }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return out
    }

    /// The wall-clock time (seconds since the epoch) a process started: boot time plus its start
    /// ticks. Nil if /proc/stat has no `btime`.
    static func startSeconds(ticks: UInt64) -> Int64? {
        guard let stat = ChildProcess.readFile("/proc/stat"),
              let line = stat.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
              let boot = Int64(line.split(separator: " ").last ?? "") else { return nil }
        let hz = Int64(sysconf(Int32(_SC_CLK_TCK)))
        guard hz > 0 else { return nil }
        return boot + Int64(ticks) / hz
    }
}
