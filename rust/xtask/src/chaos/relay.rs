//! A delaying TCP relay, for kernels without netem: it accepts on one address and forwards each
//! connection to a target, holding every chunk of bytes, in each direction, for a delay plus a
//! random jitter before writing it on. A chunk is never written before the one that came before
//! it (a release time earlier than the previous one is moved up to it), so the bytes stay in order.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Chunks read at once (bytes).
const CHUNK: usize = 16 << 10;
/// Chunks held per direction before the relay stops reading (TCP back-pressure beyond 1 MiB).
const HELD_CHUNKS: usize = 64;

/// A chunk of bytes and when it may be written on.
type Held = (Instant, Vec<u8>);

/// A running relay; dropping it stops accepting (connections already relayed end with their
/// sockets).
pub(super) struct DelayRelay {
    /// Where it accepts.
    pub(super) addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl DelayRelay {
    /// Starts relaying connections made to `listen` (port 0: any free port) to `target`, each
    /// direction delayed by `delay` ± `jitter` (uniform). The listening socket is made by the
    /// calling thread, so it lives in that thread's network namespace; so do the relay's threads.
    pub(super) fn start(listen: SocketAddr, target: SocketAddr, delay: Duration, jitter: Duration) -> Result<DelayRelay, String> {
        let listener = TcpListener::bind(listen).map_err(|e| format!("relay: cannot listen on {listen}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| format!("relay: {e}"))?;
        listener.set_nonblocking(true).map_err(|e| format!("relay: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let acceptor = std::thread::spawn(move || {
            let mut seed = 0x5EED_u64;
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
                        if let Err(err) = relay_connection(client, target, delay, jitter, seed) {
                            eprintln!("relay: {err}");
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(5)),
                    Err(e) => {
                        eprintln!("relay: accept failed: {e}");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        });
        Ok(DelayRelay { addr, stop, acceptor: Some(acceptor) })
    }
}

impl Drop for DelayRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Connects to `target` and starts the two delaying pipes between it and `client`.
fn relay_connection(client: TcpStream, target: SocketAddr, delay: Duration, jitter: Duration, seed: u64) -> Result<(), String> {
    client.set_nonblocking(false).map_err(|e| e.to_string())?;
    let server = TcpStream::connect(target).map_err(|e| format!("cannot connect to {target}: {e}"))?;
    for socket in [&client, &server] {
        socket.set_nodelay(true).map_err(|e| e.to_string())?;
    }
    let (client2, server2) = (client.try_clone().map_err(|e| e.to_string())?, server.try_clone().map_err(|e| e.to_string())?);
    pipe(client, server, delay, jitter, seed);
    pipe(server2, client2, delay, jitter, seed ^ 0xD1B5_4A32_D192_ED03);
    Ok(())
}

/// Forwards `from` to `to` through a reader thread and a writer thread: the reader stamps each
/// chunk with its release time, the writer waits for it and writes.
fn pipe(from: TcpStream, to: TcpStream, delay: Duration, jitter: Duration, seed: u64) {
    let (chunks, held): (SyncSender<Held>, Receiver<Held>) = sync_channel(HELD_CHUNKS);
    std::thread::spawn(move || {
        let mut from = from;
        let mut random = seed | 1;
        let mut last_release = Instant::now();
        loop {
            let mut buffer = vec![0u8; CHUNK];
            match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buffer.truncate(n);
                    let release = (Instant::now() + jittered(delay, jitter, &mut random)).max(last_release);
                    last_release = release;
                    if chunks.send((release, buffer)).is_err() {
                        break;
                    }
                }
            }
        }
        // The writer shuts the other socket's writing half once everything held is out.
        drop(chunks);
    });
    std::thread::spawn(move || {
        let mut to = to;
        for (release, chunk) in held {
            let now = Instant::now();
            if release > now {
                std::thread::sleep(release - now);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// `delay` plus a uniform jitter in `[-jitter, +jitter]` (xorshift64 state in `random`).
fn jittered(delay: Duration, jitter: Duration, random: &mut u64) -> Duration {
    *random ^= *random << 13;
    *random ^= *random >> 7;
    *random ^= *random << 17;
    let unit = (*random >> 11) as f64 / (1u64 << 53) as f64;
    let offset = jitter.as_secs_f64() * (2.0 * unit - 1.0);
    Duration::from_secs_f64((delay.as_secs_f64() + offset).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_its_bounds() {
        let mut random = 7;
        for _ in 0..10_000 {
            let d = jittered(Duration::from_millis(100), Duration::from_millis(20), &mut random);
            assert!(d >= Duration::from_millis(80) && d <= Duration::from_millis(120), "{d:?}");
        }
    }

    #[test]
    fn bytes_arrive_delayed_complete_and_in_order() {
        let target = TcpListener::bind("127.0.0.1:0").unwrap();
        let target_addr = target.local_addr().unwrap();
        let relay =
            DelayRelay::start("127.0.0.1:0".parse().unwrap(), target_addr, Duration::from_millis(50), Duration::from_millis(10)).unwrap();
        let mut client = TcpStream::connect(relay.addr).unwrap();
        let (mut server, _) = target.accept().unwrap();
        let sent: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let start = Instant::now();
        let writer = {
            let sent = sent.clone();
            std::thread::spawn(move || {
                client.write_all(&sent).unwrap();
                client.shutdown(Shutdown::Write).unwrap();
                client
            })
        };
        let mut got = Vec::new();
        server.read_to_end(&mut got).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(40), "delayed by at least delay - jitter");
        assert_eq!(got, sent, "complete and in order");
        drop(writer.join().unwrap());
    }
}
