import ArgumentParser
import Reactor
import Server
#if canImport(Glibc)
import Glibc
#endif

/// `portico echo`: the reference backend used by the demo, the tests and the benchmarks.
struct Echo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the built-in echo backend.",
        discussion: """
        Every request gets 200 and a JSON body describing it (method, path, query, host, protocol,
        headers, body length, this backend's name and address). Request headers for tests:
          X-Echo-Status: NNN     answer with that status
          X-Echo-Delay-Ms: N     wait N ms before answering
          X-Echo-Bytes: N        answer with N bytes of body instead of JSON
          X-Echo-Chunked: 1      send the body chunked
          X-Echo-Close: 1        close the connection after the response
        A WebSocket upgrade is accepted and every frame is echoed back.
        --show-env and --show-file add an "env" and a "files" object to the JSON: the variables as
        the process got them, and the files as they are at the time of the request (a mounted
        ConfigMap's update shows at once; an environment value only after a restart).
        """)

    @Option(help: "Address to listen on (IP:PORT; port 0 picks a free one).")
    var listen: String = "127.0.0.1:9101"

    @Option(help: "Name reported in every response.")
    var name: String = "echo"

    @Option(name: .customLong("show-env"), help: "An environment variable to report in every JSON response (repeatable).")
    var showEnv: [String] = []

    @Option(name: .customLong("show-file"), help: "A file whose contents (up to 4 KiB) to report in every JSON response (repeatable).")
    var showFile: [String] = []

    func run() throws {
        guard let address = SocketAddress(parsing: listen) else {
            throw ValidationError("--listen: '\(listen)' is not an IP:PORT address")
        }
        signal(SIGPIPE, SIG_IGN)
        let loop = EventLoop()
        let name = self.name
        var env: [(String, String?)] = []
        for v in showEnv { env.append((v, getenv(v).map { String(cString: $0) })) }
        let files = showFile
        var listenText = ""
        let server = try HTTPServer(loop: loop, address: address, name: "echo") { request in
            EchoHandler.reply(to: request, name: name, listen: listenText, env: env, files: files)
        }
        listenText = server.boundAddress.description
        Log("echo").info("echo \(name) listening on \(listenText)")
        loop.run()
    }
}

enum EchoHandler {
    static func reply(to r: ServerRequest, name: String, listen: String,
                      env: [(String, String?)] = [], files: [String] = []) -> ServerReply {
        if r.header("upgrade")?.lowercased() == "websocket", let key = r.header("sec-websocket-key") {
            return .webSocketEcho(accept: WebSocket.acceptValue(key: key))
        }
        let status = r.header("x-echo-status").flatMap { Int($0) }.map { (100...599).contains($0) ? $0 : 200 } ?? 200
        let chunked = r.header("x-echo-chunked") == "1"
        let close = r.header("x-echo-close") == "1"
        var response: ServerResponse
        if let n = r.header("x-echo-bytes").flatMap({ UInt64($0) }) {
            response = ServerResponse(status: status, headers: [("Content-Type", "application/octet-stream")],
                                      body: .pattern(count: n), chunked: chunked, close: close)
        } else {
            var json = "{"
            json += "\"name\":\(quote(name)),\"listen\":\(quote(listen)),"
            json += "\"method\":\(quote(r.method)),\"path\":\(quote(r.path)),\"query\":\(quote(r.query)),"
            json += "\"host\":\(quote(r.host)),\"protocol\":\"HTTP/1.\(r.versionMinor)\","
            json += "\"headers\":{"
            var seen: [String] = []
            for (n, _) in r.headers {
                let lower = n.lowercased()
                if seen.contains(lower) { continue }
                seen.append(lower)
                json += (seen.count > 1 ? "," : "") + "\(quote(lower)):\(quote(r.header(lower) ?? ""))"
            }
            json += "},\"body_length\":\(r.bodyLength)"
            if !env.isEmpty {
                json += ",\"env\":{" + env.map { "\(quote($0.0)):\($0.1.map(quote) ?? "null")" }.joined(separator: ",") + "}"
            }
            if !files.isEmpty {
                json += ",\"files\":{" + files.map { "\(quote($0)):\(readSmallFile($0).map(quote) ?? "null")" }.joined(separator: ",") + "}"
            }
            json += "}\n"
            response = ServerResponse(status: status, headers: [("Content-Type", "application/json")],
                                      body: .bytes(Array(json.utf8)), chunked: chunked, close: close)
        }
        if let ms = r.header("x-echo-delay-ms").flatMap({ UInt64($0) }), ms > 0 {
            return .after(nanos: min(ms, 600_000) * 1_000_000, response)
        }
        return .now(response)
    }

    /// Up to 4 KiB of a file as text, nil if it cannot be read.
    static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, 4096) }
        return n < 0 ? nil : String(decoding: buf[0..<n], as: UTF8.self)
    }

    /// A JSON string literal.
    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}
