#!/usr/bin/env python3
"""Subscribe to an sseguard topic, with the Python standard library.

usage: subscribe.py TOPIC [COUNT]

Environment:
  SSEGUARD_URL    the hub (default http://127.0.0.1:8080)
  SSEGUARD_TOKEN  a token that may subscribe to TOPIC
                  (sseguard token --subscribe TOPIC)
  LAST_EVENT_ID   resume after this event ID (default: live events only)

Prints "event ID TYPE DATA" for each event and "reset REASON" when the hub
says that history was lost (event: reset), then goes on. Exits 0 after COUNT
events (default: never). When the stream ends it reconnects after the
server's retry hint, sending Last-Event-ID, so no event is missed or repeated.
A refusal prints "refused: STATUS CODE: DETAIL" on stderr and exits 1; 429
and 503 are retried after Retry-After.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

# A stream is idle at most one heartbeat (15 s by default): a read that
# waits much longer is on a dead connection.
READ_TIMEOUT = 45
MAX_BACKOFF = 30.0


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Refused(Exception):
    """A refusal that retrying cannot fix."""


class Subscriber:
    def __init__(self, base, token, topic, last_event_id, count):
        self.url = base + "/events?" + urllib.parse.urlencode({"topic": topic})
        self.token = token
        self.last_event_id = last_event_id
        self.retry = 3.0  # seconds; what browsers use until the hub says
        self.left = count

    def run(self):
        failures = 0
        while True:
            try:
                if self.connect():
                    return
                failures = 0  # the stream was open and ended
                wait = self.retry
            except urllib.error.HTTPError as err:
                status, code, detail, after = self.problem_of(err)
                if status not in (429, 503):
                    raise Refused(f"refused: {status} {code}: {detail}")
                failures += 1
                wait = after if after is not None else self.backoff(failures)
                log(f"refused: {status} {code}, retrying in {int(wait * 1000)} ms")
            except OSError as err:  # refused, reset, read timeout
                failures += 1
                wait = self.backoff(failures)
                log(f"disconnected: {err}")
            log(f"reconnecting in {int(wait * 1000)} ms")
            time.sleep(wait)

    def backoff(self, failures):
        return min(self.retry * 2 ** (failures - 1), max(MAX_BACKOFF, self.retry))

    @staticmethod
    def problem_of(err):
        status, code, detail = err.code, "", err.reason
        if err.headers.get_content_type() == "application/problem+json":
            try:
                body = json.load(err)
                code, detail = body.get("error", ""), body.get("detail", "")
            except ValueError:
                pass
        try:
            after = float(err.headers.get("Retry-After", ""))
        except ValueError:
            after = None
        return status, code, detail, after

    def connect(self):
        """Reads one connection; returns True once COUNT events arrived."""
        headers = {
            "Accept": "text/event-stream",
            "Cache-Control": "no-cache",
            "Authorization": "Bearer " + self.token,
        }
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        req = urllib.request.Request(self.url, headers=headers)
        with urllib.request.urlopen(req, timeout=READ_TIMEOUT) as resp:
            if resp.headers.get_content_type() != "text/event-stream":
                raise Refused(f"refused: {resp.status} not an event stream")
            log(f"connected (Last-Event-ID: {self.last_event_id or 'none'})")
            return self.read(resp)

    def read(self, resp):
        """Parses the stream as EventSource does (WHATWG HTML 9.2.6); sseguard
        ends lines with LF, which is all this splits on."""
        ev_type, data, ev_id = "", [], None
        for raw in resp:
            line = raw.decode("utf-8").rstrip("\r\n")
            if line == "":
                if ev_id is not None:
                    self.last_event_id = ev_id
                if data and self.dispatch(ev_type or "message", "\n".join(data)):
                    return True
                ev_type, data, ev_id = "", [], None
                continue
            if line.startswith(":"):
                continue  # a comment: the heartbeat
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "data":
                data.append(value)
            elif field == "event":
                ev_type = value
            elif field == "id" and "\0" not in value:
                ev_id = value
            elif field == "retry" and value.isdigit():
                self.retry = int(value) / 1000
                log(f"retry {value}")
        return False  # the hub ended the stream: reconnect

    def dispatch(self, ev_type, data):
        if ev_type == "reset":
            # History after our Last-Event-ID is gone (retention, or an ID
            # this hub never issued): say so, and go on with what follows.
            reason = json.loads(data).get("reason", "")
            print(f"reset {reason}", flush=True)
            return False
        print(f"event {self.last_event_id} {ev_type} {data}", flush=True)
        if self.left is not None:
            self.left -= 1
            return self.left == 0
        return False


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        sys.exit(2)
    topic = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) == 3 else None
    base = os.environ.get("SSEGUARD_URL", "http://127.0.0.1:8080").rstrip("/")
    sub = Subscriber(base, os.environ.get("SSEGUARD_TOKEN", ""), topic,
                     os.environ.get("LAST_EVENT_ID", ""), count)
    try:
        sub.run()
    except Refused as err:
        log(str(err))
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
