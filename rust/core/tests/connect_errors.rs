//! A client that cannot connect gets a `ConnectionError` naming the cause; bad URLs and calls fail
//! at once with a clear error.
mod common;

use std::net::SocketAddr;

use websocket_rs_core::{Client, ClientEvent, ConnectionConfig, Error, Server};

#[test]
fn connecting_to_a_closed_port_reports_connection_error() {
    // Bind and drop a listener to find a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut client = Client::new();
    client.connect(&format!("ws://127.0.0.1:{port}/"), ConnectionConfig::default()).unwrap();
    let mut events = Vec::new();
    let start = std::time::Instant::now();
    while !events.iter().any(|e| matches!(e, ClientEvent::ConnectionError { .. })) {
        client.poll(&mut events);
        assert!(start.elapsed() < common::LIMIT, "no error reported: {events:?}");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let ClientEvent::ConnectionError { reason } = &events[0] else { panic!("{events:?}") };
    assert!(reason.contains("refused"), "{reason}");
    assert!(!client.is_active());
}

#[test]
fn bad_urls_are_refused_with_the_reason() {
    let mut client = Client::new();
    for url in ["", "http://example.com/", "ws://", "not a url", "ws://127.0.0.1:0/"] {
        let err = client.connect(url, ConnectionConfig::default()).unwrap_err();
        assert!(matches!(err, Error::InvalidUrl { .. }), "{url}: {err:?}");
    }
}

#[test]
fn listen_rejects_a_second_listen_and_a_port_in_use() {
    let mut server = Server::new();
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let addr = server.listen(loopback, ConnectionConfig::default()).unwrap();
    assert!(matches!(server.listen(loopback, ConnectionConfig::default()), Err(Error::AlreadyListening)));
    let mut other = Server::new();
    let err = other.listen(addr, ConnectionConfig::default()).unwrap_err();
    assert!(matches!(err, Error::AddressInUse(taken) if taken == addr), "{err:?}");
    server.stop();
    assert!(!server.is_listening());
}
