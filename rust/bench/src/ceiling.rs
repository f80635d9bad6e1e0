//! The ceiling: a WebSocket server of tungstenite and mio alone, on one thread, with the same
//! tungstenite settings as our core (4 KiB read buffer unless told otherwise, 64 KiB write buffer). It does what the Godot bench servers
//! do, with nothing else in the way, and prints the same `BENCH` lines:
//! - `echo`: every message goes back to its sender;
//! - `broadcast`: once `expected` peers are connected, a 100-byte tick goes to all of them 60
//!   times a second; reports the time per tick spent handling sockets and sending;
//! - `idle`: a 60 Hz loop that handles whatever is ready; reports the time per frame.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use tungstenite::handshake::server::{NoCallback, ServerHandshake};
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Bytes, Message, WebSocket};

const LISTENER: Token = Token(usize::MAX);

enum Conn {
    Handshake(MidHandshake<ServerHandshake<TcpStream, NoCallback>>),
    Open(WebSocket<TcpStream>),
}

fn config(read_buffer: usize) -> WebSocketConfig {
    let mut config = WebSocketConfig::default();
    config.read_buffer_size = read_buffer;
    config.write_buffer_size = 64 << 10;
    config.max_message_size = Some(64 << 20);
    config.max_frame_size = Some(64 << 20);
    config
}

fn would_block(err: &tungstenite::Error) -> bool {
    matches!(err, tungstenite::Error::Io(e) if e.kind() == ErrorKind::WouldBlock)
}

/// Cumulative figures, printed once a second as `BENCH` lines.
#[derive(Default)]
struct Stats {
    /// Ticks or frames measured (only while `expected` peers are connected).
    frames: u64,
    /// Time spent working in those frames, in microseconds.
    busy_us: f64,
    /// Messages echoed.
    echoed: u64,
}

/// Serves on 127.0.0.1:`port` until killed, reading each socket `read_buffer` bytes at a time.
pub(crate) fn run(port: u16, mode: &str, expected: usize, read_buffer: usize) -> Result<(), String> {
    if !matches!(mode, "echo" | "broadcast" | "idle") {
        return Err(format!("unknown mode {mode}"));
    }
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let address = format!("127.0.0.1:{port}").parse().map_err(|e| format!("{e}"))?;
    let mut listener = TcpListener::bind(address).map_err(|e| format!("cannot listen on {port}: {e}"))?;
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE).map_err(|e| e.to_string())?;
    println!("READY");
    let mut conns: Slab<Conn> = Slab::new();
    let mut open = 0usize;
    let mut events = Events::with_capacity(4096);
    let mut stats = Stats::default();
    let tick = Duration::from_micros(16_667);
    let mut next_tick = Instant::now() + tick;
    let mut next_report = Instant::now() + Duration::from_secs(1);
    let mut tick_number = 0u64;
    let mut frame_busy = Duration::ZERO;
    let state_filler = vec![0x42u8; 100];
    loop {
        let timed = mode != "echo";
        let timeout = if timed { next_tick.saturating_duration_since(Instant::now()) } else { Duration::from_millis(100) };
        poll.poll(&mut events, Some(timeout)).map_err(|e| e.to_string())?;
        let work_start = Instant::now();
        for event in &events {
            if event.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            let entry = conns.vacant_entry();
                            let key = entry.key();
                            let mut stream = stream;
                            if poll.registry().register(&mut stream, Token(key), Interest::READABLE | Interest::WRITABLE).is_err() {
                                continue;
                            }
                            match ServerHandshake::start(stream, NoCallback, Some(config(read_buffer))).handshake() {
                                Ok(ws) => {
                                    entry.insert(Conn::Open(ws));
                                    open += 1;
                                }
                                Err(HandshakeError::Interrupted(mid)) => {
                                    entry.insert(Conn::Handshake(mid));
                                }
                                Err(HandshakeError::Failure(_)) => {}
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(_) => break,
                    }
                }
                continue;
            }
            let key = event.token().0;
            let Some(conn) = conns.try_remove(key) else { continue };
            let mut ws = match conn {
                Conn::Open(ws) => ws,
                Conn::Handshake(mid) => match mid.handshake() {
                    Ok(ws) => {
                        open += 1;
                        ws
                    }
                    Err(HandshakeError::Interrupted(mid)) => {
                        conns.insert(Conn::Handshake(mid));
                        continue;
                    }
                    Err(HandshakeError::Failure(_)) => continue,
                },
            };
            let mut alive = true;
            loop {
                match ws.read() {
                    Ok(message @ (Message::Binary(_) | Message::Text(_))) => {
                        if mode == "echo" {
                            stats.echoed += 1;
                            if let Err(err) = ws.write(message) {
                                if !would_block(&err) {
                                    alive = false;
                                    break;
                                }
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(err) if would_block(&err) => break,
                    Err(_) => {
                        alive = false;
                        break;
                    }
                }
            }
            if alive {
                if let Err(err) = ws.flush() {
                    alive = would_block(&err);
                }
            }
            if alive && ws.can_read() {
                // Same key: the slab reuses the slot just freed.
                conns.insert(Conn::Open(ws));
            } else {
                open -= 1;
                let _ = poll.registry().deregister(ws.get_mut());
            }
        }
        frame_busy += work_start.elapsed();
        if timed && Instant::now() >= next_tick {
            let send_start = Instant::now();
            if mode == "broadcast" && open >= expected {
                let mut state = state_filler.clone();
                state[..8].copy_from_slice(&tick_number.to_le_bytes());
                tick_number += 1;
                let state = Bytes::from(state);
                for (_, conn) in conns.iter_mut() {
                    if let Conn::Open(ws) = conn {
                        let _ = ws.write(Message::Binary(state.clone()));
                        let _ = ws.flush();
                    }
                }
            }
            frame_busy += send_start.elapsed();
            if open >= expected {
                stats.frames += 1;
                stats.busy_us += frame_busy.as_secs_f64() * 1e6;
            }
            frame_busy = Duration::ZERO;
            next_tick += tick;
            if next_tick < Instant::now() {
                next_tick = Instant::now() + tick;
            }
        }
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(1);
            println!("BENCH peers={open} frames={} busy_us={:.0} echoed={}", stats.frames, stats.busy_us, stats.echoed);
        }
    }
}
