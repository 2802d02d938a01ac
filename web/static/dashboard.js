'use strict';
// The live dashboard. One EventSource on /dashboard/stream brings a "stats"
// event a second; the page keeps the last two minutes and redraws four SVG
// charts and the log table from them.
//
// The page CSP forbids inline script and inline style, so the SVG is built
// with DOM calls, colours come from classes in dashboard.css (never a style
// attribute), and text is only ever set with textContent.
(function () {
  const WINDOW_MS = 120 * 1000;
  const GAP_MS = 2500; // a longer pause between samples breaks the line
  const LOG_ROWS = 50;
  const RETRY_MS = 10 * 1000; // after the server closed the stream for good
  const SVGNS = 'http://www.w3.org/2000/svg';
  // The charts draw in a fixed coordinate space that CSS scales to fit.
  const W = 600, H = 200;
  const M = { left: 46, right: 12, top: 12, bottom: 24 };
  const X0 = M.left, X1 = W - M.right, Y0 = H - M.bottom, Y1 = M.top;

  const $ = (id) => document.getElementById(id);
  const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

  // svg creates an SVG element with attributes (never "style").
  const svg = (name, attrs, parent) => {
    const e = document.createElementNS(SVGNS, name);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (parent) parent.appendChild(e);
    return e;
  };

  // short writes a number with at most three significant digits; fmt adds
  // a k, M or G suffix: 0.25, 12.5, 480, 1.2k, 3.4M.
  const short = (v) => {
    const s = v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
    return s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s;
  };
  const fmt = (v) => {
    const a = Math.abs(v);
    if (a >= 1e9) return short(v / 1e9) + 'G';
    if (a >= 1e6) return short(v / 1e6) + 'M';
    if (a >= 1e3) return short(v / 1e3) + 'k';
    return short(v);
  };
  const fmtBytes = (v) => {
    if (v >= 1e9) return short(v / 1e9) + ' GB/s';
    if (v >= 1e6) return short(v / 1e6) + ' MB/s';
    if (v >= 1e3) return short(v / 1e3) + ' kB/s';
    return short(v) + ' B/s';
  };
  const clock = (ms) => new Date(ms).toLocaleTimeString();

  // niceMax rounds a maximum up to 1, 2, 2.5 or 5 times a power of ten.
  const niceMax = (v, integer) => {
    if (!(v > 0)) return 1;
    const mag = Math.pow(10, Math.floor(Math.log10(v)));
    for (const step of [1, 2, 2.5, 5, 10]) {
      const m = step * mag;
      if (m >= v && (!integer || Number.isInteger(m))) return m;
    }
    return 10 * mag;
  };

  // Refusal codes keep the colour they were first drawn with.
  const codeColour = new Map();
  const colourOf = (code) => {
    if (!codeColour.has(code)) codeColour.set(code, 'r' + (codeColour.size % 6));
    return codeColour.get(code);
  };

  // The charts. A series reads one value from a stats object.
  const charts = {
    streams: {
      integer: true,
      series: () => [
        { name: 'sse', cls: 'c0', value: (s) => num(s.open_streams && s.open_streams.sse) },
        { name: 'poll', cls: 'c1', value: (s) => num(s.open_streams && s.open_streams.poll) },
      ],
    },
    events: {
      unit: '/s',
      series: () => [
        { name: 'published', cls: 'c0', value: (s) => num(s.events_per_second) },
        { name: 'delivered', cls: 'c2', fill: true, value: (s) => num(s.delivered_per_second) },
      ],
      extra: (s) => fmtBytes(num(s.delivered_bytes_per_second)) + ' delivered',
    },
    refusals: {
      unit: '/s',
      stacked: true,
      bandLabel: true,
      series: (window) => {
        const codes = new Set();
        for (const p of window) {
          for (const [code, v] of Object.entries(p.s.refusals_per_second || {})) {
            if (num(v) > 0) codes.add(code);
          }
        }
        // Colour order is first-seen order, so the stack does not reshuffle.
        for (const code of codes) colourOf(code);
        return [...codeColour.keys()].filter((c) => codes.has(c)).map((code) => ({
          name: code, cls: codeColour.get(code),
          value: (s) => num((s.refusals_per_second || {})[code]),
        }));
      },
      empty: 'no refusals',
    },
    latency: {
      unit: ' ms',
      series: () => [
        { name: 'p99', cls: 'c3', value: (s) => num(s.p99_delivery_ms) },
      ],
    },
  };

  // scaffold draws what does not change: frame, grid and the time axis.
  const scaffold = (id, chart) => {
    const root = $('chart-' + id);
    root.setAttribute('viewBox', `0 0 ${W} ${H}`);
    svg('title', {}, root).textContent = root.getAttribute('aria-label');
    chart.root = root;
    chart.bandLayer = svg('g', { class: 'bands' }, root);
    const grid = svg('g', { class: 'grid' }, root);
    chart.yLabels = [];
    for (const f of [0, 0.5, 1]) {
      const y = Y0 - f * (Y0 - Y1);
      svg('line', { x1: X0, x2: X1, y1: y, y2: y, class: f === 0 ? 'axis' : 'rule' }, grid);
      chart.yLabels.push(svg('text', { x: X0 - 6, y: y, 'text-anchor': 'end', 'dominant-baseline': 'middle', class: 'tick' }, grid));
    }
    for (const [f, label, anchor] of [[0, '−2 min', 'start'], [0.5, '−1 min', 'middle'], [1, 'now', 'end']]) {
      const x = X0 + f * (X1 - X0);
      svg('line', { x1: x, x2: x, y1: Y0, y2: Y0 + 4, class: 'axis' }, grid);
      svg('text', { x: x, y: H - 4, 'text-anchor': anchor, class: 'tick' }, grid).textContent = label;
    }
    chart.plot = svg('g', { class: 'plot' }, root);
    svg('text', { x: (X0 + X1) / 2, y: (Y0 + Y1) / 2, 'text-anchor': 'middle', class: 'waiting' }, chart.plot)
      .textContent = 'waiting for data';
    chart.legend = $('legend-' + id);
  };

  // runs splits samples where the stream paused, so lines do not bridge gaps.
  const runs = (points) => {
    const out = [];
    let cur = [];
    for (const p of points) {
      if (cur.length && p.t - cur[cur.length - 1].t > GAP_MS) {
        out.push(cur);
        cur = [];
      }
      cur.push(p);
    }
    if (cur.length) out.push(cur);
    return out;
  };

  const legendItem = (ul, cls, name, value) => {
    const li = document.createElement('li');
    if (cls) {
      const sw = document.createElement('span');
      sw.className = 'sw ' + cls;
      li.appendChild(sw);
    }
    const n = document.createElement('span');
    n.textContent = name;
    li.appendChild(n);
    if (value !== undefined) {
      const b = document.createElement('b');
      b.textContent = value;
      li.appendChild(b);
    }
    ul.appendChild(li);
    return li;
  };

  const draw = (chart, points) => {
    const last = points[points.length - 1];
    const now = last.t;
    const series = chart.series(points);
    const x = (t) => X0 + (X1 - X0) * (1 - (now - t) / WINDOW_MS);

    // Values, stacked when the chart stacks.
    const vals = points.map((p) => {
      let acc = 0;
      return series.map((se) => {
        const v = se.value(p.s);
        acc = chart.stacked ? acc + v : v;
        return acc;
      });
    });
    let max = 0;
    for (const row of vals) for (const v of row) max = Math.max(max, v);
    max = niceMax(max, chart.integer);
    const y = (v) => Y0 - (Y0 - Y1) * (v / max);
    chart.yLabels.forEach((t, i) => {
      const v = [0, max / 2, max][i];
      t.textContent = chart.integer && !Number.isInteger(v) ? '' : fmt(v);
    });

    const plot = chart.plot;
    plot.replaceChildren();
    const index = new Map(points.map((p, i) => [p, i]));
    // Lines are drawn last first, so the first series of the legend is on
    // top where two are equal (published and delivered, to one subscriber).
    const order = series.map((se, k) => k);
    if (!chart.stacked) order.reverse();
    for (const run of runs(points)) {
      order.forEach((k) => {
        const se = series[k];
        if (chart.stacked) {
          // Step areas: a sample is the rate over the second before it.
          const top = [], bottom = [];
          run.forEach((p, j) => {
            const x0 = x(j > 0 ? run[j - 1].t : Math.max(p.t - 1000, now - WINDOW_MS));
            const x1 = x(p.t);
            const row = vals[index.get(p)];
            const hi = y(row[k]), lo = y(k > 0 ? row[k - 1] : 0);
            top.push(`${x0.toFixed(1)},${hi.toFixed(1)}`, `${x1.toFixed(1)},${hi.toFixed(1)}`);
            bottom.push(`${x0.toFixed(1)},${lo.toFixed(1)}`, `${x1.toFixed(1)},${lo.toFixed(1)}`);
          });
          svg('path', { class: 'area ' + se.cls, d: 'M' + top.join('L') + 'L' + bottom.reverse().join('L') + 'Z' }, plot);
          svg('path', { class: 'edge ' + se.cls, d: 'M' + top.join('L') }, plot);
        } else {
          const pts = run.map((p) => `${x(p.t).toFixed(1)},${y(vals[index.get(p)][k]).toFixed(1)}`);
          if (se.fill) {
            const base = `L${x(run[run.length - 1].t).toFixed(1)},${Y0}L${x(run[0].t).toFixed(1)},${Y0}Z`;
            svg('path', { class: 'fill ' + se.cls, d: 'M' + pts.join('L') + base }, plot);
          }
          svg('path', { class: 'line ' + se.cls, d: 'M' + pts.join('L') }, plot);
        }
      });
    }
    if (!chart.stacked) {
      // A dot on the newest value, so a single sample shows too.
      order.forEach((k) => {
        const se = series[k];
        svg('circle', { class: 'dot ' + se.cls, cx: x(now).toFixed(1), cy: y(vals[vals.length - 1][k]).toFixed(1), r: 3 }, plot);
      });
    }

    // Every chart shades refusal spikes, so that what else changed then is
    // plain to see; each sample with an active spike shades the second
    // before it.
    const bands = chart.bandLayer;
    bands.replaceChildren();
    let from = null, to = null;
    const flush = () => {
      if (from === null) return;
      const w = x(to) - x(from);
      svg('rect', { class: 'band', x: x(from).toFixed(1), y: Y1, width: Math.max(w, 2).toFixed(1), height: Y0 - Y1 }, bands);
      if (chart.bandLabel && w > 30) svg('text', { class: 'band-label', x: (x(from) + 4).toFixed(1), y: Y1 + 12 }, bands).textContent = 'spike';
      from = to = null;
    };
    for (const p of points) {
      if (p.s.spike && p.s.spike.active) {
        const start = Math.max(p.t - 1000, now - WINDOW_MS);
        if (from !== null && start - to > GAP_MS) flush();
        if (from === null) from = start;
        to = p.t;
      } else {
        flush();
      }
    }
    flush();

    chart.legend.replaceChildren();
    series.forEach((se) => legendItem(chart.legend, se.cls, se.name, fmt(se.value(last.s)) + (chart.unit || '')));
    if (!series.length && chart.empty) legendItem(chart.legend, '', chart.empty).className = 'none';
    if (chart.extra) legendItem(chart.legend, '', chart.extra(last.s)).className = 'extra';

    chart.root.setAttribute('data-points', String(points.length));
  };

  // samples are {t: ms since the epoch, s: stats}, oldest first.
  const samples = [];

  const showSpike = (s) => {
    const badge = $('spike');
    const sp = s.spike || {};
    if (!sp.active) {
      badge.className = 'spike';
      badge.textContent = 'no refusal spike';
      badge.removeAttribute('title');
      return;
    }
    const statuses = (sp.statuses || []).join('/');
    const codes = (sp.top_codes || []).join(', ');
    let text = ['refusal spike:', statuses, codes].filter(Boolean).join(' ');
    const since = Date.parse(sp.since);
    if (!Number.isNaN(since)) text += ' · since ' + clock(since);
    badge.className = 'spike on';
    badge.textContent = text;
    badge.title = 'the refusal rate is above its baseline; see the log below';
  };

  // The last hour, from the "history" event: pinned spikes, the top
  // refused routes and origins, and a row per minute.
  const clearTo = (el, text, tag) => {
    el.replaceChildren();
    const e = document.createElement(tag);
    e.className = 'empty';
    if (tag === 'tr') {
      const td = document.createElement('td');
      td.colSpan = 4;
      td.textContent = text;
      e.appendChild(td);
    } else {
      e.textContent = text;
    }
    el.appendChild(e);
  };
  const showHour = (h) => {
    const spikes = $('spikes');
    if (!Array.isArray(h.spikes) || !h.spikes.length) {
      clearTo(spikes, 'no refusal spike in the last hour', 'li');
    } else {
      spikes.replaceChildren();
      for (const sp of h.spikes) {
        const li = document.createElement('li');
        li.className = 'spike-row';
        const since = Date.parse(sp.since), until = Date.parse(sp.until);
        li.dataset.since = String(sp.since);
        li.textContent = 'refusal spike ' + (Number.isNaN(since) ? '' : clock(since)) + '–' +
          (Number.isNaN(until) ? 'now' : clock(until)) + ': ' +
          [(sp.statuses || []).join('/'), (sp.top_codes || []).join(', '), (sp.top_routes || []).join(', ')].filter(Boolean).join(' · ') +
          ' · ' + fmt(num(sp.rate_per_minute)) + '/min (baseline ' + fmt(num(sp.baseline_per_minute)) + ')';
        spikes.appendChild(li);
      }
    }
    for (const [id, list] of [['top-routes', h.top_refused_routes], ['top-origins', h.top_refused_origins]]) {
      const ol = $(id);
      if (!Array.isArray(list) || !list.length) {
        clearTo(ol, 'none', 'li');
        continue;
      }
      ol.replaceChildren();
      for (const c of list) {
        const li = document.createElement('li');
        li.dataset.name = String(c.name);
        li.dataset.count = String(num(c.count));
        li.textContent = String(c.name) + ' ×' + num(c.count);
        ol.appendChild(li);
      }
    }
    const tbody = $('minutes');
    const minutes = Array.isArray(h.minutes) ? h.minutes.slice().reverse() : [];
    if (!minutes.length) {
      clearTo(tbody, 'no history yet', 'tr');
      return;
    }
    tbody.replaceChildren();
    for (const m of minutes) {
      const tr = document.createElement('tr');
      tr.dataset.minute = String(m.time);
      if (m.spike) tr.className = 'spike-minute';
      const t = Date.parse(m.time);
      const refusals = Object.entries(m.refusals || {}).sort(([, a], [, b]) => b - a)
        .map(([code, n]) => code + ' ' + fmt(num(n))).join(' · ');
      for (const text of [(Number.isNaN(t) ? '' : clock(t)) + (m.spike ? ' spike' : ''),
        fmt(num(m.open_streams)), fmt(num(m.events)), refusals || '–']) {
        const td = document.createElement('td');
        td.textContent = text;
        tr.appendChild(td);
      }
      tr.lastChild.className = 'refusals';
      tbody.appendChild(tr);
    }
  };

  const onHistory = (e) => {
    let h;
    try {
      h = JSON.parse(e.data);
    } catch (err) {
      console.warn('dashboard: history event is not JSON:', String(err));
      return;
    }
    if (!h || typeof h !== 'object') return;
    // The charts start from the recorded seconds, not empty.
    const secs = (Array.isArray(h.seconds) ? h.seconds : [])
      .map((s) => ({ t: Date.parse(s && s.time), s: s }))
      .filter((p) => !Number.isNaN(p.t));
    if (secs.length) {
      const end = secs[secs.length - 1].t;
      samples.length = 0;
      for (const p of secs) if (p.t > end - WINDOW_MS) samples.push(p);
      for (const chart of Object.values(charts)) draw(chart, samples);
    }
    showHour(h);
  };

  const logTable = $('log');
  // Refusal rows of one code, route and minute are one row with a count.
  const rowOf = new Map();
  // What an operator reads first leads; the rest keep the server's order.
  const FIRST = ['status', 'code', 'route', 'header', 'kind'];
  const rank = (k) => (FIRST.includes(k) ? FIRST.indexOf(k) : FIRST.length);
  // addLog shows one stats event's lines, newest first. Identical lines of
  // the same second (a burst of refusals) become one row with a count, and
  // when the table is full, INFO rows go before warnings and errors.
  const addLog = (lines) => {
    const groups = new Map();
    for (const line of lines || []) {
      if (!line || typeof line !== 'object') continue;
      const level = String(line.level || 'INFO').toUpperCase();
      const details = Object.entries(line)
        .filter(([k]) => k !== 'time' && k !== 'level' && k !== 'msg')
        .sort(([a], [b]) => rank(a) - rank(b))
        .map(([k, v]) => k + '=' + (typeof v === 'object' ? JSON.stringify(v) : String(v)))
        .join('  ');
      const msg = String(line.msg || '');
      // INFO lines (refusals) group by minute, warnings stay one a row.
      const minute = level === 'INFO' ? String(line.time || '').slice(0, 16) : String(line.time || '');
      const key = JSON.stringify([level, msg, details, minute]);
      const g = groups.get(key);
      if (g) {
        g.count++;
        g.time = line.time;
      } else {
        groups.set(key, { level: level, msg: msg, details: details, time: line.time, count: 1 });
      }
    }
    for (const [key, g] of groups) {
      const old = rowOf.get(key);
      if (old && old.isConnected) {
        const count = Number(old.dataset.count) + g.count;
        old.dataset.count = String(count);
        let n = old.querySelector('span.count');
        if (!n) {
          n = document.createElement('span');
          n.className = 'count';
          old.querySelector('td.msg').append(' ', n);
        }
        n.textContent = '×' + count;
        const t = Date.parse(g.time);
        if (!Number.isNaN(t)) old.querySelector('td.time').textContent = clock(t);
        logTable.prepend(old);
        continue;
      }
      const empty = logTable.querySelector('tr.empty');
      if (empty) empty.remove();
      const tr = document.createElement('tr');
      tr.dataset.level = g.level.toLowerCase();
      tr.dataset.count = String(g.count);
      const t = Date.parse(g.time);
      for (const [text, cls] of [[Number.isNaN(t) ? String(g.time || '') : clock(t), 'time'],
        [g.level, 'level'], [g.msg, 'msg'], [g.details, 'details']]) {
        const td = document.createElement('td');
        td.textContent = text;
        td.className = cls;
        tr.appendChild(td);
      }
      if (g.count > 1) {
        const n = document.createElement('span');
        n.className = 'count';
        n.textContent = '×' + g.count;
        tr.querySelector('td.msg').append(' ', n);
      }
      logTable.prepend(tr);
      rowOf.set(key, tr);
    }
    for (const [key, tr] of rowOf) if (!tr.isConnected) rowOf.delete(key);
    while (logTable.children.length > LOG_ROWS) {
      const rows = [...logTable.children];
      const info = rows.reverse().find((tr) => tr.dataset.level !== 'warn' && tr.dataset.level !== 'error');
      (info || logTable.lastChild).remove();
    }
  };

  // The store's state: driver, reachable, and for a shared store
  // (Redis) whether this node follows every node's events.
  const showStore = (st) => {
    if (!st || typeof st !== 'object') return;
    let text = 'store: ' + String(st.driver || '?') + (st.reachable ? ', reachable' : ', UNREACHABLE');
    if (st.shared) text += st.following ? ', following' : ', NOT following';
    const el = $('store');
    el.textContent = text;
    el.classList.toggle('down', !st.reachable || (st.shared && !st.following));
  };

  const onStats = (e) => {
    let s;
    try {
      s = JSON.parse(e.data);
    } catch (err) {
      console.warn('dashboard: stats event is not JSON:', String(err));
      return;
    }
    if (!s || typeof s !== 'object') return;
    let t = Date.parse(s.time);
    if (Number.isNaN(t)) t = Date.now();
    // A clock that stepped back (or another replica) starts a new timeline.
    while (samples.length && samples[samples.length - 1].t >= t) samples.pop();
    samples.push({ t: t, s: s });
    while (samples.length && samples[0].t <= t - WINDOW_MS) samples.shift();

    for (const chart of Object.values(charts)) draw(chart, samples);
    showSpike(s);
    showStore(s.store);
    addLog(s.log);
    $('updated').textContent = clock(t);
  };

  const state = $('state');
  const signin = $('signin');
  const setState = (name) => {
    state.textContent = name;
    state.className = 'state ' + name;
  };

  for (const [id, chart] of Object.entries(charts)) scaffold(id, chart);

  // EventSource reconnects by itself after a network error. It gives up
  // for good when the server answers with an error or a redirect to the
  // login page (the session expired): then offer to sign in, and retry.
  const connect = () => {
    setState('connecting');
    const es = new EventSource('/dashboard/stream');
    es.addEventListener('open', () => {
      setState('open');
      signin.hidden = true;
    });
    es.addEventListener('error', () => {
      if (es.readyState !== EventSource.CLOSED) {
        setState('connecting');
        return;
      }
      setState('closed');
      signin.hidden = false;
      setTimeout(connect, RETRY_MS);
    });
    es.addEventListener('stats', onStats);
    es.addEventListener('history', onHistory);
  };
  connect();
})();
