//! The load generator's workloads (`wsrs-bench load`) against each server in turn: ours (with its
//! I/O thread, and inline) and the built-in classes in headless Godot, the tungstenite ceiling,
//! and Bun.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::running::{field, free_port, Report, Running};
use super::Scale;
use crate::process;

/// The servers the load generator drives, in table order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Server {
    /// `WebSocketServer` in headless Godot (`godot-project/bench/ours_server.gd`).
    Ours,
    /// The same with `use_io_thread = false`: the sockets are served inside `poll()`.
    OursInline,
    /// Godot's own classes in headless Godot (`godot-project/bench/builtin_server.gd`).
    Builtin,
    /// tungstenite and mio on one thread, no engine (`wsrs-bench ceiling`).
    Ceiling,
    /// Bun's `Bun.serve` (`rust/bench/bun/server.js`).
    Bun,
}

impl Server {
    /// Every server, in table order.
    pub(super) const ALL: [Server; 5] = [Server::Ours, Server::OursInline, Server::Builtin, Server::Ceiling, Server::Bun];

    /// Its position in [`Server::ALL`] (and in the figures the bench collects).
    pub(super) fn index(self) -> usize {
        Server::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }

    /// Whether it is one of ours (with the I/O thread or inline).
    pub(super) fn is_ours(self) -> bool {
        matches!(self, Server::Ours | Server::OursInline)
    }

    /// The name printed while the bench runs.
    pub(super) fn label(self) -> &'static str {
        match self {
            Server::Ours => "ours (WebSocketServer)",
            Server::OursInline => "ours inline (WebSocketServer, use_io_thread = false)",
            Server::Builtin => "Godot built-in",
            Server::Ceiling => "ceiling (tungstenite, no engine)",
            Server::Bun => "Bun (Bun.serve, uWebSockets)",
        }
    }

    /// The name `--only` selects it by.
    pub(super) fn key(self) -> &'static str {
        match self {
            Server::Ours => "ours",
            Server::OursInline => "ours_inline",
            Server::Builtin => "builtin",
            Server::Ceiling => "ceiling",
            Server::Bun => "bun",
        }
    }
}

/// One figure of one server: measured, or why not.
#[derive(Clone, Debug)]
pub(super) enum Value {
    /// The measured number, in the metric's unit.
    Num(f64),
    /// Not measured, and why.
    Skipped(String),
}

/// What one server achieved: metric id -> value (a metric missing here was not measured).
pub(super) type Figures = BTreeMap<&'static str, Value>;

/// One compared figure of the load generator's workloads.
pub(super) struct Metric {
    /// The key in [`Figures`].
    pub(super) id: &'static str,
    /// The row's name in the report.
    pub(super) name: &'static str,
    /// Its unit.
    pub(super) unit: &'static str,
    /// Whether a higher number is better.
    pub(super) higher_is_better: bool,
}

const fn metric(id: &'static str, name: &'static str, unit: &'static str, higher_is_better: bool) -> Metric {
    Metric { id, name, unit, higher_is_better }
}

/// Every row of the load generator's table, in order.
pub(super) const METRICS: [Metric; 19] = [
    metric("echo_rate", "(a) echo, 100 clients, 64 B, 8 in flight, uncapped loop", "messages/s", true),
    metric("echo_cpu", "(a) echo: server CPU per message", "µs/message", false),
    metric("tick_rate", "(b) echo at a 60 Hz tick, 50 clients, 64 B, 256 in flight", "messages/s", true),
    metric("tick_cpu", "(b) echo at a 60 Hz tick: server CPU per message", "µs/message", false),
    metric("tick_batch_rate", "(b) echo at a 60 Hz tick, batch calls (get_all_packets, send_packets)", "messages/s", true),
    metric("tick_batch_cpu", "(b) echo at a 60 Hz tick, batch calls: server CPU per message", "µs/message", false),
    metric("rtt_p50", "(c) round trip, one in flight, 4 clients: p50", "µs", false),
    metric("rtt_p99", "(c) round trip, one in flight, 4 clients: p99", "µs", false),
    metric("large_sized_rate", "(d) 1 MiB messages, buffers sized for them", "MB/s", true),
    metric("large_sized_cpu", "(d) 1 MiB, buffers sized: server CPU per message", "ms/message", false),
    metric("large_default_rate", "(d) 1 MiB messages, default settings", "MB/s", true),
    metric("large_default_cpu", "(d) 1 MiB, default settings: server CPU per message", "ms/message", false),
    metric("broadcast_main", "(e) broadcast 100 B at 60 Hz: main thread", "ms/tick", false),
    metric("broadcast_cpu", "(e) broadcast: server CPU, all threads", "ms/tick", false),
    metric("idle_poll", "(f) idle connections: poll", "µs/frame", false),
    metric("idle_memory", "(f) idle connections: memory", "KiB/connection", false),
    metric("idle_cpu", "(f) idle connections: server CPU, all threads", "% of a core", false),
    metric("churn_rate", "(g) churn", "connections/s", true),
    metric("churn_cpu", "(g) churn: server CPU per connection", "µs/connection", false),
];

/// The load generator's CPU (% of one core) in the measured window of (a), in [`Figures`].
pub(super) const LOADGEN_ECHO: &str = "loadgen_echo_cpu";
/// The load generator's CPU (% of one core) in the measured window of (b), in [`Figures`].
pub(super) const LOADGEN_TICK: &str = "loadgen_tick_cpu";

/// Why only ours has batch rows.
const NO_BATCH_CALLS: &str = "no batch calls: the built-in classes take and send one packet per call; the ceiling and Bun have no frame loop, so (b) is already their way";

/// Why the built-in classes get no "default settings" 1 MiB row (seen: the run fails at once).
const BUILTIN_LARGE_DEFAULTS: &str = "WebSocketPeer's default inbound_buffer_size (65535 bytes) is smaller than a message: it closes the connection with 1009";

/// The buffer settings a server runs with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Buffers {
    /// The Godot servers' queues at 16 MiB; the ceiling's read buffer 4 KiB, like our core's.
    Standard,
    /// As `Standard`, and the ceiling's (and the load generator's) read buffer 1 MiB.
    LargeSized,
    /// Every setting as shipped.
    Defaults,
}

/// Runs the load generator's workloads and keeps every RESULT line for the report.
pub(super) struct RawBench {
    /// The Godot binary.
    pub(super) godot: PathBuf,
    /// `godot-project/`.
    pub(super) project: PathBuf,
    /// `wsrs-bench`.
    pub(super) loadgen: PathBuf,
    /// `rust/bench/bun/server.js`.
    pub(super) bun_script: PathBuf,
    /// The `bun` binary, or why Bun's rows are skipped.
    pub(super) bun: Result<PathBuf, String>,
    /// How long and how large.
    pub(super) scale: Scale,
    /// Every load generator RESULT line, prefixed by the server.
    pub(super) log: Vec<String>,
}

impl RawBench {
    /// Starts `server` in `mode` (echo, tick, tick_batch for ours, broadcast or idle) waiting for
    /// `expected` peers.
    fn server(&self, server: Server, mode: &str, expected: usize, buffers: Buffers) -> Result<(Running, u16), String> {
        let port = free_port()?;
        // The engine-less servers have no frame loop: they echo as messages come, tick or not.
        let plain_mode = if mode == "tick" { "echo" } else { mode };
        let command = match server {
            Server::Ceiling => {
                let mut c = Command::new(&self.loadgen);
                c.args(["ceiling", &port.to_string(), plain_mode, &expected.to_string()]);
                if buffers == Buffers::LargeSized {
                    c.args(["--read-buffer", &(1 << 20).to_string()]);
                }
                c
            }
            Server::Bun => {
                let bun = self.bun.as_ref().map_err(|why| why.clone())?;
                let mut c = Command::new(bun);
                c.arg(&self.bun_script).args([plain_mode, &port.to_string(), &expected.to_string()]);
                c
            }
            Server::Ours | Server::OursInline | Server::Builtin => {
                let script = if server.is_ours() { "res://bench/ours_server.gd" } else { "res://bench/builtin_server.gd" };
                let settings = if buffers == Buffers::Defaults { "defaults" } else { "sized" };
                let mut c = Command::new(&self.godot);
                c.args(["--headless", "--path"]).arg(&self.project).args(["-s", script, "--", mode, &port.to_string(), &expected.to_string(), settings]);
                if server == Server::OursInline {
                    c.arg("inline");
                }
                c
            }
        };
        Ok((Running::start(command)?, port))
    }

    /// Runs the load generator against the server `pid` on `port`; its RESULT line and whether
    /// it passed.
    fn load(&mut self, server: Server, workload: &str, port: u16, pid: u32, args: &[&str]) -> Result<(String, bool), String> {
        let mut command = Command::new(&self.loadgen);
        command.args(["load", workload, &port.to_string(), "--server-pid", &pid.to_string()]).args(args);
        let limit = Duration::from_secs(self.scale.seconds * 3 + 120);
        let run = process::run_bounded(&mut command, limit, process::Echo::Quiet)?;
        let line = run.output.lines().find(|l| l.starts_with("RESULT")).map(str::to_string).unwrap_or_default();
        let passed = run.status.is_some_and(|s| s.success()) && !line.is_empty() && line.contains(" ok=true");
        println!("  {line}");
        if !passed {
            println!("  FAILED: {}", run.output.lines().last().unwrap_or("no output"));
        }
        self.log.push(format!("{server:?} {line}"));
        Ok((line, passed))
    }

    /// Every metric of `server` skipped for `why`.
    pub(super) fn skipped(why: &str) -> Figures {
        METRICS.iter().map(|m| (m.id, Value::Skipped(why.to_string()))).collect()
    }

    /// Runs every workload against `server`; its figures and whether every run passed.
    pub(super) fn measure(&mut self, server: Server) -> Result<(Figures, bool), String> {
        if let (Server::Bun, Err(why)) = (server, &self.bun) {
            println!("  skipped: {why}");
            return Ok((RawBench::skipped(&format!("Bun unavailable: {why}")), true));
        }
        let mut f = Figures::new();
        let mut ok = true;
        let seconds = self.scale.seconds.to_string();
        let num = |line: &str, name: &str| Value::Num(field(line, name).unwrap_or(0.0));
        let scaled = |line: &str, name: &str, factor: f64| Value::Num(field(line, name).unwrap_or(0.0) * factor);

        // (a) echo, (c) one in flight and (g) churn share one echo server.
        let (running, port) = self.server(server, "echo", 0, Buffers::Standard)?;
        let clients = self.scale.echo_clients.to_string();
        let (line, passed) = self.load(server, "echo", port, running.pid(), &["--clients", &clients, "--seconds", &seconds])?;
        ok &= passed;
        f.insert("echo_rate", num(&line, "messages_per_s"));
        f.insert("echo_cpu", num(&line, "server_cpu_us_per_message"));
        f.insert(LOADGEN_ECHO, num(&line, "loadgen_window_cpu_percent"));
        let latency_seconds = self.scale.latency_seconds.to_string();
        let (line, passed) = self.load(server, "echo", port, running.pid(), &["--clients", "4", "--window", "1", "--seconds", &latency_seconds])?;
        ok &= passed;
        f.insert("rtt_p50", num(&line, "p50_us"));
        f.insert("rtt_p99", num(&line, "p99_us"));
        let (line, passed) = self.load(server, "churn", port, running.pid(), &["--seconds", &seconds])?;
        ok &= passed;
        f.insert("churn_rate", num(&line, "connections_per_s"));
        f.insert("churn_cpu", num(&line, "server_cpu_us_per_connection"));
        drop(running);

        // (b) echo with the Godot servers at 60 frames a second.
        let (running, port) = self.server(server, "tick", 0, Buffers::Standard)?;
        let (line, passed) = self.load(server, "echo", port, running.pid(), &["--clients", "50", "--window", "256", "--seconds", &seconds])?;
        ok &= passed;
        f.insert("tick_rate", num(&line, "messages_per_s"));
        f.insert("tick_cpu", num(&line, "server_cpu_us_per_message"));
        f.insert(LOADGEN_TICK, num(&line, "loadgen_window_cpu_percent"));
        drop(running);
        if server.is_ours() {
            let (running, port) = self.server(server, "tick_batch", 0, Buffers::Standard)?;
            let (line, passed) = self.load(server, "echo", port, running.pid(), &["--clients", "50", "--window", "256", "--seconds", &seconds])?;
            ok &= passed;
            f.insert("tick_batch_rate", num(&line, "messages_per_s"));
            f.insert("tick_batch_cpu", num(&line, "server_cpu_us_per_message"));
            drop(running);
        } else {
            f.insert("tick_batch_rate", Value::Skipped(NO_BATCH_CALLS.into()));
            f.insert("tick_batch_cpu", Value::Skipped(NO_BATCH_CALLS.into()));
        }

        // (d) 1 MiB messages: buffers sized for them, then every setting as shipped. Each run
        // gets its own server so that buffers start empty.
        let large = ["--clients", "4", "--window", "2", "--size", "1048576", "--seconds", &seconds];
        let (running, port) = self.server(server, "echo", 0, Buffers::LargeSized)?;
        let sized: Vec<&str> = large.iter().copied().chain(["--read-buffer", "1048576"]).collect();
        let (line, passed) = self.load(server, "echo", port, running.pid(), &sized)?;
        ok &= passed;
        f.insert("large_sized_rate", num(&line, "mb_per_s"));
        f.insert("large_sized_cpu", scaled(&line, "server_cpu_us_per_message", 1e-3));
        drop(running);
        if server == Server::Builtin {
            println!("  1 MiB with default settings: skipped ({BUILTIN_LARGE_DEFAULTS})");
            f.insert("large_default_rate", Value::Skipped(BUILTIN_LARGE_DEFAULTS.into()));
            f.insert("large_default_cpu", Value::Skipped(BUILTIN_LARGE_DEFAULTS.into()));
        } else {
            let (running, port) = self.server(server, "echo", 0, Buffers::Defaults)?;
            let (line, passed) = self.load(server, "echo", port, running.pid(), &large)?;
            ok &= passed;
            f.insert("large_default_rate", num(&line, "mb_per_s"));
            f.insert("large_default_cpu", scaled(&line, "server_cpu_us_per_message", 1e-3));
            drop(running);
        }

        // (e) broadcast: the multiplayer servers send each client its id first.
        let clients = self.scale.broadcast_clients;
        let (running, port) = self.server(server, "broadcast", clients, Buffers::Standard)?;
        let count = clients.to_string();
        let mut args = vec!["--clients", &count, "--seconds", &seconds];
        if matches!(server, Server::Ours | Server::OursInline | Server::Builtin) {
            args.push("--skip-first");
        }
        let (line, passed) = self.load(server, "broadcast", port, running.pid(), &args)?;
        ok &= passed && field(&line, "errors") == Some(0.0);
        f.insert("broadcast_cpu", scaled(&line, "server_cpu_us_per_message", clients as f64 / 1000.0));
        // Only frames with every client connected count; wait for the report after the run.
        std::thread::sleep(Duration::from_millis(1100));
        match running.last_full_report(clients) {
            Some(r) => {
                f.insert("broadcast_main", Value::Num(r.busy_us / r.frames / 1000.0));
            }
            None => {
                println!("  FAILED: the server never had {clients} clients connected at once");
                ok = false;
            }
        }
        drop(running);

        // (f) idle: resident memory before and with every connection open, poll time per frame,
        // CPU while they are held.
        let (passed, idle) = self.idle(server)?;
        ok &= passed;
        f.extend(idle);
        Ok((f, ok))
    }

    /// The idle workload: memory per connection, poll time per frame and server CPU.
    fn idle(&mut self, server: Server) -> Result<(bool, Figures), String> {
        let mut f = Figures::new();
        let clients = self.scale.idle_clients;
        let (running, port) = self.server(server, "idle", clients, Buffers::Standard)?;
        std::thread::sleep(Duration::from_millis(1500));
        let rss_before = running.rss_kib();
        let mut command = Command::new(&self.loadgen);
        let hold = self.scale.seconds + 3 + self.scale.idle_cpu_seconds;
        command.args(["load", "idle", &port.to_string(), "--clients", &clients.to_string(), "--seconds", &hold.to_string()]);
        let loadgen = Running::start_plain(command)?;
        let full = running.wait_for(|l| Report::parse(l).is_some_and(|r| r.peers >= clients as f64 && r.frames >= 60.0), Duration::from_secs(120));
        let rss_with = running.rss_kib();
        let cpu_start = running.cpu_seconds();
        std::thread::sleep(Duration::from_secs(self.scale.idle_cpu_seconds));
        let cpu_end = running.cpu_seconds();
        let line = loadgen.finish();
        println!("  {line}");
        self.log.push(format!("{server:?} {line}"));
        let passed = full.is_ok() && field(&line, "closed_by_server") == Some(0.0) && line.contains("ok=true");
        if !passed {
            println!("  FAILED: idle connections were not all held");
        }
        if server == Server::Bun {
            f.insert("idle_poll", Value::Skipped("no frame loop (uWebSockets works inside Bun's event loop; see its CPU)".into()));
        } else if let Some(r) = running.last_full_report(clients) {
            f.insert("idle_poll", Value::Num(r.busy_us / r.frames));
        }
        let kib = (rss_with - rss_before) / clients as f64;
        f.insert("idle_memory", Value::Num(kib));
        let cpu_percent = cpu_start.zip(cpu_end).map(|(a, b)| 100.0 * (b - a) / self.scale.idle_cpu_seconds as f64);
        if let Some(percent) = cpu_percent {
            f.insert("idle_cpu", Value::Num(percent));
        }
        println!(
            "  idle: {:.1} KiB per connection (RSS {rss_before:.0} -> {rss_with:.0} KiB), server CPU {:.1}% of a core",
            kib,
            cpu_percent.unwrap_or(0.0)
        );
        Ok((passed, f))
    }
}
