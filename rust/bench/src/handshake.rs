//! The load generator's client handshake: a fixed upgrade request over a blocking socket, then
//! the socket is handed to a non-blocking tungstenite `WebSocket`. (tungstenite's own client
//! handshake would do too; this one keeps the bytes that follow the response, such as a
//! multiplayer server's id message, without a second copy of the socket.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Connection attempts that failed and were tried again (see [`connect`]).
pub(crate) static RETRIES: AtomicU64 = AtomicU64::new(0);

/// [`connect_once`], tried up to 30 times: a server that admits few connections per frame
/// (Godot's `WebSocketMultiplayerPeer` takes one per `poll()`) overflows the kernel's accept
/// queue, and the connections it drops are reset. Each retry is counted in [`RETRIES`].
pub(crate) fn connect(port: u16) -> Result<(TcpStream, Vec<u8>), String> {
    let mut attempt = 0u64;
    loop {
        match connect_once(port) {
            Ok(connection) => return Ok(connection),
            Err(err) if attempt < 30 => {
                let _ = err;
                attempt += 1;
                RETRIES.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20 * attempt));
            }
            Err(err) => return Err(err),
        }
    }
}

/// Opens a connection to 127.0.0.1:`port` and completes the upgrade. Returns the socket and the
/// bytes read after the response head (the start of the first frames).
pub(crate) fn connect_once(port: u16) -> Result<(TcpStream, Vec<u8>), String> {
    let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("cannot connect to port {port}: {e}"))?;
    upgrade(stream, port)
}

/// Completes the upgrade on a connected socket (to the server on `port`). Returns the socket and
/// the bytes read after the response head (the start of the first frames).
pub(crate) fn upgrade(mut stream: TcpStream, port: u16) -> Result<(TcpStream, Vec<u8>), String> {
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| e.to_string())?;
    let request = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(|e| format!("sending the upgrade request: {e}"))?;
    let mut received = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let head_end = loop {
        let n = stream.read(&mut buf).map_err(|e| format!("reading the upgrade response: {e}"))?;
        if n == 0 {
            return Err("the server closed the connection during the handshake".into());
        }
        received.extend_from_slice(&buf[..n]);
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if received.len() > 16 << 10 {
            return Err("the upgrade response is too long".into());
        }
    };
    if !received.starts_with(b"HTTP/1.1 101") {
        let line = String::from_utf8_lossy(&received[..head_end]).lines().next().unwrap_or_default().to_string();
        return Err(format!("the server refused the upgrade: {line}"));
    }
    stream.set_read_timeout(None).map_err(|e| e.to_string())?;
    Ok((stream, received.split_off(head_end)))
}

/// Opens `count` connections using up to `threads` threads at once, in order.
pub(crate) fn connect_many(port: u16, count: usize, threads: usize) -> Result<Vec<(TcpStream, Vec<u8>)>, String> {
    let threads = threads.clamp(1, count.max(1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                (t..count).step_by(threads).map(|_| connect(port)).collect::<Result<Vec<_>, String>>()
            })
        })
        .collect();
    let mut per_thread = Vec::new();
    for handle in handles {
        per_thread.push(handle.join().map_err(|_| "a connecting thread panicked".to_string())??);
    }
    let mut all = Vec::with_capacity(count);
    let mut iters: Vec<_> = per_thread.into_iter().map(Vec::into_iter).collect();
    'outer: loop {
        for it in &mut iters {
            match it.next() {
                Some(c) => all.push(c),
                None => break 'outer,
            }
        }
    }
    for it in iters {
        all.extend(it);
    }
    Ok(all)
}
