// An SSE backend that reads paths as many real ones do: the WHATWG URL
// parser resolves dot segments (%2e included) and backslashes, and routes
// match case-insensitively, as Express does by default. It serves a
// "secret" stream on /events and "public" elsewhere, and prints the
// listening port, then each request's URL as sent, one JSON string a line.
'use strict';
const http = require('http');

const server = http.createServer((req, res) => {
  process.stdout.write(JSON.stringify(req.url) + '\n');
  const path = new URL(req.url, 'http://x').pathname.toLowerCase();
  if (path === '/events' || path.startsWith('/events/')) {
    res.writeHead(200, { 'Content-Type': 'text/event-stream' });
    res.end('data: secret\n\n');
    return;
  }
  res.writeHead(200, { 'Content-Type': 'text/plain' });
  res.end('public');
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(String(server.address().port) + '\n');
});

// The test closes stdin when it is done; the process then exits.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
