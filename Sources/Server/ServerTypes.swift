import Reactor

/// A request as a small built-in server (the echo backend, the admin listener) sees it. These
/// servers are not on the proxy's hot path, so Strings are fine here.
public struct ServerRequest {
    public var method: String = ""
    public var target: String = ""
    public var path: String = ""
    public var query: String = ""
    public var host: String = ""
    public var versionMinor: UInt8 = 1
    public var headers: [(name: String, value: String)] = []
    /// Bytes of body received (for chunked: payload bytes).
    public var bodyLength: UInt64 = 0
    /// The body, when the server collects it (Content-Length bodies up to its limit).
    public var body: [UInt8] = []
    public var peer: SocketAddress?

    /// All values of a field (case-insensitive name), joined with ", ".
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        let values = headers.filter { $0.name.lowercased() == lower }.map { $0.value }
        return values.isEmpty ? nil : values.joined(separator: ", ")
    }
}

public struct ServerResponse {
    public enum Body {
        case bytes([UInt8])
        /// `count` bytes of a repeating pattern, generated as the socket drains (large downloads
        /// without holding them in memory).
        case pattern(count: UInt64)
    }
    public var status: Int
    public var headers: [(String, String)]
    public var body: Body
    public var chunked: Bool
    public var close: Bool

    public init(status: Int, headers: [(String, String)] = [], body: Body = .bytes([]),
                chunked: Bool = false, close: Bool = false) {
        self.status = status; self.headers = headers; self.body = body
        self.chunked = chunked; self.close = close
    }

    public static func text(_ status: Int, _ text: String, contentType: String = "text/plain; charset=utf-8") -> ServerResponse {
        ServerResponse(status: status, headers: [("Content-Type", contentType)], body: .bytes(Array(text.utf8)))
    }
}

/// What a handler decides for a request.
public enum ServerReply {
    case now(ServerResponse)
    /// Answer after a delay (the echo backend's X-Echo-Delay-Ms).
    case after(nanos: UInt64, ServerResponse)
    /// Accept a WebSocket upgrade and echo every frame back.
    case webSocketEcho(accept: String)
    /// Send the response's status and headers with `Transfer-Encoding: chunked` (its body is
    /// ignored), then hand the handler a `ResponseStream` to write the body over time (a watch).
    case stream(ServerResponse, (ResponseStream) -> Void)
}

/// The body of a streamed response, written as it becomes available: each `write` is one chunk,
/// sent at once. Use it on the server's event loop thread only (post with `EventLoop.execute`).
public final class ResponseStream {
    weak var connection: ServerConnection?
    /// Called once when the connection closes (the client went away, or after `finish()`).
    public var onClose: (() -> Void)?
    /// Bytes queued but not yet written beyond which the client counts as too slow and the
    /// connection is closed, so a stalled reader cannot grow memory without bound.
    public var maxQueuedBytes = 16 << 20

    init(connection: ServerConnection) { self.connection = connection }

    /// True until the connection closes or `finish()` is called.
    public var isOpen: Bool { connection.map { !$0.isClosed && $0.state == .streaming } ?? false }

    /// Sends `bytes` as one chunk (nothing for empty bytes).
    public func write(_ bytes: [UInt8]) {
        guard let c = connection, isOpen, !bytes.isEmpty else { return }
        c.out.appendHex(UInt64(bytes.count)); c.out.append("\r\n"); c.out.append(bytes); c.out.append("\r\n")
        if c.out.readableCount > maxQueuedBytes { c.finish(); return }
        c.drive()
    }

    /// Ends the body (the last chunk) and closes the connection once it is written.
    public func finish() {
        guard let c = connection, isOpen else { return }
        c.out.append("0\r\n\r\n")
        c.closeAfter = true
        c.state = .writing
        c.drive()
    }

    func closed() {
        let f = onClose
        onClose = nil
        connection = nil
        f?()
    }
}
