//! The client as the game thread sees it: connect to a URL, poll for events, talk to peer 1.
//! With [`ConnectionConfig::reconnect`] on, a connection that was open and is lost is made again
//! with the same request, after a backoff (`reconnect.rs`); `poll` drives the attempts.

use std::cell::Cell;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest;
use tungstenite::http::{HeaderName, HeaderValue, Uri};

use crate::command::{CommandSender, PeerCommand, Wake};
use crate::connection::Ending;
use crate::flow::FlowControl;
use crate::multiplayer;
use crate::peer::{PeerHandle, ReadyState};
use crate::reactor::{ReactorEvent, ReactorHandle, Start};
use crate::reconnect::{Reconnect, ReconnectPolicy};
use crate::stats::EndpointStatistics;
use crate::{ConnectionConfig, Error, PeerId, SERVER_PEER_ID};

/// Something that happened on the client since the last `poll()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// The handshake finished; messages can flow.
    ConnectionEstablished {
        /// The sub-protocol the server picked ("" when none).
        protocol: String,
    },
    /// A packet from the server is waiting in the queue.
    DataReceived,
    /// The server sent a close frame; keep polling until `ConnectionClosed`.
    CloseRequested {
        /// Its close code.
        code: u16,
        /// Its close reason.
        reason: String,
    },
    /// The connection is gone.
    ConnectionClosed {
        /// Whether the close handshake completed.
        was_clean: bool,
        /// Why the client dropped the connection, when the server broke the protocol, a limit or
        /// the heartbeat.
        error: Option<String>,
    },
    /// Connecting failed (TCP, handshake or timeout).
    ConnectionError {
        /// What went wrong, readable by a person.
        reason: String,
    },
    /// Reconnect: the open connection was lost (attempt 1), or the previous attempt failed;
    /// attempt `attempt` starts after `delay`. Comes instead of `ConnectionClosed`.
    Reconnecting {
        /// Which attempt comes next (1 for the first after the loss).
        attempt: u32,
        /// How long the client waits before it.
        delay: Duration,
        /// Why the lost connection was dropped, when the server broke the protocol, a limit or
        /// the heartbeat (attempt 1 only).
        error: Option<String>,
        /// Why the previous attempt failed (none for attempt 1).
        attempt_failure: Option<String>,
    },
    /// Reconnect: the connection is open again (it follows its `ConnectionEstablished`).
    Reconnected,
    /// Reconnect: the last allowed attempt failed too; `ConnectionClosed` follows.
    ReconnectFailed {
        /// How many attempts were made.
        attempts: u32,
        /// Why the last one failed.
        reason: String,
    },
}

/// What `connect` was given, kept so that every reconnect attempt makes the same request.
#[derive(Debug)]
struct ConnectRequest {
    url: String,
    host: String,
    port: u16,
    /// wss://
    secure: bool,
    /// The HTTP upgrade request: path, sub-protocols, extensions and extra headers.
    request: tungstenite::handshake::client::Request,
    config: ConnectionConfig,
}

/// How a connection (or a connect attempt) came to its end in one `poll`.
enum End {
    /// An established connection closed.
    Closed(Ending),
    /// It never became established: refused, timed out, or no valid multiplayer id.
    NotEstablished(String),
}


/// A WebSocket client: one connection to one server, seen as peer 1.
#[derive(Debug, Default)]
pub struct Client {
    reactor: Option<ReactorHandle>,
    peer: Option<PeerHandle>,
    target: Option<(String, u16)>,
    /// Multiplayer mode (set by `connect`'s config).
    multiplayer: bool,
    /// Multiplayer mode: the id the server assigned (None until its id message arrives).
    unique_id: Option<PeerId>,
    /// Multiplayer mode: the socket is open but the id has not arrived yet; the sub-protocol to
    /// report once it does, and when to give up.
    awaiting_id: Option<(String, Instant)>,
    /// Whether `ConnectionEstablished` was reported for the current connection.
    established: bool,
    handshake_timeout: Duration,
    /// The server broke the protocol after the packets of the last `poll`: close at the next.
    failing: bool,
    /// What the last `connect` was given; each reconnect attempt repeats it.
    request: Option<ConnectRequest>,
    /// The reconnect settings of the last `connect`.
    policy: ReconnectPolicy,
    /// Where the client is in making a lost connection again.
    reconnect: Reconnect,
    /// The game asked for the current connection to close: its end is no loss.
    closing_by_game: bool,
    /// Events the next `poll` reports first (the game stopped a reconnect between two polls).
    owed: Vec<ClientEvent>,
    /// Counts the peer handles made: `peer()` returns another connection's when it changes.
    peer_generation: u64,
    /// Multiplayer mode: the last `poll` gave up reconnecting (see [`Client::gave_up_in_last_poll`]).
    gave_up: bool,
    /// The jitter of the reconnect delays.
    random: fastrand::Rng,
    /// The connection's totals, for the process registry (the editor's monitors); each
    /// connection (and reconnect attempt) has its own.
    stats: Option<EndpointStatistics>,
}

impl Client {
    /// A client that is not connected.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts connecting to `url` (`ws://host[:port][/path]`). Returns at once; the outcome comes
    /// from `poll()` as `ConnectionEstablished` or `ConnectionError`.
    pub fn connect(&mut self, url: &str, config: ConnectionConfig) -> Result<(), Error> {
        if self.is_active() {
            return Err(Error::AlreadyConnected);
        }
        config.validate()?;
        let invalid = |reason: &str| Error::InvalidUrl { url: url.to_string(), reason: reason.to_string() };
        let uri: Uri = url.parse().map_err(|err| invalid(&format!("{err}")))?;
        let secure = match uri.scheme_str() {
            Some("ws") => false,
            Some("wss") => true,
            Some(other) => return Err(invalid(&format!("scheme '{other}' is not ws:// or wss://"))),
            None => return Err(invalid("it has no scheme; start it with ws:// or wss://")),
        };
        let host = uri.host().filter(|h| !h.is_empty()).ok_or_else(|| invalid("it has no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        if secure {
            // Checked here so that a bad TLS setting is this call's error.
            crate::tls::client(&config.tls_client, &host)?;
        }
        if port == 0 {
            return Err(invalid("port 0 cannot be connected to"));
        }
        let mut request = uri.clone().into_client_request().map_err(|err| invalid(&err.to_string()))?;
        if !config.protocols.is_empty() {
            let value = HeaderValue::from_str(&config.protocols.join(", "))
                .map_err(|err| Error::InvalidSubProtocol(format!("sub-protocols: {err}")))?;
            request.headers_mut().insert("Sec-WebSocket-Protocol", value);
        }
        if let Some(offer) = crate::deflate::client_offer(&config.deflate) {
            let value = HeaderValue::from_str(&offer).map_err(|err| {
                Error::InvalidHeader(format!("Sec-WebSocket-Extensions '{offer}': {err}"))
            })?;
            request
                .headers_mut()
                .insert("Sec-WebSocket-Extensions", value);
        }
        for (name, value) in &config.extra_headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|err| Error::InvalidHeader(format!("header name '{name}': {err}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|err| Error::InvalidHeader(format!("header value '{value}': {err}")))?;
            request.headers_mut().append(name, value);
        }
        let request = ConnectRequest { url: url.to_string(), host: host.clone(), port, secure, request, config };
        self.spawn_connection(&request, false)?;
        self.target = Some((host, port));
        self.multiplayer = request.config.multiplayer;
        self.handshake_timeout = request.config.handshake_timeout;
        self.policy = request.config.reconnect.clone();
        self.request = Some(request);
        self.unique_id = None;
        self.reconnect = Reconnect::Idle;
        self.owed.clear();
        self.gave_up = false;
        Ok(())
    }

    /// Starts the I/O for one connection to `request` (the first or a reconnect attempt) with a
    /// new peer handle; `keep_unread` hands the packets still unread in the previous handle to
    /// the new one (raw mode, reconnecting), else they go with it.
    fn spawn_connection(&mut self, request: &ConnectRequest, keep_unread: bool) -> Result<(), Error> {
        let tls = if request.secure { Some(crate::tls::client(&request.config.tls_client, &request.host)?) } else { None };
        let flow = Arc::new(FlowControl::default());
        let start = Start::Connect {
            id: SERVER_PEER_ID,
            host: request.host.clone(),
            port: request.port,
            request: Box::new(request.request.clone()),
            flow: flow.clone(),
            tls,
        };
        let reactor = ReactorHandle::spawn(start, &request.config)?;
        self.retire_stats();
        self.stats = Some(EndpointStatistics::new(reactor.counters.clone()));
        let peer = PeerHandle::new(SERVER_PEER_ID, flow.clone(), reactor.commands.clone(), &request.config, request.url.clone());
        self.install_peer(peer, &flow, keep_unread);
        self.reactor = Some(reactor);
        self.awaiting_id = None;
        self.established = false;
        self.closing_by_game = false;
        Ok(())
    }

    /// Makes `peer` the server's handle; with `keep_unread`, the packets the game has not taken
    /// from the previous one move to it (counted in `flow`, so back-pressure still holds).
    fn install_peer(&mut self, peer: PeerHandle, flow: &FlowControl, keep_unread: bool) {
        if let (Some(previous), true) = (&self.peer, keep_unread) {
            while let Some(packet) = previous.recv() {
                flow.delivered(packet.data.len());
                peer.push_inbound(packet);
            }
        }
        self.peer = Some(peer);
        self.peer_generation += 1;
    }

    /// Starts the close handshake (code and reason as in `PeerHandle::close`); keep polling until
    /// `ConnectionClosed`. While reconnecting, stops it: `ConnectionClosed` comes at the next poll.
    pub fn disconnect(&mut self, code: u16, reason: &str) -> Result<(), Error> {
        let peer = self.peer.as_ref().ok_or(Error::NotActive)?;
        peer.close(code, reason)?;
        self.closing_by_game = true;
        self.stop_reconnecting();
        Ok(())
    }

    /// Drops the connection at once, without a close frame; `ConnectionClosed` (or, before the
    /// handshake finished, `ConnectionError`) follows from `poll()`. While reconnecting, stops it
    /// as `disconnect` does.
    pub fn abort(&mut self) -> Result<(), Error> {
        let peer = self.peer.as_ref().ok_or(Error::NotActive)?;
        peer.abort();
        self.closing_by_game = true;
        self.stop_reconnecting();
        Ok(())
    }

    /// The game closed while a lost connection was being made again: no further attempt, and
    /// the next `poll` reports `ConnectionClosed`. Does nothing when not reconnecting.
    fn stop_reconnecting(&mut self) {
        if !self.reconnect.is_under_way() {
            return;
        }
        if let Some(mut reactor) = self.reactor.take() {
            reactor.shutdown();
        }
        self.retire_stats();
        if let Some(peer) = &self.peer {
            peer.mark_closed(&Ending::Lost);
        }
        self.reconnect = Reconnect::Idle;
        self.awaiting_id = None;
        self.established = false;
        self.owed.push(ClientEvent::ConnectionClosed { was_clean: false, error: None });
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

    /// Takes in what the I/O thread did since the last call (or, without one, serves the socket
    /// now), starts a reconnect attempt that is due, and appends the events to `out`.
    pub fn poll(&mut self, out: &mut Vec<ClientEvent>) {
        self.poll_at(Instant::now(), out);
    }

    /// [`Client::poll`] at time `now` (reconnect delays and the multiplayer id deadline are
    /// measured against it).
    fn poll_at(&mut self, now: Instant, out: &mut Vec<ClientEvent>) {
        self.gave_up = false;
        out.append(&mut self.owed);
        if let Reconnect::Waiting { attempt, at } = self.reconnect {
            if now >= at {
                self.start_attempt(attempt, now, out);
            }
        }
        if let (Some(stats), Some(peer), Some(_)) = (&mut self.stats, &self.peer, &self.reactor) {
            let established = self.established;
            stats.publish_if_due(|| {
                let (inbound, outbound) = peer.queued_bytes();
                (u64::from(established), inbound as u64, outbound as u64)
            });
        }
        let Some(reactor) = &mut self.reactor else { return };
        if std::mem::take(&mut self.failing) {
            reactor.commands.to_peer(SERVER_PEER_ID, PeerCommand::Fail);
        }
        reactor.serve_inline();
        let events: Vec<ReactorEvent> = reactor.events.try_iter().collect();
        let Some(peer) = self.peer.clone() else { return };
        let mut end = None;
        for event in events {
            match event {
                ReactorEvent::Opened { info, .. } => {
                    let protocol = info.protocol.clone();
                    peer.mark_open(info);
                    if self.multiplayer {
                        // Connected only once the server has said which id we have.
                        self.awaiting_id = Some((protocol, now + self.handshake_timeout));
                    } else {
                        self.report_established(protocol, out);
                    }
                }
                ReactorEvent::Packet { packet, .. } => {
                    peer.push_inbound(packet);
                    if let Some((protocol, _)) = self.awaiting_id.take() {
                        // The id message goes through the queue so its room is freed as usual.
                        let id_message = peer.recv().map(|p| p.data).unwrap_or_default();
                        match multiplayer::parse_id_message(&id_message) {
                            Ok(id) => {
                                self.unique_id = Some(id);
                                self.report_established(protocol, out);
                            }
                            Err(err) => {
                                peer.abort();
                                end = Some(End::NotEstablished(err.to_string()));
                                break;
                            }
                        }
                    } else {
                        out.push(ClientEvent::DataReceived);
                    }
                }
                ReactorEvent::CloseRequested { code, reason, .. } => {
                    peer.mark_close_requested(code, &reason);
                    out.push(ClientEvent::CloseRequested { code, reason });
                }
                ReactorEvent::Closed { ending, .. } => {
                    end = Some(if self.established {
                        End::Closed(ending)
                    } else {
                        let code = match &ending {
                            Ending::Clean { code, .. } => i32::from(*code),
                            Ending::Lost | Ending::Failed { .. } => -1,
                        };
                        End::NotEstablished(format!(
                            "the connection closed before the server sent a multiplayer id (code {code})"
                        ))
                    });
                    break;
                }
                ReactorEvent::ConnectFailed { reason, .. } => {
                    end = Some(End::NotEstablished(reason));
                    break;
                }
                ReactorEvent::Failing { .. } => self.failing = true,
                // Server side only.
                ReactorEvent::HandshakeFailed { .. } | ReactorEvent::HandshakeRequested { .. } | ReactorEvent::OutOfDescriptors { .. } => {}
            }
        }
        if let (None, Some((_, deadline))) = (&end, &self.awaiting_id) {
            if now >= *deadline {
                peer.abort();
                let timeout = self.handshake_timeout;
                end = Some(End::NotEstablished(format!(
                    "the server sent no multiplayer id within {timeout:?} (is it a Godot multiplayer server?)"
                )));
            }
        }
        if let Some(end) = end {
            self.connection_ended(end, &peer, now, out);
        }
    }

    /// The connection is open (and, in multiplayer mode, has its id): reports it, and the end of
    /// a reconnect.
    fn report_established(&mut self, protocol: String, out: &mut Vec<ClientEvent>) {
        self.established = true;
        out.push(ClientEvent::ConnectionEstablished { protocol });
        if self.reconnect.is_under_way() {
            self.reconnect = Reconnect::Idle;
            out.push(ClientEvent::Reconnected);
        }
    }

    /// The connection (or connect attempt) of `peer` is over: ends its I/O and reports it, or
    /// schedules the next reconnect attempt. The peer stays readable until the next connect (or,
    /// reconnecting in raw mode, its unread packets move to the next connection's handle).
    fn connection_ended(&mut self, end: End, peer: &PeerHandle, now: Instant, out: &mut Vec<ClientEvent>) {
        self.awaiting_id = None;
        self.established = false;
        if let Some(mut reactor) = self.reactor.take() {
            reactor.shutdown();
        }
        self.retire_stats();
        match end {
            End::Closed(ending) => {
                // The game closed through the handle (`PeerHandle::close` / `abort`, e.g.
                // `get_peer(1).close()`) when it was closing without the server's close frame.
                let closed_by_game = self.closing_by_game || (peer.ready_state() == ReadyState::Closing && peer.close_code().is_none());
                peer.mark_closed(&ending);
                let was_clean = matches!(ending, Ending::Clean { .. });
                let error = match ending {
                    Ending::Failed { error } => Some(error),
                    Ending::Clean { .. } | Ending::Lost => None,
                };
                // Only a loss the game did not ask for; a clean close by the server only when
                // asked to.
                let reconnect = self.policy.enabled && !closed_by_game && (!was_clean || self.policy.after_clean_close);
                if reconnect {
                    self.unique_id = None;
                    self.schedule_attempt(1, now, error, None, out);
                } else {
                    out.push(ClientEvent::ConnectionClosed { was_clean, error });
                }
            }
            End::NotEstablished(reason) => {
                peer.mark_closed(&Ending::Lost);
                match self.reconnect {
                    Reconnect::Attempting { attempt } if self.policy.exhausted(attempt) => {
                        self.reconnect = Reconnect::Idle;
                        self.gave_up = self.multiplayer;
                        out.push(ClientEvent::ReconnectFailed { attempts: attempt, reason });
                        out.push(ClientEvent::ConnectionClosed { was_clean: false, error: None });
                    }
                    Reconnect::Attempting { attempt } => self.schedule_attempt(attempt + 1, now, None, Some(reason), out),
                    Reconnect::Idle | Reconnect::Waiting { .. } => out.push(ClientEvent::ConnectionError { reason }),
                }
            }
        }
    }

    /// Waits before reconnect attempt `attempt`: meanwhile the server's handle is one that says
    /// CONNECTING and refuses sends.
    fn schedule_attempt(
        &mut self,
        attempt: u32,
        now: Instant,
        error: Option<String>,
        attempt_failure: Option<String>,
        out: &mut Vec<ClientEvent>,
    ) {
        let delay = self.policy.delay(attempt, self.random.f64());
        self.reconnect = Reconnect::Waiting { attempt, at: now + delay };
        if let Some(request) = &self.request {
            let flow = Arc::new(FlowControl::default());
            let waiting = PeerHandle::new(SERVER_PEER_ID, flow.clone(), nowhere(), &request.config, request.url.clone());
            self.install_peer(waiting, &flow, !self.multiplayer);
        }
        out.push(ClientEvent::Reconnecting { attempt, delay, error, attempt_failure });
    }

    /// Starts reconnect attempt `attempt`; one that cannot even start counts as failed.
    fn start_attempt(&mut self, attempt: u32, now: Instant, out: &mut Vec<ClientEvent>) {
        self.reconnect = Reconnect::Attempting { attempt };
        let Some(request) = self.request.take() else { return };
        let started = self.spawn_connection(&request, !request.config.multiplayer);
        self.request = Some(request);
        if let (Err(err), Some(peer)) = (started, self.peer.clone()) {
            self.connection_ended(End::NotEstablished(err.to_string()), &peer, now, out);
        }
    }

    /// The connection ended: its totals leave the process registry.
    fn retire_stats(&mut self) {
        if let Some(stats) = &mut self.stats {
            stats.retire();
        }
    }

    /// Whether the connection is open and, in multiplayer mode, the server has sent our id.
    pub fn is_established(&self) -> bool {
        self.established
    }

    /// Whether a lost connection is being made again (waiting for an attempt or connecting).
    pub fn is_reconnecting(&self) -> bool {
        self.reconnect.is_under_way()
    }

    /// Multiplayer mode: whether the last `poll` gave up reconnecting. The Godot binding reports
    /// the status CONNECTED until the next `poll`, so that Godot's SceneMultiplayer, which saw
    /// CONNECTING during the reconnect, sees CONNECTED become DISCONNECTED and reports
    /// `server_disconnected` (from CONNECTING it would report `connection_failed`).
    pub fn gave_up_in_last_poll(&self) -> bool {
        self.gave_up
    }

    /// Multiplayer mode: the id the server assigned us, once it has arrived.
    pub fn unique_id(&self) -> Option<PeerId> {
        self.unique_id
    }

    /// Ends the connection at once: a 1001 close frame is sent (best effort), the socket closed,
    /// and no further event is reported for it. Stops a reconnect.
    pub fn close_now(&mut self) {
        if let Some(mut reactor) = self.reactor.take() {
            reactor.shutdown();
        }
        self.retire_stats();
        if let Some(peer) = &self.peer {
            peer.mark_closed(&Ending::Lost);
        }
        self.awaiting_id = None;
        self.established = false;
        self.unique_id = None;
        self.reconnect = Reconnect::Idle;
        self.owed.clear();
        self.gave_up = false;
    }

    /// Whether a connection is being made, is open, or is being made again after a loss.
    pub fn is_active(&self) -> bool {
        self.reactor.is_some() || self.reconnect.is_under_way()
    }

    /// The server, as peer 1 (also after the connection ended, until the next connect). While
    /// reconnecting, a handle that is CONNECTING; each connection has its own (see
    /// [`Client::peer_generation`]).
    pub fn peer(&self) -> Option<&PeerHandle> {
        self.peer.as_ref()
    }

    /// Changes whenever [`Client::peer`] starts returning another handle (a connect, a reconnect
    /// attempt, the wait before one).
    pub fn peer_generation(&self) -> u64 {
        self.peer_generation
    }

    /// Host and port given to the last `connect`.
    pub fn target(&self) -> Option<(&str, u16)> {
        self.target.as_ref().map(|(h, p)| (h.as_str(), *p))
    }
}

/// Where the commands of a handle with no connection behind it go: nowhere (every send reports
/// that the I/O has ended). The handle the game sees while waiting for a reconnect attempt.
fn nowhere() -> CommandSender {
    let (sender, _) = std::sync::mpsc::channel();
    CommandSender::new(sender, Wake::Inline { queued: Rc::new(Cell::new(false)), reactor: Weak::new() })
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(mut reactor) = self.reactor.take() {
            reactor.shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    //! The reconnect state machine against our server on loopback. The backoff waits are skipped
    //! by polling at a time past them (`poll_at`), so no test sleeps for a delay.

    use std::net::SocketAddr;

    use super::*;
    use crate::{Packet, Server, ServerEvent};

    /// Long enough that only `poll_at` past it starts an attempt.
    const DELAY: Duration = Duration::from_secs(600);

    fn reconnecting(max_attempts: u32, after_clean_close: bool) -> ConnectionConfig {
        ConnectionConfig {
            reconnect: ReconnectPolicy { enabled: true, initial_delay: DELAY, max_delay: DELAY * 4, max_attempts, after_clean_close },
            ..ConnectionConfig::default()
        }
    }

    fn text(text: &'static str) -> Packet {
        Packet { data: crate::Bytes::from_static(text.as_bytes()), is_text: true }
    }

    fn listening(addr: SocketAddr) -> Server {
        let mut server = Server::new();
        server.listen(addr, ConnectionConfig::default()).expect("listen");
        server
    }

    /// Polls until `done` holds for what the client reported; `skip_waits` polls the client
    /// further ahead each time (an hour per poll), so that any reconnect attempt is due at once.
    /// Panics after 10 s.
    fn pump(
        client: &mut Client,
        server: &mut Server,
        events: &mut Vec<ClientEvent>,
        skip_waits: bool,
        done: impl Fn(&[ClientEvent]) -> bool,
    ) {
        let start = Instant::now();
        let mut server_events = Vec::new();
        let mut ahead = Duration::ZERO;
        while !done(events) {
            server.poll(&mut server_events);
            if skip_waits {
                ahead += Duration::from_secs(3600);
            }
            let now = Instant::now() + ahead;
            client.poll_at(now, events);
            assert!(start.elapsed() < Duration::from_secs(10), "timed out; the client saw {events:?}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn connected(config: ConnectionConfig) -> (Client, Server, Vec<ClientEvent>) {
        let mut server = listening(SocketAddr::from(([127, 0, 0, 1], 0)));
        let url = format!("ws://127.0.0.1:{}/", server.local_addr().unwrap().port());
        let mut client = Client::new();
        client.connect(&url, config).unwrap();
        let mut events = Vec::new();
        pump(&mut client, &mut server, &mut events, false, |e| e.iter().any(|e| matches!(e, ClientEvent::ConnectionEstablished { .. })));
        events.clear();
        (client, server, events)
    }

    fn server_drops_its_clients(server: &mut Server) {
        let mut server_events = Vec::new();
        server.poll(&mut server_events);
        let ids: Vec<PeerId> = server.peer_ids().collect();
        for id in ids {
            server.peer(id).unwrap().abort();
        }
    }

    #[test]
    fn a_lost_connection_is_made_again_after_the_delay() {
        let (mut client, mut server, mut events) = connected(reconnecting(3, false));
        server_drops_its_clients(&mut server);
        pump(&mut client, &mut server, &mut events, false, |e| !e.is_empty());
        let [ClientEvent::Reconnecting { attempt: 1, delay, error: None, attempt_failure: None }] = events[..] else {
            panic!("expected reconnecting(1), got {events:?}");
        };
        assert!(delay >= DELAY / 2 && delay <= DELAY, "{delay:?}");
        // Waiting: CONNECTING, sends refused, nothing started before the delay is over.
        assert!(client.is_active() && client.is_reconnecting() && !client.is_established());
        let peer = client.peer().unwrap().clone();
        assert_eq!(peer.ready_state(), ReadyState::Connecting);
        assert!(matches!(peer.send(text("lost?")), Err(Error::PeerNotOpen(_))));
        client.poll(&mut events);
        assert!(client.reactor.is_none(), "no attempt before the delay");
        events.clear();
        pump(&mut client, &mut server, &mut events, true, |e| e.contains(&ClientEvent::Reconnected));
        assert_eq!(events, vec![ClientEvent::ConnectionEstablished { protocol: String::new() }, ClientEvent::Reconnected]);
        assert!(client.is_established() && !client.is_reconnecting());
        assert_eq!(client.peer().unwrap().ready_state(), ReadyState::Open);
    }

    #[test]
    fn unread_packets_move_to_the_next_connection() {
        let (mut client, mut server, mut events) = connected(reconnecting(3, false));
        let id = server.peer_ids().next().unwrap();
        server.peer(id).unwrap().send(text("before the loss")).unwrap();
        pump(&mut client, &mut server, &mut events, false, |e| e.contains(&ClientEvent::DataReceived));
        server.peer(id).unwrap().abort();
        pump(&mut client, &mut server, &mut events, true, |e| e.contains(&ClientEvent::Reconnected));
        let peer = client.peer().unwrap();
        assert_eq!(peer.recv().map(|p| p.data), Some(crate::Bytes::from_static(b"before the loss")));
        assert!(peer.recv().is_none());
    }

    #[test]
    fn the_client_gives_up_after_the_last_attempt() {
        let (mut client, mut server, mut events) = connected(reconnecting(3, true));
        server.stop();
        pump(&mut client, &mut server, &mut events, true, |e| e.iter().any(|e| matches!(e, ClientEvent::ConnectionClosed { .. })));
        let attempts: Vec<u32> = events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Reconnecting { attempt, .. } => Some(*attempt),
                _ => None,
            })
            .collect();
        assert_eq!(attempts, vec![1, 2, 3]);
        let tail = &events[events.len() - 2..];
        assert!(matches!(tail[0], ClientEvent::ReconnectFailed { attempts: 3, .. }), "{events:?}");
        assert_eq!(tail[1], ClientEvent::ConnectionClosed { was_clean: false, error: None });
        assert!(!events.iter().any(|e| matches!(e, ClientEvent::ConnectionError { .. })), "no connection_error per attempt");
        assert!(!client.is_active());
    }

    #[test]
    fn a_clean_close_by_the_server_ends_the_connection_unless_asked() {
        let (mut client, mut server, mut events) = connected(reconnecting(3, false));
        let id = server.peer_ids().next().unwrap();
        server.peer(id).unwrap().close(1001, "bye").unwrap();
        pump(&mut client, &mut server, &mut events, true, |e| e.iter().any(|e| matches!(e, ClientEvent::ConnectionClosed { .. })));
        assert!(!events.iter().any(|e| matches!(e, ClientEvent::Reconnecting { .. })), "{events:?}");
        assert!(!client.is_active());
    }

    #[test]
    fn the_games_own_close_is_no_loss() {
        let (mut client, mut server, mut events) = connected(reconnecting(3, true));
        client.disconnect(1000, "").unwrap();
        pump(&mut client, &mut server, &mut events, true, |e| e.iter().any(|e| matches!(e, ClientEvent::ConnectionClosed { .. })));
        assert!(!events.iter().any(|e| matches!(e, ClientEvent::Reconnecting { .. })), "{events:?}");
        assert!(!client.is_active());
    }

    #[test]
    fn closing_through_the_peer_handle_is_no_loss_either() {
        for abort in [false, true] {
            let (mut client, mut server, mut events) = connected(reconnecting(3, true));
            if abort {
                client.peer().unwrap().abort();
            } else {
                client.peer().unwrap().close(1000, "").unwrap();
            }
            pump(&mut client, &mut server, &mut events, true, |e| e.iter().any(|e| matches!(e, ClientEvent::ConnectionClosed { .. })));
            assert!(!events.iter().any(|e| matches!(e, ClientEvent::Reconnecting { .. })), "abort {abort}: {events:?}");
        }
    }

    #[test]
    fn closing_while_waiting_stops_the_reconnect() {
        let (mut client, mut server, mut events) = connected(reconnecting(0, false));
        server_drops_its_clients(&mut server);
        pump(&mut client, &mut server, &mut events, false, |e| !e.is_empty());
        events.clear();
        client.disconnect(1000, "").unwrap();
        assert!(!client.is_active());
        client.poll_at(Instant::now() + Duration::from_secs(3600), &mut events);
        assert_eq!(events, vec![ClientEvent::ConnectionClosed { was_clean: false, error: None }]);
        assert!(client.reactor.is_none(), "no attempt after the game closed");
        let mut server_events = Vec::new();
        server.poll(&mut server_events);
        assert!(!server_events.iter().any(|e| matches!(e, ServerEvent::ClientConnected { .. })));
    }

    #[test]
    fn a_first_connect_that_fails_is_not_retried() {
        let mut server = listening(SocketAddr::from(([127, 0, 0, 1], 0)));
        let url = format!("ws://127.0.0.1:{}/", server.local_addr().unwrap().port());
        server.stop();
        let mut client = Client::new();
        client.connect(&url, reconnecting(3, true)).unwrap();
        let mut events = Vec::new();
        pump(&mut client, &mut server, &mut events, true, |e| !e.is_empty());
        assert!(matches!(events[..], [ClientEvent::ConnectionError { .. }]), "{events:?}");
        assert!(!client.is_active());
    }
}
