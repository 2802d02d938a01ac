#!/usr/bin/env node
// Publish one event to an sseguard hub, with Node's built-in fetch (Node 18+).
//
// usage: publish.mjs TOPIC DATA [TYPE]
//
// Environment:
//   SSEGUARD_URL     the hub (default http://127.0.0.1:8080)
//   SSEGUARD_TOKEN   a token that may publish to TOPIC (sseguard token --publish TOPIC)
//   IDEMPOTENCY_KEY  names this event: a publish repeated with the same key
//                    returns the first ID and stores nothing new (default: a
//                    random key, the same for every retry of this run)
//
// Prints the event's ID, followed by " duplicate" when the key was seen
// before. A refusal prints "refused: STATUS CODE: DETAIL" on stderr and exits
// 1. Network errors, 429 and 503 are retried (after Retry-After when the hub
// sends one) with the same key, so a retry never publishes twice.
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";

const MAX_ATTEMPTS = 5;

// problemOf reads the problem+json body of a refusal (docs/errors.md).
async function problemOf(res) {
  const p = { status: res.status, error: "", detail: res.statusText };
  if ((res.headers.get("content-type") ?? "").startsWith("application/problem+json")) {
    try {
      Object.assign(p, await res.json());
    } catch {
      // not the documented shape: keep the status line
    }
  }
  return p;
}

// retryAfter returns the wait a refusal asks for, in milliseconds.
function retryAfter(res, fallback) {
  const s = Number.parseFloat(res.headers.get("retry-after") ?? "");
  return Number.isFinite(s) && s >= 0 ? s * 1000 : fallback;
}

async function publish({ base, token, key, topic, data, type }) {
  const body = { topic, data };
  if (type) body.type = type;
  let delay = 500;
  for (let attempt = 1; ; attempt++) {
    let wait = delay;
    try {
      const res = await fetch(`${base}/api/publish`, {
        method: "POST",
        headers: {
          Authorization: `Bearer ${token}`,
          "Content-Type": "application/json",
          Accept: "application/json",
          "Idempotency-Key": key,
        },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
      if (res.status === 201) return await res.json();
      const p = await problemOf(res);
      // 429 and 503 are worth another try; every other refusal (401, 403,
      // 413, 422, ...) would fail the same way again.
      if ((res.status !== 429 && res.status !== 503) || attempt === MAX_ATTEMPTS) {
        throw new Refused(`refused: ${p.status} ${p.error}: ${p.detail}`);
      }
      wait = retryAfter(res, delay);
      console.error(`retrying in ${wait / 1000} s: ${p.status} ${p.error}`);
    } catch (err) {
      if (err instanceof Refused) throw err;
      if (attempt === MAX_ATTEMPTS) throw new Refused(`failed: ${err.cause?.message ?? err.message}`);
      console.error(`retrying in ${wait / 1000} s: ${err.cause?.message ?? err.message}`);
    }
    await sleep(wait);
    delay = Math.min(delay * 2, 10_000);
  }
}

class Refused extends Error {}

const [topic, data, type] = process.argv.slice(2);
if (topic === undefined || data === undefined || process.argv.length > 5) {
  console.error("usage: publish.mjs TOPIC DATA [TYPE]");
  process.exit(2);
}
try {
  const answer = await publish({
    base: (process.env.SSEGUARD_URL ?? "http://127.0.0.1:8080").replace(/\/+$/, ""),
    token: process.env.SSEGUARD_TOKEN ?? "",
    key: process.env.IDEMPOTENCY_KEY || randomUUID(),
    topic,
    data,
    type,
  });
  console.log(answer.id + (answer.duplicate ? " duplicate" : ""));
} catch (err) {
  console.error(err.message);
  process.exit(1);
}
