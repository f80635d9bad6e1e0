//! Godot binding of godot-websocket-rs: registers `WebSocketServer`, `WebSocketClient` and
//! `WebSocketConnection`. Every class only converts types and emits signals; the protocol, the
//! sockets and the queues live in `websocket_rs_core`.

use godot::prelude::*;

mod client;
mod connection;
mod errors;
mod server;
mod settings;
mod tls;

struct WebSocketRsExtension;

#[gdextension]
unsafe impl ExtensionLibrary for WebSocketRsExtension {}
