'use strict';
// The demo page: subscribes to one topic and lists what arrives, history
// first. It reads the stream with fetch rather than EventSource, because
// EventSource delivers an event with a `type` only to a listener for that
// type (the page cannot know them all), and hides why a stream was refused.
// Text is only ever set with textContent, never parsed as HTML.
(function () {
  const params = new URLSearchParams(location.search);
  const topic = params.get('topic') || 'demo';
  document.getElementById('topic').textContent = topic;
  const state = document.getElementById('state');
  const why = document.getElementById('why');
  const rows = document.getElementById('events');

  const setState = (name, detail) => {
    state.textContent = name;
    state.className = 'state ' + name;
    why.textContent = detail || '';
  };

  const show = (e) => {
    const tr = document.createElement('tr');
    for (const [text, cls] of [[e.id, ''], [e.type, 'type'], [e.data, 'data'],
      [new Date().toLocaleTimeString(), '']]) {
      const td = document.createElement('td');
      td.textContent = text;
      if (cls) td.className = cls;
      tr.appendChild(td);
    }
    tr.dataset.id = e.id;
    rows.prepend(tr);
    while (rows.children.length > 200) rows.lastChild.remove();
  };

  // The WHATWG event-stream parser, fed text as it arrives: `data` lines
  // joined with "\n", `event` names the type (default "message"), `id`
  // sets the cursor, `retry` the reconnection delay, comments ignored.
  let lastId = '0'; // the first connection replays the topic's history
  let retryMS = 3000;
  const parser = () => {
    let buf = '', data = [], type = '', sawCR = false;
    return (chunk) => {
      buf += chunk;
      for (;;) {
        const m = /\r\n|\r|\n/.exec(buf);
        if (!m) return;
        let line = buf.slice(0, m.index);
        buf = buf.slice(m.index + m[0].length);
        // A CR at a chunk's end and its LF at the next one's start are one
        // line end, not two.
        if (sawCR && m.index === 0 && m[0] === '\n') { sawCR = false; continue; }
        sawCR = m[0] === '\r' && buf === '';
        if (line === '') {
          if (data.length) show({ id: lastId, type: type || 'message', data: data.join('\n') });
          data = []; type = '';
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'data') data.push(value);
        else if (field === 'event') type = value;
        else if (field === 'id' && !value.includes('\0')) lastId = value;
        else if (field === 'retry' && /^\d+$/.test(value)) retryMS = Number(value);
      }
    };
  };

  // A refusal that retrying cannot fix stops the page with the hub's
  // reason; others (429, 503, a dropped connection) are retried.
  const connect = async () => {
    for (;;) {
      let wait = retryMS;
      try {
        const res = await fetch('/events?topic=' + encodeURIComponent(topic), {
          headers: { 'Accept': 'text/event-stream', 'Last-Event-ID': lastId },
          credentials: 'same-origin', cache: 'no-store',
        });
        if (!res.ok) {
          let p = {};
          try { p = await res.json(); } catch (err) { /* not a problem body */ }
          const reason = (p.error || res.status) + ': ' + (p.detail || res.statusText);
          if (res.status === 401 && p.error === 'token_missing') {
            setState('closed', reason + ' (anonymous subscribers may not read this topic: ' +
              'the hub lists the topics they may read in auth.anonymous_subscribe)');
            return;
          }
          if (res.status !== 429 && res.status !== 503) {
            setState('closed', reason);
            return;
          }
          const after = Number(res.headers.get('Retry-After'));
          if (after > 0) wait = after * 1000;
          setState('connecting', reason);
        } else {
          setState('open');
          const feed = parser();
          const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            feed(value);
          }
          setState('connecting', 'the stream ended; reconnecting');
        }
      } catch (err) {
        setState('connecting', String(err));
      }
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  };
  connect();

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
})();
