#!/bin/sh
# Publish one event to an sseguard hub with curl.
#
# usage: publish.sh TOPIC DATA [TYPE]
#
# Environment:
#   SSEGUARD_URL     the hub (default http://127.0.0.1:8080)
#   SSEGUARD_TOKEN   a token that may publish to TOPIC (sseguard token --publish TOPIC)
#   IDEMPOTENCY_KEY  names this event: a publish repeated with the same key
#                    returns the first ID and stores nothing new (default: a
#                    random key, the same for every retry of this run)
#
# Prints the event's ID, followed by " duplicate" when the key was seen
# before. A refusal prints "refused: STATUS CODE: DETAIL" on stderr and exits
# 1. Network errors, 429 and 503 are retried (after Retry-After when the hub
# sends one) with the same key, so a retry never publishes twice.
#
# The JSON is read with sed to need nothing but curl; use jq in real scripts.
set -eu

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  echo "usage: publish.sh TOPIC DATA [TYPE]" >&2
  exit 2
fi
url=${SSEGUARD_URL:-http://127.0.0.1:8080}
url=${url%/}
key=${IDEMPOTENCY_KEY:-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# json_string NAME FILE prints the string member NAME of the JSON in FILE.
json_string() {
  sed -n 's/.*"'"$1"'":"\(\([^"\\]\|\\.\)*\)".*/\1/p' "$2" | sed 's/\\\(.\)/\1/g'
}

# The token goes to curl on stdin (-K -), not on its command line, where
# any local user could read it with ps.
attempt=1
delay=1
while :; do
  set +e
  status=$(printf 'header = "Authorization: Bearer %s"\n' "${SSEGUARD_TOKEN:-}" |
    curl -sS -K - -o "$tmp/body" -D "$tmp/head" -w '%{http_code}' --max-time 10 \
      -X POST -H "Idempotency-Key: $key" -H 'Accept: application/json' \
      --data-urlencode "topic=$1" --data-urlencode "data=$2" \
      ${3:+--data-urlencode "type=$3"} "$url/api/publish" 2>"$tmp/err")
  rc=$?
  set -e
  if [ "$rc" -eq 0 ] && [ "$status" = 201 ]; then
    id=$(json_string id "$tmp/body")
    if grep -q '"duplicate":true' "$tmp/body"; then
      echo "$id duplicate"
    else
      echo "$id"
    fi
    exit 0
  fi
  if [ "$rc" -ne 0 ]; then
    why="$(cat "$tmp/err")" # the network: worth another try
  elif [ "$status" = 429 ] || [ "$status" = 503 ]; then
    why="$status $(json_string error "$tmp/body")"
    after=$(sed -n 's/^[Rr]etry-[Aa]fter: *\([0-9]*\).*/\1/p' "$tmp/head")
    [ -n "$after" ] && delay=$after
  else
    # 401, 403, 413, 422, ...: the same request would fail the same way.
    echo "refused: $status $(json_string error "$tmp/body"): $(json_string detail "$tmp/body")" >&2
    exit 1
  fi
  if [ "$attempt" -ge 5 ]; then
    echo "failed: $why" >&2
    exit 1
  fi
  echo "retrying in $delay s: $why" >&2
  sleep "$delay"
  attempt=$((attempt + 1))
  delay=$((delay * 2))
done
