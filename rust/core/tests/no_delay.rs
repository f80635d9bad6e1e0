//! TCP_NODELAY is on by default on both ends (read back from the sockets), and off when asked.
mod common;

use websocket_rs_core::ConnectionConfig;

#[test]
fn nodelay_is_on_by_default_on_both_ends() {
    let (mut server, url) = common::server(ConnectionConfig::default());
    let (client, id) = common::connect(&mut server, &url, ConnectionConfig::default());
    assert!(server.peer(id).unwrap().no_delay_at_open());
    assert!(client.peer().unwrap().no_delay_at_open());
}

#[test]
fn nodelay_can_be_turned_off() {
    let config = ConnectionConfig { no_delay: false, ..ConnectionConfig::default() };
    let (mut server, url) = common::server(config.clone());
    let (client, id) = common::connect(&mut server, &url, config);
    assert!(!server.peer(id).unwrap().no_delay_at_open());
    assert!(!client.peer().unwrap().no_delay_at_open());
}
