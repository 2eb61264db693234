import HTTP1

/// One request of a run, as the user described it (from the flags or a scenario entry).
public struct RequestSpec: Equatable, Sendable {
    public var name: String
    public var method: String
    public var url: LoadURL
    /// Host header (and SNI) when it differs from the URL's host, e.g. a scenario's `host:`.
    public var hostOverride: String?
    public var headers: [(String, String)]
    public var body: [UInt8]
    public var weight: Int

    public init(name: String = "", method: String = "GET", url: LoadURL, hostOverride: String? = nil,
                headers: [(String, String)] = [], body: [UInt8] = [], weight: Int = 1) {
        self.name = name; self.method = method; self.url = url; self.hostOverride = hostOverride
        self.headers = headers; self.body = body; self.weight = weight
    }

    public static func == (a: RequestSpec, b: RequestSpec) -> Bool {
        a.name == b.name && a.method == b.method && a.url == b.url && a.hostOverride == b.hostOverride
            && a.headers.map { $0.0 } == b.headers.map { $0.0 } && a.headers.map { $0.1 } == b.headers.map { $0.1 }
            && a.body == b.body && a.weight == b.weight
    }

    /// The Host header value this request sends.
    public var hostHeader: String { hostOverride ?? url.authority }

    /// The TLS name of this request (SNI, and the name its certificate must match): the
    /// overriding host without a port, else the URL's host.
    public var serverName: String {
        guard let h = hostOverride else { return url.host }
        if h.hasPrefix("["), let close = h.firstIndex(of: "]") { return String(h[h.index(after: h.startIndex)..<close]) }
        if let colon = h.lastIndex(of: ":"), h.firstIndex(of: ":") == colon { return String(h[..<colon]) }
        return h
    }
}

/// The exact bytes of one request, built once before the run; connections only write them.
/// Shared read-only by every worker thread.
public final class RequestTemplate: @unchecked Sendable {
    public let bytes: UnsafeRawBufferPointer
    public let method: HTTPMethod
    public let weight: Int
    public let name: String
    public let serverName: String

    public init(_ spec: RequestSpec, closeConnection: Bool) {
        var head = "\(spec.method) \(spec.url.target) HTTP/1.1\r\n"
        let has = { (n: String) in spec.headers.contains { $0.0.lowercased() == n } }
        if !has("host") { head += "Host: \(spec.hostHeader)\r\n" }
        for (n, v) in spec.headers { head += "\(n): \(v)\r\n" }
        if !spec.body.isEmpty && !has("content-length") && !has("transfer-encoding") {
            head += "Content-Length: \(spec.body.count)\r\n"
        } else if spec.body.isEmpty && ["POST", "PUT", "PATCH"].contains(spec.method) && !has("content-length") {
            head += "Content-Length: 0\r\n"
        }
        if closeConnection && !has("connection") { head += "Connection: close\r\n" }
        head += "\r\n"
        let all = Array(head.utf8) + spec.body
        let raw = UnsafeMutableRawBufferPointer.allocate(byteCount: all.count, alignment: 16)
        all.withUnsafeBytes { raw.copyMemory(from: $0) }
        bytes = UnsafeRawBufferPointer(raw)
        method = RequestTemplate.method(spec.method)
        weight = spec.weight
        name = spec.name
        serverName = spec.serverName
    }

    deinit { bytes.deallocate() }

    static func method(_ m: String) -> HTTPMethod {
        switch m {
        case "GET": return .get
        case "HEAD": return .head
        case "POST": return .post
        case "PUT": return .put
        case "DELETE": return .delete
        case "OPTIONS": return .options
        case "PATCH": return .patch
        case "CONNECT": return .connect
        case "TRACE": return .trace
        default: return .other
        }
    }

    /// True when `m` is a token (RFC 9110 §9.1).
    static func isValidMethod(_ m: String) -> Bool {
        let tchars = Set("!#$%&'*+-.^_`|~")
        return !m.isEmpty && m.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || tchars.contains($0) }
    }
}

/// Picks a request index by weight with a per-worker xorshift generator: no allocation, no lock.
struct WeightedPicker {
    let cumulative: [Int]
    let total: Int
    var state: UInt64

    init(weights: [Int], seed: UInt64) {
        var sum = 0
        var c: [Int] = []
        for w in weights { sum += w; c.append(sum) }
        cumulative = c
        total = sum
        state = seed | 1
    }

    @inline(__always) mutating func next() -> Int {
        if cumulative.count == 1 { return 0 }
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        let r = Int(state % UInt64(total))
        var i = 0
        while cumulative[i] <= r { i &+= 1 }
        return i
    }
}
