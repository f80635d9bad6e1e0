//! The load generator: connections spread over worker threads, each running a mio event loop
//! over non-blocking tungstenite sockets. Every message is checked where it is received.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::TcpStream as MioStream;
use mio::{Events, Interest, Poll, Token};
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Bytes, Message, WebSocket};

use crate::handshake;
use crate::Options;

/// What one worker counted.
#[derive(Default)]
struct Tally {
    /// Messages received and checked.
    received: u64,
    /// Messages missing, out of order or corrupted.
    errors: u64,
    /// Round-trip times in microseconds (echo), measured after the warm-up.
    latencies_us: Vec<u32>,
    /// Messages received after the warm-up (echo), for the rate.
    measured: u64,
    /// The first error seen, for the report.
    first_error: Option<String>,
    /// Fewest ticks any client of this worker received (broadcast).
    min_ticks: u64,
}

impl Tally {
    fn error(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }
}

/// tungstenite's read buffer for every connection of this run (`--read-buffer`).
static READ_BUFFER: AtomicUsize = AtomicUsize::new(64 << 10);

/// CPU time used during the measured window: the server's (when its pid is known) and ours.
struct WindowCpu {
    /// Seconds of server CPU (all threads) in the window, if /proc could be read.
    server_s: Option<f64>,
    /// Seconds of load-generator CPU in the window.
    loadgen_s: f64,
    /// Length of the window in seconds.
    wall_s: f64,
}

impl WindowCpu {
    /// `server_cpu_s=.. server_cpu_percent=.. server_cpu_us_per_<unit>=.. loadgen_window_cpu_percent=..`,
    /// the per-unit figure over `count` units (messages or connections).
    fn fields(&self, unit: &str, count: u64) -> String {
        let mut fields = String::new();
        if let Some(server) = self.server_s {
            fields.push_str(&format!(
                " server_cpu_s={server:.2} server_cpu_percent={:.0} server_cpu_us_per_{unit}={:.3}",
                100.0 * server / self.wall_s.max(1e-9),
                if count > 0 { server * 1e6 / count as f64 } else { 0.0 }
            ));
        }
        fields.push_str(&format!(" loadgen_window_cpu_percent={:.0}", 100.0 * self.loadgen_s / self.wall_s.max(1e-9)));
        fields
    }
}

/// Reads the CPU time of the server `pid` and of this process at `start` and at `end`, on a
/// thread of its own (so the workers are not interrupted).
fn sample_window(pid: Option<u64>, start: Instant, end: Instant) -> JoinHandle<WindowCpu> {
    std::thread::spawn(move || {
        let server = || pid.and_then(|pid| crate::process_cpu_seconds(&pid.to_string()));
        std::thread::sleep(start.saturating_duration_since(Instant::now()));
        let (server_start, loadgen_start, wall_start) = (server(), crate::cpu_seconds(), Instant::now());
        std::thread::sleep(end.saturating_duration_since(Instant::now()));
        let (server_end, loadgen_end) = (server(), crate::cpu_seconds());
        WindowCpu {
            server_s: server_start.zip(server_end).map(|(a, b)| b - a),
            loadgen_s: loadgen_end - loadgen_start,
            wall_s: wall_start.elapsed().as_secs_f64(),
        }
    })
}

/// The sampler's figures (an empty window if its thread panicked).
fn join_window(sampler: JoinHandle<WindowCpu>) -> WindowCpu {
    sampler.join().unwrap_or(WindowCpu { server_s: None, loadgen_s: 0.0, wall_s: 0.0 })
}

/// Runs one workload against the server on `port`; Ok(false) if a message was lost.
pub(crate) fn run(workload: &str, port: u16, options: &Options) -> Result<bool, String> {
    let seconds = options.number("--seconds", 10)?;
    let server_pid = match options.number("--server-pid", 0)? {
        0 => None,
        pid => Some(pid),
    };
    READ_BUFFER.store(options.number("--read-buffer", 64 << 10)?.max(4096) as usize, Ordering::Relaxed);
    // Event-loop threads: half the cores by default, so the server under test keeps the other
    // half (on a 2-core machine one thread drives every connection, and shows its CPU use).
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let threads = options.number("--threads", (cores / 2).max(1) as u64)? as usize;
    let skip_first = options.flag("--skip-first");
    let cpu_start = crate::cpu_seconds();
    let wall_start = Instant::now();
    let (ok, fields) = match workload {
        "echo" => {
            let shape = EchoShape { clients: options.number("--clients", 100)? as usize, window: options.number("--window", 8)? as usize, size: options.number("--size", 64)? as usize };
            echo(port, shape, seconds, threads, server_pid)?
        }
        "broadcast" => broadcast(port, options.number("--clients", 1000)? as usize, seconds, threads, skip_first, server_pid)?,
        "idle" => idle(port, options.number("--clients", 10_000)? as usize, seconds)?,
        "churn" => churn(port, seconds, options.number("--threads", 8)? as usize, server_pid)?,
        other => return Err(format!("unknown workload {other}")),
    };
    let cpu = crate::cpu_seconds() - cpu_start;
    let wall = wall_start.elapsed().as_secs_f64();
    let retries = handshake::RETRIES.load(std::sync::atomic::Ordering::Relaxed);
    println!("RESULT workload={workload} ok={ok} {fields} connect_retries={retries} loadgen_cpu_s={cpu:.2} loadgen_wall_s={wall:.2} loadgen_cpu_percent={:.0}", 100.0 * cpu / wall);
    Ok(ok)
}

fn config() -> WebSocketConfig {
    let mut config = WebSocketConfig::default();
    config.read_buffer_size = READ_BUFFER.load(Ordering::Relaxed);
    config.max_message_size = Some(64 << 20);
    config.max_frame_size = Some(64 << 20);
    config
}

/// A non-blocking tungstenite socket made from a handshaken blocking one.
fn websocket(stream: TcpStream, leftover: Vec<u8>) -> Result<WebSocket<MioStream>, String> {
    stream.set_nonblocking(true).map_err(|e| e.to_string())?;
    Ok(WebSocket::from_partially_read(MioStream::from_std(stream), leftover, Role::Client, Some(config())))
}

/// Splits `items` into `parts` nearly equal groups.
fn split<T>(items: Vec<T>, parts: usize) -> Vec<Vec<T>> {
    let mut groups: Vec<Vec<T>> = (0..parts.max(1)).map(|_| Vec::new()).collect();
    let n = groups.len();
    for (i, item) in items.into_iter().enumerate() {
        groups[i % n].push(item);
    }
    groups
}

/// Whether an error only means "nothing more right now".
fn would_block(err: &tungstenite::Error) -> bool {
    matches!(err, tungstenite::Error::Io(e) if e.kind() == ErrorKind::WouldBlock)
}

/// Runs `work` on every group of connections in its own thread and adds up the tallies.
fn on_threads<T: Send + 'static>(
    groups: Vec<Vec<T>>,
    work: impl Fn(Vec<T>) -> Result<Tally, String> + Send + Sync + 'static,
) -> Result<Tally, String> {
    let work = Arc::new(work);
    let handles: Vec<_> = groups
        .into_iter()
        .map(|group| {
            let work = work.clone();
            std::thread::spawn(move || work(group))
        })
        .collect();
    let mut total = Tally { min_ticks: u64::MAX, ..Tally::default() };
    for handle in handles {
        let tally = handle.join().map_err(|_| "a load thread panicked".to_string())??;
        total.received += tally.received;
        total.errors += tally.errors;
        total.measured += tally.measured;
        total.latencies_us.extend(tally.latencies_us);
        total.min_ticks = total.min_ticks.min(tally.min_ticks);
        if total.first_error.is_none() {
            total.first_error = tally.first_error;
        }
    }
    Ok(total)
}

/// A microsecond clock shared by the threads (messages carry their send time).
fn micros_since(base: Instant) -> u64 {
    base.elapsed().as_micros() as u64
}

/// How many echo clients, messages in flight per client, and bytes per message.
struct EchoShape {
    clients: usize,
    window: usize,
    size: usize,
}

/// Echo: each client keeps `window` messages of `size` bytes in flight; each echo must come back
/// intact and in order. Measures messages per second, round-trip latency and (with the server's
/// pid) the server's CPU per message after a one-second warm-up, then waits for every message
/// still in flight.
fn echo(port: u16, shape: EchoShape, seconds: u64, threads: usize, server_pid: Option<u64>) -> Result<(bool, String), String> {
    let EchoShape { clients, window, size } = shape;
    if size < 16 {
        return Err("--size must be at least 16 bytes".into());
    }
    let connections = handshake::connect_many(port, clients, 32)?;
    let base = Instant::now();
    let warm_until = base + Duration::from_secs(1);
    let send_until = warm_until + Duration::from_secs(seconds);
    let sampler = sample_window(server_pid, warm_until, send_until);
    let groups = split(connections, threads);
    let tally = on_threads(groups, move |group| echo_worker(group, window, size, base, warm_until, send_until))?;
    let cpu = join_window(sampler);
    let elapsed = seconds as f64;
    let mut latencies = tally.latencies_us;
    latencies.sort_unstable();
    let pct = |p: f64| latencies.get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1))).copied().unwrap_or(0);
    let ok = tally.errors == 0 && tally.measured > 0;
    let fields = format!(
        "clients={clients} size={size} window={window} messages={} errors={} messages_per_s={:.0} mb_per_s={:.1} p50_us={} p99_us={}{}{}",
        tally.received,
        tally.errors,
        tally.measured as f64 / elapsed,
        tally.measured as f64 * size as f64 / elapsed / 1e6,
        pct(0.50),
        pct(0.99),
        cpu.fields("message", tally.measured),
        tally.first_error.map(|e| format!(" first_error=\"{e}\"")).unwrap_or_default()
    );
    Ok((ok, fields))
}

struct EchoClient {
    ws: WebSocket<MioStream>,
    next_send: u64,
    next_expected: u64,
    alive: bool,
}

fn echo_worker(group: Vec<(TcpStream, Vec<u8>)>, window: usize, size: usize, base: Instant, warm_until: Instant, send_until: Instant) -> Result<Tally, String> {
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut clients = Vec::with_capacity(group.len());
    for (i, (stream, leftover)) in group.into_iter().enumerate() {
        let mut ws = websocket(stream, leftover)?;
        poll.registry().register(ws.get_mut(), Token(i), Interest::READABLE | Interest::WRITABLE).map_err(|e| e.to_string())?;
        clients.push(EchoClient { ws, next_send: 0, next_expected: 0, alive: true });
    }
    let mut tally = Tally::default();
    let filler = vec![0x5au8; size];
    let message = |seq: u64| {
        let mut data = filler.clone();
        data[..8].copy_from_slice(&seq.to_le_bytes());
        data[8..16].copy_from_slice(&micros_since(base).to_le_bytes());
        Message::Binary(Bytes::from(data))
    };
    for client in &mut clients {
        for _ in 0..window {
            let seq = client.next_send;
            client.next_send += 1;
            let _ = client.ws.write(message(seq));
        }
        let _ = client.ws.flush();
    }
    let mut events = Events::with_capacity(1024);
    // After sending stops, every message in flight must still come back.
    let drain_until = send_until + Duration::from_secs(30);
    loop {
        let now = Instant::now();
        let outstanding = clients.iter().any(|c| c.alive && c.next_expected < c.next_send);
        if now >= drain_until || (now >= send_until && !outstanding) {
            break;
        }
        poll.poll(&mut events, Some(Duration::from_millis(50))).map_err(|e| e.to_string())?;
        for event in &events {
            let client = &mut clients[event.token().0];
            if !client.alive {
                continue;
            }
            loop {
                match client.ws.read() {
                    Ok(Message::Binary(data)) => {
                        let seq = data.get(..8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()));
                        let intact = data.len() == size && seq == Some(client.next_expected) && data[16..].iter().all(|&b| b == 0x5a);
                        if !intact {
                            tally.error(format!("expected echo {} of {size} bytes, got {:?} of {} bytes", client.next_expected, seq, data.len()));
                        }
                        client.next_expected += 1;
                        tally.received += 1;
                        let now = Instant::now();
                        if intact && now >= warm_until && now < send_until {
                            let sent = u64::from_le_bytes(data[8..16].try_into().unwrap_or_default());
                            tally.latencies_us.push(micros_since(base).saturating_sub(sent) as u32);
                            tally.measured += 1;
                        }
                        if now < send_until {
                            let seq = client.next_send;
                            client.next_send += 1;
                            if let Err(err) = client.ws.write(message(seq)) {
                                if !would_block(&err) {
                                    tally.error(format!("send: {err}"));
                                }
                            }
                        }
                    }
                    Ok(Message::Close(frame)) => {
                        tally.error(format!("the server closed the connection: {frame:?}"));
                        client.alive = false;
                        break;
                    }
                    Ok(_) => {}
                    Err(err) if would_block(&err) => break,
                    Err(err) => {
                        tally.error(format!("read: {err}"));
                        client.alive = false;
                        break;
                    }
                }
            }
            if client.alive {
                if let Err(err) = client.ws.flush() {
                    if !would_block(&err) {
                        tally.error(format!("flush: {err}"));
                        client.alive = false;
                    }
                }
            }
        }
    }
    for client in &mut clients {
        if client.next_expected < client.next_send {
            tally.error(format!("{} echoes never came back", client.next_send - client.next_expected));
        }
        let _ = client.ws.close(None);
        let _ = client.ws.flush();
    }
    Ok(tally)
}

/// Broadcast: `clients` connections receive the server's ticks (8-byte tick number first) for
/// `seconds`; every client must see consecutive tick numbers.
fn broadcast(port: u16, clients: usize, seconds: u64, threads: usize, skip_first: bool, server_pid: Option<u64>) -> Result<(bool, String), String> {
    let started = Instant::now();
    let connections = handshake::connect_many(port, clients, 32)?;
    let connect_s = started.elapsed().as_secs_f64();
    let until = Instant::now() + Duration::from_secs(seconds);
    let sampler = sample_window(server_pid, Instant::now(), until);
    let tally = on_threads(split(connections, threads), move |group| broadcast_worker(group, until, skip_first))?;
    let cpu = join_window(sampler);
    let ok = tally.errors == 0 && tally.min_ticks > 0;
    let fields = format!(
        "clients={clients} connect_s={connect_s:.1} messages={} errors={} min_ticks_per_client={}{}{}",
        tally.received,
        tally.errors,
        tally.min_ticks,
        cpu.fields("message", tally.received),
        tally.first_error.map(|e| format!(" first_error=\"{e}\"")).unwrap_or_default()
    );
    Ok((ok, fields))
}

fn broadcast_worker(group: Vec<(TcpStream, Vec<u8>)>, until: Instant, skip_first: bool) -> Result<Tally, String> {
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    // (socket, last tick seen, ticks received, first message still to skip)
    let mut clients = Vec::with_capacity(group.len());
    for (i, (stream, leftover)) in group.into_iter().enumerate() {
        let mut ws = websocket(stream, leftover)?;
        poll.registry().register(ws.get_mut(), Token(i), Interest::READABLE).map_err(|e| e.to_string())?;
        clients.push((ws, None::<u64>, 0u64, skip_first, true));
    }
    let mut tally = Tally::default();
    let mut events = Events::with_capacity(1024);
    // The leftover bytes of the handshake may already hold messages: read every socket once.
    let mut ready: Vec<usize> = (0..clients.len()).collect();
    while Instant::now() < until {
        for &i in &ready {
            let (ws, last, count, skip, alive) = &mut clients[i];
            while *alive {
                match ws.read() {
                    Ok(Message::Binary(data)) if *skip => {
                        let _ = data;
                        *skip = false;
                    }
                    Ok(Message::Binary(data)) => {
                        let tick = data.get(..8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()));
                        match (tick, *last) {
                            (None, _) => tally.error(format!("a {}-byte tick", data.len())),
                            (Some(t), Some(l)) if t != l + 1 => tally.error(format!("tick {t} after {l}")),
                            _ => {}
                        }
                        *last = tick;
                        *count += 1;
                        tally.received += 1;
                    }
                    Ok(Message::Close(frame)) => {
                        tally.error(format!("the server closed the connection: {frame:?}"));
                        *alive = false;
                    }
                    Ok(_) => {}
                    Err(err) if would_block(&err) => break,
                    Err(err) => {
                        tally.error(format!("read: {err}"));
                        *alive = false;
                    }
                }
            }
        }
        poll.poll(&mut events, Some(Duration::from_millis(50))).map_err(|e| e.to_string())?;
        ready.clear();
        ready.extend(events.iter().map(|e| e.token().0));
    }
    tally.min_ticks = clients.iter().map(|c| c.2).min().unwrap_or(0);
    for (ws, ..) in &mut clients {
        let _ = ws.close(None);
        let _ = ws.flush();
    }
    Ok(tally)
}

/// Idle: opens `clients` connections and holds them, silent, for `seconds`.
fn idle(port: u16, clients: usize, seconds: u64) -> Result<(bool, String), String> {
    let started = Instant::now();
    let connections = handshake::connect_many(port, clients, 64)?;
    let connect_s = started.elapsed().as_secs_f64();
    println!("CONNECTED {}", connections.len());
    std::thread::sleep(Duration::from_secs(seconds));
    // Still open at the end: the server must not have dropped any.
    let mut closed = 0;
    let mut buf = [0u8; 64];
    for (stream, _) in &connections {
        let _ = stream.set_nonblocking(true);
        match stream.peek(&mut buf) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            _ => closed += 1,
        }
    }
    Ok((closed == 0, format!("clients={clients} connect_s={connect_s:.1} closed_by_server={closed}")))
}

/// Churn: `threads` threads connect, complete the handshake and close, again and again, for
/// `seconds`.
fn churn(port: u16, seconds: u64, threads: usize, server_pid: Option<u64>) -> Result<(bool, String), String> {
    let until = Instant::now() + Duration::from_secs(seconds);
    let sampler = sample_window(server_pid, Instant::now(), until);
    let handles: Vec<_> = (0..threads.max(1))
        .map(|_| {
            std::thread::spawn(move || {
                let mut done = 0u64;
                let mut failures = 0u64;
                let mut first_error = None;
                while Instant::now() < until {
                    match handshake::connect_once(port) {
                        Ok((stream, leftover)) => {
                            done += 1;
                            if let Ok(mut ws) = websocket(stream, leftover) {
                                let _ = ws.close(None);
                                let _ = ws.flush();
                            }
                        }
                        Err(err) => {
                            failures += 1;
                            first_error.get_or_insert(err);
                        }
                    }
                }
                (done, failures, first_error)
            })
        })
        .collect();
    let (mut done, mut failures, mut first_error) = (0, 0, None);
    for handle in handles {
        let (d, f, e) = handle.join().map_err(|_| "a churn thread panicked".to_string())?;
        done += d;
        failures += f;
        if first_error.is_none() {
            first_error = e;
        }
    }
    let cpu = join_window(sampler);
    Ok((
        failures == 0 && done > 0,
        format!(
            "connections={done} failures={failures} connections_per_s={:.0}{}{}",
            done as f64 / seconds as f64,
            cpu.fields("connection", done),
            first_error.map(|e| format!(" first_error=\"{e}\"")).unwrap_or_default()
        ),
    ))
}
