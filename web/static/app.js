// The demo page: subscribes to one topic with the sseguard client
// (/sseguard.js, the same file npm ships) and lists what arrives, history
// first, with the transport in use and why each switch happened. Text is
// only ever set with textContent, never parsed as HTML.
//
// Query parameters: topic (default demo); transports, a comma-separated
// subset of sse,ws,poll to try a fallback by hand.
//
// Presence: when the hub tracks the topic (presence.topics), the page shows
// how many streams and sockets are on it and, for a token with the presence
// claim, who; join and leave events keep it live, and it is read again on
// every (re)connection and every 30 s, since joins and leaves are not
// replayed and polling gets none.
import { presence, subscribe } from '/sseguard.js';

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

// The presence line, under the topic line: built here so that the page's
// HTML stays as it is for hubs without presence.
const presenceBox = document.createElement('p');
presenceBox.id = 'presence';
presenceBox.className = 'presence';
const presenceText = document.createElement('span');
presenceText.id = 'presence-text';
const subjectsList = document.createElement('ul');
subjectsList.id = 'presence-subjects';
subjectsList.setAttribute('aria-label', 'subjects connected');
const lastChange = document.createElement('span');
lastChange.id = 'presence-change';
presenceBox.append(presenceText, ' ', lastChange, subjectsList);
document.getElementById('switches').before(presenceBox);

const seen = { count: 0, subjects: null }; // subjects: a Set when the hub lists them
let changes = 0; // join and leave events so far
const drawPresence = () => {
  presenceBox.dataset.state = 'on';
  presenceBox.dataset.count = String(seen.count);
  presenceText.textContent = 'presence: ' + seen.count + (seen.count === 1 ? ' connection' : ' connections');
  subjectsList.replaceChildren();
  if (!seen.subjects) return;
  for (const name of [...seen.subjects].sort()) {
    const li = document.createElement('li');
    li.textContent = name;
    subjectsList.appendChild(li);
  }
};
const presenceOff = (state, text) => {
  presenceBox.dataset.state = state;
  delete presenceBox.dataset.count;
  presenceText.textContent = text;
  subjectsList.replaceChildren();
};

// readPresence asks the hub and redraws; it reports whether presence is
// on for the topic.
const readPresence = async () => {
  if (topic.endsWith('*')) {
    presenceOff('off', 'presence: per topic name, not for a pattern');
    return false;
  }
  try {
    const at = changes;
    const p = await presence('', topic);
    // A join or leave that came meanwhile may be newer than this answer.
    if (changes !== at) return true;
    seen.count = p.count;
    seen.subjects = p.subjects ? new Set(p.subjects) : null;
    drawPresence();
    return true;
  } catch (err) {
    if (err.error === 'presence_off') presenceOff('off', 'presence: off for this topic (presence.topics)');
    else if (err.status === 404) presenceOff('off', 'presence: not served by this hub');
    else presenceOff('error', 'presence: ' + err.error + (err.message ? ' (' + err.message + ')' : ''));
    return false;
  }
};

const presenceOn = await readPresence();

const options = { lastEventId: '0' }; // the first connection replays the topic's history
if (presenceOn) options.presence = true; // asked only where tracked: the hub refuses it elsewhere
const chosen = (params.get('transports') || '').split(',').filter((t) => ['sse', 'ws', 'poll'].includes(t));
if (chosen.length) options.transports = chosen;
const sub = subscribe(topic, options);

sub.addEventListener('message', show);
let opens = 0;
sub.addEventListener('open', () => {
  setState('open');
  // Joins and leaves are not replayed: read again after a reconnection.
  if (presenceOn && opens++ > 0) readPresence();
});
if (presenceOn) {
  const change = (e) => {
    changes++;
    seen.count = e.count;
    if (seen.subjects && e.sub) {
      if (e.type === 'join') seen.subjects.add(e.sub);
      else seen.subjects.delete(e.sub);
    }
    lastChange.textContent = (e.sub || 'someone') + (e.type === 'join' ? ' joined' : ' left') + ' at ' + new Date().toLocaleTimeString();
    drawPresence();
  };
  sub.addEventListener('join', change);
  sub.addEventListener('leave', change);
  setInterval(readPresence, 30000);
}
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
