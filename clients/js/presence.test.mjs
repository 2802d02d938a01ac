// Presence in the client against a scripted hub on loopback
// (contract.test-helper.mjs) that speaks the contract of docs/client.md:
// presence() over real HTTP, and join/leave over a real SSE stream and a
// real WebSocket. The real hub's side is js_test.go's
// TestPresenceAgainstHub.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { presence, ProblemError, subscribe } from './sseguard.js';
import { contractHub, eventually, record } from './contract.test-helper.mjs';

const hasWebSocket = typeof globalThis.WebSocket === 'function';

test('presence(): count, subjects only with the claim, the query and headers it sends', async (t) => {
  const hub = await contractHub({ presence: { 'chat/1': { count: 3, subjects: ['alice', 'bob'] } } });
  t.after(hub.close);
  assert.deepEqual(await presence(hub.url, 'chat/1'), { topic: 'chat/1', count: 3 });
  const req = hub.presenceRequests.at(-1);
  assert.equal(req.url.pathname, '/api/presence');
  assert.deepEqual(req.url.searchParams.getAll('topic'), ['chat/1']);
  assert.equal(req.headers.accept, 'application/json');
  assert.deepEqual(await presence(hub.url, 'chat/1', { tokenParam: 'access_token', token: 'claim' }),
    { topic: 'chat/1', count: 3, subjects: ['alice', 'bob'] });
  assert.deepEqual(await presence(hub.url + '/ignored/path', 'chat/1', { path: '/api/presence' }), { topic: 'chat/1', count: 3 });
});

test('presence(): refusals reject with the problem code; other failures with network, timeout, bad_answer', async (t) => {
  const hub = await contractHub({ presence: { 'chat/1': { count: 1, subjects: [] } } });
  t.after(hub.close);
  const fails = async (topic, options) => {
    try {
      await presence(hub.url, topic, options);
    } catch (err) {
      assert.ok(err instanceof ProblemError, String(err));
      assert.ok(err instanceof Error);
      return [err.error, err.status];
    }
    assert.fail('presence(' + topic + ') resolved');
  };
  assert.deepEqual(await fails('chat/2'), ['presence_off', 404]);
  assert.deepEqual(await fails('chat/*'), ['bad_request', 400]);
  assert.deepEqual(await fails('forbidden/x'), ['topic_forbidden', 403]);
  assert.deepEqual(await fails('html'), ['bad_answer', 200]);
  assert.deepEqual(await fails('odd'), ['bad_answer', 200]);
  assert.deepEqual(await fails('hold', { timeout: 50 }), ['timeout', 0]);
  try {
    await presence(hub.url, 'chat/2');
  } catch (err) {
    assert.equal(err.message, 'presence is off for this topic');
    assert.equal(err.problem.error, 'presence_off');
  }

  // A port nothing listens on.
  const free = http.createServer();
  await new Promise((r) => free.listen(0, '127.0.0.1', r));
  const port = free.address().port;
  await new Promise((r) => free.close(r));
  await assert.rejects(presence('http://127.0.0.1:' + port, 'chat/1'), (err) => err instanceof ProblemError && err.error === 'network' && err.status === 0);

  // The caller's abort is the caller's: it rejects as fetch does.
  const ac = new AbortController();
  const p = presence(hub.url, 'hold', { signal: ac.signal });
  await eventually('the held request', () => hub.held.length >= 2);
  ac.abort();
  await assert.rejects(p, (err) => !(err instanceof ProblemError) && err.name === 'AbortError');
});

test('SSE with presence: join and leave are dispatched with their parsed object and never move the cursor; one with an id is dropped', async (t) => {
  const hub = await contractHub({ presence: { 'chat/1': { count: 0, subjects: [] } } });
  t.after(hub.close);
  const sub = subscribe('chat/1', { url: hub.url, transports: ['sse'], presence: true, lastEventId: '4' });
  t.after(() => sub.close());
  const events = record(sub);
  await eventually('the stream', () => hub.streams.length === 1);
  const s = hub.streams[0];
  assert.equal(s.url.searchParams.get('presence'), '1');
  assert.equal(s.url.searchParams.get('lastEventId'), '4');
  s.write('id: 5\ndata: five\n\n');
  s.write('event: sseguard.join\ndata: {"topic":"chat/1","count":2,"sub":"alice"}\n\n');
  // A join with an id line is not the hub's: neither a join nor history.
  s.write('event: sseguard.join\nid: 99\ndata: {"topic":"chat/1","count":9,"sub":"mallory"}\n\n');
  s.write('event: sseguard.join\ndata: {"topic":"chat/1","count":3}\n\n');
  s.write('event: sseguard.leave\ndata: {"topic":"chat/1","count":2,"sub":"alice"}\n\n');
  s.write('event: sseguard.leave\ndata: not json\n\n');
  s.write('id: 6\ndata: six\n\n');
  await eventually('six', () => events.some((e) => e.type === 'message' && e.data === 'six'));
  const seen = events.filter((e) => ['message', 'join', 'leave'].includes(e.type))
    .map((e) => e.type === 'message' ? ['message', e.id, e.cursor] : [e.type, e.topic, e.count, e.sub, e.cursor, e.transport]);
  assert.deepEqual(seen, [
    ['message', '5', '5'],
    ['join', 'chat/1', 2, 'alice', '5', 'sse'],
    ['join', 'chat/1', 3, undefined, '5', 'sse'],
    ['leave', 'chat/1', 2, 'alice', '5', 'sse'],
    ['message', '6', '6'],
  ]);
  assert.deepEqual(events.find((e) => e.type === 'join').data, { topic: 'chat/1', count: 2, sub: 'alice' });
  // The stream ends: the next one resumes after the last event, not the join.
  s.end();
  await eventually('the second stream', () => hub.streams.length === 2);
  assert.equal(hub.streams[1].url.searchParams.get('lastEventId'), '6');
  assert.equal(hub.streams[1].url.searchParams.get('presence'), '1');
});

test('WebSocket with presence: join and leave messages, never history; one with an id is dropped', { skip: !hasWebSocket && 'no WebSocket in this node (20 needs --experimental-websocket)' }, async (t) => {
  const hub = await contractHub({ presence: { 'chat/1': { count: 0, subjects: [] } } });
  t.after(hub.close);
  const sub = subscribe('chat/1', { url: hub.url, transports: ['ws'], presence: true, lastEventId: '1' });
  t.after(() => sub.close());
  const events = record(sub);
  await eventually('the socket', () => hub.sockets.length === 1 && events.some((e) => e.type === 'open'));
  const sock = hub.sockets[0];
  assert.equal(sock.url.searchParams.get('presence'), '1');
  assert.equal(sock.url.searchParams.get('lastEventId'), '1');
  sock.send({ id: '2', topic: 'chat/1', type: 'message', data: 'two' });
  sock.send({ type: 'sseguard.join', topic: 'chat/1', data: { topic: 'chat/1', count: 1, sub: 'bob' } });
  sock.send({ type: 'sseguard.leave', topic: 'chat/1', id: '77', data: { topic: 'chat/1', count: 9, sub: 'mallory' } });
  sock.send({ type: 'sseguard.leave', topic: 'chat/1', data: { topic: 'chat/1', count: 0, sub: 'bob' } });
  sock.send({ type: 'sseguard.join', topic: 'chat/1', data: '{"topic":"chat/1","count":1}' });
  sock.send({ id: '3', topic: 'chat/1', type: 'message', data: 'three' });
  await eventually('three', () => events.some((e) => e.type === 'message' && e.data === 'three'));
  const seen = events.filter((e) => ['message', 'join', 'leave'].includes(e.type))
    .map((e) => e.type === 'message' ? ['message', e.id, e.cursor] : [e.type, e.topic, e.count, e.sub, e.cursor, e.transport]);
  assert.deepEqual(seen, [
    ['message', '2', '2'],
    ['join', 'chat/1', 1, 'bob', '2', 'ws'],
    ['leave', 'chat/1', 0, 'bob', '2', 'ws'],
    ['join', 'chat/1', 1, undefined, '2', 'ws'],
    ['message', '3', '3'],
  ]);
  sock.close(4002, 'retry=0');
  await eventually('the second socket', () => hub.sockets.length === 2);
  assert.equal(hub.sockets[1].url.searchParams.get('lastEventId'), '3');
});

test('presence=1 refused with 400: the subscription stops with the problem code, no retry', async (t) => {
  const hub = await contractHub({ presence: {} });
  t.after(hub.close);
  const sub = subscribe('chat/9', { url: hub.url, presence: true });
  t.after(() => sub.close());
  const events = record(sub);
  await eventually('closed', () => sub.readyState === 'closed');
  const errors = events.filter((e) => e.type === 'error');
  assert.deepEqual(errors.map((e) => [e.error, e.status, e.fatal, e.transport]), [['bad_request', 400, true, 'sse']]);
  assert.equal(events.at(-1).type, 'close');
  assert.equal(hub.streams.length, 0);
  assert.equal(hub.sockets.length, 0, 'not tried over WebSocket');
});
