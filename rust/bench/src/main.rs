//! `wsrs-bench`: the benchmark programs `cargo xtask bench` runs (built in release mode).
//!
//! - `wsrs-bench load <workload> <port> [--clients N] [--window N] [--size BYTES] [--seconds S]
//!   [--threads N] [--skip-first]`: the load generator (event-loop threads: half the cores unless
//!   `--threads` says otherwise; churn uses 8 connecting threads). Workloads: `echo` (pipelined messages,
//!   every echo checked in order, round-trip latency), `broadcast` (receive a server's ticks,
//!   each client checks it gets every tick in order), `idle` (hold N open connections), `churn`
//!   (connect, handshake, close, as fast as possible). Prints one `RESULT key=value ...` line and
//!   exits non-zero if a message was lost, reordered or corrupted.
//! - `wsrs-bench ceiling <port> <echo|broadcast|idle> <expected peers>`: a WebSocket server made of
//!   tungstenite and mio alone, one thread, no engine: the ceiling for our stack. Prints `BENCH`
//!   lines like the Godot bench servers.

mod ceiling;
mod handshake;
mod load;

use std::process::ExitCode;

/// Command-line options shared by the subcommands (`--name value` pairs and flags).
pub(crate) struct Options {
    args: Vec<String>,
}

impl Options {
    /// The number after `--name`, or `default`.
    pub(crate) fn number(&self, name: &str, default: u64) -> Result<u64, String> {
        match self.args.iter().position(|a| a == name) {
            None => Ok(default),
            Some(i) => self
                .args
                .get(i + 1)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a whole number")),
        }
    }

    /// Whether the flag `--name` is present.
    pub(crate) fn flag(&self, name: &str) -> bool {
        self.args.iter().any(|a| a == name)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: wsrs-bench load <echo|broadcast|idle|churn> <port> [options] | wsrs-bench ceiling <port> <echo|broadcast|idle> <expected peers>";
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["load", workload, port, ..] => port
            .parse()
            .map_err(|_| format!("bad port {port}"))
            .and_then(|port| load::run(workload, port, &Options { args: args[3..].to_vec() })),
        ["ceiling", port, mode, expected] => match (port.parse(), expected.parse()) {
            (Ok(port), Ok(expected)) => ceiling::run(port, mode, expected).map(|()| true),
            _ => Err(usage.to_string()),
        },
        _ => Err(usage.to_string()),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("wsrs-bench: {message}");
            ExitCode::from(2)
        }
    }
}

/// Seconds of CPU (user + system) this process has used so far; 0 where /proc is missing.
pub(crate) fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the command name (which is in parentheses and may hold spaces).
    let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: f64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<f64>().ok()).sum();
    ticks / 100.0
}
