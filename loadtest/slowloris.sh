#!/usr/bin/env bash
# Slowloris against `portico serve`: SLOW connections (default 1000) each trickle one byte of a
# never-ending request head per second, while portico-load holds a fixed rate (-R) of well-behaved
# requests. The same load is run first without the attack (the clean run). Prints both p99s and
# their ratio, how many slow connections were answered 408 and when, and the proxy's descriptors.
# Exit 1 if a slow connection was not answered 408, a well-behaved request failed, or the p99
# ratio exceeds MAX_RATIO (default 2).
#
#   loadtest/slowloris.sh                    # debug build; PORTICO=.build/release/portico for release
#   SLOW=1000 RATE=500 CONNS=16 T=10s HEADER_TIMEOUT=15s WORKERS=2 loadtest/slowloris.sh
#
# Loopback only, kernel-chosen ports; every process it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

SLOW=${SLOW:-1000}
RATE=${RATE:-500}
CONNS=${CONNS:-16}
T=${T:-10s}
HEADER_TIMEOUT=${HEADER_TIMEOUT:-15s}
WORKERS=${WORKERS:-2}
MAX_RATIO=${MAX_RATIO:-2}
BIN=${PORTICO:-.build/debug/portico}
LOAD=${PORTICO_LOAD:-$(dirname "$BIN")/portico-load}
for b in "$BIN" "$LOAD"; do [ -x "$b" ] || { echo "slowloris.sh: $b not found (swift build first)" >&2; exit 2; }; done

# The attacker's sockets and the proxy's need room.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
TMP=$(mktemp -d /tmp/portico-slowloris.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

wait_for() {  # file regex -> first match, within 20 s
    for _ in $(seq 200); do
        if grep -Eo "$2" "$1" 2>/dev/null | head -1 | grep -q .; then grep -Eo "$2" "$1" | head -1; return 0; fi
        sleep 0.1
    done
    echo "slowloris.sh: no /$2/ in $1" >&2; cat "$1" >&2; exit 2
}

"$BIN" echo --listen 127.0.0.1:0 --name slowloris-backend 2>"$TMP/echo.log" & PIDS+=($!)
ECHO_PORT=$(wait_for "$TMP/echo.log" 'listening on 127\.0\.0\.1:[0-9]+' | grep -Eo '[0-9]+$')
cat >"$TMP/routes.yaml" <<EOF
apiVersion: v1
kind: Service
metadata: {name: slow}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: slow}
subsets: [{addresses: [{ip: 127.0.0.1}], ports: [{name: http, port: $ECHO_PORT}]}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: slow}
spec:
  ingressClassName: portico
  rules: [{http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: slow, port: {number: 80}}}}]}}]
EOF
"$BIN" serve -f "$TMP/routes.yaml" --http 127.0.0.1:0 --https off --admin 127.0.0.1:0 --api 127.0.0.1:0 \
    --data "$TMP/data" --workers "$WORKERS" --access-log off --client-header-timeout "$HEADER_TIMEOUT" \
    2>"$TMP/serve.log" & SERVE=$!; PIDS+=($SERVE)
PORT=$(wait_for "$TMP/serve.log" 'listening http=127\.0\.0\.1:[0-9]+' | grep -Eo '[0-9]+$')
URL="http://127.0.0.1:$PORT/load"
LOADARGS=(-c "$CONNS" -R "$RATE" -d "$T" --timeout 5s -H 'Host: slow.test' --json "$URL")

echo "# $(date -u +%FT%TZ) $(nproc) cores; SLOW=$SLOW RATE=$RATE CONNS=$CONNS T=$T HEADER_TIMEOUT=$HEADER_TIMEOUT WORKERS=$WORKERS"
"$LOAD" "${LOADARGS[@]}" >"$TMP/clean.json" || true
FDS_BEFORE=$(ls /proc/$SERVE/fd | wc -l)

# The attacker: non-blocking sockets, one byte per connection per second, records each reply.
cat >"$TMP/attack.py" <<'EOF'
import json, os, select, socket, sys, time
port, count, limit, ready = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
head = b"GET /slowloris HTTP/1.1\r\nHost: slow.test\r\nX-Slow: "
conns = []
for _ in range(count):
    s = socket.create_connection(("127.0.0.1", port))
    s.setblocking(False)
    conns.append({"s": s, "first": None, "answered": None, "reply": b"", "closed": False})
sent, start = 0, time.monotonic()
next_tick = start
signalled = False
while time.monotonic() - start < limit and not all(c["closed"] for c in conns):
    now = time.monotonic()
    if now >= next_tick:
        b = head[sent:sent + 1] if sent < len(head) else b"a"
        for c in conns:
            if c["closed"] or c["reply"]:
                continue
            try:
                c["s"].send(b)
                c["first"] = c["first"] or time.monotonic()
            except BlockingIOError:
                pass
            except OSError:
                c["closed"] = True
        sent += 1
        next_tick += 1
        if not signalled:
            open(ready, "w").close()
            signalled = True
    poller = select.poll()
    by_fd = {}
    for c in conns:
        if not c["closed"]:
            poller.register(c["s"], select.POLLIN)
            by_fd[c["s"].fileno()] = c
    for fd, _ in poller.poll(50):
        c = by_fd[fd]
        try:
            data = c["s"].recv(4096)
        except BlockingIOError:
            continue
        except OSError:
            data = b""
        if data:
            c["answered"] = c["answered"] or time.monotonic()
            c["reply"] += data[:256]
        else:
            c["closed"] = True
after = sorted(c["answered"] - c["first"] for c in conns if c["answered"] and c["first"])
print(json.dumps({
    "connections": count,
    "answered_408": sum(1 for c in conns if c["reply"].startswith(b"HTTP/1.1 408")),
    "closed": sum(1 for c in conns if c["closed"]),
    "first_s": after[0] if after else None, "last_s": after[-1] if after else None,
}))
EOF
LIMIT=$(python3 -c "import re,sys; v='$HEADER_TIMEOUT'; m=re.fullmatch(r'(\d+)(ms|s|m)',v); n=int(m[1]); print({'ms':n/1000,'s':n,'m':n*60}[m[2]]+10)")
python3 "$TMP/attack.py" "$PORT" "$SLOW" "$LIMIT" "$TMP/ready" >"$TMP/attack.json" & ATTACK=$!; PIDS+=($ATTACK)
for _ in $(seq 300); do [ -e "$TMP/ready" ] && break; sleep 0.1; done
[ -e "$TMP/ready" ] || { echo "slowloris.sh: the attacker did not connect" >&2; exit 2; }
FDS_DURING=$(ls /proc/$SERVE/fd | wc -l)
RSS_DURING=$(awk '/VmRSS/ {print $2}' /proc/$SERVE/status)
"$LOAD" "${LOADARGS[@]}" >"$TMP/attack-load.json" || true
wait "$ATTACK" || true
sleep 1
FDS_AFTER=$(ls /proc/$SERVE/fd | wc -l)

python3 - "$TMP/clean.json" "$TMP/attack-load.json" "$TMP/attack.json" "$FDS_BEFORE" "$FDS_DURING" "$FDS_AFTER" "$RSS_DURING" "$MAX_RATIO" <<'EOF'
import json, sys
clean, load, attack = (json.load(open(p)) for p in sys.argv[1:4])
fb, fd, fa, rss, max_ratio = sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7], float(sys.argv[8])
def row(name, r):
    other = {k: v for k, v in r["status"].items() if k != "200"}
    print(f"{name:<14} {r['responses']:>9} {r['errors']['total']:>7} {r['latency_ms']['p50']:>9.3f} "
          f"{r['latency_ms']['p99']:>9.3f} {r['latency_ms']['max']:>9.3f} {r['requests_per_sec']:>9.1f}  {other or ''}")
print(f"{'run':<14} {'responses':>9} {'errors':>7} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9} {'req/s':>9}")
row("clean", clean)
row("under attack", load)
ratio = load["latency_ms"]["p99"] / clean["latency_ms"]["p99"] if clean["latency_ms"]["p99"] > 0 else float("inf")
print(f"p99 clean {clean['latency_ms']['p99']:.3f} ms, under attack {load['latency_ms']['p99']:.3f} ms, ratio {ratio:.2f} (limit {max_ratio})")
print(f"slow connections {attack['connections']}: answered 408 {attack['answered_408']}, closed {attack['closed']}, "
      f"408 after {attack['first_s']:.2f} to {attack['last_s']:.2f} s from their first byte")
print(f"proxy descriptors before {fb}, during the attack {fd}, after {fa}; RSS during the attack {int(rss)//1024} MiB")
bad = []
if attack["answered_408"] != attack["connections"]: bad.append("not every slow connection got 408")
if load["errors"]["total"] or clean["errors"]["total"]: bad.append("well-behaved requests failed")
if any(k != "200" for k in load["status"]): bad.append("non-200 responses under attack")
if ratio > max_ratio: bad.append(f"p99 ratio {ratio:.2f} > {max_ratio}")
print("RESULT: " + ("PASS" if not bad else "FAIL: " + "; ".join(bad)))
sys.exit(1 if bad else 0)
EOF
