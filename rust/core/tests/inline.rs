//! `io_thread: false`: the sockets are served inside `poll()`. Everything works as with the I/O
//! thread (messages, big messages, close handshakes, multiplayer ids, timeouts, heartbeats, TLS,
//! shutdown), and nothing moves while nobody polls.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rcgen::{CertificateParams, KeyPair};
use websocket_rs_core::{
    Bytes, Client, ClientEvent, ConnectionConfig, Packet, Server, ServerEvent, TlsClientSettings, TlsServerSettings,
};

fn inline() -> ConnectionConfig {
    ConnectionConfig { io_thread: false, ..ConnectionConfig::default() }
}

fn text(s: &str) -> Packet {
    Packet { data: Bytes::copy_from_slice(s.as_bytes()), is_text: true }
}

#[test]
fn messages_and_a_big_message_cross_both_ways() {
    let (mut server, url) = common::server(inline());
    let (mut client, id) = common::connect(&mut server, &url, inline());
    let to_server = client.peer().unwrap().clone();
    let to_client = server.peer(id).unwrap().clone();
    for i in 0..500 {
        to_server.send(text(&format!("up {i}"))).unwrap();
        to_client.send(text(&format!("down {i}"))).unwrap();
    }
    let (mut se, mut ce) = (Vec::new(), Vec::new());
    let (mut up, mut down) = (Vec::new(), Vec::new());
    common::pump(&mut server, &mut [&mut client], &mut se, &mut ce, |_, _| {
        up.extend(std::iter::from_fn(|| to_client.recv()));
        down.extend(std::iter::from_fn(|| to_server.recv()));
        up.len() == 500 && down.len() == 500
    });
    for i in 0..500 {
        assert_eq!(up[i], text(&format!("up {i}")));
        assert_eq!(down[i], text(&format!("down {i}")));
    }
    // Far beyond the socket buffers: it goes out over several polls, as the socket drains.
    let big = Packet { data: Bytes::from(vec![9u8; 3 << 20]), is_text: false };
    to_client.send(big.clone()).unwrap();
    let mut got = None;
    common::pump(&mut server, &mut [&mut client], &mut se, &mut ce, |_, _| {
        got = got.take().or_else(|| to_server.recv());
        got.is_some()
    });
    assert_eq!(got, Some(big));
}

#[test]
fn nothing_moves_until_poll() {
    let (mut server, url) = common::server(inline());
    let mut client = Client::new();
    client.connect(&url, inline()).unwrap();
    // Nobody polls: the connection is accepted by the kernel, but no handshake happens.
    std::thread::sleep(Duration::from_millis(200));
    let mut ce = Vec::new();
    client.poll(&mut ce);
    std::thread::sleep(Duration::from_millis(100));
    client.poll(&mut ce);
    assert!(ce.is_empty(), "{ce:?}");
    let mut se = Vec::new();
    let mut ces = vec![ce];
    common::pump(&mut server, &mut [&mut client], &mut se, &mut ces, |s, c| {
        s.iter().any(|e| matches!(e, ServerEvent::ClientConnected { .. }))
            && c[0].iter().any(|e| matches!(e, ClientEvent::ConnectionEstablished { .. }))
    });
}

#[test]
fn close_handshake_carries_code_and_reason_and_is_clean() {
    let (mut server, url) = common::server(inline());
    let (mut client, id) = common::connect(&mut server, &url, inline());
    client.disconnect(4001, "bye").unwrap();
    let (mut se, mut ce) = (Vec::new(), Vec::new());
    common::pump(&mut server, &mut [&mut client], &mut se, &mut ce, |s, c| {
        s.iter().any(|e| matches!(e, ServerEvent::ClientDisconnected { .. }))
            && c[0].iter().any(|e| matches!(e, ClientEvent::ConnectionClosed { .. }))
    });
    assert!(se.contains(&ServerEvent::CloseRequested { id, code: 4001, reason: "bye".into() }), "{se:?}");
    assert!(se.contains(&ServerEvent::ClientDisconnected { id, was_clean: true, error: None }), "{se:?}");
    assert!(ce[0].contains(&ClientEvent::ConnectionClosed { was_clean: true, error: None }), "{ce:?}");
}

#[test]
fn dropping_an_inline_server_says_going_away() {
    let (mut server, url) = common::server(inline());
    let (mut client, _) = common::connect(&mut server, &url, ConnectionConfig::default());
    drop(server);
    let mut ce = Vec::new();
    let deadline = Instant::now() + common::LIMIT;
    while !ce.iter().any(|e| matches!(e, ClientEvent::ConnectionClosed { .. })) {
        assert!(Instant::now() < deadline, "{ce:?}");
        client.poll(&mut ce);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(ce.contains(&ClientEvent::CloseRequested { code: 1001, reason: "going away".into() }), "{ce:?}");
}

#[test]
fn multiplayer_ids_and_packets() {
    let mp = ConnectionConfig { multiplayer: true, ..inline() };
    let (mut server, url) = common::server(mp.clone());
    let (mut client, id) = common::connect(&mut server, &url, mp);
    assert_eq!(client.unique_id(), Some(id));
    client.peer().unwrap().send(Packet { data: Bytes::from_static(b"rpc"), is_text: false }).unwrap();
    let (mut se, mut ce) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + common::LIMIT;
    let got = loop {
        server.poll(&mut se);
        client.poll(&mut ce);
        if let Some(got) = server.take_packet() {
            break got;
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(1));
    };
    assert_eq!(got, (id, Packet { data: Bytes::from_static(b"rpc"), is_text: false }));
}

#[test]
fn a_silent_connection_is_dropped_at_the_handshake_timeout_while_polling() {
    let config = ConnectionConfig { handshake_timeout: Duration::from_millis(200), ..inline() };
    let (mut server, url) = common::server(config);
    let addr = url.trim_start_matches("ws://").trim_end_matches('/').to_string();
    let mut silent = TcpStream::connect(&addr).unwrap();
    let (mut se, mut ce) = (Vec::new(), Vec::new());
    common::pump(&mut server, &mut [], &mut se, &mut ce, |s, _| {
        s.iter().any(|e| matches!(e, ServerEvent::HandshakeFailed { .. }))
    });
    silent.set_read_timeout(Some(common::LIMIT)).unwrap();
    assert_eq!(silent.read(&mut [0u8; 16]).unwrap_or(0), 0, "the server closed the socket");
}

#[test]
fn heartbeat_pings_are_answered_and_a_mute_peer_is_dropped() {
    let config = ConnectionConfig { heartbeat_interval: Some(Duration::from_millis(100)), ..inline() };
    let (mut server, url) = common::server(config);
    // A client that answers pings (its own I/O thread does).
    let (mut client, id) = common::connect(&mut server, &url, ConnectionConfig::default());
    // A raw peer that completes the handshake and then never reads or answers.
    let addr = url.trim_start_matches("ws://").trim_end_matches('/').to_string();
    let mut mute = TcpStream::connect(&addr).unwrap();
    mute.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let (mut se, mut ce) = (Vec::new(), Vec::new());
    common::pump(&mut server, &mut [&mut client], &mut se, &mut ce, |s, _| {
        s.iter().any(|e| matches!(e, ServerEvent::ClientDisconnected { .. }))
    });
    let dropped: Vec<_> = se.iter().filter(|e| matches!(e, ServerEvent::ClientDisconnected { .. })).collect();
    assert_eq!(dropped.len(), 1, "{se:?}");
    assert!(matches!(dropped[0], ServerEvent::ClientDisconnected { id: gone, error: Some(error), .. }
        if *gone != id && error.contains("no answer to a ping")), "{se:?}");
    assert!(server.has_peer(id), "the client that answers stays");
}

#[test]
fn wss_both_ends_inline() {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
    let config = ConnectionConfig {
        tls_server: Some(TlsServerSettings { private_key_pem: key.serialize_pem(), certificate_chain_pem: cert.pem() }),
        ..inline()
    };
    let mut server = Server::new();
    let port = server.listen(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), config).unwrap().port();
    let client_config = ConnectionConfig {
        tls_client: TlsClientSettings::Verify { trusted_chain_pem: Some(cert.pem()), common_name_override: None },
        ..inline()
    };
    let (mut client, id) = common::connect(&mut server, &format!("wss://localhost:{port}/"), client_config);
    client.peer().unwrap().send(text("secret")).unwrap();
    let to_client = server.peer(id).unwrap().clone();
    let (mut se, mut ce) = (Vec::new(), Vec::new());
    let mut got = None;
    common::pump(&mut server, &mut [&mut client], &mut se, &mut ce, |_, _| {
        got = got.take().or_else(|| to_client.recv());
        got.is_some()
    });
    assert_eq!(got, Some(text("secret")));
}

#[test]
fn write_queued_sends_without_waiting_for_the_next_poll() {
    let (mut server, url) = common::server(ConnectionConfig::default());
    let (client, id) = common::connect(&mut server, &url, inline());
    let to_client = server.peer(id).unwrap().clone();
    client.peer().unwrap().send(text("early")).unwrap();
    // Without write_queued (or a poll) the message waits in the client's queue.
    let mut se = Vec::new();
    let until = Instant::now() + Duration::from_millis(150);
    while Instant::now() < until {
        server.poll(&mut se);
        assert_eq!(to_client.recv(), None);
        std::thread::sleep(Duration::from_millis(1));
    }
    client.write_queued();
    let mut ce = Vec::new();
    let mut got = None;
    common::pump(&mut server, &mut [], &mut se, &mut ce, |_, _| {
        got = got.take().or_else(|| to_client.recv());
        got.is_some()
    });
    assert_eq!(got, Some(text("early")));
}
