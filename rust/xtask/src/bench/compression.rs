//! The compression part: JSON text messages (about 300 bytes, and about 1 MiB) echoed by ours
//! (with its I/O thread and inline) and by reference servers that compress, each with
//! permessage-deflate on and off. The load generator is Node's `ws` client
//! (`rust/bench/node/loadgen.js`), which offers permessage-deflate configured like ours (the
//! tungstenite of `wsrs-bench` has no permessage-deflate); the references are Node's `ws`
//! (`rust/bench/node/server.js`) and Python's `websockets` (`rust/bench/python/server.py`).
//! Each run reports the bytes on the wire per message (counted at the load generator's sockets),
//! messages/s and the server's CPU per message, and is checked twice: the load generator
//! compares every echo with what it sent and the agreed extension with what the row expects, and
//! the server counts the connections that agreed to permessage-deflate.
//!
//! The npm package `ws` is the tests' Node peer, installed with npm into `target/peers-node/` once (npm, and Node
//! with it, from Debian's `npm` package when missing); Python's `websockets` is the tests' venv
//! (`peers::python_for_peers`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::running::{field, free_port, text_field, Running};
use crate::{peers, process};

/// The release of the npm package `ws` the load generator and the Node reference server run.
pub(super) const WS_VERSION: &str = peers::WS_VERSION;

/// The servers of the compression part, in table order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Host {
    /// `WebSocketServer` in headless Godot (`godot-project/bench/ours_server.gd`, `tick_text`).
    Ours,
    /// The same with `use_io_thread = false`.
    OursInline,
    /// Node's `ws` (`rust/bench/node/server.js`).
    NodeWs,
    /// Python's `websockets` (`rust/bench/python/server.py`).
    Python,
}

impl Host {
    /// Every server, in table order.
    pub(super) const ALL: [Host; 4] = [Host::Ours, Host::OursInline, Host::NodeWs, Host::Python];

    /// The name `--only compression:<name>` takes.
    pub(super) fn key(self) -> &'static str {
        match self {
            Host::Ours => "ours",
            Host::OursInline => "ours_inline",
            Host::NodeWs => "node_ws",
            Host::Python => "python",
        }
    }

    /// The report's name for it.
    pub(super) fn label(self) -> &'static str {
        match self {
            Host::Ours => "ours",
            Host::OursInline => "ours inline",
            Host::NodeWs => "Node `ws`",
            Host::Python => "Python `websockets`",
        }
    }
}

/// The two messages sizes, in table order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Size {
    /// JSON game states of about 300 bytes.
    Small,
    /// A JSON world of about 1 MiB.
    Large,
}

impl Size {
    /// Both, in table order.
    pub(super) const ALL: [Size; 2] = [Size::Small, Size::Large];

    /// The load generator's `--workload`.
    pub(super) fn key(self) -> &'static str {
        match self {
            Size::Small => "small",
            Size::Large => "large",
        }
    }

    /// Connections of the load generator.
    pub(super) fn clients(self) -> usize {
        match self {
            Size::Small => 50,
            Size::Large => 4,
        }
    }

    /// Messages each connection keeps in flight.
    pub(super) fn window(self) -> usize {
        match self {
            Size::Small => 32,
            Size::Large => 4,
        }
    }
}

/// What one run (a server, compression on or off, one size) measured.
#[derive(Clone, Debug)]
pub(super) struct Measured {
    /// Average JSON text of a message, in bytes.
    pub(super) message_bytes: f64,
    /// Bytes on the wire per message, both directions (the WebSocket frames after the handshake).
    pub(super) wire_bytes: f64,
    /// Of which the load generator sent (the message going to the server).
    pub(super) up_bytes: f64,
    /// Of which the load generator received (the echo).
    pub(super) down_bytes: f64,
    /// Messages echoed per second in the measured window.
    pub(super) rate: f64,
    /// Server CPU (all threads) per message, in µs.
    pub(super) cpu_us: Option<f64>,
    /// The load generator's CPU in the window, in % of one core.
    pub(super) loadgen_cpu: f64,
}

/// One table row: a server with permessage-deflate on or off.
pub(super) struct Row {
    /// The server.
    pub(super) host: Host,
    /// Whether its permessage-deflate was on.
    pub(super) deflate: bool,
    /// The figures of each size (in [`Size::ALL`] order), or why it was not measured.
    pub(super) runs: Vec<Result<Measured, String>>,
}

impl Row {
    /// The figures of `size`, if measured.
    pub(super) fn measured(&self, size: Size) -> Option<&Measured> {
        Size::ALL.iter().position(|s| *s == size).and_then(|i| self.runs.get(i)).and_then(|r| r.as_ref().ok())
    }
}

/// Node and the npm package `ws` it loads.
pub(super) struct NodeWs {
    /// The `node` executable.
    node: PathBuf,
    /// The `node_modules` folder holding `ws` (given to Node as `NODE_PATH`).
    modules: PathBuf,
}

/// Runs the compression part and keeps every RESULT line for the report.
pub(super) struct CompressionBench {
    /// The Godot binary.
    pub(super) godot: PathBuf,
    /// `godot-project/`.
    pub(super) project: PathBuf,
    /// `rust/bench/`, which holds `node/` and `python/`.
    pub(super) scripts: PathBuf,
    /// Node with `ws`, or why the part cannot run (the load generator needs it).
    pub(super) node: Result<NodeWs, String>,
    /// The Python interpreter with `websockets`, or why its rows are skipped.
    pub(super) python: Result<PathBuf, String>,
    /// Seconds each run measures (after a one-second warm-up).
    pub(super) seconds: u64,
    /// Every load generator RESULT line, prefixed by the server and its setting.
    pub(super) log: Vec<String>,
}

impl CompressionBench {
    /// Runs both sizes against every server of `hosts` with permessage-deflate on, then off;
    /// the rows of every server (those not in `hosts` say so) and whether every run passed.
    pub(super) fn run(&mut self, hosts: &[Host]) -> Result<(Vec<Row>, bool), String> {
        let mut rows = Vec::new();
        let mut ok = true;
        for host in Host::ALL {
            for deflate in [true, false] {
                println!("== compression: {} with permessage-deflate {}", host.label(), if deflate { "on" } else { "off" });
                let skip = if !hosts.contains(&host) {
                    Some("not run (--only)".to_string())
                } else if let Err(why) = &self.node {
                    Some(format!("Node `ws` unavailable: {why}"))
                } else if let (Host::Python, Err(why)) = (host, &self.python) {
                    Some(format!("Python `websockets` unavailable: {why}"))
                } else {
                    None
                };
                let runs = match skip {
                    Some(why) => {
                        println!("  skipped: {why}");
                        Size::ALL.iter().map(|_| Err(why.clone())).collect()
                    }
                    None => {
                        let (runs, passed) = self.measure(host, deflate)?;
                        ok &= passed;
                        runs
                    }
                };
                rows.push(Row { host, deflate, runs });
            }
        }
        Ok((rows, ok))
    }

    /// Starts `host` with permessage-deflate on or off.
    fn server(&self, host: Host, deflate: bool) -> Result<(Running, u16), String> {
        let port = free_port()?;
        let setting = if deflate { "on" } else { "off" };
        let command = match host {
            Host::Ours | Host::OursInline => {
                let mut c = Command::new(&self.godot);
                c.args(["--headless", "--path"]).arg(&self.project);
                c.args(["-s", "res://bench/ours_server.gd", "--", "tick_text", &port.to_string(), "0", "sized"]);
                if host == Host::OursInline {
                    c.arg("inline");
                }
                if !deflate {
                    c.arg("nodeflate");
                }
                c
            }
            Host::NodeWs => {
                let node = self.node.as_ref().map_err(|why| why.clone())?;
                let mut c = Command::new(&node.node);
                c.env("NODE_PATH", &node.modules).arg(self.scripts.join("node/server.js")).args([&port.to_string(), setting]);
                c
            }
            Host::Python => {
                let python = self.python.as_ref().map_err(|why| why.clone())?;
                let mut c = Command::new(python);
                c.arg(self.scripts.join("python/server.py")).args([&port.to_string(), setting]);
                c
            }
        };
        Ok((Running::start(command)?, port))
    }

    /// Both sizes against one server: their figures (or why not) and whether both passed.
    fn measure(&mut self, host: Host, deflate: bool) -> Result<(Vec<Result<Measured, String>>, bool), String> {
        let node = self.node.as_ref().map_err(|why| why.clone())?;
        let (node_binary, modules) = (node.node.clone(), node.modules.clone());
        let (running, port) = self.server(host, deflate)?;
        let mut runs = Vec::new();
        let mut ok = true;
        for size in Size::ALL {
            let mut command = Command::new(&node_binary);
            command.env("NODE_PATH", &modules).arg(self.scripts.join("node/loadgen.js")).arg(port.to_string());
            command.args(["--workload", size.key(), "--deflate", if deflate { "on" } else { "off" }]);
            command.args(["--clients", &size.clients().to_string(), "--window", &size.window().to_string()]);
            command.args(["--seconds", &self.seconds.to_string(), "--server-pid", &running.pid().to_string()]);
            let limit = Duration::from_secs(self.seconds * 3 + 180);
            let run = process::run_bounded(&mut command, limit, process::Echo::Quiet)?;
            let line = run.output.lines().find(|l| l.starts_with("RESULT")).map(str::to_string).unwrap_or_default();
            println!("  {line}");
            self.log.push(format!("{:?} deflate={} {line}", host, if deflate { "on" } else { "off" }));
            let agreed = text_field(&line, "deflate").is_some_and(|d| d == if deflate { "on" } else { "off" });
            let passed = run.status.is_some_and(|s| s.success()) && line.contains(" ok=true") && agreed;
            if !passed {
                println!("  FAILED: {}", run.output.lines().last().unwrap_or("no output"));
                ok = false;
                runs.push(Err("failed".to_string()));
                continue;
            }
            let num = |name: &str| field(&line, name).unwrap_or(0.0);
            runs.push(Ok(Measured {
                message_bytes: num("message_bytes"),
                wire_bytes: num("wire_bytes_per_message"),
                up_bytes: num("up_bytes_per_message"),
                down_bytes: num("down_bytes_per_message"),
                rate: num("messages_per_s"),
                cpu_us: field(&line, "server_cpu_us_per_message"),
                loadgen_cpu: num("loadgen_window_cpu_percent"),
            }));
        }
        // The server's own count of connections that agreed to permessage-deflate: every one of
        // both runs with it on, none with it off. Its next report line has them all.
        let expected = if deflate { Size::ALL.iter().map(|s| s.clients()).sum() } else { 0 };
        let after = running.line_count();
        let report = running.wait_for_after(after, |l| l.starts_with("BENCH "), Duration::from_secs(5));
        match report.as_deref().and_then(|l| field(l, "deflated")) {
            Some(count) if count == expected as f64 => println!("  the server counted {count} connections with permessage-deflate"),
            other => {
                println!("  FAILED: the server counted {other:?} connections with permessage-deflate, not {expected}");
                ok = false;
            }
        }
        drop(running);
        Ok((runs, ok))
    }
}

/// Node and the npm package `ws` at [`WS_VERSION`], the tests' peer (installed into
/// `target/peers-node/` if needed); or why they cannot be had here (the compression part is then skipped with that
/// reason).
pub(super) fn node_ws(target_dir: &Path) -> Result<NodeWs, String> {
    let (node, modules) = peers::node_with_ws(target_dir)?;
    Ok(NodeWs { node, modules })
}

/// The Python interpreter of the tests' venv, which has `websockets`.
pub(super) fn python(target_dir: &Path) -> Result<PathBuf, String> {
    peers::python_for_peers(target_dir)
}

/// The `websockets` release of that venv.
pub(super) const WEBSOCKETS_VERSION: &str = peers::WEBSOCKETS_VERSION;
