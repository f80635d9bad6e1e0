// Compression load generator for `cargo xtask bench` (the compression part): Node `ws` clients,
// which offer permessage-deflate the way ours is configured (level 6, threshold 128,
// server_no_context_takeover, client_no_context_takeover), against any echo server. Command line:
//   node loadgen.js <port> --workload <small|large> --deflate <on|off> [--clients N] [--window W]
//     [--seconds S] [--server-pid PID]
// small: JSON game states of about 300 bytes; large: a JSON world of about 1 MiB. Every message
// is a different text message (its sequence number and client first, then one of a pool of
// states made at start from a fixed seed, so every run sends the same bytes). --deflate tells
// what the server must have agreed to: every connection checks `ws.extensions` against it.
// Each client keeps W messages in flight; every echo must come back as text, byte for byte, in
// order. After a one-second warm-up it measures S seconds: messages/s, and with the server's pid
// the server's CPU (/proc/<pid>/stat, all threads); then it stops sending and waits for every
// echo. Bytes on the wire are what the clients' sockets wrote and read after the handshake
// (WebSocket frames, headers included), over every message of the run: counted here because a
// server's /proc/<pid>/io leaves out send() and recv(), which Rust's and Python's sockets use.
// One line at the end:
//   RESULT workload=compression_<small|large> ok=<true|false> deflate=<on|off> ... (key=value)
// It exits 1 when a message was lost, altered or reordered, or the negotiation was not the
// expected one.

"use strict";
const fs = require("fs");
const WebSocket = require("ws");

/** The command line after the script's name. */
const args = process.argv.slice(2);
/** The server's port on 127.0.0.1. */
const port = Number(args[0]);
/** The value after `--name`, or `fallback`. */
function option(name, fallback) {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
}
// The options (see the command line above); the defaults are the bench's.
const workload = option("workload", "small");
const expectDeflate = option("deflate", "on") === "on";
const large = workload === "large";
const clients = Number(option("clients", large ? 4 : 50));
const window = Number(option("window", large ? 4 : 32));
const seconds = Number(option("seconds", 5));
const serverPid = Number(option("server-pid", 0));
if (!port || !["small", "large"].includes(workload)) {
  console.error("usage: node loadgen.js <port> --workload <small|large> --deflate <on|off> [--clients N] [--window W] [--seconds S] [--server-pid PID]");
  process.exit(2);
}

/** A small fast PRNG (mulberry32) with a fixed seed: the same states every run. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
/** The states' random numbers. */
const random = prng(15);
/** A number in [lo, hi) with `digits` decimals. */
const num = (lo, hi, digits = 2) => Number((lo + random() * (hi - lo)).toFixed(digits));
/** An integer in [lo, hi). */
const int = (lo, hi) => Math.floor(lo + random() * (hi - lo));
/** One element of `list`. */
const pick = (list) => list[int(0, list.length)];
/** What the states' text fields take. */
const STATES = ["idle", "running", "jumping", "crouching", "reloading", "stunned"];
const KINDS = ["crate", "barrel", "mine", "medkit", "ammo", "turret", "door"];
const WEAPONS = ["rifle", "shotgun", "pistol", "smg", "sniper"];
/** A position in the world. */
const vec = () => ({ x: num(-500, 500), y: num(-500, 500), z: num(0, 40) });

/** One player's state as a game server would send it each tick (about 300 bytes with its header). */
function smallState(i) {
  return {
    tick: 480000 + i,
    player: {
      id: int(1, 64),
      name: `player_${int(100, 999)}`,
      pos: vec(),
      vel: { x: num(-9, 9), y: num(-9, 9), z: num(-3, 3) },
      yaw: num(-3.14, 3.14, 3),
      hp: int(0, 101),
      ammo: int(0, 31),
      weapon: pick(WEAPONS),
      state: pick(STATES),
    },
    nearby: [
      { id: int(1000, 9999), kind: pick(KINDS), x: num(-500, 500), y: num(-500, 500) },
      { id: int(1000, 9999), kind: pick(KINDS), x: num(-500, 500), y: num(-500, 500) },
    ],
  };
}

/** A whole world snapshot of about 1 MiB (entities until the text reaches `bytes`). */
function largeState(i, bytes) {
  const entities = [];
  let length = 64;
  while (length < bytes) {
    const entity = {
      id: int(1, 1 << 20),
      kind: pick(KINDS),
      owner: int(0, 64),
      pos: vec(),
      vel: { x: num(-9, 9), y: num(-9, 9), z: num(-3, 3) },
      hp: int(0, 501),
      flags: [random() < 0.5, random() < 0.2, random() < 0.1],
      tag: `e${int(0, 1 << 24).toString(36)}`,
    };
    entities.push(entity);
    length += JSON.stringify(entity).length + 1;
  }
  return { tick: 480000 + i, map: "harbour", entities };
}

// The pool of message bodies (JSON text without its opening brace; each message puts its own
// header in front).
const POOL = large ? 8 : 4096;
const bodies = [];
for (let i = 0; i < POOL; i++) {
  const json = JSON.stringify(large ? largeState(i, (1 << 20) - 40) : smallState(i));
  bodies.push(Buffer.from(json.slice(1)));
}

/** Message `seq` of client `c`: `{"seq":..,"client":..,` and a body of the pool. */
function message(c, seq) {
  const head = Buffer.from(`{"seq":${seq},"client":${c},`);
  return Buffer.concat([head, bodies[(seq * 7 + c) % POOL]]);
}

/** CPU seconds (user + system, all threads) of process `pid`, from /proc; null if unreadable. */
function processCpu(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return null;
  }
}

/** This process's CPU seconds (all threads: the event loop and zlib's thread pool). */
const ownCpu = () => {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
};

/** The permessage-deflate the clients offer: ours by default. */
const deflateOptions = {
  zlibDeflateOptions: { level: 6 },
  threshold: 128,
  serverNoContextTakeover: true,
  clientNoContextTakeover: true,
};

/** Errors seen (lost, altered or reordered echoes, a wrong negotiation, a closed connection). */
let errors = 0;
/** The first of them, for the RESULT line. */
let firstError = null;
/** Counts an error; the first one goes into the RESULT line. */
function fail(what) {
  errors += 1;
  if (firstError === null) {
    firstError = what;
  }
}

/** Echoes received so far, every client. */
let received = 0;
/** Whether the clients send a new message for each echo (until the window ends). */
let sending = false;
/** What the first client agreed ("permessage-deflate;<parameters>" or "none"); every other must agree the same. */
let negotiated = null;
/** Every client's state, once all are open. */
const sockets = [];
/** One client: its socket, the messages it waits for (oldest first) and its counters. */
function client(c) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: deflateOptions, maxPayload: 64 << 20 });
    const state = { ws, c, waiting: [], next: 0, done: 0, readAtOpen: 0, writtenAtOpen: 0 };
    ws.on("open", () => {
      const deflate = ws.extensions === "permessage-deflate";
      const params = deflate ? ws._extensions["permessage-deflate"].params : {};
      const agreed = deflate ? ["permessage-deflate", ...Object.keys(params).sort()].join(";") : "none";
      if (negotiated === null) {
        negotiated = agreed;
      } else if (negotiated !== agreed) {
        fail(`client ${c} agreed ${agreed}, another ${negotiated}`);
      }
      if (deflate !== expectDeflate) {
        fail(`client ${c}: permessage-deflate ${deflate ? "was" : "was not"} negotiated (extensions "${ws.extensions}")`);
      }
      if (deflate && !(params.server_no_context_takeover && params.client_no_context_takeover)) {
        fail(`client ${c}: agreed ${agreed}, without no_context_takeover both ways`);
      }
      state.readAtOpen = ws._socket.bytesRead;
      state.writtenAtOpen = ws._socket.bytesWritten;
      resolve(state);
    });
    ws.on("error", (err) => {
      fail(`client ${c}: ${err.message}`);
      reject(err);
    });
    ws.on("close", (code) => {
      if (!state.closing) {
        fail(`client ${c}: the server closed the connection (${code})`);
      }
    });
    ws.on("message", (data, isBinary) => {
      const expected = state.waiting.shift();
      if (expected === undefined) {
        fail(`client ${c}: an echo nobody sent`);
        return;
      }
      if (isBinary || !data.equals(expected)) {
        fail(`client ${c}: echo ${state.done} came back ${isBinary ? "binary" : "altered"} (${data.length} bytes, sent ${expected.length})`);
      }
      state.done += 1;
      received += 1;
      if (sending) {
        send(state);
      } else if (state.waiting.length === 0) {
        state.drained();
      }
    });
    state.drained = () => {};
  });
}

/** Sends the next message of `state`'s client and waits for it. */
function send(state) {
  const data = message(state.c, state.next);
  state.next += 1;
  state.waiting.push(data);
  state.ws.send(data, { binary: false });
}

/** Resolves after `ms` milliseconds. */
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Window start or end: what the counters say now. */
function sample() {
  return { at: process.hrtime.bigint(), received, server: processCpu(serverPid), own: ownCpu() };
}

/** Connects every client, runs the warm-up and the window, waits for every echo, reports. */
async function main() {
  const connectLimit = setTimeout(() => {
    fail("the clients did not all connect within 60 s");
    finish(null, null);
  }, 60000);
  const states = await Promise.all(Array.from({ length: clients }, (_, c) => client(c)));
  clearTimeout(connectLimit);
  sockets.push(...states);
  const started = process.hrtime.bigint();
  const ownStart = ownCpu();
  sending = true;
  for (const state of states) {
    for (let i = 0; i < window; i++) {
      send(state);
    }
  }
  await sleep(1000);
  const start = sample();
  await sleep(seconds * 1000);
  const end = sample();
  sending = false;
  // Every message in flight must still come back.
  const drain = states.map((state) => new Promise((resolve) => {
    state.drained = resolve;
    if (state.waiting.length === 0) {
      resolve();
    }
  }));
  const limit = sleep(60000).then(() => "timeout");
  if ((await Promise.race([Promise.all(drain), limit])) === "timeout") {
    const missing = states.reduce((n, s) => n + s.waiting.length, 0);
    fail(`${missing} echoes never came back`);
  }
  finish(start, end, started, ownStart);
}

/** Prints the RESULT line, closes every connection and exits. */
function finish(start, end, started, ownStart) {
  let up = 0;
  let down = 0;
  let sent = 0;
  for (const s of sockets) {
    up += s.ws._socket.bytesWritten - s.writtenAtOpen;
    down += s.ws._socket.bytesRead - s.readAtOpen;
    sent += s.next;
  }
  const totalMessages = sockets.reduce((n, s) => n + s.done, 0);
  const measured = start && end ? end.received - start.received : 0;
  const wall = start && end ? Number(end.at - start.at) / 1e9 : 0;
  const ok = errors === 0 && measured > 0 && totalMessages === sent;
  const per = (bytes) => (totalMessages > 0 ? (bytes / totalMessages).toFixed(1) : "0");
  const averageSize = sent > 0 ? sockets.reduce((n, s) => n + messageBytes(s), 0) / sent : 0;
  let fields = `workload=compression_${workload} ok=${ok} deflate=${negotiated !== null && negotiated !== "none" ? "on" : "off"} agreed=${negotiated ?? "none"}`;
  fields += ` clients=${clients} window=${window} message_bytes=${averageSize.toFixed(0)} messages=${totalMessages} errors=${errors}`;
  fields += ` messages_per_s=${wall > 0 ? (measured / wall).toFixed(1) : 0} mb_per_s=${wall > 0 ? ((measured * averageSize) / wall / 1e6).toFixed(1) : 0}`;
  fields += ` wire_bytes_per_message=${per(up + down)} up_bytes_per_message=${per(up)} down_bytes_per_message=${per(down)}`;
  if (start && end && start.server !== null && end.server !== null && wall > 0) {
    const cpu = end.server - start.server;
    fields += ` server_cpu_s=${cpu.toFixed(2)} server_cpu_percent=${((100 * cpu) / wall).toFixed(0)} server_cpu_us_per_message=${measured > 0 ? ((cpu * 1e6) / measured).toFixed(3) : 0}`;
  }
  if (start && end && wall > 0) {
    fields += ` loadgen_window_cpu_percent=${((100 * (end.own - start.own)) / wall).toFixed(0)}`;
  }
  if (started) {
    const runWall = Number(process.hrtime.bigint() - started) / 1e9;
    fields += ` loadgen_cpu_s=${(ownCpu() - ownStart).toFixed(2)} loadgen_wall_s=${runWall.toFixed(2)}`;
  }
  if (firstError !== null) {
    fields += ` first_error="${firstError.replaceAll('"', "'")}"`;
  }
  console.log(`RESULT ${fields}`);
  for (const s of sockets) {
    s.closing = true;
    s.ws.close(1000);
  }
  setTimeout(() => process.exit(ok ? 0 : 1), 200);
}

/** The JSON bytes client `s` sent, summed over its messages (the header's digits vary). */
function messageBytes(s) {
  let total = 0;
  for (let seq = 0; seq < s.next; seq++) {
    total += `{"seq":${seq},"client":${s.c},`.length + bodies[(seq * 7 + s.c) % POOL].length;
  }
  return total;
}

main().catch((err) => {
  fail(err.message);
  finish(null, null);
});
