#!/usr/bin/env bash
# Starts the demo: `portico serve` on configs/demo/ — Deployments, a StatefulSet, Services and
# Ingresses that the bundled control plane turns into local pods — with development TLS
# certificates for the demo hosts. Ctrl-C stops the server and its pods.
#   BIN   the portico binary (default .build/release/portico)
#   HTTP / HTTPS / ADMIN / API   listen addresses (defaults below)
#   DATA  the control plane's data directory (default .portico)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build/release/portico}
HTTP=${HTTP:-127.0.0.1:8080}
HTTPS=${HTTPS:-127.0.0.1:8443}
ADMIN=${ADMIN:-127.0.0.1:9901}
API=${API:-127.0.0.1:8001}
DATA=${DATA:-.portico}
[ -x "$BIN" ] || { echo "no $BIN: run 'swift build -c release' (or 'make run')" >&2; exit 1; }

sh certs/make-dev-certs.sh >/dev/null

P=${HTTPS##*:}
C="curl --cacert certs/out/ca.crt"
cat <<MSG

Portico demo: http://$HTTP, https://$HTTPS, admin http://$ADMIN, Kubernetes API http://$API.
The control plane starts 3 demo pods, api-v1, api-v2 and the StatefulSet db-0, db-1. Try:

  $C --resolve demo.localhost:$P:127.0.0.1 https://demo.localhost:$P/            # a demo pod (run it again: another one)
  $C --resolve api.localhost:$P:127.0.0.1 https://api.localhost:$P/v1/users      # Prefix /v1 -> api-v1
  $C --resolve api.localhost:$P:127.0.0.1 https://api.localhost:$P/v2            # Exact /v2  -> api-v2
  $C --resolve db.apps.localhost:$P:127.0.0.1 https://db.apps.localhost:$P/      # *.apps.localhost -> db-0/db-1
  curl -i -H 'Host: demo.localhost' http://$HTTP/x                 # 308 to https (host has TLS)
  curl -H 'Host: unknown.example' http://$HTTP/                    # defaultBackend -> demo

  kubectl --server http://$API get deploy,sts,pods,svc,ing,endpoints
  kubectl --server http://$API scale deploy/demo --replicas=5
  kubectl --server http://$API set env deploy/demo GREETING=hi     # a rolling update
  kubectl --server http://$API rollout status deploy/demo
  kubectl --server http://$API delete pod db-1                     # comes back as db-1, same IP, same claim
  kubectl --server http://$API patch configmap demo-config --type merge -p '{"data":{"message.txt":"changed\\n"}}'
                                                                   # the mounted file changes in every demo pod at once
  kubectl --server http://$API get pvc,pv
  curl http://$ADMIN/routes ; curl http://$ADMIN/metrics

Ctrl-C stops the server and its pods (state stays in $DATA/).

MSG

exec "$BIN" serve -f configs/demo/ -f configs/demo/tls/ --http "$HTTP" --https "$HTTPS" --admin "$ADMIN" \
    --api "$API" --data "$DATA"
