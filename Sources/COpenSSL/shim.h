// OpenSSL 3 (Debian's libssl-dev) for Swift: the headers, plus static inline shims for the
// macros Swift cannot import (SSL_CTX_set_tlsext_servername_callback and friends).
#ifndef PORTICO_COPENSSL_SHIM_H
#define PORTICO_COPENSSL_SHIM_H

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/pem.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/bio.h>

#endif
