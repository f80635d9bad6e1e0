//! `cargo xtask bench [--quick]`: the same workloads, from the same load generator
//! (`rust/bench`, `wsrs-bench load`), against three servers on this machine:
//! - **ours**: `WebSocketServer` in headless Godot (`godot-project/bench/ours_server.gd`);
//! - **built-in**: Godot's own classes in headless Godot (`godot-project/bench/builtin_server.gd`):
//!   `TCPServer` + `WebSocketPeer` for raw workloads, `WebSocketMultiplayerPeer` for broadcast;
//! - **ceiling**: tungstenite and mio alone, no engine (`wsrs-bench ceiling`).
//!
//! Workloads: echo (100 clients, 64-byte pipelined messages), large (1 MiB messages), broadcast
//! (60 Hz, 100 bytes to 1,000 clients), idle (10,000 connections), churn (connect + handshake +
//! close). Every message is checked by the receiver; a run that loses one fails and writes
//! nothing. Results go to `docs/bench/README.md` and `docs/bench/chart.svg`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::process;

/// The three servers, in table order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Server {
    Ours,
    Builtin,
    Ceiling,
}

impl Server {
    const ALL: [Server; 3] = [Server::Ours, Server::Builtin, Server::Ceiling];

    fn label(self) -> &'static str {
        match self {
            Server::Ours => "ours (WebSocketServer)",
            Server::Builtin => "Godot built-in",
            Server::Ceiling => "ceiling (tungstenite, no engine)",
        }
    }
}

/// How long and how large each workload runs.
struct Scale {
    seconds: u64,
    echo_clients: usize,
    broadcast_clients: usize,
    idle_clients: usize,
}

/// What one server achieved (0 where a figure could not be measured).
#[derive(Default, Clone, Debug)]
struct Figures {
    echo_messages_per_s: f64,
    echo_p50_us: f64,
    echo_p99_us: f64,
    echo_loadgen_cpu: f64,
    large_mb_per_s: f64,
    broadcast_ms_per_tick: f64,
    idle_poll_us: f64,
    idle_kib_per_connection: f64,
    churn_per_s: f64,
}

/// A running bench server with its output collected line by line.
struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Running {
    /// Starts a bench server and waits for its `READY` line.
    fn start(command: Command) -> Result<Running, String> {
        let running = Running::start_plain(command)?;
        running.wait_for(|l| l == "READY", Duration::from_secs(60)).map_err(|e| format!("the bench server did not start: {e}"))?;
        Ok(running)
    }

    /// Waits until a line matches; the line.
    fn wait_for(&self, matches: impl Fn(&str) -> bool, limit: Duration) -> Result<String, String> {
        let start = Instant::now();
        loop {
            if let Some(line) = self.lines.lock().ok().and_then(|l| l.iter().find(|l| matches(l)).cloned()) {
                return Ok(line);
            }
            if start.elapsed() > limit {
                return Err(format!("nothing matched in {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The newest `BENCH` line with at least `peers` peers connected.
    fn last_full_report(&self, peers: usize) -> Option<Report> {
        let lines = self.lines.lock().ok()?;
        lines.iter().rev().filter_map(|l| Report::parse(l)).find(|r| r.peers >= peers as f64 && r.frames > 0.0)
    }

    /// Resident memory in KiB (Linux), 0 where unknown.
    fn rss_kib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
            .unwrap_or(0.0)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed `BENCH peers=.. frames=.. busy_us=.. echoed=..` line.
struct Report {
    peers: f64,
    frames: f64,
    busy_us: f64,
}

impl Report {
    fn parse(line: &str) -> Option<Report> {
        let rest = line.strip_prefix("BENCH ")?;
        let field = |name: &str| -> Option<f64> { rest.split_whitespace().find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok()) };
        Some(Report { peers: field("peers")?, frames: field("frames")?, busy_us: field("busy_us")? })
    }
}

/// `key=value` fields of a loadgen `RESULT` line.
fn result_field(line: &str, name: &str) -> Option<f64> {
    line.split_whitespace().find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
}

struct Bench {
    godot: PathBuf,
    project: PathBuf,
    loadgen: PathBuf,
    scale: Scale,
    /// Every loadgen RESULT line, for the report.
    log: Vec<String>,
}

/// Runs every workload against every server; Ok(false) when a run lost or reordered a message.
pub(crate) fn run(godot: &Path, root: &Path, loadgen: &Path, quick: bool, quick_dir: &Path) -> Result<bool, String> {
    let scale = if quick {
        Scale { seconds: 1, echo_clients: 100, broadcast_clients: 200, idle_clients: 1000 }
    } else {
        Scale { seconds: 10, echo_clients: 100, broadcast_clients: 1000, idle_clients: 10_000 }
    };
    let mut bench = Bench { godot: godot.to_path_buf(), project: root.join("godot-project"), loadgen: loadgen.to_path_buf(), scale, log: Vec::new() };
    let mut figures = Vec::new();
    let mut ok = true;
    for server in Server::ALL {
        println!("== {}", server.label());
        let (f, passed) = bench.measure(server)?;
        ok &= passed;
        figures.push(f);
    }
    if !ok {
        println!("bench: a run lost, reordered or corrupted messages (see above); nothing written");
        return Ok(false);
    }
    let markdown = report_markdown(root, &bench, &figures, quick);
    let svg = chart_svg(&figures);
    // A quick run is a smoke test: its figures stay out of the committed report.
    let dir = if quick { quick_dir.to_path_buf() } else { root.join("docs/bench") };
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let (md_path, svg_path) = (dir.join("README.md"), dir.join("chart.svg"));
    std::fs::write(&md_path, &markdown).map_err(|e| format!("cannot write {}: {e}", md_path.display()))?;
    std::fs::write(&svg_path, svg).map_err(|e| format!("cannot write {}: {e}", svg_path.display()))?;
    println!("{markdown}");
    println!("bench: wrote {} and {}", md_path.display(), svg_path.display());
    Ok(true)
}

impl Bench {
    fn server(&self, server: Server, mode: &str, expected: usize) -> Result<(Running, u16), String> {
        let port = free_port()?;
        let command = match server {
            Server::Ceiling => {
                let mut c = Command::new(&self.loadgen);
                c.args(["ceiling", &port.to_string(), mode, &expected.to_string()]);
                c
            }
            Server::Ours | Server::Builtin => {
                let script = if server == Server::Ours { "res://bench/ours_server.gd" } else { "res://bench/builtin_server.gd" };
                let mut c = Command::new(&self.godot);
                c.args(["--headless", "--path"]).arg(&self.project).args(["-s", script, "--", mode, &port.to_string(), &expected.to_string()]);
                c
            }
        };
        Ok((Running::start(command)?, port))
    }

    /// Runs the load generator; its RESULT line and whether it passed.
    fn load(&mut self, server: Server, workload: &str, port: u16, args: &[String]) -> Result<(String, bool), String> {
        let mut command = Command::new(&self.loadgen);
        command.args(["load", workload, &port.to_string()]).args(args);
        let limit = Duration::from_secs(self.scale.seconds * 3 + 120);
        let run = process::run_bounded(&mut command, limit, process::Echo::Quiet)?;
        let line = run.output.lines().find(|l| l.starts_with("RESULT")).map(str::to_string).unwrap_or_default();
        let passed = run.status.is_some_and(|s| s.success()) && !line.is_empty();
        println!("  {line}");
        if !passed {
            println!("  FAILED: {}", run.output.lines().last().unwrap_or("no output"));
        }
        self.log.push(format!("{:?} {line}", server));
        Ok((line, passed))
    }

    fn measure(&mut self, server: Server) -> Result<(Figures, bool), String> {
        let mut f = Figures::default();
        let mut ok = true;
        let seconds = self.scale.seconds.to_string();

        // (a) echo and (e) churn share the echo server; (b) gets its own so buffers start empty.
        let (running, port) = self.server(server, "echo", 0)?;
        let (line, passed) = self.load(server, "echo", port, &["--clients".into(), self.scale.echo_clients.to_string(), "--seconds".into(), seconds.clone()])?;
        ok &= passed;
        f.echo_messages_per_s = result_field(&line, "messages_per_s").unwrap_or(0.0);
        f.echo_p50_us = result_field(&line, "p50_us").unwrap_or(0.0);
        f.echo_p99_us = result_field(&line, "p99_us").unwrap_or(0.0);
        f.echo_loadgen_cpu = result_field(&line, "loadgen_cpu_percent").unwrap_or(0.0);
        let (line, passed) = self.load(server, "churn", port, &["--seconds".into(), seconds.clone()])?;
        ok &= passed;
        f.churn_per_s = result_field(&line, "connections_per_s").unwrap_or(0.0);
        drop(running);

        let (running, port) = self.server(server, "echo", 0)?;
        let args: Vec<String> = ["--clients", "4", "--window", "2", "--size", "1048576", "--seconds", &seconds].iter().map(|s| s.to_string()).collect();
        let (line, passed) = self.load(server, "echo", port, &args)?;
        ok &= passed;
        f.large_mb_per_s = result_field(&line, "mb_per_s").unwrap_or(0.0);
        drop(running);

        // (c) broadcast: the multiplayer servers send each client its id first.
        let clients = self.scale.broadcast_clients;
        let (running, port) = self.server(server, "broadcast", clients)?;
        let mut args: Vec<String> = vec!["--clients".into(), clients.to_string(), "--seconds".into(), seconds.clone()];
        if server != Server::Ceiling {
            args.push("--skip-first".into());
        }
        let (line, passed) = self.load(server, "broadcast", port, &args)?;
        ok &= passed && result_field(&line, "errors") == Some(0.0);
        // Only frames with every client connected count; wait for the report after the run.
        std::thread::sleep(Duration::from_millis(1100));
        match running.last_full_report(clients) {
            Some(r) => f.broadcast_ms_per_tick = r.busy_us / r.frames / 1000.0,
            None => {
                println!("  FAILED: the server never had {clients} clients connected at once");
                ok = false;
            }
        }
        drop(running);

        // (d) idle: resident memory before and with every connection open, poll time per frame.
        let clients = self.scale.idle_clients;
        let (running, port) = self.server(server, "idle", clients)?;
        std::thread::sleep(Duration::from_millis(1500));
        let rss_before = running.rss_kib();
        let mut command = Command::new(&self.loadgen);
        command.args(["load", "idle", &port.to_string(), "--clients", &clients.to_string(), "--seconds", &(self.scale.seconds + 3).to_string()]);
        let loadgen = Running::start_plain(command)?;
        let full = running.wait_for(|l| Report::parse(l).is_some_and(|r| r.peers >= clients as f64 && r.frames >= 60.0), Duration::from_secs(120));
        let rss_with = running.rss_kib();
        let line = loadgen.finish()?;
        println!("  {line}");
        self.log.push(format!("{server:?} {line}"));
        let passed = full.is_ok() && result_field(&line, "closed_by_server") == Some(0.0) && line.contains("ok=true");
        if !passed {
            println!("  FAILED: idle connections were not all held");
        }
        ok &= passed;
        if let Some(r) = running.last_full_report(clients) {
            f.idle_poll_us = r.busy_us / r.frames;
        }
        f.idle_kib_per_connection = (rss_with - rss_before) / clients as f64;
        println!("  idle: {:.1} us per frame, {:.1} KiB per connection (RSS {:.0} -> {:.0} KiB)", f.idle_poll_us, f.idle_kib_per_connection, rss_before, rss_with);
        drop(running);
        Ok((f, ok))
    }
}

impl Running {
    /// Starts a process and collects its output lines.
    fn start_plain(mut command: Command) -> Result<Running, String> {
        let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().map_err(|e| format!("cannot start {command:?}: {e}"))?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(mut lines) = sink.lock() {
                    lines.push(line);
                }
            }
        });
        Ok(Running { child, lines })
    }

    /// Waits for the process to end (at most 5 minutes); its RESULT line.
    fn finish(mut self) -> Result<String, String> {
        let start = Instant::now();
        while self.child.try_wait().ok().flatten().is_none() && start.elapsed() < Duration::from_secs(300) {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(100));
        let lines = self.lines.lock().map(|l| l.clone()).unwrap_or_default();
        Ok(lines.into_iter().find(|l| l.starts_with("RESULT")).unwrap_or_else(|| "RESULT ok=false (no result)".into()))
    }
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).map_err(|e| format!("no free port: {e}"))
}

/// One compared figure: its name, unit, whether higher is better, and a getter.
struct Metric {
    name: &'static str,
    unit: &'static str,
    higher_is_better: bool,
    get: fn(&Figures) -> f64,
}

const METRICS: [Metric; 8] = [
    Metric { name: "(a) echo, 100 clients, 64 B", unit: "messages/s", higher_is_better: true, get: |f| f.echo_messages_per_s },
    Metric { name: "(a) echo round trip p50", unit: "µs", higher_is_better: false, get: |f| f.echo_p50_us },
    Metric { name: "(a) echo round trip p99", unit: "µs", higher_is_better: false, get: |f| f.echo_p99_us },
    Metric { name: "(b) 1 MiB messages", unit: "MB/s", higher_is_better: true, get: |f| f.large_mb_per_s },
    Metric { name: "(c) broadcast 100 B at 60 Hz", unit: "main-thread ms/tick", higher_is_better: false, get: |f| f.broadcast_ms_per_tick },
    Metric { name: "(d) idle connections: poll", unit: "µs/frame", higher_is_better: false, get: |f| f.idle_poll_us },
    Metric { name: "(d) idle connections: memory", unit: "KiB/connection", higher_is_better: false, get: |f| f.idle_kib_per_connection },
    Metric { name: "(e) churn", unit: "connections/s", higher_is_better: true, get: |f| f.churn_per_s },
];

/// How many times better `ours` is than `other` (>1: ours is better).
fn advantage(metric: &Metric, ours: f64, other: f64) -> f64 {
    if ours <= 0.0 || other <= 0.0 {
        return 0.0;
    }
    if metric.higher_is_better {
        ours / other
    } else {
        other / ours
    }
}

fn format_value(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn command_output(program: &str, args: &[&str], dir: &Path) -> String {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn machine() -> String {
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

fn report_markdown(root: &Path, bench: &Bench, figures: &[Figures], quick: bool) -> String {
    let commit = command_output("git", &["rev-parse", "--short", "HEAD"], root);
    let dirty = !command_output("git", &["status", "--porcelain", "--untracked-files=no"], root).is_empty();
    let godot = command_output(&bench.godot.display().to_string(), &["--version"], root);
    let date = command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"], root);
    let mut md = String::new();
    md.push_str("# Benchmarks\n\n");
    md.push_str(&format!(
        "Written by `cargo xtask bench{}` on {date}: commit `{commit}`{}, Godot {godot}, {}.\n\
         One load generator (`rust/bench`, `wsrs-bench load`, release build, its own threads) drives three servers \
         on this machine in turn: **ours** (`WebSocketServer` in headless Godot, release build, `godot-project/bench/ours_server.gd`), \
         Godot's **built-in** classes in headless Godot (`TCPServer` + `WebSocketPeer.accept_stream` for raw workloads, \
         `WebSocketMultiplayerPeer` for broadcast; `godot-project/bench/builtin_server.gd`), and the **ceiling**: \
         tungstenite and mio on one thread with no engine (`wsrs-bench ceiling`). Every message is checked in order at \
         its receiver; a run that loses one fails and writes nothing. Each workload runs {} s.\n\n",
        if quick { " --quick" } else { "" },
        if dirty { " with uncommitted changes" } else { "" },
        machine(),
        bench.scale.seconds
    ));
    md.push_str("![chart](chart.svg)\n\n");
    md.push_str("| workload | unit | ours | built-in | ceiling | ours vs built-in | ours / ceiling |\n|---|---|---:|---:|---:|---:|---:|\n");
    for metric in &METRICS {
        let [ours, builtin, ceiling] = [0, 1, 2].map(|i| (metric.get)(&figures[i]));
        let better = advantage(metric, ours, builtin);
        let of_ceiling = advantage(metric, ours, ceiling);
        md.push_str(&format!(
            "| {} | {} {} | {} | {} | {} | {:.2}x {} | {:.0}% |\n",
            metric.name,
            metric.unit,
            if metric.higher_is_better { "(higher is better)" } else { "(lower is better)" },
            format_value(ours),
            format_value(builtin),
            format_value(ceiling),
            better,
            if better >= 1.0 { "better" } else { "worse" },
            of_ceiling * 100.0
        ));
    }
    md.push_str(&format!(
        "\n\"ours vs built-in\" is how many times better ours is (a speed-up, or a reduction for lower-is-better \
         figures); \"ours / ceiling\" is ours as a share of the ceiling's performance. (c) and (d) time only the \
         server's own calls on Godot's main thread (`poll()` and the sends); our I/O thread's work is not in them, \
         the ceiling's work is all on its one thread. The load generator used {:.0}% / {:.0}% / {:.0}% of one core \
         during (a) against ours / built-in / ceiling.\n\n",
        figures[0].echo_loadgen_cpu, figures[1].echo_loadgen_cpu, figures[2].echo_loadgen_cpu
    ));
    md.push_str(
        "How the servers run:\n\
         - (a), (b), (e): the Godot servers run frames back to back (`Engine.max_fps = 0`, \
         `OS.low_processor_usage_mode_sleep_usec = 0`; headless Godot otherwise sleeps 6.9 ms a frame) and \
         echo every message from GDScript as it is received; the built-in one polls every `WebSocketPeer` each frame.\n\
         - (c), (d): 60 frames a second. The load generator connects every client first; only frames with every \
         client connected are measured. Godot's `WebSocketMultiplayerPeer` admits one connection per `poll()`, so \
         its clients wait (and some are reset and retried: `connect_retries`) before (c) starts.\n\
         - The load generator drives its connections from half the machine's cores (one event loop per core), \
         leaving the rest to the server; on a 2-core machine the server's threads and the load generator still share \
         the cores, which the ceiling (one thread) feels least.\n\n",
    );
    md.push_str("## Raw load generator results\n\n```\n");
    for line in &bench.log {
        md.push_str(line);
        md.push('\n');
    }
    md.push_str("```\n");
    md
}

/// A horizontal bar chart: for each metric, the three servers' advantage over the built-in
/// (built-in = 1), on a log scale.
fn chart_svg(figures: &[Figures]) -> String {
    let colours = ["#2f7ed8", "#999999", "#e07b39"];
    let (left, bar_h, gap, width) = (270.0, 12.0, 14.0, 760.0);
    let group_h = 3.0 * bar_h + gap;
    let height = 60.0 + METRICS.len() as f64 * group_h + 40.0;
    // log10 scale from 0.1x to 10,000x.
    let (lo, hi) = (-1.0f64, 4.0f64);
    let plot_w = width - left - 80.0;
    let x = |ratio: f64| left + ((ratio.max(1e-3).log10() - lo) / (hi - lo)).clamp(0.0, 1.0) * plot_w;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"18\" font-size=\"14\" font-weight=\"bold\">Times better than Godot's built-in WebSocket (log scale; built-in = 1x)</text>\n"
    );
    for (i, (label, colour)) in ["ours", "built-in", "ceiling (tungstenite, no engine)"].iter().zip(colours).enumerate() {
        let lx = 10.0 + i as f64 * 120.0;
        svg.push_str(&format!("<rect x=\"{lx}\" y=\"28\" width=\"10\" height=\"10\" fill=\"{colour}\"/><text x=\"{}\" y=\"37\">{label}</text>\n", lx + 14.0));
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
        svg.push_str(&format!("<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{} ({})</text>\n", left - 8.0, y0 + 1.5 * bar_h + 4.0, metric.name, metric.unit));
        let builtin = (metric.get)(&figures[1]);
        for (s, colour) in colours.iter().enumerate() {
            let value = (metric.get)(&figures[s]);
            let ratio = advantage(metric, value, builtin);
            let y = y0 + s as f64 * bar_h;
            let (x0, x1) = (x(0.1), x(ratio));
            svg.push_str(&format!(
                "<rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\">{} ({:.2}x)</text>\n",
                (x1 - x0).max(1.0),
                bar_h - 2.0,
                x1 + 4.0,
                y + bar_h - 3.0,
                format_value(value),
                ratio
            ));
        }
    }
    svg.push_str("</svg>\n");
    svg
}
