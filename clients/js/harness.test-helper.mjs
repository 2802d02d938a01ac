// Test doubles for sseguard.js's unit tests: a manual clock, a fetch whose
// answers the test scripts (real Response and ReadableStream objects), and a
// WebSocket the test drives. Nothing here touches the network.

import { Subscription } from './sseguard.js';

// Clock runs timers only when the test advances it.
export class Clock {
  constructor() {
    this.now = 0;
    this.seq = 0;
    this.timers = new Map();
    this.setTimeout = (fn, ms) => {
      const id = ++this.seq;
      this.timers.set(id, { at: this.now + Math.max(0, Number(ms) || 0), fn, id });
      return id;
    };
    this.clearTimeout = (id) => { this.timers.delete(id); };
  }

  // advance runs every timer due within ms, in time order, letting the
  // promises each one starts settle before the next.
  async advance(ms) {
    const end = this.now + ms;
    await settle();
    for (;;) {
      let next;
      for (const t of this.timers.values()) {
        if (t.at <= end && (!next || t.at < next.at || (t.at === next.at && t.id < next.id))) next = t;
      }
      if (!next) break;
      this.timers.delete(next.id);
      this.now = next.at;
      next.fn();
      await settle();
    }
    this.now = end;
  }

  // pending lists the delays of the armed timers from now.
  pending() {
    return [...this.timers.values()].map((t) => t.at - this.now).sort((a, b) => a - b);
  }
}

// settle lets queued promise reactions and stream reads run.
export async function settle() {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

// Stream is an SSE response body the test writes to.
export class Stream {
  constructor() {
    const enc = new TextEncoder();
    this.cancelled = false;
    this.body = new ReadableStream({
      start: (c) => { this.c = c; },
      cancel: () => { this.cancelled = true; },
    });
    this.push = (text) => this.c.enqueue(enc.encode(text));
    this.end = () => this.c.close();
    this.fail = () => this.c.error(new TypeError('network error'));
  }

  response(headers = {}) {
    return new Response(this.body, { status: 200, headers: { 'Content-Type': 'text/event-stream; charset=utf-8', ...headers } });
  }
}

// problem returns a problem+json response.
export function problem(status, error, extra = {}, headers = {}) {
  return new Response(JSON.stringify({ type: 'urn:sseguard:problem:' + error, title: 'x', status, detail: 'detail of ' + error, error, ...extra }),
    { status, headers: { 'Content-Type': 'application/problem+json', ...headers } });
}

export function json(body) {
  return new Response(JSON.stringify(body), { status: 200, headers: { 'Content-Type': 'application/json' } });
}

// Fetcher records requests; each is answered by the test through
// respond(response) or refuse(error), or stays pending.
export class Fetcher {
  constructor() {
    this.requests = [];
    this.fetch = (url, init) => new Promise((resolve, reject) => {
      const req = { url: new URL(url, 'http://hub.test'), init, resolve, reject, aborted: false };
      init.signal.addEventListener('abort', () => {
        req.aborted = true;
        reject(new DOMException('aborted', 'AbortError'));
      });
      this.requests.push(req);
    });
  }

  last() { return this.requests[this.requests.length - 1]; }
  open() { return this.requests.filter((r) => !r.aborted && !r.done); }
  of(path) { return this.requests.filter((r) => r.url.pathname === path); }
}

// Socket is a WebSocket the test drives.
export function sockets() {
  const all = [];
  class FakeWebSocket {
    constructor(url) {
      this.url = new URL(url);
      this.readyState = 0;
      this.closedBy = null;
      this.sent = [];
      all.push(this);
    }
    // send records what the client sends; a ping is answered with a pong
    // unless the test set autoPong to false.
    send(m) {
      this.sent.push(m);
      if (this.autoPong !== false && m === '{"type":"ping"}') queueMicrotask(() => this.message({ type: 'pong' }));
    }
    close(code, reason) {
      this.closedBy = { code, reason };
      this.readyState = 3;
    }
    open() { this.readyState = 1; this.onopen && this.onopen({}); }
    message(m) { this.onmessage && this.onmessage({ data: typeof m === 'string' ? m : JSON.stringify(m) }); }
    drop(code, reason = '') { this.readyState = 3; this.onclose && this.onclose({ code, reason, wasClean: code !== 1006 }); }
  }
  return { WebSocket: FakeWebSocket, all };
}

// start subscribes with fakes and records every event the subscription
// dispatches, in order.
export function start(options = {}) {
  const clock = new Clock();
  const fetcher = new Fetcher();
  const ws = sockets();
  const win = new EventTarget();
  const env = { fetch: fetcher.fetch, WebSocket: ws.WebSocket, setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout, random: () => 0.5, window: win, navigator: { onLine: true }, location: null, ...(options.env || {}) };
  const sub = new Subscription({ url: 'http://hub.test', topics: ['news'], ...options, env });
  const events = [];
  for (const type of ['message', 'open', 'transport', 'reset', 'error', 'close']) {
    sub.addEventListener(type, (e) => events.push({ ...e.detail, type, eventType: e.eventType }));
  }
  const messages = () => events.filter((e) => e.type === 'message').map((e) => e.id + ':' + e.data);
  const transports = () => events.filter((e) => e.type === 'transport').map((e) => e.transport);
  return { sub, clock, fetcher, ws, win, events, messages, transports };
}

// sseEvent frames one event as the hub does.
export function sseEvent(id, data, type) {
  return (type ? 'event: ' + type + '\n' : '') + 'id: ' + id + '\ndata: ' + data + '\n\n';
}
