#!/usr/bin/env bash
# The loopback-TCP comparison (issue 20): requests per second over real sockets, `wrk`
# driving, every contender in the same run, as a ratio to its baseline in the same round.
#
# 1. kv's layers beside tower_governor and tower-sessions: one `tcp_server` (kv-benches,
#    one tokio worker), one route per contender (see benches/src/bin/tcp_server.rs); ratio
#    = the route's req/s / the bare route's, per round, median over rounds.
# 2. cache hits: examples/cache-proxy beside nginx `proxy_cache` and Varnish, each in front
#    of the same origin (tcp_server's /origin/: 1 KiB, `max-age=3600`), configured here in
#    a temporary directory on loopback ports; ratio = req/s / nginx's.
#
# Run: benches/tcp.sh   (env: D=seconds per run (5), ROUNDS (3), C=connections (32),
#      PART=all|layers|proxies). Needs wrk, nginx, varnishd (Debian packages).
set -euo pipefail
cd "$(dirname "$0")/.."

D=${D:-5}
ROUNDS=${ROUNDS:-3}
C=${C:-32}
PART=${PART:-all}
TARGET=${CARGO_TARGET_DIR:-target}
SERVER_PORT=18090
PROXY_PORT=18091
NGINX_PORT=18092
VARNISH_PORT=18093

cargo build --quiet --profile bench -p kv-benches --bin tcp_server --features tcp
cargo build --quiet --profile bench -p cache-proxy

tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -f "$tmp/nginx.pid" ] && kill "$(cat "$tmp/nginx.pid")" 2>/dev/null || true
  sleep 0.5
  rm -rf "$tmp"
}
trap cleanup EXIT

wait_port() {
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$1/${2:-}" && return 0
    sleep 0.1
  done
  echo "nothing answers on port $1" >&2
  return 1
}

# req/s of one wrk run.
rps() {
  local url=$1
  shift
  wrk -t1 -c"$C" -d"${D}s" "$@" "$url" | awk '/Requests\/sec/ { print $2 }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

KV_TCP_WORKERS=1 "$TARGET/release/tcp_server" "$SERVER_PORT" 2>"$tmp/server.log" &
pids+=($!)
wait_port "$SERVER_PORT" bare
base="http://127.0.0.1:$SERVER_PORT"

if [ "$PART" = all ] || [ "$PART" = layers ]; then
  # The session routes need a session: one cookie of each kind, sent on every route of the
  # run (the bare route included), so that each run parses the same request.
  kv_cookie=$(curl -si "$base/kv/session/write" | grep -i '^set-cookie:' | sed -E 's/^[^:]*: *([^;]*).*/\1/' | tr -d '\r')
  ts_cookie=$(curl -si "$base/ts/session/write" | grep -i '^set-cookie:' | sed -E 's/^[^:]*: *([^;]*).*/\1/' | tr -d '\r')
  cookie="Cookie: $kv_cookie; $ts_cookie"
  routes="bare noop governor kv/gcra kv/gcra-no-headers kv/fixed kv/session/untouched ts/session/untouched kv/session/read ts/session/read kv/session/write ts/session/write kv/cache"
  : >"$tmp/layers"
  for round in $(seq "$ROUNDS"); do
    for route in $routes; do
      r=$(rps "$base/$route" -H "$cookie")
      echo "$round $route $r" >>"$tmp/layers"
    done
  done
  echo
  echo "## layers over loopback TCP (wrk -t1 -c$C, ${D}s x $ROUNDS rounds, server: 1 tokio worker)"
  printf '| %-22s | %12s | %14s |\n' route 'req/s (med)' 'ratio to bare'
  for route in $routes; do
    med=$(awk -v r="$route" '$2 == r { print $3 }' "$tmp/layers" | median)
    ratio=$(awk -v r="$route" '$2 == "bare" { b[$1] = $3 } $2 == r { v[$1] = $3 } END { for (k in v) printf "%.4f\n", v[k] / b[k] }' "$tmp/layers" | median)
    printf '| %-22s | %12.0f | %14.3f |\n' "/$route" "$med" "$ratio"
  done
fi

if [ "$PART" = all ] || [ "$PART" = proxies ]; then
  "$TARGET/release/cache-proxy" --upstream "$base" --port "$PROXY_PORT" >"$tmp/proxy.log" 2>&1 &
  pids+=($!)
  # nginx's workers run as an unprivileged user: they must be able to write the cache.
  mkdir -p "$tmp/nginx"
  chmod 755 "$tmp"
  chmod 777 "$tmp/nginx"
  cat >"$tmp/nginx.conf" <<EOF
worker_processes 2;
pid $tmp/nginx.pid;
error_log $tmp/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  proxy_cache_path $tmp/nginx/cache levels=1:2 keys_zone=kv:10m;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass $base;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache kv;
      add_header X-Cache \$upstream_cache_status;
    }
  }
}
EOF
  nginx -c "$tmp/nginx.conf" -p "$tmp/nginx" -g 'daemon on;'
  varnishd -j none -n "$tmp/varnish" -a "127.0.0.1:$VARNISH_PORT" -b "127.0.0.1:$SERVER_PORT" \
    -s malloc,64m -P "$tmp/varnish.pid"
  pids+=("$(cat "$tmp/varnish.pid")")
  for port in $PROXY_PORT $NGINX_PORT $VARNISH_PORT; do
    wait_port "$port" origin/page
    curl -s -o /dev/null "http://127.0.0.1:$port/origin/page" # warm: the entry is stored
  done
  # Every proxy answers the page from its cache now.
  curl -sI "http://127.0.0.1:$PROXY_PORT/origin/page" | grep -qi '^x-cache: HIT' \
    || { echo "cache-proxy does not hit" >&2; exit 1; }
  curl -sI "http://127.0.0.1:$NGINX_PORT/origin/page" | grep -qi '^x-cache: HIT' \
    || { echo "nginx does not hit" >&2; exit 1; }
  curl -sI "http://127.0.0.1:$VARNISH_PORT/origin/page" | grep -qi '^age:' \
    || { echo "varnish does not hit" >&2; exit 1; }
  : >"$tmp/proxies"
  for round in $(seq "$ROUNDS"); do
    for who in nginx cache-proxy varnish origin; do
      case $who in
        nginx) port=$NGINX_PORT ;;
        cache-proxy) port=$PROXY_PORT ;;
        varnish) port=$VARNISH_PORT ;;
        origin) port=$SERVER_PORT ;;
      esac
      echo "$round $who $(rps "http://127.0.0.1:$port/origin/page")" >>"$tmp/proxies"
    done
  done
  echo
  echo "## cache hits over loopback TCP, 1 KiB body (wrk -t1 -c$C, ${D}s x $ROUNDS rounds)"
  printf '| %-32s | %12s | %14s |\n' contender 'req/s (med)' 'ratio to nginx'
  for who in cache-proxy nginx varnish origin; do
    med=$(awk -v r="$who" '$2 == r { print $3 }' "$tmp/proxies" | median)
    ratio=$(awk -v r="$who" '$2 == "nginx" { b[$1] = $3 } $2 == r { v[$1] = $3 } END { for (k in v) printf "%.4f\n", v[k] / b[k] }' "$tmp/proxies" | median)
    printf '| %-32s | %12.0f | %14.3f |\n' "$who" "$med" "$ratio"
  done
fi
