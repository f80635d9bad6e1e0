//! Many clients at once each get their own id and their own echo.
mod common;

use websocket_rs_core::{Bytes, Client, ClientEvent, ConnectionConfig, Packet, ServerEvent};

#[test]
fn fifty_clients_connect_and_each_gets_its_own_echo() {
    let (mut server, url) = common::server(ConnectionConfig::default());
    let mut clients: Vec<Client> = (0..50)
        .map(|_| {
            let mut c = Client::new();
            c.connect(&url, ConnectionConfig::default()).unwrap();
            c
        })
        .collect();
    let (mut se, mut ce) = (Vec::new(), Vec::new());
    let mut refs: Vec<&mut Client> = clients.iter_mut().collect();
    common::pump(&mut server, &mut refs, &mut se, &mut ce, |s, c| {
        s.len() == 50 && c.iter().all(|e| e.iter().any(|e| matches!(e, ClientEvent::ConnectionEstablished { .. })))
    });
    let ids: std::collections::HashSet<i32> = server.peer_ids().collect();
    assert_eq!(ids.len(), 50);
    assert!(ids.iter().all(|&id| id >= 2));
    for (i, client) in refs.iter().enumerate() {
        let data = Bytes::from(format!("client {i}"));
        client.peer().unwrap().send(Packet { data, is_text: true }).unwrap();
    }
    // Echo whatever arrives back to its sender, until every client has its echo.
    let mut echoes: Vec<Option<Packet>> = vec![None; 50];
    let mut echoed = 0;
    let mut done_events = 0;
    loop {
        let mut events = Vec::new();
        server.poll(&mut events);
        for event in &events {
            if let ServerEvent::DataReceived { id } = event {
                let peer = server.peer(*id).unwrap();
                let packet = peer.recv().unwrap();
                peer.send(packet).unwrap();
                echoed += 1;
            }
        }
        for (i, client) in refs.iter_mut().enumerate() {
            let mut events = Vec::new();
            client.poll(&mut events);
            done_events += events.len();
            if echoes[i].is_none() {
                echoes[i] = client.peer().unwrap().recv();
            }
        }
        if echoes.iter().all(Option::is_some) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(echoed, 50);
    assert!(done_events >= 50);
    for (i, echo) in echoes.into_iter().enumerate() {
        assert_eq!(echo.unwrap().data, Bytes::from(format!("client {i}")));
    }
}
