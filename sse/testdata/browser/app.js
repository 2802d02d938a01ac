'use strict';
// Records every event the browser's own EventSource dispatches, so the Go
// test can compare it with what the Go parser sees in the same bytes.
window.__got = [];
window.__violations = [];
window.__errors = 0;
document.addEventListener('securitypolicyviolation', (e) => {
  window.__violations.push(e.violatedDirective + ' ' + e.blockedURI);
});
const es = new EventSource('/events');
const record = (e) => {
  window.__got.push({ type: e.type, data: e.data, id: e.lastEventId });
  document.getElementById('status').textContent = window.__got.length + ' events';
};
for (const type of ['message', 'tricky', 'admin']) {
  es.addEventListener(type, record);
}
es.addEventListener('error', () => { window.__errors++; });
