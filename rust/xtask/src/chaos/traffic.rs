//! The two endpoints of a chaos case (our core `Server` and `Client`, polled from one thread) and
//! the numbered messages they exchange, checked exactly: each side knows what the other sent, so
//! every message that arrives must be the next one sent in that direction, byte for byte, with its
//! type (text or binary). A duplicate, a gap, a reordering or a corrupted message fails at once.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use websocket_rs_core::{Bytes, Client, ClientEvent, Error, Packet, PeerHandle, PeerId, Server, ServerEvent};

/// Message sizes the bulk phases cycle through (bytes): a short text, a datagram-sized binary, a
/// text of several segments and a binary of about fifty.
pub(super) const SIZE_CYCLE: [(usize, bool); 4] = [(24, true), (1400, false), (9000, true), (70_000, false)];
/// Sizes of paced messages (the partition cases): small enough that the kernel buffers hold
/// everything sent during a short partition.
pub(super) const PACED_CYCLE: [(usize, bool); 3] = [(24, true), (1400, false), (4000, true)];

/// One direction's numbered messages: what was sent, and how far the other side has received.
pub(super) struct Stream {
    /// 'U' (client to server) or 'D' (server to client); part of every payload.
    direction: u8,
    /// Messages planned but not accepted by `send` yet (length, is text).
    plan: VecDeque<(usize, bool)>,
    /// Every message sent, in order (length, is text).
    sent: Vec<(usize, bool)>,
    /// How many of them arrived (always a prefix of `sent`).
    pub(super) received: usize,
    /// Payload bytes sent.
    pub(super) bytes_sent: u64,
    /// Payload bytes received.
    pub(super) bytes_received: u64,
    /// When the last message arrived.
    pub(super) last_arrival: Option<Instant>,
}

impl Stream {
    /// An empty stream in `direction` ('U' or 'D').
    pub(super) fn new(direction: u8) -> Stream {
        Stream {
            direction,
            plan: VecDeque::new(),
            sent: Vec::new(),
            received: 0,
            bytes_sent: 0,
            bytes_received: 0,
            last_arrival: None,
        }
    }

    /// Messages sent so far.
    pub(super) fn sent(&self) -> usize {
        self.sent.len()
    }

    /// Whether everything planned was sent and has arrived.
    pub(super) fn complete(&self) -> bool {
        self.plan.is_empty() && self.received == self.sent.len()
    }

    /// Plans `count` messages whose sizes cycle through `sizes`.
    pub(super) fn plan(&mut self, count: usize, sizes: &[(usize, bool)]) {
        let start = self.sent.len() + self.plan.len();
        self.plan.extend((start..start + count).map(|i| sizes[i % sizes.len()]));
    }

    /// Sends planned messages on `peer` until the outbound queue is full. With `closed_is_loss`,
    /// a peer that is no longer open stops the sending (the message stays planned) instead of
    /// failing the case.
    fn send_planned(&mut self, peer: &PeerHandle, closed_is_loss: bool) -> Result<(), String> {
        while let Some(&(len, text)) = self.plan.front() {
            let packet = Packet { data: payload(self.direction, self.sent.len(), len, text), is_text: text };
            match peer.send(packet) {
                Ok(()) => {
                    self.plan.pop_front();
                    self.sent.push((len, text));
                    self.bytes_sent += len as u64;
                }
                Err(Error::OutboundFull { .. }) => return Ok(()),
                Err(Error::PeerNotOpen(_)) if closed_is_loss => return Ok(()),
                Err(other) => {
                    return Err(format!("{}: sending message #{} failed: {other}", self.name(), self.sent.len()));
                }
            }
        }
        Ok(())
    }

    /// Checks that `packet` is the next message sent in this direction.
    fn arrived(&mut self, packet: &Packet, now: Instant) -> Result<(), String> {
        let index = self.received;
        let Some(&(len, text)) = self.sent.get(index) else {
            return Err(format!(
                "{}: a message arrived after all {} sent had arrived (a duplicate?): {}",
                self.name(),
                self.sent.len(),
                describe(packet)
            ));
        };
        if packet.is_text != text || packet.data != payload(self.direction, index, len, text) {
            return Err(format!(
                "{}: message #{index} ({len} bytes, {}) expected, got {}",
                self.name(),
                if text { "text" } else { "binary" },
                describe(packet)
            ));
        }
        self.received += 1;
        self.bytes_received += len as u64;
        self.last_arrival = Some(now);
        Ok(())
    }

    fn name(&self) -> &'static str {
        if self.direction == b'U' {
            "client→server"
        } else {
            "server→client"
        }
    }
}

/// The payload of message `index` in `direction`: a readable header (`U#0000000042:00001400:`)
/// cut to `len`, then filler that depends on direction and index (letters for text).
pub(super) fn payload(direction: u8, index: usize, len: usize, text: bool) -> Bytes {
    let mut bytes = format!("{}#{index:010}:{len:08}:", direction as char).into_bytes();
    bytes.truncate(len);
    let mut random = (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(direction) | 1;
    while bytes.len() < len {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        bytes.push(if text { b'a' + (random % 26) as u8 } else { random as u8 });
    }
    Bytes::from(bytes)
}

/// A received message as a person reads it: its header, length and type.
fn describe(packet: &Packet) -> String {
    let head = String::from_utf8_lossy(&packet.data[..packet.data.len().min(22)]).into_owned();
    format!("'{head}…' ({} bytes, {})", packet.data.len(), if packet.is_text { "text" } else { "binary" })
}

/// What the endpoints reported, in the order `poll` gave it.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Happened {
    /// Server: a client connected with this id.
    Connected(PeerId),
    /// Server: a client left (`error`: why the server dropped it).
    Disconnected { id: PeerId, error: Option<String> },
    /// Client: the connection opened (first or again).
    Opened,
    /// Client: the open connection was lost and reconnecting began (`error`: why it was dropped).
    Lost { error: Option<String> },
    /// Client: a reconnect attempt failed (`reason`), another follows.
    AttemptFailed(String),
    /// Client: a reconnect succeeded.
    Reconnected,
    /// Client: the connection is closed for good.
    Closed { error: Option<String> },
    /// Client: connecting failed (no reconnecting).
    ConnectError(String),
}

/// Server and client of one case, polled together; `up` is client→server, `down` server→client.
pub(super) struct Pair {
    pub(super) server: Server,
    pub(super) client: Client,
    /// The server's id of the connected client (None while there is none).
    pub(super) peer: Option<PeerId>,
    pub(super) up: Stream,
    pub(super) down: Stream,
    /// Every event with its time.
    pub(super) log: Vec<(Instant, Happened)>,
    /// The server answers each client message with one small message (round-trip probes).
    pub(super) echo: bool,
    /// Plan one message each way this often (while both ends are open).
    pub(super) pace: Option<Duration>,
    next_paced: Instant,
    /// A peer that is no longer open stops sending instead of failing (the long partition).
    pub(super) closed_is_loss: bool,
    server_events: Vec<ServerEvent>,
    client_events: Vec<ClientEvent>,
}

impl Pair {
    /// A pair around a listening server and a connecting client.
    pub(super) fn new(server: Server, client: Client) -> Pair {
        Pair {
            server,
            client,
            peer: None,
            up: Stream::new(b'U'),
            down: Stream::new(b'D'),
            log: Vec::new(),
            echo: false,
            pace: None,
            next_paced: Instant::now(),
            closed_is_loss: false,
            server_events: Vec::new(),
            client_events: Vec::new(),
        }
    }

    /// Whether both ends are open (the server has the client, the client is established).
    pub(super) fn both_open(&self) -> bool {
        self.peer.is_some() && self.client.is_established()
    }

    /// The server's handle of the client, when connected.
    pub(super) fn server_peer(&self) -> Option<&PeerHandle> {
        self.peer.and_then(|id| self.server.peer(id).ok())
    }

    /// One round: polls both ends, checks what arrived, sends what is planned.
    pub(super) fn step(&mut self) -> Result<(), String> {
        let now = Instant::now();
        self.server.poll(&mut self.server_events);
        for event in self.server_events.drain(..) {
            match event {
                ServerEvent::ClientConnected { id, .. } => {
                    self.peer = Some(id);
                    self.log.push((now, Happened::Connected(id)));
                }
                ServerEvent::ClientDisconnected { id, error, .. } => {
                    if self.peer == Some(id) {
                        self.peer = None;
                    }
                    self.log.push((now, Happened::Disconnected { id, error }));
                }
                _ => {}
            }
        }
        self.client.poll(&mut self.client_events);
        for event in self.client_events.drain(..) {
            let happened = match event {
                ClientEvent::ConnectionEstablished { .. } => Happened::Opened,
                ClientEvent::Reconnecting { attempt: 1, error, .. } => Happened::Lost { error },
                ClientEvent::Reconnecting { attempt_failure, .. } => Happened::AttemptFailed(attempt_failure.unwrap_or_default()),
                ClientEvent::Reconnected => Happened::Reconnected,
                ClientEvent::ReconnectFailed { reason, .. } => Happened::AttemptFailed(reason),
                ClientEvent::ConnectionClosed { error, .. } => Happened::Closed { error },
                ClientEvent::ConnectionError { reason } => Happened::ConnectError(reason),
                ClientEvent::DataReceived | ClientEvent::CloseRequested { .. } => continue,
            };
            self.log.push((now, happened));
        }
        if let Some(peer) = self.peer.and_then(|id| self.server.peer(id).ok()) {
            while let Some(packet) = peer.recv() {
                self.up.arrived(&packet, now)?;
                if self.echo {
                    self.down.plan(1, &[(24, false)]);
                }
            }
        }
        if let Some(peer) = self.client.peer() {
            while let Some(packet) = peer.recv() {
                self.down.arrived(&packet, now)?;
            }
        }
        if let Some(pace) = self.pace {
            if now >= self.next_paced {
                self.next_paced = now + pace;
                if self.both_open() {
                    self.up.plan(1, &PACED_CYCLE);
                    self.down.plan(1, &PACED_CYCLE);
                }
            }
        }
        if self.client.is_established() {
            if let Some(peer) = self.client.peer() {
                self.up.send_planned(peer, self.closed_is_loss)?;
            }
        }
        if let Some(peer) = self.peer.and_then(|id| self.server.peer(id).ok()) {
            self.down.send_planned(peer, self.closed_is_loss)?;
        }
        Ok(())
    }

    /// Steps until `done` holds; Err naming `what` when `deadline` passes first.
    pub(super) fn until(&mut self, deadline: Instant, what: &str, mut done: impl FnMut(&Pair) -> bool) -> Result<(), String> {
        loop {
            self.step()?;
            if done(self) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "timed out waiting for {what} (client→server {}/{} arrived, server→client {}/{}; events {:?})",
                    self.up.received,
                    self.up.sent(),
                    self.down.received,
                    self.down.sent(),
                    self.events()
                ));
            }
            // Round-trip probes are timed: poll finely then, so the loop adds little to them.
            std::thread::sleep(if self.echo { Duration::from_micros(50) } else { Duration::from_millis(1) });
        }
    }

    /// Steps for `time` whatever happens.
    pub(super) fn run_for(&mut self, time: Duration) -> Result<(), String> {
        let end = Instant::now() + time;
        self.until(end + Duration::from_secs(1), "nothing", |_| Instant::now() >= end)
    }

    /// The events so far, without times.
    pub(super) fn events(&self) -> Vec<&Happened> {
        self.log.iter().map(|(_, e)| e).collect()
    }

    /// Events that end or lose a connection, as text (empty when there are none).
    pub(super) fn disconnects(&self) -> Vec<String> {
        self.log
            .iter()
            .filter(|(_, e)| {
                matches!(e, Happened::Disconnected { .. } | Happened::Lost { .. } | Happened::Closed { .. } | Happened::ConnectError(_))
            })
            .map(|(_, e)| format!("{e:?}"))
            .collect()
    }

    /// Closes the client with 1000 and waits until both ends report it (bounded by `limit`).
    pub(super) fn close(&mut self, limit: Duration) -> Result<(), String> {
        self.client.disconnect(1000, "done").map_err(|e| format!("disconnect: {e}"))?;
        let from = self.log.len();
        self.until(Instant::now() + limit, "the close on both sides", |pair| {
            let events = &pair.log[from..];
            events.iter().any(|(_, e)| matches!(e, Happened::Closed { .. }))
                && events.iter().any(|(_, e)| matches!(e, Happened::Disconnected { .. }))
        })?;
        self.server.stop();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_their_length_and_differ_by_index_and_direction() {
        for (len, text) in SIZE_CYCLE {
            let a = payload(b'U', 3, len, text);
            assert_eq!(a.len(), len);
            assert_ne!(a, payload(b'U', 4, len, text));
            assert_ne!(a, payload(b'D', 3, len, text));
            if text {
                assert!(std::str::from_utf8(&a).is_ok());
            }
        }
    }

    #[test]
    fn a_stream_refuses_duplicates_gaps_and_changed_bytes() {
        let mut stream = Stream::new(b'U');
        stream.sent = vec![(24, true), (1400, false), (24, true)];
        let packet = |i: usize| {
            let (len, text) = stream_sizes()[i];
            Packet { data: payload(b'U', i, len, text), is_text: text }
        };
        let now = Instant::now();
        assert!(stream.arrived(&packet(1), now).is_err(), "a gap");
        stream.arrived(&packet(0), now).unwrap();
        assert!(stream.arrived(&packet(0), now).is_err(), "a duplicate");
        let mut changed = packet(1).data.to_vec();
        changed[100] ^= 1;
        assert!(stream.arrived(&Packet { data: Bytes::from(changed), is_text: false }, now).is_err(), "a changed byte");
        stream.arrived(&packet(1), now).unwrap();
        stream.arrived(&packet(2), now).unwrap();
        assert!(stream.arrived(&packet(2), now).is_err(), "more than was sent");
        assert_eq!(stream.received, 3);
    }

    fn stream_sizes() -> [(usize, bool); 3] {
        [(24, true), (1400, false), (24, true)]
    }
}
