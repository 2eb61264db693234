#!/usr/bin/env bash
# Portico side by side with nginx and HAProxy, each loaded by wrk and by portico-load.
#
# The same setup as ../shared/bench/anchors.sh: two nginx backends (127.0.0.1:9001 and :9002),
# nginx (:9080) and HAProxy (:9081) as reverse proxies in front of them, and Portico
# (`portico serve -f loadtest/bench-routes.yaml`, :8090) routing every request to the same two
# backends. Every proxy gets WORKERS workers; each (proxy, load tool) pair runs ROUNDS times,
# interleaved, and the table shows medians and the ratios Portico/nginx and Portico/HAProxy.
#
#   swift build -c release && loadtest/bench.sh
#
# Env: T (run length, default 5s), C (connections, 64), ROUNDS (3), WORKERS (1),
#      TOOLS ("wrk portico-load"), PORTICO / LOAD (binaries, default .build/release/…),
#      PORTICO_ARGS (more `serve` flags, e.g. "--tls-protocols TLSv1.2" to meet the anchors'
#      nginx 1.22, which speaks TLS 1.2 only, with the same protocol),
#      TLS=1 adds https rows, keep-alive and a handshake per request (Portico's when its `serve`
#      has --https), BODIES=1 adds 1 KiB and 64 KiB response rows, KEEP=1 keeps the raw outputs.
# Bounded: 4 targets x 2 tools x ROUNDS x T (about 2 min with the defaults), plus start-up.
#      IDLE=10000 adds the idle row: each proxy's RSS growth per held keep-alive connection
#      (portico-load --idle, held IDLE_SECONDS, default 6). 1 vs 2 workers is two runs.
set -u
cd "$(dirname "$0")/.."
T=${T:-5s}; C=${C:-64}; ROUNDS=${ROUNDS:-3}; WORKERS=${WORKERS:-1}; TOOLS=${TOOLS:-"wrk portico-load"}
PORTICO=${PORTICO:-.build/release/portico}; LOAD=${LOAD:-.build/release/portico-load}
ROUTES=loadtest/bench-routes.yaml

die() { echo "bench: $*" >&2; exit 2; }
for t in nginx haproxy wrk openssl; do command -v $t >/dev/null || die "missing $t (apt-get install -y nginx-light haproxy wrk openssl)"; done
[ -x "$PORTICO" ] || die "no $PORTICO: swift build -c release"
[ -x "$LOAD" ] || die "no $LOAD: swift build -c release --product portico-load"
[ -f "$ROUTES" ] || die "no $ROUTES (Ingress defaultBackend -> Service bench -> Endpoints 127.0.0.1:9001, :9002)"

D=$(mktemp -d /tmp/portico-bench.XXXXXX); PPID_PORTICO=
cleanup() {
  [ -n "$PPID_PORTICO" ] && kill "$PPID_PORTICO" 2>/dev/null
  for p in "$D"/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null; done
  if [ -n "${KEEP:-}" ]; then echo "raw outputs in $D"; else rm -rf "$D"; fi
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$D/key.pem" -out "$D/cert.pem" \
  -days 2 -subj /CN=bench.local -addext "subjectAltName=DNS:bench.local,IP:127.0.0.1" >/dev/null 2>&1
cat "$D/cert.pem" "$D/key.pem" > "$D/both.pem"
mkdir -p "$D/www"; chmod 755 "$D" "$D/www"  # nginx workers run as nobody
head -c 1024 /dev/zero | tr '\0' 'a' > "$D/www/1k"
head -c 65536 /dev/zero | tr '\0' 'b' > "$D/www/64k"
chmod 644 "$D/www/1k" "$D/www/64k"
cat > "$D/backend.conf" <<C
worker_processes 1; pid $D/backend.pid; daemon on; error_log /dev/null;
events { worker_connections 4096; }
http { access_log off;
  server { listen 127.0.0.1:9001 reuseport backlog=4096; keepalive_requests 100000; root $D/www;
           location = / { return 200 "hello from backend\n"; } location / { } }
  server { listen 127.0.0.1:9002 reuseport backlog=4096; keepalive_requests 100000; root $D/www;
           location = / { return 200 "hello from backend\n"; } location / { } } }
C
# Room for IDLE held client connections (plus upstream ones) in every proxy.
WC=4096; [ -n "${IDLE:-}" ] && WC=$((IDLE + 2048))
# Descriptors: as many as the hard limit allows (HAProxy wants about 2 per maxconn).
ulimit -n "$(ulimit -Hn)" 2>/dev/null
FDS=$(ulimit -n); [ "$FDS" = unlimited ] && FDS=1048576
NOFILE=$((WC * 2 < FDS ? WC * 2 : FDS))
HAMAXCONN=$(( WC < (FDS - 200) / 2 ? WC : (FDS - 200) / 2 ))
cat > "$D/proxy.conf" <<C
worker_processes $WORKERS; worker_rlimit_nofile $NOFILE; pid $D/nginx.pid; daemon on; error_log /dev/null;
events { worker_connections $WC; }
http { access_log off;
  upstream be { server 127.0.0.1:9001; server 127.0.0.1:9002; keepalive 64; }
  server { listen 127.0.0.1:9080 backlog=4096; listen 127.0.0.1:9443 ssl backlog=4096; server_name bench.local;
    ssl_certificate $D/cert.pem; ssl_certificate_key $D/key.pem; keepalive_requests 100000;
    location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$remote_addr; } } }
C
cat > "$D/haproxy.cfg" <<C
global
  nbthread $WORKERS
  maxconn $HAMAXCONN
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
  bind 127.0.0.1:9444 ssl crt $D/both.pem
  default_backend be
backend be
  balance roundrobin
  server s1 127.0.0.1:9001
  server s2 127.0.0.1:9002
C
# Another benchmark on the same ports would be measured instead of ours: refuse to start.
for p in 9001 9002 9080 9081 9443 9444 9445 8090; do
  (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && die "127.0.0.1:$p is already in use (another benchmark running?)"
done
nginx -c "$D/backend.conf" && nginx -c "$D/proxy.conf" && haproxy -f "$D/haproxy.cfg" || die "could not start the anchors (ports 9001/9002/9080/9081/9443/9444 busy?)"
# Portico's https listener, when this build's `serve` has one (same certificate as the anchors).
PORTICO_TLS=
if "$PORTICO" serve --help 2>&1 | grep -q -- '--https'; then
  if [ -n "${TLS:-}" ]; then
    PORTICO_TLS="--https 127.0.0.1:9445 --default-cert $D/cert.pem --default-key $D/key.pem"
  else
    PORTICO_TLS="--https off"
  fi
fi
# In a session of its own, as nginx and HAProxy are (they daemonise: setsid). With the kernel's
# autogroup scheduling (CONFIG_SCHED_AUTOGROUP, on by default in Debian), a session is one CPU
# group: started from this script, Portico would share a group, so a CPU share, with the load
# tool while each anchor has one to itself (measured: more idle CPU and fewer requests/s).
setsid "$PORTICO" serve -f "$ROUTES" --http 127.0.0.1:8090 $PORTICO_TLS --admin 127.0.0.1:0 --workers "$WORKERS" \
  --api 127.0.0.1:0 --data "$D/portico-data" --access-log off ${PORTICO_ARGS:-} >"$D/portico.log" 2>&1 &
PPID_PORTICO=$!

wait_port() { for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
for p in 9001 9002 9080 9081 8090; do wait_port $p || die "nothing listening on 127.0.0.1:$p: $(tail -2 "$D/portico.log")"; done
kill -0 "$PPID_PORTICO" 2>/dev/null || die "portico exited: $(tail -2 "$D/portico.log")"

# name|url|mode (keep: keep-alive; newconn: a new connection, so a TLS handshake, per request).
# Rows are grouped so that portico*, nginx* and haproxy* with the same suffix are compared.
TARGETS="backend|http://127.0.0.1:9001/|keep nginx|http://127.0.0.1:9080/|keep haproxy|http://127.0.0.1:9081/|keep"
TARGETS="$TARGETS portico|http://127.0.0.1:8090/|keep"
SUFFIXES=""
if [ -n "${BODIES:-}" ]; then
  for size in 1k 64k; do
    TARGETS="$TARGETS nginx-$size|http://127.0.0.1:9080/$size|keep haproxy-$size|http://127.0.0.1:9081/$size|keep"
    TARGETS="$TARGETS portico-$size|http://127.0.0.1:8090/$size|keep"
  done
  SUFFIXES="-1k -64k"
fi
if [ -n "${TLS:-}" ]; then
  TARGETS="$TARGETS nginx-tls|https://127.0.0.1:9443/|keep haproxy-tls|https://127.0.0.1:9444/|keep"
  TARGETS="$TARGETS nginx-tls-hs|https://127.0.0.1:9443/|newconn haproxy-tls-hs|https://127.0.0.1:9444/|newconn"
  if [ "${PORTICO_TLS#--https 127}" != "$PORTICO_TLS" ] && wait_port 9445; then
    TARGETS="$TARGETS portico-tls|https://127.0.0.1:9445/|keep portico-tls-hs|https://127.0.0.1:9445/|newconn"
    SUFFIXES="$SUFFIXES -tls -tls-hs"
  else
    echo "note: this portico build has no https listener: no Portico https rows" >&2
  fi
fi

# One measurement: prints "REQS_PER_SEC P99_MS" (0 0 when the tool failed).
measure() {
  local tool=$1 url=$2 mode=$3 out=$4
  case $tool in
    wrk)
      local closeflag=(); [ "$mode" = newconn ] && closeflag=(-H "Connection: close")
      wrk -t1 -c"$C" -d"$T" --latency "${closeflag[@]}" "$url" >"$out" 2>&1
      awk '/Requests\/sec/{r=$2} /Non-2xx/{bad=1}
           $1=="99%"{v=$2; m=1; if (v ~ /us$/) m=0.001; else if (v ~ /ms$/) m=1; else if (v ~ /s$/) m=1000;
                     sub(/[a-z]+$/, "", v); p=v*m}
           END{printf "%s %s %s\n", (r==""?0:r), (p==""?0:p), (bad?"non-2xx!":"")}' "$out" ;;
    portico-load)
      local flags=(); [ "${url#https}" != "$url" ] && flags+=(--insecure); [ "$mode" = newconn ] && flags+=(--new-connection)
      "$LOAD" -t1 -c"$C" -d"$T" "${flags[@]}" --json "$url" >"$out" 2>&1
      awk -F': ' '/"requests_per_sec"/{gsub(/[ ,]/, "", $2); r=$2} /"p99" /{gsub(/[ ,]/, "", $2); p=$2}
           /^    "[0-9][0-9][0-9]"/{ if ($1 !~ /"2[0-9][0-9]"/) bad=1 }
           END{printf "%s %s %s\n", (r==""?0:r), (p==""?0:p), (bad?"non-2xx!":"")}' "$out" ;;
  esac
}

# CPU time (user + system) the process(es) of the proxy under test used during one run, in clock
# ticks: divided by the requests it gives CPU per request, which, unlike requests/s, barely moves
# when other work shares the machine.
proxy_pids() {
  case $1 in
    backend*) pgrep -P "$(cat "$D/backend.pid")" ;;
    nginx*) pgrep -P "$(cat "$D/nginx.pid")" ;;
    haproxy*) cat "$D/haproxy.pid" ;;
    portico*) echo "$PPID_PORTICO" ;;
  esac
}
cpu_ticks() { local t=0 v; for p in "$@"; do v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null); t=$((t + ${v:-0})); done; echo "$t"; }
TICK=$(getconf CLK_TCK); TSEC=${T%s}

RESULTS="$D/results"; : > "$RESULTS"
echo "# $(date -u +%FT%TZ) $(nproc) cores, $(uname -r); T=$T C=$C ROUNDS=$ROUNDS WORKERS=$WORKERS PORTICO_ARGS=${PORTICO_ARGS:-}"
for round in $(seq 1 "$ROUNDS"); do
  kill -0 "$PPID_PORTICO" 2>/dev/null || echo "warning: portico is no longer running: $(tail -2 "$D/portico.log")" >&2
  for row in $TARGETS; do
    IFS='|' read -r name url mode <<<"$row"
    for tool in $TOOLS; do
      [ "$tool" = wrk ] || [ "$tool" = portico-load ] || die "unknown tool $tool"
      pids=$(proxy_pids "$name"); c0=$(cpu_ticks $pids)
      read -r rps p99 flag < <(measure "$tool" "$url" "$mode" "$D/$name.$tool.$round.out")
      c1=$(cpu_ticks $pids)
      cpu=$(awk -v d=$((c1 - c0)) -v k="$TICK" -v r="$rps" -v t="$TSEC" 'BEGIN{ if (r > 0) printf "%.2f", d / k * 1e6 / (r * t); else print 0 }')
      printf 'round %s  %-15s %-13s %12.0f req/s  p99 %8.3f ms  cpu %6.2f us/req  %s\n' "$round" "$name" "$tool" "$rps" "$p99" "$cpu" "$flag"
      echo "$name $tool $rps $p99 $cpu" >> "$RESULTS"
    done
  done
done

# Medians per (target, tool), then the ratios (req/s: higher is better for Portico; p99: lower).
median() { sort -g | awk '{v[NR]=$1} END{if (NR==0) print 0; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
med() { awk -v n="$1" -v t="$2" -v f="$3" '$1==n && $2==t {print $f}' "$RESULTS" | median; }
echo
printf '%-13s %-15s %12s %10s %12s\n' tool target "req/s" "p99 ms" "cpu us/req"
for tool in $TOOLS; do
  for row in $TARGETS; do
    name=${row%%|*}
    printf '%-13s %-15s %12.0f %10.3f %12.2f\n' "$tool" "$name" "$(med "$name" "$tool" 3)" "$(med "$name" "$tool" 4)" "$(med "$name" "$tool" 5)"
  done
done
echo
printf '%-13s %-10s %14s %16s %16s %18s %16s\n' tool row "req/s P/nginx" "req/s P/HAProxy" "p99 P/nginx" "p99 P/HAProxy" "cpu/req P/nginx"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b>0) printf "%.2f", a/b; else printf "n/a" }'; }
for tool in $TOOLS; do
  for sfx in "" $SUFFIXES; do
    pr=$(med "portico$sfx" "$tool" 3); nr=$(med "nginx$sfx" "$tool" 3); hr=$(med "haproxy$sfx" "$tool" 3)
    pp=$(med "portico$sfx" "$tool" 4); np=$(med "nginx$sfx" "$tool" 4); hp=$(med "haproxy$sfx" "$tool" 4)
    pc=$(med "portico$sfx" "$tool" 5); nc=$(med "nginx$sfx" "$tool" 5)
    case $sfx in "") label=http ;; -tls) label=https ;; -tls-hs) label=https-hs ;; *) label="http${sfx}" ;; esac
    printf '%-13s %-10s %14s %16s %16s %18s %16s\n' "$tool" "$label" \
      "$(ratio "$pr" "$nr")" "$(ratio "$pr" "$hr")" "$(ratio "$pp" "$np")" "$(ratio "$pp" "$hp")" "$(ratio "$pc" "$nc")"
  done
done

# Idle keep-alive connections: RSS growth of each proxy (all its processes) per held connection.
if [ -n "${IDLE:-}" ]; then
  echo
  echo "# $IDLE idle keep-alive connections held for ${IDLE_SECONDS:-6}s (portico-load --idle)"
  rss() { local t=0 v; for p in "$@"; do v=$(awk '/^VmRSS/{print $2}' "/proc/$p/status" 2>/dev/null); t=$((t + ${v:-0})); done; echo "$t"; }
  printf '%-8s %8s %12s %12s %16s\n' proxy held "RSS before" "RSS held" "KiB/connection"
  for name in nginx haproxy portico; do
    case $name in
      nginx) pids=$(pgrep -P "$(cat "$D/nginx.pid")"); url=http://127.0.0.1:9080/ ;;
      haproxy) pids=$(cat "$D/haproxy.pid"); url=http://127.0.0.1:9081/ ;;
      portico) pids=$PPID_PORTICO; url=http://127.0.0.1:8090/ ;;
    esac
    before=$(rss $pids)
    "$LOAD" --idle -c "$IDLE" -d "${IDLE_SECONDS:-6}s" --timeout 10s --json "$url" >"$D/idle.$name.out" 2>&1 &
    lp=$!
    sleep $(( ${IDLE_SECONDS:-6} - 1 ))
    held_rss=$(rss $pids)
    wait $lp
    held=$(awk -F': ' '/"idle_connections_open"/{gsub(/[ ,]/, "", $2); print $2}' "$D/idle.$name.out")
    awk -v n="$name" -v b="$before" -v d="$held_rss" -v h="${held:-0}" 'BEGIN{
      printf "%-8s %8d %9d KiB %9d KiB %16s\n", n, h, b, d, (h > 0 ? sprintf("%.1f", (d - b) / h) : "n/a") }'
  done
fi
