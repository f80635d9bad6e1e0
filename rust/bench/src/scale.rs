//! `wsrs-bench scale <port> --clients N [--active A] [--first-source S] [--sources K]`: the
//! clients of the scale bench (`godot-project/bench/scale_server.gd` is the server). Opens N
//! connections from the loopback source addresses 127.0.0.S .. 127.0.0.(S+K-1) (each connection
//! binds its source address, so every address has the whole ephemeral port range), holds them,
//! and follows the server's phases, told by broadcast messages whose first byte is the kind:
//! - `B` + round (u64 LE) + the server's wall clock in µs (u64 LE): a timed broadcast; each client
//!   checks it gets every round in order, and the time each arrives is kept per round;
//! - `A`: the first A connections start sending a 64-byte `E` message (sequence number, u64 LE)
//!   every 100 ms each, which the server echoes; every echo is checked in order;
//! - `S`: they stop sending; `D`: done, every echo must be back.
//!
//! Prints `CONNECTED n connect_s=..`, then per round `ROUND round=.. sent_us=.. first_us=..
//! last_us=.. received=..` (wall clock µs, comparable with the server's on one machine) and one
//! `RESULT workload=scale ok=.. ...` line. Several processes can share the clients (each is
//! limited by its own RLIMIT_NOFILE): `cargo xtask bench --only scale` starts as many as needed.

use std::io::{Error, ErrorKind};
use std::net::TcpStream;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::net::TcpStream as MioStream;
use mio::{Events, Interest, Poll, Token};
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Bytes, Message, WebSocket};

use crate::Options;

/// How often each active connection sends a message.
const SEND_EVERY: Duration = Duration::from_millis(100);
/// Size of each message an active connection sends.
const MESSAGE_SIZE: usize = 64;
/// How long the whole run may take once every connection is open.
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// Raises this process's soft RLIMIT_NOFILE to its hard limit; the new soft limit.
pub(crate) fn raise_nofile_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            return raised.rlim_cur;
        }
    }
    limit.rlim_cur
}

/// A blocking TCP connection from 127.0.0.`source` (port chosen at connect time, so that each
/// source address has the whole ephemeral port range towards this destination) to
/// 127.0.0.1:`port`.
fn connect_from(source: u8, port: u16) -> Result<TcpStream, Error> {
    let address = |host: [u8; 4], port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from_be_bytes(host).to_be() },
        sin_zero: [0; 8],
    };
    let length = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: the descriptor is owned by the TcpStream made from it at once (closed on drop),
    // and the addresses passed are sockaddr_in structs of the length given.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let on: libc::c_int = 1;
        let on_ptr = (&on as *const libc::c_int).cast();
        let on_len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        if libc::setsockopt(fd, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, on_ptr, on_len) != 0 {
            return Err(Error::last_os_error());
        }
        let local = address([127, 0, 0, source], 0);
        if libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), length) != 0 {
            return Err(Error::last_os_error());
        }
        let remote = address([127, 0, 0, 1], port);
        if libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), length) != 0 {
            return Err(Error::last_os_error());
        }
        Ok(stream)
    }
}

/// Opens a connection from 127.0.0.`source` and completes the upgrade (tried up to 30 times, each
/// retry counted in [`crate::handshake::RETRIES`]).
fn connect(source: u8, port: u16) -> Result<(TcpStream, Vec<u8>), String> {
    let mut attempt = 0u64;
    loop {
        let result = connect_from(source, port)
            .map_err(|e| format!("cannot connect from 127.0.0.{source} to port {port}: {e}"))
            .and_then(|stream| crate::handshake::upgrade(stream, port));
        match result {
            Ok(connection) => return Ok(connection),
            Err(_) if attempt < 30 => {
                attempt += 1;
                crate::handshake::RETRIES.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20 * attempt));
            }
            Err(err) => return Err(err),
        }
    }
}

/// One held connection.
struct Client {
    ws: WebSocket<MioStream>,
    /// Broadcast rounds received (the next expected round number).
    rounds: u64,
    /// Whether it sends messages now (between `A` and `S`, for the first A connections).
    sending: bool,
    /// When it sends next.
    next_send_at: Instant,
    /// Messages sent, and echoes received (each must be the next sequence number).
    sent: u64,
    echoed: u64,
    /// Whether `D` arrived.
    done: bool,
    alive: bool,
}

/// When each round arrived: (server wall clock µs, first arrival µs, last arrival µs, count).
#[derive(Clone, Copy, Default)]
struct Round {
    sent_us: u64,
    first_us: u64,
    last_us: u64,
    received: u64,
}

/// Wall clock in µs since the Unix epoch.
fn wall_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// Runs the scale clients against the server on `port`; Ok(false) if a message was lost.
pub(crate) fn run(port: u16, options: &Options) -> Result<bool, String> {
    let clients = options.number("--clients", 1000)? as usize;
    let active = (options.number("--active", 0)? as usize).min(clients);
    let first_source = options.number("--first-source", 2)?;
    let sources = options.number("--sources", 4)?.max(1);
    if first_source == 0 || first_source + sources > 255 {
        return Err("the source addresses 127.0.0.S .. 127.0.0.(S+K-1) must lie in 127.0.0.1 .. 127.0.0.254".into());
    }
    let nofile = raise_nofile_limit();
    if (nofile as usize) < clients + 64 {
        return Err(format!("RLIMIT_NOFILE is {nofile}: too few descriptors for {clients} connections"));
    }
    let cpu_start = crate::cpu_seconds();
    let started = Instant::now();
    // 64 threads connect at once, each from the source addresses in turn.
    let threads = 64.min(clients.max(1));
    let next = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let next = next.clone();
            std::thread::spawn(move || {
                let mut opened = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= clients {
                        return Ok::<_, String>(opened);
                    }
                    let source = (first_source + i as u64 % sources) as u8;
                    opened.push((i, connect(source, port)?));
                }
            })
        })
        .collect();
    let mut connections = Vec::with_capacity(clients);
    for handle in handles {
        connections.extend(handle.join().map_err(|_| "a connecting thread panicked".to_string())??);
    }
    connections.sort_by_key(|(i, _)| *i);
    let connect_s = started.elapsed().as_secs_f64();
    println!("CONNECTED {} connect_s={connect_s:.1}", connections.len());

    let mut config = WebSocketConfig::default();
    config.read_buffer_size = 4096;
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut held = Vec::with_capacity(clients);
    for (i, (_, (stream, leftover))) in connections.into_iter().enumerate() {
        stream.set_nonblocking(true).map_err(|e| e.to_string())?;
        let mut ws = WebSocket::from_partially_read(MioStream::from_std(stream), leftover, Role::Client, Some(config));
        poll.registry().register(ws.get_mut(), Token(i), Interest::READABLE | Interest::WRITABLE).map_err(|e| e.to_string())?;
        let now = Instant::now();
        held.push(Client { ws, rounds: 0, sending: false, next_send_at: now, sent: 0, echoed: 0, done: false, alive: true });
    }
    let mut rounds: Vec<Round> = Vec::new();
    let (mut errors, mut first_error) = (0u64, None::<String>);
    let mut error = |what: String| {
        errors += 1;
        first_error.get_or_insert(what);
    };
    let (mut done, mut echoes) = (0usize, 0u64);
    let mut events = Events::with_capacity(4096);
    // Every connection is read once first: the handshake's leftover bytes may hold messages.
    let mut ready: Vec<usize> = (0..held.len()).collect();
    let limit = Instant::now() + RUN_LIMIT;
    while done < held.len() && Instant::now() < limit {
        for &i in &ready {
            let client = &mut held[i];
            while client.alive {
                match client.ws.read() {
                    Ok(Message::Binary(data)) => {
                        let number = |at: usize| data.get(at..at + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()));
                        match data.first() {
                            Some(b'B') => {
                                let (Some(round), Some(sent_us)) = (number(1), number(9)) else {
                                    error(format!("a {}-byte broadcast", data.len()));
                                    continue;
                                };
                                if round != client.rounds {
                                    error(format!("broadcast round {round} where {} was due", client.rounds));
                                }
                                client.rounds = round + 1;
                                let now = wall_us();
                                let index = round as usize;
                                if index < 1024 {
                                    if rounds.len() <= index {
                                        rounds.resize(index + 1, Round::default());
                                    }
                                    let r = &mut rounds[index];
                                    r.sent_us = sent_us;
                                    r.first_us = if r.received == 0 { now } else { r.first_us.min(now) };
                                    r.last_us = r.last_us.max(now);
                                    r.received += 1;
                                }
                            }
                            Some(b'A') => {
                                if i < active {
                                    client.sending = true;
                                    // Spread the sends over the period.
                                    client.next_send_at = Instant::now() + SEND_EVERY.mul_f64(i as f64 / active.max(1) as f64);
                                }
                            }
                            Some(b'S') => client.sending = false,
                            Some(b'D') => {
                                if client.echoed != client.sent {
                                    error(format!("{} of {} echoes had not come back at the end", client.sent - client.echoed, client.sent));
                                }
                                if !client.done {
                                    client.done = true;
                                    done += 1;
                                }
                            }
                            Some(b'E') => {
                                if number(1) != Some(client.echoed) || data.len() != MESSAGE_SIZE {
                                    error(format!("echo {:?} of {} bytes where {} was due", number(1), data.len(), client.echoed));
                                }
                                client.echoed += 1;
                                echoes += 1;
                            }
                            _ => error(format!("an unknown {}-byte message", data.len())),
                        }
                    }
                    Ok(Message::Close(frame)) => {
                        error(format!("the server closed a connection: {frame:?}"));
                        client.alive = false;
                    }
                    Ok(_) => {}
                    Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(err) => {
                        error(format!("read: {err}"));
                        client.alive = false;
                    }
                }
            }
            if client.alive {
                match client.ws.flush() {
                    Ok(()) => {}
                    Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(err) => {
                        error(format!("flush: {err}"));
                        client.alive = false;
                    }
                }
            }
        }
        let now = Instant::now();
        for client in held.iter_mut().take(active).filter(|c| c.sending && c.alive && c.next_send_at <= now) {
            let mut data = vec![0u8; MESSAGE_SIZE];
            data[0] = b'E';
            data[1..9].copy_from_slice(&client.sent.to_le_bytes());
            client.sent += 1;
            client.next_send_at += SEND_EVERY;
            match client.ws.send(Message::Binary(Bytes::from(data))) {
                Ok(()) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {}
                Err(err) => {
                    error(format!("send: {err}"));
                    client.alive = false;
                }
            }
        }
        poll.poll(&mut events, Some(Duration::from_millis(5))).map_err(|e| e.to_string())?;
        ready.clear();
        ready.extend(events.iter().map(|e| e.token().0));
    }
    if done < held.len() {
        error(format!("{} connections never got the end of the run", held.len() - done));
    }
    let total_rounds = rounds.len() as u64;
    let short = held.iter().filter(|c| c.rounds < total_rounds).count();
    if short > 0 {
        error(format!("{short} connections missed broadcast rounds"));
    }
    for (index, r) in rounds.iter().enumerate() {
        println!("ROUND round={index} sent_us={} first_us={} last_us={} received={}", r.sent_us, r.first_us, r.last_us, r.received);
    }
    let cpu = crate::cpu_seconds() - cpu_start;
    let ok = errors == 0 && total_rounds > 0;
    println!(
        "RESULT workload=scale ok={ok} clients={} active={active} rounds={total_rounds} echoes={echoes} errors={errors} connect_s={connect_s:.1} connect_retries={} loadgen_cpu_s={cpu:.2} loadgen_wall_s={:.1}{}",
        held.len(),
        crate::handshake::RETRIES.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
        first_error.map(|e| format!(" first_error=\"{e}\"")).unwrap_or_default()
    );
    for client in &mut held {
        let _ = client.ws.close(None);
        let _ = client.ws.flush();
    }
    Ok(ok)
}
