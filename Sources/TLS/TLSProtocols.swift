import COpenSSL

/// The TLS versions a server accepts: nginx's `ssl_protocols`, ingress-nginx's `ssl-protocols`.
/// Portico speaks TLS 1.2 and TLS 1.3 only; both are on by default, and the client's highest
/// common version is used.
public struct TLSProtocols: Equatable, Sendable, CustomStringConvertible {
    public private(set) var tls12: Bool
    public private(set) var tls13: Bool

    /// TLS 1.2 and TLS 1.3.
    public static let all = TLSProtocols(tls12: true, tls13: true)

    init(tls12: Bool, tls13: Bool) {
        self.tls12 = tls12
        self.tls13 = tls13
    }

    /// Parses nginx's spelling, `TLSv1.2 TLSv1.3` (separated by spaces or commas, any order).
    /// Throws for an empty list and for any other version, naming it.
    public init(parsing text: String) throws {
        tls12 = false
        tls13 = false
        let words = text.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "\t" })
        for word in words {
            switch word {
            case "TLSv1.2": tls12 = true
            case "TLSv1.3": tls13 = true
            case "SSLv2", "SSLv3", "TLSv1", "TLSv1.1":
                throw TLSError("'\(word)' is not supported: Portico speaks TLSv1.2 and TLSv1.3 only")
            default:
                throw TLSError("'\(word)' is not a TLS version (expected TLSv1.2 and/or TLSv1.3)")
            }
        }
        if !tls12 && !tls13 { throw TLSError("no TLS version given (expected TLSv1.2 and/or TLSv1.3)") }
    }

    /// `TLSv1.2 TLSv1.3`, as parsed.
    public var description: String {
        [tls12 ? "TLSv1.2" : nil, tls13 ? "TLSv1.3" : nil].compactMap { $0 }.joined(separator: " ")
    }

    /// The lowest version accepted (the set has no gap: there are only two versions).
    var minVersion: Int32 { tls12 ? TLS1_2_VERSION : TLS1_3_VERSION }
    var maxVersion: Int32 { tls13 ? TLS1_3_VERSION : TLS1_2_VERSION }
}
