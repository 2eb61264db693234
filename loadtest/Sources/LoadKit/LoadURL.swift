import Reactor
#if canImport(Glibc)
import Glibc
#endif

/// A usage problem: a bad URL, flag, header or scenario. The CLI prints `message` on one line and
/// exits with 2.
public struct UsageError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The target cannot be reached: its name does not resolve (the CLI exits with 3).
public struct UnreachableError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// An `http://` or `https://` URL split into the parts a request needs.
public struct LoadURL: Equatable, Sendable {
    public var isTLS: Bool
    /// Host as written (IPv6 without brackets).
    public var host: String
    public var port: UInt16
    /// Path and query, at least "/".
    public var target: String

    public var scheme: String { isTLS ? "https" : "http" }
    public var defaultPort: UInt16 { isTLS ? 443 : 80 }

    /// The Host header value: host, bracketed when IPv6, with the port when it is not the default.
    public var authority: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return port == defaultPort ? h : "\(h):\(port)"
    }

    public init(isTLS: Bool, host: String, port: UInt16, target: String) {
        self.isTLS = isTLS; self.host = host; self.port = port; self.target = target
    }

    /// Parses `scheme://host[:port][/path][?query]`; a fragment is dropped. No user info.
    public init(parsing text: String) throws {
        let bad = { (why: String) in UsageError("bad URL '\(text)': \(why)") }
        guard let sep = text.range(of: "://") else { throw bad("expected http://HOST[:PORT]/PATH") }
        let scheme = text[..<sep.lowerBound].lowercased()
        switch scheme {
        case "http": isTLS = false
        case "https": isTLS = true
        default: throw bad("scheme '\(scheme)' is not http or https")
        }
        var rest = text[sep.upperBound...]
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        let authEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        let auth = rest[..<authEnd]
        var path = String(rest[authEnd...])
        if path.isEmpty { path = "/" } else if path.hasPrefix("?") { path = "/" + path }
        if path.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7F }) {
            throw bad("whitespace or control character in the path")
        }
        guard !auth.isEmpty else { throw bad("no host") }
        guard !auth.contains("@") else { throw bad("user info is not supported") }
        var hostPart = Substring(auth)
        var portPart: Substring? = nil
        if auth.hasPrefix("[") {
            guard let close = auth.firstIndex(of: "]") else { throw bad("unclosed '[' in the host") }
            hostPart = auth[auth.index(after: auth.startIndex)..<close]
            let after = auth[auth.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw bad("junk after ']'") }
                portPart = after.dropFirst()
            }
        } else if let colon = auth.lastIndex(of: ":") {
            hostPart = auth[..<colon]
            portPart = auth[auth.index(after: colon)...]
        }
        guard !hostPart.isEmpty else { throw bad("no host") }
        guard hostPart.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_" || $0 == ":" }) else {
            throw bad("invalid character in the host")
        }
        host = String(hostPart)
        if let p = portPart {
            guard let n = UInt16(p), n > 0 else { throw bad("port '\(p)' is not 1-65535") }
            port = n
        } else {
            port = isTLS ? 443 : 80
        }
        target = path
    }

    /// Resolves the host to one socket address (IPv4 preferred). Literal addresses skip the resolver.
    public func resolve() throws -> SocketAddress {
        try LoadURL.resolve(host: host, port: port)
    }

    public static func resolve(host: String, port: UInt16) throws -> SocketAddress {
        if host == "localhost" { return SocketAddress(ip: "127.0.0.1", port: port)! }
        if let literal = SocketAddress(ip: host, port: port) { return literal }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>? = nil
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else {
            throw UnreachableError("cannot resolve '\(host)': \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(list) }
        var found: SocketAddress? = nil
        var p: UnsafeMutablePointer<addrinfo>? = first
        while let ai = p {
            if let sa = ai.pointee.ai_addr, let a = SocketAddress(storage: sa, length: Int(ai.pointee.ai_addrlen)) {
                if !a.isIPv6 { return a }
                if found == nil { found = a }
            }
            p = ai.pointee.ai_next
        }
        guard let a = found else { throw UnreachableError("cannot resolve '\(host)': no address") }
        return a
    }
}

/// Parsers for the command-line values (durations, headers, HOST:PORT).
public enum Parse {
    /// `10s`, `500ms`, `2m`, `1h`, `250us`, or a bare number of seconds.
    public static func duration(_ text: String) throws -> UInt64 {
        let units: [(String, Double)] = [("ms", 1e6), ("us", 1e3), ("ns", 1), ("s", 1e9), ("m", 60e9), ("h", 3600e9)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            guard let v = Double(number), v >= 0, v.isFinite else { break }
            return UInt64(v * scale)
        }
        if let v = Double(text), v >= 0, v.isFinite { return UInt64(v * 1e9) }
        throw UsageError("bad duration '\(text)': expected e.g. 10s, 500ms, 2m")
    }

    /// `Name: value` (the name a token, the value without CR/LF).
    public static func header(_ text: String) throws -> (String, String) {
        guard let colon = text.firstIndex(of: ":") else {
            throw UsageError("bad header '\(text)': expected 'Name: value'")
        }
        let name = String(text[..<colon])
        let value = String(text[text.index(after: colon)...]).trimmingWhitespace()
        let tchars = Set("!#$%&'*+-.^_`|~")
        guard !name.isEmpty, name.allSatisfy({ ($0.isASCII && ($0.isLetter || $0.isNumber)) || tchars.contains($0) }) else {
            throw UsageError("bad header '\(text)': invalid header name")
        }
        guard !value.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\0" }) else {
            throw UsageError("bad header '\(text)': CR/LF in the value")
        }
        return (name, value)
    }

    /// `HOST:PORT` or `[IPv6]:PORT` for --connect-to.
    public static func hostPort(_ text: String) throws -> (String, UInt16) {
        let bad = UsageError("bad --connect-to '\(text)': expected HOST:PORT")
        var host: Substring
        var port: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw bad }
            host = text[text.index(after: text.startIndex)..<close]
            let after = text[text.index(after: close)...]
            guard after.hasPrefix(":") else { throw bad }
            port = after.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw bad }
            host = text[..<colon]
            port = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, let p = UInt16(port), p > 0 else { throw bad }
        return (String(host), p)
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
