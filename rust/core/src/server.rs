//! The server as the game thread sees it: listen, poll for events, look up peers.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::command::{Command, PeerCommand};
use crate::config::validate_header;
use crate::connection::{Ending, HandshakeRequest, HANDSHAKE_HEADERS};
use crate::multiplayer;
use crate::packet::Packet;
use crate::peer::{PeerHandle, ReadyState};
use crate::reactor::{ReactorEvent, ReactorHandle, Start};
use crate::stats::{EndpointStatistics, ServerStatistics};
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
    /// A packet from this client is waiting in its queue (raw mode only; in multiplayer mode
    /// packets are taken in arrival order with [`Server::take_packet`]).
    DataReceived {
        /// The client.
        id: PeerId,
    },
    /// The client sent a close frame; keep polling until `ClientDisconnected`.
    CloseRequested {
        /// The client.
        id: PeerId,
        /// Its close code.
        code: u16,
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
    /// An upgrade request waits for [`Server::accept_handshake`] or [`Server::reject_handshake`]
    /// ([`ConnectionConfig::verify_handshakes`]).
    HandshakeRequested {
        /// The id the client gets if accepted.
        id: PeerId,
        /// What it asked for, its headers and its address.
        request: HandshakeRequest,
    },
    /// Draining ([`Server::drain`]): the last peer has left.
    Drained,
    /// A connection was dropped before it became a peer (bad handshake or timeout).
    HandshakeFailed {
        /// Where it came from.
        remote: SocketAddr,
        /// Why it was dropped.
        reason: String,
    },
    /// Accepting stopped because the process has no file descriptor left (or the kernel no
    /// memory). New connections wait in the listen backlog (beyond it, the kernel drops their
    /// connection attempts, which clients retry) and are admitted as descriptors free up: at once when one of the server's connections
    /// closes, else on a retry 50 ms later. Reported once per episode, which lasts until the
    /// backlog is empty again; counted in [`crate::ServerStatistics::out_of_descriptors`].
    OutOfDescriptors {
        /// What the system said, and what happens to the waiting connections.
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
    /// Multiplayer mode: which peer each waiting packet came from, in arrival order.
    packet_order: VecDeque<(PeerId, PeerHandle)>,
    /// Multiplayer mode: peers that are gone but still have packets waiting; their
    /// `ClientDisconnected` is reported once those packets have been taken.
    deferred_disconnects: Vec<(PeerHandle, ServerEvent)>,
    /// Peers whose disconnect the last `poll` reported: the game may still address them while it
    /// handles the events of that poll.
    just_disconnected: Vec<PeerId>,
    /// Peers that broke the protocol after the packets of the last `poll`; they are closed at the
    /// start of the next one, once the game has answered those packets.
    failing: Vec<PeerId>,
    /// Raw mode: peers that got packets since `take_all_packets` last ran (each named once; some
    /// may have been emptied or gone since).
    receiving: Vec<PeerHandle>,
    /// Upgrade requests waiting for the game's verdict (`verify_handshakes`).
    held_handshakes: HashSet<PeerId>,
    /// Set by [`Server::drain`].
    drain: Option<Drain>,
    /// The totals of the last `listen` (kept after `stop`), and their rates.
    stats: Option<EndpointStatistics>,
}

/// Where a drain is.
#[derive(Debug)]
struct Drain {
    /// When the open peers get their 1001 close frame.
    close_at: Instant,
    /// Whether `Drained` was reported.
    reported: bool,
}

/// Which peers a message for several goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recipients<'a> {
    /// Every open peer.
    All,
    /// Every open peer but these.
    AllBut(&'a [PeerId]),
    /// These peers (each must be open).
    Only(&'a [PeerId]),
}

impl Server {
    /// A server that is not listening yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts listening on `addr` (port 0 picks a free one; the IPv6 wildcard `[::]` takes IPv4
    /// too, and falls back to IPv4 only where the system has no IPv6). Returns the address
    /// actually bound.
    pub fn listen(&mut self, addr: SocketAddr, config: ConnectionConfig) -> Result<SocketAddr, Error> {
        if self.reactor.is_some() {
            return Err(Error::AlreadyListening);
        }
        config.validate()?;
        let listener = bind_dual_stack(addr).map_err(|err| match err.kind() {
            std::io::ErrorKind::AddrInUse => Error::AddressInUse(addr),
            _ => Error::Io(err),
        })?;
        let local_addr = listener.local_addr()?;
        let tls = config.tls_server.as_ref().map(crate::tls::server).transpose()?;
        let reactor = ReactorHandle::spawn(Start::Listen { listener, tls }, &config)?;
        self.stats = Some(EndpointStatistics::new(reactor.counters.clone()));
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
            peer.mark_closed(&Ending::Lost);
        }
        self.peers.clear();
        self.packet_order.clear();
        self.deferred_disconnects.clear();
        self.receiving.clear();
        self.held_handshakes.clear();
        self.drain = None;
        self.local_addr = None;
        if let Some(stats) = &mut self.stats {
            stats.retire();
        }
    }

    /// The server's statistics now: connections open, handshaking, accepted and refused by
    /// reason, traffic totals since `listen` and their rates per second, the peers' mean
    /// round-trip time and queued messages. All zero before the first `listen`; after `stop`,
    /// the totals of the last run. Costs in proportion to the open peers (for the queues).
    pub fn statistics(&mut self) -> ServerStatistics {
        let mut out = ServerStatistics::default();
        if let Some(stats) = &mut self.stats {
            stats.read_into(&mut out, Instant::now());
        }
        out.open = self.peers.len() as u64;
        for peer in self.peers.values() {
            out.queued.add(&peer.statistics().queued);
        }
        out
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
    /// Without an I/O thread ([`ConnectionConfig::io_thread`] off): writes what the game has sent
    /// since the last `poll()` now rather than at the next one (nothing is read). The Godot
    /// binding calls it at the end of its `poll()` (after the signals) and when the game has taken
    /// every waiting multiplayer packet, so that answers leave in the same frame. Does nothing
    /// with an I/O thread.
    pub fn write_queued(&self) {
        if let Some(reactor) = &self.reactor {
            reactor.write_queued();
        }
    }


    /// Takes in what the I/O thread did since the last call (or, without one, serves the sockets
    /// now) and appends the events to `out`. Costs in proportion to what happened, not to how
    /// many peers are connected.
    pub fn poll(&mut self, out: &mut Vec<ServerEvent>) {
        if let (Some(stats), Some(_)) = (&mut self.stats, &self.reactor) {
            stats.publish_if_due(|| summarize(&self.peers));
        }
        let Some(reactor) = &mut self.reactor else { return };
        let multiplayer = self.config.multiplayer;
        self.just_disconnected.clear();
        for id in self.failing.drain(..) {
            reactor.commands.to_peer(id, PeerCommand::Fail);
        }
        reactor.serve_inline();
        // Disconnects held back until their peers' last packets were taken (multiplayer mode).
        if !self.deferred_disconnects.is_empty() {
            let (ready, waiting): (Vec<_>, Vec<_>) =
                std::mem::take(&mut self.deferred_disconnects).into_iter().partition(|(peer, _)| peer.available_packets() == 0);
            self.deferred_disconnects = waiting;
            self.just_disconnected.extend(ready.iter().map(|(peer, _)| peer.id()));
            out.extend(ready.into_iter().map(|(_, event)| event));
        }
        while let Ok(event) = reactor.events.try_recv() {
            match event {
                ReactorEvent::Opened { id, flow, info } => {
                    self.held_handshakes.remove(&id);
                    let peer = PeerHandle::new(id, flow, reactor.commands.clone(), &self.config, String::new());
                    let (protocol, resource_name) = (info.protocol.clone(), info.resource_name.clone());
                    peer.mark_open(info);
                    if multiplayer {
                        // The first message a multiplayer client gets is its id; the queue is
                        // empty, so it always fits.
                        if let Err(err) = peer.send(multiplayer::id_message(id)) {
                            peer.abort();
                            out.push(ServerEvent::HandshakeFailed {
                                remote: peer.remote_addr().unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
                                reason: format!("could not send the multiplayer id: {err}"),
                            });
                            continue;
                        }
                    }
                    self.peers.insert(id, peer);
                    out.push(ServerEvent::ClientConnected { id, protocol, resource_name });
                }
                ReactorEvent::Packet { id, packet } => {
                    if let Some(peer) = self.peers.get(&id) {
                        peer.push_inbound(packet);
                        if multiplayer {
                            self.packet_order.push_back((id, peer.clone()));
                        } else {
                            if peer.list_as_receiving() {
                                self.receiving.push(peer.clone());
                            }
                            out.push(ServerEvent::DataReceived { id });
                        }
                    }
                }
                ReactorEvent::CloseRequested { id, code, reason } => {
                    if let Some(peer) = self.peers.get(&id) {
                        peer.mark_close_requested(code, &reason);
                        out.push(ServerEvent::CloseRequested { id, code, reason });
                    }
                }
                ReactorEvent::Closed { id, ending } => {
                    if let Some(peer) = self.peers.remove(&id) {
                        peer.mark_closed(&ending);
                        let event = ServerEvent::ClientDisconnected {
                            id,
                            was_clean: matches!(ending, Ending::Clean { .. }),
                            error: match ending {
                                Ending::Failed { error } => Some(error),
                                Ending::Clean { .. } | Ending::Lost => None,
                            },
                        };
                        if multiplayer && peer.available_packets() > 0 {
                            self.deferred_disconnects.push((peer, event));
                        } else {
                            self.just_disconnected.push(id);
                            out.push(event);
                        }
                    }
                }
                ReactorEvent::HandshakeRequested { id, request } => {
                    self.held_handshakes.insert(id);
                    out.push(ServerEvent::HandshakeRequested { id, request });
                }
                ReactorEvent::HandshakeFailed { id, remote, reason } => {
                    if let Some(id) = id {
                        self.held_handshakes.remove(&id);
                    }
                    out.push(ServerEvent::HandshakeFailed { remote, reason });
                }
                ReactorEvent::OutOfDescriptors { reason } => out.push(ServerEvent::OutOfDescriptors { reason }),
                ReactorEvent::Failing { id } => self.failing.push(id),
                // Only clients connect out.
                ReactorEvent::ConnectFailed { .. } => {}
            }
        }
        self.advance_drain(out);
    }

    /// Draining: closes the open peers with 1001 once the grace period is over, and reports
    /// `Drained` once none is left (nor a held handshake, nor a disconnect still to report).
    fn advance_drain(&mut self, out: &mut Vec<ServerEvent>) {
        let Some(drain) = &mut self.drain else { return };
        if Instant::now() >= drain.close_at {
            for peer in self.peers.values().filter(|peer| peer.ready_state() == ReadyState::Open) {
                let _ = peer.close(1001, "going away");
            }
        }
        if !drain.reported && self.peers.is_empty() && self.held_handshakes.is_empty() && self.deferred_disconnects.is_empty() {
            drain.reported = true;
            out.push(ServerEvent::Drained);
        }
    }

    /// Starts draining: new upgrades (and the health check) are answered with HTTP 503 from
    /// now on; after `grace` every open peer is closed with 1001 "going away"; `poll` reports
    /// [`ServerEvent::Drained`] once the last peer has left. The server keeps listening (for
    /// the 503 answers) until [`Server::stop`]. Calling it again can only shorten the grace.
    pub fn drain(&mut self, grace: Duration) -> Result<(), Error> {
        let Some(reactor) = &self.reactor else { return Err(Error::NotActive) };
        let close_at = Instant::now().checked_add(grace).ok_or_else(|| Error::InvalidArgument(format!("grace period {grace:?} is too long")))?;
        match &mut self.drain {
            Some(drain) => drain.close_at = drain.close_at.min(close_at),
            None => {
                reactor.commands.send(Command::Drain);
                self.drain = Some(Drain { close_at, reported: false });
            }
        }
        Ok(())
    }

    /// Whether [`Server::drain`] was called since the server started listening.
    pub fn is_draining(&self) -> bool {
        self.drain.is_some()
    }

    /// New connections use this key and certificate; open ones keep theirs. Only for a server
    /// that listens with TLS. Fails, changing nothing, when the key and certificate do not load.
    pub fn reload_tls(&mut self, settings: crate::TlsServerSettings) -> Result<(), Error> {
        let Some(reactor) = &self.reactor else { return Err(Error::NotActive) };
        if self.config.tls_server.is_none() {
            return Err(Error::Unsupported("reloading TLS on a server that listens for plain ws:// (listen with a key and certificate)".into()));
        }
        let tls = crate::tls::server(&settings)?;
        reactor.commands.send(Command::ReloadTls(tls));
        self.config.tls_server = Some(settings);
        Ok(())
    }

    /// Accepts the held upgrade request of `id` ([`ServerEvent::HandshakeRequested`]); `headers`
    /// (`(name, value)`) join the 101 answer. The client becomes a peer at a later `poll`
    /// ([`ServerEvent::ClientConnected`]).
    pub fn accept_handshake(&mut self, id: PeerId, headers: Vec<(String, String)>) -> Result<(), Error> {
        for (name, value) in &headers {
            validate_header(name, value)?;
            if HANDSHAKE_HEADERS.iter().any(|own| own.eq_ignore_ascii_case(name)) {
                return Err(Error::InvalidHeader(format!("header '{name}' belongs to the handshake and is set by the server")));
            }
        }
        self.answer_handshake(id, PeerCommand::AcceptHandshake { headers })
    }

    /// Refuses the held upgrade request of `id` with the HTTP `status` (400-599) and `body`
    /// (plain text), then closes the connection.
    pub fn reject_handshake(&mut self, id: PeerId, status: u16, body: String) -> Result<(), Error> {
        if !(400..=599).contains(&status) {
            return Err(Error::InvalidArgument(format!("HTTP status {status} does not refuse: use 400-599")));
        }
        self.answer_handshake(id, PeerCommand::RejectHandshake { status, body })
    }

    fn answer_handshake(&mut self, id: PeerId, command: PeerCommand) -> Result<(), Error> {
        let Some(reactor) = &self.reactor else { return Err(Error::NotActive) };
        if !self.held_handshakes.remove(&id) {
            return Err(Error::NoHandshake(id));
        }
        reactor.commands.to_peer(id, command);
        Ok(())
    }

    /// Ids of the upgrade requests waiting for the game's verdict.
    pub fn held_handshakes(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.held_handshakes.iter().copied()
    }

    /// Drops a peer at once, without a close handshake and without a `ClientDisconnected` event
    /// (MultiplayerPeer's `disconnect_peer(id, force = true)`). Its waiting packets go with it.
    pub fn drop_peer(&mut self, id: PeerId) -> Result<(), Error> {
        let peer = self.peer(id)?.clone();
        peer.abort();
        peer.mark_closed(&Ending::Lost);
        self.peers.remove(&id);
        self.packet_order.retain(|(from, _)| *from != id);
        Ok(())
    }

    /// Multiplayer mode: packets waiting, from every peer.
    pub fn queued_packets(&self) -> usize {
        self.packet_order.len()
    }

    /// Multiplayer mode: the peer the next packet came from.
    pub fn next_packet_peer(&self) -> Option<PeerId> {
        self.packet_order.front().map(|(id, _)| *id)
    }

    /// Multiplayer mode: takes the oldest packet of any peer, with the peer it came from.
    pub fn take_packet(&mut self) -> Option<(PeerId, Packet)> {
        while let Some((id, peer)) = self.packet_order.pop_front() {
            if let Some(packet) = peer.recv() {
                return Some((id, packet));
            }
        }
        None
    }

    /// Multiplayer mode: queues `packet` for the peers MultiplayerPeer's `target` names (0: all,
    /// positive: that peer, negative: all but that one). Every reachable peer gets it; the first
    /// error (unknown peer, full queue, a named peer that is not open) is returned. A broadcast
    /// leaves out peers already closing: they can no longer take data, and their disconnect is
    /// reported next.
    pub fn send_to(&self, target: PeerId, packet: Packet) -> Result<(), Error> {
        if self.reactor.is_none() {
            return Err(Error::NotActive);
        }
        let broadcast = target <= 0;
        let mut first_error = None;
        for id in multiplayer::targets(target, self.peers.keys().copied()) {
            if self.just_disconnected.contains(&id) || self.deferred_disconnects.iter().any(|(peer, _)| peer.id() == id) {
                // Gone, and the game is told (now, or once it has taken the peer's last packets).
                continue;
            }
            if broadcast && self.peers.get(&id).is_some_and(|peer| peer.ready_state() != ReadyState::Open) {
                continue;
            }
            let result = self.peer(id).and_then(|peer| peer.send(packet.clone()));
            if let Err(err) = result {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Raw mode: takes every waiting packet of every peer into `out`, one entry per peer that had
    /// any (in the order their first packet arrived), oldest packet first. Costs in proportion to
    /// the peers that received something, not to the connected ones.
    pub fn take_all_packets(&mut self, out: &mut Vec<(PeerId, Vec<Packet>)>) -> Result<(), Error> {
        if self.reactor.is_none() {
            return Err(Error::NotActive);
        }
        if self.config.multiplayer {
            return Err(Error::Unsupported(
                "taking packets per peer in multiplayer mode (SceneMultiplayer takes them through get_packet)".into(),
            ));
        }
        for peer in self.receiving.drain(..) {
            peer.unlist_as_receiving();
            let mut packets = Vec::new();
            if peer.recv_all(&mut packets) > 0 {
                out.push((peer.id(), packets));
            }
        }
        Ok(())
    }

    /// Queues the same `packet` for `recipients`; the bytes are shared, not copied per peer, and
    /// compressed once for all peers that agreed on the same permessage-deflate setting without
    /// server context takeover (the default).
    /// A peer that cannot take it (full queue; with [`Recipients::Only`], also an unknown id or
    /// a peer that is not open) does not stop the others: every one that refused is named in
    /// [`Error::NotDelivered`]. Text that is not UTF-8 is refused before anything is queued.
    /// Without an I/O thread it is written at once, not at the next poll. Raw mode only: in
    /// multiplayer mode the peers read SceneMultiplayer's packets, which [`Server::send_to`] sends.
    pub fn broadcast(&self, recipients: Recipients<'_>, packet: Packet) -> Result<(), Error> {
        if self.reactor.is_none() {
            return Err(Error::NotActive);
        }
        if self.config.multiplayer {
            return Err(Error::Unsupported("raw broadcast in multiplayer mode (use put_packet with target_peer 0)".into()));
        }
        packet.check_text()?;
        let shared = crate::packet::SharedMessage::new(packet);
        let mut failures = Vec::new();
        let mut send = |id: PeerId, result: Result<(), Error>| {
            if let Err(err) = result {
                failures.push((id, err));
            }
        };
        match recipients {
            Recipients::All | Recipients::AllBut(_) => {
                let excluded = match recipients {
                    Recipients::AllBut(ids) => ids,
                    _ => &[],
                };
                let open = self.peers.values().filter(|peer| peer.ready_state() == ReadyState::Open);
                for peer in open.filter(|peer| !excluded.contains(&peer.id())) {
                    send(peer.id(), peer.queue_shared(&shared));
                }
            }
            Recipients::Only(ids) => {
                for &id in ids {
                    send(id, self.peer(id).and_then(|peer| peer.queue_shared(&shared)));
                }
            }
        }
        // Without an I/O thread, written now rather than at the next poll.
        if let Some(reactor) = &self.reactor {
            reactor.write_queued();
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(Error::NotDelivered(failures))
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

/// Connections the kernel may hold completed but not yet accepted (capped by the system's own
/// limit, `net.core.somaxconn` on Linux). The standard library and mio ask for 128: a burst of
/// players joining at once (a server restart) overflows that, and the kernel drops their
/// connection attempts, which the clients retry only a second or more later.
const LISTEN_BACKLOG: i32 = 1024;

/// Binds a listener; on the IPv6 wildcard it also accepts IPv4 (falls back to IPv4 only where the
/// system has no IPv6). Its backlog is [`LISTEN_BACKLOG`] where the system lets us set it.
fn bind_dual_stack(addr: SocketAddr) -> std::io::Result<mio::net::TcpListener> {
    let listener = match mio::net::TcpListener::bind(addr) {
        Err(err) if addr.ip().is_unspecified() && addr.is_ipv6() && err.kind() != std::io::ErrorKind::AddrInUse => {
            mio::net::TcpListener::bind(SocketAddr::new(IpAddr::from([0u8; 4]), addr.port()))
        }
        other => other,
    }?;
    set_backlog(&listener, LISTEN_BACKLOG)?;
    Ok(listener)
}

/// Listening again on a listening socket sets its backlog anew (POSIX allows it; Linux, the BSDs
/// and macOS do it).
#[cfg(unix)]
fn set_backlog(listener: &mio::net::TcpListener, backlog: i32) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: listen(2) on a descriptor the listener owns; it reads nothing else.
    if unsafe { libc::listen(listener.as_raw_fd(), backlog) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Elsewhere the backlog stays what the standard library asks for.
#[cfg(not(unix))]
fn set_backlog(_listener: &mio::net::TcpListener, _backlog: i32) -> std::io::Result<()> {
    Ok(())
}

/// What the process registry needs of a server's peers: how many are open, and their queued
/// payload bytes each way.
pub(crate) fn summarize(peers: &HashMap<PeerId, PeerHandle>) -> (u64, u64, u64) {
    let (inbound, outbound) = peers.values().map(PeerHandle::queued_bytes).fold((0, 0), |(i, o), (pi, po)| (i + pi, o + po));
    (peers.len() as u64, inbound as u64, outbound as u64)
}
