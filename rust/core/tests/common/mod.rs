//! Helpers shared by the loopback tests: a server on a free port, and polling until a condition
//! holds (bounded in time, so a broken build fails instead of hanging).
#![allow(dead_code, unreachable_pub)]

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use websocket_rs_core::{Client, ClientEvent, ConnectionConfig, Server, ServerEvent};

pub const LIMIT: Duration = Duration::from_secs(10);

/// A server listening on 127.0.0.1 on a free port, and its URL.
pub fn server(config: ConnectionConfig) -> (Server, String) {
    let mut server = Server::new();
    let addr = server.listen(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), config).expect("listen");
    (server, format!("ws://127.0.0.1:{}/", addr.port()))
}

/// Polls server and clients until `done` says so; panics after [`LIMIT`].
pub fn pump(
    server: &mut Server,
    clients: &mut [&mut Client],
    server_events: &mut Vec<ServerEvent>,
    client_events: &mut Vec<Vec<ClientEvent>>,
    mut done: impl FnMut(&Vec<ServerEvent>, &Vec<Vec<ClientEvent>>) -> bool,
) {
    client_events.resize_with(clients.len(), Vec::new);
    let start = Instant::now();
    loop {
        server.poll(server_events);
        for (client, events) in clients.iter_mut().zip(client_events.iter_mut()) {
            client.poll(events);
        }
        if done(server_events, client_events) {
            return;
        }
        assert!(start.elapsed() < LIMIT, "timed out; server saw {server_events:?}, clients saw {client_events:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Connects one client and waits until both sides see it open; returns the server-side id.
pub fn connect(server: &mut Server, url: &str, config: ConnectionConfig) -> (Client, i32) {
    let mut client = Client::new();
    client.connect(url, config).expect("connect");
    let (mut se, mut ce) = (Vec::new(), Vec::new());
    pump(server, &mut [&mut client], &mut se, &mut ce, |s, c| {
        s.iter().any(|e| matches!(e, ServerEvent::ClientConnected { .. }))
            && c[0].iter().any(|e| matches!(e, ClientEvent::ConnectionEstablished { .. }))
    });
    let id = se
        .iter()
        .find_map(|e| match e {
            ServerEvent::ClientConnected { id, .. } => Some(*id),
            _ => None,
        })
        .unwrap();
    (client, id)
}

/// The close code the server sends a raw TCP peer (`raw`), polling the server meanwhile; panics
/// when no close frame comes within [`LIMIT`].
pub fn close_code_seen_by(raw: &mut TcpStream, server: &mut Server) -> u16 {
    raw.set_nonblocking(true).unwrap();
    let mut buf = Vec::new();
    let deadline = Instant::now() + LIMIT;
    let mut se = Vec::new();
    loop {
        server.poll(&mut se);
        let mut chunk = [0u8; 256];
        match raw.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
        if buf.len() >= 4 && buf[0] == 0x88 {
            break;
        }
        assert!(Instant::now() < deadline, "no close frame; got {buf:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(buf.len() >= 4 && buf[0] == 0x88, "expected a close frame, got {buf:?}");
    u16::from_be_bytes([buf[2], buf[3]])
}

/// A client frame: masked (unless `masked` is false) with the given first byte.
pub fn frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![first];
    let mask = [0x11u8, 0x22, 0x33, 0x44];
    let bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(bit | n as u8),
        n if n < 65536 => {
            out.push(bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}
