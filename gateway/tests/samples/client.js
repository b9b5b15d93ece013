// A WebSocket client for the tests, on `ws` (the library under wscat, the client of the
// Developer Guide's walkthroughs): it sends header names as written (`HeaderAuth1`), as wscat
// does. Driven by lines of JSON:
//
//   node client.js URL '{"HeaderAuth1": "headerValue1"}'
//   stdin:  {"send": "text"} | {"close": 1000}
//   stdout: {"open": true} | {"message": "text"} | {"refused": 401, "body": "..."}
//           | {"close": 1000, "reason": ""} | {"error": "..."}
//
// The process exits once the connection is closed or refused.

'use strict';

const readline = require('readline');
const WebSocket = require('ws');

const url = process.argv[2];
const headers = JSON.parse(process.argv[3] || '{}');

const say = (line) => process.stdout.write(JSON.stringify(line) + '\n');

const ws = new WebSocket(url, { headers });

ws.on('open', () => say({ open: true }));
ws.on('message', (data, isBinary) => {
  say(isBinary ? { binary: data.toString('base64') } : { message: data.toString('utf8') });
});
ws.on('unexpected-response', (request, response) => {
  const chunks = [];
  response.on('data', (chunk) => chunks.push(chunk));
  response.on('end', () => {
    say({ refused: response.statusCode, body: Buffer.concat(chunks).toString('utf8') });
    process.exit(0);
  });
});
ws.on('close', (code, reason) => {
  say({ close: code, reason: reason.toString('utf8') });
  process.exit(0);
});
ws.on('error', (error) => {
  say({ error: error.message });
  process.exit(1);
});

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const command = JSON.parse(line);
  if ('send' in command) {
    ws.send(command.send);
  } else if ('close' in command) {
    ws.close(command.close);
  }
});
