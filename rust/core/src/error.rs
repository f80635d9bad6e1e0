//! The one error type of the core. The binding maps each variant to a Godot `Error` in one place.

use std::fmt;
use std::io;

use crate::PeerId;

/// Everything that can go wrong in a call from the game, with the detail a user needs to fix it.
#[derive(Debug)]
pub enum Error {
    /// An argument is out of its allowed range or malformed (the text says which and why).
    InvalidArgument(String),
    /// `listen` was called while the server is already listening.
    AlreadyListening,
    /// `connect` was called while the client is already connecting or connected.
    AlreadyConnected,
    /// The call needs a listening server or a connected client.
    NotActive,
    /// No connected peer has this id.
    UnknownPeer(PeerId),
    /// The peer is not open (still connecting, closing or closed), so nothing can be sent.
    PeerNotOpen(PeerId),
    /// The URL given to `connect` cannot be used.
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The listening address or port is taken by another socket.
    AddressInUse(String),
    /// The outbound queue of a peer is full; the packet was not queued.
    OutboundFull {
        /// The peer whose queue is full.
        peer: PeerId,
        /// Which limit was reached, e.g. `outbound_buffer_size = 65535 bytes`.
        limit: String,
    },
    /// The other side broke a protocol rule (the text says which).
    Protocol(String),
    /// A feature this build does not support yet (the text says which).
    Unsupported(String),
    /// An operating-system level failure (socket, thread).
    Io(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            Error::AlreadyListening => write!(f, "the server is already listening; call stop() first"),
            Error::AlreadyConnected => {
                write!(f, "the client is already connecting or connected; call disconnect_from_host() first")
            }
            Error::NotActive => write!(f, "not listening or not connected"),
            Error::UnknownPeer(id) => write!(f, "no connected peer has id {id}"),
            Error::PeerNotOpen(id) => write!(f, "peer {id} is not open (connecting, closing or closed)"),
            Error::InvalidUrl { url, reason } => write!(f, "invalid URL '{url}': {reason}"),
            Error::AddressInUse(addr) => write!(f, "address {addr} is already in use"),
            Error::OutboundFull { peer, limit } => write!(
                f,
                "outbound queue of peer {peer} is full ({limit}); the packet was not sent, poll() and try again"
            ),
            Error::Protocol(what) => write!(f, "protocol error: {what}"),
            Error::Unsupported(what) => write!(f, "not supported: {what}"),
            Error::Io(err) => write!(f, "I/O error: {err}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(err) => Some(err),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Self {
        Error::Io(err)
    }
}
