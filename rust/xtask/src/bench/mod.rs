//! `cargo xtask bench [--quick] [--only SELECTORS]`, three parts:
//! - **load generator** (`raw.rs`): the same workloads from the same load generator
//!   (`rust/bench`, `wsrs-bench load`) against five servers on this machine: **ours**
//!   (`WebSocketServer` in headless Godot, `godot-project/bench/ours_server.gd`), **ours inline**
//!   (the same with `use_io_thread = false`), Godot's
//!   **built-in** classes (`godot-project/bench/builtin_server.gd`), the **ceiling** (tungstenite
//!   and mio alone, `wsrs-bench ceiling`) and **Bun** (`Bun.serve`, `rust/bench/bun/server.js`,
//!   installed by `bun.rs`). Workloads: echo uncapped and at a 60 Hz tick, round trip with one
//!   message in flight, 1 MiB messages (buffers sized, and default settings), broadcast, idle
//!   connections, churn; every row with the server's CPU (all threads, from /proc).
//! - **Godot to Godot** (`rpc.rs`): reliable RPCs between two Godot processes through
//!   SceneMultiplayer over ours, ours inline, the built-in `WebSocketMultiplayerPeer` and ENet,
//!   with the loops uncapped, capped at 1000 fps, and uncapped on one core each.
//! - **compression** (`compression.rs`): JSON text messages of about 300 bytes and about 1 MiB
//!   from a Node `ws` load generator that offers permessage-deflate, echoed by ours (with its I/O
//!   thread and inline), Node's `ws` and Python's `websockets`, each with permessage-deflate on
//!   and off: bytes on the wire per message, messages/s, server CPU per message.
//!
//! Every message and RPC is checked by its receiver; a run that loses one fails and writes
//! nothing. Results go to `docs/bench/README.md` and `docs/bench/chart.svg` (`report.rs`); a
//! `--quick` or `--only` run writes them under `target/bench-quick/` instead.
//!
//! `--only scale` (`scale.rs`, left out of the full run: it takes minutes and gigabytes) opens
//! 50,000 connections to one server process (fewer where the descriptor limit does not allow
//! them) and writes `docs/bench/scale.md` (`--quick`: 2,000 connections, to
//! `target/bench-quick/scale.md`): memory per connection, `poll()` time idle and with some
//! connections active, the time to broadcast one message to all, CPU time.
//!
//! `--baseline REV` measures what a change costs (`baseline.rs`): the parts that use our extension
//! (`raw:ours`, `raw:ours_inline`, `rpc:ours`, `rpc:ours_inline`, or those `--only` names) run with
//! the extension built from git revision REV (in a worktree under `<target>/bench-baseline/`, with
//! its own `godot-project/`) and with the working tree's, interleaved (before, after, before, after;
//! one round each with `--quick`), the load generator being the working tree's for both. It writes
//! `docs/bench/before-after.md` (`--quick`: `target/bench-quick/before-after.md`): each round's
//! figures, their means, the change in percent and the round-to-round spread of each build, which
//! a change must exceed to count as measured. It leaves `README.md` and `chart.svg` alone.

mod baseline;
mod bun;
mod compression;
mod raw;
mod report;
mod rpc;
mod running;
mod scale;

use std::path::Path;

use raw::{RawBench, Server};
pub(crate) use report::{command_output, machine};
pub(crate) use running::process_cpu_seconds;

/// How long and how large each workload runs.
pub(super) struct Scale {
    /// Seconds each load generator workload measures.
    seconds: u64,
    /// Seconds of the one-in-flight round-trip run.
    latency_seconds: u64,
    /// Clients of the uncapped echo.
    echo_clients: usize,
    /// Clients of the broadcast.
    broadcast_clients: usize,
    /// Connections of the idle workload.
    idle_clients: usize,
    /// Seconds the idle server's CPU is measured, every connection open.
    idle_cpu_seconds: u64,
    /// Seconds each RPC run measures throughput.
    rpc_seconds: u64,
    /// Seconds each RPC run measures the round trip with one in flight.
    rpc_latency_seconds: u64,
    /// Seconds each compression run measures.
    compression_seconds: u64,
}

impl Scale {
    /// The full scale, or the smoke run's with `quick`.
    fn new(quick: bool) -> Scale {
        if quick {
            Scale {
                seconds: 1,
                latency_seconds: 1,
                echo_clients: 100,
                broadcast_clients: 200,
                idle_clients: 1000,
                idle_cpu_seconds: 1,
                rpc_seconds: 1,
                rpc_latency_seconds: 1,
                compression_seconds: 1,
            }
        } else {
            Scale {
                seconds: 10,
                latency_seconds: 5,
                echo_clients: 100,
                broadcast_clients: 1000,
                idle_clients: 10_000,
                idle_cpu_seconds: 2,
                rpc_seconds: 10,
                rpc_latency_seconds: 5,
                compression_seconds: 5,
            }
        }
    }
}

/// What `cargo xtask bench --help` prints.
pub(crate) const USAGE: &str = "\
usage: cargo xtask bench [--quick] [--only SELECTORS] [--baseline REV]

  --quick           a smoke run: one second per workload, fewer connections; written to
                    target/bench-quick/ instead of docs/bench/
  --only SELECTORS  some parts only, comma-separated, written to target/bench-quick/:
                    raw, rpc, compression, raw:<ours|ours_inline|builtin|ceiling|bun>,
                    rpc:<ours|ours_inline|builtin|enet>, compression:<ours|ours_inline|node_ws|python>,
                    scale (50,000 connections to one server, or as many as RLIMIT_NOFILE allows;
                    only when named; writes docs/bench/scale.md, with --quick 2,000 connections
                    to target/bench-quick/scale.md)
  --baseline REV    before/after: the parts using our extension (raw:ours, raw:ours_inline,
                    rpc:ours, rpc:ours_inline; --only picks among these) run with the extension
                    built from git revision REV and with the working tree's, interleaved, two
                    rounds (one with --quick); writes docs/bench/before-after.md
                    (--quick: target/bench-quick/before-after.md), not README.md or chart.svg
  -h, --help        this text

Without --baseline: every part but scale, written to docs/bench/README.md and docs/bench/chart.svg.";

/// Every `--only` selector.
const SELECTORS: [&str; 17] = [
    "scale", "raw", "rpc", "compression", "raw:ours", "raw:ours_inline", "raw:builtin", "raw:ceiling", "raw:bun", "rpc:ours", "rpc:ours_inline", "rpc:builtin",
    "rpc:enet", "compression:ours", "compression:ours_inline", "compression:node_ws", "compression:python",
];

/// What `cargo xtask bench` was asked to do.
pub(crate) struct Options {
    /// A smoke run: one second per workload, fewer connections; written under `target/`.
    pub(crate) quick: bool,
    /// Only these parts (`scale`, `raw`, `rpc`, `compression`, `raw:<ours|ours_inline|builtin|ceiling|bun>`,
    /// `rpc:<ours|ours_inline|builtin|enet>`, `compression:<ours|ours_inline|node_ws|python>`);
    /// empty for everything.
    pub(crate) only: Vec<String>,
    /// `--baseline REV`: compare the extension built from this git revision with the working tree's.
    pub(crate) baseline: Option<String>,
}

impl Options {
    /// Parses the arguments after `bench`; Ok(None) when they ask for the usage (`-h`, `--help`).
    pub(crate) fn parse(args: &[String]) -> Result<Option<Options>, String> {
        let mut options = Options { quick: false, only: Vec::new(), baseline: None };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "-h" | "--help" => return Ok(None),
                "--quick" => options.quick = true,
                "--only" => match args.next().filter(|a| !a.starts_with('-')) {
                    Some(selectors) => options.only.extend(selectors.split(',').filter(|s| !s.is_empty()).map(str::to_string)),
                    None => return Err("--only needs parts, e.g. --only raw:ours,rpc".into()),
                },
                "--baseline" => match args.next().filter(|a| !a.starts_with('-')) {
                    Some(rev) => options.baseline = Some(rev.clone()),
                    None => return Err("--baseline needs a git revision, e.g. --baseline HEAD~1".into()),
                },
                other => return Err(format!("unknown argument {other:?} (cargo xtask bench --help lists them)")),
            }
        }
        let allowed: &[&str] = if options.baseline.is_some() { &baseline::SELECTORS } else { &SELECTORS };
        if let Some(unknown) = options.only.iter().find(|o| !allowed.contains(&o.as_str())) {
            let with = if options.baseline.is_some() { " with --baseline" } else { "" };
            return Err(format!("--only {unknown}{with}: choose among {}", allowed.join(", ")));
        }
        Ok(Some(options))
    }

    /// Whether the load generator runs against `server`.
    fn runs_server(&self, server: Server) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == "raw" || *o == format!("raw:{}", server.key()))
    }

    /// The RPC transports to run.
    fn rpc_transports(&self) -> Vec<rpc::Transport> {
        rpc::Transport::ALL
            .into_iter()
            .filter(|t| self.only.is_empty() || self.only.iter().any(|o| o == "rpc" || *o == format!("rpc:{}", t.key())))
            .collect()
    }

    /// The servers of the compression part to run.
    fn compression_hosts(&self) -> Vec<compression::Host> {
        compression::Host::ALL
            .into_iter()
            .filter(|h| self.only.is_empty() || self.only.iter().any(|o| o == "compression" || *o == format!("compression:{}", h.key())))
            .collect()
    }
}

/// Runs every workload against every server, then the RPC workload, then the compression part;
/// Ok(false) when a run lost, reordered or corrupted a message (or agreed to the wrong
/// compression). With `--baseline`, the before/after comparison instead (`baseline.rs`).
pub(crate) fn run(godot: &Path, root: &Path, loadgen: &Path, target_dir: &Path, options: &Options) -> Result<bool, String> {
    if let Some(rev) = &options.baseline {
        return baseline::run(godot, root, loadgen, target_dir, rev, options);
    }
    let mut ok = true;
    if options.only.iter().any(|o| o == "scale") {
        println!("== scale: many connections to one server process");
        ok &= scale::run(godot, root, loadgen, target_dir, options.quick)?;
        if options.only.iter().all(|o| o == "scale") {
            return Ok(ok);
        }
    }
    let scale = Scale::new(options.quick);
    let started = std::time::Instant::now();
    let runs_bun = options.runs_server(Server::Bun);
    let bun = if runs_bun { bun::bun(target_dir) } else { Err("not run (--only)".into()) };
    let mut raw = RawBench {
        godot: godot.to_path_buf(),
        project: root.join("godot-project"),
        loadgen: loadgen.to_path_buf(),
        bun_script: root.join("rust/bench/bun/server.js"),
        bun,
        scale,
        log: Vec::new(),
    };
    let mut figures = Vec::new();
    for server in Server::ALL {
        println!("== {}", server.label());
        if !options.runs_server(server) {
            println!("  skipped (--only)");
            figures.push(RawBench::skipped("not run (--only)"));
            continue;
        }
        let (f, passed) = raw.measure(server)?;
        ok &= passed;
        figures.push(f);
    }
    let mut rpc_log = Vec::new();
    let transports = options.rpc_transports();
    let (rpc_rows, passed) = rpc::run(godot, &root.join("godot-project"), &raw.scale, &transports, &mut rpc_log)?;
    ok &= passed;
    let hosts = options.compression_hosts();
    let mut compression = compression::CompressionBench {
        godot: godot.to_path_buf(),
        project: root.join("godot-project"),
        scripts: root.join("rust/bench"),
        node: if hosts.is_empty() { Err("not run (--only)".into()) } else { compression::node_ws(target_dir) },
        python: if hosts.contains(&compression::Host::Python) { compression::python(target_dir) } else { Err("not run (--only)".into()) },
        seconds: raw.scale.compression_seconds,
        log: Vec::new(),
    };
    let (compression_rows, passed) = compression.run(&hosts)?;
    ok &= passed;
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    if !ok {
        println!("bench: a run lost, reordered or corrupted messages (see above); nothing written");
        return Ok(false);
    }
    let markdown = report::markdown(&report::Context {
        root,
        godot,
        raw: &raw,
        figures: &figures,
        rpc_rows: &rpc_rows,
        rpc_log: &rpc_log,
        compression: &compression,
        compression_rows: &compression_rows,
        options,
        minutes,
    });
    let svg = report::chart_svg(&figures);
    // A quick or partial run is a smoke test: its figures stay out of the committed report.
    let partial = options.quick || !options.only.is_empty();
    let dir = if partial { target_dir.join("bench-quick") } else { root.join("docs/bench") };
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let (md_path, svg_path) = (dir.join("README.md"), dir.join("chart.svg"));
    std::fs::write(&md_path, &markdown).map_err(|e| format!("cannot write {}: {e}", md_path.display()))?;
    std::fs::write(&svg_path, svg).map_err(|e| format!("cannot write {}: {e}", svg_path.display()))?;
    println!("{markdown}");
    println!("bench: wrote {} and {} ({minutes:.1} minutes)", md_path.display(), svg_path.display());
    Ok(true)
}
