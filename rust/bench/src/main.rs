//! `wsrs-bench`: the benchmark programs `cargo xtask bench` runs (built in release mode).
//!
//! - `wsrs-bench load <workload> <port> [--clients N] [--window N] [--size BYTES] [--seconds S]
//!   [--threads N] [--skip-first] [--server-pid PID] [--read-buffer BYTES]`: the load generator
//!   (event-loop threads: half the cores unless `--threads` says otherwise; churn uses 8
//!   connecting threads). Workloads: `echo` (pipelined messages, every echo checked in order,
//!   round-trip latency), `broadcast` (receive a server's ticks, each client checks it gets every
//!   tick in order), `idle` (hold N open connections), `churn` (connect, handshake, close, as fast
//!   as possible). With `--server-pid` it also reads the server's CPU time (user + system, all its
//!   threads, from /proc) at the start and end of the measured window and reports it per message
//!   or connection. `--read-buffer` sets tungstenite's read buffer of each connection (64 KiB by
//!   default). Prints one `RESULT key=value ...` line and exits non-zero if a message was lost,
//!   reordered or corrupted.
//! - `wsrs-bench scale <port> --clients N [--active A] [--first-source S] [--sources K]`: the
//!   clients of the scale bench (see `scale.rs`): N connections from several loopback source
//!   addresses, held through the server's phases (timed broadcasts, some connections active).
//! - `wsrs-bench ceiling <port> <echo|broadcast|idle> <expected peers> [--read-buffer BYTES]`: a
//!   WebSocket server made of tungstenite and mio alone, one thread, no engine: the ceiling for
//!   our stack (4 KiB read buffer, like our core, unless `--read-buffer` says otherwise). Prints
//!   `BENCH` lines like the Godot bench servers.

mod ceiling;
mod handshake;
mod load;
mod scale;

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
    let usage = "usage: wsrs-bench load <echo|broadcast|idle|churn> <port> [options] | wsrs-bench scale <port> --clients N [--active A] [--first-source S] [--sources K] | wsrs-bench ceiling <port> <echo|broadcast|idle> <expected peers> [--read-buffer BYTES]";
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["load", workload, port, ..] => port
            .parse()
            .map_err(|_| format!("bad port {port}"))
            .and_then(|port| load::run(workload, port, &Options { args: args[3..].to_vec() })),
        ["scale", port, ..] => port.parse().map_err(|_| format!("bad port {port}")).and_then(|port| scale::run(port, &Options { args: args[2..].to_vec() })),
        ["ceiling", port, mode, expected, ..] => match (port.parse(), expected.parse()) {
            (Ok(port), Ok(expected)) => Options { args: args[4..].to_vec() }
                .number("--read-buffer", 4096)
                .and_then(|read_buffer| ceiling::run(port, mode, expected, read_buffer as usize))
                .map(|()| true),
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
    process_cpu_seconds("self").unwrap_or(0.0)
}

/// Seconds of CPU (user + system, every thread, those that ended included) the process `pid`
/// (a number, or `self`) has used so far, from `/proc/<pid>/stat`; None where it cannot be read.
pub(crate) fn process_cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, rest)| rest)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name, counted
    // in clock ticks of 1/100 s (USER_HZ, 100 on every Linux this runs on).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}
