// bench/ws-baseline/server.js — the baseline of bench/ws: a plain broadcast
// server on the npm `ws` package. POST any path with a Telegram-style update:
// it answers 200 and sends {"type":"event",...,"data":{"text":...}} to every
// connected client at once. No database, no auth, no queues: the floor a
// fan-out server on Node.js reaches on this machine.
'use strict';
const http = require('http');
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || 0);
let seq = 0;
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    let text = '';
    try {
      text = JSON.parse(Buffer.concat(chunks).toString()).message.text;
    } catch (e) {
      res.writeHead(400).end('{"error":"bad json"}');
      return;
    }
    const frame = JSON.stringify({ type: 'event', id: ++seq, event: 'interaction.created',
                                   data: { text } });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': 11 });
    res.end('{"ok":true}');
    for (const ws of wss.clients) ws.send(frame);
  });
});
const wss = new WebSocketServer({ server, path: '/ws',
                                  handleProtocols: (protocols) => 'switchboard.v1' });
server.listen(port, '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
