//! Multiplayer mode: the id handshake, packets taken in arrival order with their sender,
//! target-peer sends, and disconnects held back until a peer's last packets were taken.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use websocket_rs_core::{Bytes, Client, ClientEvent, ConnectionConfig, Packet, ServerEvent};

fn mp_config() -> ConnectionConfig {
    ConnectionConfig { multiplayer: true, ..ConnectionConfig::default() }
}

fn binary(data: &[u8]) -> Packet {
    Packet { data: Bytes::copy_from_slice(data), is_text: false }
}

#[test]
fn the_client_is_established_only_with_its_id_and_packets_carry_their_sender() {
    let (mut server, url) = common::server(mp_config());
    let (mut a, a_id) = common::connect(&mut server, &url, mp_config());
    let (mut b, b_id) = common::connect(&mut server, &url, mp_config());
    assert_eq!(a.unique_id(), Some(a_id));
    assert_eq!(b.unique_id(), Some(b_id));
    assert!(a.is_established() && b.is_established());
    // The id message is not a packet the game sees.
    assert_eq!(a.peer().unwrap().available_packets(), 0);

    a.peer().unwrap().send(binary(b"a1")).unwrap();
    b.peer().unwrap().send(binary(b"b1")).unwrap();
    let mut se = Vec::new();
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + common::LIMIT;
    while got.len() < 2 && std::time::Instant::now() < deadline {
        server.poll(&mut se);
        while let Some(next) = server.next_packet_peer() {
            let (from, packet) = server.take_packet().unwrap();
            assert_eq!(from, next);
            got.push((from, packet.data.to_vec()));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    got.sort();
    let mut expected = vec![(a_id, b"a1".to_vec()), (b_id, b"b1".to_vec())];
    expected.sort();
    assert_eq!(got, expected);
    assert!(!se.iter().any(|e| matches!(e, ServerEvent::DataReceived { .. })), "no DataReceived in multiplayer mode");

    // Target peers: 0 is everyone, -id everyone but id, id just that one.
    server.send_to(0, binary(b"all")).unwrap();
    server.send_to(-a_id, binary(b"not a")).unwrap();
    server.send_to(a_id, binary(b"only a")).unwrap();
    assert!(server.send_to(12345, binary(b"nobody")).is_err());
    let (mut se, mut ce) = (Vec::new(), Vec::new());
    common::pump(&mut server, &mut [&mut a, &mut b], &mut se, &mut ce, |_, c| {
        c[0].iter().filter(|e| matches!(e, ClientEvent::DataReceived)).count() == 2
            && c[1].iter().filter(|e| matches!(e, ClientEvent::DataReceived)).count() == 2
    });
    let take_all = |client: &Client| {
        std::iter::from_fn(|| client.peer().unwrap().recv()).map(|p| p.data.to_vec()).collect::<Vec<_>>()
    };
    assert_eq!(take_all(&a), vec![b"all".to_vec(), b"only a".to_vec()]);
    assert_eq!(take_all(&b), vec![b"all".to_vec(), b"not a".to_vec()]);

    // A peer that is closing (its disconnect not reported yet) is left out of broadcasts, as
    // SceneMultiplayer keeps broadcasting meanwhile; sending to it by id is still an error.
    server.peer(a_id).unwrap().close(1000, "").unwrap();
    server.send_to(0, binary(b"after a left")).unwrap();
    assert!(server.send_to(a_id, binary(b"to a")).is_err(), "a closing peer named as target");
    let (mut se, mut ce) = (Vec::new(), Vec::new());
    common::pump(&mut server, &mut [&mut a, &mut b], &mut se, &mut ce, |_, c| {
        c[1].iter().any(|e| matches!(e, ClientEvent::DataReceived))
    });
    assert_eq!(take_all(&b), vec![b"after a left".to_vec()]);
    assert!(take_all(&a).is_empty(), "nothing after the close");
}

#[test]
fn a_disconnect_is_reported_after_the_peers_last_packets() {
    let (mut server, url) = common::server(mp_config());
    let (mut a, a_id) = common::connect(&mut server, &url, mp_config());
    for i in 0..3u8 {
        a.peer().unwrap().send(binary(&[i])).unwrap();
    }
    a.disconnect(1000, "").unwrap();
    // Wait until the I/O thread has reported the close, without taking packets.
    let mut se = Vec::new();
    let deadline = std::time::Instant::now() + common::LIMIT;
    let mut ce = Vec::new();
    while server.has_peer(a_id) && std::time::Instant::now() < deadline {
        server.poll(&mut se);
        a.poll(&mut ce);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(!server.has_peer(a_id), "the peer is gone");
    assert_eq!(server.queued_packets(), 3);
    assert!(!se.iter().any(|e| matches!(e, ServerEvent::ClientDisconnected { .. })), "held back: {se:?}");
    for i in 0..3u8 {
        assert_eq!(server.take_packet().map(|(id, p)| (id, p.data.to_vec())), Some((a_id, vec![i])));
    }
    server.poll(&mut se);
    assert!(se.iter().any(|e| matches!(e, ServerEvent::ClientDisconnected { id, .. } if *id == a_id)), "{se:?}");
}

/// A plain tungstenite server that sends `first` as its first message.
fn fake_server(first: Option<Vec<u8>>) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let thread = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut ws = tungstenite::accept(stream).unwrap();
        if let Some(first) = first {
            let _ = ws.send(tungstenite::Message::Binary(first.into()));
        }
        // Keep the socket until the client goes.
        while ws.read().is_ok() {}
    });
    (url, thread)
}

fn connect_error(url: &str, config: ConnectionConfig) -> String {
    let mut client = Client::new();
    client.connect(url, config).unwrap();
    let (mut events, start) = (Vec::new(), std::time::Instant::now());
    loop {
        client.poll(&mut events);
        if let Some(reason) = events.iter().find_map(|e| match e {
            ClientEvent::ConnectionError { reason } => Some(reason.clone()),
            _ => None,
        }) {
            assert!(!events.iter().any(|e| matches!(e, ClientEvent::ConnectionEstablished { .. })), "{events:?}");
            return reason;
        }
        assert!(start.elapsed() < common::LIMIT, "{events:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn the_client_refuses_a_bad_id() {
    let (url, server) = fake_server(Some(vec![1, 0, 0, 0]));
    let reason = connect_error(&url, mp_config());
    assert!(reason.contains("peer id 1"), "{reason}");
    server.join().unwrap();
    let (url, server) = fake_server(Some(vec![9, 9]));
    let reason = connect_error(&url, mp_config());
    assert!(reason.contains("4-byte peer id"), "{reason}");
    server.join().unwrap();
}

#[test]
fn the_client_gives_up_when_no_id_arrives() {
    let (url, server) = fake_server(None);
    let config = ConnectionConfig { handshake_timeout: Duration::from_millis(300), ..mp_config() };
    let reason = connect_error(&url, config);
    assert!(reason.contains("no multiplayer id"), "{reason}");
    server.join().unwrap();
}
