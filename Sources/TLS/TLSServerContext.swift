import COpenSSL
#if canImport(Glibc)
import Glibc
#endif

/// The server side of TLS: the settings every handshake uses and the certificates chosen by SNI.
///
/// Every connection starts on one base `SSL_CTX` holding the default certificate, the session
/// cache and the ticket key callback; the ClientHello callback then moves the connection to the
/// `SSL_CTX` of the certificate for the SNI name the client sent, before OpenSSL looks at any
/// session the client offers. OpenSSL keeps issuing and reading tickets and cached sessions
/// through the base context (one cache, one set of ticket keys), and each certificate's
/// `SSL_CTX` has its own session id context (the SHA-256 of its leaf certificate), so a session
/// resumes only on a connection served the same certificate, never across certificates.
///
/// Settings: TLS 1.2 and 1.3 (or one of them: `protocols`, as nginx's `ssl_protocols`),
/// Mozilla's intermediate ciphers in the server's order (ChaCha20 for clients that list it
/// first), groups X25519 and P-256, ALPN `http/1.1`, tickets with keys rotated every 12 hours,
/// a session cache for TLS 1.2 clients without tickets.
public final class TLSServerContext: @unchecked Sendable {
    /// Mozilla's intermediate profile for TLS 1.2 without the DHE suites (no FFDHE groups are
    /// offered); TLS 1.3 uses OpenSSL's default suites, which are the same as Mozilla's.
    public static let cipherList = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
    public static let groups = "X25519:P-256"
    /// Ticket keys are replaced this often; the previous key still decrypts for one more period.
    public static let ticketKeyRotation = 12 * 3600
    static let sessionTimeout: Int = 12 * 3600

    /// The SSL_CTX every connection is created from (default certificate).
    let baseContext: OpaquePointer
    let ticketKeys: TicketKeys
    /// The versions every context accepts.
    public let protocols: TLSProtocols
    /// Subject CN of the default certificate.
    public let defaultSubject: String

    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var store = CertificateStore()

    /// `defaultCertificate` nil: a self-signed ECDSA P-256 certificate is generated (with a
    /// warning through `warn`), as ingress controllers do. Throws when the default certificate
    /// cannot be used or OpenSSL cannot make a context.
    public init(defaultCertificate: CertificateSource?, protocols: TLSProtocols = .all,
                warn: @escaping (String) -> Void) throws {
        pthread_mutex_init(mutex, nil)
        self.protocols = protocols
        let certificate: PEMCertificate
        if let source = defaultCertificate {
            switch PEMCertificate.load(certPEM: source.certPEM, keyPEM: source.keyPEM) {
            case .success(let c): certificate = c
            case .failure(let f):
                pthread_mutex_destroy(mutex); mutex.deallocate()
                throw TLSError("default certificate \(source.name): \(f.message)")
            }
            if let w = certificate.warning { warn("default certificate \(source.name): \(w)") }
        } else {
            guard let generated = TLSServerContext.selfSigned() else {
                pthread_mutex_destroy(mutex); mutex.deallocate()
                throw TLSError("could not generate the self-signed default certificate: \(OpenSSLErrors.drain())")
            }
            certificate = generated
            warn("no default certificate given: using a generated self-signed certificate (CN \"\(TLSServerContext.selfSignedName)\"); clients without a matching SNI host will not trust it")
        }
        defaultSubject = certificate.subjectCommonName
        do {
            ticketKeys = try TicketKeys(rotationInterval: TLSServerContext.ticketKeyRotation)
            baseContext = try TLSServerContext.makeContext(certificate, protocols: protocols)
        } catch {
            pthread_mutex_destroy(mutex); mutex.deallocate()
            throw error
        }
        portico_SSL_CTX_set_session_cache_mode(baseContext, Int(SSL_SESS_CACHE_SERVER))
        portico_SSL_CTX_sess_set_cache_size(baseContext, 20480)
        SSL_CTX_set_timeout(baseContext, Int(TLSServerContext.sessionTimeout))
        SSL_CTX_set_tlsext_ticket_key_evp_cb(baseContext, ticketKeyCallback)
        SSL_CTX_set_client_hello_cb(baseContext, clientHelloCallback, nil)
        portico_SSL_CTX_set_tlsext_servername_callback(baseContext, serverNameCallback)
        OpenSSLErrors.clear()
    }

    deinit {
        SSL_CTX_free(baseContext)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Replaces the certificates used for new handshakes, atomically; connections already
    /// established keep theirs. Returns one problem per Secret that is left out (malformed PEM,
    /// key not matching) and warnings for Secrets that are served anyway (expired, not yet valid,
    /// a host already taken by an earlier source, no hosts). For a host listed by several
    /// sources the first wins. A certificate whose PEM did not change keeps its SSL_CTX, so
    /// calling this on every route change costs little; its problems are reported every time.
    @discardableResult
    public func update(_ sources: [CertificateSource]) -> [TLSProblem] {
        var problems: [TLSProblem] = []
        let next = CertificateStore()
        var owner: [String: String] = [:]
        // Unchanged certificates keep their SSL_CTX (update runs on every route change).
        pthread_mutex_lock(mutex)
        let previous = store
        pthread_mutex_unlock(mutex)
        for source in sources {
            let pem = CertificateStore.PEMKey(cert: source.certPEM, key: source.keyPEM)
            let context: ContextBox
            if let reused = next.byPEM[pem] ?? previous.byPEM[pem] {
                context = reused
                if let leaf = SSL_CTX_get0_certificate(reused.context), let w = PEMCertificate.validityWarning(leaf) {
                    problems.append(TLSProblem(secret: source.name, message: w, isWarning: true))
                }
            } else {
                let certificate: PEMCertificate
                switch PEMCertificate.load(certPEM: source.certPEM, keyPEM: source.keyPEM) {
                case .success(let c): certificate = c
                case .failure(let f):
                    problems.append(TLSProblem(secret: source.name, message: f.message))
                    continue
                }
                if let w = certificate.warning { problems.append(TLSProblem(secret: source.name, message: w, isWarning: true)) }
                do {
                    context = ContextBox(try TLSServerContext.makeContext(certificate, protocols: protocols), subject: certificate.subjectCommonName)
                } catch {
                    problems.append(TLSProblem(secret: source.name, message: "\(error)"))
                    continue
                }
            }
            next.byPEM[pem] = context
            if source.hosts.isEmpty {
                problems.append(TLSProblem(secret: source.name, message: "no hosts listed for this certificate; it is not selected by any SNI name", isWarning: true))
            }
            for rawHost in source.hosts {
                guard let host = CertificateStore.normalize(rawHost) else { continue }
                if let first = owner[host] {
                    if first != source.name {
                        problems.append(TLSProblem(secret: source.name, message: "host \(host) already uses the certificate of Secret \(first); this one is not used for it", isWarning: true))
                    }
                    continue
                }
                owner[host] = source.name
                if let leaf = SSL_CTX_get0_certificate(context.context), !CertificateStore.covers(leaf, host) {
                    problems.append(TLSProblem(secret: source.name, message: "certificate does not cover host \(host); clients will reject it", isWarning: true))
                }
                if host.hasPrefix("*.") {
                    next.wildcard[String(host.dropFirst(2))] = context
                } else {
                    next.exact[host] = context
                }
            }
        }
        pthread_mutex_lock(mutex)
        let old = store
        store = next
        pthread_mutex_unlock(mutex)
        _ = old  // released here, outside the lock; connections hold their own SSL_CTX reference
        return problems
    }

    /// Starts new ticket keys now (the previous key still resumes sessions until the next rotation).
    public func rotateTicketKeys() { ticketKeys.rotate() }

    /// The SSL_CTX for an SNI name (exact, then one-label wildcard), or nil for the default.
    func context(forServerName name: String) -> ContextBox? {
        pthread_mutex_lock(mutex)
        let current = store
        pthread_mutex_unlock(mutex)
        return current.lookup(name)
    }

    /// The SSL_CTX chosen for `serverName` (the default's when none matches), for tests.
    func contextPointer(forServerName serverName: String) -> OpaquePointer {
        context(forServerName: serverName)?.context ?? baseContext
    }

    /// The subject CN served for `serverName` (nil: no SNI), for tests and the admin endpoint.
    public func subject(forServerName serverName: String?) -> String {
        guard let serverName else { return defaultSubject }
        return context(forServerName: serverName)?.subject ?? defaultSubject
    }

    // MARK: Building contexts

    static let selfSignedName = "portico default certificate"

    static func selfSigned() -> PEMCertificate? {
        guard let (certPEM, keyPEM) = selfSignedPEM(commonName: selfSignedName, notBefore: -300, notAfter: 365 * 86400) else { return nil }
        if case .success(let c) = PEMCertificate.load(certPEM: certPEM, keyPEM: keyPEM) { return c }
        return nil
    }

    /// A self-signed ECDSA P-256 certificate and key as PEM, valid from now + `notBefore` to
    /// now + `notAfter` seconds (tests use it for expired and not-yet-valid certificates).
    static func selfSignedPEM(commonName: String, notBefore: Int, notAfter: Int) -> (cert: [UInt8], key: [UInt8])? {
        guard let key = portico_ec_p256_keygen() else { return nil }
        defer { EVP_PKEY_free(key) }
        guard let cert = portico_self_signed(key, commonName, notBefore, notAfter) else { return nil }
        defer { X509_free(cert) }
        guard let certPEM = pem({ PEM_write_bio_X509($0, cert) }),
              let keyPEM = pem({ PEM_write_bio_PrivateKey($0, key, nil, nil, 0, nil, nil) }) else { return nil }
        return (certPEM, keyPEM)
    }

    static func pem(_ write: (OpaquePointer) -> Int32) -> [UInt8]? {
        guard let bio = BIO_new(BIO_s_mem()) else { return nil }
        defer { BIO_free(bio) }
        guard write(bio) == 1 else { return nil }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { BIO_read(bio, $0.baseAddress, Int32($0.count)) }
            if n <= 0 { break }
            out.append(contentsOf: chunk[0..<Int(n)])
        }
        return out
    }

    /// A server SSL_CTX with Portico's settings and `certificate` (leaf, chain and key). The
    /// versions of the base context are the ones that count (an SSL keeps them when the
    /// ClientHello callback moves it to a certificate's context); every context gets the same.
    static func makeContext(_ certificate: PEMCertificate, protocols: TLSProtocols) throws -> OpaquePointer {
        OpenSSLErrors.clear()
        guard let ctx = SSL_CTX_new(TLS_server_method()) else {
            throw TLSError("SSL_CTX_new failed: \(OpenSSLErrors.drain())")
        }
        func fail(_ what: String) -> TLSError {
            let reason = OpenSSLErrors.drain()
            SSL_CTX_free(ctx)
            return TLSError(reason.isEmpty ? what : "\(what): \(reason)")
        }
        guard portico_SSL_CTX_set_min_proto_version(ctx, protocols.minVersion) == 1,
              portico_SSL_CTX_set_max_proto_version(ctx, protocols.maxVersion) == 1 else { throw fail("setting protocol versions") }
        SSL_CTX_set_options(ctx, portico_default_options() | portico_server_cipher_preference())
        guard SSL_CTX_set_cipher_list(ctx, cipherList) == 1 else { throw fail("setting the cipher list") }
        guard portico_SSL_CTX_set1_groups_list(ctx, groups) == 1 else { throw fail("setting the groups") }
        portico_SSL_CTX_set_mode(ctx, portico_nonblocking_modes())
        // strace of an https keep-alive run showed 3.5 read(2) per request without it.
        portico_SSL_CTX_set_read_ahead(ctx, 1)
        portico_SSL_CTX_set_alpn_http11(ctx)
        // Sessions resume only under the certificate they were made with.
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard X509_digest(certificate.chain[0], EVP_sha256(), &digest, &length) == 1,
              SSL_CTX_set_session_id_context(ctx, digest, min(length, UInt32(SSL_MAX_SID_CTX_LENGTH))) == 1 else {
            throw fail("setting the session id context")
        }
        guard SSL_CTX_use_certificate(ctx, certificate.chain[0]) == 1 else { throw fail("using the certificate") }
        for intermediate in certificate.chain.dropFirst() {
            // add0 takes ownership of the reference it is given.
            X509_up_ref(intermediate)
            guard portico_SSL_CTX_add0_chain_cert(ctx, intermediate) == 1 else {
                X509_free(intermediate)
                throw fail("adding a chain certificate")
            }
        }
        guard SSL_CTX_use_PrivateKey(ctx, certificate.key) == 1 else { throw fail("using the private key") }
        guard SSL_CTX_check_private_key(ctx) == 1 else { throw fail("tls.key does not match the certificate in tls.crt") }
        return ctx
    }
}

/// One certificate's SSL_CTX; freed when no snapshot holds it (handshaking connections hold
/// their own OpenSSL reference).
final class ContextBox {
    let context: OpaquePointer
    let subject: String
    init(_ context: OpaquePointer, subject: String) { self.context = context; self.subject = subject }
    deinit { SSL_CTX_free(context) }
}

/// An immutable (after building) SNI name → certificate map.
final class CertificateStore {
    /// Lower-case host → context.
    var exact: [String: ContextBox] = [:]
    /// `example.com` for `*.example.com` → context.
    var wildcard: [String: ContextBox] = [:]
    /// Every context by the PEM it was made from, so the next update can reuse it.
    var byPEM: [PEMKey: ContextBox] = [:]

    struct PEMKey: Hashable {
        var cert: [UInt8]
        var key: [UInt8]
    }

    /// Lower case, one trailing dot removed; nil when empty.
    static func normalize(_ host: String) -> String? {
        var h = host.lowercased()
        while h.hasSuffix(".") { h.removeLast() }
        return h.isEmpty ? nil : h
    }

    /// Whether the certificate's names (subjectAltName DNS, else the CN) match `host`; for
    /// `*.example.com`, whether they match a name under it.
    static func covers(_ leaf: OpaquePointer, _ host: String) -> Bool {
        let probe = host.hasPrefix("*.") ? "x" + host.dropFirst() : Substring(host)
        return String(probe).withCString { X509_check_host(leaf, $0, strlen($0), 0, nil) == 1 }
    }

    /// Exact host first, then a wildcard covering exactly the first label.
    func lookup(_ serverName: String) -> ContextBox? {
        if exact.isEmpty && wildcard.isEmpty { return nil }
        guard let name = CertificateStore.normalize(serverName) else { return nil }
        if let box = exact[name] { return box }
        guard let dot = name.firstIndex(of: "."), dot != name.startIndex else { return nil }
        let suffix = name[name.index(after: dot)...]
        if suffix.isEmpty { return nil }
        return wildcard[String(suffix)]
    }
}

/// SNI: move the connection to the SSL_CTX of the certificate for the name the client sent.
/// Done on the ClientHello, before OpenSSL parses the extensions, so that the session id
/// context checked on resumption is the chosen certificate's. The TLSServerContext is the
/// SSL's app data (set by TLSSession).
private let clientHelloCallback: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>?, UnsafeMutableRawPointer?) -> Int32 = { ssl, alert, _ in
    guard let ssl, let data = SSL_get_ex_data(ssl, 0) else { return SSL_CLIENT_HELLO_SUCCESS }
    var ext: UnsafePointer<UInt8>? = nil
    var length = 0
    guard SSL_client_hello_get0_ext(ssl, UInt32(TLSEXT_TYPE_server_name), &ext, &length) == 1, let ext,
          let name = hostName(fromServerNameExtension: UnsafeBufferPointer(start: ext, count: length)) else {
        return SSL_CLIENT_HELLO_SUCCESS
    }
    let server = Unmanaged<TLSServerContext>.fromOpaque(data).takeUnretainedValue()
    if let box = server.context(forServerName: name), SSL_set_SSL_CTX(ssl, box.context) == nil {
        alert?.pointee = SSL_AD_INTERNAL_ERROR
        return SSL_CLIENT_HELLO_ERROR
    }
    return SSL_CLIENT_HELLO_SUCCESS
}

/// The host_name entry of a server_name extension (RFC 6066 §3): a 2-byte list length, then
/// entries of a 1-byte type (0: host_name), a 2-byte length and the name. nil when malformed;
/// OpenSSL then rejects the ClientHello itself.
func hostName(fromServerNameExtension data: UnsafeBufferPointer<UInt8>) -> String? {
    guard data.count >= 2 else { return nil }
    let listLength = Int(data[0]) << 8 | Int(data[1])
    guard listLength + 2 == data.count else { return nil }
    var i = 2
    while i + 3 <= data.count {
        let type = data[i]
        let length = Int(data[i + 1]) << 8 | Int(data[i + 2])
        i += 3
        guard i + length <= data.count else { return nil }
        if type == 0 {
            guard length > 0 else { return nil }
            return String(decoding: UnsafeBufferPointer(rebasing: data[i..<(i + length)]), as: UTF8.self)
        }
        i += length
    }
    return nil
}

/// Acknowledges SNI (the certificate was already chosen on the ClientHello), so that OpenSSL
/// records the name in the session.
private let serverNameCallback: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>?, UnsafeMutableRawPointer?) -> Int32 = { _, _, _ in
    SSL_TLSEXT_ERR_OK
}

private let ticketKeyCallback: @convention(c) (OpaquePointer?, UnsafeMutablePointer<UInt8>?, UnsafeMutablePointer<UInt8>?, OpaquePointer?, OpaquePointer?, Int32) -> Int32 = { ssl, name, iv, cipher, mac, enc in
    guard let ssl, let name, let iv, let cipher, let mac, let data = SSL_get_ex_data(ssl, 0) else { return -1 }
    let server = Unmanaged<TLSServerContext>.fromOpaque(data).takeUnretainedValue()
    // The version is already chosen when the ClientHello's ticket is decrypted.
    return server.ticketKeys.callback(keyName: name, iv: iv, cipher: cipher, mac: mac, encrypt: enc == 1,
                                      renewEveryTicket: SSL_version(ssl) == TLS1_3_VERSION)
}
