// A hub that speaks the presence contract (docs/client.md, "Presence") on
// loopback, for the client's tests that need real sockets but not a real
// hub: node:http for /events and /api/presence, and a minimal WebSocket
// server (RFC 6455 handshake and text frames) for /ws. The test scripts
// what each connection receives; nothing is invented by the server.

import http from 'node:http';
import { createHash } from 'node:crypto';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

// problemBody is the hub's problem+json shape.
function problemBody(status, error, detail) {
  return JSON.stringify({ type: 'urn:sseguard:problem:' + error, title: error, status, detail, error });
}

function writeProblem(res, status, error, detail) {
  res.writeHead(status, { 'Content-Type': 'application/problem+json', 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' });
  res.end(problemBody(status, error, detail));
}

// frame encodes one unmasked server frame.
function frame(opcode, payload) {
  const n = payload.length;
  let head;
  if (n < 126) head = Buffer.from([0x80 | opcode, n]);
  else if (n < 65536) { head = Buffer.alloc(4); head[0] = 0x80 | opcode; head[1] = 126; head.writeUInt16BE(n, 2); }
  else { head = Buffer.alloc(10); head[0] = 0x80 | opcode; head[1] = 127; head.writeBigUInt64BE(BigInt(n), 2); }
  return Buffer.concat([head, payload]);
}

// Socket is one accepted WebSocket: send(obj) writes a text message, and
// the client's {"type":"ping"} is answered with {"type":"pong"}.
class Socket {
  constructor(sock, url) {
    this.sock = sock;
    this.url = url;
    this.received = [];
    this.closed = false;
    let buf = Buffer.alloc(0);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (buf.length < 2) return;
        const opcode = buf[0] & 0x0f;
        let len = buf[1] & 0x7f, off = 2;
        if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
        else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
        const masked = (buf[1] & 0x80) !== 0;
        const mask = masked ? buf.subarray(off, off + 4) : null;
        if (masked) off += 4;
        if (buf.length < off + len) return;
        const payload = Buffer.from(buf.subarray(off, off + len));
        buf = buf.subarray(off + len);
        if (mask) for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i % 4];
        if (opcode === 0x8) { this.close(1000, ''); return; }
        if (opcode === 0x9) { sock.write(frame(0xa, payload)); continue; }
        if (opcode !== 0x1) continue;
        const text = payload.toString('utf8');
        this.received.push(text);
        if (text === '{"type":"ping"}') this.send({ type: 'pong' });
      }
    });
    sock.on('close', () => { this.closed = true; });
    sock.on('error', () => { this.closed = true; });
  }

  send(m) {
    if (!this.closed) this.sock.write(frame(0x1, Buffer.from(typeof m === 'string' ? m : JSON.stringify(m))));
  }

  close(code, reason) {
    if (this.closed) return;
    const r = Buffer.from(reason || '');
    const p = Buffer.alloc(2 + r.length);
    p.writeUInt16BE(code, 0);
    r.copy(p, 2);
    this.sock.write(frame(0x8, p));
    this.sock.end();
    this.closed = true;
  }
}

// Stream is one open /events response.
class Stream {
  constructor(res, url) {
    this.res = res;
    this.url = url;
    this.closed = false;
    res.on('close', () => { this.closed = true; });
  }

  write(text) { if (!this.closed) this.res.write(text); }
  end() { if (!this.closed) this.res.end(); this.closed = true; }
}

// contractHub starts the scripted hub on 127.0.0.1. presence maps tracked
// topics to {count, subjects}; a request whose token query parameter
// (access_token) is "claim" gets subjects. Topics under forbidden/ are
// refused with 403; anything with a '*' is a pattern (400 on presence).
export async function contractHub({ presence = {} } = {}) {
  const hub = { streams: [], sockets: [], presenceRequests: [], held: [] };
  const tracked = (topics) => topics.some((t) => Object.hasOwn(presence, t));
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://' + req.headers.host);
    const topics = url.searchParams.getAll('topic');
    if (url.pathname === '/api/presence') {
      hub.presenceRequests.push({ url, headers: req.headers });
      const t = url.searchParams.get('topic') || '';
      if (t === 'hold') { hub.held.push(res); return; }
      if (t === 'html') { res.writeHead(200, { 'Content-Type': 'text/html' }); res.end('<p>sign in</p>'); return; }
      if (t === 'odd') { res.writeHead(200, { 'Content-Type': 'application/json' }); res.end('{"topic":"odd","count":"many"}'); return; }
      if (t.includes('*')) return writeProblem(res, 400, 'bad_request', 'presence is asked of a topic name, not a pattern');
      if (t.startsWith('forbidden/')) return writeProblem(res, 403, 'topic_forbidden', 'this token may not subscribe to topic ' + JSON.stringify(t));
      if (!Object.hasOwn(presence, t)) return writeProblem(res, 404, 'presence_off', 'presence is off for this topic');
      const ans = { topic: t, count: presence[t].count };
      if (url.searchParams.get('access_token') === 'claim') ans.subjects = presence[t].subjects;
      res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' });
      res.end(JSON.stringify(ans));
      return;
    }
    if (url.pathname === '/events') {
      if (url.searchParams.get('presence') === '1' && !tracked(topics)) {
        return writeProblem(res, 400, 'bad_request', 'presence=1: none of the topics is tracked by presence.topics');
      }
      res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache, no-store, no-transform' });
      res.write('retry: 500\n\n');
      hub.streams.push(new Stream(res, url));
      return;
    }
    writeProblem(res, 404, 'not_found', 'no such path');
  });
  server.on('upgrade', (req, sock) => {
    const url = new URL(req.url, 'http://' + req.headers.host);
    if (url.pathname !== '/ws' || (url.searchParams.get('presence') === '1' && !tracked(url.searchParams.getAll('topic')))) {
      sock.end('HTTP/1.1 400 Bad Request\r\nContent-Type: application/problem+json\r\nConnection: close\r\n\r\n' + problemBody(400, 'bad_request', 'refused'));
      return;
    }
    const accept = createHash('sha1').update(req.headers['sec-websocket-key'] + GUID).digest('base64');
    sock.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ' + accept + '\r\n\r\n');
    hub.sockets.push(new Socket(sock, url));
  });
  const conns = new Set();
  server.on('connection', (c) => { conns.add(c); c.on('close', () => conns.delete(c)); });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  hub.url = 'http://127.0.0.1:' + server.address().port;
  hub.close = () => new Promise((resolve) => {
    for (const r of hub.held) r.destroy();
    for (const c of conns) c.destroy();
    server.close(() => resolve());
  });
  return hub;
}

// eventually resolves once cond() holds, checking it every few
// milliseconds, and rejects after ms with what.
export async function eventually(what, cond, ms = 5000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('not within ' + ms + ' ms: ' + what);
    await new Promise((r) => setTimeout(r, 5));
  }
}

// record subscribes listeners for every event a Subscription dispatches,
// with the cursor as it was when each one was dispatched.
export function record(sub) {
  const events = [];
  for (const type of ['message', 'open', 'transport', 'reset', 'error', 'close', 'join', 'leave']) {
    sub.addEventListener(type, (e) => events.push({ ...e.detail, type, eventType: e.eventType, cursor: sub.lastEventId }));
  }
  return events;
}
