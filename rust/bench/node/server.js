// Reference echo server on Node's `ws` (the npm package), run by `cargo xtask bench` for the
// compression part. Command line:
//   node server.js <port> <on|off>
// on: permessage-deflate configured like ours by default (level 6, threshold 128,
// server_no_context_takeover, client_no_context_takeover, windows of 2^15); off: no
// permessage-deflate. Every message goes back to its sender as it arrives, text as text. It
// prints READY once listening and, once a second, the line the Godot bench servers print, with
// the number of connections that agreed to permessage-deflate:
//   BENCH peers=N frames=0 busy_us=0 echoed=E deflated=D

"use strict";
const { WebSocketServer } = require("ws");

const [portText, deflateText] = process.argv.slice(2);
if (!portText || !["on", "off"].includes(deflateText)) {
  console.error(`usage: node server.js <port> <on|off>, not ${process.argv.slice(2).join(" ")}`);
  process.exit(2);
}
/** The `ws` perMessageDeflate option: like ours by default, or false. */
const perMessageDeflate = deflateText === "on" && {
  zlibDeflateOptions: { level: 6 },
  threshold: 128,
  serverNoContextTakeover: true,
  clientNoContextTakeover: true,
};
/** Connections open. */
let peers = 0;
/** Messages sent back. */
let echoed = 0;
/** Connections that agreed to permessage-deflate. */
let deflated = 0;

const server = new WebSocketServer({ host: "127.0.0.1", port: Number(portText), perMessageDeflate, maxPayload: 64 << 20 });
server.on("connection", (ws) => {
  peers += 1;
  if (ws.extensions === "permessage-deflate") {
    deflated += 1;
  }
  ws.on("message", (data, isBinary) => {
    ws.send(data, { binary: isBinary });
    echoed += 1;
  });
  ws.on("close", () => {
    peers -= 1;
  });
});
server.on("listening", () => console.log("READY"));
setInterval(() => {
  console.log(`BENCH peers=${peers} frames=0 busy_us=0 echoed=${echoed} deflated=${deflated}`);
}, 1000);
