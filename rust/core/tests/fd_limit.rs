//! A server whose process ran out of file descriptors admits the connections waiting in its
//! backlog as soon as descriptors are free again. Readiness is edge-triggered: no new event
//! comes for connections that were already waiting, so the server must retry by itself.
//! (Alone in its file: the descriptor limit is the whole process's.)
#![cfg(target_os = "linux")]

mod common;

use std::fs::File;
use std::io::Write;
use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::{Duration, Instant};

use websocket_rs_core::{ConnectionConfig, ServerEvent};

const CLIENTS: usize = 3;

/// A TCP socket that is not connected yet: its descriptor exists before the limit is lowered.
fn unconnected_socket() -> TcpStream {
    // SAFETY: plain socket(2); the descriptor is owned by the TcpStream from here on.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket() failed");
        TcpStream::from_raw_fd(fd)
    }
}

/// connect(2) to 127.0.0.1:`port`, which needs no new descriptor.
fn connect(socket: &TcpStream, port: u16) {
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes([127, 0, 0, 1]) },
        sin_zero: [0; 8],
    };
    // SAFETY: `addr` is a valid sockaddr_in for the length given.
    let result = unsafe {
        libc::connect(
            socket.as_raw_fd(),
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    assert_eq!(result, 0, "connect: {}", std::io::Error::last_os_error());
}

fn set_descriptor_limit(soft: libc::rlim_t) -> libc::rlimit {
    let mut old = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with valid pointers.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut old), 0);
        let new = libc::rlimit { rlim_cur: soft, rlim_max: old.rlim_max };
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &new), 0);
    }
    old
}

#[test]
fn connections_waiting_while_out_of_descriptors_are_admitted_once_some_are_free() {
    let (mut server, url) = common::server(ConnectionConfig::default());
    let port: u16 = url.trim_start_matches("ws://127.0.0.1:").trim_end_matches('/').parse().unwrap();
    let sockets: Vec<TcpStream> = (0..CLIENTS).map(|_| unconnected_socket()).collect();
    // Fill every free descriptor number up to a new highest one, then hold a few more to free
    // later: with the limit just above the highest, no descriptor can be made.
    let highest_before = sockets.iter().map(AsRawFd::as_raw_fd).max().unwrap();
    let mut fillers = Vec::new();
    loop {
        let file = File::open("/dev/null").unwrap();
        let fd = file.as_raw_fd();
        fillers.push(file);
        if fd > highest_before {
            break;
        }
    }
    let spares: Vec<File> = (0..CLIENTS).map(|_| File::open("/dev/null").unwrap()).collect();
    let highest = spares.iter().map(AsRawFd::as_raw_fd).max().unwrap();
    let old_limit = set_descriptor_limit(libc::rlim_t::try_from(highest + 1).unwrap());
    assert!(File::open("/dev/null").is_err(), "out of descriptors now");

    // The clients connect (the kernel queues them in the backlog) and send their upgrade
    // requests; the server's accept fails for lack of descriptors.
    let request = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    for mut socket in &sockets {
        connect(socket, port);
        socket.write_all(request.as_bytes()).unwrap();
    }
    let mut events = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(300) {
        server.poll(&mut events);
        std::thread::sleep(Duration::from_millis(5));
    }
    let connected = |events: &Vec<ServerEvent>| events.iter().filter(|e| matches!(e, ServerEvent::ClientConnected { .. })).count();
    let episodes = |events: &Vec<ServerEvent>| events.iter().filter(|e| matches!(e, ServerEvent::OutOfDescriptors { .. })).count();
    assert_eq!(connected(&events), 0, "no descriptor, no connection: {events:?}");
    // Reported once (the retries every 50 ms meanwhile are the same episode), as an event and a
    // counter.
    assert_eq!(episodes(&events), 1, "the game was told once: {events:?}");
    assert_eq!(server.statistics().out_of_descriptors, 1);

    // Descriptors are free again; nothing new arrives, yet the waiting connections get in.
    drop(spares);
    let freed = Instant::now();
    while connected(&events) < CLIENTS && freed.elapsed() < common::LIMIT {
        server.poll(&mut events);
        std::thread::sleep(Duration::from_millis(1));
    }
    set_descriptor_limit(old_limit.rlim_cur);
    assert_eq!(connected(&events), CLIENTS, "every waiting connection was admitted: {events:?}");
    assert_eq!((episodes(&events), server.statistics().out_of_descriptors), (1, 1), "still one episode");
    println!("MEASURE admitted {CLIENTS} waiting connections {:?} after descriptors were freed", freed.elapsed());
    drop(fillers);
}
