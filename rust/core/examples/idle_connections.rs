//! Scale shape of the core server: N idle connections (10,000 by default), then K of them
//! active. Prints the server's resident memory per connection and the time one `poll()` takes
//! with only idle peers and with K peers sending at 60 Hz.
//!
//! ```text
//! cargo run --release -p websocket_rs_core --example idle_connections [-- N K]
//! ```
//!
//! The clients live in a child process (this same program with `--hold`), so that each process
//! needs only N file descriptors and the server's memory is measured alone.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use websocket_rs_core::{ConnectionConfig, Server, ServerEvent};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    raise_fd_limit();
    if args.first().map(String::as_str) == Some("--hold") {
        hold(&args[1..]);
        return;
    }
    let count: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let active: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100);
    measure(count, active);
}

fn measure(count: usize, active: usize) {
    let mut server = Server::new();
    let addr = server.listen(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), ConnectionConfig::default()).expect("listen on 127.0.0.1");
    let mut events = Vec::new();
    // Warm the allocator and the event path before the baseline.
    server.poll(&mut events);
    let rss_before = resident_bytes();

    let exe = std::env::current_exe().expect("own path");
    let mut child = Command::new(exe)
        .args(["--hold", &addr.port().to_string(), &count.to_string(), &active.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the client process");
    let mut child_out = BufReader::new(child.stdout.take().expect("child stdout"));
    let mut child_in = child.stdin.take().expect("child stdin");

    let started = Instant::now();
    let mut connected = 0usize;
    while connected < count {
        events.clear();
        server.poll(&mut events);
        connected += events.iter().filter(|e| matches!(e, ServerEvent::ClientConnected { .. })).count();
        assert!(started.elapsed() < Duration::from_secs(120), "only {connected} of {count} connected in 120 s");
        std::thread::sleep(Duration::from_millis(1));
    }
    let connect_time = started.elapsed();
    let mut line = String::new();
    child_out.read_line(&mut line).expect("child reports");
    // Let the I/O thread settle, then measure.
    std::thread::sleep(Duration::from_millis(200));
    events.clear();
    server.poll(&mut events);
    let rss_after = resident_bytes();

    let idle = time_polls(&mut server, 2_000, Duration::from_micros(500));

    writeln!(child_in, "chatter").expect("tell the child to chatter");
    std::thread::sleep(Duration::from_millis(100));
    let busy = time_polls(&mut server, 2_000, Duration::from_micros(500));
    drop(child_in);
    let _ = child.wait();

    println!("idle_connections: {count} connections to the core server on loopback (connected in {:.2} s)", connect_time.as_secs_f64());
    match (rss_before, rss_after) {
        (Some(before), Some(after)) => {
            let per = after.saturating_sub(before) as f64 / count as f64;
            println!("  server resident memory: {:.1} MiB more, {:.1} KiB per connection", (after - before) as f64 / 1048576.0, per / 1024.0);
        }
        _ => println!("  server resident memory: not measurable on this system"),
    }
    println!("  poll() with every peer idle:        mean {:>7.2} us, p99 {:>7.2} us, max {:>7.2} us", idle.mean, idle.p99, idle.max);
    println!("  poll() with {active:>5} peers at 60 Hz:   mean {:>7.2} us, p99 {:>7.2} us, max {:>7.2} us ({} messages taken)",
        busy.mean, busy.p99, busy.max, busy.messages);
}

struct PollTimes {
    mean: f64,
    p99: f64,
    max: f64,
    messages: usize,
}

/// Calls `poll()` `rounds` times, `gap` apart (like frames), taking every packet; times each call.
fn time_polls(server: &mut Server, rounds: usize, gap: Duration) -> PollTimes {
    let mut events = Vec::new();
    let mut times = Vec::with_capacity(rounds);
    let mut messages = 0;
    for _ in 0..rounds {
        events.clear();
        let start = Instant::now();
        server.poll(&mut events);
        for event in &events {
            if let ServerEvent::DataReceived { id } = event {
                if let Ok(peer) = server.peer(*id) {
                    while peer.recv().is_some() {
                        messages += 1;
                    }
                }
            }
        }
        times.push(start.elapsed().as_secs_f64() * 1e6);
        std::thread::sleep(gap);
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    times.sort_by(f64::total_cmp);
    PollTimes { mean, p99: times[times.len() * 99 / 100], max: times[times.len() - 1], messages }
}

/// The child: opens `count` connections, reports, waits for "chatter", then makes `active` of
/// them send a 32-byte message at 60 Hz until its stdin closes.
fn hold(args: &[String]) {
    let port: u16 = args[0].parse().expect("port");
    let count: usize = args[1].parse().expect("count");
    let active: usize = args[2].parse().expect("active");
    let url = format!("ws://127.0.0.1:{port}/");
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let (ws, _) = tungstenite::client::client(url.as_str(), stream).expect("handshake");
        sockets.push(ws);
    }
    println!("connected {count}");
    let mut stdin = BufReader::new(std::io::stdin());
    let mut line = String::new();
    if stdin.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    // Chatter from another thread; the main thread waits for stdin to close.
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let chatter = std::thread::spawn(move || {
        let payload = tungstenite::Bytes::from_static(&[7u8; 32]);
        while stop_rx.try_recv().is_err() {
            for ws in sockets.iter_mut().take(active) {
                let _ = ws.send(tungstenite::Message::Binary(payload.clone()));
            }
            std::thread::sleep(Duration::from_millis(16));
        }
    });
    let _ = stdin.read_line(&mut line);
    let _ = stop_tx.send(());
    let _ = chatter.join();
}

/// Resident set size of this process, from /proc (Linux).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Lifts the soft open-files limit to the hard one (10,000 sockets need more than the usual 1,024).
fn raise_fd_limit() {
    #[cfg(unix)]
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    unsafe {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
