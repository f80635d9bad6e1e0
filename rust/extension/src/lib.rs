//! Godot binding of godot-websocket-rs: registers `WebSocketServer`, `WebSocketClient` and
//! `WebSocketConnection`. Every class only converts types and emits signals; the protocol, the
//! sockets and the queues live in `websocket_rs_core`.

use godot::prelude::*;

mod client;
mod connection;
mod errors;
mod multiplayer_peer;
mod server;
mod settings;
mod statistics;
mod tls;

/// Packets are allocated on the I/O thread and freed on the game thread (and the reverse for
/// sends); mimalloc frees across threads without the arena lock glibc's malloc takes, which
/// `cargo xtask bench` showed as futex wake-ups on the game thread.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct WebSocketRsExtension;

#[gdextension]
unsafe impl ExtensionLibrary for WebSocketRsExtension {}
