import Foundation

/// Pod IPs from 127.1.0.0/16 (all of 127/8 reaches `lo` on Linux without setup). A new pod gets
/// an address not used recently; a `stableKey` (a StatefulSet pod's `namespace/name`) always gets
/// the same one. The stable table and the cursor are kept in a JSON file so identity survives
/// an agent restart.
final class PodIPAllocator {
    private struct State: Codable {
        var next: UInt32 = 1
        var stable: [String: String] = [:]
    }

    private let path: String
    private var state = State()
    private var inUse = Set<String>()
    private static let size: UInt32 = 1 << 16

    init(path: String) {
        self.path = path
        if let data = FileManager.default.contents(atPath: path),
           let s = try? JSONDecoder().decode(State.self, from: data) {
            state = s
        } else {
            // A new data directory starts at a random place in the block, so two Portico
            // instances on one machine (or a test run beside a demo) rarely hand out the same IP.
            state.next = UInt32.random(in: 1..<(Self.size - 256))
        }
    }

    /// Marks an address taken (an adopted pod's).
    func reserve(_ ip: String) { inUse.insert(ip) }

    func release(_ ip: String) { inUse.remove(ip) }

    /// The address for a new pod; the same one for the same `stableKey`.
    func allocate(stableKey: String?) -> String {
        if let k = stableKey, let ip = state.stable[k] {
            inUse.insert(ip)
            return ip
        }
        let reserved = Set(state.stable.values)
        var ip = ""
        for _ in 0..<Self.size {
            let n = state.next
            state.next = n + 1 >= Self.size - 1 ? 1 : n + 1
            // Skip .0 and .255 in the last octet: valid on lo, but confusing to read.
            if n & 0xff == 0 || n & 0xff == 0xff { continue }
            let candidate = "127.1.\(n >> 8).\(n & 0xff)"
            if !inUse.contains(candidate) && !reserved.contains(candidate) { ip = candidate; break }
        }
        precondition(!ip.isEmpty, "127.1.0.0/16 exhausted")
        inUse.insert(ip)
        if let k = stableKey { state.stable[k] = ip }
        save()
        return ip
    }

    /// Forgets a stable identity (its StatefulSet ordinal is gone for good).
    func forget(stableKey: String) {
        state.stable[stableKey] = nil
        save()
    }

    private func save() {
        guard let data = try? JSONEncoder().encode(state) else { return }
        let tmp = path + ".tmp"
        if FileManager.default.createFile(atPath: tmp, contents: data) { _ = rename(tmp, path) }
    }
}
