//! The batch calls beside the per-packet ones: `PeerHandle::recv_all` and `send_many`,
//! `Server::take_all_packets` and `Server::broadcast` (to all, all but some, or named peers). With and without the I/O thread: order
//! kept, all-or-none at the outbound limits, back-pressure released by a batch take, and clear
//! errors for bad input.

mod common;

use std::time::{Duration, Instant};

use websocket_rs_core::{Bytes, Client, ConnectionConfig, Error, Limits, Packet, PeerId, Recipients, Server};

fn binary(i: usize) -> Packet {
    Packet { data: Bytes::from(format!("m{i}").into_bytes()), is_text: false }
}

fn text(s: &str) -> Packet {
    Packet { data: Bytes::copy_from_slice(s.as_bytes()), is_text: true }
}

fn configs() -> [ConnectionConfig; 2] {
    [ConnectionConfig::default(), ConnectionConfig { io_thread: false, ..ConnectionConfig::default() }]
}

/// Polls until `want` packets in all came out of `server`'s raw-mode batch call; what each peer
/// sent, oldest first. Panics after `common::LIMIT`.
fn take_all(server: &mut Server, clients: &mut [&mut Client], want: usize) -> Vec<(PeerId, Vec<Packet>)> {
    let (mut se, mut ce) = (Vec::new(), Vec::new());
    let mut got: Vec<(PeerId, Vec<Packet>)> = Vec::new();
    let mut count = 0;
    let start = Instant::now();
    while count < want {
        assert!(start.elapsed() < common::LIMIT, "timed out with {count} of {want} packets");
        server.poll(&mut se);
        for client in clients.iter_mut() {
            client.poll(&mut ce);
        }
        let mut batch = Vec::new();
        server.take_all_packets(&mut batch).unwrap();
        for (id, packets) in batch {
            count += packets.len();
            match got.iter_mut().find(|(seen, _)| *seen == id) {
                Some((_, all)) => all.extend(packets),
                None => got.push((id, packets)),
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    got
}

#[test]
fn send_many_and_recv_all_keep_order_both_ways() {
    for config in configs() {
        let (mut server, url) = common::server(config.clone());
        let (mut client, id) = common::connect(&mut server, &url, config.clone());
        let to_server = client.peer().unwrap().clone();
        let to_client = server.peer(id).unwrap().clone();
        to_server.send_many((0..300).map(binary).collect()).unwrap();
        to_client.send_many(vec![text("a"), binary(1), text("c")]).unwrap();
        let (mut se, mut ce) = (Vec::new(), vec![Vec::new()]);
        let (mut up, mut down) = (Vec::new(), Vec::new());
        common::pump(&mut server, &mut [&mut client], &mut se, &mut ce, |_, _| {
            to_client.recv_all(&mut up);
            to_server.recv_all(&mut down);
            up.len() == 300 && down.len() == 3
        });
        assert_eq!(up, (0..300).map(binary).collect::<Vec<_>>());
        assert_eq!(down, vec![text("a"), binary(1), text("c")]);
        assert_eq!(to_client.available_packets(), 0);
        // An empty batch is nothing to do.
        assert!(to_client.send_many(Vec::new()).is_ok());
    }
}

#[test]
fn send_many_is_all_or_none_at_the_outbound_limit() {
    let config = ConnectionConfig {
        limits: Limits { outbound_max_packets: 10, ..Limits::default() },
        io_thread: false,
        ..ConnectionConfig::default()
    };
    let (mut server, url) = common::server(config.clone());
    let (mut client, id) = common::connect(&mut server, &url, config);
    let to_client = server.peer(id).unwrap().clone();
    // Without an I/O thread, single sends wait for the next poll: the queue fills.
    for i in 0..8 {
        to_client.send(binary(i)).unwrap();
    }
    let refused = to_client.send_many((8..11).map(binary).collect());
    assert!(matches!(refused, Err(Error::OutboundFull { peer, .. }) if peer == id), "{refused:?}");
    to_client.send_many((8..10).map(binary).collect()).unwrap();
    // A batch is written at once, and the single sends queued before it with it.
    assert_eq!(to_client.outbound_buffered(), 0);
    let to_server = client.peer().unwrap().clone();
    let (mut se, mut ce) = (Vec::new(), vec![Vec::new()]);
    let mut got = Vec::new();
    common::pump(&mut server, &mut [&mut client], &mut se, &mut ce, |_, _| {
        to_server.recv_all(&mut got);
        got.len() >= 10
    });
    assert_eq!(got, (0..10).map(binary).collect::<Vec<_>>(), "the refused batch left nothing behind");
    // One batch always fits an empty queue, even beyond the packet limit.
    to_client.send_many((0..25).map(binary).collect()).unwrap();
}

#[test]
fn send_many_refuses_bad_text_and_closed_peers_whole() {
    let config = ConnectionConfig { io_thread: false, ..ConnectionConfig::default() };
    let (mut server, url) = common::server(config.clone());
    let (mut client, id) = common::connect(&mut server, &url, config);
    let to_client = server.peer(id).unwrap().clone();
    let bad = Packet { data: Bytes::from_static(&[0xff, 0xfe]), is_text: true };
    assert!(matches!(to_client.send_many(vec![text("fine"), bad]), Err(Error::TextNotUtf8)));
    assert_eq!(to_client.outbound_buffered(), 0, "nothing of a refused batch is queued");
    client.disconnect(1000, "").unwrap();
    let (mut se, mut ce) = (Vec::new(), vec![Vec::new()]);
    common::pump(&mut server, &mut [&mut client], &mut se, &mut ce, |s, _| !s.is_empty());
    assert!(matches!(to_client.send_many(vec![text("late")]), Err(Error::PeerNotOpen(p)) if p == id));
}

#[test]
fn recv_all_releases_back_pressure() {
    // The server's inbound queue holds 4 packets; 200 are sent. Only batch takes make room.
    let config = ConnectionConfig {
        limits: Limits { inbound_max_packets: 4, ..Limits::default() },
        ..ConnectionConfig::default()
    };
    let (mut server, url) = common::server(config.clone());
    let (mut client, id) = common::connect(&mut server, &url, config);
    client.peer().unwrap().send_many((0..200).map(binary).collect()).unwrap();
    let to_client = server.peer(id).unwrap().clone();
    let (mut se, mut ce) = (Vec::new(), vec![Vec::new()]);
    let mut got = Vec::new();
    let mut most_waiting = 0;
    common::pump(&mut server, &mut [&mut client], &mut se, &mut ce, |_, _| {
        most_waiting = most_waiting.max(to_client.available_packets());
        to_client.recv_all(&mut got);
        got.len() == 200
    });
    assert_eq!(got, (0..200).map(binary).collect::<Vec<_>>());
    assert!(most_waiting <= 5, "the inbound limit held: {most_waiting} waiting at once");
}

#[test]
fn take_all_packets_groups_by_peer_in_arrival_order() {
    for config in configs() {
        let (mut server, url) = common::server(config.clone());
        let (mut a, id_a) = common::connect(&mut server, &url, config.clone());
        let (mut b, id_b) = common::connect(&mut server, &url, config.clone());
        a.peer().unwrap().send_many((0..50).map(binary).collect()).unwrap();
        b.peer().unwrap().send_many((100..120).map(binary).collect()).unwrap();
        let got = take_all(&mut server, &mut [&mut a, &mut b], 70);
        let of = |id| got.iter().find(|(peer, _)| *peer == id).map(|(_, p)| p.clone()).unwrap_or_default();
        assert_eq!(of(id_a), (0..50).map(binary).collect::<Vec<_>>());
        assert_eq!(of(id_b), (100..120).map(binary).collect::<Vec<_>>());
        // Everything was taken: the next call has nothing, and per-peer counts agree.
        let mut again = Vec::new();
        server.take_all_packets(&mut again).unwrap();
        assert!(again.is_empty(), "{again:?}");
        assert_eq!(server.peer(id_a).unwrap().available_packets(), 0);
    }
}

#[test]
fn take_all_packets_skips_what_per_peer_calls_took() {
    let config = ConnectionConfig { io_thread: false, ..ConnectionConfig::default() };
    let (mut server, url) = common::server(config.clone());
    let (mut a, id_a) = common::connect(&mut server, &url, config);
    a.peer().unwrap().send(binary(1)).unwrap();
    let peer = server.peer(id_a).unwrap().clone();
    let (mut se, mut ce) = (Vec::new(), vec![Vec::new()]);
    common::pump(&mut server, &mut [&mut a], &mut se, &mut ce, |_, _| peer.available_packets() == 1);
    assert_eq!(peer.recv(), Some(binary(1)));
    let mut batch = Vec::new();
    server.take_all_packets(&mut batch).unwrap();
    assert!(batch.is_empty(), "{batch:?}");
    // The peer is listed again when its next packet comes.
    a.peer().unwrap().send(binary(2)).unwrap();
    let got = take_all(&mut server, &mut [&mut a], 1);
    assert_eq!(got, vec![(id_a, vec![binary(2)])]);
}

#[test]
fn batch_calls_need_a_listening_raw_server() {
    let mut idle = Server::new();
    assert!(matches!(idle.take_all_packets(&mut Vec::new()), Err(Error::NotActive)));
    let (mut multiplayer, _) = common::server(ConnectionConfig { multiplayer: true, ..ConnectionConfig::default() });
    assert!(matches!(multiplayer.take_all_packets(&mut Vec::new()), Err(Error::Unsupported(_))));
    assert!(matches!(multiplayer.broadcast(Recipients::All, binary(1)), Err(Error::Unsupported(_))));
}

#[test]
fn broadcast_reaches_every_open_peer_or_the_named_ones() {
    for config in configs() {
        let (mut server, url) = common::server(config.clone());
        let (mut a, id_a) = common::connect(&mut server, &url, config.clone());
        let (mut b, id_b) = common::connect(&mut server, &url, config.clone());
        let (pa, pb) = (a.peer().unwrap().clone(), b.peer().unwrap().clone());
        server.broadcast(Recipients::All, text("all")).unwrap();
        server.broadcast(Recipients::Only(&[id_b]), binary(7)).unwrap();
        let unknown: PeerId = 999_999;
        let named = server.broadcast(Recipients::Only(&[unknown, id_a]), text("named"));
        assert!(
            matches!(&named, Err(Error::NotDelivered(failures)) if matches!(failures[..], [(p, Error::UnknownPeer(_))] if p == unknown)),
            "{named:?}"
        );
        server.broadcast(Recipients::AllBut(&[id_a]), binary(8)).unwrap();
        let bad = Packet { data: Bytes::from_static(&[0xc3]), is_text: true };
        assert!(matches!(server.broadcast(Recipients::All, bad), Err(Error::TextNotUtf8)));
        let (mut se, mut ce) = (Vec::new(), vec![Vec::new(), Vec::new()]);
        let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
        common::pump(&mut server, &mut [&mut a, &mut b], &mut se, &mut ce, |_, _| {
            pa.recv_all(&mut got_a);
            pb.recv_all(&mut got_b);
            got_a.len() == 2 && got_b.len() == 3
        });
        assert_eq!(got_a, vec![text("all"), text("named")], "a reachable peer still gets it");
        assert_eq!(got_b, vec![text("all"), binary(7), binary(8)]);
    }
}

#[test]
fn a_full_queue_stops_only_its_peer_and_the_error_names_it() {
    // Inline: a plain send waits in the queue until the next poll, so one message fills it.
    let limits = Limits { outbound_max_packets: 1, ..Limits::default() };
    let config = ConnectionConfig { io_thread: false, limits, ..ConnectionConfig::default() };
    let (mut server, url) = common::server(config.clone());
    let (mut a, id_a) = common::connect(&mut server, &url, config.clone());
    let (mut b, _) = common::connect(&mut server, &url, config.clone());
    let (pa, pb) = (a.peer().unwrap().clone(), b.peer().unwrap().clone());
    server.peer(id_a).unwrap().send(binary(1)).unwrap();
    let result = server.broadcast(Recipients::All, text("all"));
    let text_of_error = result.as_ref().map_err(ToString::to_string).err().unwrap_or_default();
    assert!(
        matches!(&result, Err(Error::NotDelivered(failures))
            if matches!(failures[..], [(p, Error::OutboundFull { peer, .. })] if p == id_a && peer == id_a)),
        "{result:?}"
    );
    assert!(text_of_error.contains(&format!("outbound queue of peer {id_a} is full")), "{text_of_error}");
    let (mut se, mut ce) = (Vec::new(), vec![Vec::new(), Vec::new()]);
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    common::pump(&mut server, &mut [&mut a, &mut b], &mut se, &mut ce, |_, _| {
        pa.recv_all(&mut got_a);
        pb.recv_all(&mut got_b);
        got_a.len() == 1 && got_b.len() == 1
    });
    assert_eq!(got_a, vec![binary(1)], "the full peer kept what it had queued");
    assert_eq!(got_b, vec![text("all")], "the other peer got the broadcast");
}
