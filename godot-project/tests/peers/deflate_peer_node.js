// A Node peer with permessage-deflate for test_deflate_peers.gd, written with the npm package `ws`
// (found through NODE_PATH, which `cargo xtask test` sets).
//
//   node deflate_peer_node.js server PORT READY_FILE
//       Serves on 127.0.0.1:PORT and REQUIRES permessage-deflate: a request that does not offer
//       it is refused with HTTP 400 (counted in the report's "refused"), and a connection that
//       did not agree on it is closed with 1008. Its settings: serverMaxWindowBits 11,
//       clientMaxWindowBits 13, `ws`' defaults otherwise (contexts kept unless the client asks
//       otherwise; messages under 1 KiB go uncompressed). Runs one session (below) with the first
//       client that agreed on compression, then exits. READY_FILE is written once it listens.
//
// The session is peers/deflate_peer.py's: the peer sends text and binary messages (small, about
// 2 KB, 1 MiB), checks that each comes back with its content, kind and order, echoes as many
// messages with their kinds, then sends its report as one text message (JSON: "offer" and
// "answer" are the Sec-WebSocket-Extensions request and response headers, "sent" and "received"
// one "kind:size:sha256" per message, "refused", "errors") and closes with 4001 "node done".

"use strict";
const crypto = require("crypto");
const fs = require("fs");
const { WebSocketServer } = require("ws");

// JSON-like text of about `size` bytes, with a few characters beyond ASCII.
function jsonText(size) {
  const parts = [];
  let length = 0;
  for (let i = 0; length < size; i++) {
    const part = `{"id":${i},"name":"node\u00f1${i % 47}","z":${i * 9}.5,"ok":true}`;
    parts.push(part);
    length += Buffer.byteLength(part) + 1;
  }
  return "[" + parts.join(",") + "]";
}

// What the peer sends, as { text, data }: small, JSON-like and 1 MiB text and binary (the last
// one random).
function messages() {
  const records = Buffer.alloc(1 << 20);
  for (let i = 0; i < (1 << 17); i++) {
    records.writeUInt32LE(i * 13, i * 8);
    records.writeFloatLE(i * 0.75, i * 8 + 4);
  }
  const text = (s) => ({ text: true, data: Buffer.from(s) });
  const binary = (data) => ({ text: false, data });
  return [
    text("node \u00f1\u{1F642} small"),
    binary(Buffer.from(Array.from({ length: 100 }, (_, i) => (i * 7) & 255))),
    text(jsonText(2000)),
    binary(Buffer.from(jsonText(2400))),
    text(jsonText(1 << 20)),
    binary(records),
    binary(crypto.randomBytes(1 << 20)),
  ];
}

// "kind:size:sha256" of a message.
function digest(message) {
  const hash = crypto.createHash("sha256").update(message.data).digest("hex");
  return `${message.text ? "text" : "binary"}:${message.data.length}:${hash}`;
}

// Runs the session on `ws`, then closes it.
function session(ws, report) {
  const mine = messages();
  let count = 0;
  ws.on("message", (data, isBinary) => {
    const message = { text: !isBinary, data: Buffer.isBuffer(data) ? data : Buffer.concat(data) };
    const index = count++;
    if (index < mine.length) {
      const expected = mine[index];
      if (message.text !== expected.text || !message.data.equals(expected.data)) {
        report.errors.push(`echo ${index}: ${digest(message)} instead of ${report.sent[index]}`);
      }
      return;
    }
    ws.send(message.data, { binary: !message.text });
    report.received.push(digest(message));
    if (report.received.length === mine.length) {
      ws.send(JSON.stringify(report));
      ws.close(4001, "node done");
    }
  });
  for (const message of mine) {
    report.sent.push(digest(message));
    ws.send(message.data, { binary: !message.text });
  }
}

function runServer(port, readyFile) {
  let refused = 0;
  const answers = new WeakMap();
  const wss = new WebSocketServer({
    host: "127.0.0.1",
    port,
    perMessageDeflate: { serverMaxWindowBits: 11, clientMaxWindowBits: 13 },
    verifyClient: (info, done) => {
      if (/permessage-deflate/i.test(info.req.headers["sec-websocket-extensions"] || "")) {
        done(true);
      } else {
        refused += 1;
        done(false, 400, "permessage-deflate is required");
      }
    },
  });
  wss.on("headers", (headers, request) => {
    const line = headers.find((h) => h.toLowerCase().startsWith("sec-websocket-extensions:"));
    answers.set(request, line ? line.slice(line.indexOf(":") + 1).trim() : null);
  });
  wss.on("listening", () => fs.writeFileSync(readyFile, "ready"));
  wss.on("connection", (ws, request) => {
    const report = {
      offer: request.headers["sec-websocket-extensions"] || null,
      answer: answers.get(request),
      refused,
      sent: [],
      received: [],
      errors: [],
    };
    if (!report.answer || !report.answer.startsWith("permessage-deflate")) {
      ws.close(1008, "permessage-deflate is required");
      return;
    }
    ws.on("close", () => wss.close(() => process.exit(0)));
    session(ws, report);
  });
}

const args = process.argv.slice(2);
if (args.length === 3 && args[0] === "server") {
  runServer(Number(args[1]), args[2]);
} else {
  console.error("usage: node deflate_peer_node.js server PORT READY_FILE");
  process.exit(2);
}
