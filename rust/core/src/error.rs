//! The one error type of the core. The binding maps each variant to a Godot `Error` in one place.
//! Texts name the core's own terms; what to call in GDScript is the binding's to add.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use crate::PeerId;

/// Everything that can go wrong in a call from the game, with the detail a user needs to fix it.
#[derive(Debug)]
pub enum Error {
    /// A setting is out of its allowed range.
    InvalidSetting {
        /// The setting, e.g. `inbound_buffer_size`.
        name: String,
        /// What is wrong, e.g. `must be greater than 0`.
        problem: String,
    },
    /// A handshake header is malformed (the text says which and why).
    InvalidHeader(String),
    /// A sub-protocol name is not an HTTP token (the text says which and why).
    InvalidSubProtocol(String),
    /// A port number outside 0-65535.
    InvalidPort(i64),
    /// A listening address that is not an IP address.
    InvalidBindAddress(String),
    /// A close code that may not be sent in a close frame (RFC 6455 section 7.4).
    InvalidCloseCode(i64),
    /// A close reason longer than the 123 bytes a close frame holds; its length.
    CloseReasonTooLong(usize),
    /// A text message whose data is not UTF-8.
    TextNotUtf8,
    /// A packet was asked for while none is waiting.
    NoPacket,
    /// Another argument is out of its allowed range or malformed (the text says which and why).
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
    /// No upgrade request of this id waits for the game's verdict (answered already, refused
    /// at `handshake_timeout`, or the client left).
    NoHandshake(PeerId),
    /// A message for several peers was not queued for some of them: each one, and why. The
    /// others got it.
    NotDelivered(Vec<(PeerId, Error)>),
    /// The URL given to `connect` cannot be used.
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The listening address and port are taken by another socket.
    AddressInUse(SocketAddr),
    /// The outbound queue of a peer is full; the packet was not queued.
    OutboundFull {
        /// The peer whose queue is full.
        peer: PeerId,
        /// Which limit was reached.
        limit: OutboundLimit,
    },
    /// The other side broke a protocol rule (the text says which).
    Protocol(String),
    /// A feature this build or mode does not support (the text says which).
    Unsupported(String),
    /// An operating-system level failure (socket, thread).
    Io(io::Error),
}

/// The outbound limit that refused a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboundLimit {
    /// `Limits::outbound_max_packets` messages are queued already.
    Packets {
        /// The limit.
        max: usize,
    },
    /// The message does not fit `Limits::outbound_buffer_size`.
    Bytes {
        /// The limit.
        max: usize,
        /// Bytes queued already.
        queued: usize,
        /// The size of the refused message.
        asked: usize,
    },
}

impl fmt::Display for OutboundLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutboundLimit::Packets { max } => write!(f, "outbound_max_packets = {max}"),
            OutboundLimit::Bytes { max, queued, asked } => {
                write!(f, "outbound_buffer_size = {max} bytes, {queued} queued, {asked} more asked")
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidSetting { name, problem } => write!(f, "{name} {problem}"),
            Error::InvalidHeader(what) | Error::InvalidSubProtocol(what) | Error::InvalidArgument(what) => {
                write!(f, "{what}")
            }
            Error::InvalidPort(port) => write!(f, "port {port} is out of range 0-65535"),
            Error::InvalidBindAddress(address) => write!(f, "bind address '{address}' is not an IP address"),
            Error::InvalidCloseCode(code) => {
                write!(f, "close code {code} cannot be sent: use 1000-1003, 1007-1011 or 3000-4999")
            }
            Error::CloseReasonTooLong(len) => {
                write!(f, "close reason is {len} bytes long; at most 123 fit in a close frame")
            }
            Error::TextNotUtf8 => write!(f, "a text message must be valid UTF-8"),
            Error::NoPacket => write!(f, "no packet is available"),
            Error::AlreadyListening => write!(f, "the server is already listening"),
            Error::AlreadyConnected => write!(f, "the client is already connecting or connected"),
            Error::NotActive => write!(f, "not listening or not connected"),
            Error::UnknownPeer(id) => write!(f, "no connected peer has id {id}"),
            Error::PeerNotOpen(id) => write!(f, "peer {id} is not open (connecting, closing or closed)"),
            Error::NoHandshake(id) => write!(
                f,
                "no upgrade request of peer {id} waits for an answer (answered already, refused at handshake_timeout, or the client left)"
            ),
            Error::NotDelivered(failures) => {
                write!(f, "not sent to {} of the peers (the others got it): ", failures.len())?;
                for (i, (id, err)) in failures.iter().enumerate() {
                    let separator = if i == 0 { "" } else { "; " };
                    match err {
                        // The text names the peer already.
                        Error::OutboundFull { .. } | Error::UnknownPeer(_) | Error::PeerNotOpen(_) => write!(f, "{separator}{err}")?,
                        _ => write!(f, "{separator}peer {id}: {err}")?,
                    }
                }
                Ok(())
            }
            Error::InvalidUrl { url, reason } => write!(f, "invalid URL '{url}': {reason}"),
            Error::AddressInUse(addr) => write!(f, "address {addr} is already in use"),
            Error::OutboundFull { peer, limit } => {
                write!(f, "outbound queue of peer {peer} is full ({limit}); the packet was not sent")
            }
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
