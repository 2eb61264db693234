#!/bin/sh
# Makes a local development CA and certificates for the demo hosts with the openssl command line,
# and writes them as kubernetes.io/tls Secret manifests the demo loads. Nothing it makes is
# committed (certs/out/ and configs/demo/tls/ are git-ignored).
#
#   certs/make-dev-certs.sh            # creates what is missing, keeps the rest
#   certs/make-dev-certs.sh --force    # makes everything again (a new CA too)
#
# Then, with `portico serve` running the demo:
#   curl --cacert certs/out/ca.crt --resolve demo.localhost:8443:127.0.0.1 https://demo.localhost:8443/
#
# certs/out/ca.crt    the development CA (trust it in curl/browsers; never in production)
# certs/out/<name>.*  key, certificate and CSR per host
# configs/demo/tls/<name>-tls.yaml   Secret manifests (namespace default)
set -eu

cd "$(dirname "$0")/.."
# Overridable for tests: where keys/certificates and Secret manifests go.
OUT=${PORTICO_CERTS_OUT:-certs/out}
SECRETS=${PORTICO_SECRETS_OUT:-configs/demo/tls}
DAYS=397   # the longest validity browsers accept for a leaf certificate

force=0
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

command -v openssl >/dev/null || { echo "openssl not found (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$OUT" "$SECRETS"
if [ "$force" = 1 ]; then
    rm -f "$OUT"/*.key "$OUT"/*.crt "$OUT"/*.csr "$OUT"/*.ext "$OUT"/*.srl "$SECRETS"/*-tls.yaml
fi
umask 077

if [ ! -f "$OUT/ca.crt" ] || [ ! -f "$OUT/ca.key" ]; then
    echo "making the development CA: $OUT/ca.crt"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$OUT/ca.key" -out "$OUT/ca.crt" -days 3650 \
        -subj "/O=Portico development/CN=Portico development CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    # A new CA invalidates the certificates it did not sign.
    rm -f "$OUT"/demo.crt "$OUT"/apps.crt "$OUT"/api.crt "$SECRETS"/*-tls.yaml
fi

# leaf NAME HOST KEYTYPE: a certificate for HOST signed by the CA, key type ec or rsa.
leaf() {
    name=$1 host=$2 type=$3
    if [ -f "$OUT/$name.crt" ] && [ -f "$OUT/$name.key" ]; then
        echo "keeping $OUT/$name.crt ($host)"
        return
    fi
    echo "making $OUT/$name.crt ($host, $type)"
    case "$type" in
        ec) keyopts="-newkey ec -pkeyopt ec_paramgen_curve:P-256" ;;
        rsa) keyopts="-newkey rsa:2048" ;;
    esac
    # shellcheck disable=SC2086
    openssl req -new $keyopts -nodes -keyout "$OUT/$name.key" -out "$OUT/$name.csr" -subj "/CN=$host" 2>/dev/null
    printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=CA:FALSE\n' \
        "$host" > "$OUT/$name.ext"
    openssl x509 -req -in "$OUT/$name.csr" -CA "$OUT/ca.crt" -CAkey "$OUT/ca.key" -CAcreateserial \
        -days "$DAYS" -sha256 -extfile "$OUT/$name.ext" -out "$OUT/$name.crt" 2>/dev/null
    rm -f "$SECRETS/$name-tls.yaml"
}

# secret NAME: the kubernetes.io/tls Secret NAME-tls (tls.crt, tls.key base64).
secret() {
    name=$1
    file="$SECRETS/$name-tls.yaml"
    if [ -f "$file" ]; then return; fi
    echo "writing $file"
    {
        echo "apiVersion: v1"
        echo "kind: Secret"
        echo "metadata:"
        echo "  name: $name-tls"
        echo "  namespace: default"
        echo "type: kubernetes.io/tls"
        echo "data:"
        echo "  tls.crt: $(base64 -w0 < "$OUT/$name.crt")"
        echo "  tls.key: $(base64 -w0 < "$OUT/$name.key")"
    } > "$file"
}

leaf demo demo.localhost ec
leaf apps '*.apps.localhost' ec
leaf api api.localhost rsa
for name in demo apps api; do secret "$name"; done

echo "done: trust $OUT/ca.crt, e.g. curl --cacert $OUT/ca.crt --resolve demo.localhost:8443:127.0.0.1 https://demo.localhost:8443/"
