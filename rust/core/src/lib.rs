//! Engine-free core of godot-websocket-rs.
//!
//! [`Server`] and [`Client`] are driven from the game thread by `poll()`; each owns an I/O thread
//! (see `reactor`) that does every socket operation. Received packets, state and limits of one
//! connection live in a [`PeerHandle`]. Nothing here knows Godot: the `websocket_rs` crate only
//! converts types and emits signals.

mod client;
mod config;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod multiplayer;
mod peer;
mod reactor;
mod server;
mod tls;
mod utf8_guard;

pub use client::{Client, ClientEvent};
pub use config::{parse_header_lines, ConnectionConfig, Limits};
pub use error::Error;
pub use peer::{Packet, PeerHandle, ReadyState};
pub use server::{Server, ServerEvent};
pub use tls::{TlsClientSettings, TlsServerSettings, BACKEND as TLS_BACKEND};
pub use tungstenite::Bytes;

/// A peer's id: 1 is the server, other peers get random ids in 2..2^31 (as Godot's multiplayer
/// peers do).
pub type PeerId = i32;

/// The id under which a client sees the server.
pub const SERVER_PEER_ID: PeerId = 1;
