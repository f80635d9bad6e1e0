//! `cargo xtask soak [--seconds N]`: our WebSocketServer (the echo server in headless Godot,
//! `tests/helpers/autobahn_echo.gd`) under 500 clients that connect, exchange sequence-numbered
//! messages and leave, for 10 minutes by default. Every echo is checked; the server's resident
//! memory is sampled. Reports lost or reordered messages (must be 0) and memory growth.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tungstenite::{Bytes, Message};

/// Clients connected at any time.
const CLIENTS: usize = 500;
/// Threads driving them.
const THREADS: usize = 20;

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    sent: AtomicU64,
    echoed: AtomicU64,
    lost_or_reordered: AtomicU64,
    connect_failures: AtomicU64,
}

/// Runs the soak; Ok(true) when nothing was lost.
pub(crate) fn run(godot: &Path, project: &Path, seconds: u64) -> Result<bool, String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let stop_file = std::env::temp_dir().join(format!("websocket-rs-soak-{}.stop", std::process::id()));
    let _ = std::fs::remove_file(&stop_file);
    let mut server = Command::new(godot)
        .args(["--headless", "--path"])
        .arg(project)
        .args(["-s", "res://tests/helpers/autobahn_echo.gd", "--", &port.to_string()])
        .arg(&stop_file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the Godot server: {e}"))?;
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = server.kill();
            return Err("the Godot server did not start".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("soak: {CLIENTS} clients on {THREADS} threads against WebSocketServer in headless Godot (pid {}), {seconds} s", server.id());
    let counters = Arc::new(Counters::default());
    let running = Arc::new(AtomicBool::new(true));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (counters, running) = (counters.clone(), running.clone());
            std::thread::spawn(move || worker(t, port, &counters, &running))
        })
        .collect();
    let mut samples = Vec::new();
    let end = Instant::now() + Duration::from_secs(seconds);
    let every = Duration::from_secs((seconds / 20).clamp(1, 30));
    while Instant::now() < end {
        std::thread::sleep(every.min(end.saturating_duration_since(Instant::now())));
        if let Some(rss) = resident_kib(server.id()) {
            samples.push(rss);
            println!(
                "soak: {:>4} s  connections {:>7}  messages {:>9}  lost {}  server RSS {:.1} MiB",
                started.elapsed().as_secs(),
                counters.connections.load(Ordering::Relaxed),
                counters.echoed.load(Ordering::Relaxed),
                counters.lost_or_reordered.load(Ordering::Relaxed),
                rss as f64 / 1024.0
            );
        }
    }
    running.store(false, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let _ = std::fs::write(&stop_file, "stop");
    let wait = Instant::now();
    while wait.elapsed() < Duration::from_secs(10) && matches!(server.try_wait(), Ok(None)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_file(&stop_file);
    let lost = counters.lost_or_reordered.load(Ordering::Relaxed);
    let (first, last, max) = (
        samples.get(samples.len().min(2).saturating_sub(1)).copied().unwrap_or(0),
        samples.last().copied().unwrap_or(0),
        samples.iter().copied().max().unwrap_or(0),
    );
    println!(
        "soak result: {} s, {} connections opened, {} messages echoed and checked, {} lost or reordered, {} connect failures",
        seconds,
        counters.connections.load(Ordering::Relaxed),
        counters.echoed.load(Ordering::Relaxed),
        lost,
        counters.connect_failures.load(Ordering::Relaxed)
    );
    println!(
        "soak result: server RSS {:.1} MiB after warm-up, {:.1} MiB at the end, {:.1} MiB at most: growth {:+.1} MiB",
        first as f64 / 1024.0,
        last as f64 / 1024.0,
        max as f64 / 1024.0,
        (last as f64 - first as f64) / 1024.0
    );
    Ok(lost == 0 && counters.echoed.load(Ordering::Relaxed) > 0)
}

/// One thread's share of the clients: each connects, exchanges 20-200 numbered messages (every
/// echo must come back in order), closes cleanly and connects again.
fn worker(thread: usize, port: u16, counters: &Counters, running: &AtomicBool) {
    let url = format!("ws://127.0.0.1:{port}/soak");
    let per_thread = CLIENTS / THREADS;
    let mut rng = fastrand_seed(thread as u64 + 1);
    let mut clients: Vec<Option<(tungstenite::WebSocket<TcpStream>, u32, u32)>> = (0..per_thread).map(|_| None).collect();
    while running.load(Ordering::Relaxed) {
        for slot in clients.iter_mut() {
            if slot.is_none() {
                match TcpStream::connect(("127.0.0.1", port)) {
                    Ok(tcp) => {
                        let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
                        match tungstenite::client::client(url.as_str(), tcp) {
                            Ok((ws, _)) => {
                                counters.connections.fetch_add(1, Ordering::Relaxed);
                                *slot = Some((ws, 0, 20 + (next(&mut rng) % 180) as u32));
                            }
                            Err(_) => {
                                counters.connect_failures.fetch_add(1, Ordering::Relaxed);
                                continue;
                            }
                        }
                    }
                    Err(_) => {
                        counters.connect_failures.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                }
            }
            let Some((ws, seq, budget)) = slot.as_mut() else { continue };
            let payload = Bytes::from(seq.to_be_bytes().to_vec());
            counters.sent.fetch_add(1, Ordering::Relaxed);
            let ok = ws.send(Message::Binary(payload.clone())).is_ok()
                && loop {
                    match ws.read() {
                        Ok(Message::Binary(echo)) => break echo == payload,
                        Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => continue,
                        _ => break false,
                    }
                };
            if ok {
                counters.echoed.fetch_add(1, Ordering::Relaxed);
                *seq += 1;
            } else {
                counters.lost_or_reordered.fetch_add(1, Ordering::Relaxed);
            }
            if !ok || *seq >= *budget {
                let _ = ws.close(None);
                // Let the close handshake finish (the server answers the close frame).
                while ws.read().is_ok() {}
                *slot = None;
            }
        }
    }
    for (ws, _, _) in clients.iter_mut().flatten() {
        let _ = ws.close(None);
        while ws.read().is_ok() {}
    }
}

fn fastrand_seed(seed: u64) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
}

/// xorshift64: enough randomness for message budgets.
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
