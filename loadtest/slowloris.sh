#!/usr/bin/env bash
# Slowloris against `portico serve`: SLOW connections (default 1000) each trickle one byte of a
# never-ending request head per second, while portico-load holds a fixed rate (-R) of well-behaved
# requests. Each of ROUNDS rounds runs the same load first without the attack (clean) and then
# under it, so the two are measured side by side on the same (possibly busy) machine. In the clean
# run the same attacker trickles into a socket of its own that nobody reads (BASELINE=sink, the
# default), so both runs share the 2 cores with the same attacker CPU and the difference is the
# proxy's; BASELINE=none leaves the attacker out of the clean run. Prints both
# p99s per round, the medians and their ratio, how many slow connections were answered 408 and
# when, the proxy's CPU time, descriptors and RSS. Exit 1 if a slow connection was not answered
# 408, a well-behaved request failed, or the ratio of median p99s exceeds MAX_RATIO (default 2).
#
#   loadtest/slowloris.sh                    # debug build; PORTICO=.build/release/portico for release
#   SLOW=1000 RATE=500 CONNS=16 T=10s HEADER_TIMEOUT=12s WORKERS=2 ROUNDS=3 BASELINE=sink SLOTS=20 loadtest/slowloris.sh
#
# Loopback only, kernel-chosen ports; every process it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

SLOW=${SLOW:-1000}
RATE=${RATE:-500}
CONNS=${CONNS:-16}
T=${T:-10s}
HEADER_TIMEOUT=${HEADER_TIMEOUT:-12s}
ROUNDS=${ROUNDS:-3}
export SLOTS=${SLOTS:-20}  # the attacker sends in SLOTS bursts a second (1: all at once)
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

cat >"$TMP/attack.py" <<'EOF'
import json, math, os, select, socket, sys, time
# port 0: aim at a listening socket of our own that never reads (the baseline: same attacker
# CPU, no proxy involved); otherwise at the proxy on 127.0.0.1:port.
port, count, limit, ready = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
sink = None
if port == 0:
    sink = socket.socket()
    sink.bind(("127.0.0.1", 0))
    sink.listen(4096)
    port = sink.getsockname()[1]
head = b"GET /slowloris HTTP/1.1\r\nHost: slow.test\r\nX-Slow: "
SLOTS = int(os.environ.get("SLOTS", "20"))  # connection i sends in slot i % SLOTS of every second
conns, by_fd, poller = [], {}, select.poll()
slots = [[] for _ in range(SLOTS)]
for i in range(count):
    s = socket.create_connection(("127.0.0.1", port))
    s.setblocking(False)
    c = {"s": s, "sent": 0, "first": None, "answered": None, "reply": b"", "closed": False}
    conns.append(c)
    slots[i % SLOTS].append(c)
    by_fd[s.fileno()] = c
    poller.register(s, select.POLLIN)
start = time.monotonic()
open(ready, "w").close()
live, next_slot = count, 0
while live and time.monotonic() - start < limit:
    due = int((time.monotonic() - start) * SLOTS)
    while next_slot <= due:
        for c in slots[next_slot % SLOTS]:
            if c["closed"] or c["reply"]:
                continue
            b = head[c["sent"]:c["sent"] + 1] or b"a"
            try:
                c["s"].send(b)
                c["first"] = c["first"] or time.monotonic()
            except OSError:
                pass  # full or reset: a reset shows in the read below
            c["sent"] += 1
        next_slot += 1
    wait_ms = max(0, math.ceil(((start + next_slot / SLOTS) - time.monotonic()) * 1000))
    for fd, _ in poller.poll(wait_ms):
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
            live -= 1
            poller.unregister(fd)
after = sorted(c["answered"] - c["first"] for c in conns if c["answered"] and c["first"])
print(json.dumps({
    "connections": count,
    "answered_408": sum(1 for c in conns if c["reply"].startswith(b"HTTP/1.1 408")),
    "closed": sum(1 for c in conns if c["closed"]),
    "first_s": after[0] if after else None, "last_s": after[-1] if after else None,
}))
EOF
LIMIT=$(python3 -c "import re,sys; v='$HEADER_TIMEOUT'; m=re.fullmatch(r'(\d+)(ms|s|m)',v); n=int(m[1]); print({'ms':n/1000,'s':n,'m':n*60}[m[2]]+10)")
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # clock ticks (user + system)
seconds() { python3 -c "import re; m=re.fullmatch(r'(\d+)(ms|s|m)','$1'); n=int(m[1]); print(max(1, int({'ms':n/1000,'s':n,'m':n*60}[m[2]])))"; }

echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $BIN"
echo "# SLOW=$SLOW RATE=$RATE CONNS=$CONNS T=$T HEADER_TIMEOUT=$HEADER_TIMEOUT WORKERS=$WORKERS ROUNDS=$ROUNDS BASELINE=${BASELINE:-sink} SLOTS=$SLOTS"
: >"$TMP/rounds.txt"
attacker() {  # port count limit -> starts the attacker, waits until its connections are open
    rm -f "$TMP/ready"
    python3 "$TMP/attack.py" "$1" "$2" "$3" "$TMP/ready" >"$4" & ATTACK=$!; PIDS+=($ATTACK)
    for _ in $(seq 300); do [ -e "$TMP/ready" ] && break; sleep 0.1; done
    [ -e "$TMP/ready" ] || { echo "slowloris.sh: the attacker did not connect" >&2; exit 2; }
    sleep 0.5  # let the proxy accept them all
}
for r in $(seq "$ROUNDS"); do
    # Clean run: the same attacker, aimed at a socket of its own (BASELINE=sink, the default), so
    # both runs share the machine with the same attacker CPU; BASELINE=none runs it alone.
    [ "${BASELINE:-sink}" = sink ] && attacker 0 "$SLOW" "$(( $(seconds "$T") + 3 ))" "$TMP/sink-$r.json"
    C0=$(cpu $SERVE)
    "$LOAD" "${LOADARGS[@]}" >"$TMP/clean-$r.json" || true
    CPU_CLEAN=$(( $(cpu $SERVE) - C0 ))
    [ "${BASELINE:-sink}" = sink ] && { wait "$ATTACK" || true; }
    FDS_BEFORE=$(ls /proc/$SERVE/fd | wc -l)
    attacker "$PORT" "$SLOW" "$LIMIT" "$TMP/attack-$r.json"
    FDS_DURING=$(ls /proc/$SERVE/fd | wc -l)
    RSS_DURING=$(awk '/VmRSS/ {print $2}' /proc/$SERVE/status)
    C0=$(cpu $SERVE); A0=$(cpu $ATTACK)
    "$LOAD" "${LOADARGS[@]}" >"$TMP/load-$r.json" || true
    CPU_ATTACK=$(( $(cpu $SERVE) - C0 )); CPU_ATTACKER=$(( $(cpu $ATTACK) - A0 ))
    wait "$ATTACK" || true
    sleep 1
    FDS_AFTER=$(ls /proc/$SERVE/fd | wc -l)
    echo "$r $CPU_CLEAN $CPU_ATTACK $CPU_ATTACKER $FDS_BEFORE $FDS_DURING $FDS_AFTER $RSS_DURING" >>"$TMP/rounds.txt"
done

python3 - "$TMP" "$MAX_RATIO" "$(getconf CLK_TCK)" <<'EOF'
import json, statistics, sys
tmp, max_ratio, hz = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
bad = []
print(f"{'round':<6} {'run':<13} {'responses':>9} {'errors':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'proxy cpu s':>11}")
clean_p99, load_p99 = [], []
for line in open(f"{tmp}/rounds.txt"):
    r, cc, ca, cx, fb, fd, fa, rss = line.split()
    clean, load, attack = (json.load(open(f"{tmp}/{k}-{r}.json")) for k in ("clean", "load", "attack"))
    for name, x, c in (("clean", clean, cc), ("under attack", load, ca)):
        print(f"{r:<6} {name:<13} {x['responses']:>9} {x['errors']['total']:>6} {x['latency_ms']['p50']:>8.3f} "
              f"{x['latency_ms']['p99']:>8.3f} {x['latency_ms']['max']:>8.3f} {int(c)/hz:>11.2f}")
        if x["errors"]["total"] or any(k != "200" for k in x["status"]):
            bad.append(f"round {r} {name}: errors {x['errors']} statuses {x['status']}")
    clean_p99.append(clean["latency_ms"]["p99"]); load_p99.append(load["latency_ms"]["p99"])
    print(f"       slow connections {attack['connections']}: 408 {attack['answered_408']}, closed {attack['closed']}, "
          f"408 after {attack['first_s']:.2f}-{attack['last_s']:.2f} s; attacker cpu {int(cx)/hz:.2f} s; "
          f"proxy fds {fb} -> {fd} -> {fa}, RSS during {int(rss)//1024} MiB")
    if attack["answered_408"] != attack["connections"]:
        bad.append(f"round {r}: {attack['connections'] - attack['answered_408']} slow connections without 408")
mc, ml = statistics.median(clean_p99), statistics.median(load_p99)
ratio = ml / mc if mc > 0 else float("inf")
print(f"median p99: clean {mc:.3f} ms, under attack {ml:.3f} ms, ratio {ratio:.2f} (limit {max_ratio}); "
      f"per round: {', '.join(f'{l / c:.2f}' for c, l in zip(clean_p99, load_p99))}")
if ratio > max_ratio:
    bad.append(f"p99 ratio {ratio:.2f} > {max_ratio}")
print("RESULT: " + ("PASS" if not bad else "FAIL: " + "; ".join(bad)))
sys.exit(1 if bad else 0)
EOF
