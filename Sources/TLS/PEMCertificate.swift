import COpenSSL
#if canImport(Glibc)
import Glibc
#endif

/// A certificate chain and private key parsed from PEM bytes; owns the OpenSSL objects.
final class PEMCertificate {
    /// X509 pointers, the leaf first, then the intermediates in the order tls.crt lists them.
    let chain: [OpaquePointer]
    /// EVP_PKEY.
    let key: OpaquePointer
    /// A reason to warn while still serving the certificate (expired, not yet valid).
    let warning: String?

    private init(chain: [OpaquePointer], key: OpaquePointer, warning: String?) {
        self.chain = chain; self.key = key; self.warning = warning
    }

    deinit {
        for x in chain { X509_free(x) }
        EVP_PKEY_free(key)
    }

    /// The leaf's subject common name ("" when it has none).
    var subjectCommonName: String {
        var buffer = [CChar](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBufferPointer { portico_subject_cn(chain[0], $0.baseAddress, Int32($0.count)) }
        return n > 0 ? String(cString: buffer) : ""
    }

    /// Parses and checks one Secret's certificate: the reason it cannot be used, or the loaded
    /// certificate (possibly with a warning).
    static func load(certPEM: [UInt8], keyPEM: [UInt8]) -> Result<PEMCertificate, LoadFailure> {
        OpenSSLErrors.clear()
        defer { OpenSSLErrors.clear() }
        let chain: [OpaquePointer]
        switch readCertificates(certPEM) {
        case .success(let c): chain = c
        case .failure(let f): return .failure(f)
        }
        guard let key = readKey(keyPEM) else {
            let reason = OpenSSLErrors.drain()
            for x in chain { X509_free(x) }
            return .failure(LoadFailure("tls.key: no valid PEM private key" + (reason.isEmpty ? "" : " (\(reason))")))
        }
        guard X509_check_private_key(chain[0], key) == 1 else {
            for x in chain { X509_free(x) }
            EVP_PKEY_free(key)
            return .failure(LoadFailure("tls.key does not match the certificate in tls.crt"))
        }
        return .success(PEMCertificate(chain: chain, key: key, warning: validityWarning(chain[0])))
    }

    /// Why `certificate` (an X509) is not valid now, or nil.
    static func validityWarning(_ certificate: OpaquePointer) -> String? {
        if let notAfter = X509_get0_notAfter(certificate), X509_cmp_current_time(notAfter) < 0 {
            return "certificate expired at \(describe(notAfter)); served anyway"
        }
        if let notBefore = X509_get0_notBefore(certificate), X509_cmp_current_time(notBefore) > 0 {
            return "certificate is not valid before \(describe(notBefore)); served anyway"
        }
        return nil
    }

    struct LoadFailure: Error { var message: String; init(_ m: String) { message = m } }

    /// Every certificate in `pem`, in order; fails on no certificate or a damaged one. `file`
    /// names the source in messages (a Secret's key, or a command-line file).
    static func readCertificates(_ pem: [UInt8], file: String = "tls.crt") -> Result<[OpaquePointer], LoadFailure> {
        var chain: [OpaquePointer] = []
        var damaged: String? = nil
        pem.withUnsafeBytes { raw in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return }
            defer { BIO_free(bio) }
            while let x = PEM_read_bio_X509(bio, nil, nil, nil) { chain.append(x) }
            // The loop ends with "no start line" after the last certificate; anything else means
            // a certificate block that did not parse.
            let last = ERR_peek_last_error()
            if last != 0 && ERR_GET_REASON(last) != PEM_R_NO_START_LINE {
                damaged = OpenSSLErrors.drain()
            }
        }
        OpenSSLErrors.clear()
        if let damaged {
            for x in chain { X509_free(x) }
            return .failure(LoadFailure("\(file): malformed PEM certificate (\(damaged))"))
        }
        if chain.isEmpty { return .failure(LoadFailure("\(file): no PEM certificate found")) }
        return .success(chain)
    }

    static func readKey(_ pem: [UInt8]) -> OpaquePointer? {
        pem.withUnsafeBytes { raw -> OpaquePointer? in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
            defer { BIO_free(bio) }
            return portico_read_private_key(bio)
        }
    }

    /// `Jan  1 00:00:00 2024 GMT`.
    static func describe(_ time: UnsafePointer<ASN1_TIME>) -> String {
        guard let bio = BIO_new(BIO_s_mem()) else { return "?" }
        defer { BIO_free(bio) }
        guard ASN1_TIME_print(bio, time) == 1 else { return "?" }
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = buffer.withUnsafeMutableBytes { BIO_read(bio, $0.baseAddress, Int32($0.count)) }
        return n > 0 ? String(decoding: buffer[0..<Int(n)], as: UTF8.self) : "?"
    }
}
