import COpenSSL
#if canImport(Glibc)
import Glibc
#endif

/// The client side of TLS (towards upstream pods, and the load tester): TLS 1.2 and 1.3,
/// certificate verification against `caPEM` or the system CA store, ALPN.
public final class TLSClientContext: @unchecked Sendable {
    let context: OpaquePointer
    public let verify: Bool

    /// `caPEM` nil: the system CA store. With `verify` false the peer's certificate is not
    /// checked at all (only when asked for: `portico.io/proxy-ssl-verify: "false"`). `caFile`
    /// names where `caPEM` came from in messages (the load tester's `--cacert FILE`); without
    /// it a CA problem reads `CA certificates: tls.crt: …`, as the proxy has always said.
    public init(verify: Bool, caPEM: [UInt8]?, caFile: String? = nil, alpn: [String] = ["http/1.1"]) throws {
        OpenSSLErrors.clear()
        guard let ctx = SSL_CTX_new(TLS_client_method()) else {
            throw TLSError("SSL_CTX_new failed: \(OpenSSLErrors.drain())")
        }
        func fail(_ what: String) -> TLSError {
            let reason = OpenSSLErrors.drain()
            SSL_CTX_free(ctx)
            return TLSError(reason.isEmpty ? what : "\(what): \(reason)")
        }
        guard portico_SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 1 else { throw fail("setting protocol versions") }
        SSL_CTX_set_options(ctx, portico_default_options())
        guard SSL_CTX_set_cipher_list(ctx, TLSServerContext.cipherList) == 1 else { throw fail("setting the cipher list") }
        guard portico_SSL_CTX_set1_groups_list(ctx, TLSServerContext.groups) == 1 else { throw fail("setting the groups") }
        portico_SSL_CTX_set_mode(ctx, portico_nonblocking_modes())
        // strace of an https keep-alive run showed 3.5 read(2) per request without it.
        portico_SSL_CTX_set_read_ahead(ctx, 1)
        if !alpn.isEmpty {
            var wire: [UInt8] = []
            for p in alpn where !p.isEmpty && p.utf8.count < 256 {
                wire.append(UInt8(p.utf8.count))
                wire.append(contentsOf: p.utf8)
            }
            // SSL_CTX_set_alpn_protos returns 0 on success.
            let rc = wire.withUnsafeBufferPointer { SSL_CTX_set_alpn_protos(ctx, $0.baseAddress, UInt32($0.count)) }
            guard rc == 0 else { throw fail("setting ALPN protocols") }
        }
        if verify {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
            if let caPEM {
                guard let store = SSL_CTX_get_cert_store(ctx) else { throw fail("no certificate store") }
                switch PEMCertificate.readCertificates(caPEM, file: caFile ?? "CA certificates: tls.crt") {
                case .success(let certs):
                    for c in certs {
                        X509_STORE_add_cert(store, c)
                        X509_free(c)
                    }
                case .failure(let f):
                    SSL_CTX_free(ctx)
                    throw TLSError(f.message)
                }
            } else {
                guard SSL_CTX_set_default_verify_paths(ctx) == 1 else { throw fail("loading the system CA store") }
            }
        } else {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
        }
        OpenSSLErrors.clear()
        context = ctx
        self.verify = verify
    }

    deinit { SSL_CTX_free(context) }
}
