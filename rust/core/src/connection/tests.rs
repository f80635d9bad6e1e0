//! Every timed behaviour of a connection, with simulated time: two connections talk over an
//! in-memory stream and the clock moves only when a test moves it. Nothing sleeps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest;

use super::{Connection, ConnectionEvent, Ending, Settings};
use crate::command::PeerCommand;
use crate::config::{ConnectionConfig, Limits};
use crate::memory::{self, MemoryStream};
use crate::packet::Packet;
use crate::Bytes;

type Conn = Connection<MemoryStream>;

fn addr() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 9000))
}

fn text(data: &str) -> Packet {
    Packet { data: Bytes::copy_from_slice(data.as_bytes()), is_text: true }
}

/// Runs `conn`'s owed flush and moves its events to `out`.
fn settle(conn: &mut Conn, out: &mut Vec<ConnectionEvent>) {
    if conn.wants_flush() {
        conn.flush();
    }
    out.extend(std::iter::from_fn(|| conn.poll_event()));
}

/// A server and a client connection over one in-memory stream, and the simulated clock.
struct Pair {
    now: Instant,
    server: Conn,
    client: Conn,
    server_events: Vec<ConnectionEvent>,
    client_events: Vec<ConnectionEvent>,
}

impl Pair {
    /// Both ends with these settings, the handshake done.
    fn open(config: ConnectionConfig) -> Pair {
        let now = Instant::now();
        let settings = Arc::new(Settings::new(&config));
        let (server_end, client_end) = memory::pair();
        let server = Conn::accept(server_end, addr(), settings.clone(), now);
        let mut request = "ws://localhost/game".into_client_request().unwrap();
        // The compression offer a `Client` adds to its request.
        if let Some(offer) = crate::deflate::client_offer(&config.deflate) {
            request.headers_mut().insert("Sec-WebSocket-Extensions", offer.parse().unwrap());
        }
        let mut client = Conn::connect(request, settings, Arc::default(), now);
        client.transport_ready(client_end, addr(), now);
        let mut pair = Pair { now, server, client, server_events: Vec::new(), client_events: Vec::new() };
        pair.run();
        assert!(matches!(pair.server_events.as_slice(), [ConnectionEvent::Opened(_)]), "{:?}", pair.server_events);
        assert!(matches!(pair.client_events.as_slice(), [ConnectionEvent::Opened(_)]), "{:?}", pair.client_events);
        pair.server_events.clear();
        pair.client_events.clear();
        pair
    }

    /// Both ends read and flush until no byte is left in flight.
    fn run(&mut self) {
        for _ in 0..20 {
            self.server.handle_readable(self.now);
            settle(&mut self.server, &mut self.server_events);
            self.client.handle_readable(self.now);
            settle(&mut self.client, &mut self.client_events);
        }
    }

    /// Moves the clock and lets both ends act on their deadlines.
    fn advance(&mut self, by: Duration) {
        self.now += by;
        for conn in [&mut self.server, &mut self.client] {
            if conn.poll_timeout().is_some_and(|at| at <= self.now) {
                conn.handle_timeout(self.now);
            }
        }
        settle(&mut self.server, &mut self.server_events);
        settle(&mut self.client, &mut self.client_events);
    }

    fn server_command(&mut self, command: PeerCommand) {
        self.server.handle_command(command, self.now);
        settle(&mut self.server, &mut self.server_events);
    }

    fn client_command(&mut self, command: PeerCommand) {
        self.client.handle_command(command, self.now);
        settle(&mut self.client, &mut self.client_events);
    }

    /// Sends from the client as `PeerHandle::send` does: with room reserved first.
    fn client_send(&mut self, packet: Packet) {
        let limits = Limits::default();
        self.client.flow().reserve_outbound(1, packet.data.len(), &limits).unwrap();
        self.client_command(PeerCommand::Send(packet));
    }
}

fn with(edit: impl FnOnce(&mut ConnectionConfig)) -> ConnectionConfig {
    let mut config = ConnectionConfig::default();
    edit(&mut config);
    config
}

fn packets(events: &[ConnectionEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            ConnectionEvent::Packet(p) => Some(String::from_utf8_lossy(&p.data).into_owned()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_server_drops_a_connection_that_sends_no_request_within_handshake_timeout() {
    let now = Instant::now();
    let settings = Arc::new(Settings::new(&with(|c| c.handshake_timeout = Duration::from_secs(3))));
    let (server_end, _client_end) = memory::pair();
    let mut server = Conn::accept(server_end, addr(), settings, now);
    server.handle_readable(now);
    assert_eq!(server.poll_timeout(), Some(now + Duration::from_secs(3)));
    server.handle_timeout(now + Duration::from_millis(2999));
    assert!(server.poll_event().is_none() && !server.is_finished());
    server.handle_timeout(now + Duration::from_secs(3));
    assert_eq!(server.poll_event(), Some(ConnectionEvent::HandshakeFailed("handshake not finished within 3s".into())));
    assert!(server.is_finished());
    assert_eq!(server.poll_timeout(), None);
}

#[test]
fn a_client_whose_transport_or_answer_does_not_come_fails_at_handshake_timeout() {
    let now = Instant::now();
    let settings = Arc::new(Settings::new(&with(|c| c.handshake_timeout = Duration::from_millis(500))));
    // No transport at all (the TCP connect hangs) ...
    let request = "ws://localhost/".into_client_request().unwrap();
    let mut waiting = Conn::connect(request.clone(), settings.clone(), Arc::default(), now);
    waiting.handle_timeout(now + Duration::from_millis(500));
    assert_eq!(waiting.poll_event(), Some(ConnectionEvent::ConnectFailed("handshake not finished within 500ms".into())));
    // ... or a server that never answers the upgrade request.
    let (client_end, server_end) = memory::pair();
    let mut silent = Conn::connect(request, settings, Arc::default(), now);
    silent.transport_ready(client_end, addr(), now);
    silent.flush();
    assert!(server_end.take_received().starts_with(b"GET / HTTP/1.1"), "the request went out");
    silent.handle_timeout(now + Duration::from_millis(500));
    assert_eq!(silent.poll_event(), Some(ConnectionEvent::ConnectFailed("handshake not finished within 500ms".into())));
    assert!(silent.is_finished());
}

#[test]
fn the_handshake_timer_stops_once_open() {
    let mut pair = Pair::open(ConnectionConfig::default());
    assert_eq!(pair.server.poll_timeout(), None);
    assert_eq!(pair.client.poll_timeout(), None);
    pair.advance(Duration::from_secs(3600));
    assert!(pair.server.is_open() && pair.client.is_open());
    assert!(pair.server_events.is_empty() && pair.client_events.is_empty());
}

#[test]
fn a_close_handshake_completes_cleanly_on_both_sides() {
    let mut pair = Pair::open(ConnectionConfig::default());
    pair.client_command(PeerCommand::Close { code: 4001, reason: "bye".into() });
    pair.run();
    assert_eq!(
        pair.server_events,
        vec![
            ConnectionEvent::CloseRequested { code: 4001, reason: "bye".into() },
            ConnectionEvent::Closed(Ending::Clean { code: 4001, reason: "bye".into() }),
        ]
    );
    assert_eq!(pair.client_events, vec![ConnectionEvent::Closed(Ending::Clean { code: 4001, reason: "bye".into() })]);
    assert!(pair.server.is_finished() && pair.client.is_finished());
}

#[test]
fn a_close_that_gets_no_answer_ends_at_close_timeout() {
    let mut pair = Pair::open(with(|c| c.close_timeout = Duration::from_secs(2)));
    pair.server_command(PeerCommand::Close { code: 1000, reason: String::new() });
    // The client never reads: no answer comes.
    assert_eq!(pair.server.poll_timeout(), Some(pair.now + Duration::from_secs(2)));
    pair.advance(Duration::from_millis(1999));
    assert!(pair.server_events.is_empty());
    pair.advance(Duration::from_millis(1));
    assert_eq!(pair.server_events, vec![ConnectionEvent::Closed(Ending::Lost)]);
}

#[test]
fn a_peer_that_answers_pings_stays_connected() {
    let mut pair = Pair::open(with(|c| c.heartbeat_interval = Some(Duration::from_secs(1))));
    for _ in 0..5 {
        pair.advance(Duration::from_secs(1));
        pair.run();
    }
    assert!(pair.server.is_open() && pair.client.is_open());
    assert!(pair.server_events.is_empty(), "{:?}", pair.server_events);
}

#[test]
fn a_peer_that_does_not_answer_a_ping_is_dropped_at_the_next() {
    let mut pair = Pair::open(with(|c| c.heartbeat_interval = Some(Duration::from_secs(1))));
    // Only the server has heartbeats in this test; the client never reads.
    pair.client_command(PeerCommand::SetHeartbeat(None));
    pair.advance(Duration::from_secs(1));
    assert!(pair.server.is_open(), "one ping without an answer yet is fine");
    pair.advance(Duration::from_secs(1));
    assert_eq!(
        pair.server_events,
        vec![ConnectionEvent::Closed(Ending::Failed {
            error: "no answer to a ping within 1s (heartbeat_interval); dropped".into()
        })]
    );
}

#[test]
fn a_full_inbound_queue_pauses_reading_until_the_game_takes_a_packet() {
    let limits = Limits { inbound_max_packets: 2, ..Limits::default() };
    // Uncompressed, so that the messages fill the stream.
    let mut pair = Pair::open(with(|c| {
        c.limits = limits.clone();
        c.deflate.enabled = false;
    }));
    // Larger than the read buffer together, so that some wait in the stream.
    let message = |n: usize| format!("m{n}:{}", "x".repeat(3000));
    for n in 0..5 {
        pair.client_send(text(&message(n)));
    }
    pair.run();
    assert_eq!(packets(&pair.server_events), [message(0), message(1)], "reading paused at the limit");
    assert!(pair.client.stream().unwrap().sent_unread() > 0, "the rest waits in the stream, not dropped");
    // The game takes one packet: room again, so it asks to resume.
    let len = message(0).len();
    assert!(pair.server.flow().taken(len, &limits), "the take that makes room resumes reading");
    pair.server_command(PeerCommand::ResumeRead);
    assert_eq!(packets(&pair.server_events), [message(0), message(1), message(2)]);
    // Taking the rest as it comes delivers everything, in order.
    for _ in 0..3 {
        if pair.server.flow().taken(len, &limits) {
            pair.server_command(PeerCommand::ResumeRead);
        }
        pair.run();
    }
    assert_eq!(packets(&pair.server_events), (0..5).map(message).collect::<Vec<_>>());
    assert_eq!(pair.server.flow().inbound_packets(), 1);
}

#[test]
fn a_peer_that_does_not_read_makes_sends_wait_not_vanish() {
    // Uncompressed, so that 1000 bytes take 1000 bytes of the stream.
    let mut pair = Pair::open(with(|c| c.deflate.enabled = false));
    pair.client.stream().unwrap().set_receive_capacity(Some(16));
    let limits = Limits::default();
    let big = Packet { data: Bytes::from(vec![7u8; 1000]), is_text: false };
    pair.server.flow().reserve_outbound(2, 1000, &limits).unwrap();
    pair.server_command(PeerCommand::Send(big));
    assert_eq!(pair.server.flow().outbound_bytes(), 1000, "not written yet: still counted");
    // The peer reads again; a writable event brings the rest out.
    pair.client.stream().unwrap().set_receive_capacity(None);
    pair.server.handle_writable(pair.now);
    pair.run();
    assert_eq!(pair.server.flow().outbound_bytes(), 0);
    assert_eq!(pair.client_events.len(), 1);
}

/// A raw client end after a real upgrade request, and the server connection that answered it.
fn raw_client_and_server(config: ConnectionConfig) -> (MemoryStream, Conn, Instant) {
    let now = Instant::now();
    let (server_end, raw) = memory::pair();
    let mut server = Conn::accept(server_end, addr(), Arc::new(Settings::new(&config)), now);
    raw.send(
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    server.handle_readable(now);
    server.handle_writable(now);
    assert!(matches!(server.poll_event(), Some(ConnectionEvent::Opened(_))));
    let response = raw.take_received();
    assert!(response.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&response));
    (raw, server, now)
}

#[test]
fn answers_to_messages_before_a_violation_go_out_before_the_failing_close() {
    let (raw, mut server, now) = raw_client_and_server(ConnectionConfig::default());
    // A masked text message "a", then a frame with a reserved bit set (RFC 6455 section 5.2).
    raw.send(b"\x81\x81\x00\x00\x00\x00a\xc1\x80\x00\x00\x00\x00");
    let mut events = Vec::new();
    server.handle_readable(now);
    settle(&mut server, &mut events);
    assert_eq!(events, vec![ConnectionEvent::Packet(text("a")), ConnectionEvent::Failing]);
    assert!(raw.take_received().is_empty(), "the close frame waits for the game");
    // The game answers the packet, then tells the connection to fail.
    server.flow().reserve_outbound(2, 5, &Limits::default()).unwrap();
    server.handle_command(PeerCommand::Send(text("ack:a")), now);
    server.handle_command(PeerCommand::Fail, now);
    settle(&mut server, &mut events);
    let wire = raw.take_received();
    assert!(wire.starts_with(b"\x81\x05ack:a\x88"), "answer first, then the close frame: {wire:?}");
    assert_eq!(&wire[9..11], &1002u16.to_be_bytes(), "close code 1002");
    assert!(matches!(events.last(), Some(ConnectionEvent::Closed(Ending::Failed { error })) if error.starts_with("closed with 1002")));
}

#[test]
fn a_failing_close_goes_out_at_close_timeout_if_the_game_does_not_answer() {
    let (raw, mut server, now) = raw_client_and_server(with(|c| c.close_timeout = Duration::from_secs(1)));
    // Invalid UTF-8 in a text message.
    raw.send(b"\x81\x82\x00\x00\x00\x00\xff\xfe");
    server.handle_readable(now);
    assert_eq!(server.poll_event(), Some(ConnectionEvent::Failing));
    assert_eq!(server.poll_timeout(), Some(now + Duration::from_secs(1)));
    server.handle_timeout(now + Duration::from_secs(1));
    let wire = raw.take_received();
    assert_eq!(wire[0], 0x88, "a close frame: {wire:?}");
    assert_eq!(&wire[2..4], &1007u16.to_be_bytes(), "close code 1007");
    assert!(matches!(server.poll_event(), Some(ConnectionEvent::Closed(Ending::Failed { .. }))));
}

#[test]
fn a_message_sent_right_behind_the_upgrade_request_is_delivered() {
    let now = Instant::now();
    let (server_end, raw) = memory::pair();
    let mut server = Conn::accept(server_end, addr(), Arc::new(Settings::new(&ConnectionConfig::default())), now);
    let mut bytes = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".to_vec();
    // A masked text message "early" in the same segment as the request.
    bytes.extend_from_slice(b"\x81\x85\x00\x00\x00\x00early");
    raw.send(&bytes);
    let mut events = Vec::new();
    server.handle_readable(now);
    settle(&mut server, &mut events);
    assert!(matches!(events.first(), Some(ConnectionEvent::Opened(_))), "{events:?}");
    assert_eq!(packets(&events), ["early"]);
}

#[test]
fn a_message_sent_right_behind_the_upgrade_response_is_delivered() {
    let now = Instant::now();
    let (client_end, raw) = memory::pair();
    let request = "ws://localhost/".into_client_request().unwrap();
    let mut client = Conn::connect(request, Arc::new(Settings::new(&ConnectionConfig::default())), Arc::default(), now);
    client.transport_ready(client_end, addr(), now);
    client.flush();
    let sent = String::from_utf8(raw.take_received()).unwrap();
    let key = sent.lines().find_map(|l| l.strip_prefix("Sec-WebSocket-Key: ")).expect("a key").to_string();
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut bytes = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").into_bytes();
    bytes.extend_from_slice(b"\x82\x03abc");
    raw.send(&bytes);
    let mut events = Vec::new();
    client.handle_readable(now);
    settle(&mut client, &mut events);
    assert!(matches!(events.first(), Some(ConnectionEvent::Opened(_))), "{events:?}");
    assert_eq!(packets(&events), ["abc"]);
}

#[test]
fn the_default_settings_agree_on_compression_without_context_takeover() {
    let now = Instant::now();
    let settings = Arc::new(Settings::new(&ConnectionConfig::default()));
    let (server_end, client_end) = memory::pair();
    let mut server = Conn::accept(server_end, addr(), settings.clone(), now);
    // The offer a `Client` adds to its request.
    let mut request = "ws://localhost/game".into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Extensions", crate::deflate::client_offer(&settings.deflate).unwrap().parse().unwrap());
    let mut client = Conn::connect(request, settings, Arc::default(), now);
    client.transport_ready(client_end, addr(), now);
    let (mut server_events, mut client_events) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        server.handle_readable(now);
        settle(&mut server, &mut server_events);
        client.handle_readable(now);
        settle(&mut client, &mut client_events);
    }
    let agreed = |events: &[ConnectionEvent]| match events {
        [ConnectionEvent::Opened(info)] => info.deflate,
        other => panic!("{other:?}"),
    };
    let on_server = agreed(&server_events);
    assert!(on_server.is_some_and(|p| p.server_no_context_takeover && p.client_no_context_takeover), "{on_server:?}");
    assert_eq!(on_server, agreed(&client_events));
}

#[test]
fn a_compressed_frame_is_inflated_and_an_rsv1_frame_without_agreement_fails() {
    let now = Instant::now();
    let settings = Arc::new(Settings::new(&ConnectionConfig::default()));
    let agreed = crate::DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };
    // RFC 7692 7.2.3.1: "Hello" compressed, in one masked frame (mask 0), then in two fragments.
    let hello: &[u8] = &[0xc1, 0x87, 0, 0, 0, 0, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let fragments: &[u8] = &[0x41, 0x83, 0, 0, 0, 0, 0xf2, 0x48, 0xcd, 0x80, 0x84, 0, 0, 0, 0, 0xc9, 0xc9, 0x07, 0x00];
    for (deflate, expected) in [(Some(agreed), vec!["Hello".to_string(), "Hello".to_string()]), (None, vec![])] {
        let (local, remote) = memory::pair();
        let mut conn = Conn::upgraded(local, super::Role::Server, settings.clone(), deflate, now);
        remote.send(hello);
        remote.send(fragments);
        conn.handle_readable(now);
        let mut events = Vec::new();
        settle(&mut conn, &mut events);
        assert_eq!(packets(&events), expected, "agreed: {deflate:?}");
        assert_eq!(events.iter().any(|e| matches!(e, ConnectionEvent::Failing)), deflate.is_none(), "{events:?}");
    }
}

#[test]
fn the_inbound_queue_counts_inflated_bytes() {
    // Compression agreed by the default settings: 64 KiB messages of one repeated byte travel as
    // a few hundred bytes each, but each fills the 16 KiB queue on its own once inflated.
    let limits = Limits { inbound_buffer_size: 16 << 10, ..Limits::default() };
    let mut pair = Pair::open(with(|c| c.limits = limits.clone()));
    let message = |n: usize| format!("{n}{}", "x".repeat(64 << 10));
    for n in 0..3 {
        pair.client_send(text(&message(n)));
    }
    pair.run();
    assert_eq!(packets(&pair.server_events), [message(0)], "reading paused after one inflated message");
    let len = message(0).len();
    assert!(pair.server.flow().taken(len, &limits));
    pair.server_command(PeerCommand::ResumeRead);
    assert_eq!(packets(&pair.server_events), [message(0), message(1)]);
}

/// A server with `config` and a client that waits a minute for its handshake, over one stream,
/// run until quiet: with `verify_handshakes` the request is held then.
fn held_pair(config: ConnectionConfig) -> Pair {
    let now = Instant::now();
    let (server_end, client_end) = memory::pair();
    let server = Conn::accept(server_end, addr(), Arc::new(Settings::new(&config)), now);
    let patient = with(|c| c.handshake_timeout = Duration::from_secs(60));
    let request = "ws://localhost/game?room=1".into_client_request().unwrap();
    let mut client = Conn::connect(request, Arc::new(Settings::new(&patient)), Arc::default(), now);
    client.transport_ready(client_end, addr(), now);
    let mut pair = Pair { now, server, client, server_events: Vec::new(), client_events: Vec::new() };
    pair.run();
    pair
}

#[test]
fn a_held_request_waits_for_the_game_and_opens_with_its_headers() {
    let mut pair = held_pair(with(|c| c.verify_handshakes = true));
    let [ConnectionEvent::HandshakeRequested(request)] = pair.server_events.as_slice() else {
        panic!("{:?}", pair.server_events);
    };
    assert_eq!(request.resource_name, "/game?room=1");
    assert!(request.headers.contains(&("host".into(), "localhost".into())), "{:?}", request.headers);
    assert_eq!(request.remote, addr());
    pair.server_events.clear();
    pair.advance(Duration::from_millis(2999));
    pair.run();
    assert!(pair.server_events.is_empty() && pair.client_events.is_empty(), "nothing moves until the game answers");
    pair.server_command(PeerCommand::AcceptHandshake { headers: vec![("X-Session".into(), "7".into())] });
    pair.run();
    assert!(matches!(pair.server_events.as_slice(), [ConnectionEvent::Opened(info)] if info.resource_name == "/game?room=1"));
    assert!(matches!(pair.client_events.as_slice(), [ConnectionEvent::Opened(_)]), "{:?}", pair.client_events);
    // A second answer finds nothing held and changes nothing.
    pair.server_command(PeerCommand::RejectHandshake { status: 403, body: String::new() });
    assert!(pair.server.is_open());
}

#[test]
fn a_held_request_the_game_refuses_gets_its_status_and_ends_quietly() {
    let mut pair = held_pair(with(|c| c.verify_handshakes = true));
    pair.server_events.clear();
    pair.server_command(PeerCommand::RejectHandshake { status: 401, body: "bad token".into() });
    pair.run();
    assert_eq!(pair.server_events, vec![ConnectionEvent::Answered]);
    assert!(pair.server.is_finished());
    assert!(
        matches!(pair.client_events.as_slice(), [ConnectionEvent::ConnectFailed(reason)] if reason.contains("401")),
        "{:?}",
        pair.client_events
    );
}

#[test]
fn a_held_request_not_answered_within_handshake_timeout_gets_503() {
    let mut pair = held_pair(with(|c| {
        c.verify_handshakes = true;
        c.handshake_timeout = Duration::from_secs(3);
    }));
    pair.server_events.clear();
    pair.advance(Duration::from_secs(3));
    pair.run();
    assert!(
        matches!(pair.server_events.as_slice(), [ConnectionEvent::HandshakeFailed(reason)] if reason.contains("did not answer")),
        "{:?}",
        pair.server_events
    );
    assert!(
        matches!(pair.client_events.as_slice(), [ConnectionEvent::ConnectFailed(reason)] if reason.contains("503")),
        "{:?}",
        pair.client_events
    );
}

#[test]
fn without_verify_handshakes_the_upgrade_answers_at_once() {
    let pair = held_pair(ConnectionConfig::default());
    assert!(matches!(pair.server_events.as_slice(), [ConnectionEvent::Opened(_)]), "{:?}", pair.server_events);
    assert!(matches!(pair.client_events.as_slice(), [ConnectionEvent::Opened(_)]), "{:?}", pair.client_events);
}

/// The server's settings in a pair whose two ends have their own (so their totals stay apart).
fn pair_with_own_settings(server: ConnectionConfig, client: ConnectionConfig) -> (Pair, Arc<Settings>) {
    let now = Instant::now();
    let server_settings = Arc::new(Settings::new(&server));
    let (server_end, client_end) = memory::pair();
    let server = Conn::accept(server_end, addr(), server_settings.clone(), now);
    let request = "ws://localhost/game".into_client_request().unwrap();
    let mut client = Conn::connect(request, Arc::new(Settings::new(&client)), Arc::default(), now);
    client.transport_ready(client_end, addr(), now);
    let mut pair = Pair { now, server, client, server_events: Vec::new(), client_events: Vec::new() };
    pair.run();
    pair.server_events.clear();
    pair.client_events.clear();
    (pair, server_settings)
}

#[test]
fn the_round_trip_time_comes_from_the_pongs_to_the_heartbeat_pings() {
    let heartbeat = with(|c| c.heartbeat_interval = Some(Duration::from_secs(1)));
    let (mut pair, settings) = pair_with_own_settings(heartbeat, ConnectionConfig::default());
    // The first ping went out with the upgrade answer and came back at once (no time passed).
    let rtt = pair.server.rtt;
    assert_eq!((rtt.samples, rtt.smoothed), (1, Duration::ZERO));
    // The next one: the client reads it 80 ms late; its pong is the sample.
    pair.advance(Duration::from_secs(1));
    pair.now += Duration::from_millis(80);
    pair.run();
    let rtt = pair.server.rtt;
    assert_eq!(rtt.samples, 2);
    assert_eq!(rtt.last, Duration::from_millis(80));
    // RFC 6298 smoothing: (7 * 0 + 80) / 8 and (3 * 0 + 80) / 4.
    assert_eq!(rtt.smoothed, Duration::from_millis(10));
    assert_eq!(rtt.variance, Duration::from_millis(20));
    let traffic = &pair.server.flow().traffic;
    assert_eq!(traffic.rtt_ms(), 10.0);
    assert_eq!(settings.counters.mean_rtt_ms(), 10.0);
    // A pong nobody asked for (its payload names no ping of ours) gives no sample.
    pair.advance(Duration::from_millis(300));
    pair.client_command(PeerCommand::Send(text("not a pong")));
    pair.run();
    assert_eq!(pair.server.rtt.samples, 2);
    // Once the connection ends, it leaves the server's mean.
    pair.server_command(PeerCommand::Abort);
    assert_eq!(settings.counters.mean_rtt_ms(), 0.0);
}

#[test]
fn a_repeated_or_stale_pong_gives_no_sample() {
    let heartbeat = with(|c| c.heartbeat_interval = Some(Duration::from_secs(1)));
    let (mut pair, _) = pair_with_own_settings(heartbeat, ConnectionConfig::default());
    assert_eq!(pair.server.rtt.samples, 1);
    pair.now += Duration::from_millis(500);
    pair.server.on_pong(&1u64.to_be_bytes(), pair.now);
    pair.server.on_pong(&[], pair.now);
    assert_eq!(pair.server.rtt.samples, 1, "the pong of ping 1 came already; an empty one is no answer");
}

#[test]
fn traffic_counters_are_exact_after_a_known_exchange() {
    let (mut pair, settings) = pair_with_own_settings(ConnectionConfig::default(), ConnectionConfig::default());
    for _ in 0..3 {
        pair.client_send(text("hello"));
    }
    pair.run();
    assert_eq!(packets(&pair.server_events), ["hello", "hello", "hello"]);
    let server = pair.server.flow().traffic.counts.totals();
    let client = pair.client.flow().traffic.counts.totals();
    // A client frame of 5 bytes: 2 header bytes, a 4-byte mask, the payload.
    assert_eq!((client.messages_sent, client.bytes_sent, client.wire_bytes_sent), (3, 15, 33));
    assert_eq!((server.messages_received, server.bytes_received, server.wire_bytes_received), (3, 15, 33));
    assert_eq!((server.messages_sent, server.wire_bytes_sent), (0, 0));
    pair.server_command(PeerCommand::Send(text("hi")));
    pair.run();
    let server = pair.server.flow().traffic.counts.totals();
    let client = pair.client.flow().traffic.counts.totals();
    // A server frame of 2 bytes: 2 header bytes, no mask.
    assert_eq!((server.messages_sent, server.bytes_sent, server.wire_bytes_sent), (1, 2, 4));
    assert_eq!((client.messages_received, client.bytes_received, client.wire_bytes_received), (1, 2, 4));
    let totals = settings.counters.traffic.totals();
    assert_eq!((totals.messages_received, totals.wire_bytes_received, totals.messages_sent), (3, 33, 1));
    assert_eq!(settings.counters.opened.load(std::sync::atomic::Ordering::Relaxed), 1);
    let mut stats = crate::stats::PeerStatistics::default();
    pair.server.flow().read_into(&mut stats, pair.now + Duration::from_secs(2));
    // Kept in microseconds from when the counters were made (just after the simulated start).
    assert!((stats.idle_seconds - 2.0).abs() < 0.001, "heard from last at the simulated now, read two seconds later: {}", stats.idle_seconds);
    assert_eq!((stats.queued.inbound_messages, stats.queued.inbound_bytes), (3, 15), "the game took none of them");
}

#[test]
fn refusals_and_health_checks_are_counted_by_reason() {
    use crate::stats::Refusal;
    let config = with(|c| {
        c.health_check_path = "/health".into();
        c.allowed_origins = vec!["https://game.example".into()];
    });
    let settings = Arc::new(Settings::new(&config));
    let requests: [&[u8]; 4] = [
        b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /page HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: https://evil.example\r\n\r\n",
    ];
    let now = Instant::now();
    for request in requests {
        let (server_end, raw) = memory::pair();
        let mut server = Conn::accept(server_end, addr(), settings.clone(), now);
        raw.send(request);
        server.handle_readable(now);
    }
    let counters = &settings.counters;
    let refused = |why: Refusal| {
        let mut stats = crate::stats::ServerStatistics::default();
        crate::stats::EndpointStatistics::new(settings.counters.clone()).read_into(&mut stats, now);
        stats.refused.iter().find(|(r, _)| *r == why).map_or(0, |(_, n)| *n)
    };
    assert_eq!(counters.health_checks.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(refused(Refusal::NotWebSocket), 1);
    assert_eq!(refused(Refusal::BadRequest), 1);
    assert_eq!(refused(Refusal::Origin), 1);
    assert_eq!(refused(Refusal::Rejected), 0);
    assert_eq!(counters.failed_handshakes.load(std::sync::atomic::Ordering::Relaxed), 0);
}
