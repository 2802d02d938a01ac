#!/usr/bin/env bash
# Measures sseguard on Redis against sseguard on bolt in the same run, each
# hub a process of its own on loopback (docs/cluster.md): one redis-server
# (AOF, appendfsync everysec unless FSYNC says), two nodes on it, and one
# node on bolt. Each measure runs RUNS times (default 3) and prints every
# run and the median, so that a shared, noisy machine shows its noise.
#
# usage: bench/cluster.sh [publish|wrk|fanout|latency|all]
#
#   publish  durable publishes/s, 64 publishers (sseguard bench): bolt
#            node, one Redis node, and the two Redis nodes (32 publishers
#            each)
#   wrk      the same with wrk -t2 -c64 (bench/publish.lua; two nodes: one
#            wrk -t1 -c32 on each), rounds alternating the setups, and
#            Centrifugo on the same Redis when CENTRIFUGO_BIN is set (one
#            node, then two; bench/centrifugo.lua, history on so that a
#            publish is stored in a Redis stream). Each line also gives the
#            CPU per publish of the servers and of Redis, from /proc.
#   fanout   10k streams split over the two Redis nodes, publishes on both,
#            100 events at 100/s: delivery p99 (bolt node with the same
#            10k streams for comparison)
#   latency  1k events/s for 5 s, 100 streams on node b, published on node
#            a (across nodes), against streams and publishes on node a
#
#   RUNS      runs per measure (default 3)
#   EVENTS    publishes per throughput run (default 100000)
#   FSYNC     Redis appendfsync: everysec (default), always or no
#   DURATION  seconds per wrk run (default 5)
#   SSEGUARD_BIN  the binary (default: build ./cmd/sseguard to a temp dir)
#   CENTRIFUGO_BIN  a centrifugo binary (v6) for the wrk comparison; unset
#            skips Centrifugo
set -euo pipefail
what=${1:-all}
runs=${RUNS:-3}
events=${EVENTS:-100000}
fsync=${FSYNC:-everysec}
duration=${DURATION:-5}
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
  (cd "$(dirname "$0")/.." && go build -o "$bin" ./cmd/sseguard)
fi
command -v redis-server >/dev/null || { echo "redis-server not found (apt-get install redis-server)" >&2; exit 2; }

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

rport=$(freeport)
mkdir -p "$dir/redis"
redis-server --port "$rport" --bind 127.0.0.1 --dir "$dir/redis" --appendonly yes --appendfsync "$fsync" \
  --save '' --daemonize no --loglevel warning >"$dir/redis.log" 2>&1 &
pids+=($!)
pid_redis=$!
for _ in $(seq 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done

# One token drives every stream and publish: lift the per-principal and
# per-address limits that would otherwise (rightly) refuse the load.
limits='log:\n  level: warn\nlimits:\n  streams_per_principal: 0\n  streams_per_ip: 0\n  publish_rate: 0\n'
# start NAME DRIVER: a node on a free port; sets addr_NAME and pid_NAME.
start() {
  local name=$1 driver=$2 port
  port=$(freeport)
  mkdir -p "$dir/$name"
  printf "$limits" >"$dir/$name/cfg.yaml"
  [ -f "$dir/secret.key" ] && cp "$dir/secret.key" "$dir/$name/secret.key"
  "$bin" serve --config "$dir/$name/cfg.yaml" --data "$dir/$name" --listen "127.0.0.1:$port" \
    --set store.driver="$driver" --set store.redis.url="redis://127.0.0.1:$rport" >"$dir/$name/out" 2>"$dir/$name/err" &
  pids+=($!)
  eval "pid_$name=$!"
  eval "addr_$name=http://127.0.0.1:$port"
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  [ -f "$dir/secret.key" ] || cp "$dir/$name/secret.key" "$dir/secret.key"
}
start bolt bolt
start a redis
start b redis
tok=$("$bin" token --data "$dir/bolt" --subscribe 'bench*' --publish 'bench*' --ttl 2h)

# bench URL FLAGS: one run's JSON report (flags go before the URL).
bench() {
  local url=$1
  shift
  "$bin" bench --json --token "$tok" --topic "bench-$RANDOM$RANDOM" "$@" "$url" 2>"$dir/bench.err" || { tail -5 "$dir/bench.err" >&2; }
}
# median of the numbers on stdin
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# measure LABEL JQ ARGS: runs bench RUNS times, prints each value and the median.
measure() {
  local label=$1 q=$2 vals=()
  shift 2
  for _ in $(seq "$runs"); do
    vals+=("$(bench "$@" | jq -r "$q | . * 10 | round / 10")")
  done
  printf '%-44s %12s   runs: %s\n' "$label" "$(printf '%s\n' "${vals[@]}" | median)" "${vals[*]}"
}

if [[ $what == all || $what == publish ]]; then
  echo "durable publishes/s, 64 publishers, $events events (Redis appendfsync $fsync)"
  measure "bolt, one node" .publish.throughput_per_second "$addr_bolt" --streams 0 --rate 0 --events "$events" --publishers 64
  measure "redis, one node" .publish.throughput_per_second "$addr_a" --streams 0 --rate 0 --events "$events" --publishers 64
  measure "redis, two nodes (32 publishers each)" .publish.throughput_per_second "$addr_a" --publish-urls "$addr_a,$addr_b" --streams 0 --rate 0 --events "$events" --publishers 64
fi
# cpu PID...: the processes' CPU time so far, in clock ticks.
cpu() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo $t; }
hz=$(getconf CLK_TCK)
# cfstart NAME: a Centrifugo node on the Redis engine, history on (a
# publish is stored in a Redis stream, kept by the same AOF); sets
# addr_NAME and pid_NAME.
cfstart() {
  local name=$1 port
  port=$(freeport)
  mkdir -p "$dir/$name"
  cat >"$dir/$name/config.json" <<JSON
{"http_server": {"address": "127.0.0.1", "port": $port}, "log": {"level": "warn"},
 "usage_stats": {"disabled": true},
 "engine": {"type": "redis", "redis": {"address": ["redis://127.0.0.1:$rport"], "prefix": "cfbench"}},
 "http_api": {"key": "benchkey"},
 "channel": {"without_namespace": {"history_size": 1000, "history_ttl": "300s"}}}
JSON
  "$CENTRIFUGO_BIN" -c "$dir/$name/config.json" >"$dir/$name/out" 2>"$dir/$name/err" &
  pids+=($!)
  eval "pid_$name=$!"
  eval "addr_$name=http://127.0.0.1:$port"
  for _ in $(seq 100); do
    curl -fs -o /dev/null -H 'Authorization: apikey benchkey' -d '{"channel":"warmup","data":"x"}' "http://127.0.0.1:$port/api/publish" && break
    sleep 0.1
  done
}
# wrkrun SCRIPT PIDS URL...: one wrk run of DURATION s, 64 connections
# split over the URLs (one wrk per URL); prints publishes/s, the answers
# that were not 2xx or failed, and the CPU per publish (µs) of PIDS (the
# servers) and of Redis.
wrkrun() {
  local script=$1 pids_=$2 i n=0 bad=0 c0 r0 c1 r1 out
  shift 2
  local conns=$((64 / $#)) threads=$((2 / $#)) w=()
  [ "$threads" -ge 1 ] || threads=1
  c0=$(cpu $pids_); r0=$(cpu "$pid_redis")
  for i in $(seq $#); do
    TOKEN=$tok APIKEY=benchkey TOPIC="bench-w$RANDOM" CHANNEL="bench-w$RANDOM" \
      wrk -t"$threads" -c"$conns" -d"${duration}s" -s "$script" "${!i}/api/publish" >"$dir/wrk.$i" 2>&1 &
    w+=($!)
  done
  for i in "${w[@]}"; do wait "$i"; done
  c1=$(cpu $pids_); r1=$(cpu "$pid_redis")
  for i in $(seq $#); do
    out=$dir/wrk.$i
    n=$((n + $(awk '/requests in/ {print $1}' "$out")))
    bad=$((bad + $(awk '/Non-2xx/ {s+=$NF} /Socket errors/ {gsub(",","");s+=$4+$6+$8+$10} END {print s+0}' "$out")))
  done
  awk -v n="$n" -v d="$duration" -v bad="$bad" -v c="$((c1 - c0))" -v r="$((r1 - r0))" -v hz="$hz" \
    'BEGIN {printf "%.0f %d %.1f %.1f\n", n/d, bad, c*1e6/hz/n, r*1e6/hz/n}'
}

if [[ $what == all || $what == wrk ]]; then
  command -v wrk >/dev/null || { echo "wrk not found (apt-get install wrk)" >&2; exit 2; }
  here=$(cd "$(dirname "$0")" && pwd)
  setups=("bolt, one node" "redis, one node" "redis, two nodes")
  if [ -n "${CENTRIFUGO_BIN:-}" ]; then
    cfstart cfa
    cfstart cfb
    setups+=("centrifugo redis, one node" "centrifugo redis, two nodes")
  else
    echo "CENTRIFUGO_BIN not set: Centrifugo skipped" >&2
  fi
  echo "durable publishes/s, wrk, 64 connections, ${duration} s a run (Redis appendfsync $fsync); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  printf '%-30s %10s %8s %14s %14s\n' setup publishes/s failed "server µs/pub" "redis µs/pub"
  declare -A res
  for r in $(seq "$runs"); do
    for s in "${setups[@]}"; do
      case $s in
      "bolt, one node") line=$(wrkrun "$here/publish.lua" "$pid_bolt" "$addr_bolt") ;;
      "redis, one node") line=$(wrkrun "$here/publish.lua" "$pid_a" "$addr_a") ;;
      "redis, two nodes") line=$(wrkrun "$here/publish.lua" "$pid_a $pid_b" "$addr_a" "$addr_b") ;;
      "centrifugo redis, one node") line=$(wrkrun "$here/centrifugo.lua" "$pid_cfa" "$addr_cfa") ;;
      "centrifugo redis, two nodes") line=$(wrkrun "$here/centrifugo.lua" "$pid_cfa $pid_cfb" "$addr_cfa" "$addr_cfb") ;;
      esac
      res[$s]+="$line"$'\n'
      printf 'run %d  %-30s %10s %8s %14s %14s\n' "$r" "$s" $line
    done
  done
  echo "medians of $runs runs; load after: $(cut -d' ' -f1-3 /proc/loadavg)"
  for s in "${setups[@]}"; do
    col() { printf '%s' "${res[$s]}" | awk -v c="$1" 'NF {print $c}' | median; }
    printf '%-30s %10s %8s %14s %14s\n' "$s" "$(col 1)" "$(col 2)" "$(col 3)" "$(col 4)"
  done
fi
if [[ $what == all || $what == fanout ]]; then
  echo "fan-out: 10000 streams, 100 events at 100/s, delivery p99 ms"
  measure "bolt, one node" .delivery.latency_ms.p99 "$addr_bolt" --streams 10000 --events 100 --rate 100 --sources 127.0.0.1-4
  measure "redis, two nodes (5000 streams each)" .delivery.latency_ms.p99 "$addr_a" --stream-urls "$addr_a,$addr_b" --publish-urls "$addr_a,$addr_b" --streams 10000 --events 100 --rate 100 --sources 127.0.0.1-4
fi
if [[ $what == all || $what == latency ]]; then
  echo "delivery latency at 1000 events/s, 100 streams, ms (p50 p99)"
  measure "bolt: same node p50" .delivery.latency_ms.p50 "$addr_bolt" --streams 100 --events 5000 --rate 1000
  measure "bolt: same node p99" .delivery.latency_ms.p99 "$addr_bolt" --streams 100 --events 5000 --rate 1000
  measure "redis: same node (a to a) p50" .delivery.latency_ms.p50 "$addr_a" --streams 100 --events 5000 --rate 1000
  measure "redis: same node (a to a) p99" .delivery.latency_ms.p99 "$addr_a" --streams 100 --events 5000 --rate 1000
  measure "redis: across nodes (a to b) p50" .delivery.latency_ms.p50 "$addr_a" --stream-urls "$addr_b" --streams 100 --events 5000 --rate 1000
  measure "redis: across nodes (a to b) p99" .delivery.latency_ms.p99 "$addr_a" --stream-urls "$addr_b" --streams 100 --events 5000 --rate 1000
fi
