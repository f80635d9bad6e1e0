//! The I/O thread: one per server or client. It owns every socket, runs the non-blocking
//! handshakes, reads and writes frames, and talks to the game thread through two channels:
//! [`Command`]s in (woken through a `mio::Waker`) and [`ReactorEvent`]s out. Only sockets that
//! are ready are visited, so its cost grows with active peers, not connected ones.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use tungstenite::handshake::client::{ClientHandshake, Request};
use tungstenite::handshake::server::{ErrorResponse, Response, ServerHandshake};
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::http::{HeaderValue, StatusCode};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use crate::config::{ConnectionConfig, Limits};
use crate::tls::{self, NetStream};
use crate::utf8_guard::{self, Utf8Guard};

/// What tungstenite reads and writes: the connection's stream, with incoming text checked early.
type WsStream = Utf8Guard<NetStream>;
use crate::peer::{OpenInfo, Packet, PeerShared};
use crate::{Error, PeerId};

const WAKER: Token = Token(usize::MAX);
const LISTENER: Token = Token(usize::MAX - 1);
/// Read buffer per connection: small, so that idle connections stay cheap.
const READ_BUFFER_SIZE: usize = 4096;
/// Bytes gathered before a write reaches the socket (a flush always writes everything).
const WRITE_BUFFER_SIZE: usize = 64 * 1024;

/// Work the game thread asks of the I/O thread.
#[derive(Debug)]
pub(crate) enum Command {
    Send { id: PeerId, packet: Packet },
    Close { id: PeerId, code: u16, reason: String },
    Abort { id: PeerId },
    ResumeRead { id: PeerId },
    /// The game has handled everything that arrived before the peer broke the protocol: close it
    /// now (see `ReactorEvent::Failing`).
    Fail { id: PeerId },
    SetNoDelay { id: PeerId, enabled: bool },
    SetHeartbeat { id: PeerId, interval: Option<Duration> },
    SetRefuseNew(bool),
    Shutdown,
}

/// What the I/O thread reports to the game thread, in the order it happened.
#[derive(Debug)]
pub(crate) enum ReactorEvent {
    /// The handshake finished; the peer is open.
    Opened { id: PeerId, shared: Arc<PeerShared>, info: OpenInfo },
    /// A complete message arrived.
    Packet { id: PeerId, packet: Packet },
    /// The other side broke the protocol or a limit after the packets reported so far. Reading
    /// has stopped; the game answers `Command::Fail` once it has handled those packets, so that
    /// its answers to them still go out before the close frame (Autobahn's strict behaviour).
    Failing { id: PeerId },
    /// The other side started the close handshake.
    CloseRequested { id: PeerId, code: i32, reason: String },
    /// The connection is gone; `clean` when the close handshake completed. `error` says why we
    /// dropped it when the other side broke the protocol, a limit or the heartbeat.
    Closed { id: PeerId, clean: bool, code: i32, reason: String, error: Option<String> },
    /// A client could not connect or finish its handshake.
    ConnectFailed { reason: String },
    /// An incoming connection failed its handshake and was dropped (server side).
    HandshakeFailed { remote: SocketAddr, reason: String },
}

/// The game thread's end of the command channel; wakes the I/O thread only when it sleeps.
#[derive(Clone, Debug)]
pub(crate) struct CommandSender {
    tx: Sender<Command>,
    waker: Arc<Waker>,
    wake_pending: Arc<AtomicBool>,
}

impl CommandSender {
    /// Queues a command; false when the I/O thread has ended.
    pub(crate) fn send(&self, command: Command) -> bool {
        if self.tx.send(command).is_err() {
            return false;
        }
        if !self.wake_pending.swap(true, Ordering::SeqCst) {
            // A failed wake means the thread is gone; the command is then moot.
            let _ = self.waker.wake();
        }
        true
    }
}

/// What the I/O thread starts with.
pub(crate) enum Start {
    /// Accept connections on this listener (with TLS when a server configuration is given).
    Listen { listener: TcpListener, tls: Option<tls::ServerSide> },
    /// Resolve `host` (on the I/O thread: a name lookup may take time), connect to one of its
    /// addresses and send this upgrade request; the peer gets `id`.
    Connect {
        id: PeerId,
        host: String,
        port: u16,
        request: Request,
        shared: Arc<PeerShared>,
        /// wss://: how to wrap the socket in TLS.
        tls: Option<tls::ClientSide>,
    },
}

/// The game thread's handle on a running I/O thread.
#[derive(Debug)]
pub(crate) struct ReactorHandle {
    pub(crate) commands: CommandSender,
    pub(crate) events: Receiver<ReactorEvent>,
    thread: Option<JoinHandle<()>>,
}

impl ReactorHandle {
    /// Starts the I/O thread.
    pub(crate) fn spawn(start: Start, config: ConnectionConfig) -> Result<Self, Error> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (command_tx, command_rx) = mpsc::channel();
        let (event_tx, event_rx) = mpsc::channel();
        let wake_pending = Arc::new(AtomicBool::new(false));
        let thread_wake_pending = wake_pending.clone();
        let thread = std::thread::Builder::new().name("websocket-rs-io".into()).spawn(move || {
            let mut reactor = Reactor::new(poll, command_rx, thread_wake_pending, event_tx, config);
            if let Err(err) = reactor.start(start) {
                reactor.report_start_failure(err);
                return;
            }
            reactor.run();
        })?;
        Ok(ReactorHandle {
            commands: CommandSender { tx: command_tx, waker, wake_pending },
            events: event_rx,
            thread: Some(thread),
        })
    }

    /// Stops the I/O thread: open peers get a 1001 close frame (best effort) and every socket is
    /// closed. Returns once the thread has ended.
    pub(crate) fn shutdown(&mut self) {
        self.commands.send(Command::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ReactorHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The tungstenite settings of every connection: small buffers, and `limits.max_message_size`
/// for both frames and messages.
pub(crate) fn tungstenite_config(limits: &Limits) -> WebSocketConfig {
    let mut ws_config = WebSocketConfig::default();
    ws_config.read_buffer_size = READ_BUFFER_SIZE;
    ws_config.write_buffer_size = WRITE_BUFFER_SIZE;
    ws_config.max_message_size = Some(limits.max_message_size);
    ws_config.max_frame_size = Some(limits.max_message_size);
    ws_config
}

/// A server-side handshake callback: picks the sub-protocol, adds extra headers and records what
/// the client asked for.
pub(crate) struct AcceptCallback {
    pub(crate) protocols: Arc<Vec<String>>,
    pub(crate) extra_headers: Arc<Vec<(String, String)>>,
    pub(crate) allowed_origins: Arc<Vec<String>>,
    pub(crate) accepted: Rc<RefCell<OpenInfo>>,
}

impl tungstenite::handshake::server::Callback for AcceptCallback {
    fn on_request(self, request: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
        let offered: Vec<&str> = request
            .headers()
            .get_all("Sec-WebSocket-Protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        if !self.allowed_origins.is_empty() {
            if let Some(origin) = request.headers().get("Origin") {
                let origin = origin.to_str().unwrap_or("");
                if !self.allowed_origins.iter().any(|allowed| allowed.eq_ignore_ascii_case(origin)) {
                    let mut refusal = ErrorResponse::new(Some(format!("origin '{origin}' is not allowed")));
                    *refusal.status_mut() = StatusCode::FORBIDDEN;
                    return Err(refusal);
                }
            }
        }
        let mut info = self.accepted.borrow_mut();
        info.resource_name =
            request.uri().path_and_query().map(|pq| pq.as_str().to_string()).unwrap_or_else(|| "/".into());
        if !offered.is_empty() && !self.protocols.is_empty() {
            match self.protocols.iter().find(|p| offered.contains(&p.as_str())) {
                Some(selected) => {
                    info.protocol = selected.clone();
                    if let Ok(value) = HeaderValue::from_str(selected) {
                        response.headers_mut().insert("Sec-WebSocket-Protocol", value);
                    }
                }
                None => {
                    let mut refusal = ErrorResponse::new(Some(format!(
                        "none of the offered sub-protocols ({}) is supported",
                        offered.join(", ")
                    )));
                    *refusal.status_mut() = StatusCode::BAD_REQUEST;
                    return Err(refusal);
                }
            }
        }
        for (name, value) in self.extra_headers.iter() {
            if let (Ok(name), Ok(value)) = (
                tungstenite::http::HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                response.headers_mut().append(name, value);
            }
        }
        Ok(response)
    }
}

type ServerMid = MidHandshake<ServerHandshake<WsStream, AcceptCallback>>;
type ClientMid = MidHandshake<ClientHandshake<WsStream>>;

/// Where one connection is in its life.
enum Stage {
    /// Client: TCP connect under way; further addresses to try if it fails.
    TcpConnecting { stream: TcpStream, rest: Vec<SocketAddr>, request: Request },
    /// Server: reading the upgrade request / writing the response.
    ServerHandshake { mid: ServerMid, accepted: Rc<RefCell<OpenInfo>> },
    /// Client: writing the upgrade request / reading the response.
    ClientHandshake(ClientMid),
    /// The WebSocket is up (possibly closing).
    Open(Box<WebSocket<WsStream>>),
    /// Transient value while a stage is being replaced.
    Gone,
}

struct Conn {
    id: PeerId,
    stage: Stage,
    shared: Arc<PeerShared>,
    remote: Option<SocketAddr>,
    /// Packets and bytes handed to the WebSocket but not yet flushed to the socket.
    unflushed: (usize, usize),
    /// Whether a flush is owed (written data, or a queued pong/close reply).
    dirty: bool,
    we_closed: bool,
    peer_close: Option<(i32, String)>,
    /// The protocol violation waiting for `Command::Fail`: the close frame to send and how the
    /// connection ends.
    failing: Option<(CloseFrame, Ending)>,
    /// Ping interval, when heartbeats are on.
    heartbeat: Option<Duration>,
    /// When the next heartbeat is due (entries in the heap for other times are stale).
    next_heartbeat: Option<Instant>,
    /// When the other side was last heard from (any frame).
    last_heard: Instant,
    /// When the last unanswered ping went out.
    ping_sent: Option<Instant>,
}

/// How a connection ended, as reported to the game.
struct Ending {
    clean: bool,
    code: i32,
    reason: String,
    /// Why we dropped the peer, when it was its fault (protocol, limit, heartbeat).
    error: Option<String>,
}

impl Ending {
    /// The TCP connection was lost or dropped without a close handshake.
    fn lost() -> Self {
        Ending { clean: false, code: -1, reason: String::new(), error: None }
    }
}

struct Reactor {
    poll: Poll,
    commands: Receiver<Command>,
    wake_pending: Arc<AtomicBool>,
    events: Sender<ReactorEvent>,
    config: ConnectionConfig,
    ws_config: WebSocketConfig,
    protocols: Arc<Vec<String>>,
    extra_headers: Arc<Vec<(String, String)>>,
    allowed_origins: Arc<Vec<String>>,
    listener: Option<TcpListener>,
    tls_server: Option<tls::ServerSide>,
    tls_client: Option<tls::ClientSide>,
    refuse_new: bool,
    conns: Slab<Conn>,
    by_id: HashMap<PeerId, usize>,
    handshake_deadlines: VecDeque<(Instant, usize, PeerId)>,
    close_deadlines: VecDeque<(Instant, usize, PeerId)>,
    heartbeats: BinaryHeap<Reverse<(Instant, usize, PeerId)>>,
    to_flush: Vec<usize>,
    running: bool,
}

impl Reactor {
    fn new(
        poll: Poll,
        commands: Receiver<Command>,
        wake_pending: Arc<AtomicBool>,
        events: Sender<ReactorEvent>,
        config: ConnectionConfig,
    ) -> Self {
        let ws_config = tungstenite_config(&config.limits);
        Reactor {
            poll,
            commands,
            wake_pending,
            events,
            protocols: Arc::new(config.protocols.clone()),
            extra_headers: Arc::new(config.extra_headers.clone()),
            allowed_origins: Arc::new(config.allowed_origins.clone()),
            config,
            ws_config,
            listener: None,
            tls_server: None,
            tls_client: None,
            refuse_new: false,
            conns: Slab::new(),
            by_id: HashMap::new(),
            handshake_deadlines: VecDeque::new(),
            close_deadlines: VecDeque::new(),
            heartbeats: BinaryHeap::new(),
            to_flush: Vec::new(),
            running: true,
        }
    }

    fn emit(&self, event: ReactorEvent) {
        // The game side has gone away only when the handle was dropped; then nobody listens.
        let _ = self.events.send(event);
    }

    fn start(&mut self, start: Start) -> io::Result<()> {
        match start {
            Start::Listen { mut listener, tls } => {
                self.poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
                self.listener = Some(listener);
                self.tls_server = tls;
            }
            Start::Connect { id, host, port, request, shared, tls } => {
                self.tls_client = tls;
                let conn = Conn::new(id, Stage::Gone, shared, None);
                let key = self.insert(conn);
                self.handshake_deadlines.push_back((Instant::now() + self.config.handshake_timeout, key, id));
                match (host.as_str(), port).to_socket_addrs() {
                    Ok(addrs) => self.connect_next(key, addrs.collect(), request, Vec::new()),
                    Err(err) => self.fail_connect(key, format!("host '{host}' cannot be resolved: {err}")),
                }
            }
        }
        Ok(())
    }

    /// Only a client is waiting for news at start; a server's listener was bound already.
    fn report_start_failure(&mut self, err: io::Error) {
        self.emit(ReactorEvent::ConnectFailed { reason: format!("the I/O thread could not start: {err}") });
    }

    fn insert(&mut self, conn: Conn) -> usize {
        let id = conn.id;
        let key = self.conns.insert(conn);
        self.by_id.insert(id, key);
        key
    }

    fn run(&mut self) {
        let mut events = Events::with_capacity(1024);
        while self.running {
            let timeout = self.next_deadline().map(|d| d.saturating_duration_since(Instant::now()));
            if let Err(err) = self.poll.poll(&mut events, timeout) {
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                break;
            }
            for event in events.iter() {
                match event.token() {
                    WAKER => self.drain_commands(),
                    LISTENER => self.accept_all(),
                    Token(key) => self.on_ready(key, event.is_readable(), event.is_writable()),
                }
            }
            self.expire_deadlines();
            self.flush_dirty();
        }
        self.close_all();
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.handshake_deadlines.front().map(|d| d.0),
            self.close_deadlines.front().map(|d| d.0),
            self.heartbeats.peek().map(|Reverse(d)| d.0),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn drain_commands(&mut self) {
        self.wake_pending.store(false, Ordering::SeqCst);
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::Send { id, packet } => self.send_packet(id, packet),
                Command::Close { id, code, reason } => self.start_close(id, code, reason),
                Command::Abort { id } => {
                    if let Some(&key) = self.by_id.get(&id) {
                        self.finish(key, Ending::lost());
                    }
                }
                Command::Fail { id } => {
                    if let Some(&key) = self.by_id.get(&id) {
                        self.fail_now(key);
                    }
                }
                Command::ResumeRead { id } => {
                    if let Some(&key) = self.by_id.get(&id) {
                        self.pump_read(key);
                    }
                }
                Command::SetNoDelay { id, enabled } => {
                    if let Some(&key) = self.by_id.get(&id) {
                        if let Some(stream) = self.conns[key].stream() {
                            let _ = stream.set_nodelay(enabled);
                        }
                    }
                }
                Command::SetHeartbeat { id, interval } => {
                    if let Some(&key) = self.by_id.get(&id) {
                        self.set_heartbeat(key, interval);
                    }
                }
                Command::SetRefuseNew(refuse) => self.refuse_new = refuse,
                Command::Shutdown => self.running = false,
            }
        }
    }

    fn accept_all(&mut self) {
        loop {
            let Some(listener) = self.listener.as_ref() else { return };
            let (mut stream, remote) = match listener.accept() {
                Ok(pair) => pair,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                // Out of file descriptors and the like: leave the rest in the backlog for now.
                Err(_) => return,
            };
            if self.refuse_new {
                drop(stream);
                continue;
            }
            if self.config.max_connections.is_some_and(|max| self.conns.len() >= max) {
                // Best effort, on a fresh socket that has room: say why, then close.
                if self.tls_server.is_none() {
                    use std::io::Write;
                    let _ = stream.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 5\r\n\r\n");
                }
                self.emit(ReactorEvent::HandshakeFailed {
                    remote,
                    reason: format!("refused with 503: max_connections ({}) reached", self.conns.len()),
                });
                continue;
            }
            let _ = stream.set_nodelay(self.config.no_delay);
            let id = self.unused_id();
            let key = self.conns.vacant_key();
            if self
                .poll
                .registry()
                .register(&mut stream, Token(key), Interest::READABLE | Interest::WRITABLE)
                .is_err()
            {
                continue;
            }
            let stream = match &self.tls_server {
                Some(tls) => match tls.accept(stream) {
                    Ok(stream) => stream,
                    Err(err) => {
                        self.emit(ReactorEvent::HandshakeFailed { remote, reason: tls::describe_io_error(&err) });
                        continue;
                    }
                },
                None => NetStream::Plain(stream),
            };
            let accepted = Rc::new(RefCell::new(OpenInfo { remote_addr: Some(remote), ..OpenInfo::default() }));
            let callback = AcceptCallback {
                protocols: self.protocols.clone(),
                extra_headers: self.extra_headers.clone(),
                allowed_origins: self.allowed_origins.clone(),
                accepted: accepted.clone(),
            };
            let mid = ServerHandshake::start(Utf8Guard::new(stream), callback, Some(self.ws_config));
            let conn = Conn::new(id, Stage::ServerHandshake { mid, accepted }, Arc::default(), Some(remote));
            let inserted = self.insert(conn);
            debug_assert_eq!(inserted, key);
            self.handshake_deadlines.push_back((Instant::now() + self.config.handshake_timeout, key, id));
            self.advance_handshake(key);
        }
    }

    /// A random id in 2..2^31 that no live connection uses (Godot's `generate_unique_id` range).
    fn unused_id(&self) -> PeerId {
        loop {
            let id = fastrand::i32(2..i32::MAX);
            if !self.by_id.contains_key(&id) {
                return id;
            }
        }
    }

    fn on_ready(&mut self, key: usize, readable: bool, writable: bool) {
        let Some(conn) = self.conns.get(key) else { return };
        match conn.stage {
            Stage::TcpConnecting { .. } => self.check_tcp_connect(key),
            Stage::ServerHandshake { .. } | Stage::ClientHandshake(_) => self.advance_handshake(key),
            Stage::Open(_) => {
                if writable {
                    self.mark_dirty(key);
                }
                if readable {
                    self.pump_read(key);
                }
            }
            Stage::Gone => {}
        }
    }

    /// Client: start a TCP connect to the next address, or report failure when none is left.
    fn connect_next(&mut self, key: usize, mut addrs: Vec<SocketAddr>, request: Request, mut errors: Vec<String>) {
        while !addrs.is_empty() {
            let addr = addrs.remove(0);
            match TcpStream::connect(addr) {
                Ok(mut stream) => {
                    if let Err(err) =
                        self.poll.registry().register(&mut stream, Token(key), Interest::READABLE | Interest::WRITABLE)
                    {
                        errors.push(format!("{addr}: {err}"));
                        continue;
                    }
                    let conn = &mut self.conns[key];
                    conn.remote = Some(addr);
                    conn.stage = Stage::TcpConnecting { stream, rest: addrs, request };
                    return;
                }
                Err(err) => errors.push(format!("{addr}: {err}")),
            }
        }
        let reason = format!("could not connect ({})", errors.join("; "));
        self.fail_connect(key, reason);
    }

    fn check_tcp_connect(&mut self, key: usize) {
        let Stage::TcpConnecting { stream, .. } = &self.conns[key].stage else { return };
        let failure = match stream.take_error() {
            Ok(Some(err)) | Err(err) => Some(err),
            Ok(None) => match stream.peer_addr() {
                Ok(_) => None,
                Err(err) if err.kind() == io::ErrorKind::NotConnected => return, // not yet
                Err(err) => Some(err),
            },
        };
        let Stage::TcpConnecting { mut stream, rest, request } =
            std::mem::replace(&mut self.conns[key].stage, Stage::Gone)
        else {
            return;
        };
        let addr = self.conns[key].remote.map(|a| a.to_string()).unwrap_or_default();
        if let Some(err) = failure {
            let _ = self.poll.registry().deregister(&mut stream);
            self.connect_next(key, rest, request, vec![format!("{addr}: {err}")]);
            return;
        }
        let _ = stream.set_nodelay(self.config.no_delay);
        let stream = match &self.tls_client {
            Some(tls) => match tls.connect(stream) {
                Ok(stream) => stream,
                Err(err) => {
                    self.fail_connect(key, format!("TLS with {addr} failed: {}", tls::describe_io_error(&err)));
                    return;
                }
            },
            None => NetStream::Plain(stream),
        };
        match ClientHandshake::start(Utf8Guard::new(stream), request, Some(self.ws_config)) {
            Ok(mid) => {
                self.conns[key].stage = Stage::ClientHandshake(mid);
                self.advance_handshake(key);
            }
            Err(err) => self.fail_connect(key, format!("handshake with {addr} failed: {err}")),
        }
    }

    fn advance_handshake(&mut self, key: usize) {
        let stage = std::mem::replace(&mut self.conns[key].stage, Stage::Gone);
        match stage {
            Stage::ServerHandshake { mid, accepted } => match mid.handshake() {
                Ok(ws) => {
                    let info = accepted.borrow().clone();
                    self.open(key, ws, info);
                }
                Err(HandshakeError::Interrupted(mid)) => {
                    self.conns[key].stage = Stage::ServerHandshake { mid, accepted };
                }
                Err(HandshakeError::Failure(err)) => {
                    let conn = self.remove(key);
                    if let Some(remote) = conn.remote {
                        self.emit(ReactorEvent::HandshakeFailed { remote, reason: describe_error(&err) });
                    }
                }
            },
            Stage::ClientHandshake(mid) => match mid.handshake() {
                Ok((ws, response)) => {
                    let protocol = response
                        .headers()
                        .get("Sec-WebSocket-Protocol")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    let info = OpenInfo { remote_addr: self.conns[key].remote, protocol, ..OpenInfo::default() };
                    self.open(key, ws, info);
                }
                Err(HandshakeError::Interrupted(mid)) => self.conns[key].stage = Stage::ClientHandshake(mid),
                Err(HandshakeError::Failure(err)) => {
                    let addr = self.conns[key].remote.map(|a| a.to_string()).unwrap_or_default();
                    self.fail_connect(key, format!("handshake with {addr} failed: {}", describe_error(&err)));
                }
            },
            other => self.conns[key].stage = other,
        }
    }

    fn open(&mut self, key: usize, ws: WebSocket<WsStream>, mut info: OpenInfo) {
        info.no_delay = ws.get_ref().get_ref().tcp().and_then(|tcp| tcp.nodelay().ok()).unwrap_or(false);
        let conn = &mut self.conns[key];
        conn.stage = Stage::Open(Box::new(ws));
        conn.last_heard = Instant::now();
        let event = ReactorEvent::Opened { id: conn.id, shared: conn.shared.clone(), info };
        self.emit(event);
        self.set_heartbeat(key, self.config.heartbeat_interval);
        // Data may have arrived together with the handshake.
        self.pump_read(key);
    }

    fn fail_connect(&mut self, key: usize, reason: String) {
        self.remove(key);
        self.emit(ReactorEvent::ConnectFailed { reason });
    }

    fn remove(&mut self, key: usize) -> Conn {
        let mut conn = self.conns.remove(key);
        self.by_id.remove(&conn.id);
        if let Some(stream) = conn.stream() {
            let _ = self.poll.registry().deregister(stream);
        }
        conn
    }

    fn mark_dirty(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if !conn.dirty {
            conn.dirty = true;
            self.to_flush.push(key);
        }
    }

    fn send_packet(&mut self, id: PeerId, packet: Packet) {
        let Some(&key) = self.by_id.get(&id) else { return };
        let conn = &mut self.conns[key];
        let Stage::Open(ws) = &mut conn.stage else { return };
        let len = packet.data.len();
        let message = if packet.is_text && std::str::from_utf8(&packet.data).is_ok() {
            // SAFETY: checked to be UTF-8 just above.
            Message::Text(unsafe { tungstenite::Utf8Bytes::from_bytes_unchecked(packet.data) })
        } else {
            // `Peer::send` only queues text that is valid UTF-8; anything else travels as binary.
            Message::Binary(packet.data)
        };
        conn.unflushed.0 += 1;
        conn.unflushed.1 += len;
        match ws.write(message) {
            Ok(()) => {}
            Err(tungstenite::Error::Io(err)) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) => {
                let ending = ending_for_error(&err);
                self.finish(key, ending);
                return;
            }
        }
        self.mark_dirty(key);
    }

    fn start_close(&mut self, id: PeerId, code: u16, reason: String) {
        let Some(&key) = self.by_id.get(&id) else { return };
        let conn = &mut self.conns[key];
        let Stage::Open(ws) = &mut conn.stage else {
            // Still handshaking: nothing to close gracefully.
            self.finish(key, Ending::lost());
            return;
        };
        conn.we_closed = true;
        let frame = CloseFrame { code: CloseCode::from(code), reason: reason.into() };
        match ws.close(Some(frame)) {
            Ok(()) => {}
            Err(tungstenite::Error::Io(err)) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) => {
                let ending = ending_for_error(&err);
                self.finish(key, ending);
                return;
            }
        }
        self.close_deadlines.push_back((Instant::now() + self.config.close_timeout, key, id));
        self.mark_dirty(key);
    }

    /// Reads every complete message the socket holds, until it would block or the inbound queue
    /// is full (then the socket is left unread: TCP back-pressure).
    fn pump_read(&mut self, key: usize) {
        loop {
            let limits = &self.config.limits;
            let Some(conn) = self.conns.get_mut(key) else { return };
            if conn.failing.is_some() {
                return;
            }
            let Stage::Open(ws) = &mut conn.stage else { return };
            let shared = &conn.shared;
            if shared.inbound_full(limits) {
                shared.read_paused.store(true, Ordering::SeqCst);
                // The game may have drained the queue in between; then carry on ourselves.
                if shared.inbound_full(limits) || !shared.read_paused.swap(false, Ordering::SeqCst) {
                    break;
                }
            }
            let read = ws.read();
            if read.is_ok() {
                conn.last_heard = Instant::now();
            }
            match read {
                Ok(Message::Text(text)) => self.deliver(key, Packet { data: text.into(), is_text: true }),
                Ok(Message::Binary(data)) => self.deliver(key, Packet { data, is_text: false }),
                Ok(Message::Ping(_)) | Ok(Message::Pong(_)) | Ok(Message::Frame(_)) => {}
                Ok(Message::Close(frame)) => {
                    let (code, reason) = match &frame {
                        Some(f) => (i32::from(u16::from(f.code)), f.reason.to_string()),
                        None => (1005, String::new()),
                    };
                    conn.peer_close = Some((code, reason.clone()));
                    if !conn.we_closed {
                        let id = conn.id;
                        self.emit(ReactorEvent::CloseRequested { id, code, reason });
                    }
                }
                Err(tungstenite::Error::Io(err)) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(tungstenite::Error::ConnectionClosed) | Err(tungstenite::Error::AlreadyClosed) => {
                    let ending = match conn.peer_close.clone() {
                        Some((code, reason)) => Ending { clean: true, code, reason, error: None },
                        None => Ending::lost(),
                    };
                    self.finish(key, ending);
                    return;
                }
                Err(err) => {
                    match close_code_for_error(&err) {
                        Some(code) => {
                            // Stop reading; close once the game has answered what came before.
                            let frame = CloseFrame { code, reason: short_reason(&err).into() };
                            conn.failing = Some((frame, ending_for_error(&err)));
                            let id = conn.id;
                            self.emit(ReactorEvent::Failing { id });
                            self.close_deadlines.push_back((Instant::now() + self.config.close_timeout, key, id));
                        }
                        None => self.fail_with_close(key, &err),
                    }
                    return;
                }
            }
        }
        // Replies to pings and close frames are queued by the read; make sure they go out.
        self.mark_dirty(key);
    }

    fn deliver(&mut self, key: usize, packet: Packet) {
        let conn = &self.conns[key];
        conn.shared.inbound_packets.fetch_add(1, Ordering::SeqCst);
        conn.shared.inbound_bytes.fetch_add(packet.data.len(), Ordering::SeqCst);
        self.emit(ReactorEvent::Packet { id: conn.id, packet });
    }

    /// Closes a failing connection: the close frame that says why (RFC 6455 section 7.1.7), then
    /// the connection is dropped.
    fn fail_now(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        let Some((frame, ending)) = conn.failing.take() else { return };
        if let Stage::Open(ws) = &mut conn.stage {
            let _ = ws.close(Some(frame));
            let _ = ws.flush();
        }
        self.finish(key, ending);
    }

    /// A protocol violation or limit breach by the other side: tell it why (RFC 6455 section 7.1.7),
    /// then drop the connection.
    fn fail_with_close(&mut self, key: usize, err: &tungstenite::Error) {
        if let Some(code) = close_code_for_error(err) {
            if let Stage::Open(ws) = &mut self.conns[key].stage {
                let frame = CloseFrame { code, reason: short_reason(err).into() };
                let _ = ws.close(Some(frame));
                let _ = ws.flush();
            }
        }
        self.finish(key, ending_for_error(err));
    }

    fn flush_dirty(&mut self) {
        let keys = std::mem::take(&mut self.to_flush);
        for key in keys.iter().copied() {
            let Some(conn) = self.conns.get_mut(key) else { continue };
            conn.dirty = false;
            let Stage::Open(ws) = &mut conn.stage else { continue };
            match ws.flush() {
                Ok(()) => {
                    let (packets, bytes) = std::mem::take(&mut conn.unflushed);
                    conn.shared.outbound_packets.fetch_sub(packets, Ordering::SeqCst);
                    conn.shared.outbound_bytes.fetch_sub(bytes, Ordering::SeqCst);
                }
                // The writable event will bring us back.
                Err(tungstenite::Error::Io(err)) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(tungstenite::Error::ConnectionClosed) => {
                    // Server side: our close reply went out; the close handshake is complete.
                    let (code, reason) = conn.peer_close.clone().unwrap_or((1005, String::new()));
                    self.finish(key, Ending { clean: true, code, reason, error: None });
                }
                Err(err) => {
                    let ending = ending_for_error(&err);
                    self.finish(key, ending);
                }
            }
        }
        let mut keys = keys;
        keys.clear();
        if self.to_flush.is_empty() {
            self.to_flush = keys;
        }
    }

    fn expire_deadlines(&mut self) {
        let now = Instant::now();
        while let Some(&(deadline, key, id)) = self.handshake_deadlines.front() {
            if deadline > now {
                break;
            }
            self.handshake_deadlines.pop_front();
            let still_handshaking = self.conns.get(key).is_some_and(|c| {
                c.id == id && !matches!(c.stage, Stage::Open(_))
            });
            if still_handshaking {
                let timeout = self.config.handshake_timeout;
                if self.conns[key].is_client_side() {
                    self.fail_connect(key, format!("handshake not finished within {timeout:?}"));
                } else {
                    let conn = self.remove(key);
                    if let Some(remote) = conn.remote {
                        self.emit(ReactorEvent::HandshakeFailed {
                            remote,
                            reason: format!("handshake not finished within {timeout:?}"),
                        });
                    }
                }
            }
        }
        while let Some(&Reverse((due, key, id))) = self.heartbeats.peek() {
            if due > now {
                break;
            }
            self.heartbeats.pop();
            if self.conns.get(key).is_some_and(|c| c.id == id && c.next_heartbeat == Some(due)) {
                self.heartbeat(key, now);
            }
        }
        while let Some(&(deadline, key, id)) = self.close_deadlines.front() {
            if deadline > now {
                break;
            }
            self.close_deadlines.pop_front();
            if self.conns.get(key).is_some_and(|c| c.id == id) {
                if self.conns[key].failing.is_some() {
                    // The game did not poll in time: fail it anyway.
                    self.fail_now(key);
                } else {
                    self.finish(key, Ending::lost());
                }
            }
        }
    }

    /// Turns heartbeats on (the first ping goes out one interval from now) or off.
    fn set_heartbeat(&mut self, key: usize, interval: Option<Duration>) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        let interval = interval.filter(|i| !i.is_zero());
        conn.heartbeat = interval;
        conn.ping_sent = None;
        conn.next_heartbeat = interval.map(|i| Instant::now() + i);
        if let Some(due) = conn.next_heartbeat {
            self.heartbeats.push(Reverse((due, key, conn.id)));
        }
    }

    /// A heartbeat is due: drop a peer that did not answer the last ping, else ping it.
    fn heartbeat(&mut self, key: usize, now: Instant) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        let (Some(interval), Stage::Open(ws)) = (conn.heartbeat, &mut conn.stage) else { return };
        if conn.ping_sent.is_some_and(|sent| conn.last_heard < sent) {
            let frame = CloseFrame { code: CloseCode::Away, reason: "no answer to ping".into() };
            let _ = ws.close(Some(frame));
            let _ = ws.flush();
            let error = format!("no answer to a ping within {interval:?} (heartbeat_interval); dropped");
            self.finish(key, Ending { clean: false, code: -1, reason: String::new(), error: Some(error) });
            return;
        }
        match ws.write(Message::Ping(tungstenite::Bytes::new())) {
            Ok(()) => {}
            Err(tungstenite::Error::Io(err)) if err.kind() == io::ErrorKind::WouldBlock => {}
            // Closing already: no more pings.
            Err(_) => return,
        }
        conn.ping_sent = Some(now);
        let due = now + interval;
        conn.next_heartbeat = Some(due);
        self.heartbeats.push(Reverse((due, key, conn.id)));
        self.mark_dirty(key);
    }

    /// Removes a connection and reports how it ended.
    fn finish(&mut self, key: usize, ending: Ending) {
        if !self.conns.contains(key) {
            return;
        }
        let conn = self.remove(key);
        let was_open = matches!(conn.stage, Stage::Open(_));
        if was_open {
            self.emit(ReactorEvent::Closed {
                id: conn.id,
                clean: ending.clean,
                code: ending.code,
                reason: ending.reason,
                error: ending.error,
            });
        } else if conn.is_client_side() {
            self.emit(ReactorEvent::ConnectFailed { reason: "closed before the handshake finished".into() });
        }
    }

    /// On shutdown: a 1001 close frame to every open peer, best effort, then every socket closes.
    fn close_all(&mut self) {
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            if let Stage::Open(ws) = &mut self.conns[key].stage {
                let frame = CloseFrame { code: CloseCode::Away, reason: "going away".into() };
                let _ = ws.close(Some(frame));
                let _ = ws.flush();
            }
            let conn = self.remove(key);
            if let Stage::Open(_) = conn.stage {
                self.emit(ReactorEvent::Closed { id: conn.id, clean: false, code: -1, reason: String::new(), error: None });
            }
        }
    }
}

impl Conn {
    fn new(id: PeerId, stage: Stage, shared: Arc<PeerShared>, remote: Option<SocketAddr>) -> Self {
        Conn {
            id,
            stage,
            shared,
            remote,
            unflushed: (0, 0),
            dirty: false,
            we_closed: false,
            peer_close: None,
            failing: None,
            heartbeat: None,
            next_heartbeat: None,
            last_heard: Instant::now(),
            ping_sent: None,
        }
    }

    /// Client connections carry the fixed server id 1.
    fn is_client_side(&self) -> bool {
        self.id == crate::SERVER_PEER_ID
    }

    fn stream(&mut self) -> Option<&mut TcpStream> {
        match &mut self.stage {
            Stage::TcpConnecting { stream, .. } => Some(stream),
            Stage::ServerHandshake { mid, .. } => mid.get_mut().get_mut().get_mut().tcp_mut(),
            Stage::ClientHandshake(mid) => mid.get_mut().get_mut().get_mut().tcp_mut(),
            Stage::Open(ws) => ws.get_mut().get_mut().tcp_mut(),
            Stage::Gone => None,
        }
    }
}

/// A readable cause for a failed handshake (TLS causes spelled out).
fn describe_error(err: &tungstenite::Error) -> String {
    match err {
        tungstenite::Error::Io(io) => tls::describe_io_error(io),
        other => other.to_string(),
    }
}

/// The close code owed to a peer that broke the protocol or a limit, if any.
fn close_code_for_error(err: &tungstenite::Error) -> Option<CloseCode> {
    match err {
        tungstenite::Error::Capacity(_) => Some(CloseCode::Size),
        tungstenite::Error::Utf8(_) => Some(CloseCode::Invalid),
        tungstenite::Error::Io(err) if utf8_guard::is_invalid_utf8(err) => Some(CloseCode::Invalid),
        // The TCP connection ended without a close frame: a lost connection, not a violation.
        tungstenite::Error::Protocol(tungstenite::error::ProtocolError::ResetWithoutClosingHandshake) => None,
        tungstenite::Error::Protocol(_) => Some(CloseCode::Protocol),
        _ => None,
    }
}

fn ending_for_error(err: &tungstenite::Error) -> Ending {
    match close_code_for_error(err) {
        Some(code) => {
            let code = i32::from(u16::from(code));
            let hint = if matches!(err, tungstenite::Error::Capacity(_)) { " (over max_message_size)" } else { "" };
            Ending { clean: false, code, reason: short_reason(err), error: Some(format!("closed with {code}: {err}{hint}")) }
        }
        None => Ending::lost(),
    }
}

/// A close reason that fits a close frame (at most 123 bytes).
fn short_reason(err: &tungstenite::Error) -> String {
    let mut text = err.to_string();
    while text.len() > 123 {
        text.pop();
    }
    text
}

