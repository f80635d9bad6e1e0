//! The server as the game thread sees it: listen, poll for events, look up peers.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use crate::peer::PeerHandle;
use crate::reactor::{Command, ReactorEvent, ReactorHandle, Start};
use crate::{ConnectionConfig, Error, PeerId};

/// Something that happened on the server since the last `poll()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerEvent {
    /// A client finished its handshake.
    ClientConnected {
        /// Its new id.
        id: PeerId,
        /// The agreed sub-protocol ("" when none).
        protocol: String,
        /// The path and query it asked for.
        resource_name: String,
    },
    /// A packet from this client is waiting in its queue.
    DataReceived {
        /// The client.
        id: PeerId,
    },
    /// The client sent a close frame; keep polling until `ClientDisconnected`.
    CloseRequested {
        /// The client.
        id: PeerId,
        /// Its close code.
        code: i32,
        /// Its close reason.
        reason: String,
    },
    /// The client is gone.
    ClientDisconnected {
        /// The client.
        id: PeerId,
        /// Whether the close handshake completed.
        was_clean: bool,
        /// Why the server dropped it, when the client broke the protocol, a limit or the heartbeat.
        error: Option<String>,
    },
    /// A connection was dropped before it became a peer (bad handshake or timeout).
    HandshakeFailed {
        /// Where it came from.
        remote: SocketAddr,
        /// Why it was dropped.
        reason: String,
    },
}

/// A WebSocket server: one listening socket and its connected peers.
#[derive(Debug, Default)]
pub struct Server {
    reactor: Option<ReactorHandle>,
    local_addr: Option<SocketAddr>,
    config: ConnectionConfig,
    peers: HashMap<PeerId, PeerHandle>,
    refuse_new: bool,
}

impl Server {
    /// A server that is not listening yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts listening on `bind_ip` (`"*"` for every interface) and `port` (0 picks a free one).
    /// Returns the address actually bound.
    pub fn listen(&mut self, bind_ip: &str, port: i64, config: ConnectionConfig) -> Result<SocketAddr, Error> {
        if self.reactor.is_some() {
            return Err(Error::AlreadyListening);
        }
        let port = u16::try_from(port)
            .map_err(|_| Error::InvalidArgument(format!("port {port} is out of range 0-65535")))?;
        config.validate()?;
        let ip: IpAddr = match bind_ip {
            "*" | "" => IpAddr::from([0u8; 16]),
            other => other.parse().map_err(|_| {
                Error::InvalidArgument(format!("bind address '{other}' is not an IP address or \"*\""))
            })?,
        };
        let addr = SocketAddr::new(ip, port);
        let listener = bind_dual_stack(addr).map_err(|err| match err.kind() {
            std::io::ErrorKind::AddrInUse => Error::AddressInUse(addr.to_string()),
            _ => Error::Io(err),
        })?;
        let local_addr = listener.local_addr()?;
        let reactor = ReactorHandle::spawn(Start::Listen(listener), config.clone())?;
        if self.refuse_new {
            reactor.commands.send(Command::SetRefuseNew(true));
        }
        self.reactor = Some(reactor);
        self.local_addr = Some(local_addr);
        self.config = config;
        Ok(local_addr)
    }

    /// Stops listening and closes every connection (open peers get a 1001 close frame).
    pub fn stop(&mut self) {
        if let Some(mut reactor) = self.reactor.take() {
            reactor.shutdown();
        }
        for peer in self.peers.values() {
            peer.mark_closed(false, -1, "");
        }
        self.peers.clear();
        self.local_addr = None;
    }

    /// Whether `listen` succeeded and `stop` has not been called since.
    pub fn is_listening(&self) -> bool {
        self.reactor.is_some()
    }

    /// The bound address while listening.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Whether new connections are turned away (at TCP accept).
    pub fn set_refuse_new_connections(&mut self, refuse: bool) {
        self.refuse_new = refuse;
        if let Some(reactor) = &self.reactor {
            reactor.commands.send(Command::SetRefuseNew(refuse));
        }
    }

    /// See [`Server::set_refuse_new_connections`].
    pub fn is_refusing_new_connections(&self) -> bool {
        self.refuse_new
    }

    /// Takes in what the I/O thread did since the last call and appends the events to `out`.
    /// Costs in proportion to what happened, not to how many peers are connected.
    pub fn poll(&mut self, out: &mut Vec<ServerEvent>) {
        let Some(reactor) = &self.reactor else { return };
        while let Ok(event) = reactor.events.try_recv() {
            match event {
                ReactorEvent::Opened { id, shared, info } => {
                    let peer = PeerHandle::new(id, shared, reactor.commands.clone(), &self.config, String::new());
                    let (protocol, resource_name) = (info.protocol.clone(), info.resource_name.clone());
                    peer.mark_open(info);
                    self.peers.insert(id, peer);
                    out.push(ServerEvent::ClientConnected { id, protocol, resource_name });
                }
                ReactorEvent::Packet { id, packet } => {
                    if let Some(peer) = self.peers.get(&id) {
                        peer.push_inbound(packet);
                        out.push(ServerEvent::DataReceived { id });
                    }
                }
                ReactorEvent::CloseRequested { id, code, reason } => {
                    if let Some(peer) = self.peers.get(&id) {
                        peer.mark_close_requested(code, &reason);
                        out.push(ServerEvent::CloseRequested { id, code, reason });
                    }
                }
                ReactorEvent::Closed { id, clean, code, reason, error } => {
                    if let Some(peer) = self.peers.remove(&id) {
                        peer.mark_closed(clean, code, &reason);
                        out.push(ServerEvent::ClientDisconnected { id, was_clean: clean, error });
                    }
                }
                ReactorEvent::HandshakeFailed { remote, reason } => {
                    out.push(ServerEvent::HandshakeFailed { remote, reason });
                }
                // Only clients connect out.
                ReactorEvent::ConnectFailed { .. } => {}
            }
        }
    }

    /// The connected peer with this id.
    pub fn peer(&self, id: PeerId) -> Result<&PeerHandle, Error> {
        if self.reactor.is_none() {
            return Err(Error::NotActive);
        }
        self.peers.get(&id).ok_or(Error::UnknownPeer(id))
    }

    /// Whether a peer with this id is connected.
    pub fn has_peer(&self, id: PeerId) -> bool {
        self.peers.contains_key(&id)
    }

    /// Ids of every connected peer.
    pub fn peer_ids(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.peers.keys().copied()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds a listener; on the IPv6 wildcard it also accepts IPv4 (falls back to IPv4 only where the
/// system has no IPv6).
fn bind_dual_stack(addr: SocketAddr) -> std::io::Result<mio::net::TcpListener> {
    match mio::net::TcpListener::bind(addr) {
        Err(err) if addr.ip().is_unspecified() && addr.is_ipv6() && err.kind() != std::io::ErrorKind::AddrInUse => {
            mio::net::TcpListener::bind(SocketAddr::new(IpAddr::from([0u8; 4]), addr.port()))
        }
        other => other,
    }
}
