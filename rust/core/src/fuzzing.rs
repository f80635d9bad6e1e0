//! Entry points for `cargo fuzz` (the `fuzz/` folder; `cargo xtask fuzz`): untrusted bytes fed
//! to every parser the network reaches, over an in-memory stream, exactly as the reactor uses
//! them (tungstenite behind our UTF-8 guard, our handshake callback, the multiplayer id). Each
//! must return, never panic, whatever the bytes.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::sync::Arc;

use tungstenite::handshake::client::ClientHandshake;
use tungstenite::handshake::server::ServerHandshake;
use tungstenite::handshake::HandshakeError;
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::WebSocket;

use crate::peer::OpenInfo;
use crate::reactor::{tungstenite_config, AcceptCallback};
use crate::Limits;
use crate::utf8_guard::Utf8Guard;

/// Reads from fixed input (then "would block", like a drained socket); writes go nowhere.
struct Memory<'a> {
    input: &'a [u8],
}

impl Read for Memory<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        // Small reads, so frames arrive in pieces as on a real socket.
        let n = buf.len().min(self.input.len()).min(1 + usize::from(self.input[0] % 64));
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Ok(n)
    }
}

impl Write for Memory<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The reactor's tungstenite settings, with a 64 KiB message limit so that inputs can reach it.
fn config() -> WebSocketConfig {
    tungstenite_config(&Limits { max_message_size: 64 << 10, ..Limits::default() })
}

/// Reads messages until the input runs out or the connection fails.
fn drain<S: Read + Write>(ws: &mut WebSocket<S>) {
    for _ in 0..100_000 {
        match ws.read() {
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// `data` as what a client sends a server: the upgrade request, then frames.
pub fn server_handshake(data: &[u8]) {
    let callback = AcceptCallback {
        protocols: Arc::new(vec!["chat".into(), "game".into()]),
        extra_headers: Arc::new(vec![("X-Server".into(), "yes".into())]),
        allowed_origins: Arc::new(vec!["https://game.example".into()]),
        accepted: Rc::new(RefCell::new(OpenInfo::default())),
    };
    let mut attempt = ServerHandshake::start(Utf8Guard::new(Memory { input: data }), callback, Some(config())).handshake();
    for _ in 0..1000 {
        match attempt {
            Ok(mut ws) => return drain(&mut ws),
            Err(HandshakeError::Interrupted(mid)) => attempt = mid.handshake(),
            Err(HandshakeError::Failure(_)) => return,
        }
    }
}

/// `data` as what a server answers a client: the upgrade response, then frames.
pub fn client_handshake(data: &[u8]) {
    let Ok(request) = tungstenite::client::IntoClientRequest::into_client_request("ws://localhost/fuzz") else { return };
    let Ok(mid) = ClientHandshake::start(Utf8Guard::new(Memory { input: data }), request, Some(config())) else { return };
    let mut attempt = mid.handshake();
    for _ in 0..1000 {
        match attempt {
            Ok((mut ws, _)) => return drain(&mut ws),
            Err(HandshakeError::Interrupted(mid)) => attempt = mid.handshake(),
            Err(HandshakeError::Failure(_)) => return,
        }
    }
}

/// `data` as frames on an open connection; the first byte picks the side that receives them.
pub fn frames(data: &[u8]) {
    let Some((&side, rest)) = data.split_first() else { return };
    let role = if side % 2 == 0 { Role::Server } else { Role::Client };
    let mut ws = WebSocket::from_raw_socket(Utf8Guard::after_head(Memory { input: rest }), role, Some(config()));
    drain(&mut ws);
}

/// `data` as the server's first message to a multiplayer client.
pub fn multiplayer_id(data: &[u8]) {
    if let Ok(id) = crate::multiplayer::parse_id_message(data) {
        assert!(id >= 2, "an accepted id is never below 2");
        assert_eq!(crate::multiplayer::id_message(id).data.as_ref(), data);
    }
}

/// Valid inputs for the target named `target` (the fuzzer's starting corpus); empty for an
/// unknown name.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let request: &[u8] = b"GET /x HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: game\r\nOrigin: https://game.example\r\n\r\n\x81\x85\x01\x02\x03\x04iggmn";
    let seeds: Vec<&[u8]> = match target {
        "server_handshake" => vec![request, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"],
        "client_handshake" => vec![
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
        ],
        // Server side: masked text, masked fragments with a ping between, a close with a code;
        // client side: unmasked binary and a close.
        "frames" => vec![
            b"\x00\x81\x82\x00\x00\x00\x00hi\x88\x80\x00\x00\x00\x00",
            b"\x00\x01\x81\x01\x01\x01\x01h\x89\x80\x00\x00\x00\x00\x80\x81\x01\x01\x01\x01i\x88\x84\x00\x00\x00\x00\x03\xe8ok",
            b"\x01\x82\x02hi\x88\x02\x03\xe9",
        ],
        "multiplayer_id" => vec![&[5, 0, 0, 0], &[1]],
        _ => vec![],
    };
    seeds.into_iter().map(<[u8]>::to_vec).collect()
}

#[cfg(test)]
mod tests {
    /// Every fuzz entry point on its seeds.
    #[test]
    fn seeds_run() {
        for (target, run) in [
            ("server_handshake", super::server_handshake as fn(&[u8])),
            ("client_handshake", super::client_handshake),
            ("frames", super::frames),
            ("multiplayer_id", super::multiplayer_id),
        ] {
            let seeds = super::seeds(target);
            assert!(!seeds.is_empty(), "{target} has seeds");
            for seed in seeds {
                run(&seed);
            }
        }
    }
}
