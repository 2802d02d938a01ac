#!/usr/bin/env bash
# Measures one hub with sseguard bench, each hub in a process of its own on
# loopback, so runs of sseguard and of the naive reference hub can be put
# side by side (docs/benchmarks.md). bench/proxy.sh does the same for
# sseguard proxy and nginx in front of the naive hub.
#
# usage: bench/compare.sh sseguard|naive STREAMS [bench flags...]
#        bench/compare.sh replay STALLED [bench flags...]
#        bench/compare.sh catchup EVENTS [bench flags...]
#        bench/compare.sh storm CLIENTS [bench flags...]
#
#   sseguard, naive  STREAMS live streams on topic bench, with a token that
#                    may use it
#   replay           sseguard serve with 1000 events of 64 KiB on the
#                    anonymous topic demo, then STALLED anonymous replays
#                    (Last-Event-ID: 0) that never read; add
#                    --replay-polls N, --replay-read N or other flags (a flag
#                    given again overrides the default)
#   catchup          sseguard serve (bolt store) with EVENTS small events
#                    (--data-bytes 100 unless given) on the anonymous topic
#                    demo, then one client that resumes from the oldest and
#                    reads them all: the catch-up throughput
#   storm            sseguard serve with 100 events on topic bench, then
#                    CLIENTS streams that reconnect at once from the oldest
#                    (each 100 events behind), catch up and go live
#
#   TLS=1         serve over HTTPS (a fresh self-signed P-256 certificate
#                 for 127.0.0.1, openssl) and bench with --ca-file; add
#                 --h2 N to multiplex the streams over N HTTP/2 connections
#   PPROF=ADDR    the hub (sseguard serve or refhub) also serves pprof on
#                 ADDR (loopback), to
#                 take a heap profile during --hold:
#                 curl -o heap.pprof http://ADDR/debug/pprof/heap
#   SSEGUARD_BIN  the binary that runs the bench (default: build
#                 ./cmd/sseguard to a temp dir)
#   HUB_BIN       the binary that serves (default: SSEGUARD_BIN), such as
#                 an older build to measure the same run against
#   HUB_CONFIG    YAML appended to sseguard serve's configuration, such as
#                 $'stream:\n  replay_bytes: 8388608\n' (top-level keys
#                 other than log, limits, store and publish)
set -euo pipefail
usage="usage: bench/compare.sh sseguard|naive|replay|catchup|storm COUNT [flags]"
which=${1:?$usage}
count=${2:?$usage}
shift 2
dir=$(mktemp -d)
hub=
trap '[ -n "$hub" ] && { kill "$hub" 2>/dev/null || true; wait "$hub" 2>/dev/null || true; }; rm -rf "$dir"' EXIT
bin=${SSEGUARD_BIN:-}
if [ -z "$bin" ]; then
  bin=$dir/sseguard
  go build -o "$bin" "$(dirname "$0")/../cmd/sseguard"
fi
hubbin=${HUB_BIN:-$bin}
# One token drives every stream and publish: lift the per-principal and
# per-address limits that would otherwise (rightly) refuse the load.
limits='log:\n  level: warn\nlimits:\n  streams_per_principal: 0\n  streams_per_ip: 0\n  publish_rate: 0\n'
refhubtls=()
benchtls=()
if [ "${TLS:-}" = 1 ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 2>/dev/null
  limits="${limits}tls:\n  cert_file: $dir/cert.pem\n  key_file: $dir/key.pem\n"
  refhubtls=(--tls-cert "$dir/cert.pem" --tls-key "$dir/key.pem")
  benchtls=(--tls --ca-file "$dir/cert.pem")
fi
extra=${HUB_CONFIG:-}
case "$which" in
naive)
  pprof=()
  [ -n "${PPROF:-}" ] && pprof=(--pprof "$PPROF")
  "$hubbin" refhub --listen 127.0.0.1:0 "${refhubtls[@]}" "${pprof[@]}" >"$dir/out" 2>&1 &
  hub=$!
  ;;
sseguard|storm)
  printf "$limits" >"$dir/cfg.yaml"
  printf '%s' "$extra" >>"$dir/cfg.yaml"
  pprof=()
  [ -n "${PPROF:-}" ] && pprof=(--pprof "$PPROF")
  "$hubbin" serve --config "$dir/cfg.yaml" --data "$dir/data" --listen 127.0.0.1:0 "${pprof[@]}" >"$dir/out" 2>"$dir/err" &
  hub=$!
  ;;
replay)
  printf "${limits}publish:\n  max_data_bytes: 65536\nstore:\n  max_events_per_topic: 10000\n" >"$dir/cfg.yaml"
  printf '%s' "$extra" >>"$dir/cfg.yaml"
  "$hubbin" serve --config "$dir/cfg.yaml" --data "$dir/data" --listen 127.0.0.1:0 >"$dir/out" 2>"$dir/err" &
  hub=$!
  ;;
catchup)
  printf "${limits}store:\n  max_events_per_topic: $((count + 1000))\n" >"$dir/cfg.yaml"
  printf '%s' "$extra" >>"$dir/cfg.yaml"
  "$hubbin" serve --config "$dir/cfg.yaml" --data "$dir/data" --listen 127.0.0.1:0 >"$dir/out" 2>"$dir/err" &
  hub=$!
  ;;
*)
  echo "want sseguard, naive, replay, catchup or storm, got $which" >&2
  exit 2
  ;;
esac
# The naive hub prints its address; sseguard serve with a configuration
# file prints nothing at level warn, so its socket is looked up.
addr=
for _ in $(seq 100); do
  addr=$(grep -o 'https\?://[0-9.:]*' "$dir/out" | head -1 | sed 's,^https://,http://,' || true)
  if [ -z "$addr" ]; then
    a=$(ss -Hltnp 2>/dev/null | grep "pid=$hub," | awk '{print $4}' | grep -vxF "${PPROF:-none}" | head -1 || true)
    [ -n "$a" ] && addr=http://$a
  fi
  [ -n "$addr" ] && break
  if ! kill -0 "$hub" 2>/dev/null; then
    cat "$dir/out" "$dir/err" >&2 2>/dev/null || true
    exit 1
  fi
  sleep 0.1
done
[ -n "$addr" ] || { echo "the hub did not listen within 10 s" >&2; exit 1; }
case "$which" in
naive)
  "$bin" bench "$addr" "${benchtls[@]}" --streams "$count" --pid "$hub" "$@"
  ;;
sseguard)
  tok=$("$hubbin" token --data "$dir/data" --subscribe bench --publish bench --ttl 2h)
  "$bin" bench "$addr" "${benchtls[@]}" --token "$tok" --streams "$count" --pid "$hub" "$@"
  ;;
replay)
  tok=$("$hubbin" token --data "$dir/data" --publish demo --ttl 2h)
  "$bin" bench "$addr" --token "$tok" --topic demo --anonymous --events 1000 --data-bytes 65536 \
    --replay-stall "$count" --pid "$hub" "$@"
  ;;
storm)
  tok=$("$hubbin" token --data "$dir/data" --subscribe bench --publish bench --ttl 2h)
  "$bin" bench "$addr" --token "$tok" --storm "$count" --events 100 --rate 0 \
    --connect-concurrency 1000 --replay-window 60s --pid "$hub" "$@"
  ;;
catchup)
  tok=$("$hubbin" token --data "$dir/data" --publish demo --ttl 2h)
  "$bin" bench "$addr" --token "$tok" --topic demo --anonymous --events "$count" --rate 0 --data-bytes 100 \
    --replay-read 1 --replay-window 10m --pid "$hub" "$@"
  ;;
esac
