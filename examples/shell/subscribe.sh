#!/bin/sh
# Subscribe to an sseguard topic with curl.
#
# usage: subscribe.sh TOPIC [COUNT]
#
# Environment:
#   SSEGUARD_URL    the hub (default http://127.0.0.1:8080)
#   SSEGUARD_TOKEN  a token that may subscribe to TOPIC (sseguard token --subscribe TOPIC)
#   LAST_EVENT_ID   resume after this event ID (default: live events only)
#
# Prints "event ID TYPE DATA" for each event and "reset REASON" when the hub
# says that history was lost (event: reset), then goes on. Exits 0 after
# COUNT events (default: never). When the stream ends it reconnects after the
# server's retry hint, sending Last-Event-ID, so no event is missed or
# repeated. A refusal prints "refused: STATUS CODE: DETAIL" on stderr and
# exits 1; 429 and 503 are retried after Retry-After.
set -eu

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: subscribe.sh TOPIC [COUNT]" >&2
  exit 2
fi
url=${SSEGUARD_URL:-http://127.0.0.1:8080}
url="${url%/}/events?topic=$(printf %s "$1" | od -An -tx1 | tr -d ' \n' | sed 's/../%&/g')"
left=${2:--1}
last=${LAST_EVENT_ID:-}
retry=3000 # milliseconds; what browsers use until the hub says
failures=0
cr=$(printf '\r')
tmp=$(mktemp -d)
curl_pid=
trap '[ -n "$curl_pid" ] && kill "$curl_pid" 2>/dev/null; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
mkfifo "$tmp/stream"

# json_string NAME prints the string member NAME of the JSON on stdin.
json_string() {
  sed -n 's/.*"'"$1"'":"\(\([^"\\]\|\\.\)*\)".*/\1/p' | sed 's/\\\(.\)/\1/g'
}

# dispatch TYPE DATA prints one event; it returns 1 once COUNT arrived.
dispatch() {
  if [ "$1" = reset ]; then
    # History after our Last-Event-ID is gone (retention, or an ID this
    # hub never issued): say so, and go on with what follows.
    echo "reset $(printf %s "$2" | json_string reason)"
    return 0
  fi
  echo "event $last $1 $2"
  [ "$left" -lt 0 ] && return 0
  left=$((left - 1))
  [ "$left" -ne 0 ]
}

# read_stream reads one response, headers included (curl -i), from stdin.
# It returns 0 when the stream ended, 1 once COUNT events arrived, 2 on a
# refusal worth retrying (429, 503; $delay is set) and 3 on any other.
read_stream() {
  IFS= read -r status_line || return 0 # no answer at all: a network error
  status=$(echo "$status_line" | cut -d' ' -f2)
  ctype= after=
  while IFS= read -r h; do
    h=${h%"$cr"}
    [ -z "$h" ] && break
    case $h in
    [Cc]ontent-[Tt]ype:*) ctype=${h#*: } ;;
    [Rr]etry-[Aa]fter:*) after=${h#*: } ;;
    esac
  done
  if [ "$status" != 200 ]; then
    body=$(cat)
    echo "refused: $status $(echo "$body" | json_string error): $(echo "$body" | json_string detail)" >&2
    case $status in
    429 | 503) delay=$((${after:-5} * 1000)); return 2 ;;
    esac
    return 3
  fi
  case $ctype in
  text/event-stream*) ;;
  *) echo "refused: $status not an event stream" >&2; return 3 ;;
  esac
  echo "connected (Last-Event-ID: ${last:-none})" >&2
  failures=0
  type= data= id= has_data= has_id=
  while IFS= read -r line; do
    line=${line%"$cr"}
    case $line in
    '')
      [ -n "$has_id" ] && last=$id
      if [ -n "$has_data" ]; then
        dispatch "${type:-message}" "$data" || return 1
      fi
      type= data= id= has_data= has_id=
      ;;
    :*) ;; # a comment: the heartbeat
    data:*)
      v=${line#data:}
      v=${v# }
      if [ -n "$has_data" ]; then
        data="$data
$v"
      else
        data=$v
      fi
      has_data=1
      ;;
    event:*) type=${line#event:} type=${type# } ;;
    id:*) id=${line#id:} id=${id# } has_id=1 ;;
    retry:*)
      v=${line#retry:}
      v=${v# }
      case $v in
      '' | *[!0-9]*) ;;
      *) retry=$v && echo "retry $v" >&2 ;;
      esac
      ;;
    esac
  done
  return 0
}

while :; do
  # The token goes to curl on stdin (-K -), not on its command line, where
  # any local user could read it with ps. -y/-Y drop a connection that sends
  # nothing (not even the 15 s heartbeat) for 45 s.
  {
    printf 'header = "Authorization: Bearer %s"\n' "${SSEGUARD_TOKEN:-}"
    [ -n "$last" ] && printf 'header = "Last-Event-ID: %s"\n' "$last"
  } | curl -sSN -i -K - -H 'Accept: text/event-stream' -H 'Cache-Control: no-cache' \
    -y 45 -Y 1 "$url" >"$tmp/stream" 2>"$tmp/err" &
  curl_pid=$!
  set +e
  read_stream <"$tmp/stream"
  rc=$?
  set -e
  kill "$curl_pid" 2>/dev/null || true
  wait "$curl_pid" 2>/dev/null || true
  curl_pid=
  case $rc in
  1) exit 0 ;;
  3) exit 1 ;;
  2) failures=$((failures + 1)) ;;
  0)
    if [ "$failures" -gt 0 ] || [ -s "$tmp/err" ]; then
      failures=$((failures + 1))
      echo "disconnected: $(cat "$tmp/err")" >&2
    fi
    delay=$retry
    # Consecutive failures double the wait, up to 30 s.
    i=1
    while [ "$i" -lt "$failures" ] && [ "$delay" -lt 30000 ]; do
      delay=$((delay * 2)) i=$((i + 1))
    done
    ;;
  esac
  echo "reconnecting in $delay ms" >&2
  sleep "$((delay / 1000)).$(printf %03d $((delay % 1000)))"
done
