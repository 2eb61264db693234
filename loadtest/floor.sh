#!/usr/bin/env bash
# How fast can any proxy be here? nginx, HAProxy and Portico beside three relays that do no
# HTTP work at all — a byte pipe from each client connection to an upstream connection of its
# own (loadtest/floor/*.c): over epoll, over io_uring, over io_uring with multishot receives.
# A relay's rate is the ceiling for a user-space proxy on this machine, since wrk and the
# backend share the same cores; the ratio to nginx is what no proxy design can beat.
#
#   swift build -c release && loadtest/floor.sh        (needs gcc, liburing-dev, nginx, haproxy, wrk)
#
# Env: T (run length, 5s), C (connections, 64), ROUNDS (5), PORTICO (.build/release/portico).
# Prints per run: requests/s, p99, and the proxy's CPU per request (user+system time from /proc
# over the run / requests); then medians and median per-round ratios to nginx.
# Bounded: 6 targets x ROUNDS x T (about 3 min with the defaults).
set -u
cd "$(dirname "$0")/.."
T=${T:-5s}; C=${C:-64}; ROUNDS=${ROUNDS:-5}; PORTICO=${PORTICO:-.build/release/portico}
die() { echo "floor: $*" >&2; exit 2; }
for t in nginx haproxy wrk gcc; do command -v $t >/dev/null || die "missing $t (apt-get install -y nginx-light haproxy wrk gcc liburing-dev)"; done
[ -f /usr/include/liburing.h ] || die "missing liburing.h (apt-get install -y liburing-dev)"
[ -x "$PORTICO" ] || die "no $PORTICO: swift build -c release"
D=$(mktemp -d /tmp/portico-floor.XXXXXX); PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "$D"/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null; done
  rm -rf "$D"
}
trap cleanup EXIT
for r in relay-epoll relay-uring relay-uring-ms; do
  gcc -O2 -Wall -o "$D/$r" "loadtest/floor/$r.c" -luring || die "cannot build $r"
done
cat > "$D/backend.conf" <<C
worker_processes 1; pid $D/backend.pid; daemon on; error_log /dev/null;
events { worker_connections 4096; }
http { access_log off;
  server { listen 127.0.0.1:9001 reuseport backlog=4096; keepalive_requests 100000; location / { return 200 "hello from backend\n"; } }
  server { listen 127.0.0.1:9002 reuseport backlog=4096; keepalive_requests 100000; location / { return 200 "hello from backend\n"; } } }
C
cat > "$D/proxy.conf" <<C
worker_processes 1; pid $D/nginx.pid; daemon on; error_log /dev/null;
events { worker_connections 4096; }
http { access_log off;
  upstream be { server 127.0.0.1:9001; server 127.0.0.1:9002; keepalive 64; }
  server { listen 127.0.0.1:9080 backlog=4096; server_name bench.local; keepalive_requests 100000;
    location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$remote_addr; } } }
C
cat > "$D/haproxy.cfg" <<C
global
  nbthread 1
  pidfile $D/haproxy.pid
  daemon
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option forwardfor
  http-reuse always
frontend fe
  bind 127.0.0.1:9081
  default_backend be
backend be
  balance roundrobin
  server s1 127.0.0.1:9001
  server s2 127.0.0.1:9002
C
nginx -c "$D/backend.conf" && nginx -c "$D/proxy.conf" && haproxy -f "$D/haproxy.cfg" || die "cannot start nginx/haproxy"
# Each in a session of its own, as the daemons are (autogroup scheduling: see README Benchmarks).
setsid "$PORTICO" serve -f loadtest/bench-routes.yaml --http 127.0.0.1:8090 --https off --api 127.0.0.1:0 \
  --data "$D/pdata" --admin 127.0.0.1:0 --workers 1 --access-log off >"$D/portico.log" 2>&1 & PIDS+=($!)
setsid "$D/relay-epoll" 8091 9001 9002 & PIDS+=($!)
setsid "$D/relay-uring" 8092 9001 9002 & PIDS+=($!)
setsid "$D/relay-uring-ms" 8093 9001 9002 & PIDS+=($!)
sleep 2
for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null || die "a candidate did not start (see $D)"; done
cpu() { local t=0 s; for p in "$@"; do for s in /proc/$p/task/*/stat; do t=$((t + $(awk '{print $14+$15}' "$s" 2>/dev/null || echo 0))); done; done; echo $t; }
HZ=$(getconf CLK_TCK)
run() { # name port pids...
  local name=$1 port=$2; shift 2
  local c0 c1 out n rps p99
  c0=$(cpu "$@"); out=$(timeout 60 wrk -t1 -c"$C" -d"$T" --latency "http://127.0.0.1:$port/" 2>&1); c1=$(cpu "$@")
  n=$(echo "$out" | awk '/requests in/{print $1}'); rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
  p99=$(echo "$out" | awk '$1=="99%"{print $2}')
  if echo "$out" | grep -q 'Non-2xx\|Socket errors'; then echo "$name: errors: $(echo "$out" | grep 'Non-2xx\|Socket errors')" >&2; fi
  printf '%-14s req/s %10s  p99 %8s  cpu/req %6.2f us\n' "$name" "$rps" "$p99" "$(echo "($c1-$c0)*1000000/$HZ/${n:-1}" | bc -l)"
}
NGINXW=$(pgrep -P "$(cat "$D/nginx.pid")")
for r in $(seq 1 "$ROUNDS"); do
  echo "# round $r (load $(cut -d' ' -f1 /proc/loadavg))"
  run nginx 9080 $NGINXW
  run haproxy 9081 "$(cat "$D/haproxy.pid")"
  run portico 8090 "${PIDS[0]}"
  run relay-epoll 8091 "${PIDS[1]}"
  run relay-uring 8092 "${PIDS[2]}"
  run relay-uring-ms 8093 "${PIDS[3]}"
done | tee "$D/runs.txt"
python3 - "$D/runs.txt" <<'PY'
import re, statistics as st, sys
rounds = []
for line in open(sys.argv[1]):
    if line.startswith('#'): rounds.append({}); continue
    m = re.match(r'(\S+)\s+req/s\s+(\S+)\s+p99\s+(\S+)\s+cpu/req\s+(\S+)', line)
    if m and rounds:
        p = m[3]; ms = float(p[:-2]) if p.endswith('ms') else float(p[:-2]) / 1000 if p.endswith('us') else float(p[:-1]) * 1000
        rounds[-1][m[1]] = (float(m[2]), ms, float(m[4]))
rounds = [r for r in rounds if 'nginx' in r]
print("\nmedians over %d rounds" % len(rounds))
print("%-14s %10s %9s %9s %12s %10s" % ("", "req/s", "/nginx", "p99 ms", "cpu us/req", "cpu/nginx"))
for n in rounds[0]:
    rs = [r for r in rounds if n in r]
    print("%-14s %10.0f %9.2f %9.2f %12.2f %10.2f" % (n, st.median(r[n][0] for r in rs),
          st.median(r[n][0] / r['nginx'][0] for r in rs), st.median(r[n][1] for r in rs),
          st.median(r[n][2] for r in rs), st.median(r[n][2] / r['nginx'][2] for r in rs)))
PY
