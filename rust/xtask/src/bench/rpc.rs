//! Godot to Godot: a server process and a client process exchanging reliable RPCs through
//! SceneMultiplayer (`godot-project/bench/rpc_bench.gd`), for each transport and each way of
//! running the two game loops.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::running::{field, free_port, text_field, Running};
use super::Scale;
use crate::process;

/// How the two game loops run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Loops {
    /// `Engine.max_fps = 0`: frames back to back.
    Uncapped,
    /// `Engine.max_fps = 1000`.
    Capped,
    /// Uncapped, the server on CPU 0 and the client on CPU 1 (`taskset`).
    Pinned,
}

impl Loops {
    /// Every way, in table order.
    pub(super) const ALL: [Loops; 3] = [Loops::Uncapped, Loops::Capped, Loops::Pinned];

    /// The report's name for it.
    pub(super) fn label(self) -> &'static str {
        match self {
            Loops::Uncapped => "uncapped (max_fps 0)",
            Loops::Capped => "capped at 1000 fps",
            Loops::Pinned => "uncapped, pinned to one core each",
        }
    }
}

/// The MultiplayerPeer both processes use.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Transport {
    /// `WebSocketServer` / `WebSocketClient`.
    Ours,
    /// The same with `use_io_thread = false` on both.
    OursInline,
    /// `WebSocketMultiplayerPeer`.
    Builtin,
    /// `ENetMultiplayerPeer`.
    Enet,
}

impl Transport {
    /// Every transport, in table order.
    pub(super) const ALL: [Transport; 4] = [Transport::Ours, Transport::OursInline, Transport::Builtin, Transport::Enet];

    /// The name `rpc_bench.gd` and `--only rpc:<name>` take.
    pub(super) fn key(self) -> &'static str {
        match self {
            Transport::Ours => "ours",
            Transport::OursInline => "ours_inline",
            Transport::Builtin => "builtin",
            Transport::Enet => "enet",
        }
    }

    /// The report's name for it.
    pub(super) fn label(self) -> &'static str {
        match self {
            Transport::Ours => "ours (WebSocketServer/Client)",
            Transport::OursInline => "ours inline (use_io_thread = false)",
            Transport::Builtin => "built-in WebSocketMultiplayerPeer",
            Transport::Enet => "ENetMultiplayerPeer",
        }
    }
}

/// What one transport achieved with one way of running the loops.
#[derive(Clone, Debug)]
pub(super) struct RpcFigures {
    /// Round trips (ping RPC answered by a pong RPC) per second with 32 in flight.
    pub(super) rpcs_per_s: f64,
    /// Server CPU (all threads) per round trip, µs.
    pub(super) server_cpu_us: Option<f64>,
    /// Client CPU (all threads) per round trip, µs.
    pub(super) client_cpu_us: f64,
    /// Round trip with one in flight, p50 and p99, µs.
    pub(super) p50_us: f64,
    /// See `p50_us`.
    pub(super) p99_us: f64,
}

/// One row: the loops, the transport, and its figures or why it was skipped.
pub(super) struct RpcRow {
    /// How the loops ran.
    pub(super) loops: Loops,
    /// The transport.
    pub(super) transport: Transport,
    /// The figures, or why there are none.
    pub(super) outcome: Result<RpcFigures, String>,
}

/// Why pinned runs cannot be done here, if they cannot.
fn pinning_unavailable() -> Option<String> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    if cores < 2 {
        return Some(format!("pinning needs 2 cores, this machine has {cores}"));
    }
    let taskset = Command::new("taskset").arg("--version").output().is_ok_and(|o| o.status.success());
    (!taskset).then(|| "taskset (Debian's util-linux) is not installed".to_string())
}

/// Runs every transport with every way of running the loops; the rows and whether every run
/// passed (every RPC answered, in order, intact).
pub(super) fn run(godot: &Path, project: &Path, scale: &Scale, transports: &[Transport], log: &mut Vec<String>) -> Result<(Vec<RpcRow>, bool), String> {
    let mut rows = Vec::new();
    let mut ok = true;
    let pinning = pinning_unavailable();
    for loops in Loops::ALL {
        for transport in Transport::ALL {
            println!("== RPC: {} over {}", loops.label(), transport.label());
            let outcome = if !transports.contains(&transport) {
                Err("not run (--only)".to_string())
            } else if let (Loops::Pinned, Some(why)) = (loops, &pinning) {
                Err(why.clone())
            } else {
                let (outcome, passed) = run_one(godot, project, scale, loops, transport, log)?;
                ok &= passed;
                outcome
            };
            if let Err(why) = &outcome {
                println!("  skipped: {why}");
            }
            rows.push(RpcRow { loops, transport, outcome });
        }
    }
    Ok((rows, ok))
}

/// A Godot command, under `taskset -c <cpu>` when pinned.
fn godot_command(godot: &Path, pin: Option<&str>) -> Command {
    match pin {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cpu]).arg(godot);
            c
        }
        None => Command::new(godot),
    }
}

/// One server and one client; the figures (or why skipped) and whether the run passed.
fn run_one(godot: &Path, project: &Path, scale: &Scale, loops: Loops, transport: Transport, log: &mut Vec<String>) -> Result<(Result<RpcFigures, String>, bool), String> {
    let port = free_port()?.to_string();
    let loop_arg = if loops == Loops::Capped { "capped" } else { "uncapped" };
    let pinned = loops == Loops::Pinned;
    let script_args = |role: &str| -> Vec<String> { ["-s", "res://bench/rpc_bench.gd", "--", role, transport.key(), &port, loop_arg].iter().map(|s| s.to_string()).collect() };
    let project_args = |c: &mut Command| {
        c.args(["--headless", "--path"]).arg(project);
    };

    let mut server_command = godot_command(godot, pinned.then_some("0"));
    project_args(&mut server_command);
    server_command.args(script_args("server"));
    let server = Running::start_plain(server_command)?;
    let started = server
        .wait_for(|l| l == "READY" || l.starts_with("SKIP "), Duration::from_secs(60))
        .map_err(|e| format!("the RPC bench server did not start: {e}"))?;
    if let Some(why) = started.strip_prefix("SKIP ") {
        return Ok((Err(why.to_string()), true));
    }

    let mut client_command = godot_command(godot, pinned.then_some("1"));
    project_args(&mut client_command);
    client_command.args(script_args("client")).args([scale.rpc_seconds.to_string(), scale.rpc_latency_seconds.to_string(), server.pid().to_string()]);
    let limit = Duration::from_secs((scale.rpc_seconds + scale.rpc_latency_seconds) * 3 + 120);
    let run = process::run_bounded(&mut client_command, limit, process::Echo::Quiet)?;
    let line = run.output.lines().find(|l| l.starts_with("RESULT")).map(str::to_string).unwrap_or_default();
    log.push(format!("{loops:?} {line}"));
    println!("  {line}");
    if let Some(why) = text_field(&line, "skipped") {
        return Ok((Err(why), true));
    }
    let client_passed = run.status.is_some_and(|s| s.success()) && line.contains(" ok=true");

    // The server's count after the client's last pong (it prints one a second): every ping
    // answered, none out of order.
    let lines_before = server.line_count();
    let server_line = server.wait_for_after(lines_before, |l| l.starts_with("SERVER "), Duration::from_secs(5)).unwrap_or_default();
    let rpcs = field(&line, "rpcs");
    let server_passed = field(&server_line, "errors") == Some(0.0) && rpcs.is_some() && field(&server_line, "answered") == rpcs;
    if !client_passed {
        let why = text_field(&line, "first_error").unwrap_or_else(|| run.output.lines().last().unwrap_or("no output").to_string());
        println!("  FAILED: {why}");
    } else if !server_passed {
        println!("  FAILED: the server's count ({server_line:?}) does not match the client's {rpcs:?} pings");
    }
    log.push(format!("{loops:?} {transport:?} {server_line}"));
    let figures = RpcFigures {
        rpcs_per_s: field(&line, "rpcs_per_s").unwrap_or(0.0),
        server_cpu_us: field(&line, "server_cpu_us_per_rpc"),
        client_cpu_us: field(&line, "client_cpu_us_per_rpc").unwrap_or(0.0),
        p50_us: field(&line, "p50_us").unwrap_or(0.0),
        p99_us: field(&line, "p99_us").unwrap_or(0.0),
    };
    Ok((Ok(figures), client_passed && server_passed))
}
