#!/usr/bin/env bash
# Starts the demo: three `portico echo` backends on 127.0.0.1:9101-9103 and `portico serve` on the
# manifests in configs/demo/. Ctrl-C stops all of them.
#   BIN   the portico binary (default .build/release/portico)
#   HTTP  the proxy's listen address (default 127.0.0.1:8080)
#   ADMIN the admin listen address (default 127.0.0.1:9901)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build/release/portico}
HTTP=${HTTP:-127.0.0.1:8080}
ADMIN=${ADMIN:-127.0.0.1:9901}
[ -x "$BIN" ] || { echo "no $BIN: run 'swift build -c release' (or 'make run')" >&2; exit 1; }

pids=()
cleanup() {
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
# Background jobs of a script ignore SIGINT, so Ctrl-C reaches only this shell: stop them here.
trap cleanup EXIT
trap 'exit 130' INT TERM

for i in 1 2 3; do
  "$BIN" echo --listen "127.0.0.1:910$i" --name "echo-$i" &
  pids+=($!)
done

# A backend that cannot bind (port taken) exits at once: say so rather than demo a broken route.
sleep 0.3
for p in "${pids[@]}"; do
  kill -0 "$p" 2>/dev/null || { echo "an echo backend failed to start (is 127.0.0.1:9101-9103 in use?)" >&2; exit 1; }
done

URL="http://$HTTP"
cat <<MSG

Portico demo: proxy on $URL, admin on http://$ADMIN. Try:

  curl -H 'Host: demo.localhost' $URL/ $URL/          # one connection: echo-1 and echo-2
  curl -H 'Host: api.localhost' $URL/v1/users          # Prefix /v1  -> echo-1
  curl -H 'Host: api.localhost' $URL/v2                # Exact  /v2  -> echo-3
  curl -H 'Host: api.localhost' $URL/v2/x              # no rule     -> defaultBackend (echo-3)
  curl -H 'Host: shop.apps.localhost' $URL/            # *.apps.localhost -> echo-2
  curl -H 'Host: unknown.example' $URL/                # defaultBackend   -> echo-3
  curl http://$ADMIN/routes                            # the compiled route table
  curl http://$ADMIN/metrics                           # Prometheus metrics

Ctrl-C stops everything.

MSG

"$BIN" serve -f configs/demo/ --http "$HTTP" --admin "$ADMIN" &
pids+=($!)
wait "${pids[-1]}"
