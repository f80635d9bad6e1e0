//! A clean close carries its code and reason to the other side and is clean on both sides; a lost
//! connection is reported as not clean.
mod common;

use websocket_rs_core::{ClientEvent, ConnectionConfig, ReadyState, ServerEvent};

#[test]
fn client_initiated_close_is_clean_on_both_sides() {
    let (mut server, url) = common::server(ConnectionConfig::default());
    let (mut client, id) = common::connect(&mut server, &url, ConnectionConfig::default());
    client.disconnect(4001, "bye").unwrap();
    let server_peer = server.peer(id).unwrap().clone();
    let (mut se, mut ce) = (Vec::new(), Vec::new());
    common::pump(&mut server, &mut [&mut client], &mut se, &mut ce, |s, c| {
        s.iter().any(|e| matches!(e, ServerEvent::ClientDisconnected { .. }))
            && c[0].iter().any(|e| matches!(e, ClientEvent::ConnectionClosed { .. }))
    });
    assert!(se.contains(&ServerEvent::CloseRequested { id, code: 4001, reason: "bye".into() }), "{se:?}");
    assert!(se.contains(&ServerEvent::ClientDisconnected { id, was_clean: true, error: None }), "{se:?}");
    assert!(ce[0].contains(&ClientEvent::ConnectionClosed { was_clean: true, error: None }), "{ce:?}");
    assert_eq!(server_peer.close_code(), Some(4001));
    assert_eq!(server_peer.close_reason(), "bye");
    assert_eq!(server_peer.ready_state(), ReadyState::Closed);
    assert!(!server.has_peer(id));
}

#[test]
fn server_initiated_close_reaches_the_client_with_code_and_reason() {
    let (mut server, url) = common::server(ConnectionConfig::default());
    let (mut client, id) = common::connect(&mut server, &url, ConnectionConfig::default());
    server.peer(id).unwrap().close(1001, "maintenance").unwrap();
    let (mut se, mut ce) = (Vec::new(), Vec::new());
    common::pump(&mut server, &mut [&mut client], &mut se, &mut ce, |s, c| {
        s.iter().any(|e| matches!(e, ServerEvent::ClientDisconnected { .. }))
            && c[0].iter().any(|e| matches!(e, ClientEvent::ConnectionClosed { .. }))
    });
    assert!(ce[0].contains(&ClientEvent::CloseRequested { code: 1001, reason: "maintenance".into() }), "{ce:?}");
    assert!(ce[0].contains(&ClientEvent::ConnectionClosed { was_clean: true, error: None }), "{ce:?}");
    assert!(se.contains(&ServerEvent::ClientDisconnected { id, was_clean: true, error: None }), "{se:?}");
    assert_eq!(client.peer().unwrap().close_code(), Some(1001));
}

#[test]
fn dropping_a_client_closes_with_going_away() {
    let (mut server, url) = common::server(ConnectionConfig::default());
    let (client, id) = common::connect(&mut server, &url, ConnectionConfig::default());
    drop(client); // ends the I/O thread, which sends a 1001 close frame on its way out
    let (mut se, mut ce) = (Vec::new(), Vec::new());
    common::pump(&mut server, &mut [], &mut se, &mut ce, |s, _| {
        s.iter().any(|e| matches!(e, ServerEvent::ClientDisconnected { .. }))
    });
    assert!(se.contains(&ServerEvent::CloseRequested { id, code: 1001, reason: "going away".into() }), "{se:?}");
    assert!(se.contains(&ServerEvent::ClientDisconnected { id, was_clean: true, error: None }), "{se:?}");
}

#[test]
fn a_killed_socket_is_reported_not_clean() {
    let (mut server, url) = common::server(ConnectionConfig::default());
    // A raw TCP peer that completes the handshake and then vanishes without a close frame.
    let addr = url.trim_start_matches("ws://").trim_end_matches('/').to_string();
    let stream = std::net::TcpStream::connect(&addr).unwrap();
    let (ws, _) = tungstenite::client::client(url.as_str(), stream).unwrap();
    let (mut se, mut ce) = (Vec::new(), Vec::new());
    common::pump(&mut server, &mut [], &mut se, &mut ce, |s, _| {
        s.iter().any(|e| matches!(e, ServerEvent::ClientConnected { .. }))
    });
    drop(ws);
    common::pump(&mut server, &mut [], &mut se, &mut ce, |s, _| {
        s.iter().any(|e| matches!(e, ServerEvent::ClientDisconnected { .. }))
    });
    assert!(se.iter().any(|e| matches!(e, ServerEvent::ClientDisconnected { was_clean: false, .. })), "{se:?}");
}
