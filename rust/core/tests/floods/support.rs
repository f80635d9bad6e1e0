//! What the flood tests share: the descriptor limit, resident memory, the flood client as a child
//! process, and the bystander peer that measures its echo round trips during a flood.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use websocket_rs_core::{Bytes, Client, ClientEvent, ConnectionConfig, Packet};

use crate::client::Mode;
use crate::CHILD_FLAG;

/// The source addresses the flood client spreads its connections over (8 × the ephemeral port
/// range is far more than any flood here needs, even with other tests using ports meanwhile).
pub(crate) const LOOPBACK_SOURCES: [Ipv4Addr; 8] = [
    Ipv4Addr::new(127, 0, 0, 2),
    Ipv4Addr::new(127, 0, 0, 3),
    Ipv4Addr::new(127, 0, 0, 4),
    Ipv4Addr::new(127, 0, 0, 5),
    Ipv4Addr::new(127, 0, 0, 6),
    Ipv4Addr::new(127, 0, 0, 7),
    Ipv4Addr::new(127, 0, 0, 8),
    Ipv4Addr::new(127, 0, 0, 9),
];

/// A complete upgrade request for `host`.
pub(crate) fn upgrade_request(host: &str) -> String {
    format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// The process's descriptor limit (soft, hard).
pub(crate) fn descriptor_limit() -> (u64, u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit with a valid pointer.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (limit.rlim_cur, limit.rlim_max)
}

/// Sets the soft descriptor limit (the hard one stays).
pub(crate) fn set_soft_descriptor_limit(soft: u64) -> Result<(), String> {
    let (_, hard) = descriptor_limit();
    let limit = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    // SAFETY: setrlimit with a valid pointer.
    match unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } {
        0 => Ok(()),
        _ => Err(format!("setrlimit(RLIMIT_NOFILE, {soft}): {}", std::io::Error::last_os_error())),
    }
}

/// Raises the soft descriptor limit to at least `needed`, and the hard one too when it is lower
/// and the process may (root, or CAP_SYS_RESOURCE); an error saying why not otherwise.
pub(crate) fn raise_descriptor_limit(needed: u64) -> Result<(), String> {
    let (soft, hard) = descriptor_limit();
    if soft >= needed {
        return Ok(());
    }
    if hard < needed {
        let limit = libc::rlimit { rlim_cur: needed, rlim_max: needed };
        // SAFETY: setrlimit with a valid pointer.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            let err = std::io::Error::last_os_error();
            return Err(format!("needs {needed} file descriptors; the hard limit (ulimit -Hn) is {hard} and raising it failed: {err}"));
        }
        return Ok(());
    }
    set_soft_descriptor_limit(needed)
}

/// Puts the soft descriptor limit back as it was when dropped.
pub(crate) struct LimitGuard(u64);

impl LimitGuard {
    /// Remembers the soft limit now.
    pub(crate) fn new() -> Self {
        LimitGuard(descriptor_limit().0)
    }
}

impl Drop for LimitGuard {
    fn drop(&mut self) {
        let _ = set_soft_descriptor_limit(self.0);
    }
}

/// This process's resident memory in bytes (/proc/self/statm).
pub(crate) fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

/// CPU time this process has used so far, user and system (getrusage).
pub(crate) fn cpu_time() -> Duration {
    // SAFETY: getrusage with a valid pointer to a zeroed struct.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// The flood client, running; killed when dropped.
pub(crate) struct FloodChild {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl FloodChild {
    /// Starts this binary as the flood client and waits for it to be ready.
    pub(crate) fn spawn(mode: Mode, server: SocketAddr, count: usize, interval: Duration, rate: u64, give_up: Duration) -> Self {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut child = Command::new(exe)
            .arg(CHILD_FLAG)
            .args([
                mode.name().to_string(),
                server.to_string(),
                count.to_string(),
                interval.as_millis().to_string(),
                rate.to_string(),
                give_up.as_millis().to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the flood client");
        let stdin = child.stdin.take().expect("its stdin");
        let stdout = child.stdout.take().expect("its stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut flood = FloodChild { child, stdin, lines };
        let ready = flood.line(Duration::from_secs(30));
        assert_eq!(ready, "ready", "the flood client did not start");
        flood
    }

    /// Sends one command line.
    pub(crate) fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("write to the flood client");
        self.stdin.flush().expect("flush to the flood client");
    }

    /// The next line, waiting up to `timeout`; panics on none or on an `error` line.
    pub(crate) fn line(&mut self, timeout: Duration) -> String {
        let line = self.lines.recv_timeout(timeout).unwrap_or_else(|e| panic!("no line from the flood client within {timeout:?}: {e}"));
        assert!(!line.starts_with("error"), "the flood client failed: {line}");
        line
    }

    /// The next line if one came (no waiting).
    pub(crate) fn try_line(&mut self) -> Option<String> {
        match self.lines.recv_timeout(Duration::ZERO) {
            Ok(line) => {
                assert!(!line.starts_with("error"), "the flood client failed: {line}");
                Some(line)
            }
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => panic!("the flood client ended without a report"),
        }
    }
}

impl Drop for FloodChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One flood connection's record, from the client's `conn` line (microseconds since `go`).
#[derive(Debug, Clone)]
pub(crate) struct ConnRecord {
    pub(crate) index: usize,
    pub(crate) started: u64,
    pub(crate) established: Option<u64>,
    pub(crate) ended: Option<u64>,
    pub(crate) how: String,
    pub(crate) sent: usize,
    pub(crate) upgraded: Option<u64>,
    pub(crate) header_sent: Option<u64>,
    pub(crate) close_code: Option<u16>,
    pub(crate) close_frame_at: Option<u64>,
}

impl ConnRecord {
    /// Parses a `conn` line; None for any other line.
    pub(crate) fn parse(line: &str) -> Option<ConnRecord> {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() != 11 || words[0] != "conn" {
            return None;
        }
        let opt = |w: &str| w.parse::<u64>().ok();
        Some(ConnRecord {
            index: words[1].parse().ok()?,
            started: words[2].parse().ok()?,
            established: opt(words[3]),
            ended: opt(words[4]),
            how: words[5].to_string(),
            sent: words[6].parse().ok()?,
            upgraded: opt(words[7]),
            header_sent: opt(words[8]),
            close_code: opt(words[9]).and_then(|c| u16::try_from(c).ok()),
            close_frame_at: opt(words[10]),
        })
    }
}

/// What the bystander reports: (when each round trip started, how long it took), or why it failed.
type Samples = Result<Vec<(Instant, Duration)>, String>;

/// The peer that keeps exchanging echoes with the server during a flood.
pub(crate) struct Bystander {
    stop: Arc<AtomicBool>,
    report: Receiver<Samples>,
    thread: Option<JoinHandle<()>>,
}

/// How long the bystander waits between two round trips.
const BYSTANDER_PAUSE: Duration = Duration::from_millis(10);

impl Bystander {
    /// Connects a client to `url` on a thread of its own; it sends a numbered message, waits for
    /// its echo, pauses [`BYSTANDER_PAUSE`], and so on, until stopped.
    pub(crate) fn start(url: String, config: ConnectionConfig) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let (tx, report) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut client = Client::new();
            let samples = exchange(&mut client, &url, config, &stopped);
            // Reported while the client is still connected: the test stops polling the server
            // once it has the report, and must not see the bystander leave before.
            let _ = tx.send(samples);
        });
        Bystander { stop, report, thread: Some(thread) }
    }

    /// Stops it after its round trip under way, which `serve` (polling the server and echoing)
    /// must complete: (when each round trip started, how long it took), or why it failed.
    pub(crate) fn finish(mut self, mut serve: impl FnMut()) -> Samples {
        self.stop.store(true, Ordering::Relaxed);
        let samples = loop {
            match self.report.try_recv() {
                Ok(samples) => break samples,
                Err(mpsc::TryRecvError::Empty) => serve(),
                Err(mpsc::TryRecvError::Disconnected) => break Err("the bystander thread panicked".into()),
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        samples
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        // A test that failed leaves it running: it stops at its next round trip.
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn exchange(client: &mut Client, url: &str, config: ConnectionConfig, stop: &AtomicBool) -> Samples {
    client.connect(url, config).map_err(|e| e.to_string())?;
    let mut events = Vec::new();
    let start = Instant::now();
    loop {
        client.poll(&mut events);
        if events.iter().any(|e| matches!(e, ClientEvent::ConnectionEstablished { .. })) {
            break;
        }
        if let Some(e) = events.iter().find(|e| matches!(e, ClientEvent::ConnectionError { .. } | ClientEvent::ConnectionClosed { .. })) {
            return Err(format!("the bystander could not connect: {e:?}"));
        }
        if start.elapsed() > Duration::from_secs(20) {
            return Err("the bystander did not connect within 20 s".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut samples = Vec::new();
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let peer = client.peer().ok_or("the bystander has no peer")?;
        let sent = Instant::now();
        peer.send(Packet { data: Bytes::copy_from_slice(&seq.to_be_bytes()), is_text: false }).map_err(|e| e.to_string())?;
        'echo: loop {
            client.poll(&mut events);
            if let Some(e) = events.iter().find(|e| matches!(e, ClientEvent::ConnectionError { .. } | ClientEvent::ConnectionClosed { .. })) {
                return Err(format!("the bystander lost its connection after {} round trips: {e:?}", samples.len()));
            }
            events.clear();
            if let Some(packet) = client.peer().and_then(|p| p.recv()) {
                let got = u64::from_be_bytes(packet.data[..].try_into().map_err(|_| "an echo of the wrong size")?);
                if got != seq {
                    return Err(format!("echo {got} came back where {seq} was expected"));
                }
                samples.push((sent, sent.elapsed()));
                break 'echo;
            }
            if sent.elapsed() > Duration::from_secs(30) {
                return Err(format!("no echo of message {seq} within 30 s"));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        std::thread::sleep(BYSTANDER_PAUSE);
    }
    Ok(samples)
}

/// The `p`-th percentile (0..=100) of `sorted`, nearest rank.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
