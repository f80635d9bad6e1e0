//! Entry points for `cargo fuzz` (the `fuzz/` folder; `cargo xtask fuzz`): untrusted bytes fed to
//! the very `Connection` the reactor runs (the server's HTTP upgrade with its policies, the
//! client's, our framing, close codes, limits and back-pressure), over an in-memory stream, with commands from
//! a game and time advanced in between. Each must return, never panic, whatever the bytes, and
//! the connection must keep its promises (see [`Game`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest;

use crate::command::PeerCommand;
use crate::config::{ConnectionConfig, Limits};
use crate::connection::{Connection, ConnectionEvent, Role, Settings};
use crate::deflate::DeflateParams;
use crate::memory::{self, MemoryStream};
use crate::packet::Packet;
use crate::Bytes;

type Conn = Connection<MemoryStream>;

/// The settings of every fuzzed connection: small limits, so that inputs reach them, and the
/// server's handshake policy (sub-protocols, extra header, allowed origin).
fn settings() -> Arc<Settings> {
    settings_with(|_| {})
}

/// [`settings`] with `edit` applied.
fn settings_with(edit: impl FnOnce(&mut ConnectionConfig)) -> Arc<Settings> {
    let mut config = ConnectionConfig {
        limits: Limits {
            max_message_size: 64 << 10,
            inbound_max_packets: 4,
            inbound_buffer_size: 1024,
            ..Limits::default()
        },
        protocols: vec!["chat".into(), "game".into()],
        extra_headers: vec![("X-Server".into(), "yes".into())],
        allowed_origins: vec!["https://game.example".into()],
        heartbeat_interval: Some(Duration::from_secs(1)),
        ..ConnectionConfig::default()
    };
    edit(&mut config);
    Arc::new(Settings::new(&config))
}

/// The game's side of one connection: takes what it reports, checks that it keeps its promises,
/// and sends it commands. Promises checked: nothing follows the last event (`Closed`,
/// `ConnectFailed`, `HandshakeFailed`, `Answered`), `Opened` comes once and first, packets and `Failing`
/// only while open, and the inbound queue never holds more than its limits allow (one packet
/// always fits).
struct Game {
    conn: Conn,
    /// The remote end: bytes to feed in, and where the connection's writes land.
    remote: MemoryStream,
    now: Instant,
    opened: bool,
    /// Server: an upgrade request was reported for the game's verdict.
    held: bool,
    ended: bool,
    failing: bool,
    /// Packets reported and not yet taken, with their sizes.
    queue: Vec<usize>,
    limits: Limits,
}

impl Game {
    fn new(conn: Conn, remote: MemoryStream, now: Instant) -> Self {
        let limits = settings().limits.clone();
        Game { conn, remote, now, opened: false, held: false, ended: false, failing: false, queue: Vec::new(), limits }
    }

    /// Takes every event, checking the promises; flushes when owed.
    fn settle(&mut self) {
        if self.conn.wants_flush() {
            self.conn.flush();
        }
        while let Some(event) = self.conn.poll_event() {
            assert!(!self.ended, "an event after the last one: {event:?}");
            match event {
                ConnectionEvent::Opened(_) => {
                    assert!(!self.opened, "opened twice");
                    self.opened = true;
                }
                ConnectionEvent::Packet(packet) => {
                    assert!(self.opened && !self.failing, "a packet while not open or after Failing");
                    if packet.is_text {
                        assert!(std::str::from_utf8(&packet.data).is_ok(), "a text packet that is not UTF-8");
                    }
                    assert!(packet.data.len() <= self.limits.max_message_size, "a packet over max_message_size");
                    self.queue.push(packet.data.len());
                    let bytes_before: usize = self.queue[..self.queue.len() - 1].iter().sum();
                    assert!(
                        self.queue.len() == 1
                            || (self.queue.len() <= self.limits.inbound_max_packets
                                && bytes_before < self.limits.inbound_buffer_size),
                        "the inbound queue went past its limits: {:?}",
                        self.queue
                    );
                }
                ConnectionEvent::Failing => {
                    assert!(self.opened && !self.failing, "Failing while not open, or twice");
                    self.failing = true;
                }
                ConnectionEvent::CloseRequested { .. } => assert!(self.opened, "a close request before open"),
                ConnectionEvent::Closed(_) => {
                    assert!(self.opened, "Closed before open");
                    self.ended = true;
                }
                ConnectionEvent::HandshakeRequested(_) => {
                    assert!(!self.opened && !self.held, "a handshake request after open, or twice");
                    self.held = true;
                }
                ConnectionEvent::ConnectFailed(_) | ConnectionEvent::HandshakeFailed(_) | ConnectionEvent::Answered => {
                    assert!(!self.opened, "a handshake failure after open");
                    self.ended = true;
                }
            }
        }
        // A refused connection reports its end at once, then may linger a moment, silent.
        assert!(self.ended || !self.conn.is_finished(), "finished without a last event");
        assert!(!self.ended || self.conn.is_finished() || self.conn.is_refusing(), "a last event, but not finished nor refusing");
    }

    /// Takes every waiting packet; resumes reading when that made room.
    fn take_packets(&mut self) {
        let mut resume = false;
        for len in self.queue.drain(..) {
            resume |= self.conn.flow().taken(len, &self.limits);
        }
        if resume {
            self.conn.handle_command(PeerCommand::ResumeRead, self.now);
        }
    }

    fn command(&mut self, command: PeerCommand) {
        self.conn.handle_command(command, self.now);
        self.settle();
    }

    /// Feeds `bytes` from the remote end and lets the connection read them.
    fn feed(&mut self, bytes: &[u8]) {
        self.remote.send(bytes);
        self.conn.handle_readable(self.now);
        self.settle();
    }

    /// Reads until the input runs out, taking packets as they come, answering `Failing`.
    fn drain(&mut self) {
        for _ in 0..10_000 {
            if self.conn.is_finished() {
                return;
            }
            let waiting = self.queue.len();
            self.take_packets();
            self.conn.handle_readable(self.now);
            self.settle();
            if self.failing && !self.ended {
                self.command(PeerCommand::Fail);
            }
            if waiting == 0 && self.queue.is_empty() {
                return;
            }
        }
    }

    /// Sends a packet as `PeerHandle::send` would: with room reserved first.
    fn send(&mut self, data: &[u8], is_text: bool) {
        if !self.opened || self.ended || (is_text && std::str::from_utf8(data).is_err()) {
            return;
        }
        if self.conn.flow().reserve_outbound(2, data.len(), &self.limits).is_ok() {
            self.command(PeerCommand::Send(Packet { data: Bytes::copy_from_slice(data), is_text }));
        }
    }
}

fn any_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40000))
}

/// A server connection whose upgrade policy `options` picks: bit 0 `verify_handshakes`, bit 2
/// the PROXY protocol from a trusted peer, bit 3 a health check at "/healthz", bit 4 draining.
fn server(options: u8, now: Instant) -> Game {
    let settings = settings_with(|config| {
        config.verify_handshakes = options & 1 != 0;
        config.proxy_protocol = options & 4 != 0;
        config.trusted_proxies = vec!["127.0.0.0/8".into()];
        if options & 8 != 0 {
            config.health_check_path = "/healthz".into();
        }
    });
    settings.draining.store(options & 16 != 0, std::sync::atomic::Ordering::Relaxed);
    let (local, remote) = memory::pair();
    Game::new(Conn::accept(local, any_addr(), settings, now), remote, now)
}

fn client(now: Instant) -> Option<Game> {
    let request = "ws://localhost/fuzz".into_client_request().ok()?;
    let (local, remote) = memory::pair();
    let mut conn = Conn::connect(request, settings(), Arc::default(), now);
    conn.transport_ready(local, any_addr(), now);
    let mut game = Game::new(conn, remote, now);
    game.settle();
    Some(game)
}

/// An open connection of `side`'s role (bit 0: client), with permessage-deflate agreed when
/// bit 1 is set (bits 2 and 3: no context takeover for server and client; bits 4 and 5 pick
/// small windows), so that frames with RSV1 reach the inflater through the framing.
fn upgraded(side: u8, now: Instant) -> Game {
    let role = if side.is_multiple_of(2) { Role::Server } else { Role::Client };
    let deflate = (side & 2 != 0).then_some(DeflateParams {
        server_no_context_takeover: side & 4 != 0,
        client_no_context_takeover: side & 8 != 0,
        server_max_window_bits: if side & 16 != 0 { 9 } else { 15 },
        client_max_window_bits: if side & 32 != 0 { 8 } else { 15 },
    });
    let (local, remote) = memory::pair();
    let mut game = Game::new(Conn::upgraded(local, role, settings(), deflate, now), remote, now);
    game.settle();
    game
}

/// Feeds `data` in pieces whose sizes the data itself picks, as a socket would deliver it.
fn feed_in_pieces(game: &mut Game, mut data: &[u8]) {
    while let Some(&first) = data.first() {
        let n = data.len().min(1 + usize::from(first % 64));
        game.feed(&data[..n]);
        game.drain();
        data = &data[n..];
    }
}

/// `data` as what a client sends a server: the upgrade request, then frames. The first byte
/// picks the server's policy (see `server`); with `verify_handshakes` the game accepts a held
/// request when bit 1 is set and refuses it otherwise, then time passes past every deadline.
pub fn server_handshake(data: &[u8]) {
    let Some((&options, rest)) = data.split_first() else { return };
    let mut game = server(options, Instant::now());
    feed_in_pieces(&mut game, rest);
    if game.held {
        let verdict = if options & 2 != 0 {
            PeerCommand::AcceptHandshake { headers: vec![("X-Fuzz".into(), "1".into())] }
        } else {
            PeerCommand::RejectHandshake { status: 401, body: "no".into() }
        };
        game.command(verdict);
        game.drain();
    }
    for _ in 0..3 {
        game.now += Duration::from_secs(2);
        game.conn.handle_timeout(game.now);
        game.settle();
    }
}

/// `data` as what a server answers a client: the upgrade response, then frames.
pub fn client_handshake(data: &[u8]) {
    let Some(mut game) = client(Instant::now()) else { return };
    feed_in_pieces(&mut game, data);
}

/// `data` as frames on an open connection; the first byte picks the side that receives them
/// and whether compression was agreed (see `upgraded`).
pub fn frames(data: &[u8]) {
    let Some((&side, rest)) = data.split_first() else { return };
    let mut game = upgraded(side, Instant::now());
    feed_in_pieces(&mut game, rest);
}

/// `data` as a script for an open connection: each step feeds the bytes that follow, or has
/// the game send, close, abort, take its packets, answer `Failing` or change the heartbeat, or
/// the peer stop reading, or time pass. The first byte picks the side.
pub fn connection(data: &[u8]) {
    let Some((&side, mut script)) = data.split_first() else { return };
    let mut game = upgraded(side, Instant::now());
    while let Some((&op, rest)) = script.split_first() {
        let arg = rest.first().copied().unwrap_or(0);
        script = rest.get(1..).unwrap_or(&[]);
        match op % 10 {
            0 | 1 => {
                let n = script.len().min(usize::from(arg));
                game.feed(&script[..n]);
                script = &script[n..];
            }
            2 => game.send(&vec![arg; usize::from(arg) * 8], arg % 2 == 0),
            3 => {
                let code = [1000, 1001, 1003, 1008, 1011, 3000, 4999][usize::from(arg) % 7];
                game.command(PeerCommand::Close { code, reason: "fuzz".into() });
            }
            4 => game.command(PeerCommand::Abort),
            5 => {
                game.take_packets();
                game.settle();
            }
            6 if game.failing => game.command(PeerCommand::Fail),
            6 => game.command(PeerCommand::SetHeartbeat(Some(Duration::from_millis(u64::from(arg) * 10)))),
            7 => {
                // The peer stops reading (or reads again): writes would block past this much.
                let capacity = (arg > 0).then(|| usize::from(arg) * 16);
                game.remote.set_receive_capacity(capacity);
                let _ = game.remote.take_received();
                game.conn.handle_writable(game.now);
                game.settle();
            }
            8 => {
                game.now += Duration::from_millis(u64::from(arg) * 50);
                game.conn.handle_timeout(game.now);
                game.settle();
            }
            _ => {
                let _ = game.remote.take_received();
                game.remote.close_sending();
                game.conn.handle_readable(game.now);
                game.settle();
            }
        }
        if game.conn.is_finished() {
            return;
        }
    }
}

/// `data` as the server's first message to a multiplayer client.
pub fn multiplayer_id(data: &[u8]) {
    if let Ok(id) = crate::multiplayer::parse_id_message(data) {
        assert!(id >= 2, "an accepted id is never below 2");
        assert_eq!(crate::multiplayer::id_message(id).data.as_ref(), data);
    }
}

/// Valid inputs for the target named `target` (the fuzzer's starting corpus); empty for an
/// unknown name.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let request: &[u8] = b"GET /x HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: game\r\nOrigin: https://game.example\r\n\r\n\x81\x85\x01\x02\x03\x04iggmn";
    let seeds: Vec<&[u8]> = match target {
        "server_handshake" => {
            let with = |options: u8, bytes: &[u8]| [&[options][..], bytes].concat();
            return vec![
                with(0, request),
                with(1, request),
                with(3, request),
                with(8, b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"),
                with(0, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
                with(4, &[b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n", request].concat()),
                with(20, request),
            ];
        }
        "client_handshake" => vec![
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
        ],
        // Server side: masked text, masked fragments with a ping between, a close with a code;
        // client side: unmasked binary and a close.
        "frames" => vec![
            b"\x00\x81\x82\x00\x00\x00\x00hi\x88\x80\x00\x00\x00\x00",
            b"\x00\x01\x81\x01\x01\x01\x01h\x89\x80\x00\x00\x00\x00\x80\x81\x01\x01\x01\x01i\x88\x84\x00\x00\x00\x00\x03\xe8ok",
            b"\x01\x82\x02hi\x88\x02\x03\xe9",
            // Compression agreed: "Hello" compressed (RFC 7692 7.2.3.1), masked to a server,
            // then fragmented; unmasked to a client with no context takeover.
            b"\x02\xc1\x87\x00\x00\x00\x00\xf2\x48\xcd\xc9\xc9\x07\x00\x41\x83\x00\x00\x00\x00\xf2\x48\xcd\x80\x84\x00\x00\x00\x00\xc9\xc9\x07\x00",
            b"\x0f\xc1\x07\xf2\x48\xcd\xc9\xc9\x07\x00\x88\x02\x03\xe8",
        ],
        // Server side: a masked text message fed in, the game sends and takes, time passes for
        // two heartbeats, then a bad frame is fed and the game answers Failing; client side: the
        // game closes and the server's close frame comes back.
        "connection" => vec![
            b"\x00\x00\x08\x81\x82\x00\x00\x00\x00hi\x02\x04\x05\x00\x08\x14\x08\x14\x00\x02\x8f\x80\x06\x00",
            b"\x01\x03\x00\x00\x04\x88\x02\x03\xe8\x08\x3c",
            b"\x00\x07\x01\x02\x40\x02\x40\x07\x00\x08\x3c\x09\x00",
            // Compression agreed on a server: a compressed "Hello" fed in, the game sends large
            // messages (compressed) and takes its packets.
            b"\x06\x00\x0d\xc1\x87\x00\x00\x00\x00\xf2\x48\xcd\xc9\xc9\x07\x00\x02\x40\x02\x41\x05\x00",
        ],
        "multiplayer_id" => vec![&[5, 0, 0, 0], &[1]],
        "proxy_header" => vec![
            b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 80\r\n",
            b"PROXY UNKNOWN\r\n",
            b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\xcb\x00\x71\x07\x0a\x00\x00\x01\x15\xb3\x00\x50",
        ],
        _ => vec![],
    };
    seeds.into_iter().map(<[u8]>::to_vec).collect()
}

/// `data` as the first bytes from a trusted proxy with the PROXY protocol on (`proxy_header`
/// target), and, read as text, as `trusted_proxies` entries (its first line, comma-separated)
/// and forwarding headers (each further line: a `Forwarded` value after an 'F', otherwise an
/// `X-Forwarded-For` value). Checks that, as bytes arrive, the answer goes from `Incomplete` to
/// either an error that stays or a header that stays the same and was complete exactly on its
/// last byte, within `MAX_PROXY_HEADER` bytes; that each accepted entry holds its own address
/// (but for an IPv4-mapped one with a prefix under 96); and that the accepted entries parse
/// together as well.
pub fn proxy_header(data: &[u8]) {
    use crate::proxy::{forwarded_client, parse_proxy_header, ProxyHeader, TrustedProxies, MAX_PROXY_HEADER};

    let mut previous = Ok(ProxyHeader::Incomplete);
    for end in 0..=data.len().min(MAX_PROXY_HEADER + 1) {
        let now = parse_proxy_header(&data[..end]);
        match (&previous, &now) {
            (Ok(ProxyHeader::Incomplete), Ok(ProxyHeader::Complete { len, source })) => {
                assert_eq!(*len, end, "a header complete before its last byte ({source:?})");
            }
            (Ok(ProxyHeader::Incomplete), Ok(ProxyHeader::Incomplete)) => {
                assert!(end < MAX_PROXY_HEADER, "still incomplete after {end} bytes");
            }
            (Ok(ProxyHeader::Incomplete), Err(_)) | (Err(_), Err(_)) => {}
            (before, after) if before == after && matches!(after, Ok(ProxyHeader::Complete { .. })) => {}
            (before, after) => panic!("after {end} bytes the answer went from {before:?} to {after:?}"),
        }
        previous = now;
    }

    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut lines = text.split('\n');
    let mut accepted = Vec::new();
    for entry in lines.next().unwrap_or_default().split(',') {
        if let Ok(single) = TrustedProxies::parse(&[entry]) {
            let mut parts = entry.trim().splitn(2, '/');
            let Some(address) = parts.next().and_then(|address| address.parse::<std::net::IpAddr>().ok()) else {
                panic!("{entry:?} accepted without an address");
            };
            let prefix = parts.next().map(|digits| digits.parse::<u32>().unwrap_or(0));
            // An IPv4 address, mapped or not, is only ever in an IPv4 range (mapped: /96 or longer).
            let mapped = matches!(address, std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some());
            let holds_itself = !(mapped && prefix.is_some_and(|prefix| prefix < 96));
            assert_eq!(single.contains(address), holds_itself, "{entry:?} and its own address");
            accepted.push(entry);
        }
    }
    let trusted = match TrustedProxies::parse(&accepted) {
        Ok(trusted) => trusted,
        Err(e) => panic!("{accepted:?} parse one by one but not together: {e}"),
    };
    let (forwarded, x_forwarded_for): (Vec<&str>, Vec<&str>) = lines.partition(|line| line.starts_with('F'));
    let forwarded: Vec<&str> = forwarded.iter().map(|line| line.get(1..).unwrap_or_default()).collect();
    let _ = forwarded_client(&forwarded, &x_forwarded_for, &trusted);
}

#[cfg(test)]
mod tests {
    /// Every fuzz entry point on its seeds.
    #[test]
    fn seeds_run() {
        for (target, run) in [
            ("server_handshake", super::server_handshake as fn(&[u8])),
            ("client_handshake", super::client_handshake),
            ("frames", super::frames),
            ("connection", super::connection),
            ("multiplayer_id", super::multiplayer_id),
            ("proxy_header", super::proxy_header),
        ] {
            let seeds = super::seeds(target);
            assert!(!seeds.is_empty(), "{target} has seeds");
            for seed in seeds {
                run(&seed);
            }
        }
    }
}
