/// Types shared by the request and response parsers. Every range is a byte offset into the
/// buffer that was handed to the parser (the head starts at offset 0 of that buffer), so a parsed
/// message is a handful of integers over bytes the caller already holds: nothing is copied.

/// Request methods the proxy needs to tell apart; anything else is `.other` (still forwarded).
public enum HTTPMethod: UInt8, Sendable {
    case get, head, post, put, delete, options, patch, connect, trace, other

    /// RFC 9110 §9.2.2: methods whose repetition has the same effect, and so may be retried.
    @inlinable public var isIdempotent: Bool {
        switch self {
        case .get, .head, .put, .delete, .options, .trace: return true
        default: return false
        }
    }
}

/// Why a message was refused. Each maps to the status a server answers with and a short reason
/// that goes in the body and the log line.
public enum ParseFailure: UInt8, Error, Sendable, CaseIterable {
    // 400
    case invalidMethod, invalidTarget, invalidVersion, invalidRequestLine
    case invalidHeaderName, invalidHeaderValue, obsFold, whitespaceBeforeColon, bareCR, missingColon
    case missingHost, multipleHost, invalidHost, hostMismatch
    case invalidContentLength, conflictingContentLength, contentLengthWithTransferEncoding
    case chunkedNotFinal, chunkedTwice, transferEncodingInHTTP10
    case invalidChunkSize, chunkSizeOverflow, chunkExtensionTooLong, invalidChunkFraming, invalidTrailer
    // 414, 431
    case requestLineTooLong, headerSectionTooLarge, tooManyHeaders
    // 501
    case unknownTransferCoding
    // a response from an upstream that cannot be read (the proxy answers 502)
    case invalidStatusLine, invalidResponse

    /// The status a server answers with when a request fails this way.
    public var status: Int {
        switch self {
        case .requestLineTooLong: return 414
        case .headerSectionTooLarge, .tooManyHeaders: return 431
        case .unknownTransferCoding: return 501
        case .invalidStatusLine, .invalidResponse: return 502
        default: return 400
        }
    }

    /// A short, human reason (goes in the body of the error response and in the log).
    public var reason: StaticString {
        switch self {
        case .invalidMethod: return "invalid method"
        case .invalidTarget: return "invalid request target"
        case .invalidVersion: return "unsupported HTTP version"
        case .invalidRequestLine: return "malformed request line"
        case .invalidHeaderName: return "invalid character in header name"
        case .invalidHeaderValue: return "invalid character in header value"
        case .obsFold: return "obsolete line folding is not allowed"
        case .whitespaceBeforeColon: return "whitespace between header name and colon"
        case .bareCR: return "bare CR in message"
        case .missingColon: return "header line without colon"
        case .missingHost: return "missing Host header"
        case .multipleHost: return "more than one Host header"
        case .invalidHost: return "invalid Host header"
        case .hostMismatch: return "Host header disagrees with the request target"
        case .invalidContentLength: return "invalid Content-Length"
        case .conflictingContentLength: return "conflicting Content-Length values"
        case .contentLengthWithTransferEncoding: return "both Content-Length and Transfer-Encoding"
        case .chunkedNotFinal: return "chunked is not the final transfer coding"
        case .chunkedTwice: return "chunked applied more than once"
        case .transferEncodingInHTTP10: return "Transfer-Encoding in an HTTP/1.0 request"
        case .invalidChunkSize: return "invalid chunk size"
        case .chunkSizeOverflow: return "chunk size too large"
        case .chunkExtensionTooLong: return "chunk extension too long"
        case .invalidChunkFraming: return "invalid chunked framing"
        case .invalidTrailer: return "invalid trailer section"
        case .requestLineTooLong: return "request line too long"
        case .headerSectionTooLarge: return "header section too large"
        case .tooManyHeaders: return "too many header fields"
        case .unknownTransferCoding: return "unsupported transfer coding"
        case .invalidStatusLine: return "invalid status line from upstream"
        case .invalidResponse: return "invalid response from upstream"
        }
    }
}

/// Header fields the proxy treats specially; everything else is `.other`.
public enum FieldKind: UInt8, Sendable {
    case other
    case host, contentLength, transferEncoding, connection, keepAlive, proxyConnection, te, trailer, upgrade
    case expect, cookie, xForwardedFor, xForwardedProto, xForwardedHost, xForwardedPort, xRealIP, xRequestID
    case date, server, setCookie
}

/// One field line: name and value (value without surrounding whitespace) as byte ranges.
public struct HeaderField: Sendable, Equatable {
    public var name: Range<Int>
    public var value: Range<Int>
    public var kind: FieldKind
    /// True for hop-by-hop fields (RFC 9110 §7.6.1): Connection, Keep-Alive, Proxy-Connection, TE,
    /// Trailer, Transfer-Encoding, Upgrade, and every field named in a Connection option. A proxy
    /// does not forward these as they are.
    public var hopByHop: Bool

    public init(name: Range<Int>, value: Range<Int>, kind: FieldKind, hopByHop: Bool) {
        self.name = name; self.value = value; self.kind = kind; self.hopByHop = hopByHop
    }
}

/// How the body of a message is delimited (RFC 9112 §6.3).
public enum BodyFraming: Equatable, Sendable {
    case none
    case contentLength(UInt64)
    case chunked
    /// Response only: the body runs until the upstream closes the connection.
    case untilClose
}

/// Limits on the request head; exceeding one gives its own status.
public struct ParseLimits: Sendable {
    /// Longest request line (method, target, version) before 414.
    public var maxRequestLine: Int = 8192
    /// Largest head (request line, fields and the final CRLF) before 431.
    public var maxHeadBytes: Int = 65536
    /// Most field lines before 431.
    public var maxFields: Int = 100
    /// Longest chunk extension accepted in a chunked body.
    public var maxChunkExtension: Int = 4096
    public init() {}
}

/// A parsed request head. Reused across requests on one connection (`fields` keeps its capacity).
public struct RequestHead: Sendable {
    public var method: HTTPMethod = .get
    public var methodRange: Range<Int> = 0..<0
    /// The request target as sent (origin-form, absolute-form, authority-form or `*`).
    public var target: Range<Int> = 0..<0
    /// The path part of the target (no scheme/authority, no query); for `*` the `*` itself.
    /// Empty for an absolute-form target without a path ("http://h" or "http://h?q"): the proxy
    /// must send "/" then. Empty (at the end of the target) for CONNECT's authority-form.
    public var path: Range<Int> = 0..<0
    /// The query without the `?`, empty when there is none.
    public var query: Range<Int> = 0..<0
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    public var versionMinor: UInt8 = 1
    public var fields: [HeaderField] = []
    /// The Host field value, or the authority of an absolute-form target; nil only for HTTP/1.0
    /// requests without Host.
    public var host: Range<Int>? = nil
    public var framing: BodyFraming = .none
    /// Whether the connection stays open after this exchange (version default and Connection).
    public var keepAlive: Bool = true
    /// `Expect: 100-continue` was sent.
    public var expectContinue: Bool = false
    /// Connection: upgrade together with an Upgrade field.
    public var upgrade: Bool = false
    /// Bytes of the head, including the empty line that ends it.
    public var headLength: Int = 0

    public init() {}
}

/// A parsed response head.
public struct ResponseHead: Sendable {
    public var status: Int = 0
    public var versionMinor: UInt8 = 1
    public var reason: Range<Int> = 0..<0
    public var fields: [HeaderField] = []
    /// Framing, given the request method and status (HEAD, 1xx, 204 and 304 have no body).
    public var framing: BodyFraming = .none
    public var keepAlive: Bool = true
    /// 101 Switching Protocols.
    public var upgrade: Bool = false
    public var headLength: Int = 0

    public init() {}
}

/// The outcome of feeding bytes to a head parser.
public enum ParseStatus: Equatable, Sendable {
    /// No complete head yet and no limit exceeded: read more and call again with all the bytes.
    case incomplete
    /// The head is complete; `headLength` bytes of the buffer belong to it.
    case complete
    case failed(ParseFailure)
}
