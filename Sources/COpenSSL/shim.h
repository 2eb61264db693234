// OpenSSL 3 (Debian's libssl-dev) for Swift: the headers, plus static inline shims for the
// macros Swift cannot import (SSL_CTX_set_tlsext_servername_callback and friends).
#ifndef PORTICO_COPENSSL_SHIM_H
#define PORTICO_COPENSSL_SHIM_H

// No feature macros (_GNU_SOURCE …) here, as in CSystem: the libc types every module sees
// (fd_set, rusage …) must be parsed with Glibc's defaults, or clang finds two definitions and
// a target importing two of these modules fails to build, depending on build order.

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/pem.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <string.h>
#include <malloc.h>

// MARK: SSL_CTX settings (macros over SSL_CTX_ctrl)

static inline int portico_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version(ctx, version);
}
static inline int portico_SSL_CTX_set_max_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_max_proto_version(ctx, version);
}
static inline int portico_SSL_CTX_set1_groups_list(SSL_CTX *ctx, const char *list) {
    return (int)SSL_CTX_set1_groups_list(ctx, list);
}
static inline long portico_SSL_CTX_set_mode(SSL_CTX *ctx, long mode) {
    return SSL_CTX_set_mode(ctx, mode);
}
/// Read-ahead: one read(2) takes a whole record (header and body) and whatever follows, instead
/// of one read for the 5-byte header and another for the body.
static inline void portico_SSL_CTX_set_read_ahead(SSL_CTX *ctx, int yes) {
    SSL_CTX_set_read_ahead(ctx, yes);
}
/// Socket-BIO callback that records, after each read(2) OpenSSL makes, whether it returned less
/// than it asked for (or nothing): with read-ahead OpenSSL asks for all its buffer's room, so a
/// short read means the socket's receive queue was empty. The flag lets an edge-triggered caller
/// skip the extra read(2) that would only return EAGAIN.
static inline long portico_bio_read_watch(BIO *b, int oper, const char *argp, size_t len, int argi,
                                          long argl, int ret, size_t *processed) {
    (void)argp; (void)argi; (void)argl;
    if (oper == (BIO_CB_READ | BIO_CB_RETURN)) {
        unsigned char *drained = (unsigned char *)BIO_get_callback_arg(b);
        if (drained) *drained = (ret <= 0) || (processed != NULL && *processed < len);
    }
    return ret;
}
/// Installs `portico_bio_read_watch` on the session's read BIO (after SSL_set_fd), writing to `flag`.
static inline void portico_watch_socket_reads(SSL *ssl, unsigned char *flag) {
    BIO *rb = SSL_get_rbio(ssl);
    if (rb == NULL) return;
    BIO_set_callback_arg(rb, (char *)flag);
    BIO_set_callback_ex(rb, portico_bio_read_watch);
}
/// SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS.
static inline long portico_nonblocking_modes(void) {
    return SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS;
}
/// No renegotiation (a DoS vector), no compression (CRIME), and an EOF without close_notify is
/// a plain EOF (HTTP framing detects truncation), as nginx does.
static inline uint64_t portico_default_options(void) {
    return SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF
        | SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1;
}
/// Server side: the server's cipher order decides (testssl.sh rates a client-chosen order HIGH;
/// every suite in the list is strong, so this only fixes which), except that a client listing
/// ChaCha20-Poly1305 first (no AES hardware) gets it.
static inline uint64_t portico_server_cipher_preference(void) {
    return SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA;
}
static inline long portico_SSL_CTX_set_session_cache_mode(SSL_CTX *ctx, long mode) {
    return SSL_CTX_set_session_cache_mode(ctx, mode);
}
static inline long portico_SSL_CTX_sess_set_cache_size(SSL_CTX *ctx, long size) {
    return SSL_CTX_sess_set_cache_size(ctx, size);
}
static inline int portico_SSL_CTX_add0_chain_cert(SSL_CTX *ctx, X509 *cert) {
    return (int)SSL_CTX_add0_chain_cert(ctx, cert);
}

// MARK: SNI

static inline long portico_SSL_CTX_set_tlsext_servername_callback(SSL_CTX *ctx, int (*cb)(SSL *, int *, void *)) {
    return SSL_CTX_set_tlsext_servername_callback(ctx, cb);
}
static inline long portico_SSL_CTX_set_tlsext_servername_arg(SSL_CTX *ctx, void *arg) {
    return SSL_CTX_set_tlsext_servername_arg(ctx, arg);
}
static inline int portico_SSL_set_tlsext_host_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

// MARK: ALPN (server side: http/1.1 only; a client offering nothing we speak gets no ALPN)

static inline int portico_alpn_select_http11(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                                             const unsigned char *in, unsigned int inlen, void *arg) {
    static const unsigned char ours[] = { 8, 'h', 't', 't', 'p', '/', '1', '.', '1' };
    (void)ssl; (void)arg;
    if (SSL_select_next_proto((unsigned char **)out, outlen, ours, sizeof(ours), in, inlen)
            == OPENSSL_NPN_NEGOTIATED) {
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
}
static inline void portico_SSL_CTX_set_alpn_http11(SSL_CTX *ctx) {
    SSL_CTX_set_alpn_select_cb(ctx, portico_alpn_select_http11, NULL);
}

// MARK: Session ticket keys (AES-256-CBC + HMAC-SHA256, as OpenSSL's own default ticket keys)

/// The ticket cipher, fetched once: EVP_aes_256_cbc() is a legacy handle that OpenSSL 3
/// resolves to the provider's implementation (a locked name lookup) on every init.
static inline EVP_CIPHER *portico_fetch_ticket_cipher(void) {
    return EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
}

/// Sets up the ticket cipher (`cipher`, from portico_fetch_ticket_cipher) and MAC for one
/// ticket key. With `enc`, fills `iv` with random bytes. The MAC's digest can only be given by
/// name: OpenSSL looks it up on each call (the MAC context is new for every ticket).
static inline int portico_ticket_crypto_init(EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, const EVP_CIPHER *cipher,
                                             const unsigned char *aes_key, const unsigned char *hmac_key,
                                             unsigned char *iv, int enc) {
    OSSL_PARAM params[3];
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)hmac_key, 32);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    if (enc) {
        if (RAND_bytes(iv, 16) <= 0) return 0;
        if (EVP_EncryptInit_ex2(cctx, cipher, aes_key, iv, NULL) != 1) return 0;
    } else {
        if (EVP_DecryptInit_ex2(cctx, cipher, aes_key, iv, NULL) != 1) return 0;
    }
    return EVP_MAC_CTX_set_params(hctx, params) == 1;
}

// MARK: Keys and certificates

/// A fresh EC P-256 key (EVP_EC_gen is a variadic macro).
static inline EVP_PKEY *portico_ec_p256_keygen(void) {
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

/// A self-signed certificate for `key` with subject CN `cn`, valid from now + `not_before`
/// seconds to now + `not_after` seconds.
static inline X509 *portico_self_signed(EVP_PKEY *key, const char *cn, long not_before, long not_after) {
    X509 *x = X509_new();
    if (!x) return NULL;
    unsigned char serial[16];
    ASN1_INTEGER *sn = NULL;
    BIGNUM *bn = NULL;
    if (RAND_bytes(serial, sizeof(serial)) <= 0) goto fail;
    serial[0] &= 0x7f;
    bn = BN_bin2bn(serial, sizeof(serial), NULL);
    sn = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
    BN_free(bn);
    if (!sn || X509_set_serialNumber(x, sn) != 1) goto fail;
    ASN1_INTEGER_free(sn); sn = NULL;
    if (X509_set_version(x, 2) != 1) goto fail;
    if (!X509_gmtime_adj(X509_getm_notBefore(x), not_before)) goto fail;
    if (!X509_gmtime_adj(X509_getm_notAfter(x), not_after)) goto fail;
    if (X509_set_pubkey(x, key) != 1) goto fail;
    X509_NAME *name = X509_get_subject_name(x);
    if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0) != 1) goto fail;
    if (X509_set_issuer_name(x, name) != 1) goto fail;
    if (X509_sign(x, key, EVP_sha256()) <= 0) goto fail;
    return x;
fail:
    ASN1_INTEGER_free(sn);
    X509_free(x);
    return NULL;
}

/// Reads a private key without ever prompting for a passphrase (an encrypted key fails).
static inline EVP_PKEY *portico_read_private_key(BIO *bio) {
    return PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"");
}

/// The subject's common name into `out` (NUL-terminated); the length, or -1.
static inline int portico_subject_cn(X509 *x, char *out, int size) {
    return X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, out, size);
}


// MARK: Measuring

/// Bytes of heap in use (glibc mallinfo2), for tests that check the memory of idle
/// connections (Swift's Glibc module does not export <malloc.h>).
static inline size_t portico_heap_in_use(void) {
    struct mallinfo2 m = mallinfo2();
    return m.uordblks;
}

#endif
