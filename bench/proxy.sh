#!/usr/bin/env bash
# Measures one reverse proxy in front of the naive reference hub with
# sseguard bench: the backend only streams (no auth, no store), so what the
# bench's --pid reads is the proxy's own cost per stream. Run it for
# sseguard proxy and for nginx, alternated, to put them side by side
# (docs/benchmarks.md, "The proxy against nginx").
#
# usage: bench/proxy.sh sseguard|nginx STREAMS [bench flags...]
#
#   sseguard  sseguard proxy --upstream BACKEND, default configuration
#             (strict policy, heartbeats, write deadlines), log level warn
#   nginx     one nginx 1.22 process (master_process off: the worker is the
#             process measured), proxy_buffering off, HTTP/1.1 to the
#             backend with keepalive, the stream headers set as in
#             deploy/nginx/sseguard-proxy-headers.conf
#
# Streams and publishes both go through the proxy; the backend is
# `sseguard refhub`.
#
#   SSEGUARD_BIN  the binary that runs the bench and the backend (default:
#                 build ./cmd/sseguard to a temp dir)
#   PROXY_BIN     the binary that runs sseguard proxy (default: SSEGUARD_BIN),
#                 such as an older build to measure the same run against
#   NGINX_BIN     default /usr/sbin/nginx
set -euo pipefail
usage="usage: bench/proxy.sh sseguard|nginx STREAMS [bench flags]"
which=${1:?$usage}
count=${2:?$usage}
shift 2
dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
bin=${SSEGUARD_BIN:-}
if [ -z "$bin" ]; then
  bin=$dir/sseguard
  go build -o "$bin" "$(dirname "$0")/../cmd/sseguard"
fi
proxybin=${PROXY_BIN:-$bin}
nginx=${NGINX_BIN:-/usr/sbin/nginx}

# waitfor FILE PID: the first http://ADDR the process prints.
waitfor() {
  local a
  for _ in $(seq 100); do
    a=$(grep -o 'http://[0-9.:]*' "$1" | head -1 || true)
    [ -n "$a" ] && { echo "$a"; return 0; }
    kill -0 "$2" 2>/dev/null || { cat "$1" >&2; return 1; }
    sleep 0.1
  done
  echo "no address printed in 10 s" >&2
  return 1
}

"$bin" refhub --listen 127.0.0.1:0 >"$dir/backend.out" 2>&1 &
pids+=($!)
backend=$(waitfor "$dir/backend.out" "${pids[0]}")

case "$which" in
sseguard)
  printf 'upstream: %s\nlisten: 127.0.0.1:0\nlog:\n  level: warn\n' "$backend" >"$dir/proxy.yaml"
  "$proxybin" proxy --config "$dir/proxy.yaml" >"$dir/proxy.out" 2>"$dir/proxy.err" &
  front=$!
  pids+=($front)
  addr=$(waitfor "$dir/proxy.out" "$front")
  ;;
nginx)
  [ -x "$nginx" ] || { echo "nginx not found at $nginx (set NGINX_BIN)" >&2; exit 2; }
  # nginx cannot listen on port 0: a port below the ephemeral range
  # that no socket uses.
  lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range)
  port=
  for _ in $(seq 50); do
    p=$((10000 + RANDOM % (lo - 10000)))
    if [ -z "$(ss -Htan "sport = :$p" 2>/dev/null)" ]; then port=$p; break; fi
  done
  [ -n "$port" ] || { echo "no free port" >&2; exit 1; }
  mkdir -p "$dir/ngx"
  cat >"$dir/ngx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile $((3 * count + 1536));
pid $dir/ngx/nginx.pid;
error_log $dir/ngx/error.log warn;
events { worker_connections $((3 * count + 1024)); }
http {
    access_log off;
    client_body_temp_path $dir/ngx/client_body;
    proxy_temp_path $dir/ngx/proxy;
    fastcgi_temp_path $dir/ngx/fastcgi;
    uwsgi_temp_path $dir/ngx/uwsgi;
    scgi_temp_path $dir/ngx/scgi;
    upstream origin {
        server ${backend#http://};
        keepalive 32;
    }
    server {
        listen 127.0.0.1:$port;
        server_tokens off;
        location = /events {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_buffering off;
            proxy_cache off;
            gzip off;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
            proxy_hide_header Content-Type;
            proxy_hide_header Cache-Control;
            add_header Content-Type "text/event-stream; charset=utf-8" always;
            add_header Cache-Control "no-cache, no-store, no-transform" always;
            add_header X-Content-Type-Options "nosniff" always;
            add_header Content-Security-Policy "default-src 'none'; frame-ancestors 'none'" always;
            add_header Referrer-Policy "no-referrer" always;
            add_header X-Accel-Buffering "no";
        }
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
EOF
  "$nginx" -p "$dir/ngx" -c "$dir/ngx/nginx.conf" -e "$dir/ngx/error.log" >"$dir/ngx/out" 2>&1 &
  front=$!
  pids+=($front)
  for _ in $(seq 100); do
    [ -n "$(ss -Hltn "sport = :$port" 2>/dev/null)" ] && break
    kill -0 "$front" 2>/dev/null || { cat "$dir/ngx/out" "$dir/ngx/error.log" >&2; exit 1; }
    sleep 0.1
  done
  addr=http://127.0.0.1:$port
  ;;
*)
  echo "want sseguard or nginx, got $which" >&2
  exit 2
  ;;
esac
rc=0
"$bin" bench "$addr" --streams "$count" --pid "$front" "$@" || rc=$?
if [ "$which" = nginx ] && [ -s "$dir/ngx/error.log" ]; then
  echo "nginx error.log (last lines):" >&2
  tail -5 "$dir/ngx/error.log" >&2
fi
exit $rc
