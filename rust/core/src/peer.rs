//! One connected peer as the game sees it: its received packets, its state, and the calls that
//! queue work for the I/O thread (send, close, resume reading).

use std::cell::{Ref, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::command::{Command, CommandSender, PeerCommand};
use crate::config::Limits;
use crate::connection::{Ending, OpenInfo};
use crate::deflate::DeflateParams;
use crate::flow::FlowControl;
use crate::packet::Packet;
use crate::stats::PeerStatistics;
use crate::{Error, PeerId};

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

/// What the game keeps of one peer. Shared (through [`PeerHandle`]) between the server's peer
/// table and the binding's connection object.
#[derive(Debug)]
pub(crate) struct Peer {
    id: PeerId,
    flow: Arc<FlowControl>,
    commands: CommandSender,
    limits: Limits,
    inbound: VecDeque<Packet>,
    state: ReadyState,
    /// The close code and reason of a completed close handshake.
    close: Option<(u16, String)>,
    remote_addr: Option<SocketAddr>,
    protocol: String,
    /// The permessage-deflate agreement, if compression was agreed.
    deflate: Option<DeflateParams>,
    resource_name: String,
    /// Server side: the upgrade request's headers (names in lower case, in order).
    request_headers: Vec<(String, String)>,
    requested_url: String,
    heartbeat: Option<Duration>,
    no_delay_at_open: bool,
    /// Whether the server's list of peers with waiting packets names this peer (see
    /// `Server::take_all_packets`).
    listed_as_receiving: bool,
    /// When the game learnt that the handshake finished, and that the connection ended.
    opened_at: Option<Instant>,
    closed_at: Option<Instant>,
}

/// A shared, game-thread handle to a [`Peer`]. Cloning it is cheap; every clone sees the same peer.
#[derive(Clone, Debug)]
pub struct PeerHandle(Rc<RefCell<Peer>>);

impl PeerHandle {
    pub(crate) fn new(
        id: PeerId,
        flow: Arc<FlowControl>,
        commands: CommandSender,
        config: &crate::ConnectionConfig,
        requested_url: String,
    ) -> Self {
        PeerHandle(Rc::new(RefCell::new(Peer {
            id,
            flow,
            commands,
            limits: config.limits.clone(),
            heartbeat: config.heartbeat_interval,
            no_delay_at_open: false,
            listed_as_receiving: false,
            inbound: VecDeque::new(),
            state: ReadyState::Connecting,
            close: None,
            remote_addr: None,
            protocol: String::new(),
            deflate: None,
            resource_name: String::new(),
            request_headers: Vec::new(),
            requested_url,
            opened_at: None,
            closed_at: None,
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

    /// The close code received from the other side (`None`: no close frame yet, or the
    /// connection did not close cleanly).
    pub fn close_code(&self) -> Option<u16> {
        self.peer().close.as_ref().map(|(code, _)| *code)
    }

    /// The close reason received from the other side ("" when none).
    pub fn close_reason(&self) -> String {
        self.peer().close.as_ref().map(|(_, reason)| reason.clone()).unwrap_or_default()
    }

    /// The other side's address, once connected.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.peer().remote_addr
    }

    /// The negotiated sub-protocol ("" when none).
    pub fn protocol(&self) -> String {
        self.peer().protocol.clone()
    }

    /// The permessage-deflate parameters agreed at the handshake (`None`: messages travel
    /// uncompressed, because one side did not offer or accept compression).
    pub fn deflate(&self) -> Option<DeflateParams> {
        self.peer().deflate
    }

    /// Whether the socket had TCP_NODELAY set when the connection opened (read from the socket).
    pub fn no_delay_at_open(&self) -> bool {
        self.peer().no_delay_at_open
    }

    /// The requested path and query (server side), e.g. `/chat?room=1`.
    pub fn resource_name(&self) -> String {
        self.peer().resource_name.clone()
    }

    /// Server side: every header of the client's upgrade request, names in lower case, in the
    /// order received (empty on the client side).
    pub fn request_headers(&self) -> Vec<(String, String)> {
        self.peer().request_headers.clone()
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
        self.peer().flow.outbound_bytes()
    }

    /// Takes the oldest received packet. Frees its room in the inbound queue, so a socket paused
    /// by back-pressure is read again.
    pub fn recv(&self) -> Option<Packet> {
        let peer = &mut *self.0.borrow_mut();
        let packet = peer.inbound.pop_front()?;
        if peer.flow.taken(packet.data.len(), &peer.limits) {
            peer.commands.to_peer(peer.id, PeerCommand::ResumeRead);
        }
        Some(packet)
    }

    /// Takes every received packet, oldest first, into `out`; how many. Frees their room in the
    /// inbound queue at once, so a socket paused by back-pressure is read again.
    pub fn recv_all(&self, out: &mut Vec<Packet>) -> usize {
        let peer = &mut *self.0.borrow_mut();
        let count = peer.inbound.len();
        if count == 0 {
            return 0;
        }
        let bytes = peer.inbound.iter().map(|p| p.data.len()).sum();
        out.extend(peer.inbound.drain(..));
        if peer.flow.taken_many(count, bytes, &peer.limits) {
            peer.commands.to_peer(peer.id, PeerCommand::ResumeRead);
        }
        count
    }

    /// Queues several packets for sending, in order, all or none: refuses (and keeps nothing)
    /// when the peer is not open, a text packet is not UTF-8, or the outbound queue cannot take
    /// them all. Costs one command, not one per packet. Without an I/O thread the batch is written
    /// to the socket at once (outside `poll()`), not at the next poll.
    pub fn send_many(&self, packets: Vec<Packet>) -> Result<(), Error> {
        let peer = self.peer();
        if peer.state != ReadyState::Open {
            return Err(Error::PeerNotOpen(peer.id));
        }
        if packets.is_empty() {
            return Ok(());
        }
        packets.iter().try_for_each(Packet::check_text)?;
        let bytes = packets.iter().map(|p| p.data.len()).sum();
        peer.flow.reserve_outbound_many(peer.id, packets.len(), bytes, &peer.limits)?;
        if !peer.commands.send(Command::SendMany { id: peer.id, packets }) {
            return Err(Error::PeerNotOpen(peer.id));
        }
        // Without an I/O thread, a batch is written now rather than at the next poll.
        let commands = peer.commands.clone();
        drop(peer);
        commands.write_queued();
        Ok(())
    }

    /// Queues a packet for sending. Refuses (and keeps nothing) when the peer is not open or the
    /// outbound queue is at its limit.
    pub fn send(&self, packet: Packet) -> Result<(), Error> {
        packet.check_text()?;
        self.queue(packet)
    }

    /// [`PeerHandle::send`] for a packet whose text, if any, was checked to be UTF-8.
    pub(crate) fn queue(&self, packet: Packet) -> Result<(), Error> {
        self.queue_message(packet.data.len(), PeerCommand::Send(packet))
    }

    /// [`PeerHandle::queue`] for a message other peers are sent too (`Server::broadcast`).
    pub(crate) fn queue_shared(&self, shared: &std::sync::Arc<crate::packet::SharedMessage>) -> Result<(), Error> {
        self.queue_message(shared.packet.data.len(), PeerCommand::SendShared(shared.clone()))
    }

    /// Reserves room for a message of `len` bytes and hands `send` to the I/O thread; refuses
    /// (keeping nothing) when the peer is not open or the outbound queue is at its limit.
    fn queue_message(&self, len: usize, send: PeerCommand) -> Result<(), Error> {
        let peer = self.peer();
        if peer.state != ReadyState::Open {
            return Err(Error::PeerNotOpen(peer.id));
        }
        peer.flow.reserve_outbound(peer.id, len, &peer.limits)?;
        if !peer.commands.to_peer(peer.id, send) {
            return Err(Error::PeerNotOpen(peer.id));
        }
        Ok(())
    }

    /// Starts the close handshake with `code` and `reason`. Does nothing on a peer already
    /// closing or closed.
    pub fn close(&self, code: u16, reason: &str) -> Result<(), Error> {
        validate_close(code, reason)?;
        let peer = &mut *self.0.borrow_mut();
        if peer.state == ReadyState::Open || peer.state == ReadyState::Connecting {
            peer.state = ReadyState::Closing;
            peer.commands.to_peer(peer.id, PeerCommand::Close { code, reason: reason.to_string() });
        }
        Ok(())
    }

    /// Drops the connection at once, without a close frame (also while it is closing).
    pub fn abort(&self) {
        let peer = &mut *self.0.borrow_mut();
        if peer.state != ReadyState::Closed {
            peer.state = ReadyState::Closing;
            peer.commands.to_peer(peer.id, PeerCommand::Abort);
        }
    }

    /// Turns TCP_NODELAY on or off for this connection.
    pub fn set_no_delay(&self, enabled: bool) {
        let peer = self.peer();
        peer.commands.send(Command::SetNoDelay { id: peer.id, enabled });
    }

    /// Pings this peer every `interval` (`None`: never); a peer that has not answered by the next
    /// ping is dropped.
    pub fn set_heartbeat(&self, interval: Option<Duration>) {
        let peer = &mut *self.0.borrow_mut();
        peer.heartbeat = interval;
        peer.commands.to_peer(peer.id, PeerCommand::SetHeartbeat(interval));
    }

    /// The ping interval (`None` when off).
    pub fn heartbeat(&self) -> Option<Duration> {
        self.peer().heartbeat
    }

    /// The peer's statistics now: traffic, queues and round-trip time, read from counters the
    /// I/O thread keeps (no round trip to it).
    pub fn statistics(&self) -> PeerStatistics {
        let peer = self.peer();
        let now = Instant::now();
        let mut stats = PeerStatistics::default();
        peer.flow.read_into(&mut stats, now);
        if let Some(opened) = peer.opened_at {
            stats.connected_seconds = peer.closed_at.unwrap_or(now).saturating_duration_since(opened).as_secs_f64();
        }
        stats
    }

    /// The smoothed round-trip time in milliseconds, from the heartbeat's pings (0 before the
    /// first pong).
    pub fn round_trip_time_ms(&self) -> f64 {
        self.peer().flow.traffic.rtt_ms()
    }

    /// Payload bytes queued each way: waiting for the game, and waiting for the socket.
    pub(crate) fn queued_bytes(&self) -> (usize, usize) {
        self.peer().flow.queued_bytes()
    }

    pub(crate) fn mark_open(&self, info: OpenInfo) {
        let peer = &mut *self.0.borrow_mut();
        if peer.state == ReadyState::Connecting {
            peer.state = ReadyState::Open;
            peer.opened_at = Some(Instant::now());
        }
        peer.remote_addr = info.remote_addr;
        peer.no_delay_at_open = info.no_delay;
        peer.protocol = info.protocol;
        peer.deflate = info.deflate;
        peer.resource_name = info.resource_name;
        peer.request_headers = info.request_headers;
    }

    pub(crate) fn push_inbound(&self, packet: Packet) {
        self.0.borrow_mut().inbound.push_back(packet);
    }

    /// Marks the peer as named in the server's list of peers with waiting packets; false when it
    /// was already.
    pub(crate) fn list_as_receiving(&self) -> bool {
        !std::mem::replace(&mut self.0.borrow_mut().listed_as_receiving, true)
    }

    /// The server's list of peers with waiting packets no longer names this peer.
    pub(crate) fn unlist_as_receiving(&self) {
        self.0.borrow_mut().listed_as_receiving = false;
    }

    pub(crate) fn mark_close_requested(&self, code: u16, reason: &str) {
        let peer = &mut *self.0.borrow_mut();
        peer.state = ReadyState::Closing;
        peer.close = Some((code, reason.to_string()));
    }

    /// The connection is gone; a clean ending keeps the other side's close code and reason.
    pub(crate) fn mark_closed(&self, ending: &Ending) {
        let peer = &mut *self.0.borrow_mut();
        peer.state = ReadyState::Closed;
        peer.closed_at.get_or_insert_with(Instant::now);
        peer.close = match ending {
            Ending::Clean { code, reason } => Some((*code, reason.clone())),
            Ending::Lost | Ending::Failed { .. } => None,
        };
    }
}

/// Checks a close code and reason the game wants to send (RFC 6455 section 7.4).
fn validate_close(code: u16, reason: &str) -> Result<(), Error> {
    if !matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999) {
        return Err(Error::InvalidCloseCode(i64::from(code)));
    }
    if reason.len() > 123 {
        return Err(Error::CloseReasonTooLong(reason.len()));
    }
    Ok(())
}
