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
#      TLS=1 adds https keep-alive rows for nginx and HAProxy (Portico https: when `serve` has
#      --https), KEEP=1 keeps the temp dir with the raw outputs.
# Bounded: 4 targets x 2 tools x ROUNDS x T (about 2 min with the defaults), plus start-up.
# Not yet here (see issue 4): 1 KiB / 64 KiB bodies, 10 000 idle connections (RSS), 1 vs 2 workers.
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
cat > "$D/backend.conf" <<C
worker_processes 1; pid $D/backend.pid; daemon on; error_log /dev/null;
events { worker_connections 4096; }
http { access_log off;
  server { listen 127.0.0.1:9001 reuseport backlog=4096; keepalive_requests 100000; location / { return 200 "hello from backend\n"; } }
  server { listen 127.0.0.1:9002 reuseport backlog=4096; keepalive_requests 100000; location / { return 200 "hello from backend\n"; } } }
C
cat > "$D/proxy.conf" <<C
worker_processes $WORKERS; pid $D/nginx.pid; daemon on; error_log /dev/null;
events { worker_connections 4096; }
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
nginx -c "$D/backend.conf" && nginx -c "$D/proxy.conf" && haproxy -f "$D/haproxy.cfg" || die "could not start the anchors (ports 9001/9002/9080/9081/9443/9444 busy?)"
"$PORTICO" serve -f "$ROUTES" --http 127.0.0.1:8090 --admin 127.0.0.1:0 --workers "$WORKERS" --access-log off \
  >"$D/portico.log" 2>&1 &
PPID_PORTICO=$!

wait_port() { for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
for p in 9001 9002 9080 9081 8090; do wait_port $p || die "nothing listening on 127.0.0.1:$p (see $D/portico.log)"; done

TARGETS="backend=http://127.0.0.1:9001/ nginx=http://127.0.0.1:9080/ haproxy=http://127.0.0.1:9081/ portico=http://127.0.0.1:8090/"
if [ -n "${TLS:-}" ]; then
  TARGETS="$TARGETS nginx-tls=https://127.0.0.1:9443/ haproxy-tls=https://127.0.0.1:9444/"
  if "$PORTICO" serve --help 2>&1 | grep -q -- '--https'; then
    echo "note: Portico https rows need its certificate flags wired here; not measured yet" >&2
  fi
fi

# One measurement: prints "REQS_PER_SEC P99_MS" (0 0 when the tool failed).
measure() {
  local tool=$1 url=$2 out=$3
  case $tool in
    wrk)
      wrk -t1 -c"$C" -d"$T" --latency "$url" >"$out" 2>&1
      awk '/Requests\/sec/{r=$2}
           $1=="99%"{v=$2; m=1; if (v ~ /us$/) m=0.001; else if (v ~ /ms$/) m=1; else if (v ~ /s$/) m=1000;
                     sub(/[a-z]+$/, "", v); p=v*m}
           END{printf "%s %s\n", (r==""?0:r), (p==""?0:p)}' "$out" ;;
    portico-load)
      local tlsflag=; [ "${url#https}" != "$url" ] && tlsflag=--insecure
      "$LOAD" -t1 -c"$C" -d"$T" $tlsflag --json "$url" >"$out" 2>&1
      awk -F': ' '/"requests_per_sec"/{gsub(/[ ,]/, "", $2); r=$2} /"p99" /{gsub(/[ ,]/, "", $2); p=$2}
           END{printf "%s %s\n", (r==""?0:r), (p==""?0:p)}' "$out" ;;
  esac
}

RESULTS="$D/results"; : > "$RESULTS"
echo "# $(date -u +%FT%TZ) $(nproc) cores, $(uname -r); T=$T C=$C ROUNDS=$ROUNDS WORKERS=$WORKERS"
for round in $(seq 1 "$ROUNDS"); do
  for pair in $TARGETS; do
    name=${pair%%=*}; url=${pair#*=}
    for tool in $TOOLS; do
      [ "$tool" = wrk ] || [ "$tool" = portico-load ] || die "unknown tool $tool"
      read -r rps p99 < <(measure "$tool" "$url" "$D/$name.$tool.$round.out")
      printf 'round %s  %-12s %-13s %12.0f req/s  p99 %8.3f ms\n' "$round" "$name" "$tool" "$rps" "$p99"
      echo "$name $tool $rps $p99" >> "$RESULTS"
    done
  done
done

# Medians per (target, tool) and the ratios.
median() { sort -g | awk '{v[NR]=$1} END{if (NR==0) print 0; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
echo
printf '%-13s %-12s %12s %10s\n' tool target "req/s" "p99 ms"
for tool in $TOOLS; do
  for pair in $TARGETS; do
    name=${pair%%=*}
    rps=$(awk -v n="$name" -v t="$tool" '$1==n && $2==t {print $3}' "$RESULTS" | median)
    p99=$(awk -v n="$name" -v t="$tool" '$1==n && $2==t {print $4}' "$RESULTS" | median)
    printf '%-13s %-12s %12.0f %10.3f\n' "$tool" "$name" "$rps" "$p99"
    eval "M_${name//-/_}_${tool//-/_}_rps=$rps; M_${name//-/_}_${tool//-/_}_p99=$p99"
  done
done
echo
printf '%-13s %18s %20s %16s %18s\n' tool "Portico/nginx req/s" "Portico/HAProxy req/s" "p99 Portico/nginx" "p99 Portico/HAProxy"
for tool in $TOOLS; do
  t=${tool//-/_}
  eval "pr=\$M_portico_${t}_rps; nr=\$M_nginx_${t}_rps; hr=\$M_haproxy_${t}_rps"
  eval "pp=\$M_portico_${t}_p99; np=\$M_nginx_${t}_p99; hp=\$M_haproxy_${t}_p99"
  awk -v tool="$tool" -v pr="$pr" -v nr="$nr" -v hr="$hr" -v pp="$pp" -v np="$np" -v hp="$hp" 'BEGIN{
    printf "%-13s %18s %20s %16s %18s\n", tool,
      (nr>0 ? sprintf("%.2f", pr/nr) : "n/a"), (hr>0 ? sprintf("%.2f", pr/hr) : "n/a"),
      (np>0 ? sprintf("%.2f", pp/np) : "n/a"), (hp>0 ? sprintf("%.2f", pp/hp) : "n/a") }'
done
