#!/usr/bin/env bash
# Soak test of `portico serve` with its control plane (not run in CI): a Deployment of echo pods
# behind a Service and an Ingress, a steady open-loop rate from portico-load for DURATION, and
# meanwhile
#   - a rolling update every ROLL_EVERY (kubectl set env on the Deployment's template),
#   - kill -9 of one pod process every KILL_EVERY (the node agent restarts the container),
#   - the watched Ingress manifest rewritten (new annotation value: re-applied, RouteTable
#     swapped), or SIGHUP (all manifests re-applied), alternately every APPLY_EVERY.
# Every INTERVAL it prints the proxy's RSS, its malloc heap in use (portico_heap_bytes from
# /metrics), open descriptors, zombie children, threads, pod processes and the number of
# Events in the store; at the end the load report and the failed-request count (errors + non-2xx), and
# exit 1 if any request failed or a pod process outlived the server.
#
#   loadtest/soak.sh                      # 30 minutes
#   DURATION=4m loadtest/soak.sh          # short run
#   env: DURATION=30m RATE=200 CONNS=8 REPLICAS=3 WORKERS=2 INTERVAL=10 ROLL_EVERY=180
#        KILL_EVERY=60 APPLY_EVERY=30 PORTICO=.build/debug/portico PORTICO_LOAD=... KEEP=1
#        SERVE_ARGS='--event-ttl 5m' (extra flags for portico serve)
#
# Loopback only, kernel-chosen proxy ports, a random app name and pod port; every process it
# starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-30m}
RATE=${RATE:-200}
CONNS=${CONNS:-8}
REPLICAS=${REPLICAS:-3}
WORKERS=${WORKERS:-2}
INTERVAL=${INTERVAL:-10}
ROLL_EVERY=${ROLL_EVERY:-180}
KILL_EVERY=${KILL_EVERY:-60}
APPLY_EVERY=${APPLY_EVERY:-30}
BIN=$(realpath "${PORTICO:-.build/debug/portico}")
LOAD=${PORTICO_LOAD:-$(dirname "$BIN")/portico-load}
for b in "$BIN" "$LOAD"; do [ -x "$b" ] || { echo "soak.sh: $b not found (swift build first)" >&2; exit 2; }; done
command -v kubectl >/dev/null || { echo "soak.sh: kubectl not found" >&2; exit 2; }

seconds() {  # 30m, 90s, 2h -> seconds
    case "$1" in
        *h) echo $(( ${1%h} * 3600 )) ;;
        *m) echo $(( ${1%m} * 60 )) ;;
        *s) echo "${1%s}" ;;
        *) echo "$1" ;;
    esac
}
TOTAL=$(seconds "$DURATION")

APP=soak-$(od -An -N4 -tx4 /dev/urandom | tr -dc 0-9a-f)
PODPORT=$(( 20000 + RANDOM % 20000 ))
TMP=$(mktemp -d /tmp/portico-soak.XXXXXX)
SERVE=""
LOADPID=""
cleanup() {
    [ -n "$LOADPID" ] && kill "$LOADPID" 2>/dev/null || true
    if [ -n "$SERVE" ] && kill -0 "$SERVE" 2>/dev/null; then
        kill -TERM "$SERVE" 2>/dev/null || true
        for _ in $(seq 150); do kill -0 "$SERVE" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVE" 2>/dev/null || true
    fi
    wait 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

mkdir -p "$TMP/watched"
cat >"$TMP/workload.yaml" <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: $APP, labels: {app: $APP}}
spec:
  replicas: $REPLICAS
  selector: {matchLabels: {app: $APP}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
  template:
    metadata: {labels: {app: $APP}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
        - name: echo
          image: portico/echo
          command: ["portico", "echo", "--listen", "\$(POD_IP):$PODPORT", "--name", "\$(POD_NAME)"]
          env:
            - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
            - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
            - {name: SOAK_ROLL, value: "0"}
          ports: [{name: http, containerPort: $PODPORT}]
          readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: $APP}
spec:
  selector: {app: $APP}
  ports: [{name: http, port: 80, targetPort: http}]
EOF
ingress() {  # generation -> the watched Ingress manifest (written atomically)
    cat >"$TMP/watched/.ingress.tmp" <<EOF
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: $APP
  annotations: {soak.portico.io/generation: "$1"}
spec:
  ingressClassName: portico
  rules:
    - host: soak.test
      http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: $APP, port: {name: http}}}}]}
EOF
    mv "$TMP/watched/.ingress.tmp" "$TMP/watched/ingress.yaml"
}
ingress 0

"$BIN" serve -f "$TMP/watched" --http 127.0.0.1:0 --https off --admin 127.0.0.1:0 --api 127.0.0.1:0 \
    --data "$TMP/data" --workers "$WORKERS" --access-log off ${SERVE_ARGS:-} 2>"$TMP/serve.log" &
SERVE=$!
for _ in $(seq 200); do grep -q 'listening http=' "$TMP/serve.log" && break; sleep 0.1; done
LINE=$(grep -m1 'listening http=' "$TMP/serve.log") || { echo "soak.sh: serve did not start" >&2; cat "$TMP/serve.log" >&2; exit 2; }
HTTP=$(echo "$LINE" | grep -Eo 'http=[0-9.]+:[0-9]+' | cut -d: -f2)
API=$(echo "$LINE" | grep -Eo 'api=[0-9.]+:[0-9]+' | cut -d= -f2)
ADMIN=$(echo "$LINE" | grep -Eo 'admin=[0-9.]+:[0-9]+' | cut -d= -f2)
K=(kubectl --server "http://$API" --cache-dir "$TMP/kube-cache" --request-timeout 15s)
export KUBECONFIG="$TMP/no-kubeconfig"
"${K[@]}" apply -f "$TMP/workload.yaml" >/dev/null

ready() { "${K[@]}" get deploy "$APP" -o jsonpath='{.status.readyReplicas}' 2>/dev/null || true; }
for _ in $(seq 120); do [ "$(ready)" = "$REPLICAS" ] && break; sleep 0.5; done
[ "$(ready)" = "$REPLICAS" ] || { echo "soak.sh: the Deployment did not become ready" >&2; tail "$TMP/serve.log" >&2; exit 2; }
for _ in $(seq 50); do curl -s -o /dev/null -w '%{http_code}' -H 'Host: soak.test' "http://127.0.0.1:$HTTP/" | grep -q 200 && break; sleep 0.2; done

pods() {  # pids of this soak's pod processes
    for d in /proc/[0-9]*; do
        if { tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null | grep -q -- "--name $APP-"; then echo "${d#/proc/}"; fi
    done
    return 0
}
zombies() { ps -o stat= --ppid "$SERVE" 2>/dev/null | grep -c '^Z' || true; }
stats() {
    local rss heap fds threads
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$SERVE/status")
    # The malloc heap in use: a structure that grows shows here; pages the allocator keeps do not.
    heap=$(curl -s "http://$ADMIN/metrics" | awk '/^portico_heap_bytes / {printf "%d", $2 / 1024}')
    fds=$(ls "/proc/$SERVE/fd" | wc -l)
    threads=$(awk '/Threads/ {print $2}' "/proc/$SERVE/status")
    # Events are kept an hour (Kubernetes' --event-ttl) and the store's watch window 5 minutes:
    # the heap grows with them until then.
    printf '%6ss  rss %6d KiB  heap %6s KiB  fds %4d  zombies %d  threads %2d  pod processes %d  ready %s  events %s\n' \
        "$1" "$rss" "${heap:-?}" "$fds" "$(zombies)" "$threads" "$(pods | wc -l)" "$(ready)" \
        "$("${K[@]}" get events -A --no-headers 2>/dev/null | wc -l)"
}

echo "# $(date -u +%FT%TZ) $(nproc) cores; $BIN; app $APP"
echo "# DURATION=$DURATION RATE=$RATE CONNS=$CONNS REPLICAS=$REPLICAS WORKERS=$WORKERS ROLL_EVERY=$ROLL_EVERY KILL_EVERY=$KILL_EVERY APPLY_EVERY=$APPLY_EVERY"
"$LOAD" -c "$CONNS" -R "$RATE" -d "${TOTAL}s" --timeout 5s -H 'Host: soak.test' --json \
    "http://127.0.0.1:$HTTP/" >"$TMP/load.json" 2>"$TMP/load.err" &
LOADPID=$!
START=$(date +%s)
stats 0
ROLLS=0; KILLS=0; APPLIES=0; HUPS=0
# Each action is due at whole multiples of its period; a slow second (kubectl in stats() on a
# busy machine) delays it but does not skip it, as testing `T % period` did.
NEXT_ROLL=$ROLL_EVERY; NEXT_KILL=$KILL_EVERY; NEXT_APPLY=$APPLY_EVERY; NEXT_STATS=$INTERVAL
while :; do
    sleep 1
    T=$(( $(date +%s) - START ))
    [ "$T" -ge "$TOTAL" ] && break
    kill -0 "$SERVE" 2>/dev/null || { echo "soak.sh: portico serve exited" >&2; tail -30 "$TMP/serve.log" >&2; exit 1; }
    if [ "$T" -ge "$NEXT_ROLL" ]; then
        NEXT_ROLL=$(( NEXT_ROLL + ROLL_EVERY ))
        ROLLS=$((ROLLS + 1))
        "${K[@]}" set env "deploy/$APP" "SOAK_ROLL=$ROLLS" >/dev/null && echo "${T}s: rolling update $ROLLS"
    fi
    if [ "$T" -ge "$NEXT_KILL" ]; then
        NEXT_KILL=$(( NEXT_KILL + KILL_EVERY ))
        victim=$(pods | shuf -n1 || true)
        if [ -n "$victim" ]; then kill -9 "$victim" 2>/dev/null && KILLS=$((KILLS + 1)) && echo "${T}s: kill -9 pod process $victim"; fi
    fi
    if [ "$T" -ge "$NEXT_APPLY" ]; then
        NEXT_APPLY=$(( NEXT_APPLY + APPLY_EVERY ))
        APPLIES=$((APPLIES + 1))
        if [ $(( APPLIES % 2 )) -eq 1 ]; then
            ingress "$APPLIES"; echo "${T}s: Ingress manifest rewritten (generation $APPLIES)"
        else
            kill -HUP "$SERVE"; HUPS=$((HUPS + 1)); echo "${T}s: SIGHUP (manifests re-applied)"
        fi
    fi
    if [ "$T" -ge "$NEXT_STATS" ]; then NEXT_STATS=$(( NEXT_STATS + INTERVAL )); stats "$T"; fi
done
wait "$LOADPID" || true
LOADPID=""
stats "$(( $(date +%s) - START ))"
echo "rolling updates $ROLLS, pod processes killed $KILLS, manifest rewrites $(( APPLIES - HUPS )), SIGHUPs $HUPS"

RESULT=0
python3 - "$TMP/load.json" <<'EOF' || RESULT=1
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except Exception as e:
    print(f"no load report: {e}"); sys.exit(1)
non2xx = sum(v for k, v in r["status"].items() if not k.startswith("2"))
lat = r["latency_ms"]
print(f"load: {r['responses']} responses in {r['duration_s']:.0f} s ({r['requests_per_sec']:.1f}/s of {r['target_rate']}), "
      f"statuses {r['status']}, errors {r['errors']}")
print(f"latency ms: p50 {lat['p50']}, p99 {lat['p99']}, p99.9 {lat['p99.9']}, max {lat['max']}")
print(f"FAILED REQUESTS: {r['errors']['total'] + non2xx}")
sys.exit(1 if r['errors']['total'] + non2xx else 0)
EOF

# Stop the server: the pods must go with it (no orphan, no zombie).
kill -TERM "$SERVE"
for _ in $(seq 200); do kill -0 "$SERVE" 2>/dev/null || break; sleep 0.1; done
wait "$SERVE" 2>/dev/null || true
SERVE=""
sleep 0.5
LEFT=$(pods | wc -l)
echo "pod processes left after the server stopped: $LEFT"
[ "$LEFT" -eq 0 ] || RESULT=1
exit $RESULT
