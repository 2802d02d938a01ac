#!/usr/bin/env bash
# Measures sseguard on Redis against sseguard on bolt in the same run, each
# hub a process of its own on loopback (docs/cluster.md): one redis-server
# (AOF, appendfsync everysec unless FSYNC says), two nodes on it, and one
# node on bolt. Each measure runs RUNS times (default 3) and prints every
# run and the median, so that a shared, noisy machine shows its noise.
#
# usage: bench/cluster.sh [publish|fanout|latency|all]
#
#   publish  durable publishes/s, 64 publishers: bolt node, one Redis node,
#            and the two Redis nodes (32 publishers each)
#   fanout   10k streams split over the two Redis nodes, publishes on both,
#            100 events at 100/s: delivery p99 (bolt node with the same
#            10k streams for comparison)
#   latency  1k events/s for 5 s, 100 streams on node b, published on node
#            a (across nodes), against streams and publishes on node a
#
#   RUNS      runs per measure (default 3)
#   EVENTS    publishes per throughput run (default 100000)
#   FSYNC     Redis appendfsync: everysec (default), always or no
#   SSEGUARD_BIN  the binary (default: build ./cmd/sseguard to a temp dir)
set -euo pipefail
what=${1:-all}
runs=${RUNS:-3}
events=${EVENTS:-100000}
fsync=${FSYNC:-everysec}
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
    vals+=("$(bench "$@" | jq -r "$q")")
  done
  printf '%-44s %12s   runs: %s\n' "$label" "$(printf '%s\n' "${vals[@]}" | median)" "${vals[*]}"
}

if [[ $what == all || $what == publish ]]; then
  echo "durable publishes/s, 64 publishers, $events events (Redis appendfsync $fsync)"
  measure "bolt, one node" .publish.throughput_per_second "$addr_bolt" --streams 0 --rate 0 --events "$events" --publishers 64
  measure "redis, one node" .publish.throughput_per_second "$addr_a" --streams 0 --rate 0 --events "$events" --publishers 64
  measure "redis, two nodes (32 publishers each)" .publish.throughput_per_second "$addr_a" --publish-urls "$addr_a,$addr_b" --streams 0 --rate 0 --events "$events" --publishers 64
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
