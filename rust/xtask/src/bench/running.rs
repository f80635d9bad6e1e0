//! A bench process running in the background with its output collected line by line, and what
//! the bench reads of it: its `BENCH` report lines, its resident memory and its CPU time.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running bench process (a server, or the idle load generator); killed when dropped.
pub(super) struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Running {
    /// Starts a process and collects its output lines (standard error is dropped).
    pub(super) fn start_plain(mut command: Command) -> Result<Running, String> {
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

    /// Starts a bench server and waits for its `READY` line.
    pub(super) fn start(command: Command) -> Result<Running, String> {
        let running = Running::start_plain(command)?;
        running.wait_for(|l| l == "READY", Duration::from_secs(60)).map_err(|e| format!("the bench server did not start: {e}"))?;
        Ok(running)
    }

    /// The process id (the server's own: the Godot wrapper script and `taskset` exec it).
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until a line matches (or the process ends, or `limit` passes); the line.
    pub(super) fn wait_for(&self, matches: impl Fn(&str) -> bool, limit: Duration) -> Result<String, String> {
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

    /// How many lines it has printed so far.
    pub(super) fn line_count(&self) -> usize {
        self.lines.lock().map(|l| l.len()).unwrap_or(0)
    }

    /// Waits for a matching line among those printed after the first `after` lines.
    pub(super) fn wait_for_after(&self, after: usize, matches: impl Fn(&str) -> bool, limit: Duration) -> Option<String> {
        let start = Instant::now();
        while start.elapsed() <= limit {
            let found = self.lines.lock().ok().and_then(|l| l.iter().skip(after).find(|l| matches(l)).cloned());
            if found.is_some() {
                return found;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The newest `BENCH` line with at least `peers` peers connected.
    pub(super) fn last_full_report(&self, peers: usize) -> Option<Report> {
        let lines = self.lines.lock().ok()?;
        lines.iter().rev().filter_map(|l| Report::parse(l)).find(|r| r.peers >= peers as f64 && r.frames > 0.0)
    }

    /// Resident memory in KiB (Linux), 0 where unknown.
    pub(super) fn rss_kib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
            .unwrap_or(0.0)
    }

    /// CPU seconds (user + system, all threads) it has used so far; None where unknown.
    pub(super) fn cpu_seconds(&self) -> Option<f64> {
        process_cpu_seconds(self.child.id())
    }

    /// Waits for the process to end (at most 5 minutes); its RESULT line.
    pub(super) fn finish(mut self) -> String {
        let start = Instant::now();
        while self.child.try_wait().ok().flatten().is_none() && start.elapsed() < Duration::from_secs(300) {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(100));
        let lines = self.lines.lock().map(|l| l.clone()).unwrap_or_default();
        lines.into_iter().find(|l| l.starts_with("RESULT")).unwrap_or_else(|| "RESULT ok=false (no result)".into())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds (user + system, every thread, those that ended included) process `pid` has used,
/// from fields 14 and 15 of `/proc/<pid>/stat` (clock ticks of 1/100 s); None where unreadable.
pub(crate) fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces; count fields after it.
    let rest = stat.rsplit_once(')').map(|(_, rest)| rest)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// A parsed `BENCH peers=.. frames=.. busy_us=.. echoed=..` line.
pub(super) struct Report {
    /// Peers connected.
    pub(super) peers: f64,
    /// Frames (or ticks) counted so far, only those with every expected peer connected.
    pub(super) frames: f64,
    /// Microseconds spent in the server's own calls during those frames.
    pub(super) busy_us: f64,
}

impl Report {
    /// Parses a `BENCH` line; None for any other line.
    pub(super) fn parse(line: &str) -> Option<Report> {
        let rest = line.strip_prefix("BENCH ")?;
        Some(Report { peers: field(rest, "peers")?, frames: field(rest, "frames")?, busy_us: field(rest, "busy_us")? })
    }
}

/// The number in a `key=value` field of a line.
pub(super) fn field(line: &str, name: &str) -> Option<f64> {
    line.split_whitespace().find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
}

/// The text of a `key=value` or `key="quoted value"` field of a line.
pub(super) fn text_field(line: &str, name: &str) -> Option<String> {
    let start = line.find(&format!(" {name}="))? + name.len() + 2;
    let rest = &line[start..];
    match rest.strip_prefix('"') {
        Some(quoted) => quoted.split_once('"').map(|(text, _)| text.to_string()),
        None => rest.split_whitespace().next().map(str::to_string),
    }
}

/// A TCP port free on 127.0.0.1 right now.
pub(super) fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).map_err(|e| format!("no free port: {e}"))
}
