//! One WebSocket connection as a state machine that does no I/O of its own.
//!
//! A [`Connection`] runs over any `Read + Write` stream (a socket, TLS over one, or bytes in
//! memory in the tests) and never reads the clock: time comes in as a `now` argument. Its driver
//! (the reactor, or a test) calls, in this order:
//! - `handle_*` when something happened: the stream is readable or writable
//!   ([`Connection::handle_readable`], [`Connection::handle_writable`]), the game sent a command
//!   ([`Connection::handle_command`]), or the deadline of [`Connection::poll_timeout`] passed
//!   ([`Connection::handle_timeout`]);
//! - [`Connection::flush`] once per round when [`Connection::wants_flush`] says so (writes made
//!   in one round reach the socket in one go);
//! - [`Connection::poll_event`] until it returns `None`, to hand what happened to the game;
//! - [`Connection::is_finished`], after which the connection is dropped.
//!
//! Its life: a client waits for its transport ([`Connection::transport_ready`]: the driver
//! resolves the name and connects TCP), then both sides run the HTTP upgrade, then the
//! connection is open with a [`CloseState`], until it ends with an [`Ending`].

mod close;
mod frame;
mod handshake;
mod head_reader;
mod protocol;
#[cfg(test)]
mod tests;
mod timer;
mod upgrade;

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tungstenite::handshake::client::{ClientHandshake, Request};
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::WebSocket;

pub(crate) use self::close::{CloseState, Ending};
pub(crate) use self::handshake::{OpenInfo, Settings};
pub(crate) use self::upgrade::HANDSHAKE_HEADERS;
use self::close::describe_error;
use self::head_reader::HeadReader;
pub(crate) use self::protocol::{ExtensionError, PerMessageExtension};
use self::protocol::{FlushError, FrameLimits, Incoming, Protocol, ReadError};
use self::timer::{Timer, TimerTable};
use self::upgrade::{Head, HeadError, UpgradeAnswer, Verdict, MAX_REQUEST_HEAD};
use crate::command::PeerCommand;
use crate::deflate::{client_accept, DeflateParams, PerMessageDeflate};
use crate::flow::FlowControl;
use crate::packet::Packet;
use crate::stats::{Refusal, RttEstimator, TrafficCounters};

/// Which end of the connection this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Accepted by a server: reads the upgrade request, sends masked-free frames.
    Server,
    /// Made by a client: sends the upgrade request, masks its frames.
    Client,
}

/// An upgrade request waiting for the game's verdict (`verify_handshakes`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeRequest {
    /// The path and query asked for.
    pub resource_name: String,
    /// Every header of the request, names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The client's address (a trusted proxy's forwarding information applied).
    pub remote: SocketAddr,
}

/// What a connection runs over: a byte stream whose sending side can be ended on its own.
pub(crate) trait Transport: Read + Write {
    /// Ends the sending direction (TCP FIN) while reading goes on: after an HTTP refusal, so
    /// that the client reads the answer and end of stream, not a reset.
    fn shutdown_write(&mut self);

    /// Whether TLS starts only after a PROXY protocol header, read in plain bytes with
    /// [`Transport::peek`] and `read`, then [`Transport::start_tls`].
    fn tls_pending(&self) -> bool {
        false
    }

    /// Copies what has arrived into `buf` without taking it.
    fn peek(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Starts TLS once the PROXY header has been read.
    fn start_tls(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for crate::tls::NetStream {
    fn shutdown_write(&mut self) {
        if let Some(tcp) = self.tcp() {
            let _ = tcp.shutdown(std::net::Shutdown::Write);
        }
    }

    fn tls_pending(&self) -> bool {
        crate::tls::NetStream::tls_pending(self)
    }

    fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        crate::tls::NetStream::peek(self, buf)
    }

    fn start_tls(&mut self) -> io::Result<()> {
        crate::tls::NetStream::start_tls(self)
    }
}

impl Transport for crate::memory::MemoryStream {
    fn shutdown_write(&mut self) {
        self.close_sending();
    }
}

/// What happened on a connection, for the game.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ConnectionEvent {
    /// Server: an upgrade request waits for the game's `AcceptHandshake` or `RejectHandshake`.
    HandshakeRequested(HandshakeRequest),
    /// The handshake finished; the connection is open.
    Opened(OpenInfo),
    /// A complete message arrived.
    Packet(Packet),
    /// The other side broke the protocol or a limit after the packets reported so far. Reading
    /// has stopped; the game answers [`PeerCommand::Fail`] once it has handled those packets,
    /// so that its answers to them still go out before the close frame.
    Failing,
    /// The other side started the close handshake.
    CloseRequested { code: u16, reason: String },
    /// The open connection is gone.
    Closed(Ending),
    /// Client: connecting or the handshake failed; the connection never opened.
    ConnectFailed(String),
    /// Server: the upgrade failed; the connection never opened.
    HandshakeFailed(String),
    /// Server: an HTTP answer that needs no report went out (a health check, or a refusal the
    /// game asked for); the connection never opened.
    Answered,
}

type ClientMid<S> = MidHandshake<ClientHandshake<HeadReader<S>>>;

/// Where a connection is in its life.
enum Stage<S: Transport> {
    /// Client: the driver is resolving the host and connecting TCP; this request goes out then.
    AwaitingTransport { request: Box<Request> },
    /// Server: reading the upgrade request, waiting for the game's verdict, writing the answer.
    ServerUpgrade { stream: S, step: UpgradeStep },
    /// Client: writing the upgrade request, reading the response.
    ClientHandshake { mid: ClientMid<S> },
    /// The WebSocket is up, and this far into closing.
    Open { stream: S, protocol: Box<Protocol>, close: CloseState },
    /// Over: nothing is left to do.
    Ended,
}

/// Where a server's upgrade is.
enum UpgradeStep {
    /// Reading the request head, after a PROXY protocol header when one is expected.
    Reading { buf: Vec<u8>, proxy_header_expected: bool },
    /// Waiting for the game's verdict; bytes that came after the head wait in `after_head`.
    Held { answer: UpgradeAnswer, info: OpenInfo, after_head: Vec<u8> },
    /// Writing the answer (`written` bytes of it are out), then what follows it.
    Answering { response: Vec<u8>, written: usize, then: AfterAnswer },
    /// A refusal is out and the sending side ended; what the client still sends is read and
    /// dropped until it closes or [`LINGER`] passes (closing with unread bytes would reset the
    /// connection and could destroy the answer before the client reads it). Nothing more is
    /// reported.
    Lingering { discarded: usize },
}

/// How long a refused connection is read (and dropped) after its answer, at most.
const LINGER: Duration = Duration::from_secs(1);
/// Most bytes dropped while lingering before the connection is closed anyway.
const MAX_LINGER_BYTES: usize = 64 << 10;

/// What follows the answer to an upgrade request.
enum AfterAnswer {
    /// The 101 went out: the connection opens.
    Open { info: OpenInfo, after_head: Vec<u8> },
    /// A refusal or a health check: the connection lingers, then ends. Its end was reported
    /// when the answer was decided (`HandshakeFailed` or `Answered`), so that the game knows at
    /// once that the request is no longer waiting.
    Close,
}

/// Most bytes read behind a held request's head before the game's verdict (a client should send
/// nothing before the 101; the rest stays in the socket).
const MAX_HELD_AFTER_HEAD: usize = 64 << 10;

/// One WebSocket connection: its stage, timers, heartbeat and send accounting. See the module
/// documentation for how a driver runs it.
pub(crate) struct Connection<S: Transport> {
    role: Role,
    stage: Stage<S>,
    settings: Arc<Settings>,
    flow: Arc<FlowControl>,
    timers: TimerTable,
    remote: Option<SocketAddr>,
    /// Packets and bytes handed to the protocol but not yet flushed to the stream.
    unflushed: (usize, usize),
    /// Whether a flush is owed (written data, or a queued pong or close reply).
    flush_owed: bool,
    /// Ping interval, when heartbeats are on.
    heartbeat: Option<Duration>,
    /// When the other side was last heard from (any frame).
    last_heard: Instant,
    /// When the last unanswered ping went out.
    ping_sent: Option<Instant>,
    /// Pings sent: the last one's payload, which its pong carries back.
    pings: u64,
    /// Whether the pong of the last ping came (a repeated pong gives no second sample).
    rtt_sample_taken: bool,
    /// The round-trip time estimate, from pongs that answer our pings.
    rtt: RttEstimator,
    /// Wire bytes (read, written) already added to the statistics.
    wire_published: (u64, u64),
    events: VecDeque<ConnectionEvent>,
}

impl<S: Transport> Connection<S> {
    fn new(role: Role, stage: Stage<S>, settings: Arc<Settings>, flow: Arc<FlowControl>, now: Instant) -> Self {
        let mut timers = TimerTable::default();
        timers.set(Timer::Handshake, now + settings.handshake_timeout);
        Connection {
            role,
            stage,
            settings,
            flow,
            timers,
            remote: None,
            unflushed: (0, 0),
            flush_owed: false,
            heartbeat: None,
            last_heard: now,
            ping_sent: None,
            pings: 0,
            rtt_sample_taken: false,
            rtt: RttEstimator::default(),
            wire_published: (0, 0),
            events: VecDeque::new(),
        }
    }

    /// Server: a connection accepted from `remote`; call [`Connection::handle_readable`] next,
    /// as the request may be there already.
    pub(crate) fn accept(stream: S, remote: SocketAddr, settings: Arc<Settings>, now: Instant) -> Self {
        Self::accept_with(stream, remote, settings, None, now)
    }

    /// Server: a connection accepted beyond `max_connections`: HTTP 503 goes out at once
    /// (`reason` is reported), whatever the client sends; then it lingers and ends.
    pub(crate) fn refuse_full(stream: S, remote: SocketAddr, settings: Arc<Settings>, reason: String, now: Instant) -> Self {
        let response = upgrade::http_response(503, &[("Retry-After", "5")], "the server is full\n", false);
        let answer = UpgradeStep::Answering { response, written: 0, then: AfterAnswer::Close };
        let mut connection = Self::accept_with(stream, remote, settings, Some(answer), now);
        connection.events.push_back(ConnectionEvent::HandshakeFailed(reason));
        connection
    }

    fn accept_with(stream: S, remote: SocketAddr, settings: Arc<Settings>, answer: Option<UpgradeStep>, now: Instant) -> Self {
        // An IPv4 client of a dual-stack listener is reported as 1.2.3.4, not ::ffff:1.2.3.4.
        let remote = SocketAddr::new(remote.ip().to_canonical(), remote.port());
        let proxy_header_expected = settings.proxy_protocol && settings.trusted_proxies.contains(remote.ip());
        let step = answer.unwrap_or(UpgradeStep::Reading { buf: Vec::new(), proxy_header_expected });
        let mut connection = Connection::new(Role::Server, Stage::ServerUpgrade { stream, step }, settings, Arc::default(), now);
        connection.remote = Some(remote);
        connection
    }

    /// Client: a connection that will send `request` once its transport is ready; the handshake
    /// timer, which covers the TCP connect too, starts now.
    pub(crate) fn connect(request: Request, settings: Arc<Settings>, flow: Arc<FlowControl>, now: Instant) -> Self {
        Connection::new(Role::Client, Stage::AwaitingTransport { request: Box::new(request) }, settings, flow, now)
    }

    /// A connection over a stream whose upgrade is already done, with `deflate` agreed if given
    /// (tests and fuzzing).
    pub(crate) fn upgraded(stream: S, role: Role, settings: Arc<Settings>, deflate: Option<DeflateParams>, now: Instant) -> Self {
        let mut connection = Connection::new(role, Stage::Ended, settings, Arc::default(), now);
        connection.open(stream, Vec::new(), OpenInfo { deflate, ..OpenInfo::default() }, now);
        connection
    }

    /// Client: the transport to `remote` is connected; the upgrade request goes out.
    pub(crate) fn transport_ready(&mut self, stream: S, remote: SocketAddr, now: Instant) {
        let stage = std::mem::replace(&mut self.stage, Stage::Ended);
        let Stage::AwaitingTransport { request } = stage else {
            self.stage = stage;
            return;
        };
        self.remote = Some(remote);
        match ClientHandshake::start(HeadReader::new(stream), *request, Some(self.settings.websocket)) {
            Ok(mid) => {
                self.stage = Stage::ClientHandshake { mid };
                self.advance_handshake(now);
            }
            Err(err) => self.connect_failed(format!("handshake with {remote} failed: {err}")),
        }
    }

    /// Client: no transport could be made (name resolution, every address, TLS); why.
    pub(crate) fn transport_failed(&mut self, reason: String) {
        self.connect_failed(reason);
    }

    /// The other side's address, once known (server: the client's, after a trusted proxy's
    /// forwarding information).
    pub(crate) fn remote(&self) -> Option<SocketAddr> {
        self.remote
    }

    /// The back-pressure counters this connection shares with the game.
    pub(crate) fn flow(&self) -> &Arc<FlowControl> {
        &self.flow
    }

    /// The stream, once there is one and while the connection lives.
    pub(crate) fn stream(&self) -> Option<&S> {
        match &self.stage {
            Stage::ServerUpgrade { stream, .. } => Some(stream),
            Stage::ClientHandshake { mid } => Some(mid.get_ref().get_ref().get_ref()),
            Stage::Open { stream, .. } => Some(stream),
            Stage::AwaitingTransport { .. } | Stage::Ended => None,
        }
    }

    /// See [`Connection::stream`].
    pub(crate) fn stream_mut(&mut self) -> Option<&mut S> {
        match &mut self.stage {
            Stage::ServerUpgrade { stream, .. } => Some(stream),
            Stage::ClientHandshake { mid } => Some(mid.get_mut().get_mut().get_mut()),
            Stage::Open { stream, .. } => Some(stream),
            Stage::AwaitingTransport { .. } | Stage::Ended => None,
        }
    }

    /// Whether the handshake is done and the connection has not ended.
    pub(crate) fn is_open(&self) -> bool {
        matches!(self.stage, Stage::Open { .. })
    }

    /// Whether the connection is over (its last event may still wait in [`Connection::poll_event`]).
    pub(crate) fn is_finished(&self) -> bool {
        matches!(self.stage, Stage::Ended)
    }

    /// The next deadline: call [`Connection::handle_timeout`] when it has passed.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// The next event for the game, oldest first.
    pub(crate) fn poll_event(&mut self) -> Option<ConnectionEvent> {
        self.events.pop_front()
    }

    /// Whether written data, a pong or a close reply waits for [`Connection::flush`].
    pub(crate) fn wants_flush(&self) -> bool {
        self.flush_owed
    }

    /// The stream can be read: advance the handshake, or read every complete message it holds.
    pub(crate) fn handle_readable(&mut self, now: Instant) {
        match self.stage {
            Stage::ServerUpgrade { .. } => self.advance_upgrade(now),
            Stage::ClientHandshake { .. } => self.advance_handshake(now),
            Stage::Open { .. } => self.read_messages(now),
            Stage::AwaitingTransport { .. } | Stage::Ended => {}
        }
    }

    /// The stream can be written: advance the handshake, or owe a flush of what waits.
    pub(crate) fn handle_writable(&mut self, now: Instant) {
        match self.stage {
            Stage::ServerUpgrade { .. } => self.advance_upgrade(now),
            Stage::ClientHandshake { .. } => self.advance_handshake(now),
            Stage::Open { .. } => self.flush_owed = true,
            Stage::AwaitingTransport { .. } | Stage::Ended => {}
        }
    }

    /// Work the game asked for.
    pub(crate) fn handle_command(&mut self, command: PeerCommand, now: Instant) {
        match command {
            PeerCommand::Send(packet) => {
                // `PeerHandle::send` only queues text that is valid UTF-8.
                debug_assert!(!packet.is_text || std::str::from_utf8(&packet.data).is_ok());
                self.send(packet.data.len(), |protocol| protocol.send_message(&packet.data, packet.is_text));
            }
            PeerCommand::SendShared(shared) => self.send(shared.packet.data.len(), |protocol| protocol.send_shared(&shared)),
            PeerCommand::Close { code, reason } => self.start_close(code, reason, now),
            PeerCommand::Abort => self.end(Ending::Lost),
            PeerCommand::ResumeRead => self.read_messages(now),
            PeerCommand::Fail => self.fail_now(),
            PeerCommand::SetHeartbeat(interval) => self.set_heartbeat(interval, now),
            PeerCommand::AcceptHandshake { headers } => self.answer_held(Ok(headers), now),
            PeerCommand::RejectHandshake { status, body } => self.answer_held(Err((status, body)), now),
        }
    }

    /// Acts on every deadline that has passed by `now`.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.expired(now) {
            match timer {
                // A refusal not read in time, or done lingering.
                Timer::Handshake if self.is_refusing() => self.end_lingering(),
                Timer::Handshake if matches!(self.stage, Stage::ServerUpgrade { step: UpgradeStep::Held { .. }, .. }) => {
                    let timeout = self.settings.handshake_timeout;
                    let body = format!("the server did not decide within {timeout:?}");
                    let failure = format!("the game did not answer the handshake within {timeout:?} (handshake_timeout); refused with 503");
                    let response = upgrade::http_response(503, &[], &body, false);
                    self.settings.counters.refused(Refusal::NoVerdict);
                    self.refuse(response, Some(failure), now);
                }
                Timer::Handshake => {
                    let reason = format!("handshake not finished within {:?}", self.settings.handshake_timeout);
                    match self.role {
                        Role::Client => self.connect_failed(reason),
                        Role::Server => self.handshake_failed(reason),
                    }
                }
                Timer::Heartbeat => self.heartbeat(now),
                Timer::Close => match &self.stage {
                    // The game did not answer in time: fail the connection anyway.
                    Stage::Open { close: CloseState::Failing { .. }, .. } => self.fail_now(),
                    // RFC 6455 section 7.1.1: the close handshake is over once both frames
                    // crossed, even if the other side keeps TCP open.
                    Stage::Open { close, .. } => {
                        let ending = close.ending_on_transport_close();
                        self.end(ending);
                    }
                    _ => {}
                },
            }
        }
    }

    /// Writes every frame the protocol holds to the stream.
    pub(crate) fn flush(&mut self) {
        self.flush_owed = false;
        let Stage::Open { stream, protocol, .. } = &mut self.stage else { return };
        let flushed = protocol.flush(stream);
        self.publish_traffic();
        let Stage::Open { close, .. } = &mut self.stage else { return };
        match flushed {
            Ok(()) => {
                let (packets, bytes) = std::mem::take(&mut self.unflushed);
                self.flow.release_outbound(packets, bytes);
                for counts in self.traffic_counters() {
                    counts.flushed(packets, bytes);
                }
            }
            // The writable event will bring us back.
            Err(FlushError::WouldBlock) => {}
            Err(FlushError::Closed) => {
                // Server side: our close reply went out; the close handshake is complete.
                let ending = match close {
                    CloseState::ClosedByPeer { code, reason } | CloseState::Acknowledged { code, reason } => {
                        Ending::Clean { code: *code, reason: std::mem::take(reason) }
                    }
                    _ => Ending::Clean { code: 1005, reason: String::new() },
                };
                self.end(ending);
            }
            Err(FlushError::Lost) => self.end(Ending::Lost),
        }
    }

    /// On shutdown: a 1001 close frame to an open peer (best effort), then the end.
    pub(crate) fn shutdown(&mut self) {
        if let Stage::Open { stream, protocol, .. } = &mut self.stage {
            protocol.close(1001, "going away");
            let _ = protocol.flush(stream);
        }
        self.end(Ending::Lost);
    }

    /// Server: reads the request (held: watches for the client leaving), or writes the answer.
    fn advance_upgrade(&mut self, now: Instant) {
        let Stage::ServerUpgrade { stream, step } = &mut self.stage else { return };
        match step {
            UpgradeStep::Reading { proxy_header_expected: true, .. } if stream.tls_pending() => self.read_proxy_header_before_tls(now),
            UpgradeStep::Reading { buf, proxy_header_expected } => {
                let limit = MAX_REQUEST_HEAD + if *proxy_header_expected { crate::proxy::MAX_PROXY_HEADER } else { 0 };
                let closed = match read_into(stream, buf, limit) {
                    Ok(closed) => closed,
                    Err(err) => return self.handshake_failed(format!("reading the upgrade request failed: {}", describe_io(&err))),
                };
                if *proxy_header_expected {
                    match crate::proxy::parse_proxy_header(buf) {
                        Ok(crate::proxy::ProxyHeader::Incomplete) if closed => {
                            return self.handshake_failed("closed during the PROXY protocol header".into());
                        }
                        Ok(crate::proxy::ProxyHeader::Incomplete) => return,
                        Ok(crate::proxy::ProxyHeader::Complete { len, source }) => {
                            buf.drain(..len);
                            *proxy_header_expected = false;
                            if let Some(source) = source {
                                self.remote = Some(source);
                            }
                        }
                        Err(reason) => return self.handshake_failed(format!("bad PROXY protocol header: {reason}")),
                    }
                }
                let Stage::ServerUpgrade { step: UpgradeStep::Reading { buf, .. }, .. } = &mut self.stage else { return };
                match upgrade::parse_head(buf) {
                    Ok(Head::Partial) if closed => self.handshake_failed("closed before the upgrade request was complete".into()),
                    Ok(Head::Partial) => {}
                    Ok(Head::Complete(head, len)) => {
                        let after_head = buf.split_off(len);
                        self.on_request(head, after_head, now);
                    }
                    Err(HeadError::TooLarge) => {
                        let reason = format!("the request head is larger than {MAX_REQUEST_HEAD} bytes or has too many headers");
                        let response = upgrade::http_response(431, &[], &reason, false);
                        self.settings.counters.refused(Refusal::BadRequest);
                        self.refuse(response, Some(format!("refused with 431: {reason}")), now);
                    }
                    Err(HeadError::Malformed(reason)) => self.handshake_failed(reason),
                }
            }
            UpgradeStep::Held { after_head, .. } => {
                let limit = after_head.len().max(MAX_HELD_AFTER_HEAD);
                match read_into(stream, after_head, limit) {
                    Ok(false) => {}
                    Ok(true) => self.handshake_failed("the client left before the game answered its handshake".into()),
                    Err(err) => self.handshake_failed(format!("the connection failed while its handshake was held: {}", describe_io(&err))),
                }
            }
            UpgradeStep::Answering { .. } => self.write_answer(now),
            UpgradeStep::Lingering { discarded, .. } => {
                let mut chunk = [0u8; 4096];
                loop {
                    match stream.read(&mut chunk) {
                        Ok(0) => return self.end_lingering(),
                        Ok(n) => {
                            *discarded += n;
                            if *discarded > MAX_LINGER_BYTES {
                                return self.end_lingering();
                            }
                        }
                        Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                        Err(_) => return self.end_lingering(),
                    }
                }
            }
        }
    }

    /// Server: a refused connection has lingered long enough: it ends (its end was reported).
    fn end_lingering(&mut self) {
        self.stage = Stage::Ended;
        self.timers.clear();
    }

    /// Server: whether this connection is being refused (its answer going out, or lingering):
    /// it does not count toward `max_connections`.
    pub(crate) fn is_refusing(&self) -> bool {
        matches!(
            self.stage,
            Stage::ServerUpgrade { step: UpgradeStep::Answering { then: AfterAnswer::Close, .. } | UpgradeStep::Lingering { .. }, .. }
        )
    }

    /// Server, wss:// behind a trusted proxy with the PROXY protocol: reads exactly the PROXY
    /// header in plain bytes (peeking until it is complete, so that no TLS byte is taken), starts
    /// TLS, and goes on reading the request through it.
    fn read_proxy_header_before_tls(&mut self, now: Instant) {
        let Stage::ServerUpgrade { stream, step: UpgradeStep::Reading { proxy_header_expected, .. } } = &mut self.stage else { return };
        let mut peeked = [0u8; crate::proxy::MAX_PROXY_HEADER];
        let available = match stream.peek(&mut peeked) {
            Ok(0) => return self.handshake_failed("closed during the PROXY protocol header".into()),
            Ok(n) => n,
            // A readable event comes when more bytes arrive.
            Err(err) if err.kind() == io::ErrorKind::WouldBlock || err.kind() == io::ErrorKind::Interrupted => return,
            Err(err) => return self.handshake_failed(format!("reading the PROXY protocol header failed: {}", describe_io(&err))),
        };
        let (len, source) = match crate::proxy::parse_proxy_header(&peeked[..available]) {
            Ok(crate::proxy::ProxyHeader::Incomplete) => return,
            Ok(crate::proxy::ProxyHeader::Complete { len, source }) => (len, source),
            Err(reason) => return self.handshake_failed(format!("bad PROXY protocol header: {reason}")),
        };
        // The header's bytes are in the socket already (peeked): take exactly them.
        let mut taken = 0;
        while taken < len {
            match stream.read(&mut peeked[taken..len]) {
                Ok(0) => return self.handshake_failed("closed during the PROXY protocol header".into()),
                Ok(n) => taken += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return self.handshake_failed(format!("reading the PROXY protocol header failed: {}", describe_io(&err))),
            }
        }
        if let Err(err) = stream.start_tls() {
            return self.handshake_failed(format!("TLS after the PROXY protocol header failed: {}", describe_io(&err)));
        }
        *proxy_header_expected = false;
        if let Some(source) = source {
            self.remote = Some(source);
        }
        // The TLS hello may have come with the header: read on.
        self.advance_upgrade(now);
    }

    /// Server: a whole request head came: apply a trusted proxy's forwarding headers, then answer
    /// it, or hold it for the game.
    fn on_request(&mut self, head: upgrade::RequestHead, after_head: Vec<u8>, now: Instant) {
        if self.remote.is_some_and(|peer| self.settings.trusted_proxies.contains(peer.ip())) {
            let forwarded: Vec<&str> = head.values("forwarded").collect();
            let x_forwarded_for: Vec<&str> = head.values("x-forwarded-for").collect();
            // Without a client in them, the proxy's own address stands.
            if let Some(client) = crate::proxy::forwarded_client(&forwarded, &x_forwarded_for, &self.settings.trusted_proxies) {
                self.remote = Some(client);
            }
        }
        match upgrade::decide(&head, &self.settings) {
            Verdict::Drop(reason) => {
                self.settings.counters.refused(Refusal::NotWebSocket);
                self.end_handshake(reason);
            }
            Verdict::Answer { response, failure, refusal } => {
                match refusal {
                    Some(why) => self.settings.counters.refused(why),
                    None => _ = self.settings.counters.health_checks.fetch_add(1, Ordering::Relaxed),
                }
                self.refuse(response, failure, now);
            }
            Verdict::Upgrade(answer) => {
                let info = OpenInfo {
                    remote_addr: self.remote,
                    protocol: answer.protocol.clone(),
                    resource_name: head.target,
                    deflate: answer.deflate.as_ref().map(|(params, _)| *params),
                    request_headers: head.headers,
                    ..OpenInfo::default()
                };
                if self.settings.verify_handshakes {
                    let request = HandshakeRequest {
                        resource_name: info.resource_name.clone(),
                        headers: info.request_headers.clone(),
                        remote: self.remote.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
                    };
                    if let Stage::ServerUpgrade { step, .. } = &mut self.stage {
                        *step = UpgradeStep::Held { answer, info, after_head };
                    }
                    self.events.push_back(ConnectionEvent::HandshakeRequested(request));
                } else {
                    let response = upgrade::switching_protocols(&answer, &self.settings.extra_headers, &[]);
                    self.answer(response, AfterAnswer::Open { info, after_head }, now);
                }
            }
        }
    }

    /// Server: the game's verdict on a held request: accept with these extra headers, or refuse
    /// with this HTTP status and body. Ignored when no request is held.
    fn answer_held(&mut self, verdict: Result<Vec<(String, String)>, (u16, String)>, now: Instant) {
        let Stage::ServerUpgrade { step: step @ UpgradeStep::Held { .. }, .. } = &mut self.stage else { return };
        // Replaced at once by `answer` below.
        let placeholder = UpgradeStep::Reading { buf: Vec::new(), proxy_header_expected: false };
        let UpgradeStep::Held { answer, info, after_head } = std::mem::replace(step, placeholder) else { return };
        match verdict {
            Ok(headers) => {
                let response = upgrade::switching_protocols(&answer, &self.settings.extra_headers, &headers);
                self.answer(response, AfterAnswer::Open { info, after_head }, now);
            }
            // The game refused on purpose: nothing to report back to it.
            Err((status, body)) => {
                self.settings.counters.refused(Refusal::Rejected);
                self.refuse(upgrade::http_response(status, &[], &body, false), None, now);
            }
        }
    }

    /// Server: answers with `response` and closes, reporting now that the request is over:
    /// `failure`, or `Answered` when there is nothing to report.
    fn refuse(&mut self, response: Vec<u8>, failure: Option<String>, now: Instant) {
        self.events.push_back(match failure {
            Some(reason) => ConnectionEvent::HandshakeFailed(reason),
            None => ConnectionEvent::Answered,
        });
        self.answer(response, AfterAnswer::Close, now);
    }

    /// Server: starts writing `response`; `then` follows once it is out.
    fn answer(&mut self, response: Vec<u8>, then: AfterAnswer, now: Instant) {
        if let Stage::ServerUpgrade { step, .. } = &mut self.stage {
            *step = UpgradeStep::Answering { response, written: 0, then };
            self.write_answer(now);
        }
    }

    /// Server: writes what is left of the answer; once all of it is out, opens the connection or
    /// ends it.
    fn write_answer(&mut self, now: Instant) {
        let Stage::ServerUpgrade { stream, step: UpgradeStep::Answering { response, written, .. } } = &mut self.stage else { return };
        let result = loop {
            if *written == response.len() {
                break stream.flush();
            }
            match stream.write(&response[*written..]) {
                Ok(0) => break Err(io::Error::new(io::ErrorKind::WriteZero, "the socket took no bytes")),
                Ok(n) => *written += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => break Err(err),
            }
        };
        match result {
            Ok(()) => {}
            // The writable event brings us back.
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
            Err(err) => {
                let closing = matches!(self.stage, Stage::ServerUpgrade { step: UpgradeStep::Answering { then: AfterAnswer::Close, .. }, .. });
                if closing {
                    // Its end was reported already.
                    self.stage = Stage::Ended;
                    self.timers.clear();
                    return;
                }
                return self.handshake_failed(format!("writing the upgrade answer failed: {}", describe_io(&err)));
            }
        }
        let Stage::ServerUpgrade { mut stream, step: UpgradeStep::Answering { then, .. } } = std::mem::replace(&mut self.stage, Stage::Ended)
        else {
            return;
        };
        match then {
            AfterAnswer::Open { info, after_head } => self.open(stream, after_head, info, now),
            AfterAnswer::Close => {
                stream.shutdown_write();
                self.stage = Stage::ServerUpgrade { stream, step: UpgradeStep::Lingering { discarded: 0 } };
                self.timers.set(Timer::Handshake, now + LINGER);
                // The client may have closed already.
                self.advance_upgrade(now);
            }
        }
    }

    fn advance_handshake(&mut self, now: Instant) {
        match std::mem::replace(&mut self.stage, Stage::Ended) {
            Stage::ClientHandshake { mid } => match mid.handshake() {
                Ok((ws, response)) => {
                    let headers = response.headers();
                    let protocol =
                        headers.get("Sec-WebSocket-Protocol").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                    // Several extension headers are one comma-separated list (RFC 7230 3.2.2).
                    let extensions: Vec<&str> =
                        headers.get_all("Sec-WebSocket-Extensions").iter().map(|v| v.to_str().unwrap_or("\u{fffd}")).collect();
                    let answer = (!extensions.is_empty()).then(|| extensions.join(", "));
                    let deflate = match client_accept(&self.settings.deflate, answer.as_deref()) {
                        Ok(deflate) => deflate,
                        Err(err) => {
                            // RFC 6455 4.1: an extension answer we cannot use fails the connection.
                            let remote = self.remote.map(|a| a.to_string()).unwrap_or_default();
                            return self.connect_failed(format!("handshake with {remote} failed: {err}"));
                        }
                    };
                    let (stream, after_head) = into_stream(ws);
                    let info = OpenInfo { remote_addr: self.remote, protocol, deflate, ..OpenInfo::default() };
                    self.open(stream, after_head, info, now);
                }
                Err(HandshakeError::Interrupted(mid)) => self.stage = Stage::ClientHandshake { mid },
                Err(HandshakeError::Failure(err)) => {
                    let remote = self.remote.map(|a| a.to_string()).unwrap_or_default();
                    self.connect_failed(format!("handshake with {remote} failed: {}", describe_error(&err)));
                }
            },
            other => self.stage = other,
        }
    }

    /// The upgrade is done: our framing takes over the stream, starting with `after_head`, the
    /// bytes that came behind the HTTP head.
    fn open(&mut self, stream: S, after_head: Vec<u8>, info: OpenInfo, now: Instant) {
        let limits = FrameLimits {
            max_message_size: self.settings.limits.max_message_size,
            max_frame_size: self.settings.limits.max_message_size,
        };
        let extension = info.deflate.map(|params| {
            Box::new(PerMessageDeflate::new(
                self.role,
                params,
                &self.settings.deflate,
            )) as Box<dyn PerMessageExtension>
        });
        let protocol = Box::new(Protocol::new(self.role, limits, after_head, extension));
        self.stage = Stage::Open { stream, protocol, close: CloseState::Active };
        self.timers.stop(Timer::Handshake);
        self.last_heard = now;
        self.flow.traffic.heard(now);
        self.settings.counters.opened.fetch_add(1, Ordering::Relaxed);
        self.events.push_back(ConnectionEvent::Opened(info));
        self.set_heartbeat(self.settings.heartbeat_interval, now);
        if self.heartbeat.is_some() {
            // The first ping at once, so that the round-trip time is known early.
            self.ping(now);
        }
        // Data may have arrived together with the handshake.
        self.read_messages(now);
    }

    /// Reads every complete message the stream holds, until it would block or the game's queue
    /// is full (then the stream is left unread: TCP back-pressure).
    fn read_messages(&mut self, now: Instant) {
        loop {
            let Stage::Open { stream, protocol, close } = &mut self.stage else { return };
            if matches!(close, CloseState::Failing { .. }) {
                return;
            }
            if self.flow.pause_if_full(&self.settings.limits) {
                break;
            }
            let read = protocol.read(stream);
            if read.is_ok() {
                // Published with the wire bytes, once per read.
                self.last_heard = now;
            }
            match read {
                Ok(Incoming::Message(packet)) => self.deliver(packet),
                Ok(Incoming::Ping) => {}
                Ok(Incoming::Pong(payload)) => self.on_pong(&payload, now),
                Ok(Incoming::Close { code, reason }) => {
                    if matches!(close, CloseState::Active) {
                        self.events.push_back(ConnectionEvent::CloseRequested { code, reason: reason.clone() });
                        *close = CloseState::ClosedByPeer { code, reason };
                        self.timers.set(Timer::Close, now + self.settings.close_timeout);
                    } else {
                        *close = CloseState::Acknowledged { code, reason };
                    }
                }
                Err(ReadError::WouldBlock) => break,
                Err(ReadError::Closed) => {
                    let ending = close.ending_on_transport_close();
                    self.end(ending);
                    return;
                }
                Err(ReadError::Lost) => {
                    self.end(Ending::Lost);
                    return;
                }
                Err(ReadError::Violation(violation)) => {
                    // Stop reading; close once the game has answered what came before.
                    *close = CloseState::failing(&violation);
                    self.events.push_back(ConnectionEvent::Failing);
                    self.timers.set(Timer::Close, now + self.settings.close_timeout);
                    return;
                }
            }
        }
        self.publish_traffic();
        // Replies to pings and close frames are queued by the read; make sure they go out.
        self.flush_owed = true;
    }

    fn deliver(&mut self, packet: Packet) {
        let len = packet.data.len();
        self.flow.delivered(len);
        for counts in self.traffic_counters() {
            counts.delivered(len);
        }
        self.events.push_back(ConnectionEvent::Packet(packet));
    }

    /// Publishes to the statistics when the other side was last heard from, and the wire bytes
    /// the protocol read and wrote since the last call.
    fn publish_traffic(&mut self) {
        let Stage::Open { protocol, .. } = &self.stage else { return };
        self.flow.traffic.heard(self.last_heard);
        let (read, written) = protocol.wire_bytes();
        let (new_read, new_written) = (read - self.wire_published.0, written - self.wire_published.1);
        if new_read == 0 && new_written == 0 {
            return;
        }
        self.wire_published = (read, written);
        for counts in self.traffic_counters() {
            counts.wire(new_read, new_written);
        }
    }

    /// The traffic counts this connection adds to: its own, and its endpoint's.
    fn traffic_counters(&self) -> [&TrafficCounters; 2] {
        [&self.flow.traffic.counts, &self.settings.counters.traffic]
    }

    /// A pong came: when it answers our last ping (same payload), a round-trip time sample.
    fn on_pong(&mut self, payload: &[u8], now: Instant) {
        let Some(sent) = self.ping_sent else { return };
        if payload != self.pings.to_be_bytes() || self.rtt_sample_taken {
            return;
        }
        self.rtt_sample_taken = true;
        let old = (self.rtt.samples > 0).then_some(self.rtt.smoothed);
        self.rtt.sample(now.saturating_duration_since(sent));
        self.flow.traffic.set_rtt(&self.rtt);
        self.settings.counters.rtt_changed(old, Some(self.rtt.smoothed));
    }

    /// Queues a message of `len` bytes with `queue` (false: not queued).
    fn send(&mut self, len: usize, queue: impl FnOnce(&mut Protocol) -> bool) {
        // Answers to what came before a violation still go out before the failing close.
        let queued = match &mut self.stage {
            Stage::Open { protocol, close: CloseState::Active | CloseState::Failing { .. }, .. } => queue(protocol),
            _ => false,
        };
        if !queued {
            // Closing or gone: the game learns that from the close events; free the room.
            self.flow.release_outbound(1, len);
            return;
        }
        self.unflushed.0 += 1;
        self.unflushed.1 += len;
        self.flush_owed = true;
    }

    fn start_close(&mut self, code: u16, reason: String, now: Instant) {
        let Stage::Open { protocol, close, .. } = &mut self.stage else {
            // Still handshaking: nothing to close gracefully.
            return self.end(Ending::Lost);
        };
        if !matches!(close, CloseState::Active) {
            return;
        }
        *close = CloseState::ClosedByUs;
        protocol.close(code, &reason);
        self.timers.set(Timer::Close, now + self.settings.close_timeout);
        self.flush_owed = true;
    }

    /// Closes a failing connection: the close frame that says why (RFC 6455 section 7.1.7), then
    /// the connection is dropped.
    fn fail_now(&mut self) {
        let Stage::Open { stream, protocol, close } = &mut self.stage else { return };
        let CloseState::Failing { code, reason, error } = std::mem::replace(close, CloseState::Active) else { return };
        protocol.close(code, &reason);
        let _ = protocol.flush(stream);
        self.end(Ending::Failed { error });
    }

    /// Turns heartbeats on (the first ping goes out one interval from now) or off.
    fn set_heartbeat(&mut self, interval: Option<Duration>, now: Instant) {
        let interval = interval.filter(|i| !i.is_zero());
        self.heartbeat = interval;
        self.ping_sent = None;
        match interval {
            Some(interval) if self.is_open() => self.timers.set(Timer::Heartbeat, now + interval),
            _ => self.timers.stop(Timer::Heartbeat),
        }
    }

    /// A heartbeat is due: drop a peer that did not answer the last ping, else ping it.
    fn heartbeat(&mut self, now: Instant) {
        let (Some(interval), Stage::Open { stream, protocol, .. }) = (self.heartbeat, &mut self.stage) else { return };
        if self.ping_sent.is_some_and(|sent| self.last_heard < sent) {
            protocol.close(1001, "no answer to ping");
            let _ = protocol.flush(stream);
            let error = format!("no answer to a ping within {interval:?} (heartbeat_interval); dropped");
            return self.end(Ending::Failed { error });
        }
        self.timers.set(Timer::Heartbeat, now + interval);
        self.ping(now);
    }

    /// Sends the next ping (its payload: how many were sent, which its pong carries back).
    fn ping(&mut self, now: Instant) {
        let Stage::Open { protocol, .. } = &mut self.stage else { return };
        let payload = (self.pings + 1).to_be_bytes();
        if !protocol.send_ping(&payload) {
            // Closing already: no more pings.
            self.timers.stop(Timer::Heartbeat);
            return;
        }
        self.pings += 1;
        self.ping_sent = Some(now);
        self.rtt_sample_taken = false;
        self.flush_owed = true;
    }

    fn connect_failed(&mut self, reason: String) {
        self.stage = Stage::Ended;
        self.timers.clear();
        self.events.push_back(ConnectionEvent::ConnectFailed(reason));
    }

    fn handshake_failed(&mut self, reason: String) {
        self.settings.counters.failed_handshakes.fetch_add(1, Ordering::Relaxed);
        self.end_handshake(reason);
    }

    /// Ends a connection whose handshake did not finish, and says why.
    fn end_handshake(&mut self, reason: String) {
        self.stage = Stage::Ended;
        self.timers.clear();
        self.events.push_back(ConnectionEvent::HandshakeFailed(reason));
    }

    /// Ends the connection and reports how: `Closed` for an open one; a client that never opened
    /// reports that connecting failed.
    fn end(&mut self, ending: Ending) {
        self.publish_traffic();
        self.forget_rtt();
        let stage = std::mem::replace(&mut self.stage, Stage::Ended);
        self.timers.clear();
        self.flush_owed = false;
        match stage {
            Stage::Open { .. } => self.events.push_back(ConnectionEvent::Closed(ending)),
            Stage::Ended => {}
            _ if self.role == Role::Client => {
                self.events.push_back(ConnectionEvent::ConnectFailed("closed before the handshake finished".into()));
            }
            _ => {}
        }
    }
}

impl<S: Transport> Connection<S> {
    /// Takes this connection's round-trip time out of the endpoint's mean.
    fn forget_rtt(&mut self) {
        if self.rtt.samples > 0 {
            self.settings.counters.rtt_changed(Some(self.rtt.smoothed), None);
            self.rtt = RttEstimator::default();
        }
    }
}

impl<S: Transport> Drop for Connection<S> {
    fn drop(&mut self) {
        self.forget_rtt();
    }
}

/// Reads what `stream` holds into `buf`, until it would block or `buf` has `limit` bytes.
/// Ok(true) when the other side closed.
fn read_into<S: Read>(stream: &mut S, buf: &mut Vec<u8>, limit: usize) -> io::Result<bool> {
    let mut chunk = [0u8; 4096];
    while buf.len() < limit {
        let wanted = (limit - buf.len()).min(chunk.len());
        match stream.read(&mut chunk[..wanted]) {
            Ok(0) => return Ok(true),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(err) => return Err(err),
        }
    }
    Ok(false)
}

/// An I/O error of the upgrade, TLS causes spelled out.
fn describe_io(err: &io::Error) -> String {
    crate::tls::describe_io_error(err)
}

/// The stream of a finished handshake and the bytes read after its HTTP head (tungstenite read
/// no further: [`HeadReader`] stops it at the head's end).
fn into_stream<S: Read + Write>(ws: WebSocket<HeadReader<S>>) -> (S, Vec<u8>) {
    ws.into_inner().into_parts()
}
