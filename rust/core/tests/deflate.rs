//! permessage-deflate between our client and our server over loopback: what is agreed for each
//! setting, messages of every kind and size round trip compressed, and a decompression bomb,
//! corrupt or wrongly flagged data from a raw peer close that peer only, with 1009 or 1007.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use flate2::{Compress, Compression, FlushCompress};
use websocket_rs_core::{
    Bytes, Client, ClientEvent, ConnectionConfig, DeflateConfig, DeflateParams, Error, Limits, Packet, Server,
};

/// A config with these compression settings.
fn with_deflate(deflate: DeflateConfig) -> ConnectionConfig {
    ConnectionConfig { deflate, ..ConnectionConfig::default() }
}

/// What both ends agreed, as each sees it.
fn agreed(server_side: DeflateConfig, client_side: DeflateConfig) -> (Option<DeflateParams>, Option<DeflateParams>) {
    let (mut server, url) = common::server(with_deflate(server_side));
    let (client, id) = common::connect(&mut server, &url, with_deflate(client_side));
    let on_server = server.peer(id).unwrap().deflate();
    let on_client = client.peer().unwrap().deflate();
    (on_server, on_client)
}

/// Echoes every message back from the server and returns what the client got for `messages`.
fn echo_through(server: &mut Server, client: &mut Client, id: i32, messages: &[Packet]) -> Vec<Packet> {
    let to_server = client.peer().unwrap().clone();
    for packet in messages {
        // Wait for room: a 1 MiB message fills the outbound queue on its own.
        let deadline = Instant::now() + common::LIMIT;
        while let Err(Error::OutboundFull { .. }) = to_server.send(packet.clone()) {
            assert!(Instant::now() < deadline, "the outbound queue never drained");
            pump_once(server, client, id);
        }
    }
    let mut got = Vec::new();
    let deadline = Instant::now() + common::LIMIT;
    while got.len() < messages.len() {
        pump_once(server, client, id);
        while let Some(packet) = to_server.recv() {
            got.push(packet);
        }
        assert!(Instant::now() < deadline, "got {} of {} echoes", got.len(), messages.len());
    }
    got
}

/// One round: the server echoes what it has, the client takes in what came.
fn pump_once(server: &mut Server, client: &mut Client, id: i32) {
    let mut events = Vec::new();
    server.poll(&mut events);
    let peer = server.peer(id).unwrap().clone();
    while let Some(packet) = peer.recv() {
        // The client's queue is as large as ours: retry until it takes it.
        let deadline = Instant::now() + common::LIMIT;
        while let Err(Error::OutboundFull { .. }) = peer.send(packet.clone()) {
            assert!(Instant::now() < deadline, "the server's outbound queue never drained");
            server.poll(&mut events);
            client.poll(&mut Vec::new());
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    client.poll(&mut Vec::new());
    std::thread::sleep(Duration::from_millis(1));
}

/// JSON-like text of about `len` bytes that compresses well.
fn json_text(seed: usize, len: usize) -> String {
    let mut text = String::from("[");
    let mut i = 0;
    while text.len() < len {
        text.push_str(&format!(
            "{{\"id\":{},\"name\":\"player{}\",\"x\":{}.5,\"y\":{}.25,\"alive\":true}},",
            seed * 1000 + i,
            i % 37,
            i * 3,
            i * 7
        ));
        i += 1;
    }
    text.push(']');
    text
}

/// The messages of the round trips: below and above the threshold, text and binary, 1 MiB
/// compressible and 1 MiB random, and an empty one.
fn mixed_messages() -> Vec<Packet> {
    let mut rng = fastrand::Rng::with_seed(11);
    let mut messages =
        vec![Packet { data: Bytes::from_static(b"tiny"), is_text: true }, Packet { data: Bytes::new(), is_text: false }];
    for i in 0..40 {
        messages.push(Packet { data: Bytes::from(json_text(i, 330)), is_text: true });
        messages.push(Packet { data: Bytes::from(json_text(i, 200).into_bytes()), is_text: false });
    }
    messages.push(Packet { data: Bytes::from(json_text(1, 1 << 20)), is_text: true });
    messages.push(Packet { data: Bytes::from((0..1 << 20).map(|_| rng.u8(..)).collect::<Vec<u8>>()), is_text: false });
    messages.push(Packet { data: Bytes::from("é😀".repeat(1000)), is_text: true });
    messages
}

/// Defaults on both sides: compression is agreed without context takeover and full windows.
#[test]
fn agreed_by_default() {
    let (on_server, on_client) = agreed(DeflateConfig::default(), DeflateConfig::default());
    let expected = DeflateParams {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    };
    assert_eq!(on_server, Some(expected));
    assert_eq!(on_client, Some(expected));
}

/// Off on either side: no compression, and the connection works as before.
#[test]
fn off_on_either_side_means_uncompressed() {
    let off = DeflateConfig { enabled: false, ..DeflateConfig::default() };
    assert_eq!(agreed(off.clone(), DeflateConfig::default()), (None, None));
    assert_eq!(agreed(DeflateConfig::default(), off), (None, None));
}

/// Window limits and takeover choices of each side end up in the agreement.
#[test]
fn settings_shape_the_agreement() {
    let server = DeflateConfig {
        server_max_window_bits: 12,
        client_max_window_bits: 10,
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        ..DeflateConfig::default()
    };
    let client =
        DeflateConfig { server_no_context_takeover: false, client_no_context_takeover: false, ..DeflateConfig::default() };
    let expected = DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: 12,
        client_max_window_bits: 10,
    };
    assert_eq!(agreed(server.clone(), client), (Some(expected), Some(expected)));
    // A client that asks for a small server window and no takeover gets both.
    let asking = DeflateConfig { server_max_window_bits: 9, ..DeflateConfig::default() };
    let (on_server, on_client) = agreed(server, asking);
    assert_eq!(on_server, on_client);
    let on_server = on_server.unwrap();
    assert_eq!((on_server.server_max_window_bits, on_server.server_no_context_takeover), (9, true));
    assert_eq!((on_server.client_max_window_bits, on_server.client_no_context_takeover), (10, true));
}

/// Every kind and size of message round trips intact, with and without context takeover and
/// with the smallest windows.
#[test]
fn messages_round_trip_compressed() {
    let choices = [
        DeflateConfig::default(),
        DeflateConfig { server_no_context_takeover: false, client_no_context_takeover: false, ..DeflateConfig::default() },
        DeflateConfig {
            server_max_window_bits: 8,
            client_max_window_bits: 8,
            level: 1,
            threshold: 0,
            ..DeflateConfig::default()
        },
    ];
    let messages = mixed_messages();
    for deflate in choices {
        let config = with_deflate(deflate.clone());
        let (mut server, url) = common::server(config.clone());
        let (mut client, id) = common::connect(&mut server, &url, config);
        assert!(client.peer().unwrap().deflate().is_some(), "{deflate:?} agreed");
        let got = echo_through(&mut server, &mut client, id, &messages);
        assert_eq!(got.len(), messages.len());
        for (i, (got, sent)) in got.iter().zip(&messages).enumerate() {
            assert_eq!(got.is_text, sent.is_text, "message {i} kind ({deflate:?})");
            assert!(got.data == sent.data, "message {i} of {} bytes came back changed ({deflate:?})", sent.data.len());
        }
    }
}

/// A raw TCP peer that offered `extensions` and completed the upgrade; the response head.
fn raw_upgraded(url: &str, extensions: &str) -> (TcpStream, String) {
    let addr = url.trim_start_matches("ws://").trim_end_matches('/');
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: {extensions}\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    (tcp, String::from_utf8_lossy(&head).into_owned())
}

/// `data` deflated as RFC 7692 sends it (raw DEFLATE, sync flush, tail removed).
fn deflated(data: &[u8]) -> Vec<u8> {
    let mut compressor = Compress::new(Compression::new(9), false);
    let mut out = Vec::with_capacity(data.len() / 100 + 1024);
    while compressor.total_in() < data.len() as u64 || out.len() == out.capacity() {
        if out.len() == out.capacity() {
            out.reserve(out.capacity());
        }
        let rest = &data[compressor.total_in() as usize..];
        compressor.compress_vec(rest, &mut out, FlushCompress::Sync).unwrap();
    }
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

/// A decompression bomb (16 MiB of zeros in 16 KiB), corrupt DEFLATE data and invalid UTF-8
/// inside a compressed text message each close their peer with the right code; a compressing
/// client on the same server loses nothing meanwhile.
#[test]
fn bombs_and_corrupt_data_close_that_peer_only() {
    let config =
        ConnectionConfig { limits: Limits { max_message_size: 1 << 20, ..Limits::default() }, ..ConnectionConfig::default() };
    let (mut server, url) = common::server(config);
    let (mut client, id) = common::connect(&mut server, &url, ConnectionConfig::default());
    let bomb = deflated(&vec![0u8; 16 << 20]);
    assert!(bomb.len() < 32 << 10, "the bomb is small: {} bytes", bomb.len());
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("a decompression bomb", common::frame(0x82 | 0x40, &bomb, true), 1009),
        ("corrupt DEFLATE data", common::frame(0x82 | 0x40, &[0xff, 0xff, 0xff, 0xff, 0x00], true), 1007),
        ("invalid UTF-8 once inflated", common::frame(0x81 | 0x40, &deflated(b"ok \xff\xfe text"), true), 1007),
        ("RSV1 on a continuation frame", [common::frame(0x01, b"ab", true), common::frame(0x80 | 0x40, b"cd", true)].concat(), 1002),
        ("RSV1 on a control frame", common::frame(0x89 | 0x40, b"", true), 1002),
    ];
    let messages = vec![Packet { data: Bytes::from(json_text(3, 2000)), is_text: true }; 20];
    for (what, bytes, expected) in cases {
        let (mut raw, head) = raw_upgraded(&url, "permessage-deflate; client_max_window_bits");
        assert!(head.to_ascii_lowercase().contains("sec-websocket-extensions: permessage-deflate"), "{head}");
        raw.write_all(&bytes).unwrap();
        assert_eq!(echo_through(&mut server, &mut client, id, &messages), messages, "bystander during {what}");
        assert_eq!(common::close_code_seen_by(&mut raw, &mut server), expected, "{what}");
    }
    assert_eq!(echo_through(&mut server, &mut client, id, &messages), messages, "bystander after all");
    assert!(client.peer().unwrap().deflate().is_some());
}

/// A peer that set RSV1 without having agreed to compression is closed with 1002.
#[test]
fn rsv1_without_agreement_is_a_protocol_error() {
    let off =
        ConnectionConfig { deflate: DeflateConfig { enabled: false, ..DeflateConfig::default() }, ..ConnectionConfig::default() };
    let (mut server, url) = common::server(off);
    let (mut raw, head) = raw_upgraded(&url, "permessage-deflate");
    assert!(!head.to_ascii_lowercase().contains("sec-websocket-extensions"), "nothing agreed: {head}");
    raw.write_all(&common::frame(0x81 | 0x40, &deflated(b"hello hello hello"), true)).unwrap();
    assert_eq!(common::close_code_seen_by(&mut raw, &mut server), 1002);
}

/// A malformed extension offer is answered HTTP 400; an offer with unknown parameters is
/// declined (no compression), and the connection opens.
#[test]
fn malformed_and_unknown_offers() {
    let (mut server, url) = common::server(ConnectionConfig::default());
    let addr = url.trim_start_matches("ws://").trim_end_matches('/').to_string();
    let mut tcp = TcpStream::connect(&addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Extensions: permessage-deflate; =;;\r\n\r\n",
    )
    .unwrap();
    let mut answer = Vec::new();
    let deadline = Instant::now() + common::LIMIT;
    let mut events = Vec::new();
    tcp.set_nonblocking(true).unwrap();
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        server.poll(&mut events);
        let mut chunk = [0u8; 512];
        match tcp.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(_) => {}
        }
        assert!(Instant::now() < deadline, "no answer");
        std::thread::sleep(Duration::from_millis(1));
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("Sec-WebSocket-Extensions"), "the body says why: {answer}");

    let (_raw, head) = raw_upgraded(&url, "permessage-deflate; no_such_parameter");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("sec-websocket-extensions"), "declined: {head}");
}

/// A client whose server answers with an extension it did not offer fails to connect, saying why.
#[test]
fn client_refuses_an_answer_it_did_not_offer() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let fake = std::thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            tcp.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: ").or_else(|| l.strip_prefix("sec-websocket-key: ")))
            .unwrap()
            .trim()
            .to_string();
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=20\r\n\r\n"
        );
        tcp.write_all(response.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        head
    });
    let mut client = Client::new();
    client.connect(&format!("ws://127.0.0.1:{port}/"), ConnectionConfig::default()).unwrap();
    let deadline = Instant::now() + common::LIMIT;
    let mut events = Vec::new();
    let error = loop {
        client.poll(&mut events);
        if let Some(error) = events.iter().find_map(|e| match e {
            ClientEvent::ConnectionError { reason } => Some(reason.clone()),
            _ => None,
        }) {
            break error;
        }
        assert!(Instant::now() < deadline, "no connection error: {events:?}");
        std::thread::sleep(Duration::from_millis(1));
    };
    let request = fake.join().unwrap();
    assert!(request.to_ascii_lowercase().contains("sec-websocket-extensions: permessage-deflate"), "offered: {request}");
    assert!(error.contains("permessage-deflate"), "{error}");
}

#[test]
fn a_broadcast_reaches_compressed_and_uncompressed_peers_intact() {
    use websocket_rs_core::Recipients;
    let (mut server, url) = common::server(ConnectionConfig::default());
    let (mut a, _) = common::connect(&mut server, &url, ConnectionConfig::default());
    let (mut b, _) = common::connect(&mut server, &url, ConnectionConfig::default());
    let plain = ConnectionConfig { deflate: DeflateConfig { enabled: false, ..DeflateConfig::default() }, ..ConnectionConfig::default() };
    let (mut c, _) = common::connect(&mut server, &url, plain);
    assert!(a.peer().unwrap().deflate().is_some() && c.peer().unwrap().deflate().is_none());
    let message = Packet { data: Bytes::from(json_text(7, 4000)), is_text: true };
    server.broadcast(Recipients::All, message.clone()).unwrap();
    let peers = [a.peer().unwrap().clone(), b.peer().unwrap().clone(), c.peer().unwrap().clone()];
    let mut got = vec![Vec::new(), Vec::new(), Vec::new()];
    let (mut se, mut ce) = (Vec::new(), vec![Vec::new(), Vec::new(), Vec::new()]);
    common::pump(&mut server, &mut [&mut a, &mut b, &mut c], &mut se, &mut ce, |_, _| {
        for (peer, got) in peers.iter().zip(got.iter_mut()) {
            peer.recv_all(got);
        }
        got.iter().all(|g| g.len() == 1)
    });
    for g in &got {
        assert_eq!(g, &vec![message.clone()]);
    }
}
