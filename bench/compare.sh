#!/usr/bin/env bash
# Measures one hub with sseguard bench, each hub in a process of its own on
# loopback, so runs of sseguard and of the naive reference hub can be put
# side by side (docs/benchmarks.md).
#
# usage: bench/compare.sh sseguard|naive STREAMS [bench flags...]
#   SSEGUARD_BIN  the binary to use (default: build ./cmd/sseguard to a temp dir)
set -euo pipefail
which=${1:?usage: bench/compare.sh sseguard|naive STREAMS [flags]}
streams=${2:?usage: bench/compare.sh sseguard|naive STREAMS [flags]}
shift 2
dir=$(mktemp -d)
trap 'kill "$hub" 2>/dev/null || true; wait "$hub" 2>/dev/null || true; rm -rf "$dir"' EXIT
bin=${SSEGUARD_BIN:-}
if [ -z "$bin" ]; then
  bin=$dir/sseguard
  go build -o "$bin" "$(dirname "$0")/../cmd/sseguard"
fi
tokflag=()
case "$which" in
naive)
  "$bin" refhub --listen 127.0.0.1:0 >"$dir/out" 2>&1 &
  hub=$!
  ;;
sseguard)
  # One token drives every stream and publish: lift the per-principal and
  # per-address limits that would otherwise (rightly) refuse the load.
  printf 'log:\n  level: warn\nlimits:\n  streams_per_principal: 0\n  streams_per_ip: 0\n  publish_rate: 0\n' >"$dir/cfg.yaml"
  "$bin" serve --config "$dir/cfg.yaml" --data "$dir/data" --listen 127.0.0.1:0 >"$dir/out" 2>"$dir/err" &
  hub=$!
  ;;
*)
  echo "want sseguard or naive, got $which" >&2
  exit 2
  ;;
esac
for _ in $(seq 100); do grep -q listening "$dir/out" && break; sleep 0.1; done
addr=$(grep -o 'http://[0-9.:]*' "$dir/out" | head -1)
if [ "$which" = sseguard ]; then
  tokflag=(--token "$("$bin" token --data "$dir/data" --subscribe bench --publish bench --ttl 2h)")
fi
"$bin" bench "$addr" "${tokflag[@]}" --streams "$streams" --pid "$hub" "$@"
