#!/usr/bin/env python3
"""Publish one event to an sseguard hub, with the Python standard library.

usage: publish.py TOPIC DATA [TYPE]

Environment:
  SSEGUARD_URL     the hub (default http://127.0.0.1:8080)
  SSEGUARD_TOKEN   a token that may publish to TOPIC
                   (sseguard token --publish TOPIC)
  IDEMPOTENCY_KEY  names this event: a publish repeated with the same key
                   returns the first ID and stores nothing new (default: a
                   random key, the same for every retry of this run)

Prints the event's ID, followed by " duplicate" when the key was seen before.
A refusal prints "refused: STATUS CODE: DETAIL" on stderr and exits 1.
Network errors, 429 and 503 are retried (after Retry-After when the hub sends
one) with the same key, so a retry never publishes twice.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid

MAX_ATTEMPTS = 5


def problem_of(err):
    """Returns (status, code, detail) of an HTTPError's problem+json body."""
    status, code, detail = err.code, "", err.reason
    if err.headers.get_content_type() == "application/problem+json":
        try:
            body = json.load(err)
            code, detail = body.get("error", ""), body.get("detail", "")
        except ValueError:
            pass  # not the documented shape: keep the status line
    return status, code, detail


def retry_after(err, default):
    """Returns the wait a refusal asks for, in seconds."""
    try:
        return max(float(err.headers.get("Retry-After", "")), 0.0)
    except ValueError:
        return default


def publish(base, token, key, topic, data, event_type):
    body = {"topic": topic, "data": data}
    if event_type:
        body["type"] = event_type
    req = urllib.request.Request(
        base + "/api/publish",
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Authorization": "Bearer " + token,
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Idempotency-Key": key,
        },
    )
    delay = 0.5
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as err:
            status, code, detail = problem_of(err)
            # 429 and 503 are worth another try; every other refusal
            # (401, 403, 413, 422, ...) would fail the same way again.
            if status not in (429, 503) or attempt == MAX_ATTEMPTS:
                print(f"refused: {status} {code}: {detail}", file=sys.stderr)
                sys.exit(1)
            wait = retry_after(err, delay)
            print(f"retrying in {wait:g} s: {status} {code}", file=sys.stderr)
        except OSError as err:  # connection refused, reset, timeout
            if attempt == MAX_ATTEMPTS:
                print(f"failed: {err}", file=sys.stderr)
                sys.exit(1)
            wait = delay
            print(f"retrying in {wait:g} s: {err}", file=sys.stderr)
        sys.stderr.flush()
        time.sleep(wait)
        delay = min(delay * 2, 10)
    raise AssertionError("unreachable")


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        sys.exit(2)
    topic, data = sys.argv[1], sys.argv[2]
    event_type = sys.argv[3] if len(sys.argv) == 4 else ""
    base = os.environ.get("SSEGUARD_URL", "http://127.0.0.1:8080").rstrip("/")
    token = os.environ.get("SSEGUARD_TOKEN", "")
    key = os.environ.get("IDEMPOTENCY_KEY") or uuid.uuid4().hex
    answer = publish(base, token, key, topic, data, event_type)
    print(answer["id"] + (" duplicate" if answer.get("duplicate") else ""))


if __name__ == "__main__":
    main()
