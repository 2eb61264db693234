import Foundation

/// What the agent writes to `pods/<ns>_<name>_<uid>/pod.json` so that after it is killed a new
/// agent can tell its pods' processes from reused pids: each container's pid and its kernel
/// start time.
struct PodRecord: Codable {
    var namespace: String
    var name: String
    var uid: String
    var podIP: String
    var startTime: String
    var gracePeriodSeconds: Double
    var containers: [String: ContainerRecord]
    /// Set once the pod was evicted: a new agent keeps it Failed instead of starting it again.
    var eviction: String?

    struct ContainerRecord: Codable {
        var pid: Int32
        /// /proc/<pid>/stat field 22.
        var startTicks: UInt64
        var startedAt: String
        var restartCount: Int
    }

    static func load(_ path: String) -> PodRecord? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(PodRecord.self, from: data)
    }

    func save(_ path: String) {
        guard let data = try? JSONEncoder().encode(self) else { return }
        let tmp = path + ".tmp"
        if FileManager.default.createFile(atPath: tmp, contents: data) { _ = rename(tmp, path) }
    }
}
