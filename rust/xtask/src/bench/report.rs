//! The report `cargo xtask bench` writes: `README.md` (tables, how to read them, every raw
//! result line) and `chart.svg`.

use std::path::Path;
use std::process::Command;

use super::bun::BUN_VERSION;
use super::compression::{self, CompressionBench, Host, Size};
use super::raw::{Figures, Metric, RawBench, Server, Value, LOADGEN_ECHO, LOADGEN_TICK, METRICS};
use super::rpc::{Loops, RpcFigures, RpcRow, Transport};
use super::Options;

/// Everything the report is made from.
pub(super) struct Context<'a> {
    /// The repository root.
    pub(super) root: &'a Path,
    /// The Godot binary (for its version).
    pub(super) godot: &'a Path,
    /// The load generator's part, with its RESULT lines.
    pub(super) raw: &'a RawBench,
    /// Figures of every server, in the order of [`Server::ALL`].
    pub(super) figures: &'a [Figures],
    /// The Godot-to-Godot rows.
    pub(super) rpc_rows: &'a [RpcRow],
    /// The RPC runs' RESULT and SERVER lines.
    pub(super) rpc_log: &'a [String],
    /// The compression part, with its RESULT lines.
    pub(super) compression: &'a CompressionBench,
    /// The compression rows, in the order of [`Host::ALL`], on before off.
    pub(super) compression_rows: &'a [compression::Row],
    /// What the bench was asked to do.
    pub(super) options: &'a Options,
    /// How long the whole bench took.
    pub(super) minutes: f64,
}

/// A server's value of a metric, if it was measured.
fn number(figures: &Figures, id: &str) -> Option<f64> {
    match figures.get(id) {
        Some(Value::Num(v)) => Some(*v),
        _ => None,
    }
}

/// The figures of `server`, if it was run.
fn figures_of(figures: &[Figures], server: Server) -> Option<&Figures> {
    figures.get(server.index())
}

/// `server`'s value of the metric `id`, if it was measured.
fn value_of(figures: &[Figures], server: Server, id: &str) -> Option<f64> {
    figures_of(figures, server).and_then(|f| number(f, id))
}

/// The better of ours and ours inline on `metric`: the value, and whether it is the inline one
/// (ours wins a tie).
fn best_raw_ours(figures: &[Figures], metric: &Metric) -> Option<(f64, bool)> {
    let ours = value_of(figures, Server::Ours, metric.id);
    let inline = value_of(figures, Server::OursInline, metric.id);
    match (ours, inline) {
        (Some(o), Some(i)) => {
            let inline_better = if metric.higher_is_better { i > o } else { i < o };
            Some(if inline_better { (i, true) } else { (o, false) })
        }
        (Some(o), None) => Some((o, false)),
        (None, Some(i)) => Some((i, true)),
        (None, None) => None,
    }
}

/// The metric with this id.
fn metric_by_id(id: &str) -> &'static Metric {
    METRICS.iter().find(|m| m.id == id).expect("a metric of METRICS")
}

/// How many times better `ours` is than `other` (>1: ours is better); None if either is missing.
fn advantage(metric: &Metric, ours: Option<f64>, other: Option<f64>) -> Option<f64> {
    let (ours, other) = (ours?, other?);
    if ours <= 0.0 || other <= 0.0 {
        return None;
    }
    Some(if metric.higher_is_better { ours / other } else { other / ours })
}

/// A number with as many digits as it deserves.
pub(super) fn format_value(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// A table cell: the number, or "n/a: why".
fn cell(value: Option<&Value>) -> String {
    match value {
        Some(Value::Num(v)) => format_value(*v),
        Some(Value::Skipped(why)) => format!("n/a: {why}"),
        None => "n/a".into(),
    }
}

/// A ratio cell: "2.50x better", "0.40x worse" or "n/a".
fn ratio_cell(ratio: Option<f64>) -> String {
    match ratio {
        Some(r) => format!("{r:.2}x {}", if r >= 1.0 { "better" } else { "worse" }),
        None => "n/a".into(),
    }
}

/// What a command prints, trimmed; empty when it cannot run.
pub(crate) fn command_output(program: &str, args: &[&str], dir: &Path) -> String {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The CPU, cores, memory and platform, as the reports name this machine.
pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|s| s.trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().next().and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .map(|kib| format!("{:.1} GiB RAM", kib / 1024.0 / 1024.0))
        .unwrap_or_default();
    format!("{cpu}, {cores} cores available, {memory}, {} {}", std::env::consts::OS, std::env::consts::ARCH)
}

/// The load generator's CPU in one workload's window against each server, "a% / b% / ...".
fn loadgen_cpu(figures: &[Figures], id: &str) -> String {
    Server::ALL.iter().map(|s| value_of(figures, *s, id).map_or("n/a".into(), |v| format!("{v:.0}%"))).collect::<Vec<_>>().join(" / ")
}

/// How many frames of (b)'s 60 Hz tick one round trip of the window took, for ours and ours inline.
fn tick_frames(figures: &[Figures]) -> String {
    let frames = |server: Server| {
        value_of(figures, server, "tick_rate").filter(|r| *r > 0.0).map_or("n/a".into(), |r| format!("{:.1}", 60.0 * 50.0 * 256.0 / r))
    };
    format!("a round trip took {} frames for ours and {} for ours inline", frames(Server::Ours), frames(Server::OursInline))
}

/// The servers' names as the report's text lists them, "ours / ours inline / ...".
fn server_names() -> String {
    Server::ALL.iter().map(|s| column_name(*s)).collect::<Vec<_>>().join(" / ")
}

/// A server's name in the table and the text.
fn column_name(server: Server) -> &'static str {
    match server {
        Server::Ours => "ours",
        Server::OursInline => "ours inline",
        Server::Builtin => "built-in",
        Server::Ceiling => "ceiling",
        Server::Bun => "Bun",
    }
}

/// The whole README.md.
pub(super) fn markdown(cx: &Context) -> String {
    let root = cx.root;
    let scale = &cx.raw.scale;
    let commit = command_output("git", &["rev-parse", "--short", "HEAD"], root);
    let dirty = !command_output("git", &["status", "--porcelain", "--untracked-files=no"], root).is_empty();
    let godot = command_output(&cx.godot.display().to_string(), &["--version"], root);
    let date = command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"], root);
    let mut flags = String::new();
    if cx.options.quick {
        flags.push_str(" --quick");
    }
    if !cx.options.only.is_empty() {
        flags.push_str(&format!(" --only {}", cx.options.only.join(",")));
    }
    let mut md = String::new();
    md.push_str("# Benchmarks\n\n");
    md.push_str(&format!(
        "Written by `cargo xtask bench{flags}` on {date} (the run took {:.1} minutes): commit `{commit}`{}, Godot {godot}, {}.\n\
         Every message and every RPC is checked at its receiver (count, order and content); a run that loses one \
         fails and writes nothing. \"Server CPU\" is the user + system time of all the server process's threads \
         (`/proc/<pid>/stat`, fields 14 and 15) over the measured window, divided by what it handled in that window.\n\n",
        cx.minutes,
        if dirty { " with uncommitted changes" } else { "" },
        machine(),
    ));

    md.push_str("## Load generator against five servers\n\n");
    md.push_str(&format!(
        "One load generator (`rust/bench`, `wsrs-bench load`, release build, one event-loop thread on this machine) \
         drives five servers on this machine in turn: **ours** (`WebSocketServer` in headless Godot, release build, \
         `godot-project/bench/ours_server.gd`), **ours inline** (the same server and script with \
         `use_io_thread = false`: no I/O thread, `poll()` reads and writes the sockets on Godot's main thread), Godot's **built-in** classes in headless Godot (`TCPServer` + \
         `WebSocketPeer.accept_stream` for raw workloads, `WebSocketMultiplayerPeer` for broadcast; \
         `godot-project/bench/builtin_server.gd`), the **ceiling**: tungstenite and mio on one thread with no engine \
         (`wsrs-bench ceiling`), and **Bun** {BUN_VERSION} (`Bun.serve` with its `websocket` handlers, uWebSockets inside, \
         one JavaScript callback per message; `rust/bench/bun/server.js`; the `bun` binary of the npm package \
         `@oven/bun-linux-x64`, installed by xtask). Each workload measures {} s after a one-second warm-up \
         (the round trip: {} s).\n\n",
        scale.seconds, scale.latency_seconds
    ));
    md.push_str("![chart](chart.svg)\n\n");
    md.push_str(
        "| workload | unit | ours | ours inline | built-in | ceiling | Bun | ours vs built-in | ours vs Bun | ours / ceiling |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for metric in &METRICS {
        let cells: Vec<String> = Server::ALL.iter().map(|s| cell(figures_of(cx.figures, *s).and_then(|f| f.get(metric.id)))).collect();
        // The ratios compare the better of ours and ours inline, marked when it is the inline one.
        let best = best_raw_ours(cx.figures, metric);
        let mark = if best.is_some_and(|(_, inline)| inline) { " (inline)" } else { "" };
        let ratio = |other: Server| advantage(metric, best.map(|(v, _)| v), value_of(cx.figures, other, metric.id));
        let with_mark = |text: String| if text == "n/a" { text } else { format!("{text}{mark}") };
        md.push_str(&format!(
            "| {} | {} {} | {} | {} | {} | {} |\n",
            metric.name,
            metric.unit,
            if metric.higher_is_better { "(higher is better)" } else { "(lower is better)" },
            cells.join(" | "),
            with_mark(ratio_cell(ratio(Server::Builtin))),
            with_mark(ratio_cell(ratio(Server::Bun))),
            with_mark(ratio(Server::Ceiling).map_or("n/a".into(), |r| format!("{:.0}%", r * 100.0)))
        ));
    }
    md.push_str(&format!(
        "\n\"ours vs built-in\" and \"ours vs Bun\" are how many times better ours is (a speed-up, or a reduction for \
         lower-is-better figures); \"ours / ceiling\" is ours as a share of the ceiling's performance. In these three \
         columns \"ours\" is the better of ours and ours inline on that row, marked \"(inline)\" when it is ours inline. \
         The chart shows every server's figures, ours inline's bar next to ours.\n\n\
         How to read it:\n\
         - **Server CPU per message** is the fair comparison between servers: a server's messages per CPU-second are \
         1,000,000 divided by its µs per message, whatever limited its messages/s. The load generator used \
         {} of one core in (a)'s window and {} in (b)'s, against {}; where it is near \
         100% the load generator, not the server, set that row's messages/s (the committed bench before this one \
         compared the ceiling's messages/s while the load generator was saturated). On this 2-core machine a second \
         load-generator thread would only take the core the server runs on, so the bench reports per CPU instead.\n\
         - (a) runs the Godot servers' loops uncapped (`Engine.max_fps = 0`, `OS.low_processor_usage_mode_sleep_usec = 0`; \
         headless Godot otherwise sleeps 6.9 ms a frame): their main thread never sleeps, so their CPU per message in (a) \
         includes the spinning (ours inline spins in `poll()` itself: it has no I/O thread to wait on sockets). (b) caps them at 60 frames a second (`Engine.max_fps = 60`, no extra sleep), as a game \
         server runs, with 50 clients keeping 256 messages each in flight: its CPU per message is what a message costs. (b)'s messages/s is bounded by its 12,800 messages in flight: \
         one round trip a frame allows at most 768,000 messages/s; {} (the CPU per message does not depend on it). \
         The ceiling and Bun have no frame loop; they echo as messages arrive in (a) and (b) alike. Every server echoes \
         each message as it is received (GDScript's `data_received` handler for ours, a poll of every `WebSocketPeer` \
         each frame for the built-in). The \"batch calls\" rows run (b) with ours taking every waiting packet in one \
         `get_all_packets()` a frame and sending each client's back with one `send_packets()`, nothing connected to \
         `data_received` (so no signal per message); without the I/O thread a batch is written at once.\n\
         - (c) is a separate run at low load: 4 clients with one 64-byte message each in flight, loops uncapped. \
         The p50/p99 of the saturated runs (a) and (b) are in the raw lines below; they measure queueing, not the server.\n\
         - (d) 4 clients keep 2 messages of 1 MiB each in flight. \"Buffers sized\": the Godot servers' \
         `inbound_buffer_size` and `outbound_buffer_size` are 16 MiB (ours also `max_message_size` 64 MiB), and the \
         ceiling and the load generator read 1 MiB at a time (tungstenite's `read_buffer_size`; the ceiling otherwise \
         reads 4 KiB at a time like our core, whose read buffer has no setting). \"Default settings\": every server as \
         shipped (ours: 64 KiB queues, so a second message waits, refused by `send`, until the first is out; the \
         load generator reads 64 KiB at a time). CPU per message is in ms per 1 MiB message.\n\
         - (e) and (f) run at 60 frames a second with {} and {} clients. \"Main thread\" times only the server's own \
         calls on Godot's main thread (`poll()` and the sends; our I/O thread's work is not in it, while ours inline \
         does all its socket work there, in `poll()`; the same holds for (f)'s poll time) and, for the \
         ceiling and Bun, the time spent sending each tick; \"server CPU, all threads\" counts everything, so it \
         compares like with like. The load generator connects every client first; only frames with every client \
         connected are measured. Godot's `WebSocketMultiplayerPeer` admits one connection per `poll()`, so its \
         clients wait (and some are reset and retried: `connect_retries`) before (e) starts. (f)'s memory is the \
         server's resident memory growth divided by the connections, its CPU is measured for {} s with every \
         connection open.\n\
         - (g) 8 threads connect, finish the handshake and close, as fast as they can.\n\n",
        loadgen_cpu(cx.figures, LOADGEN_ECHO),
        loadgen_cpu(cx.figures, LOADGEN_TICK),
        server_names(),
        tick_frames(cx.figures),
        scale.broadcast_clients,
        scale.idle_clients,
        scale.idle_cpu_seconds
    ));

    md.push_str("## Godot to Godot: reliable RPCs through SceneMultiplayer\n\n");
    md.push_str(&format!(
        "A server process and a client process (headless Godot, `godot-project/bench/rpc_bench.gd` and \
         `rpc_node.gd`) with the same node at `/root/Bench`: the client calls `ping.rpc_id(1, seq, payload)` \
         (`@rpc(\"any_peer\", \"call_remote\", \"reliable\")`, a 64-byte `PackedByteArray`), the server answers each \
         with `pong.rpc_id(sender, seq, payload)`. Throughput: the client keeps 32 pings in flight (each pong sends \
         the next) and counts round trips for {} s after a one-second warm-up; the CPU of both processes (all \
         threads) is divided by those round trips. Round trip: after every ping in flight has come back, one ping at \
         a time for {} s. The client checks every pong's sequence number and payload; the server checks every \
         client's pings are in order and intact, and its count of answered pings must equal the client's. \
         Transports: ours (`WebSocketServer.create_server` / `WebSocketClient.create_client`), ours inline (the \
         same with `use_io_thread = false` on both before they start: the socket work runs inside `poll()` on the game \
         thread), the built-in `WebSocketMultiplayerPeer`, and `ENetMultiplayerPeer`. Loops: uncapped \
         (`Engine.max_fps = 0`), capped at 1000 fps (`Engine.max_fps = 1000`), and uncapped with the server on CPU 0 \
         and the client on CPU 1 (`taskset -c 0` / `taskset -c 1`); always `OS.low_processor_usage_mode_sleep_usec = 0`.\n\n",
        scale.rpc_seconds, scale.rpc_latency_seconds
    ));
    md.push_str(
        "| loops | transport | RPCs/s, 32 in flight (higher is better) | vs built-in | server CPU µs/RPC (lower is better) | client CPU µs/RPC (lower is better) | round trip p50 µs, one in flight (lower is better) | p99 µs |\n\
         |---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for loops in Loops::ALL {
        let builtin = cx.rpc_rows.iter().find(|r| r.loops == loops && r.transport == Transport::Builtin).and_then(|r| r.outcome.as_ref().ok()).map(|f| f.rpcs_per_s);
        for row in cx.rpc_rows.iter().filter(|r| r.loops == loops) {
            match &row.outcome {
                Ok(f) => md.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
                    loops.label(),
                    row.transport.label(),
                    format_value(f.rpcs_per_s),
                    builtin.filter(|b| *b > 0.0).map_or("n/a".into(), |b| format!("{:.2}x", f.rpcs_per_s / b)),
                    f.server_cpu_us.map_or("n/a".into(), format_value),
                    format_value(f.client_cpu_us),
                    format_value(f.p50_us),
                    format_value(f.p99_us)
                )),
                Err(why) => md.push_str(&format!("| {} | {} | skipped: {why} | | | | | |\n", loops.label(), row.transport.label())),
            }
        }
    }
    md.push_str(
        "\nAn RPC here is one round trip: a ping RPC and its pong RPC; \"vs built-in\" divides a row's RPCs/s by the \
         built-in's with the same loops. An uncapped loop never sleeps, so CPU per RPC there includes the spinning of \
         both main threads; the capped rows show what the work costs. Unpinned and uncapped, the two spinning \
         processes (and our I/O threads) share the machine's cores with whatever else runs, so a message may wait for a \
         scheduler time slice: that shows in the p99 of those rows, and in their p50 when the machine is busy. \
         Capped at 1000 fps, a round trip takes at least a frame on each side.\n\n",
    );

    md.push_str(&compression_section(cx));
    md.push_str(&targets(cx));
    md.push_str("## Raw results\n\nLoad generator (`wsrs-bench load`) RESULT lines, by server:\n\n```\n");
    for line in &cx.raw.log {
        md.push_str(line);
        md.push('\n');
    }
    md.push_str("```\n\nGodot to Godot: the client's RESULT line and the server's last SERVER line of each run:\n\n```\n");
    for line in cx.rpc_log {
        md.push_str(line);
        md.push('\n');
    }
    md.push_str("```\n\nCompression: the Node load generator's RESULT lines, by server and setting:\n\n```\n");
    for line in &cx.compression.log {
        md.push_str(line);
        md.push('\n');
    }
    md.push_str("```\n");
    md
}

/// The average JSON size of `size`'s messages in this run ("326 bytes"), or "n/a".
fn message_size(rows: &[compression::Row], size: Size) -> String {
    rows.iter().find_map(|r| r.measured(size)).map_or("n/a".into(), |m| format!("{:.0} bytes", m.message_bytes))
}

/// A bytes-on-the-wire cell, `scale` bytes to the unit: "441 (223 up, 219 down)".
fn wire_cell(m: &compression::Measured, scale: f64) -> String {
    format!("{} ({} up, {} down)", format_value(m.wire_bytes / scale), format_value(m.up_bytes / scale), format_value(m.down_bytes / scale))
}

/// For each server with both settings measured, what compression changed: its share of the
/// bytes and the server CPU it added, per size.
fn compression_effect(rows: &[compression::Row]) -> String {
    let mut parts = Vec::new();
    for host in Host::ALL {
        let on = rows.iter().find(|r| r.host == host && r.deflate);
        let off = rows.iter().find(|r| r.host == host && !r.deflate);
        let mut effects = Vec::new();
        for (size, name, cpu_unit, cpu_scale) in [(Size::Small, "~300 B", "µs", 1.0), (Size::Large, "1 MiB", "ms", 1e-3)] {
            let (Some(on), Some(off)) = (on.and_then(|r| r.measured(size)), off.and_then(|r| r.measured(size))) else { continue };
            if off.wire_bytes <= 0.0 {
                continue;
            }
            let cpu = on.cpu_us.zip(off.cpu_us).map_or("n/a".into(), |(a, b)| {
                let delta = (a - b) * cpu_scale;
                format!("{}{} {cpu_unit}", if delta >= 0.0 { "+" } else { "-" }, format_value(delta.abs()))
            });
            effects.push(format!("{name}: {:.0}% of the bytes, server CPU {cpu} per message", 100.0 * on.wire_bytes / off.wire_bytes));
        }
        if !effects.is_empty() {
            parts.push(format!("{} {}", host.label(), effects.join("; ")));
        }
    }
    if parts.is_empty() {
        "no server was measured both ways".into()
    } else {
        parts.join(". ")
    }
}

/// The load generator's CPU in each server's ~300 B window with compression on: "ours 55%, ...".
fn compression_loadgen_cpu(rows: &[compression::Row], deflate: bool) -> String {
    let parts: Vec<String> = rows
        .iter()
        .filter(|r| r.deflate == deflate)
        .filter_map(|r| r.measured(Size::Small).map(|m| format!("{} {:.0}%", r.host.label(), m.loadgen_cpu)))
        .collect();
    if parts.is_empty() {
        "n/a".into()
    } else {
        parts.join(", ")
    }
}

/// The "Compression" section: its table and how to read it.
fn compression_section(cx: &Context) -> String {
    let rows = cx.compression_rows;
    let (small, large) = (Size::Small, Size::Large);
    let mut md = String::from("## Compression: permessage-deflate

");
    md.push_str(&format!(
        "A load generator on Node (`rust/bench/node/loadgen.js`: the npm package `ws` {ws}, installed by xtask; every \
         connection in one process, one event loop) sends JSON text messages and checks every echo: text, byte for byte, \
         in order. **~300 B**: a player's state as a game server sends it each tick ({small_bytes} on average: \
         position, velocity, heading, health, ammunition, weapon, two nearby entities), {small_clients} connections \
         with {small_window} messages each in flight. **1 MiB**: a world snapshot of about 6,300 entities \
         ({large_bytes} on average), {large_clients} connections with {large_window} each in flight. Every message \
         differs from the last: its sequence number and connection first, then one of a pool of states with random \
         values made at start from a fixed seed (4096 of ~300 B, 8 of 1 MiB), so every run sends the same bytes. \
         Its clients offer permessage-deflate configured like ours by default: level 6, threshold 128 bytes, \
         `server_no_context_takeover` and `client_no_context_takeover`, windows of 2^15. Servers on this machine: \
         **ours** (`WebSocketServer` in headless Godot, release build, `godot-project/bench/ours_server.gd` in mode \
         `tick_text`: 60 frames a second, each message sent back as text from `data_received`, 16 MiB queues), \
         **ours inline** (the same with `use_io_thread = false`), **Node `ws`** (the npm package `ws` {ws}, \
         `rust/bench/node/server.js`, the same deflate settings; without its optional native modules `bufferutil` and \
         `utf-8-validate`, as `npm install ws` leaves it) and **Python `websockets`** (the PyPI package `websockets` \
         {websockets}, asyncio, `rust/bench/python/server.py`: the same settings, except that it has no threshold: \
         every message here is over 128 bytes anyway). \"On\" is the server's permessage-deflate enabled (ours: \
         `permessage_deflate = true`, the default, and the `deflate_*` defaults), \"off\" disabled (ours: \
         `permessage_deflate = false`) while the clients still offer it. Every connection checks what was agreed \
         (`ws.extensions` and its parameters): permessage-deflate without context takeover either way in the \"on\" \
         rows, no extension in the \"off\" rows; each server also counts the connections that agreed (ours with \
         `WebSocketConnection.has_permessage_deflate()`); a mismatch fails the run. Each size measures {seconds} s \
         after a one-second warm-up.\n\n",
        ws = compression::WS_VERSION,
        websockets = compression::WEBSOCKETS_VERSION,
        small_bytes = message_size(rows, small),
        large_bytes = message_size(rows, large),
        small_clients = small.clients(),
        small_window = small.window(),
        large_clients = large.clients(),
        large_window = large.window(),
        seconds = cx.compression.seconds,
    ));
    md.push_str(
        "| server | permessage-deflate | ~300 B: bytes on the wire per message, both ways (lower is better) | ~300 B: messages/s (higher is better) | ~300 B: server CPU µs/message (lower is better) | 1 MiB: KiB on the wire per message, both ways (lower is better) | 1 MiB: messages/s (higher is better) | 1 MiB: server CPU ms/message (lower is better) |\n\
         |---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let setting = if row.deflate { "on (agreed)" } else { "off (not agreed)" };
        let mut cells = Vec::new();
        for (i, size) in Size::ALL.iter().enumerate() {
            let (bytes_scale, cpu_scale) = if *size == Size::Large { (1024.0, 1e-3) } else { (1.0, 1.0) };
            match row.runs.get(i) {
                Some(Ok(m)) => {
                    cells.push(wire_cell(m, bytes_scale));
                    cells.push(format_value(m.rate));
                    cells.push(m.cpu_us.map_or("n/a".into(), |us| format_value(us * cpu_scale)));
                }
                Some(Err(why)) => cells.extend([format!("n/a: {why}"), "n/a".into(), "n/a".into()]),
                None => cells.extend(["n/a".to_string(), "n/a".into(), "n/a".into()]),
            }
        }
        md.push_str(&format!("| {} | {setting} | {} |\n", row.host.label(), cells.join(" | ")));
    }
    md.push_str(&format!(
        "\nHow to read it:\n\
         - **Bytes on the wire** are what the load generator's sockets wrote (up: the message going to the server) \
         and read (down: its echo) after the handshake, divided by the messages of the whole run: WebSocket frames with \
         their headers (a client's frame carries a 4-byte mask), without TCP/IP headers. They are counted there, not at \
         the server, because a process's `/proc/<pid>/io` leaves out `send()` and `recv()`, which Rust's and Python's \
         sockets use. Off, a message costs its JSON twice plus the headers. On, the up half is the load generator's \
         compression (the same for every server) and the down half the server's: each deflates with its own zlib \
         (Node's, Python's, zlib-rs in ours), which at the same level need not produce the same bytes.\n\
         - **Server CPU per message** is the user + system time of all the server's threads over the window, as in the \
         load generator section: where compression runs counts too (ours: zlib-rs on the I/O thread, or in `poll()` \
         inline; Node `ws`: zlib on Node's thread pool, asynchronously, at most 10 at once; Python `websockets`: zlib \
         in its event loop). Ours runs at 60 frames a second, as a game server does, so its CPU is what the messages \
         cost, not a spinning loop; one round trip a frame would allow {small_cap} messages/s for ~300 B and {large_cap} \
         for 1 MiB. A server's CPU per message also falls as its rate rises (more messages per wake-up and per frame), \
         and the \"on\" rows run at a lower rate than the \"off\" rows (see messages/s): part of the difference \
         between them is that, not compression. `ws`'s own README warns that its permessage-deflate \"adds a \
         significant overhead in terms of performance and memory consumption\".\n\
         - **Messages/s** is mostly the load generator's with compression on: it deflates and inflates every message \
         too, through `ws` like the Node server. It used {loadgen_on} of a core in the ~300 B window against the \
         servers with compression on, {loadgen_off} with it off (its zlib thread pool included); near 100%, it, not the \
         server, set that row's messages/s.\n\
         - What compression changed (on against off, same server): {effect}.\n\n",
        small_cap = format_value(60.0 * (small.clients() * small.window()) as f64),
        large_cap = format_value(60.0 * (large.clients() * large.window()) as f64),
        loadgen_on = compression_loadgen_cpu(rows, true),
        loadgen_off = compression_loadgen_cpu(rows, false),
        effect = compression_effect(rows),
    ));
    md
}

/// The RPC figures of `transport` with `loops`, if measured.
fn rpc_figures(rows: &[RpcRow], loops: Loops, transport: Transport) -> Option<&RpcFigures> {
    rows.iter().find(|r| r.loops == loops && r.transport == transport).and_then(|r| r.outcome.as_ref().ok())
}

/// Whether `ours` is at least as good as `theirs`, counting a difference under 1% as equal (a
/// capped loop's round trip is a whole number of frames; the last microsecond is noise).
fn at_least(ours: f64, theirs: f64, higher_is_better: bool) -> bool {
    let tolerance = 0.01 * theirs.abs();
    if higher_is_better {
        ours >= theirs - tolerance
    } else {
        ours <= theirs + tolerance
    }
}

/// "met", "not met", or "not measured".
fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**not met**",
        None => "not measured",
    }
}

/// Why ours costs more CPU per message than Bun, printed when that target is not met.
const BUN_CPU_GAP: &str = ": each message ours echoes crosses the engine boundary twice (a `PackedByteArray` built \
     for GDScript, then copied back for sending) and runs GDScript, while Bun's uWebSockets frames in C++ and runs a \
     JIT-compiled callback on a buffer it lends. The batch calls remove the signal and the engine calls per message \
     (about a third of the per-packet cost remains); what is left is those two copies and allocations, the GDScript loop \
     and the framing";

/// Issue 14's targets, each checked against this run's figures.
fn targets(cx: &Context) -> String {
    let mut md = String::from(
        "## Targets (issue 14)\n\nChecked against this run's figures (a difference under 1% counts as equal); \"ours\" \
         is the better of ours and ours inline (named when it is the inline one).\n\n| target | figures | |\n|---|---|---|\n",
    );
    let rows = cx.rpc_rows;
    // The better of ours and ours inline by `score` (higher is better), with its name.
    let best_ours = |loops: Loops, score: fn(&RpcFigures) -> f64| -> Option<(&'static str, &RpcFigures)> {
        let candidates = [("ours", rpc_figures(rows, loops, Transport::Ours)), ("ours inline", rpc_figures(rows, loops, Transport::OursInline))];
        candidates.into_iter().filter_map(|(name, f)| Some((name, f?))).max_by(|a, b| score(a.1).total_cmp(&score(b.1)))
    };
    for loops in Loops::ALL {
        let others: &[Transport] = if loops == Loops::Capped { &[Transport::Builtin, Transport::Enet] } else { &[Transport::Builtin] };
        for &other in others {
            let theirs = rpc_figures(rows, loops, other);
            let name = if other == Transport::Enet { "ENet" } else { "the built-in" };
            let ours = best_ours(loops, |f| f.rpcs_per_s);
            let met = ours.zip(theirs).map(|((_, o), t)| at_least(o.rpcs_per_s, t.rpcs_per_s, true));
            md.push_str(&format!(
                "| RPC throughput, loops {}: ours at least {name} | {} vs {} RPCs/s | {} |\n",
                loops.label(),
                ours.map_or("n/a".into(), |(n, f)| format!("{n} {}", format_value(f.rpcs_per_s))),
                theirs.map_or("n/a".into(), |f| format_value(f.rpcs_per_s)),
                verdict(met)
            ));
            let ours = best_ours(loops, |f| -f.p50_us);
            let met = ours.zip(theirs).map(|((_, o), t)| at_least(o.p50_us, t.p50_us, false));
            md.push_str(&format!(
                "| RPC round trip (p50, one in flight), loops {}: ours at most {name}'s | {} vs {} µs | {} |\n",
                loops.label(),
                ours.map_or("n/a".into(), |(n, f)| format!("{n} {}", format_value(f.p50_us))),
                theirs.map_or("n/a".into(), |f| format_value(f.p50_us)),
                verdict(met)
            ));
        }
    }
    // The better of ours and ours inline on a load generator figure: "ours inline 1.23" or "0.45".
    let best = |id: &str| -> (Option<f64>, String) {
        match best_raw_ours(cx.figures, metric_by_id(id)) {
            Some((v, true)) => (Some(v), format!("ours inline {}", format_value(v))),
            Some((v, false)) => (Some(v), format_value(v)),
            None => (None, "n/a".into()),
        }
    };
    // Per-packet calls and batch calls: the better of the two, named.
    let best_of_tick = |per_packet: &str, batch: &str| -> (Option<f64>, String) {
        let (single, batched) = (best(per_packet), best(batch));
        let higher_is_better = metric_by_id(per_packet).higher_is_better;
        match (single.0, batched.0) {
            (Some(s), Some(b)) if (b > s) == higher_is_better && b != s => (Some(b), format!("{} (batch calls)", batched.1)),
            (None, Some(b)) => (Some(b), format!("{} (batch calls)", batched.1)),
            _ => single,
        }
    };
    let ((ours_cpu, ours_cpu_text), bun_cpu) = (best_of_tick("tick_cpu", "tick_batch_cpu"), value_of(cx.figures, Server::Bun, "tick_cpu"));
    let cpu_met = ours_cpu.zip(bun_cpu).map(|(o, b)| at_least(o, b, false));
    md.push_str(&format!(
        "| echo at a 60 Hz tick: server CPU per message at most Bun's | {ours_cpu_text} vs {} µs | {}{} |\n",
        bun_cpu.map_or("n/a".into(), format_value),
        verdict(cpu_met),
        if cpu_met == Some(false) { BUN_CPU_GAP } else { "" }
    ));
    let ((ours_rate, ours_rate_text), builtin_rate) = (best_of_tick("tick_rate", "tick_batch_rate"), value_of(cx.figures, Server::Builtin, "tick_rate"));
    md.push_str(&format!(
        "| echo at a 60 Hz tick: at least 3x the built-in's messages/s | {ours_rate_text} vs 3 x {} messages/s | {} |\n",
        builtin_rate.map_or("n/a".into(), format_value),
        verdict(ours_rate.zip(builtin_rate).map(|(o, b)| o >= 3.0 * b))
    ));
    let (memory, memory_text) = best("idle_memory");
    md.push_str(&format!(
        "| idle memory under 16 KiB per connection | {memory_text} KiB | {} |\n\n",
        verdict(memory.map(|m| m < 16.0))
    ));
    md
}

/// A horizontal bar chart: for each metric, each server's advantage over the built-in
/// (built-in = 1), on a log scale.
pub(super) fn chart_svg(figures: &[Figures]) -> String {
    // In the order of Server::ALL; ours inline a lighter blue next to ours.
    let colours = ["#2f7ed8", "#8ec1f2", "#999999", "#e07b39", "#7a4fbf"];
    let names = ["ours", "ours inline (use_io_thread = false)", "built-in", "ceiling (tungstenite, no engine)", "Bun (uWebSockets)"];
    let (left, bar_h, gap, width) = (480.0, 10.0, 12.0, 1060.0);
    let group_h = colours.len() as f64 * bar_h + gap;
    let height = 60.0 + METRICS.len() as f64 * group_h + 40.0;
    // log10 scale from 0.1x to 10,000x.
    let (lo, hi) = (-1.0f64, 4.0f64);
    let plot_w = width - left - 90.0;
    let x = |ratio: f64| left + ((ratio.max(1e-3).log10() - lo) / (hi - lo)).clamp(0.0, 1.0) * plot_w;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"18\" font-size=\"14\" font-weight=\"bold\">Times better than Godot's built-in WebSocket (log scale; built-in = 1x)</text>\n"
    );
    let mut lx = 10.0;
    for (label, colour) in names.iter().zip(colours) {
        svg.push_str(&format!("<rect x=\"{lx}\" y=\"28\" width=\"10\" height=\"10\" fill=\"{colour}\"/><text x=\"{}\" y=\"37\">{label}</text>\n", lx + 14.0));
        lx += 30.0 + label.len() as f64 * 6.0;
    }
    for tick in [0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0] {
        let tx = x(tick);
        svg.push_str(&format!(
            "<line x1=\"{tx:.1}\" y1=\"50\" x2=\"{tx:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/><text x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{tick}x</text>\n",
            height - 35.0,
            height - 22.0
        ));
    }
    for (m, metric) in METRICS.iter().enumerate() {
        let y0 = 55.0 + m as f64 * group_h;
        let label = metric.name.replace('&', "&amp;");
        let middle = y0 + colours.len() as f64 * bar_h / 2.0 + 4.0;
        svg.push_str(&format!("<text x=\"{:.1}\" y=\"{middle:.1}\" text-anchor=\"end\">{label} ({})</text>\n", left - 8.0, metric.unit));
        let builtin = value_of(figures, Server::Builtin, metric.id);
        for (s, colour) in colours.iter().enumerate() {
            let y = y0 + s as f64 * bar_h;
            let value = figures.get(s).and_then(|f| number(f, metric.id));
            match (value, advantage(metric, value, builtin)) {
                (Some(value), Some(ratio)) => {
                    let (x0, x1) = (x(0.1), x(ratio));
                    svg.push_str(&format!(
                        "<rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"8\">{} ({:.2}x)</text>\n",
                        (x1 - x0).max(1.0),
                        bar_h - 2.0,
                        x1 + 4.0,
                        y + bar_h - 2.5,
                        format_value(value),
                        ratio
                    ));
                }
                (value, _) => {
                    let text = value.map_or("n/a".to_string(), |v| format!("{} (no built-in figure)", format_value(v)));
                    svg.push_str(&format!("<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"8\" fill=\"{colour}\">{text}</text>\n", x(0.1) + 4.0, y + bar_h - 2.5));
                }
            }
        }
    }
    svg.push_str("</svg>\n");
    svg
}
