// sseguard.js: the browser client of an sseguard hub. One Subscription per
// set of topics; it reads the hub's Server-Sent Events stream and, when the
// path to the hub demonstrably breaks it (a proxy that buffers or strips the
// stream), falls back to WebSocket, then to JSON long polling, carrying one
// cursor across them so that a switch neither loses nor repeats an event.
// It retries the better transport later and moves back when it works.
//
// No dependencies; an ES module. See docs/client.md for the rules and
// intervals; every number below is an option.

/** @type {Required<Omit<import('./sseguard').Options, 'topics' | 'lastEventId' | 'token' | 'env'>>} */
const DEFAULTS = {
  url: '',
  presence: false,
  transports: ['sse', 'ws', 'poll'],
  firstByteTimeout: 5000,
  heartbeat: 15000,
  upgradeInterval: 60000,
  maxUpgradeInterval: 960000,
  retryMin: 1000,
  retryMax: 30000,
  pollWait: 25,
  withCredentials: true,
  tokenParam: '',
  paths: { sse: '/events', ws: '/ws', poll: '/api/poll' },
};

// Statuses that say this transport is not served on this path: the next
// one may be.
const UNSUPPORTED = new Set([404, 405, 406, 426, 501]);

// How many delivered IDs are remembered to drop repeats.
const SEEN = 1024;

/**
 * Subscription reads the events of its topics from an sseguard hub. It is an
 * EventTarget: `message`, `open`, `transport`, `reset`, `error`, `close`,
 * and with the presence option `join` and `leave`.
 * Every event carries its fields in `detail` and as properties of the event
 * (a message's type is `eventType`, since `type` is the DOM event's name).
 */
export class Subscription extends EventTarget {
  /** @param {import('./sseguard').Options} options */
  constructor(options) {
    super();
    const o = { ...DEFAULTS, ...options, paths: { ...DEFAULTS.paths, ...(options && options.paths) } };
    const topics = typeof o.topics === 'string' ? [o.topics] : Array.from(o.topics || []);
    if (topics.length === 0) throw new TypeError('sseguard: name at least one topic');
    for (const t of o.transports) {
      if (!TRANSPORTS[t]) throw new TypeError('sseguard: unknown transport ' + JSON.stringify(t));
    }
    if (o.transports.length === 0) throw new TypeError('sseguard: name at least one transport');
    const g = globalThis;
    const env = o.env || {};
    this._env = {
      fetch: env.fetch || (g.fetch && g.fetch.bind(g)),
      WebSocket: env.WebSocket || g.WebSocket,
      setTimeout: env.setTimeout || g.setTimeout.bind(g),
      clearTimeout: env.clearTimeout || g.clearTimeout.bind(g),
      random: env.random || Math.random,
      window: env.window !== undefined ? env.window : (typeof g.addEventListener === 'function' ? g : null),
      navigator: env.navigator !== undefined ? env.navigator : g.navigator,
      location: env.location !== undefined ? env.location : g.location,
    };
    this._o = o;
    this._topics = topics;
    this._cursor = o.lastEventId === undefined || o.lastEventId === null ? undefined : String(o.lastEventId);
    this._seen = new Set();
    this._seenOrder = [];
    this._level = 0; // index in o.transports of the transport to use
    this._probe = null; // {home} while an upgrade is being tried
    this._upgradeFails = 0;
    this._fails = 0; // consecutive failures before open at this level
    this._attempt = 0; // backoff exponent
    this._gen = 0;
    this._conn = null;
    this._timers = {};
    this._state = 'connecting';
    this._transport = null;
    this._paused = false;
    this._hint = undefined; // the hub's last retry: hint, in ms
    this._fallback = ''; // the poll path a problem named
    this._beat = o.heartbeat; // the hub's heartbeat interval, in ms

    const win = this._env.window;
    if (win) {
      this._onOffline = () => this._pause();
      this._onOnline = () => this._resume();
      win.addEventListener('offline', this._onOffline);
      win.addEventListener('online', this._onOnline);
    }
    const nav = this._env.navigator;
    // Start on a later tick, so listeners added right after new see
    // everything from the first transport event on.
    this._timer('start', 0, () => {
      if (nav && nav.onLine === false) {
        this._pause();
        return;
      }
      this._switch(0, 'start');
    });
  }

  /** The ID of the last event delivered: the cursor every transport resumes from. */
  get lastEventId() { return this._cursor === undefined ? '' : this._cursor; }

  /** The transport in use or being tried: 'sse', 'ws', 'poll', or null before the start. */
  get transport() { return this._transport; }

  /** 'connecting', 'open' or 'closed'. */
  get readyState() { return this._state; }

  /** The topics subscribed to. */
  get topics() { return this._topics.slice(); }

  /** Stops the subscription for good; no event is dispatched after close returns. */
  close() {
    if (this._state === 'closed') return;
    this._stop();
  }

  // _stop ends everything; with why, a close event says why.
  _stop(why) {
    this._state = 'closed';
    this._drop();
    for (const k of Object.keys(this._timers)) this._clear(k);
    const win = this._env.window;
    if (win) {
      win.removeEventListener('offline', this._onOffline);
      win.removeEventListener('online', this._onOnline);
    }
    if (why) this._emit('close', why);
  }

  _emit(type, detail) {
    const ev = new Event(type);
    ev.detail = detail;
    for (const [k, v] of Object.entries(detail)) {
      if (k !== 'type' && k !== 'detail') ev[k] = v;
    }
    if (type === 'message') ev.eventType = detail.type;
    this.dispatchEvent(ev);
  }

  _timer(name, ms, fn) {
    this._clear(name);
    this._timers[name] = this._env.setTimeout(() => {
      delete this._timers[name];
      fn();
    }, ms);
  }

  _clear(name) {
    if (this._timers[name] !== undefined) {
      this._env.clearTimeout(this._timers[name]);
      delete this._timers[name];
    }
  }

  _drop() {
    this._gen++;
    this._clear('watch');
    if (this._conn) {
      const c = this._conn;
      this._conn = null;
      try { c.close(); } catch (e) { /* already gone */ }
    }
  }

  _pause() {
    if (this._state === 'closed' || this._paused) return;
    this._paused = true;
    this._drop();
    for (const k of ['retry', 'upgrade', 'start']) this._clear(k);
    if (this._probe) {
      this._level = this._probe.home;
      this._probe = null;
    }
    this._state = 'connecting';
    this._emit('error', { error: 'offline', status: 0, message: 'the browser is offline; waiting for online', transport: this._transport, fatal: false });
  }

  _resume() {
    if (this._state === 'closed' || !this._paused) return;
    this._paused = false;
    this._attempt = 0;
    this._fails = 0;
    this._switch(this._level, 'back online');
  }

  // _switch makes level the transport in use and connects it.
  _switch(level, reason) {
    const name = this._o.transports[level];
    const previous = this._transport;
    this._level = level;
    this._fails = 0;
    this._transport = name;
    this._emit('transport', { transport: name, previous, reason });
    this._connect();
    if (!this._probe) this._scheduleUpgrade();
  }

  _scheduleUpgrade() {
    this._clear('upgrade');
    if (this._level === 0 || this._probe) return;
    const o = this._o;
    const full = Math.min(o.maxUpgradeInterval, o.upgradeInterval * 2 ** this._upgradeFails);
    // Drawn in [full/2, full): clients demoted together do not all come back at once.
    const ms = full / 2 + this._env.random() * full / 2;
    this._timer('upgrade', ms, () => {
      if (this._state === 'closed' || this._paused) return;
      this._tryUpgrade(0, this._level);
    });
  }

  _tryUpgrade(level, home) {
    this._drop();
    this._clear('retry');
    this._probe = { home };
    const o = this._o;
    this._switch(level, 'retrying ' + o.transports[level] + ' (the upgrade interval passed on ' + o.transports[home] + ')');
  }

  // _connect opens the current transport with the current cursor.
  _connect() {
    this._drop();
    const gen = this._gen;
    const name = this._o.transports[this._level];
    const live = () => gen === this._gen && this._state !== 'closed';
    const conn = { opened: false, bytes: false };
    this._state = 'connecting';
    const ctx = {
      sub: this,
      cursor: () => this._cursor,
      opened: () => {
        if (!live() || conn.opened) return;
        conn.opened = true;
        this._state = 'open';
        if (name !== 'sse') {
          // Open is proof enough: from now on a WebSocket is watched through
          // the answers to its pings (pinged), a poll through each round.
          this._clear('watch');
          this._works();
        }
        this._emit('open', { transport: name });
      },
      byte: () => {
        if (!live()) return;
        if (!conn.bytes) {
          conn.bytes = true;
          if (name === 'sse') this._works();
        }
        if (name === 'sse') this._watchBeat('no heartbeat');
        // Any message answers the pending ping.
        else if (name === 'ws' && conn.opened) this._clear('watch');
      },
      heartbeat: (intervalMS) => {
        if (!live()) return;
        if (intervalMS > 0) this._beat = intervalMS;
        this._watchBeat('no heartbeat');
      },
      // pinged arms the watchdog for the answer, unless it waits already.
      // Armed when the ping goes out, not on a schedule of its own, so a
      // background tab whose timers the browser throttles does not fail a
      // socket whose answer simply has not been read yet.
      pinged: () => {
        if (live() && this._timers.watch === undefined) this._watchBeat('no answer to a ping');
      },
      beat: () => this._beat,
      rearm: (ms, why) => { if (live()) this._watch(ms, why); },
      event: (e) => { if (live()) this._deliver(e); },
      next: (id) => { if (live() && id !== undefined && id !== null && id !== '') this._cursor = String(id); },
      reset: (r) => { if (live()) this._emit('reset', { reason: r.reason || '', message: r.detail || '', transport: name }); },
      presence: (kind, topic, data) => { if (live()) this._presence(kind, topic, data, name); },
      retry: (ms) => { if (live()) this._hint = ms; },
      ended: (f) => { if (live()) this._ended(name, conn, f || {}); },
    };
    // The first-byte timeout: SSE must send a byte (the hub's retry: line
    // comes at once), WebSocket must open, a poll must answer.
    const first = name === 'poll' ? this._o.pollWait * 1000 + this._o.firstByteTimeout : this._o.firstByteTimeout;
    this._watch(first, name === 'sse' ? 'no byte within ' + sec(first) : name === 'ws' ? 'not open within ' + sec(first) : 'no answer within ' + sec(first));
    try {
      this._conn = TRANSPORTS[name](ctx, this);
    } catch (err) {
      this._env.setTimeout(() => ctx.ended({ network: true, detail: String(err) }), 0);
    }
  }

  // _watchBeat arms the watchdog for twice the hub's heartbeat interval:
  // the one it announced, else the heartbeat option.
  _watchBeat(what) {
    const ms = 2 * this._beat;
    this._watch(ms, what + ' within ' + sec(ms));
  }

  // _works records that the transport in use demonstrably works.
  _works() {
    this._attempt = 0;
    this._fails = 0;
    if (this._probe) {
      this._probe = null;
      this._upgradeFails = 0;
      this._scheduleUpgrade();
    }
  }

  // _watch (re)arms the watchdog: when it fires, the transport failed.
  _watch(ms, why) {
    const gen = this._gen;
    this._timer('watch', ms, () => {
      if (gen !== this._gen || this._state === 'closed') return;
      const name = this._o.transports[this._level];
      this._drop();
      this._ended(name, { opened: true }, { demote: true, detail: why });
    });
  }

  _deliver(e) {
    const id = e.id === undefined || e.id === null ? '' : String(e.id);
    if (id !== '') {
      if (this._seen.has(id)) return;
      this._seen.add(id);
      this._seenOrder.push(id);
      if (this._seenOrder.length > SEEN) this._seen.delete(this._seenOrder.shift());
      this._cursor = id;
    }
    // Over SSE the event names no topic: a single topic is it, a single
    // pattern (orders/*) is not.
    const only = this._topics.length === 1 && !this._topics[0].endsWith('*') ? this._topics[0] : '';
    const topic = e.topic !== undefined && e.topic !== null ? e.topic : only;
    this._emit('message', { id, topic, type: e.type || 'message', data: e.data === undefined ? '' : e.data, transport: this._transport });
  }

  // _presence dispatches a join or leave of the hub's sseguard.join and
  // sseguard.leave events. They are not history: they carry no id, move
  // no cursor and are never messages. One that does not parse as the
  // contract's object is dropped rather than shown half-read.
  _presence(kind, topic, data, transport) {
    if (typeof data === 'string') {
      try { data = JSON.parse(data); } catch (err) { return; }
    }
    if (!data || typeof data !== 'object' || Array.isArray(data)) return;
    const count = Number(data.count);
    if (!Number.isInteger(count) || count < 0) return;
    const t = typeof data.topic === 'string' ? data.topic : typeof topic === 'string' ? topic : '';
    const detail = { topic: t, count, data, transport };
    if (typeof data.sub === 'string') detail.sub = data.sub;
    this._emit(kind === 'sseguard.join' ? 'join' : 'leave', detail);
  }

  // _ended decides what follows the end of a connection: stop, switch
  // down, go back from a failed upgrade, or reconnect after a delay.
  _ended(name, conn, f) {
    this._drop();
    if (this._state === 'closed') return;
    this._state = 'connecting';
    const code = f.error || (f.problem && f.problem.error) || '';
    const detail = f.detail || (f.problem && f.problem.detail) || '';
    const failed = !f.clean;
    const fb = f.problem && f.problem.fallback;
    if (typeof fb === 'string' && fb.startsWith('/') && !fb.startsWith('//')) this._fallback = fb;
    // A 400 in the hub's problem shape refuses the request itself (a bad
    // pattern, presence asked for an untracked topic): asking again, or
    // over another transport, cannot help. A 400 without one may be a
    // proxy's and is treated as any failure.
    const refused = f.status === 400 && typeof code === 'string' && code !== '' && !!f.problem;
    if (f.status === 401 || f.status === 403 || refused || f.fatal) {
      const why = { error: code || (f.status === 401 ? 'token_missing' : 'forbidden'), status: f.status || 0, message: detail, transport: name, fatal: true };
      this._emit('error', why);
      this._stop({ reason: why.error, message: detail, status: why.status });
      return;
    }
    if (failed) {
      this._emit('error', { error: code || (f.network ? 'network' : f.demote ? 'transport_failed' : 'http_' + (f.status || 0)), status: f.status || 0, message: detail, transport: name, fatal: false, retryAfter: f.retryAfter || 0 });
    }
    if (this._state === 'closed') return; // a listener closed it
    const last = this._o.transports.length - 1;
    if (this._probe) {
      if (!failed) {
        // It opened and ended cleanly before proving itself: try it again.
        this._retryLater(f);
        return;
      }
      // A failed upgrade: try the next better one, or go back home.
      const home = this._probe.home;
      if (this._level + 1 < home) {
        this._probe = { home };
        this._switch(this._level + 1, name + ' failed again (' + (detail || code) + ')');
        return;
      }
      this._probe = null;
      this._upgradeFails++;
      this._switch(home, name + ' failed again (' + (detail || code) + ')');
      return;
    }
    let demote = '';
    if (f.demote) demote = detail || 'the transport failed';
    else if (f.problem && f.problem.fallback) demote = 'the hub named a fallback (' + (code || f.status) + ')';
    else if (UNSUPPORTED.has(f.status)) demote = name + ' answered ' + f.status + (code ? ' ' + code : '');
    else if (failed && (!conn.opened || f.empty)) {
      this._fails++;
      if (this._fails >= 2) demote = name + ' failed before open twice in a row (' + (detail || code || 'network') + ')';
    }
    if (demote && this._level < last) {
      this._switch(this._level + 1, demote);
      return;
    }
    if (conn.opened && !failed) this._fails = 0;
    this._retryLater(f);
  }

  // _retryLater reconnects the same transport after the hub's hint or a
  // backoff with full jitter, whichever the hub asked for.
  _retryLater(f) {
    const o = this._o;
    let ms;
    if (!f.clean) {
      const base = this._hint !== undefined ? Math.max(this._hint, 1) : o.retryMin;
      ms = this._env.random() * Math.min(o.retryMax, base * 2 ** this._attempt);
      this._attempt = Math.min(this._attempt + 1, 30);
    } else {
      // The hub ended the stream: its hint is already drawn per stream.
      const hint = f.hint !== undefined ? f.hint : this._hint;
      ms = hint !== undefined ? hint : this._env.random() * o.retryMin;
    }
    if (f.retryAfter) ms = Math.max(ms, f.retryAfter);
    this._timer('retry', ms, () => {
      if (this._state === 'closed' || this._paused) return;
      this._connect();
    });
  }

  // _url builds the URL of a transport's endpoint with the topics, extra
  // query parameters and the query token when one is configured.
  _url(kind, extra) {
    const o = this._o;
    const base = o.url || (this._env.location ? this._env.location.origin : '');
    const path = (kind === 'poll' && this._fallback) || o.paths[kind];
    const u = new URL(path, base || 'http://localhost');
    for (const t of this._topics) u.searchParams.append('topic', t);
    for (const [k, v] of Object.entries(extra || {})) {
      if (v !== undefined && v !== null) u.searchParams.set(k, String(v));
    }
    if (o.tokenParam && o.token) u.searchParams.set(o.tokenParam, o.token);
    if (kind === 'ws') u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    return base || kind === 'ws' ? u.href : u.pathname + u.search;
  }

  _credentials() {
    return this._o.withCredentials ? 'include' : 'same-origin';
  }
}

/** subscribe is `new Subscription({...options, topics})`. */
export function subscribe(topics, options) {
  return new Subscription({ ...(options || {}), topics });
}

/**
 * ProblemError is how presence() fails: `error` is the hub's problem code
 * (docs/errors.md), or network, timeout, bad_answer, http_NNN, as in a
 * Subscription's `error` event; `status` is 0 when no answer came.
 */
export class ProblemError extends Error {
  /** @param {{error: string, status?: number, message?: string, retryAfter?: number, problem?: object}} d */
  constructor(d) {
    super(d.message || d.error);
    this.name = 'ProblemError';
    this.error = d.error;
    this.status = d.status || 0;
    this.retryAfter = d.retryAfter || 0;
    if (d.problem) this.problem = d.problem;
  }
}

/**
 * presence asks the hub who is connected to topic (GET /api/presence):
 * `{topic, count}`, plus `subjects` when the token carries the presence
 * claim. url is the hub's base URL ("" for the page's origin); options
 * are a Subscription's credentials options (withCredentials, tokenParam,
 * token, env) and path, signal, timeout. It rejects with a ProblemError.
 */
export async function presence(url, topic, options) {
  const o = options || {};
  const g = globalThis;
  const env = o.env || {};
  const fetchFn = env.fetch || (g.fetch && g.fetch.bind(g));
  const setT = env.setTimeout || g.setTimeout.bind(g);
  const clearT = env.clearTimeout || g.clearTimeout.bind(g);
  const loc = env.location !== undefined ? env.location : g.location;
  const base = url || (loc ? loc.origin : '');
  const u = new URL(o.path || '/api/presence', base || 'http://localhost');
  u.searchParams.set('topic', String(topic));
  if (o.tokenParam && o.token) u.searchParams.set(o.tokenParam, o.token);
  const ac = new AbortController();
  let timedOut = false;
  const timeout = o.timeout === undefined ? 10000 : o.timeout;
  const timer = timeout > 0 ? setT(() => { timedOut = true; ac.abort(); }, timeout) : undefined;
  const onAbort = () => ac.abort();
  if (o.signal) {
    if (o.signal.aborted) ac.abort();
    else o.signal.addEventListener('abort', onAbort);
  }
  let res, body;
  try {
    res = await fetchFn(base ? u.href : u.pathname + u.search, {
      headers: { Accept: 'application/json' },
      credentials: o.withCredentials === false ? 'same-origin' : 'include',
      cache: 'no-store',
      signal: ac.signal,
    });
    if (res.status !== 200 || !/^application\/json/i.test(res.headers.get('Content-Type') || '')) {
      const f = await failure(res);
      const code = (f.problem && typeof f.problem.error === 'string' && f.problem.error) || (res.ok ? 'bad_answer' : 'http_' + res.status);
      throw new ProblemError({ error: code, status: res.status, message: (f.problem && f.problem.detail) || f.detail || '', retryAfter: f.retryAfter, problem: f.problem });
    }
    body = await res.json();
  } catch (err) {
    if (err instanceof ProblemError) throw err;
    if (timedOut) throw new ProblemError({ error: 'timeout', message: 'no answer within ' + sec(timeout) });
    if (o.signal && o.signal.aborted) throw err; // the caller's own abort, as fetch reports it
    throw new ProblemError({ error: 'network', message: String(err) });
  } finally {
    if (timer !== undefined) clearT(timer);
    if (o.signal) o.signal.removeEventListener('abort', onAbort);
  }
  const ok = body && typeof body === 'object' && typeof body.topic === 'string' && Number.isInteger(body.count) && body.count >= 0 &&
    (body.subjects === undefined || (Array.isArray(body.subjects) && body.subjects.every((s) => typeof s === 'string')));
  if (!ok) throw new ProblemError({ error: 'bad_answer', status: res.status, message: 'the answer is not {topic, count[, subjects]}' });
  const ans = { topic: body.topic, count: body.count };
  if (body.subjects !== undefined) ans.subjects = body.subjects.slice();
  return ans;
}

function sec(ms) {
  return (ms / 1000) + ' s';
}

// failure reads a refusal: its status, the problem body when it is one,
// and Retry-After in milliseconds.
async function failure(res) {
  const f = { status: res.status, retryAfter: retryAfter(res.headers.get('Retry-After')) };
  const ctype = res.headers.get('Content-Type') || '';
  if (res.ok) {
    f.detail = 'answered ' + (ctype || 'no Content-Type');
    f.demote = true; // a 200 of the wrong type: something on the path rewrote it
  } else if (/^application\/(problem\+)?json/i.test(ctype)) {
    try {
      const p = await res.json();
      if (p && typeof p === 'object') f.problem = p;
    } catch (e) { /* not JSON after all */ }
  }
  return f;
}

// retryAfter converts Retry-After (seconds or an HTTP date) to milliseconds.
export function retryAfter(v) {
  if (!v) return 0;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? 0 : Math.max(0, t - Date.now());
}

/**
 * parser returns a function fed the stream's text as it arrives; it calls
 * on.event({id, type, data}) per event, on.retry(ms), on.comment(). It is
 * the WHATWG event-stream algorithm, but an event's id is the one its own
 * block set (the hub sets one on every event; blocks without, like reset,
 * are control events).
 */
export function parser(on) {
  let buf = '', data = [], type = '', id, hasData = false, sawCR = false, bom = true;
  return (chunk) => {
    if (bom) {
      if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1);
      if (chunk !== '') bom = false;
    }
    buf += chunk;
    for (;;) {
      const m = /\r\n|\r|\n/.exec(buf);
      if (!m) return;
      const line = buf.slice(0, m.index);
      buf = buf.slice(m.index + m[0].length);
      // A CR ending one chunk and the LF starting the next are one line end.
      if (sawCR && m.index === 0 && m[0] === '\n') { sawCR = false; continue; }
      sawCR = m[0] === '\r' && buf === '';
      if (line === '') {
        if (hasData) on.event({ id, type: type || 'message', data: data.join('\n') });
        data = []; type = ''; id = undefined; hasData = false;
        continue;
      }
      if (line.startsWith(':')) { if (on.comment) on.comment(); continue; }
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') { data.push(value); hasData = true; }
      else if (field === 'event') type = value;
      else if (field === 'id' && !value.includes('\0')) id = value;
      else if (field === 'retry' && /^\d+$/.test(value)) { if (on.retry) on.retry(Number(value)); }
    }
  };
}

// The transports: each opens one connection and reports through ctx;
// close() ends it without reporting.
const TRANSPORTS = {
  sse(ctx, sub) {
    const env = sub._env;
    const ac = new AbortController();
    const cursor = ctx.cursor();
    // The cursor goes in the query, not Last-Event-ID: a simple CORS
    // request needs no preflight on every reconnect.
    // heartbeat=event: the hub sends sseguard.heartbeat events carrying its
    // interval, the first at once (docs/websocket.md).
    const url = sub._url('sse', { lastEventId: cursor, heartbeat: 'event', presence: sub._o.presence ? '1' : undefined });
    (async () => {
      let res;
      try {
        res = await env.fetch(url, { headers: { Accept: 'text/event-stream' }, credentials: sub._credentials(), cache: 'no-store', signal: ac.signal });
      } catch (err) {
        if (!ac.signal.aborted) ctx.ended({ network: true, detail: String(err) });
        return;
      }
      const ctype = res.headers.get('Content-Type') || '';
      if (res.status !== 200 || !/^text\/event-stream/i.test(ctype)) {
        const f = await failure(res);
        if (!ac.signal.aborted) ctx.ended(f);
        return;
      }
      ctx.opened();
      const feed = parser({
        event: (e) => {
          if (e.type === 'reset' || e.type.startsWith('sseguard.')) {
            let r = {};
            try { r = JSON.parse(e.data); } catch (err) { /* keep empty */ }
            if (e.type === 'reset') ctx.reset(r);
            else if (e.type === 'sseguard.heartbeat') ctx.heartbeat(Number(r && r.interval_ms) || 0);
            // The hub's joins and leaves never carry an id: one that does
            // is no presence of the hub's (publishers may not use the name).
            else if ((e.type === 'sseguard.join' || e.type === 'sseguard.leave') && e.id === undefined) ctx.presence(e.type, undefined, r);
            return;
          }
          ctx.event(e);
        },
        retry: (ms) => ctx.retry(ms),
      });
      const dec = new TextDecoder();
      let sawByte = false;
      try {
        const reader = res.body.getReader();
        ac.signal.addEventListener('abort', () => { reader.cancel().catch(() => {}); });
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          if (ac.signal.aborted) return;
          const text = dec.decode(value, { stream: true });
          if (text !== '') {
            sawByte = true;
            ctx.byte();
            feed(text);
          }
        }
      } catch (err) {
        if (!ac.signal.aborted) ctx.ended({ network: true, detail: String(err) });
        return;
      }
      if (ac.signal.aborted) return;
      // A stream that ends before its first byte (not even retry:) was
      // never a stream: it counts as failing before open.
      ctx.ended(sawByte ? { clean: true } : { empty: true, detail: 'the stream ended before its first byte' });
    })();
    return { close() { ac.abort(); } };
  },

  ws(ctx, sub) {
    const env = sub._env;
    if (!env.WebSocket) throw new Error('no WebSocket in this environment');
    const ws = new env.WebSocket(sub._url('ws', { lastEventId: ctx.cursor(), presence: sub._o.presence ? '1' : undefined }));
    let opened = false, done = false, pinger;
    // Scripts cannot see WebSocket pings: the client sends {"type":"ping"}
    // every heartbeat interval and watches for any message back.
    const ping = () => {
      pinger = env.setTimeout(() => {
        if (done) return;
        try { ws.send('{"type":"ping"}'); } catch (err) { /* the close follows */ }
        ctx.pinged();
        ping();
      }, ctx.beat());
    };
    ws.onopen = () => {
      if (done) return;
      opened = true;
      ctx.opened();
      ping();
    };
    ws.onmessage = (m) => {
      if (done) return;
      ctx.byte();
      let msg;
      try { msg = JSON.parse(m.data); } catch (err) { msg = null; }
      if (!msg || typeof msg !== 'object') {
        done = true;
        env.clearTimeout(pinger);
        ws.close(1003, 'not JSON');
        ctx.ended({ network: true, detail: 'the hub sent a message that is not JSON' });
        return;
      }
      // Presence is never history; the hub's carries no id, and one
      // with an id is not the hub's.
      if (msg.type === 'sseguard.join' || msg.type === 'sseguard.leave') {
        if (msg.id === undefined || msg.id === null || msg.id === '') ctx.presence(msg.type, msg.topic, msg.data);
        return;
      }
      // Control messages have no id: reset, pong.
      if (msg.type === 'reset' && (msg.id === undefined || msg.id === '')) {
        let r = msg.data;
        if (typeof r === 'string') { try { r = JSON.parse(r); } catch (err) { r = {}; } }
        ctx.reset(r && typeof r === 'object' ? r : {});
        return;
      }
      if (msg.id === undefined || msg.id === null || msg.id === '') return; // pong and future control messages
      if (typeof msg.type === 'string' && msg.type.startsWith('sseguard.')) return;
      ctx.event({ id: msg.id, topic: msg.topic, type: msg.type, data: msg.data });
    };
    ws.onclose = (c) => {
      env.clearTimeout(pinger);
      if (done) return;
      done = true;
      ctx.ended(closeFailure(c, opened));
    };
    return {
      close() {
        env.clearTimeout(pinger);
        if (done) return;
        done = true;
        try { ws.close(1000); } catch (err) { /* closing already */ }
      },
    };
  },

  poll(ctx, sub) {
    const env = sub._env;
    const o = sub._o;
    const ac = new AbortController();
    let timer;
    const round = async () => {
      const cursor = ctx.cursor();
      // Without a cursor the hub answers at once with the head to start from.
      const url = sub._url('poll', cursor === undefined ? {} : { after: cursor, wait: o.pollWait });
      let res, ans;
      try {
        res = await env.fetch(url, { headers: { Accept: 'application/json' }, credentials: sub._credentials(), cache: 'no-store', signal: ac.signal });
        if (res.status !== 200) {
          const f = await failure(res);
          if (!ac.signal.aborted) ctx.ended(f);
          return;
        }
        ans = await res.json();
      } catch (err) {
        if (!ac.signal.aborted) ctx.ended({ network: true, detail: String(err) });
        return;
      }
      if (ac.signal.aborted) return;
      ctx.opened();
      ctx.byte();
      if (ans.reset) ctx.reset(ans.reset);
      for (const e of ans.events || []) ctx.event(e);
      ctx.next(ans.next);
      // The next round has its own answer timeout, counted from now.
      ctx.rearm(o.pollWait * 1000 + o.firstByteTimeout + Math.max(0, Number(ans.retry_ms) || 0), 'no answer within ' + sec(o.pollWait * 1000 + o.firstByteTimeout));
      timer = env.setTimeout(round, Math.max(0, Number(ans.retry_ms) || 0));
    };
    round();
    return {
      close() {
        ac.abort();
        if (timer !== undefined) env.clearTimeout(timer);
      },
    };
  },
};

// closeFailure reads a WebSocket close by the hub's codes (docs/websocket.md):
// 4000 token expired (reconnect at once: the cookie may be fresh), 4001 cut
// off for falling behind and 4002 shutdown (reason "retry=MS", a hint drawn
// per connection), 4003 history unavailable (retry=MS, then backoff); 1006
// before open is a failed upgrade, whose reason browsers do not show.
function closeFailure(c, opened) {
  const reason = typeof c.reason === 'string' ? c.reason : '';
  const m = /(?:^|[ ;,])retry=(\d+)/.exec(reason);
  const hint = m ? Number(m[1]) : undefined;
  switch (c.code) {
    case 4000:
      return { clean: true, hint: 0, detail: reason || 'token expired' };
    case 4001:
    case 4002:
      return { clean: true, hint, detail: reason };
    case 4003:
      return { error: 'unavailable', retryAfter: hint || 0, detail: 'the hub could not replay history (' + reason + ')' };
    case 1000:
    case 1001:
    case 1012:
      if (opened) return { clean: true, hint, detail: reason };
  }
  const f = { code: c.code, detail: 'WebSocket closed ' + (opened ? '' : 'before open ') + '(' + c.code + (reason ? ' ' + reason : '') + ')' };
  if (!opened) f.network = true;
  if (c.code === 1008 || c.code === 1003 || c.code === 1009) f.error = 'policy_violation';
  return f;
}
