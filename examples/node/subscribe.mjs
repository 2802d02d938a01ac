#!/usr/bin/env node
// Subscribe to an sseguard topic, with Node's built-in fetch (Node 18+).
//
// usage: subscribe.mjs TOPIC [COUNT]
//
// Environment:
//   SSEGUARD_URL    the hub (default http://127.0.0.1:8080)
//   SSEGUARD_TOKEN  a token that may subscribe to TOPIC (sseguard token --subscribe TOPIC)
//   LAST_EVENT_ID   resume after this event ID (default: live events only)
//
// Prints "event ID TYPE DATA" for each event and "reset REASON" when the hub
// says that history was lost (event: reset), then goes on. Exits 0 after
// COUNT events (default: never). When the stream ends it reconnects after
// the server's retry hint, sending Last-Event-ID, so no event is missed or
// repeated. A refusal prints "refused: STATUS CODE: DETAIL" on stderr and
// exits 1; 429 and 503 are retried after Retry-After.
//
// In a browser, EventSource (or the hub's /sseguard.js) does all of this;
// Node has no EventSource before version 22, hence this reader.
import { setTimeout as sleep } from "node:timers/promises";

// A stream is idle at most one heartbeat (15 s by default): a read that
// waits much longer is on a dead connection.
const READ_TIMEOUT = 45_000;
const MAX_BACKOFF = 30_000;

class Refused extends Error {}

class Subscriber {
  constructor({ base, token, topic, lastEventId, count }) {
    this.url = `${base}/events?${new URLSearchParams({ topic })}`;
    this.token = token;
    this.lastEventId = lastEventId;
    this.retry = 3000; // what browsers use until the hub says
    this.left = count;
  }

  async run() {
    let failures = 0;
    for (;;) {
      let wait;
      try {
        if (await this.connect()) return;
        failures = 0; // the stream was open and ended
        wait = this.retry;
      } catch (err) {
        if (err instanceof Refused) throw err;
        failures++;
        wait = err.retryAfter ?? this.backoff(failures);
        console.error(`disconnected: ${err.cause?.message ?? err.message}`);
      }
      console.error(`reconnecting in ${wait} ms`);
      await sleep(wait);
    }
  }

  backoff(failures) {
    return Math.min(this.retry * 2 ** (failures - 1), Math.max(MAX_BACKOFF, this.retry));
  }

  // connect reads one connection; it returns true once COUNT events arrived.
  async connect() {
    const headers = {
      Accept: "text/event-stream",
      "Cache-Control": "no-cache",
      Authorization: `Bearer ${this.token}`,
    };
    if (this.lastEventId) headers["Last-Event-ID"] = this.lastEventId;
    const ac = new AbortController();
    const res = await fetch(this.url, { headers, signal: ac.signal });
    if (res.status !== 200) {
      const p = await problemOf(res);
      const err = new (res.status === 429 || res.status === 503 ? Error : Refused)(
        `refused: ${p.status} ${p.error}: ${p.detail}`,
      );
      const after = Number.parseFloat(res.headers.get("retry-after") ?? "");
      if (Number.isFinite(after)) err.retryAfter = after * 1000;
      throw err;
    }
    if (!(res.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
      ac.abort();
      throw new Refused(`refused: ${res.status} not an event stream`);
    }
    console.error(`connected (Last-Event-ID: ${this.lastEventId || "none"})`);
    try {
      return await this.read(res.body, ac);
    } finally {
      ac.abort(); // closes the connection when COUNT was reached mid-stream
    }
  }

  // read parses the stream as EventSource does (WHATWG HTML 9.2.6).
  async read(body, ac) {
    const decoder = new TextDecoder();
    let buf = "";
    let type = "";
    let data = [];
    let id = null;
    let timer = setTimeout(() => ac.abort(new Error("read timeout")), READ_TIMEOUT);
    try {
      for await (const chunk of body) {
        clearTimeout(timer);
        timer = setTimeout(() => ac.abort(new Error("read timeout")), READ_TIMEOUT);
        buf += decoder.decode(chunk, { stream: true });
        let m;
        // A CR at the very end may be the first half of CRLF: wait for more.
        while ((m = /\r\n|\n|\r(?!$)/.exec(buf)) !== null) {
          const line = buf.slice(0, m.index);
          buf = buf.slice(m.index + m[0].length);
          if (line === "") {
            if (id !== null) this.lastEventId = id;
            if (data.length > 0 && this.dispatch(type || "message", data.join("\n"))) return true;
            type = "";
            data = [];
            id = null;
            continue;
          }
          if (line.startsWith(":")) continue; // a comment: the heartbeat
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let value = colon < 0 ? "" : line.slice(colon + 1);
          if (value.startsWith(" ")) value = value.slice(1);
          if (field === "data") data.push(value);
          else if (field === "event") type = value;
          else if (field === "id" && !value.includes("\0")) id = value;
          else if (field === "retry" && /^\d+$/.test(value)) {
            this.retry = Number(value);
            console.error(`retry ${value}`);
          }
        }
      }
    } finally {
      clearTimeout(timer);
    }
    return false; // the hub ended the stream: reconnect
  }

  dispatch(type, data) {
    if (type === "reset") {
      // History after our Last-Event-ID is gone (retention, or an ID this
      // hub never issued): say so, and go on with what follows.
      console.log(`reset ${JSON.parse(data).reason}`);
      return false;
    }
    console.log(`event ${this.lastEventId} ${type} ${data}`);
    if (this.left !== undefined) return --this.left === 0;
    return false;
  }
}

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

const [topic, count] = process.argv.slice(2);
if (topic === undefined || process.argv.length > 4) {
  console.error("usage: subscribe.mjs TOPIC [COUNT]");
  process.exit(2);
}
try {
  await new Subscriber({
    base: (process.env.SSEGUARD_URL ?? "http://127.0.0.1:8080").replace(/\/+$/, ""),
    token: process.env.SSEGUARD_TOKEN ?? "",
    topic,
    lastEventId: process.env.LAST_EVENT_ID ?? "",
    count: count === undefined ? undefined : Number.parseInt(count, 10),
  }).run();
} catch (err) {
  console.error(err.message);
  process.exit(1);
}
