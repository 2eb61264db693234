/// A certificate and key as found in a `kubernetes.io/tls` Secret: PEM bytes, where `tls.crt`
/// may hold the leaf followed by its intermediates.
public struct CertificateSource: Sendable, Equatable {
    /// `namespace/secret`, for messages.
    public var name: String
    /// The hosts this certificate is served for (Ingress `spec.tls[].hosts`); `*.example.com`
    /// covers exactly one label in front of `example.com`.
    public var hosts: [String]
    public var certPEM: [UInt8]
    public var keyPEM: [UInt8]

    public init(name: String, hosts: [String], certPEM: [UInt8], keyPEM: [UInt8]) {
        self.name = name; self.hosts = hosts; self.certPEM = certPEM; self.keyPEM = keyPEM
    }
}

/// Something wrong with one Secret's certificate, for one log line.
public struct TLSProblem: Sendable, Equatable, CustomStringConvertible {
    /// `namespace/secret`.
    public var secret: String
    public var message: String
    /// The certificate is still served (expired or not yet valid); otherwise it was left out.
    public var isWarning: Bool

    public init(secret: String, message: String, isWarning: Bool = false) {
        self.secret = secret; self.message = message; self.isWarning = isWarning
    }

    /// `Secret default/shop-tls: key does not match certificate`
    public var description: String { "Secret \(secret): \(message)" }
}

/// A TLS context could not be built (bad default certificate, OpenSSL failure).
public struct TLSError: Error, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
