//! Engine-free core of godot-websocket-rs.
//!
//! [`Server`] and [`Client`] are driven from the game thread by `poll()`; each owns an I/O thread
//! (`reactor`) that only dispatches: socket readiness, game commands and timers go to the
//! `connection::Connection` of each peer, a state machine that does no I/O of its own and takes
//! time as an argument. Received packets, state and limits of one connection, as the game sees
//! them, live in a [`PeerHandle`]. Nothing here knows Godot: the `websocket_rs` crate only
//! converts types and emits signals.

mod client;
mod command;
mod config;
mod connect;
mod connection;
mod deflate;
mod error;
mod flow;
#[doc(hidden)]
pub mod fuzzing;
/// Fuzz entry points of permessage-deflate (inflating, extension negotiation).
#[doc(hidden)]
pub use deflate::fuzzing as fuzzing_deflate;
mod listener;
mod memory;
pub mod multiplayer;
mod packet;
mod peer;
mod proxy;
mod reactor;
mod reconnect;
mod server;
pub mod stats;
mod tls;

pub use client::{Client, ClientEvent};
pub use config::{parse_header_lines, ConnectionConfig, Limits};
pub use deflate::{DeflateConfig, DeflateParams};
pub use error::{Error, OutboundLimit};
pub use packet::Packet;
pub use peer::{PeerHandle, ReadyState};
pub use connection::HandshakeRequest;
pub use proxy::TrustedProxies;
pub use reconnect::ReconnectPolicy;
pub use server::{Recipients, Server, ServerEvent};
pub use stats::{PeerStatistics, ProcessTotals, QueueTotals, Refusal, Report, ReportLimiter, ServerStatistics, TrafficTotals};
pub use tls::{TlsClientSettings, TlsServerSettings, BACKEND as TLS_BACKEND};
pub use tungstenite::Bytes;

/// A peer's id: 1 is the server, other peers get random ids in 2..2^31 (as Godot's multiplayer
/// peers do).
pub type PeerId = i32;

/// The id under which a client sees the server.
pub const SERVER_PEER_ID: PeerId = 1;
