// Bench server on Bun's `Bun.serve` (uWebSockets inside, one JavaScript callback per message),
// run by `cargo xtask bench` as a reference a user would compare against. Command line:
//   bun server.js <echo|broadcast|idle> <port> <expected peers>
// It prints READY once listening and, once a second, the line the Godot bench servers print:
//   BENCH peers=N frames=F busy_us=U echoed=E
// echo: every message goes back to its sender as it arrives;
// broadcast: once every expected peer is connected, a 100-byte state (the tick number in its
//   first 8 bytes, little-endian) is published to every peer 60 times a second; F and U count
//   those ticks and the time spent publishing;
// idle: peers are held; the 60 Hz loop does nothing (F counts its ticks so that the bench can
//   tell when every peer has been held for a second).

const [mode, portText, expectedText] = process.argv.slice(2);
if (!["echo", "broadcast", "idle"].includes(mode)) {
  console.error(`usage: bun server.js <echo|broadcast|idle> <port> <expected peers>, not ${process.argv.slice(2).join(" ")}`);
  process.exit(2);
}
const port = Number(portText);
const expected = Number(expectedText);
let peers = 0;
let frames = 0;
let busyUs = 0;
let echoed = 0;
let tick = 0n;
const state = Buffer.alloc(100, 0x42);

const server = Bun.serve({
  hostname: "127.0.0.1",
  port,
  fetch(request, server) {
    if (server.upgrade(request)) {
      return undefined;
    }
    return new Response("WebSocket only", { status: 426 });
  },
  websocket: {
    maxPayloadLength: 64 << 20,
    backpressureLimit: 64 << 20,
    perMessageDeflate: false,
    // The idle workload holds silent connections longer than the default 120 s would allow on a
    // slow machine; the other workloads are never idle.
    idleTimeout: 960,
    open(ws) {
      peers += 1;
      if (mode === "broadcast") {
        ws.subscribe("all");
      }
    },
    message(ws, message) {
      if (mode === "echo") {
        ws.send(message);
        echoed += 1;
      }
    },
    close() {
      peers -= 1;
    },
  },
});

const tickMs = 1000 / 60;
let nextTick = performance.now() + tickMs;
function frame() {
  const start = performance.now();
  if (mode === "broadcast" && peers >= expected) {
    state.writeBigUInt64LE(tick, 0);
    tick += 1n;
    server.publish("all", state);
  }
  if (peers >= expected) {
    frames += 1;
    busyUs += (performance.now() - start) * 1000;
  }
  nextTick += tickMs;
  const now = performance.now();
  if (nextTick < now) {
    nextTick = now + tickMs;
  }
  setTimeout(frame, nextTick - now);
}
if (mode !== "echo") {
  setTimeout(frame, tickMs);
}
setInterval(() => {
  console.log(`BENCH peers=${peers} frames=${frames} busy_us=${Math.round(busyUs)} echoed=${echoed}`);
}, 1000);
console.log("READY");
