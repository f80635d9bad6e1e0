//! wss:// between our server and client: trusted certificates (exact, or Godot-style self-signed
//! CA certificates without subjectAltName), and the failures: unknown issuer, wrong name, plain
//! ws:// against TLS and the reverse. The server keeps serving through every failure.

mod common;


use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use websocket_rs_core::{Client, ClientEvent, ConnectionConfig, Server, ServerEvent, TlsClientSettings, TlsServerSettings};

/// (private key PEM, certificate PEM) for `names`; `godot_style` makes a CA certificate with the
/// name only in its common name, as Godot's `Crypto.generate_self_signed_certificate` does.
fn certificate(names: &[&str], godot_style: bool) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let mut params = if godot_style {
        CertificateParams::new(Vec::<String>::new()).expect("params")
    } else {
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("params")
    };
    params.distinguished_name.push(DnType::CommonName, names[0]);
    if godot_style {
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    }
    let cert = params.self_signed(&key).expect("self-signed");
    (key.serialize_pem(), cert.pem())
}

fn tls_server(key: &str, cert: &str) -> (Server, u16) {
    let config = ConnectionConfig {
        tls_server: Some(TlsServerSettings { private_key_pem: key.into(), certificate_chain_pem: cert.into() }),
        ..ConnectionConfig::default()
    };
    let mut server = Server::new();
    let addr = server.listen(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), config).expect("listen");
    (server, addr.port())
}

fn trusting(cert: &str, name_override: Option<&str>) -> ConnectionConfig {
    ConnectionConfig {
        tls_client: TlsClientSettings::Verify { trusted_chain_pem: Some(cert.into()), common_name_override: name_override.map(str::to_string) },
        ..ConnectionConfig::default()
    }
}

/// Connects and returns the client's events once it is established or has failed.
fn outcome(server: &mut Server, url: &str, config: ConnectionConfig) -> (Client, Vec<ClientEvent>) {
    let mut client = Client::new();
    client.connect(url, config).expect("connect");
    let (mut se, mut ce) = (Vec::new(), Vec::new());
    common::pump(server, &mut [&mut client], &mut se, &mut ce, |_, c| {
        c[0].iter().any(|e| matches!(e, ClientEvent::ConnectionEstablished { .. } | ClientEvent::ConnectionError { .. }))
    });
    (client, ce.remove(0))
}

fn error_of(events: &[ClientEvent]) -> String {
    events
        .iter()
        .find_map(|e| match e {
            ClientEvent::ConnectionError { reason } => Some(reason.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("expected a connection error, got {events:?}"))
}

fn echo_works(server: &mut Server, client: &mut Client) {
    let packet = websocket_rs_core::Packet { data: websocket_rs_core::Bytes::from_static(b"secret"), is_text: false };
    client.peer().unwrap().send(packet.clone()).unwrap();
    let (mut se, mut ce) = (Vec::new(), Vec::new());
    common::pump(server, &mut [client], &mut se, &mut ce, |s, _| s.iter().any(|e| matches!(e, ServerEvent::DataReceived { .. })));
    let from = se.iter().find_map(|e| match e {
        ServerEvent::DataReceived { id } => Some(*id),
        _ => None,
    });
    assert_eq!(server.peer(from.unwrap()).unwrap().recv(), Some(packet));
}

#[test]
fn wss_with_a_trusted_certificate() {
    let (key, cert) = certificate(&["localhost"], false);
    let (mut server, port) = tls_server(&key, &cert);
    let (mut client, events) = outcome(&mut server, &format!("wss://localhost:{port}/"), trusting(&cert, None));
    assert!(matches!(events[0], ClientEvent::ConnectionEstablished { .. }), "{events:?}");
    echo_works(&mut server, &mut client);
}

#[test]
fn wss_with_a_godot_style_self_signed_certificate() {
    let (key, cert) = certificate(&["localhost"], true);
    let (mut server, port) = tls_server(&key, &cert);
    let (mut client, events) = outcome(&mut server, &format!("wss://localhost:{port}/"), trusting(&cert, None));
    assert!(matches!(events[0], ClientEvent::ConnectionEstablished { .. }), "{events:?}");
    echo_works(&mut server, &mut client);
    // The common name override replaces the URL's host in the check.
    let (_, events) = outcome(&mut server, &format!("wss://127.0.0.1:{port}/"), trusting(&cert, Some("localhost")));
    assert!(matches!(events[0], ClientEvent::ConnectionEstablished { .. }), "{events:?}");
}

#[test]
fn failures_are_clear_and_the_server_keeps_serving() {
    let (key, cert) = certificate(&["localhost"], true);
    let (mut server, port) = tls_server(&key, &cert);
    // Unknown issuer: the public roots do not know a self-signed certificate.
    let (_, events) = outcome(&mut server, &format!("wss://localhost:{port}/"), ConnectionConfig::default());
    let reason = error_of(&events);
    assert!(reason.contains("certificate"), "{reason}");
    // Wrong name.
    let (_, events) = outcome(&mut server, &format!("wss://127.0.0.1:{port}/"), trusting(&cert, None));
    let reason = error_of(&events);
    assert!(reason.contains("not for this host name"), "{reason}");
    // Another certificate trusted instead.
    let (_, other) = certificate(&["localhost"], true);
    let (_, events) = outcome(&mut server, &format!("wss://localhost:{port}/"), trusting(&other, None));
    error_of(&events);
    // Plain ws:// to the TLS server.
    let (_, events) = outcome(&mut server, &format!("ws://localhost:{port}/"), ConnectionConfig::default());
    error_of(&events);
    // The server still serves a good client.
    let (mut client, events) = outcome(&mut server, &format!("wss://localhost:{port}/"), trusting(&cert, None));
    assert!(matches!(events[0], ClientEvent::ConnectionEstablished { .. }), "{events:?}");
    echo_works(&mut server, &mut client);
    // The unsafe client accepts anything.
    let config = ConnectionConfig { tls_client: TlsClientSettings::Unsafe, ..ConnectionConfig::default() };
    let (_, events) = outcome(&mut server, &format!("wss://127.0.0.1:{port}/"), config);
    assert!(matches!(events[0], ClientEvent::ConnectionEstablished { .. }), "{events:?}");
}

#[test]
fn a_wss_client_against_a_plain_server_fails_clearly() {
    let (mut server, url) = common::server(ConnectionConfig::default());
    let url = url.replace("ws://", "wss://").replace("127.0.0.1", "localhost");
    let (_, events) = outcome(&mut server, &url, ConnectionConfig { tls_client: TlsClientSettings::Unsafe, ..ConnectionConfig::default() });
    let reason = error_of(&events);
    assert!(reason.contains("TLS") || reason.contains("handshake"), "{reason}");
}

#[test]
fn bad_pem_is_refused_at_listen() {
    let mut server = Server::new();
    let config = ConnectionConfig {
        tls_server: Some(TlsServerSettings { private_key_pem: "nope".into(), certificate_chain_pem: "nope".into() }),
        ..ConnectionConfig::default()
    };
    let err = server.listen(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), config).unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
}

/// A close handshake over wss:// started by either side ends clean on both sides, as over ws://
/// (the side that closes TCP last sees the other end the TLS stream without close_notify after
/// the close frames have crossed; found by `cargo xtask soak`, where every wss:// close the
/// client started was reported unclean).
#[test]
fn wss_close_handshakes_are_clean_on_both_sides() {
    let (key, cert) = certificate(&["localhost"], false);
    let (mut server, port) = tls_server(&key, &cert);
    for client_closes in [true, false] {
        let (mut client, events) = outcome(&mut server, &format!("wss://localhost:{port}/"), trusting(&cert, None));
        assert!(matches!(events[0], ClientEvent::ConnectionEstablished { .. }), "{events:?}");
        let (mut se, mut ce) = (Vec::new(), Vec::new());
        common::pump(&mut server, &mut [&mut client], &mut se, &mut ce, |_, _| true);
        let ids: Vec<_> = server.peer_ids().collect();
        assert_eq!(ids.len(), 1, "one client connected");
        if client_closes {
            client.disconnect(1000, "bye").unwrap();
        } else {
            server.peer(ids[0]).unwrap().close(1000, "bye").unwrap();
        }
        let (mut se, mut ce) = (Vec::new(), Vec::new());
        common::pump(&mut server, &mut [&mut client], &mut se, &mut ce, |s, c| {
            s.iter().any(|e| matches!(e, ServerEvent::ClientDisconnected { .. })) && c[0].iter().any(|e| matches!(e, ClientEvent::ConnectionClosed { .. }))
        });
        let client_clean = ce[0].iter().any(|e| matches!(e, ClientEvent::ConnectionClosed { was_clean: true, .. }));
        let server_clean = se.iter().any(|e| matches!(e, ServerEvent::ClientDisconnected { was_clean: true, .. }));
        println!("client closes: {client_closes}; client saw {:?}; server saw {se:?}", ce[0]);
        assert!(client_clean && server_clean, "client closes: {client_closes}; client saw {:?}; server saw {se:?}", ce[0]);
    }
}
