import CSystem
#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 socket address, ready to hand to `connect`/`bind` without conversion.
public struct SocketAddress: Hashable, Sendable, CustomStringConvertible {
    /// Raw `sockaddr_in` or `sockaddr_in6` bytes.
    public let bytes: [UInt8]

    public var isIPv6: Bool { bytes.count == MemoryLayout<sockaddr_in6>.size }
    public var family: Int32 { isIPv6 ? AF_INET6 : AF_INET }

    public init?(ip: String, port: UInt16) {
        var a4 = sockaddr_in()
        if inet_pton(AF_INET, ip, &a4.sin_addr) == 1 {
            a4.sin_family = sa_family_t(AF_INET)
            a4.sin_port = port.bigEndian
            bytes = withUnsafeBytes(of: &a4) { Array($0) }
            return
        }
        var a6 = sockaddr_in6()
        if inet_pton(AF_INET6, ip, &a6.sin6_addr) == 1 {
            a6.sin6_family = sa_family_t(AF_INET6)
            a6.sin6_port = port.bigEndian
            bytes = withUnsafeBytes(of: &a6) { Array($0) }
            return
        }
        return nil
    }

    /// Parses `IP:PORT`, `[IPv6]:PORT`, `:PORT` or `PORT` (the last two bind every IPv4 address).
    public init?(parsing text: String) {
        var host = "0.0.0.0"
        var portText = Substring(text)
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
        } else if let colon = text.lastIndex(of: ":") {
            if colon != text.startIndex { host = String(text[..<colon]) }
            if host == "localhost" { host = "127.0.0.1" }
            portText = text[text.index(after: colon)...]
        }
        guard let port = UInt16(portText) else { return nil }
        self.init(ip: host, port: port)
    }

    /// Builds an address from what `accept`/`getsockname` filled in.
    public init?(storage: UnsafeRawPointer, length: Int) {
        let family = Int32(storage.load(as: sa_family_t.self))
        if family == AF_INET, length >= MemoryLayout<sockaddr_in>.size {
            bytes = Array(UnsafeRawBufferPointer(start: storage, count: MemoryLayout<sockaddr_in>.size))
        } else if family == AF_INET6, length >= MemoryLayout<sockaddr_in6>.size {
            bytes = Array(UnsafeRawBufferPointer(start: storage, count: MemoryLayout<sockaddr_in6>.size))
        } else {
            return nil
        }
    }

    public var port: UInt16 {
        bytes.withUnsafeBytes { raw in
            isIPv6 ? UInt16(bigEndian: raw.load(as: sockaddr_in6.self).sin6_port)
                   : UInt16(bigEndian: raw.load(as: sockaddr_in.self).sin_port)
        }
    }

    /// The address without the port, as text (`127.0.0.1`, `::1`).
    public var ipString: String {
        var out = [CChar](repeating: 0, count: 64)
        bytes.withUnsafeBytes { raw in
            if isIPv6 {
                var a = raw.load(as: sockaddr_in6.self).sin6_addr
                _ = inet_ntop(AF_INET6, &a, &out, 64)
            } else {
                var a = raw.load(as: sockaddr_in.self).sin_addr
                _ = inet_ntop(AF_INET, &a, &out, 64)
            }
        }
        return String(cString: out)
    }

    /// The IP address bytes only (4 or 16), e.g. as a hash key for client-IP affinity.
    public var ipBytes: ArraySlice<UInt8> {
        isIPv6 ? bytes[8..<24] : bytes[4..<8]
    }

    public var description: String { isIPv6 ? "[\(ipString)]:\(port)" : "\(ipString):\(port)" }

    public func withSockAddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> R) rethrows -> R {
        try bytes.withUnsafeBytes { raw in
            try body(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(raw.count))
        }
    }
}
