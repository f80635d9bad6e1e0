//! One connected peer as the game sees it: its received packets, its state, and the calls that
//! queue work for the I/O thread (send, close, resume reading).

use std::cell::{Ref, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tungstenite::Bytes;

use crate::config::Limits;
use crate::reactor::{Command, CommandSender};
use crate::{Error, PeerId};

/// One WebSocket message, text or binary, as received or as queued for sending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// The payload (UTF-8 when `is_text`).
    pub data: Bytes,
    /// Whether it travels as a text frame (else binary).
    pub is_text: bool,
}

/// The state of a connection, numbered like Godot's `WebSocketPeer.State`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadyState {
    /// TCP connect or HTTP upgrade under way.
    Connecting = 0,
    /// Messages flow both ways.
    Open = 1,
    /// A close frame was sent or received; waiting for the close handshake to end.
    Closing = 2,
    /// The connection is gone.
    Closed = 3,
}

/// Counters shared by the game thread and the I/O thread for one connection. They carry
/// back-pressure: the I/O thread stops reading a socket whose inbound queue is full, and the game
/// refuses to queue more than the outbound limit.
#[derive(Debug, Default)]
pub(crate) struct PeerShared {
    pub(crate) inbound_packets: AtomicUsize,
    pub(crate) inbound_bytes: AtomicUsize,
    pub(crate) read_paused: AtomicBool,
    pub(crate) outbound_packets: AtomicUsize,
    pub(crate) outbound_bytes: AtomicUsize,
}

impl PeerShared {
    /// Whether the inbound queue is at its limit (one packet always fits).
    pub(crate) fn inbound_full(&self, limits: &Limits) -> bool {
        let packets = self.inbound_packets.load(Ordering::SeqCst);
        packets > 0
            && (packets >= limits.inbound_max_packets
                || self.inbound_bytes.load(Ordering::SeqCst) >= limits.inbound_buffer_size)
    }
}

/// What the game keeps of one peer. Shared (through [`PeerHandle`]) between the server's peer
/// table and the binding's connection object.
#[derive(Debug)]
pub(crate) struct Peer {
    id: PeerId,
    shared: Arc<PeerShared>,
    commands: CommandSender,
    limits: Limits,
    inbound: VecDeque<Packet>,
    state: ReadyState,
    close_code: i32,
    close_reason: String,
    remote_addr: Option<SocketAddr>,
    protocol: String,
    resource_name: String,
    requested_url: String,
    heartbeat: Option<std::time::Duration>,
    no_delay_at_open: bool,
}

/// A shared, game-thread handle to a [`Peer`]. Cloning it is cheap; every clone sees the same peer.
#[derive(Clone, Debug)]
pub struct PeerHandle(Rc<RefCell<Peer>>);

/// Facts about a peer known once its handshake is done.
#[derive(Clone, Debug, Default)]
pub(crate) struct OpenInfo {
    pub(crate) remote_addr: Option<SocketAddr>,
    pub(crate) protocol: String,
    pub(crate) resource_name: String,
    /// TCP_NODELAY as read back from the socket when it opened.
    pub(crate) no_delay: bool,
}

impl PeerHandle {
    pub(crate) fn new(
        id: PeerId,
        shared: Arc<PeerShared>,
        commands: CommandSender,
        config: &crate::ConnectionConfig,
        requested_url: String,
    ) -> Self {
        PeerHandle(Rc::new(RefCell::new(Peer {
            id,
            shared,
            commands,
            limits: config.limits.clone(),
            heartbeat: config.heartbeat_interval,
            no_delay_at_open: false,
            inbound: VecDeque::new(),
            state: ReadyState::Connecting,
            close_code: -1,
            close_reason: String::new(),
            remote_addr: None,
            protocol: String::new(),
            resource_name: String::new(),
            requested_url,
        })))
    }

    fn peer(&self) -> Ref<'_, Peer> {
        self.0.borrow()
    }

    /// The peer's id (1 for the server as seen by a client).
    pub fn id(&self) -> PeerId {
        self.peer().id
    }

    /// The connection state.
    pub fn ready_state(&self) -> ReadyState {
        self.peer().state
    }

    /// The close code received from the other side, or -1 (none yet, or not a clean close).
    pub fn close_code(&self) -> i32 {
        self.peer().close_code
    }

    /// The close reason received from the other side ("" when none).
    pub fn close_reason(&self) -> String {
        self.peer().close_reason.clone()
    }

    /// The other side's address, once connected.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.peer().remote_addr
    }

    /// The negotiated sub-protocol ("" when none).
    pub fn protocol(&self) -> String {
        self.peer().protocol.clone()
    }

    /// Whether the socket had TCP_NODELAY set when the connection opened (read from the socket).
    pub fn no_delay_at_open(&self) -> bool {
        self.peer().no_delay_at_open
    }

    /// The requested path and query (server side), e.g. `/chat?room=1`.
    pub fn resource_name(&self) -> String {
        self.peer().resource_name.clone()
    }

    /// The URL this client asked for ("" on the server side).
    pub fn requested_url(&self) -> String {
        self.peer().requested_url.clone()
    }

    /// Received packets waiting to be read.
    pub fn available_packets(&self) -> usize {
        self.peer().inbound.len()
    }

    /// Whether the next packet to be read is text (false when none is waiting).
    pub fn next_is_text(&self) -> bool {
        self.peer().inbound.front().is_some_and(|p| p.is_text)
    }

    /// Bytes queued for sending that have not reached the socket yet.
    pub fn outbound_buffered(&self) -> usize {
        self.peer().shared.outbound_bytes.load(Ordering::SeqCst)
    }

    /// Takes the oldest received packet. Frees its room in the inbound queue, so a socket paused
    /// by back-pressure is read again.
    pub fn recv(&self) -> Option<Packet> {
        let peer = &mut *self.0.borrow_mut();
        let packet = peer.inbound.pop_front()?;
        let shared = &peer.shared;
        shared.inbound_packets.fetch_sub(1, Ordering::SeqCst);
        shared.inbound_bytes.fetch_sub(packet.data.len(), Ordering::SeqCst);
        // Checked with a load first: the swap writes a cache line the I/O thread uses, and a
        // paused read is rare.
        if shared.read_paused.load(Ordering::SeqCst)
            && !shared.inbound_full(&peer.limits)
            && shared.read_paused.swap(false, Ordering::SeqCst)
        {
            peer.commands.send(Command::ResumeRead { id: peer.id });
        }
        Some(packet)
    }

    /// Queues a packet for sending. Refuses (and keeps nothing) when the peer is not open or the
    /// outbound queue is at its limit.
    pub fn send(&self, packet: Packet) -> Result<(), Error> {
        let peer = self.peer();
        if peer.state != ReadyState::Open {
            return Err(Error::PeerNotOpen(peer.id));
        }
        if packet.is_text && std::str::from_utf8(&packet.data).is_err() {
            return Err(Error::InvalidArgument("a text message must be valid UTF-8".into()));
        }
        let shared = &peer.shared;
        let queued_packets = shared.outbound_packets.load(Ordering::SeqCst);
        let queued_bytes = shared.outbound_bytes.load(Ordering::SeqCst);
        if queued_packets > 0 {
            let limit = if queued_packets >= peer.limits.outbound_max_packets {
                Some(format!("max_queued_packets = {}", peer.limits.outbound_max_packets))
            } else if queued_bytes + packet.data.len() > peer.limits.outbound_buffer_size {
                Some(format!(
                    "outbound_buffer_size = {} bytes, {} queued, {} more asked",
                    peer.limits.outbound_buffer_size,
                    queued_bytes,
                    packet.data.len()
                ))
            } else {
                None
            };
            if let Some(limit) = limit {
                return Err(Error::OutboundFull { peer: peer.id, limit });
            }
        }
        shared.outbound_packets.fetch_add(1, Ordering::SeqCst);
        shared.outbound_bytes.fetch_add(packet.data.len(), Ordering::SeqCst);
        if !peer.commands.send(Command::Send { id: peer.id, packet }) {
            return Err(Error::PeerNotOpen(peer.id));
        }
        Ok(())
    }

    /// Starts the close handshake with `code` and `reason`; a negative code drops the connection
    /// at once without a close frame. Does nothing on a peer already closing or closed.
    pub fn close(&self, code: i32, reason: &str) -> Result<(), Error> {
        let peer = &mut *self.0.borrow_mut();
        if code >= 0 {
            validate_close(code, reason)?;
        }
        match peer.state {
            ReadyState::Closed => return Ok(()),
            ReadyState::Closing if code >= 0 => return Ok(()),
            _ => {}
        }
        peer.state = ReadyState::Closing;
        let command = if code < 0 {
            Command::Abort { id: peer.id }
        } else {
            Command::Close { id: peer.id, code: code as u16, reason: reason.to_string() }
        };
        peer.commands.send(command);
        Ok(())
    }

    /// Turns TCP_NODELAY on or off for this connection.
    pub fn set_no_delay(&self, enabled: bool) {
        let peer = self.peer();
        peer.commands.send(Command::SetNoDelay { id: peer.id, enabled });
    }

    /// Pings this peer every `interval` (`None`: never); a peer that has not answered by the next
    /// ping is dropped.
    pub fn set_heartbeat(&self, interval: Option<std::time::Duration>) {
        let peer = &mut *self.0.borrow_mut();
        peer.heartbeat = interval;
        peer.commands.send(Command::SetHeartbeat { id: peer.id, interval });
    }

    /// The ping interval (`None` when off).
    pub fn heartbeat(&self) -> Option<std::time::Duration> {
        self.peer().heartbeat
    }

    pub(crate) fn mark_open(&self, info: OpenInfo) {
        let peer = &mut *self.0.borrow_mut();
        if peer.state == ReadyState::Connecting {
            peer.state = ReadyState::Open;
        }
        peer.remote_addr = info.remote_addr;
        peer.no_delay_at_open = info.no_delay;
        peer.protocol = info.protocol;
        peer.resource_name = info.resource_name;
    }

    pub(crate) fn push_inbound(&self, packet: Packet) {
        self.0.borrow_mut().inbound.push_back(packet);
    }

    pub(crate) fn mark_close_requested(&self, code: i32, reason: &str) {
        let peer = &mut *self.0.borrow_mut();
        peer.state = ReadyState::Closing;
        peer.close_code = code;
        peer.close_reason = reason.to_string();
    }

    pub(crate) fn mark_closed(&self, clean: bool, code: i32, reason: &str) {
        let peer = &mut *self.0.borrow_mut();
        peer.state = ReadyState::Closed;
        if clean {
            peer.close_code = code;
            peer.close_reason = reason.to_string();
        } else {
            peer.close_code = -1;
            peer.close_reason.clear();
        }
    }
}

/// Checks a close code and reason the game wants to send (RFC 6455 section 7.4).
fn validate_close(code: i32, reason: &str) -> Result<(), Error> {
    let sendable = matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999);
    if !sendable {
        return Err(Error::InvalidArgument(format!(
            "close code {code} cannot be sent: use 1000-1003, 1007-1011 or 3000-4999 (or -1 to drop at once)"
        )));
    }
    if reason.len() > 123 {
        return Err(Error::InvalidArgument(format!(
            "close reason is {} bytes long; at most 123 fit in a close frame",
            reason.len()
        )));
    }
    Ok(())
}
