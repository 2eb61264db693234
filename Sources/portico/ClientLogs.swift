import ArgumentParser
import ControlPlane
import Foundation
import Glibc
import Objects

struct Logs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the output of a pod's container.",
        discussion: """
        Uses the API server's pods/NAME/log when it has one; otherwise reads the files the node \
        agent writes under --data (node/pods/<namespace>_<name>_<uid>/<container>.log, .previous.log \
        for the instance before the last restart, .log.1 for the rotated older part), after \
        looking up the pod's uid through the API. -f follows until Ctrl-C or the pod is deleted.
        """)

    @OptionGroup var options: ClientOptions

    @Option(name: [.customShort("c"), .customLong("container")], help: "The container (default: the pod's only or first one).")
    var container: String?

    @Flag(name: [.customShort("f"), .customLong("follow")], help: "Keep printing new output.")
    var follow = false

    @Flag(name: [.customShort("p"), .customLong("previous")], help: "The output of the previous instance of the container.")
    var previous = false

    @Option(name: .customLong("data"), help: "The data directory of `portico serve` (for reading log files directly).")
    var data: String = "./.portico"

    @Argument(help: "POD or pod/POD")
    var pod: String

    func run() throws {
        try runClient {
            var name = pod
            if let slash = pod.firstIndex(of: "/") {
                guard try ResourceType.require(String(pod[..<slash])) == .pods else { throw ClientFailure.usage("logs: only pods have logs") }
                name = String(pod[pod.index(after: slash)...])
            }
            let api = try options.client()
            let podPath = ResourceType.pods.path(namespace: options.namespace, name: name)
            let o = try api.json("GET", podPath)
            let names = (o[path: ["spec", "containers"]]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
            let chosen: String
            if let c = container {
                guard names.contains(c) else {
                    throw ClientFailure.failed("container \(c) is not valid for pod \(name) (choose one of: \(names.joined(separator: ", ")))")
                }
                chosen = c
            } else {
                guard let first = names.first else { throw ClientFailure.failed("pod \(name) has no containers") }
                if names.count > 1 { writeErr("Defaulted container \"\(first)\" out of: \(names.joined(separator: ", "))\n") }
                chosen = first
            }
            // The API server's log subresource, when it has one.
            var query = "?container=\(percentEncode(chosen))"
            if previous { query += "&previous=true" }
            if follow {
                var served = false
                do {
                    try api.stream(podPath + "/log" + query + "&follow=true") { line in served = true; writeOut(line + "\n"); return true }
                    return
                } catch let f as ClientFailure where !served && f.message.contains("(NotFound)") && f.message.contains("could not find the requested resource") {
                    // no log subresource: read the files
                }
            } else {
                let r = try api.request("GET", podPath + "/log" + query)
                if r.ok { writeOut(String(decoding: r.body, as: UTF8.self)); return }
            }
            let identity = PodIdentity(namespace: o.namespace.isEmpty ? options.namespace : o.namespace, name: name, uid: o.uid)
            // `portico serve` gives the node agent <data>/node; an agent run on its own uses <data> itself.
            let candidates = [data + "/node", data].map {
                NodeAgent.logPath(dataDirectory: $0, pod: identity, container: chosen, previous: previous)
            }
            let path = candidates.first { FileManager.default.fileExists(atPath: $0) } ?? candidates[0]
            guard FileManager.default.fileExists(atPath: path) else {
                if previous { throw ClientFailure.failed("previous terminated container \"\(chosen)\" in pod \"\(name)\" not found") }
                throw ClientFailure.failed("no log file for container \"\(chosen)\" of pod \"\(name)\" at \(path) (is --data the directory `portico serve` uses?)")
            }
            if !previous, let older = FileManager.default.contents(atPath: path + ".1") { FileHandle.standardOutput.write(older) }
            try tail(path, follow: follow && !previous, api: api, podPath: podPath, uid: o.uid)
        }
    }

    /// Prints the file, then (following) new bytes as they are written; a file that shrinks was
    /// rotated (copied to .1 and truncated), so reading restarts at its beginning.
    func tail(_ path: String, follow: Bool, api: APIClient, podPath: String, uid: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ClientFailure.failed("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 65536)
        var offset: off_t = 0
        var lastCheck = Date()
        while true {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) }
            if n > 0 {
                FileHandle.standardOutput.write(Data(buffer[..<n]))
                offset += off_t(n)
                continue
            }
            guard follow else { return }
            var st = stat()
            if fstat(fd, &st) == 0 && st.st_size < offset { offset = 0; continue }
            if Date().timeIntervalSince(lastCheck) > 2 {
                lastCheck = Date()
                let r = try api.request("GET", podPath)
                if r.status == 404 || ((try? r.json())?.uid ?? uid) != uid { return }   // the pod is gone
            }
            usleep(200_000)
        }
    }
}
