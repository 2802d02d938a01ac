// Unit tests of sseguard.js's state machine, run with `node --test` (and by
// node_test.go from `go test`). Transports, timers and the network are the
// fakes of harness.test-helper.mjs: no sockets, no sleeps.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parser, retryAfter, Subscription, subscribe } from './sseguard.js';
import { start, Stream, problem, json, sseEvent, settle } from './harness.test-helper.mjs';

test('parser: fields, multi-line data, comments, retry, CRLF split across chunks', () => {
  const got = [];
  const retries = [];
  let comments = 0;
  const feed = parser({ event: (e) => got.push(e), retry: (ms) => retries.push(ms), comment: () => comments++ });
  feed('\ufeffretry: 2500\n\n: keep-alive\n\nid: 1\ndata: a\r');
  feed('\ndata: b\r\n\r\nevent: upd');
  feed('ate\nid: 2\ndata:c\n\ndata: no id\n\nid: 3\n\n');
  assert.deepEqual(got, [
    { id: '1', type: 'message', data: 'a\nb' },
    { id: '2', type: 'update', data: 'c' },
    { id: undefined, type: 'message', data: 'no id' },
  ]);
  assert.deepEqual(retries, [2500]);
  assert.equal(comments, 1);
});

test('retryAfter: seconds and HTTP dates', () => {
  assert.equal(retryAfter('7'), 7000);
  assert.equal(retryAfter(null), 0);
  assert.equal(retryAfter('soon'), 0);
  const later = new Date(Date.now() + 60000).toUTCString();
  const ms = retryAfter(later);
  assert.ok(ms > 55000 && ms <= 60000, String(ms));
});

test('a pattern goes to the hub unchanged, and is never reported as the topic of an SSE event', async () => {
  const h = start({ topics: ['orders/*'] });
  await h.clock.advance(0);
  const req = h.fetcher.last();
  assert.deepEqual(req.url.searchParams.getAll('topic'), ['orders/*']);
  assert.match(req.url.search, /topic=orders%2F\*|topic=orders\/\*/);
  const s = new Stream();
  req.resolve(s.response());
  s.push(sseEvent('1', 'one'));
  await h.clock.advance(10);
  const msgs = h.events.filter((e) => e.type === 'message');
  assert.equal(msgs.length, 1);
  assert.equal(msgs[0].topic, '');
  h.sub.close();
});

test('options are checked', () => {
  assert.throws(() => new Subscription({ topics: [] }), /topic/);
  assert.throws(() => subscribe('a', { transports: ['carrier-pigeon'] }), /unknown transport/);
});

test('straight to the hub: stays on SSE and delivers id, topic, type and data', async () => {
  const h = start({ lastEventId: '0' });
  await h.clock.advance(0);
  const req = h.fetcher.last();
  assert.equal(req.url.pathname, '/events');
  assert.deepEqual(req.url.searchParams.getAll('topic'), ['news']);
  assert.equal(req.url.searchParams.get('lastEventId'), '0');
  assert.equal(req.init.headers.Accept, 'text/event-stream');
  assert.equal(req.init.credentials, 'include');
  const s = new Stream();
  req.resolve(s.response());
  s.push('retry: 3000\n\n');
  s.push(sseEvent('5', 'five') + sseEvent('6', 'six', 'update'));
  await h.clock.advance(1000);
  // heartbeats keep it alive past the first-byte timeout and beyond 2x heartbeat
  for (let i = 0; i < 5; i++) {
    s.push(': keep-alive\n\n');
    await h.clock.advance(15000);
  }
  assert.deepEqual(h.transports(), ['sse']);
  assert.deepEqual(h.messages(), ['5:five', '6:six']);
  const msgs = h.events.filter((e) => e.type === 'message');
  assert.deepEqual({ id: msgs[1].id, topic: msgs[1].topic, type: msgs[1].eventType, data: msgs[1].data }, { id: '6', topic: 'news', type: 'update', data: 'six' });
  assert.equal(h.sub.lastEventId, '6');
  assert.equal(h.sub.readyState, 'open');
  assert.equal(h.events.filter((e) => e.type === 'open').length, 1);
  assert.equal(h.fetcher.requests.length, 1);
  h.sub.close();
});

test('no byte within the first-byte timeout: switches to WebSocket with the cursor', async () => {
  const h = start({ lastEventId: '3' });
  await h.clock.advance(0);
  const s = new Stream();
  h.fetcher.last().resolve(s.response()); // headers come, the body is held (a buffering proxy)
  await h.clock.advance(4999);
  assert.equal(h.ws.all.length, 0);
  await h.clock.advance(1);
  assert.equal(h.fetcher.last().aborted || s.cancelled, true, 'the SSE request is abandoned');
  assert.deepEqual(h.transports(), ['sse', 'ws']);
  const why = h.events.filter((e) => e.type === 'transport')[1];
  assert.match(why.reason, /no byte within 5 s/);
  assert.equal(why.previous, 'sse');
  const sock = h.ws.all[0];
  assert.equal(sock.url.protocol, 'ws:');
  assert.equal(sock.url.pathname, '/ws');
  assert.equal(sock.url.searchParams.get('lastEventId'), '3');
  sock.open();
  sock.message({ id: '4', topic: 'news', type: 'message', data: 'four' });
  assert.deepEqual(h.messages(), ['4:four']);
  assert.equal(h.sub.transport, 'ws');
  h.sub.close();
  assert.equal(sock.closedBy.code, 1000);
});

test('opened but silent for 2x the heartbeat interval: switches down', async () => {
  const h = start({ heartbeat: 10000 });
  await h.clock.advance(0);
  const s = new Stream();
  h.fetcher.last().resolve(s.response());
  s.push('retry: 2000\n\n');
  await h.clock.advance(19999);
  assert.deepEqual(h.transports(), ['sse']);
  await h.clock.advance(1);
  assert.deepEqual(h.transports(), ['sse', 'ws']);
  assert.match(h.events.find((e) => e.type === 'transport' && e.transport === 'ws').reason, /no heartbeat within 20 s/);
  h.sub.close();
});

test('failing before open: once reconnects SSE, twice in a row switches', async () => {
  const h = start();
  await h.clock.advance(0);
  h.fetcher.last().reject(new TypeError('Failed to fetch'));
  await h.clock.advance(0);
  assert.deepEqual(h.transports(), ['sse']);
  // Full jitter with random() = 0.5: half of retryMin.
  assert.deepEqual(h.clock.pending().filter((d) => d <= 5000), [500]);
  await h.clock.advance(500);
  assert.equal(h.fetcher.of('/events').length, 2);
  h.fetcher.last().reject(new TypeError('Failed to fetch'));
  await h.clock.advance(0);
  assert.deepEqual(h.transports(), ['sse', 'ws']);
  assert.match(h.events.at(-1).reason, /failed before open twice in a row/);
  const errors = h.events.filter((e) => e.type === 'error');
  assert.deepEqual(errors.map((e) => [e.error, e.fatal]), [['network', false], ['network', false]]);
  h.sub.close();
});

test('a refusal naming a fallback switches down; WebSocket failing twice lands on polling with one cursor', async () => {
  const h = start({ lastEventId: '10' });
  await h.clock.advance(0);
  h.fetcher.last().resolve(problem(406, 'accept_not_acceptable', { fallback: '/api/poll' }, { 'Retry-After': '30' }));
  await h.clock.advance(0);
  assert.deepEqual(h.transports(), ['sse', 'ws']);
  assert.equal(h.events.find((e) => e.type === 'error').error, 'accept_not_acceptable');
  h.ws.all[0].drop(1006);
  await h.clock.advance(0);
  assert.deepEqual(h.transports(), ['sse', 'ws'], 'one failure before open is retried');
  await h.clock.advance(500);
  assert.equal(h.ws.all.length, 2);
  h.ws.all[1].drop(1006);
  await h.clock.advance(0);
  assert.deepEqual(h.transports(), ['sse', 'ws', 'poll']);
  const poll = h.fetcher.last();
  assert.equal(poll.url.pathname, '/api/poll');
  assert.equal(poll.url.searchParams.get('after'), '10');
  assert.equal(poll.url.searchParams.get('wait'), '25');
  assert.equal(poll.init.headers.Accept, 'application/json');
  poll.resolve(json({ events: [{ id: '11', topic: 'news', type: 'message', data: 'eleven' }], next: '11', retry_ms: 0 }));
  await h.clock.advance(0);
  const second = h.fetcher.last();
  assert.equal(second.url.searchParams.get('after'), '11');
  second.resolve(json({ events: [], next: '11', retry_ms: 0 }));
  await h.clock.advance(0);
  assert.deepEqual(h.messages(), ['11:eleven']);
  assert.equal(h.sub.lastEventId, '11');
  h.sub.close();
});

test('401 and 403 stop and say why; nothing is retried', async () => {
  for (const [status, code] of [[401, 'token_expired'], [403, 'origin_forbidden']]) {
    const h = start();
    await h.clock.advance(0);
    h.fetcher.last().resolve(problem(status, code));
    await h.clock.advance(0);
    const err = h.events.find((e) => e.type === 'error');
    assert.deepEqual([err.error, err.status, err.fatal, err.message], [code, status, true, 'detail of ' + code]);
    assert.equal(h.events.at(-1).type, 'close');
    assert.equal(h.events.at(-1).reason, code);
    assert.equal(h.sub.readyState, 'closed');
    await h.clock.advance(10 * 60000);
    assert.equal(h.fetcher.requests.length, 1);
    assert.equal(h.ws.all.length, 0);
    assert.equal(h.clock.timers.size, 0);
  }
});

test('a poll refused with 403 stops too', async () => {
  const h = start({ transports: ['poll'] });
  await h.clock.advance(0);
  h.fetcher.last().resolve(problem(403, 'topic_forbidden'));
  await h.clock.advance(0);
  assert.equal(h.sub.readyState, 'closed');
  assert.equal(h.events.find((e) => e.type === 'error').error, 'topic_forbidden');
});

test('backoff with full jitter, growing to the cap; Retry-After is honoured', async () => {
  let r = 0.999;
  const h = start({ transports: ['poll'], env: { random: () => r } });
  await h.clock.advance(0);
  const delays = [];
  for (let i = 0; i < 7; i++) {
    h.fetcher.last().resolve(problem(503, 'unavailable'));
    await h.clock.advance(0);
    delays.push(Math.round(h.clock.pending().at(-1)));
    await h.clock.advance(h.clock.pending().at(-1));
  }
  assert.deepEqual(delays, [999, 1998, 3996, 7992, 15984, 29970, 29970]);
  r = 0;
  h.fetcher.last().resolve(problem(429, 'too_many_streams', {}, { 'Retry-After': '12' }));
  await h.clock.advance(0);
  assert.deepEqual(h.clock.pending(), [12000], 'a zero jitter still waits Retry-After');
  h.sub.close();
});

test('retry: from the hub is honoured after a clean end, and is the backoff base after a failure', async () => {
  const h = start();
  await h.clock.advance(0);
  const s = new Stream();
  h.fetcher.last().resolve(s.response());
  s.push('retry: 2400\n\n' + sseEvent('1', 'one'));
  await h.clock.advance(0);
  s.end(); // the hub shut down: it sent its hint first
  await h.clock.advance(0);
  assert.deepEqual(h.clock.pending(), [2400]);
  assert.equal(h.events.filter((e) => e.type === 'error').length, 0, 'a clean end is no error');
  await h.clock.advance(2400);
  const again = h.fetcher.last();
  assert.equal(again.url.searchParams.get('lastEventId'), '1');
  again.reject(new TypeError('Failed to fetch'));
  await h.clock.advance(0);
  assert.deepEqual(h.clock.pending(), [1200], 'half of the 2400 ms base with random() = 0.5');
  h.sub.close();
});

test('after a switch down the better transport is retried later, and kept when it works', async () => {
  const h = start({ upgradeInterval: 60000 });
  await h.clock.advance(0);
  h.fetcher.last().resolve(new Stream().response());
  await h.clock.advance(5000);
  const sock = h.ws.all[0];
  sock.open();
  sock.message({ id: '1', topic: 'news', type: 'message', data: 'one' });
  // random() = 0.5: 75% of the interval.
  await h.clock.advance(44999);
  assert.equal(h.fetcher.of('/events').length, 1);
  await h.clock.advance(1);
  assert.deepEqual(h.transports(), ['sse', 'ws', 'sse']);
  assert.equal(sock.closedBy.code, 1000, 'one transport at a time');
  const probe = h.fetcher.last();
  assert.equal(probe.url.searchParams.get('lastEventId'), '1');
  // Still buffered: back to WebSocket, next try after twice the interval.
  probe.resolve(new Stream().response());
  await h.clock.advance(5000);
  assert.deepEqual(h.transports(), ['sse', 'ws', 'sse', 'ws']);
  assert.match(h.events.at(-1).reason, /sse failed again/);
  h.ws.all[1].open();
  await h.clock.advance(89999);
  assert.equal(h.fetcher.of('/events').length, 2);
  await h.clock.advance(1);
  assert.equal(h.fetcher.of('/events').length, 3);
  // This time the path is fixed: the first byte arrives and SSE stays.
  const s = new Stream();
  h.fetcher.last().resolve(s.response());
  s.push('retry: 3000\n\n' + sseEvent('2', 'two'));
  await h.clock.advance(1000);
  assert.deepEqual(h.transports(), ['sse', 'ws', 'sse', 'ws', 'sse']);
  assert.deepEqual(h.messages(), ['1:one', '2:two']);
  for (let i = 0; i < 40; i++) {
    s.push(': keep-alive\n\n');
    await h.clock.advance(15000);
  }
  assert.equal(h.ws.all.length, 2, 'no more upgrades from the best transport');
  assert.equal(h.sub.transport, 'sse');
  h.sub.close();
});

test('one cursor across transports, events deduplicated by ID', async () => {
  const h = start({ lastEventId: '0', transports: ['sse', 'poll'] });
  await h.clock.advance(0);
  const s = new Stream();
  h.fetcher.last().resolve(s.response());
  s.push('retry: 1000\n\n' + sseEvent('1', 'a') + sseEvent('2', 'b'));
  await h.clock.advance(0);
  s.fail();
  await h.clock.advance(0);
  await h.clock.advance(h.clock.pending()[0]);
  h.fetcher.last().resolve(problem(406, 'accept_not_acceptable', { fallback: '/api/poll' }));
  await h.clock.advance(0);
  const poll = h.fetcher.last();
  assert.equal(poll.url.searchParams.get('after'), '2');
  // A replay overlapping what was seen shows only what is new.
  poll.resolve(json({ events: [{ id: '2', topic: 'news', type: 'message', data: 'b' }, { id: '3', topic: 'news', type: 'x', data: 'c' }], next: '3', retry_ms: 0 }));
  await h.clock.advance(0);
  assert.deepEqual(h.messages(), ['1:a', '2:b', '3:c']);
  assert.equal(h.fetcher.last().url.searchParams.get('after'), '3');
  h.sub.close();
});

test('reset from the stream and from a poll is dispatched, not hidden', async () => {
  const h = start({ lastEventId: 'old', transports: ['sse', 'poll'] });
  await h.clock.advance(0);
  const s = new Stream();
  h.fetcher.last().resolve(s.response());
  s.push('event: reset\ndata: {"reason":"truncated","detail":"gone","after":"old"}\n\n' + sseEvent('9', 'nine'));
  await h.clock.advance(0);
  const reset = h.events.find((e) => e.type === 'reset');
  assert.deepEqual([reset.reason, reset.message, reset.transport], ['truncated', 'gone', 'sse']);
  assert.deepEqual(h.messages(), ['9:nine']);
  h.sub.close();

  const p = start({ transports: ['poll'], lastEventId: 'x' });
  await p.clock.advance(0);
  p.fetcher.last().resolve(json({ events: [], next: '40', retry_ms: 1000, reset: { reason: 'unknown_cursor', detail: 'continue from next' } }));
  await p.clock.advance(0);
  assert.equal(p.events.find((e) => e.type === 'reset').reason, 'unknown_cursor');
  assert.equal(p.sub.lastEventId, '40');
  await p.clock.advance(1000);
  assert.equal(p.fetcher.last().url.searchParams.get('after'), '40');
  p.sub.close();
});

test('a first poll without a cursor starts from the head', async () => {
  const h = start({ transports: ['poll'] });
  await h.clock.advance(0);
  const first = h.fetcher.last();
  assert.equal(first.url.searchParams.has('after'), false);
  assert.equal(first.url.searchParams.has('wait'), false);
  first.resolve(json({ events: [], next: '77', retry_ms: 0 }));
  await h.clock.advance(0);
  assert.equal(h.fetcher.last().url.searchParams.get('after'), '77');
  h.sub.close();
});

test('offline pauses, online resumes at once', async () => {
  const h = start({ lastEventId: '0' });
  await h.clock.advance(0);
  const s = new Stream();
  h.fetcher.last().resolve(s.response());
  s.push('retry: 3000\n\n' + sseEvent('1', 'one'));
  await h.clock.advance(0);
  h.win.dispatchEvent(new Event('offline'));
  await h.clock.advance(0);
  assert.equal(s.cancelled || h.fetcher.last().aborted, true);
  assert.equal(h.events.at(-1).error, 'offline');
  await h.clock.advance(10 * 60000);
  assert.equal(h.fetcher.requests.length, 1, 'nothing is tried while offline');
  h.win.dispatchEvent(new Event('online'));
  await h.clock.advance(0);
  assert.equal(h.fetcher.requests.length, 2);
  assert.equal(h.fetcher.last().url.searchParams.get('lastEventId'), '1');
  h.sub.close();
});

test('starting offline waits for online', async () => {
  const h = start({ env: { navigator: { onLine: false } } });
  await h.clock.advance(60000);
  assert.equal(h.fetcher.requests.length, 0);
  h.win.dispatchEvent(new Event('online'));
  await h.clock.advance(0);
  assert.equal(h.fetcher.requests.length, 1);
  h.sub.close();
});

test('WebSocket close codes: shutdown and cut-off reconnect after their hint, token expiry at once', async () => {
  const h = start({ transports: ['ws'] });
  await h.clock.advance(0);
  h.ws.all[0].open();
  h.ws.all[0].drop(4002, 'retry=2222');
  await h.clock.advance(0);
  assert.deepEqual(h.clock.pending(), [2222]);
  assert.equal(h.events.filter((e) => e.type === 'error').length, 0, 'a shutdown is no error');
  await h.clock.advance(2222);
  assert.equal(h.ws.all.length, 2);
  h.ws.all[1].open();
  h.ws.all[1].drop(4001, 'retry=700');
  await h.clock.advance(0);
  assert.deepEqual(h.clock.pending(), [700]);
  await h.clock.advance(700);
  h.ws.all[2].open();
  h.ws.all[2].drop(4000, 'token expired');
  await h.clock.advance(0);
  assert.equal(h.ws.all.length, 4, 'reconnected at once');
  h.ws.all[3].open();
  h.ws.all[3].drop(4003, 'retry=4000');
  await h.clock.advance(0);
  assert.equal(h.events.at(-1).error, 'unavailable');
  assert.deepEqual(h.clock.pending(), [4000], 'history unavailable: at least its hint');
  h.sub.close();
});

test('WebSocket: events, reset and pong messages; pings keep a live socket and a silent one fails', async () => {
  const h = start({ lastEventId: '1', heartbeat: 10000, upgradeInterval: 600000 });
  await h.clock.advance(0);
  h.fetcher.last().resolve(new Stream().response());
  await h.clock.advance(5000);
  const sock = h.ws.all[0];
  sock.autoPong = false;
  sock.open();
  sock.message({ type: 'reset', data: { reason: 'truncated', detail: 'retention', after: '1' } });
  sock.message({ id: '7', topic: 'news', type: 'note', data: 'seven' });
  await h.clock.advance(10000);
  assert.deepEqual(sock.sent, ['{"type":"ping"}']);
  sock.message({ type: 'pong' });
  await h.clock.advance(10000);
  sock.message({ type: 'pong' });
  // The third ping, at 30 s, goes unanswered: 20 s later the socket failed.
  await h.clock.advance(29999);
  assert.equal(sock.sent.length, 4, 'one ping every 10 s');
  assert.equal(h.sub.transport, 'ws');
  await h.clock.advance(1);
  assert.deepEqual(h.transports(), ['sse', 'ws', 'poll']);
  assert.match(h.events.at(-1).reason, /no answer to a ping within 20 s/);
  assert.deepEqual(h.messages(), ['7:seven']);
  assert.deepEqual(h.events.filter((e) => e.type === 'reset').map((e) => [e.reason, e.message]), [['truncated', 'retention']]);
  assert.equal(h.fetcher.last().url.searchParams.get('after'), '7');
  h.sub.close();
});

test('SSE heartbeat events announce the interval and are not messages', async () => {
  const h = start();
  await h.clock.advance(0);
  assert.equal(h.fetcher.last().url.searchParams.get('heartbeat'), 'event');
  const s = new Stream();
  h.fetcher.last().resolve(s.response());
  s.push('retry: 3000\n\nevent: sseguard.heartbeat\ndata: {"interval_ms":4000}\n\n');
  await h.clock.advance(7999);
  assert.equal(h.sub.transport, 'sse');
  await h.clock.advance(1);
  assert.equal(h.sub.transport, 'ws');
  assert.match(h.events.find((e) => e.type === 'transport' && e.transport === 'ws').reason, /no heartbeat within 8 s/);
  assert.deepEqual(h.messages(), []);
  h.sub.close();
});

test('a message that is not JSON closes the WebSocket and reconnects', async () => {
  const h = start({ transports: ['ws'] });
  await h.clock.advance(0);
  h.ws.all[0].open();
  h.ws.all[0].message('<html>');
  await h.clock.advance(0);
  assert.equal(h.ws.all[0].closedBy.code, 1003);
  await h.clock.advance(h.clock.pending()[0]);
  assert.equal(h.ws.all.length, 2);
  h.sub.close();
});

test('close stops everything and dispatches nothing after', async () => {
  const h = start();
  await h.clock.advance(0);
  const s = new Stream();
  h.fetcher.last().resolve(s.response());
  s.push('retry: 1000\n\n');
  await h.clock.advance(0);
  const before = h.events.length;
  h.sub.close();
  await settle();
  assert.equal(s.cancelled || h.fetcher.last().aborted, true);
  assert.equal(h.clock.timers.size, 0);
  assert.equal(h.events.length, before);
  assert.equal(h.sub.readyState, 'closed');
});

test('a 200 that is not an event stream (a proxy page) switches down at once', async () => {
  const h = start();
  await h.clock.advance(0);
  h.fetcher.last().resolve(new Response('<html>sign in to the wifi</html>', { status: 200, headers: { 'Content-Type': 'text/html' } }));
  await h.clock.advance(0);
  assert.deepEqual(h.transports(), ['sse', 'ws']);
  assert.match(h.events.at(-1).reason, /answered text\/html/);
  h.sub.close();
});

test('polling uses the path a problem named as its fallback', async () => {
  const h = start({ transports: ['sse', 'poll'], lastEventId: '4' });
  await h.clock.advance(0);
  h.fetcher.last().resolve(problem(406, 'accept_not_acceptable', { fallback: '/hub/api/poll' }));
  await h.clock.advance(0);
  assert.equal(h.fetcher.last().url.pathname, '/hub/api/poll');
  assert.equal(h.fetcher.last().url.searchParams.get('after'), '4');
  h.sub.close();
});

test('a stream that ends before its first byte counts as failing before open', async () => {
  const h = start();
  await h.clock.advance(0);
  for (let i = 0; i < 2; i++) {
    const s = new Stream();
    h.fetcher.last().resolve(s.response());
    s.end();
    await h.clock.advance(0);
    if (i === 0) {
      assert.deepEqual(h.transports(), ['sse']);
      await h.clock.advance(h.clock.pending()[0]);
    }
  }
  assert.deepEqual(h.transports(), ['sse', 'ws']);
  assert.match(h.events.at(-1).reason, /ended before its first byte/);
  h.sub.close();
});

test('from polling, an upgrade tries SSE, then WebSocket, and keeps the first that works', async () => {
  const h = start({ lastEventId: '1', upgradeInterval: 60000 });
  await h.clock.advance(0);
  h.fetcher.last().resolve(new Stream().response()); // buffered
  await h.clock.advance(5000);
  h.ws.all[0].drop(1006);
  await h.clock.advance(500);
  h.ws.all[1].drop(1006);
  await h.clock.advance(0);
  assert.deepEqual(h.transports(), ['sse', 'ws', 'poll']);
  const answer = () => h.fetcher.last().resolve(json({ events: [], next: '1', retry_ms: 1000 }));
  answer();
  await h.clock.advance(0);
  // The upgrade is due 45 s after the switch (random() = 0.5).
  for (let t = 0; t < 44; t++) {
    await h.clock.advance(1000);
    if (h.fetcher.last().url.pathname === '/api/poll' && !h.fetcher.last().aborted) answer();
  }
  await h.clock.advance(1000);
  assert.deepEqual(h.transports(), ['sse', 'ws', 'poll', 'sse']);
  h.fetcher.last().resolve(new Stream().response()); // still buffered
  await h.clock.advance(5000);
  assert.deepEqual(h.transports(), ['sse', 'ws', 'poll', 'sse', 'ws'], 'then the next better one');
  const sock = h.ws.all[2];
  assert.equal(sock.url.searchParams.get('lastEventId'), '1');
  sock.open();
  await h.clock.advance(0);
  assert.equal(h.sub.transport, 'ws');
  assert.equal(h.fetcher.open().filter((r) => r.url.pathname === '/api/poll').length, 0, 'polling stopped');
  h.sub.close();
});

test('presence: true asks SSE and WebSocket for presence=1, never polling; without it nothing is asked', async () => {
  const h = start({ presence: true, lastEventId: '1', transports: ['sse', 'ws', 'poll'] });
  await h.clock.advance(0);
  assert.equal(h.fetcher.last().url.searchParams.get('presence'), '1');
  h.fetcher.last().resolve(problem(406, 'accept_not_acceptable'));
  await h.clock.advance(0);
  assert.equal(h.ws.all[0].url.searchParams.get('presence'), '1');
  h.ws.all[0].drop(1006);
  await h.clock.advance(500);
  h.ws.all[1].drop(1006);
  await h.clock.advance(0);
  assert.equal(h.sub.transport, 'poll');
  assert.equal(h.fetcher.last().url.pathname, '/api/poll');
  assert.equal(h.fetcher.last().url.searchParams.has('presence'), false, 'a poll is not a connection: no presence');
  h.sub.close();

  const plain = start();
  await plain.clock.advance(0);
  assert.equal(plain.fetcher.last().url.searchParams.has('presence'), false);
  plain.sub.close();
});

test('a 400 problem for a pattern stops the subscription with its code, on SSE and on polling', async () => {
  for (const transports of [['sse', 'ws', 'poll'], ['poll']]) {
    const h = start({ topics: ['orders/**'], transports });
    await h.clock.advance(0);
    h.fetcher.last().resolve(problem(400, 'bad_request'));
    await h.clock.advance(0);
    const errors = h.events.filter((e) => e.type === 'error');
    assert.deepEqual(errors.map((e) => [e.error, e.status, e.fatal, e.message]), [['bad_request', 400, true, 'detail of bad_request']]);
    assert.equal(h.sub.readyState, 'closed');
    assert.deepEqual(h.events.at(-1), { type: 'close', reason: 'bad_request', message: 'detail of bad_request', status: 400, eventType: undefined });
    await h.clock.advance(10 * 60000);
    assert.equal(h.fetcher.requests.length, 1, 'nothing retried');
    assert.equal(h.ws.all.length, 0);
  }
});

test('a 400 that is not the hub\'s problem (a proxy page) is a failure like any other, not a stop', async () => {
  const h = start();
  await h.clock.advance(0);
  h.fetcher.last().resolve(new Response('<html>bad request</html>', { status: 400, headers: { 'Content-Type': 'text/html' } }));
  await h.clock.advance(0);
  const err = h.events.find((e) => e.type === 'error');
  assert.deepEqual([err.error, err.fatal], ['http_400', false]);
  assert.equal(h.sub.readyState, 'connecting');
  await h.clock.advance(h.clock.pending()[0]);
  assert.equal(h.fetcher.requests.length, 2, 'retried');
  h.sub.close();
});

test('join and leave from fakes: over SSE and WebSocket, not messages, the cursor stays', async () => {
  const h = start({ presence: true, topics: ['chat/1'], lastEventId: '1' });
  const presence = [];
  for (const type of ['join', 'leave']) h.sub.addEventListener(type, (e) => presence.push([type, e.topic, e.count, e.sub, e.data, h.sub.lastEventId, e.transport]));
  await h.clock.advance(0);
  const s = new Stream();
  h.fetcher.last().resolve(s.response());
  s.push('retry: 1000\n\n' + sseEvent('2', 'two') + 'event: sseguard.join\ndata: {"topic":"chat/1","count":1,"sub":"carol"}\n\n');
  await h.clock.advance(0);
  assert.deepEqual(presence, [['join', 'chat/1', 1, 'carol', { topic: 'chat/1', count: 1, sub: 'carol' }, '2', 'sse']]);
  assert.deepEqual(h.messages(), ['2:two']);
  h.sub.close();
});
