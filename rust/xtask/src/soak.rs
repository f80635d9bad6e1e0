//! `cargo xtask soak [--seconds N]` (10 minutes by default; outside `cargo xtask test`): our
//! WebSocketServer under churn for a long time, to find leaks and lost messages rather than speed.
//!
//! One headless Godot process (`tests/helpers/soak_echo.gd`, debug build of the extension, 60
//! frames a second) holds two WebSocketServers: ws:// and wss:// (a self-signed certificate made
//! for the run, for 127.0.0.1), both with permessage-deflate as shipped. Three kinds of client,
//! [`PER_KIND`] connections each, connect, exchange sequence-numbered messages (a few in flight,
//! 16 bytes to 4 KiB, text and binary) and leave with a close handshake, again and again:
//! - **ws**: tungstenite (no permessage-deflate), blocking, one thread;
//! - **ws + deflate**: our core `Client` (the one the Godot WebSocketClient drives), inline I/O,
//!   one thread, offering permessage-deflate (checked agreed on every connection);
//! - **wss + deflate**: the same over TLS, trusting the run's certificate.
//!
//! Every echo is checked, in order, where it arrives. The load is paced ([`MESSAGE_EVERY`] per
//! connection) so that the server and the clients together stay well under half a core: the run
//! is about time and leaks, and other work shares the machine. Every [`sample_every`] the server's
//! resident memory and both sides' CPU time are sampled. Reports connections opened, messages
//! checked, lost or reordered (must be 0), connect failures and unclean closes per kind, memory
//! growth after the warm-up, and writes it all to `docs/soak.md`.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tungstenite::{Bytes, Message};
use websocket_rs_core::{Client, ClientEvent, ConnectionConfig, Packet, TlsClientSettings};

/// Connections of each kind open at any time.
const PER_KIND: usize = 60;
/// How often each open connection sends (a burst of 1 to 3 messages).
const MESSAGE_EVERY: Duration = Duration::from_millis(500);
/// Messages a connection exchanges before it closes and connects again: from this many ...
const BUDGET_MIN: u64 = 10;
/// ... up to this many more.
const BUDGET_SPREAD: u64 = 90;
/// An echo that has not come back after this long counts as lost (and the connection is dropped).
const ECHO_LIMIT: Duration = Duration::from_secs(30);
/// A connection that is not established after this long counts as a connect failure.
const CONNECT_LIMIT: Duration = Duration::from_secs(30);

/// The three kinds of client connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// ws:// from tungstenite, no compression.
    Plain,
    /// ws:// from our core Client with permessage-deflate.
    Deflate,
    /// wss:// from our core Client with permessage-deflate.
    TlsDeflate,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Plain, Kind::Deflate, Kind::TlsDeflate];

    fn label(self) -> &'static str {
        match self {
            Kind::Plain => "ws (tungstenite)",
            Kind::Deflate => "ws + permessage-deflate (core Client)",
            Kind::TlsDeflate => "wss + permessage-deflate (core Client)",
        }
    }
}

/// What one kind of client counted.
#[derive(Default)]
struct Counters {
    /// Connections established.
    connections: AtomicU64,
    /// Connections closed with a completed close handshake.
    clean_closes: AtomicU64,
    /// Connections that ended otherwise (dropped, or closed without a close handshake).
    unclean_closes: AtomicU64,
    /// Messages sent.
    sent: AtomicU64,
    /// Echoes received and checked equal (content, kind and order).
    echoed: AtomicU64,
    /// Echoes missing, different or out of order.
    lost_or_reordered: AtomicU64,
    /// Connections that could not be made (TCP, TLS or WebSocket handshake, or too slow).
    connect_failures: AtomicU64,
    /// Connections of a deflate kind on which permessage-deflate was not agreed.
    not_compressed: AtomicU64,
    /// The first few problems, for the report.
    problems: Mutex<Vec<String>>,
}

impl Counters {
    fn problem(&self, what: String) {
        if let Ok(mut problems) = self.problems.lock() {
            if problems.len() < 10 {
                problems.push(what);
            }
        }
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// One sample of the run.
struct Sample {
    seconds: u64,
    server_rss_kib: u64,
    server_cpu_s: f64,
    clients_cpu_s: f64,
    messages: u64,
    connections: u64,
}

/// The certificate made for the run: (private key PEM, certificate PEM), for 127.0.0.1.
fn certificate() -> Result<(String, String), String> {
    let key = rcgen::KeyPair::generate().map_err(|e| format!("cannot make a key: {e}"))?;
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).map_err(|e| format!("certificate parameters: {e}"))?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "websocket-rs soak");
    let cert = params.self_signed(&key).map_err(|e| format!("cannot sign the certificate: {e}"))?;
    Ok((key.serialize_pem(), cert.pem()))
}

/// Seconds between samples for a run of `seconds`.
fn sample_every(seconds: u64) -> u64 {
    (seconds / 60).clamp(1, 30)
}

/// The Godot server and the files made for it; killed and removed when dropped.
struct ServerProcess {
    child: Child,
    files: Vec<std::path::PathBuf>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// Runs the soak and writes `docs/soak.md`; Ok(true) when nothing was lost.
pub(crate) fn run(godot: &Path, root: &Path, seconds: u64) -> Result<bool, String> {
    // The commit the run was built from, read now: the tree may change while it runs.
    let commit = crate::bench::command_output("git", &["rev-parse", "--short", "HEAD"], root);
    let dirty = !crate::bench::command_output("git", &["status", "--porcelain", "--untracked-files=no"], root).is_empty();
    let free_port = || std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).map_err(|e| e.to_string());
    let (port, tls_port) = (free_port()?, free_port()?);
    let (key_pem, cert_pem) = certificate()?;
    let temp = std::env::temp_dir();
    let id = std::process::id();
    let (key_file, cert_file, stop_file) =
        (temp.join(format!("websocket-rs-soak-{id}.key")), temp.join(format!("websocket-rs-soak-{id}.crt")), temp.join(format!("websocket-rs-soak-{id}.stop")));
    std::fs::write(&key_file, &key_pem).map_err(|e| format!("cannot write {}: {e}", key_file.display()))?;
    std::fs::write(&cert_file, &cert_pem).map_err(|e| format!("cannot write {}: {e}", cert_file.display()))?;
    let _ = std::fs::remove_file(&stop_file);
    let mut child = Command::new(godot)
        .args(["--headless", "--path"])
        .arg(root.join("godot-project"))
        .args(["-s", "res://tests/helpers/soak_echo.gd", "--", &port.to_string(), &tls_port.to_string()])
        .args([&key_file, &cert_file, &stop_file])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the Godot server: {e}"))?;
    let lines = Arc::new(Mutex::new(Vec::new()));
    if let Some(stdout) = child.stdout.take() {
        let sink = lines.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(mut lines) = sink.lock() {
                    lines.push(line);
                }
            }
        });
    }
    let server = ServerProcess { child, files: vec![key_file, cert_file, stop_file.clone()], lines };
    let pid = server.child.id();
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", tls_port)).is_err() || TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > Duration::from_secs(60) {
            return Err("the Godot server did not start".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "soak: {PER_KIND} connections each of {} against WebSocketServer in headless Godot (pid {pid}, ws port {port}, wss port {tls_port}), {seconds} s",
        Kind::ALL.map(Kind::label).join(", ")
    );
    let server_cpu_start = crate::bench::process_cpu_seconds(pid).unwrap_or(0.0);
    let clients_cpu_start = crate::bench::process_cpu_seconds(std::process::id()).unwrap_or(0.0);
    let counters: Vec<Arc<Counters>> = Kind::ALL.iter().map(|_| Arc::new(Counters::default())).collect();
    let running = Arc::new(AtomicBool::new(true));
    let workers: Vec<_> = Kind::ALL
        .iter()
        .zip(&counters)
        .enumerate()
        .map(|(i, (&kind, counters))| {
            let (counters, running, cert) = (counters.clone(), running.clone(), cert_pem.clone());
            std::thread::spawn(move || match kind {
                Kind::Plain => plain_worker(port, &counters, &running, i as u64 + 1),
                Kind::Deflate => core_worker(&format!("ws://127.0.0.1:{port}/soak"), None, &counters, &running, i as u64 + 1),
                Kind::TlsDeflate => core_worker(&format!("wss://127.0.0.1:{tls_port}/soak"), Some(cert), &counters, &running, i as u64 + 1),
            })
        })
        .collect();
    let total = |pick: fn(&Counters) -> &AtomicU64| counters.iter().map(|c| Counters::get(pick(c))).sum::<u64>();
    let mut samples = Vec::new();
    let end = started + Duration::from_secs(seconds);
    let every = Duration::from_secs(sample_every(seconds));
    let mut next = Instant::now() + every;
    while Instant::now() < end {
        std::thread::sleep(next.min(end).saturating_duration_since(Instant::now()));
        next += every;
        let sample = Sample {
            seconds: started.elapsed().as_secs(),
            server_rss_kib: resident_kib(pid).unwrap_or(0),
            server_cpu_s: crate::bench::process_cpu_seconds(pid).unwrap_or(0.0) - server_cpu_start,
            clients_cpu_s: crate::bench::process_cpu_seconds(std::process::id()).unwrap_or(0.0) - clients_cpu_start,
            messages: total(|c| &c.echoed),
            connections: total(|c| &c.connections),
        };
        println!(
            "soak: {:>5} s  connections {:>7}  messages {:>9}  lost {}  server RSS {:.1} MiB  CPU server {:.1}% clients {:.1}%",
            sample.seconds,
            sample.connections,
            sample.messages,
            total(|c| &c.lost_or_reordered),
            sample.server_rss_kib as f64 / 1024.0,
            100.0 * sample.server_cpu_s / sample.seconds.max(1) as f64,
            100.0 * sample.clients_cpu_s / sample.seconds.max(1) as f64,
        );
        samples.push(sample);
        if !process_alive(pid) {
            println!("soak: the server process ended early");
            break;
        }
    }
    running.store(false, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let server_cpu = crate::bench::process_cpu_seconds(pid).unwrap_or(0.0) - server_cpu_start;
    let clients_cpu = crate::bench::process_cpu_seconds(std::process::id()).unwrap_or(0.0) - clients_cpu_start;
    let server_report = server.lines.lock().ok().and_then(|l| l.iter().rev().find(|l| l.starts_with("SOAK ")).cloned()).unwrap_or_default();
    let _ = std::fs::write(&stop_file, "stop");
    let wait = Instant::now();
    while wait.elapsed() < Duration::from_secs(10) && process_alive(pid) {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(server);

    // Verdict and report.
    let lost = total(|c| &c.lost_or_reordered);
    let not_compressed = total(|c| &c.not_compressed);
    let every_kind_ran = counters.iter().all(|c| Counters::get(&c.echoed) > 0 && Counters::get(&c.connections) > 1);
    let passed = lost == 0 && not_compressed == 0 && every_kind_ran && samples.last().is_some_and(|s| s.seconds + 5 >= seconds);
    let warm = (seconds / 10).clamp(1, 300);
    let after_warm = samples.iter().find(|s| s.seconds >= warm).or(samples.first());
    let (first, last, max) = (
        after_warm.map(|s| s.server_rss_kib).unwrap_or(0),
        samples.last().map(|s| s.server_rss_kib).unwrap_or(0),
        samples.iter().map(|s| s.server_rss_kib).max().unwrap_or(0),
    );
    let slope = growth_per_hour(samples.iter().filter(|s| s.seconds >= warm).map(|s| (s.seconds as f64, s.server_rss_kib as f64)).collect());
    let mut md = String::new();
    let date = crate::bench::command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"], root);
    let godot_version = crate::bench::command_output(&godot.display().to_string(), &["--version"], root);
    let _ = writeln!(md, "# Soak\n");
    let _ = writeln!(
        md,
        "Written by `cargo xtask soak --seconds {seconds}` on {date} (started {:.0} s earlier): commit `{commit}`{}, Godot {godot_version}, {}.\n",
        elapsed,
        if dirty { " with uncommitted changes" } else { "" },
        crate::bench::machine()
    );
    let _ = writeln!(
        md,
        "**{}** lost or reordered messages over {:.0} minutes. One headless Godot process \
         (`godot-project/tests/helpers/soak_echo.gd`, debug build of the extension, 60 frames a second) holds two `WebSocketServer`s, \
         ws:// and wss:// (a self-signed certificate made for the run), both with permessage-deflate as shipped; it echoes every \
         message. {PER_KIND} connections of each kind below are open at any time; each sends a burst of 1 to 3 messages (16 bytes \
         to 4 KiB, text or binary, compressible) every {} ms at most (the blocking tungstenite clients, one thread serving them in \
         turn, wait for each echo before the next client's turn, so they send less often), checks every echo in order, and \
         after {BUDGET_MIN} to {} messages closes with a close handshake and connects again. The load is paced (the soak is about time and leaks, not speed).\n",
        if lost == 0 { "No".to_string() } else { lost.to_string() },
        elapsed / 60.0,
        MESSAGE_EVERY.as_millis(),
        BUDGET_MIN + BUDGET_SPREAD - 1
    );
    let _ = writeln!(md, "| client kind | connections opened | messages sent | echoes checked | lost or reordered | connect failures | unclean closes | deflate not agreed |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
    for (kind, c) in Kind::ALL.iter().zip(&counters) {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            kind.label(),
            Counters::get(&c.connections),
            Counters::get(&c.sent),
            Counters::get(&c.echoed),
            Counters::get(&c.lost_or_reordered),
            Counters::get(&c.connect_failures),
            Counters::get(&c.unclean_closes),
            if *kind == Kind::Plain { "(not offered)".to_string() } else { Counters::get(&c.not_compressed).to_string() },
        );
    }
    let _ = writeln!(
        md,
        "| **total** | {} | {} | {} | {} | {} | {} | {} |\n",
        total(|c| &c.connections),
        total(|c| &c.sent),
        total(|c| &c.echoed),
        lost,
        total(|c| &c.connect_failures),
        total(|c| &c.unclean_closes),
        not_compressed
    );
    let _ = writeln!(
        md,
        "The server's own count at its last report (every 5 s; `plain` is the ws:// port, `tls` the wss:// port; `*_deflate` counts \
         connections that agreed to permessage-deflate; `refused` counts echoes that waited for room in a full outbound queue):\n\n```\n{server_report}\n```\n"
    );
    let _ = writeln!(
        md,
        "- Server resident memory: {:.1} MiB after the warm-up ({warm} s), {:.1} MiB at the end, {:.1} MiB at most: **growth {:+.1} MiB** \
         (least-squares slope over the samples after the warm-up: {:+.1} MiB per hour).",
        first as f64 / 1024.0,
        last as f64 / 1024.0,
        max as f64 / 1024.0,
        (last as f64 - first as f64) / 1024.0,
        slope / 1024.0
    );
    let _ = writeln!(
        md,
        "- CPU time: server {server_cpu:.1} s ({:.1}% of one core), clients {clients_cpu:.1} s ({:.1}% of one core), together {:.1}% of one core.",
        100.0 * server_cpu / elapsed,
        100.0 * clients_cpu / elapsed,
        100.0 * (server_cpu + clients_cpu) / elapsed
    );
    let problems: Vec<String> =
        Kind::ALL.iter().zip(&counters).flat_map(|(k, c)| c.problems.lock().map(|p| p.iter().map(|p| format!("{}: {p}", k.label())).collect::<Vec<_>>()).unwrap_or_default()).collect();
    if problems.is_empty() {
        let _ = writeln!(md, "- Problems seen: none.");
    } else {
        let _ = writeln!(md, "- The first problems seen (connect failures and unclean closes are reported, not failures of the run):");
        for p in &problems {
            let _ = writeln!(md, "  - {p}");
        }
    }
    let _ = writeln!(md, "- Verdict: **{}** (passes when nothing is lost or reordered, every deflate connection agreed to compression and every kind exchanged messages).\n", if passed { "passed" } else { "FAILED" });
    let _ = writeln!(md, "Samples (every {} s):\n", sample_every(seconds));
    let _ = writeln!(md, "| time (s) | server RSS (MiB) | connections opened | echoes checked | server CPU (s) | clients CPU (s) |");
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    let stride = samples.len().div_ceil(60).max(1);
    for (i, s) in samples.iter().enumerate() {
        if i % stride == 0 || i + 1 == samples.len() {
            let _ = writeln!(
                md,
                "| {} | {:.1} | {} | {} | {:.1} | {:.1} |",
                s.seconds,
                s.server_rss_kib as f64 / 1024.0,
                s.connections,
                s.messages,
                s.server_cpu_s,
                s.clients_cpu_s
            );
        }
    }
    println!("{md}");
    println!(
        "MEASURE soak: {seconds} s, {} connections, {} messages checked, {lost} lost or reordered, server RSS growth {:+.1} MiB after warm-up, CPU server {:.1}% clients {:.1}%",
        total(|c| &c.connections),
        total(|c| &c.echoed),
        (last as f64 - first as f64) / 1024.0,
        100.0 * server_cpu / elapsed,
        100.0 * clients_cpu / elapsed
    );
    let path = root.join("docs/soak.md");
    std::fs::write(&path, &md).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("soak: wrote {} ({})", path.display(), if passed { "passed" } else { "FAILED" });
    Ok(passed)
}

/// Least-squares slope of `points` (seconds, KiB), in KiB per hour; 0 with fewer than two.
fn growth_per_hour(points: Vec<(f64, f64)>) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let (num, den) = points.iter().fold((0.0, 0.0), |(num, den), (x, y)| (num + (x - mx) * (y - my), den + (x - mx) * (x - mx)));
    if den == 0.0 {
        0.0
    } else {
        num / den * 3600.0
    }
}

/// Whether process `pid` still runs (and is not a zombie).
fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
}

/// A message for sequence number `seq`: the number in the first 8 bytes, then compressible
/// filler, `len` bytes in all (at least 16); text (ASCII) or binary.
fn payload(seq: u64, len: usize, text: bool) -> Bytes {
    const WORDS: [&str; 8] = ["player", "position", "velocity", "health", "inventory", "score", "team", "chat"];
    let mut data = format!("{seq:016x}").into_bytes();
    let mut i = seq as usize;
    while data.len() < len {
        let word = WORDS[i % WORDS.len()];
        data.extend_from_slice(if text { word.as_bytes() } else { &[0u8, 1, 2, 3] });
        data.push(if text { b' ' } else { (i % 251) as u8 });
        i += 1;
    }
    data.truncate(len.max(16));
    Bytes::from(data)
}

/// The length of message `seq` on a connection: mostly small, now and then up to 4 KiB.
fn length_of(rng: &mut u64) -> usize {
    match next(rng) % 10 {
        0 => 1024 + (next(rng) % 3073) as usize,
        1..=3 => 128 + (next(rng) % 897) as usize,
        _ => 16 + (next(rng) % 112) as usize,
    }
}

/// ws:// clients from tungstenite, blocking, each in turn: a burst of 1-3 messages and their
/// echoes (checked in order), the close handshake after its budget, then a new connection.
fn plain_worker(port: u16, counters: &Counters, running: &AtomicBool, seed: u64) {
    let url = format!("ws://127.0.0.1:{port}/soak");
    let mut rng = fastrand_seed(seed);
    let mut clients: Vec<Option<(tungstenite::WebSocket<TcpStream>, u64, u64)>> = (0..PER_KIND).map(|_| None).collect();
    while running.load(Ordering::Relaxed) {
        let round = Instant::now();
        for slot in clients.iter_mut() {
            if !running.load(Ordering::Relaxed) {
                break;
            }
            if slot.is_none() {
                let connected = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string()).and_then(|tcp| {
                    tcp.set_read_timeout(Some(ECHO_LIMIT)).map_err(|e| e.to_string())?;
                    tungstenite::client::client(url.as_str(), tcp).map(|(ws, _)| ws).map_err(|e| e.to_string())
                });
                match connected {
                    Ok(ws) => {
                        counters.connections.fetch_add(1, Ordering::Relaxed);
                        *slot = Some((ws, 0, BUDGET_MIN + next(&mut rng) % BUDGET_SPREAD));
                    }
                    Err(e) => {
                        counters.connect_failures.fetch_add(1, Ordering::Relaxed);
                        counters.problem(format!("connect: {e}"));
                        continue;
                    }
                }
            }
            let Some((ws, seq, budget)) = slot.as_mut() else { continue };
            let burst = 1 + next(&mut rng) % 3;
            let mut expected = VecDeque::new();
            let mut ok = true;
            for _ in 0..burst {
                let text = next(&mut rng).is_multiple_of(2);
                let data = payload(*seq, length_of(&mut rng), text);
                *seq += 1;
                counters.sent.fetch_add(1, Ordering::Relaxed);
                let message = if text { Message::Text(String::from_utf8_lossy(&data).into_owned().into()) } else { Message::Binary(data.clone()) };
                ok &= ws.send(message).is_ok();
                expected.push_back((data, text));
            }
            let mut good = 0u64;
            while ok && !expected.is_empty() {
                match ws.read() {
                    Ok(Message::Binary(echo)) => ok = expected.pop_front().is_some_and(|(d, text)| !text && echo == d),
                    Ok(Message::Text(echo)) => ok = expected.pop_front().is_some_and(|(d, text)| text && echo.as_bytes() == &d[..]),
                    Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => {}
                    Ok(other) => {
                        counters.problem(format!("instead of an echo: {other:?}"));
                        ok = false;
                    }
                    Err(e) => {
                        counters.problem(format!("waiting for an echo: {e}"));
                        ok = false;
                    }
                }
                if ok {
                    good += 1;
                    counters.echoed.fetch_add(1, Ordering::Relaxed);
                }
            }
            if !ok {
                // The one that failed and every one after it.
                counters.lost_or_reordered.fetch_add(burst - good, Ordering::Relaxed);
            }
            if !ok || *seq >= *budget {
                let clean = ws.close(None).is_ok() && loop {
                    match ws.read() {
                        Ok(_) => continue,
                        Err(tungstenite::Error::ConnectionClosed) => break true,
                        Err(_) => break false,
                    }
                };
                if clean {
                    counters.clean_closes.fetch_add(1, Ordering::Relaxed);
                } else {
                    counters.unclean_closes.fetch_add(1, Ordering::Relaxed);
                }
                *slot = None;
            }
        }
        std::thread::sleep(MESSAGE_EVERY.saturating_sub(round.elapsed()));
    }
    for (ws, _, _) in clients.iter_mut().flatten() {
        let _ = ws.close(None);
        while ws.read().is_ok() {}
    }
}

/// One core Client connection's state.
struct CoreSlot {
    client: Client,
    /// When it started connecting; None once established.
    connecting_since: Option<Instant>,
    /// Messages sent so far and the budget.
    seq: u64,
    budget: u64,
    /// Echoes still due, in order: (data, text, sent at).
    expected: VecDeque<(Bytes, bool, Instant)>,
    next_send: Instant,
    /// The close handshake was started.
    closing: bool,
}

/// Our core Client (inline I/O, permessage-deflate offered; TLS trusting `trusted_cert` for
/// wss://), [`PER_KIND`] connections driven in turn on this thread every 10 ms.
fn core_worker(url: &str, trusted_cert: Option<String>, counters: &Counters, running: &AtomicBool, seed: u64) {
    let mut rng = fastrand_seed(seed);
    let config = || {
        let mut config = ConnectionConfig { io_thread: false, ..ConnectionConfig::default() };
        if let Some(cert) = &trusted_cert {
            config.tls_client = TlsClientSettings::Verify { trusted_chain_pem: Some(cert.clone()), common_name_override: None };
        }
        config
    };
    let mut slots: Vec<Option<CoreSlot>> = (0..PER_KIND).map(|_| None).collect();
    let mut events = Vec::new();
    let mut stop_at: Option<Instant> = None;
    loop {
        let stopping = !running.load(Ordering::Relaxed);
        if stopping {
            // Close what is open (after its echoes) and connect nothing new; give up after 30 s.
            let since = *stop_at.get_or_insert_with(Instant::now);
            if slots.iter().all(Option::is_none) || since.elapsed() > ECHO_LIMIT {
                for s in slots.iter_mut().flatten() {
                    counters.unclean_closes.fetch_add(1, Ordering::Relaxed);
                    counters.lost_or_reordered.fetch_add(s.expected.len() as u64, Ordering::Relaxed);
                    s.client.close_now();
                }
                break;
            }
            for slot in slots.iter_mut().flatten() {
                slot.budget = slot.seq;
            }
        }
        for (index, slot) in slots.iter_mut().enumerate() {
            if slot.is_none() && !stopping {
                let mut client = Client::new();
                match client.connect(url, config()) {
                    Ok(()) => {
                        // Spread the connections over the send period.
                        let offset = MESSAGE_EVERY.mul_f64(index as f64 / PER_KIND as f64);
                        *slot = Some(CoreSlot {
                            client,
                            connecting_since: Some(Instant::now()),
                            seq: 0,
                            budget: BUDGET_MIN + next(&mut rng) % BUDGET_SPREAD,
                            expected: VecDeque::new(),
                            next_send: Instant::now() + offset,
                            closing: false,
                        });
                    }
                    Err(e) => {
                        counters.connect_failures.fetch_add(1, Ordering::Relaxed);
                        counters.problem(format!("connect: {e}"));
                        continue;
                    }
                }
            }
            let Some(s) = slot.as_mut() else { continue };
            events.clear();
            s.client.poll(&mut events);
            let mut ended = false;
            for event in events.drain(..) {
                match event {
                    ClientEvent::ConnectionEstablished { .. } => {
                        s.connecting_since = None;
                        counters.connections.fetch_add(1, Ordering::Relaxed);
                        if s.client.peer().and_then(|p| p.deflate()).is_none() {
                            counters.not_compressed.fetch_add(1, Ordering::Relaxed);
                            counters.problem("permessage-deflate was not agreed".into());
                        }
                    }
                    ClientEvent::DataReceived => {}
                    ClientEvent::ConnectionError { reason } => {
                        counters.connect_failures.fetch_add(1, Ordering::Relaxed);
                        counters.problem(format!("connect: {reason}"));
                        ended = true;
                    }
                    ClientEvent::ConnectionClosed { was_clean, error } => {
                        if !s.expected.is_empty() {
                            counters.lost_or_reordered.fetch_add(s.expected.len() as u64, Ordering::Relaxed);
                            counters.problem(format!("closed with {} echoes due", s.expected.len()));
                        }
                        if was_clean && s.closing {
                            counters.clean_closes.fetch_add(1, Ordering::Relaxed);
                        } else {
                            counters.unclean_closes.fetch_add(1, Ordering::Relaxed);
                            counters.problem(format!("closed (clean: {was_clean}, asked: {}): {error:?}", s.closing));
                        }
                        ended = true;
                    }
                    _ => {}
                }
            }
            // Check every echo that arrived, in order.
            if let Some(peer) = s.client.peer() {
                while let Some(packet) = peer.recv() {
                    match s.expected.pop_front() {
                        Some((data, text, _)) if packet.data == data && packet.is_text == text => {
                            counters.echoed.fetch_add(1, Ordering::Relaxed);
                        }
                        other => {
                            counters.lost_or_reordered.fetch_add(1, Ordering::Relaxed);
                            counters.problem(format!("echo of {} bytes where {:?} bytes were due", packet.data.len(), other.map(|o| o.0.len())));
                        }
                    }
                }
            }
            if ended {
                *slot = None;
                continue;
            }
            let now = Instant::now();
            if s.connecting_since.is_some_and(|since| now - since > CONNECT_LIMIT) {
                counters.connect_failures.fetch_add(1, Ordering::Relaxed);
                counters.problem("not established in time".into());
                s.client.close_now();
                *slot = None;
                continue;
            }
            if s.expected.front().is_some_and(|(_, _, at)| now - *at > ECHO_LIMIT) {
                counters.lost_or_reordered.fetch_add(s.expected.len() as u64, Ordering::Relaxed);
                counters.problem(format!("{} echoes not back after {ECHO_LIMIT:?}", s.expected.len()));
                s.expected.clear();
                let _ = s.client.abort();
                continue;
            }
            if s.connecting_since.is_some() || s.closing {
                continue;
            }
            if s.seq >= s.budget {
                if s.expected.is_empty() {
                    s.closing = true;
                    if s.client.disconnect(1000, "").is_err() {
                        s.client.close_now();
                        counters.unclean_closes.fetch_add(1, Ordering::Relaxed);
                        *slot = None;
                    }
                }
                continue;
            }
            if now >= s.next_send {
                s.next_send += MESSAGE_EVERY;
                let Some(peer) = s.client.peer() else { continue };
                for _ in 0..1 + next(&mut rng) % 3 {
                    let text = next(&mut rng).is_multiple_of(2);
                    let data = payload(s.seq, length_of(&mut rng), text);
                    match peer.send(Packet { data: data.clone(), is_text: text }) {
                        Ok(()) => {
                            s.seq += 1;
                            counters.sent.fetch_add(1, Ordering::Relaxed);
                            s.expected.push_back((data, text, now));
                        }
                        Err(e) => {
                            // Back-pressure: try again at the next send time.
                            counters.problem(format!("send refused: {e}"));
                            break;
                        }
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn fastrand_seed(seed: u64) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
}

/// xorshift64: enough randomness for message sizes and budgets.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Resident memory of a process in KiB (Linux).
fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
