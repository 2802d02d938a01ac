// The demo page: subscribes to one topic with the sseguard client
// (/sseguard.js, the same file npm ships) and lists what arrives, history
// first, with the transport in use and why each switch happened. Text is
// only ever set with textContent, never parsed as HTML.
//
// Query parameters: topic (default demo); transports, a comma-separated
// subset of sse,ws,poll to try a fallback by hand.
import { subscribe } from '/sseguard.js';

const params = new URLSearchParams(location.search);
const topic = params.get('topic') || 'demo';
document.getElementById('topic').textContent = topic;
const state = document.getElementById('state');
const why = document.getElementById('why');
const transport = document.getElementById('transport');
const switches = document.getElementById('switches');
const rows = document.getElementById('events');

const setState = (name, detail) => {
  state.textContent = name;
  state.className = 'state ' + name;
  why.textContent = detail || '';
};

const show = (e) => {
  const tr = document.createElement('tr');
  for (const [text, cls] of [[e.id, ''], [e.eventType, 'type'], [e.data, 'data'],
    [new Date().toLocaleTimeString() + ' over ' + e.transport, '']]) {
    const td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
  }
  tr.dataset.id = e.id;
  tr.dataset.transport = e.transport;
  rows.prepend(tr);
  while (rows.children.length > 200) rows.lastChild.remove();
};

const options = { lastEventId: '0' }; // the first connection replays the topic's history
const chosen = (params.get('transports') || '').split(',').filter((t) => ['sse', 'ws', 'poll'].includes(t));
if (chosen.length) options.transports = chosen;
const sub = subscribe(topic, options);

sub.addEventListener('message', show);
sub.addEventListener('open', () => setState('open'));
sub.addEventListener('transport', (e) => {
  transport.textContent = e.transport;
  transport.dataset.transport = e.transport;
  const li = document.createElement('li');
  li.textContent = (e.previous ? e.previous + ' → ' : '') + e.transport + ': ' + e.reason;
  li.dataset.transport = e.transport;
  switches.appendChild(li);
  while (switches.children.length > 20) switches.firstChild.remove();
  if (e.previous && sub.readyState !== 'open') setState('connecting', e.reason);
});
sub.addEventListener('reset', (e) => setState(sub.readyState, 'history reset (' + e.reason + '): ' + e.message));
sub.addEventListener('error', (e) => {
  const reason = e.error + (e.message ? ': ' + e.message : '');
  if (!e.fatal) {
    setState('connecting', reason);
    return;
  }
  if (e.status === 401 && e.error === 'token_missing') {
    setState('closed', reason + ' (anonymous subscribers may not read this topic: ' +
      'the hub lists the topics they may read in auth.anonymous_subscribe)');
    return;
  }
  setState('closed', reason);
});

document.getElementById('publish').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const out = document.getElementById('result');
  const token = document.getElementById('token').value.trim();
  const data = document.getElementById('data').value;
  const type = document.getElementById('type').value.trim();
  const body = { topic: topic, data: data };
  if (type) body.type = type;
  try {
    const res = await fetch('/api/publish', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Authorization': 'Bearer ' + token },
      body: JSON.stringify(body),
    });
    const answer = await res.json();
    out.textContent = res.ok ? 'published id ' + answer.id : answer.error + ': ' + answer.detail;
  } catch (err) {
    out.textContent = String(err);
  }
});
