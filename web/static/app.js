'use strict';
// The demo page: subscribes to one topic with EventSource and lists what
// arrives. Text is only ever set with textContent, never parsed as HTML.
(function () {
  const params = new URLSearchParams(location.search);
  const topic = params.get('topic') || 'demo';
  document.getElementById('topic').textContent = topic;
  const state = document.getElementById('state');
  const rows = document.getElementById('events');

  const setState = (name) => {
    state.textContent = name;
    state.className = 'state ' + name;
  };

  const show = (e) => {
    const tr = document.createElement('tr');
    for (const [text, cls] of [[e.lastEventId, ''], [e.type, ''], [e.data, 'data'],
      [new Date().toLocaleTimeString(), '']]) {
      const td = document.createElement('td');
      td.textContent = text;
      if (cls) td.className = cls;
      tr.appendChild(td);
    }
    tr.dataset.id = e.lastEventId;
    rows.prepend(tr);
    while (rows.children.length > 200) rows.lastChild.remove();
  };

  const es = new EventSource('/events?topic=' + encodeURIComponent(topic));
  es.addEventListener('open', () => setState('open'));
  es.addEventListener('error', () => setState(es.readyState === EventSource.CLOSED ? 'closed' : 'connecting'));
  es.addEventListener('message', show);
  es.addEventListener('reset', show);

  document.getElementById('publish').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const out = document.getElementById('result');
    const token = document.getElementById('token').value.trim();
    const data = document.getElementById('data').value;
    try {
      const res = await fetch('/api/publish', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'Authorization': 'Bearer ' + token },
        body: JSON.stringify({ topic: topic, data: data }),
      });
      const body = await res.json();
      out.textContent = res.ok ? 'published id ' + body.id : body.error + ': ' + body.detail;
    } catch (err) {
      out.textContent = String(err);
    }
  });
})();
