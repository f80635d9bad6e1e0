//! Our client and our server exchange text and binary messages, complete and in order.
mod common;

use websocket_rs_core::{Bytes, ConnectionConfig, Packet, ServerEvent};

#[test]
fn messages_arrive_complete_and_in_order_both_ways() {
    let (mut server, url) = common::server(ConnectionConfig::default());
    let (mut client, id) = common::connect(&mut server, &url, ConnectionConfig::default());
    let to_server = client.peer().unwrap().clone();
    let to_client = server.peer(id).unwrap().clone();
    for i in 0..200u32 {
        let text = i % 2 == 0;
        let data = if text { Bytes::from(format!("message {i}")) } else { Bytes::from(i.to_le_bytes().to_vec()) };
        to_server.send(Packet { data, is_text: text }).unwrap();
    }
    let big = Bytes::from(vec![7u8; 300_000]);
    let (mut se, mut ce) = (Vec::new(), Vec::new());
    let mut received = Vec::new();
    common::pump(&mut server, &mut [&mut client], &mut se, &mut ce, |_, _| {
        while let Some(p) = to_client.recv() {
            received.push(p);
        }
        received.len() == 200
    });
    for (i, packet) in received.iter().enumerate() {
        let i = i as u32;
        if i.is_multiple_of(2) {
            assert!(packet.is_text);
            assert_eq!(packet.data, Bytes::from(format!("message {i}")));
        } else {
            assert!(!packet.is_text);
            assert_eq!(packet.data, Bytes::from(i.to_le_bytes().to_vec()));
        }
    }
    assert_eq!(se.iter().filter(|e| matches!(e, ServerEvent::DataReceived { .. })).count(), 200);

    // A message far larger than the inbound buffer arrives whole (no stall).
    to_client.send(Packet { data: big.clone(), is_text: false }).unwrap();
    let mut got = None;
    common::pump(&mut server, &mut [&mut client], &mut se, &mut ce, |_, _| {
        got = got.take().or_else(|| to_server.recv());
        got.is_some()
    });
    assert_eq!(got.unwrap().data, big);
}

#[test]
fn invalid_utf8_text_is_refused_before_sending() {
    let (mut server, url) = common::server(ConnectionConfig::default());
    let (client, _) = common::connect(&mut server, &url, ConnectionConfig::default());
    let err = client.peer().unwrap().send(Packet { data: Bytes::from_static(&[0xff, 0xfe]), is_text: true });
    assert!(matches!(err, Err(websocket_rs_core::Error::TextNotUtf8)), "{err:?}");
}
