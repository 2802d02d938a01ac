// Drives sseguard.js from a Go test against a real hub (hub_test.go):
// node drive.test-helper.mjs '<options as JSON>'
//
// It subscribes with the options (the client's own, url included) and
// writes one JSON line per event the subscription dispatches, with the
// cursor as it was then. Each line read on stdin is a command:
// {"cmd":"presence","topic":T,"token":…} answers one line
// {"kind":"presence",…} or {"kind":"presence_error",…}; {"cmd":"close"}
// or the end of stdin closes the subscription and exits.

import { createInterface } from 'node:readline';
import { presence, ProblemError, subscribe } from './sseguard.js';

const options = JSON.parse(process.argv[2]);
const out = (line) => process.stdout.write(JSON.stringify(line) + '\n');

const sub = subscribe(options.topics, options);
for (const kind of ['message', 'open', 'transport', 'reset', 'error', 'close', 'join', 'leave']) {
  sub.addEventListener(kind, (e) => out({ kind, ...e.detail, eventType: e.eventType, cursor: sub.lastEventId }));
}

const done = () => {
  sub.close();
  out({ kind: 'exit' });
  process.exit(0);
};

const rl = createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  const c = JSON.parse(line);
  if (c.cmd === 'close') done();
  if (c.cmd === 'presence') {
    try {
      const p = await presence(options.url, c.topic, { tokenParam: options.tokenParam, token: c.token });
      out({ kind: 'presence', ...p });
    } catch (err) {
      out({ kind: 'presence_error', error: err instanceof ProblemError ? err.error : String(err), status: err.status || 0 });
    }
  }
});
rl.on('close', done);
