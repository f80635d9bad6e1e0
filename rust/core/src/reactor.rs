//! The reactor: it serves the sockets of one server or client, on its own I/O thread or, when
//! `ConnectionConfig::io_thread` is off, inside the game's `poll()`. It only dispatches: mio readiness goes to the
//! [`Connection`] of that socket, commands from the game go to the connection they name, and one
//! deadline heap, fed by each connection's `poll_timeout()`, wakes it for timers. What each
//! connection reports goes to the game as [`ReactorEvent`]s. Only ready sockets and due timers
//! are visited, so its cost grows with active peers, not connected ones. Accepting lives in
//! `listener.rs`, connecting in `connect.rs`, each connection's protocol in `connection/`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Poll, Token, Waker};
use slab::Slab;
use tungstenite::handshake::client::Request;

use crate::command::{Command, CommandSender, PeerCommand, Wake};
use crate::config::ConnectionConfig;
use crate::connect::{self, Connecting, Progress};
use crate::connection::{Connection, ConnectionEvent, Ending, HandshakeRequest, OpenInfo, Settings};
use crate::flow::FlowControl;
use crate::listener::{Accepted, Listener};
use crate::packet::Packet;
use crate::stats::EndpointCounters;
use crate::tls::{self, NetStream};
use crate::{Error, PeerId};

/// What a connection reads and writes: TCP, or TLS over it.
type WsStream = NetStream;

const WAKER: Token = Token(usize::MAX);
const LISTENER: Token = Token(usize::MAX - 1);

/// What the I/O thread reports to the game thread, in the order it happened.
#[derive(Debug)]
pub(crate) enum ReactorEvent {
    /// The handshake finished; the peer is open.
    Opened { id: PeerId, flow: Arc<FlowControl>, info: OpenInfo },
    /// A complete message arrived.
    Packet { id: PeerId, packet: Packet },
    /// The other side broke the protocol or a limit after the packets reported so far (see
    /// `ConnectionEvent::Failing`): the game answers `PeerCommand::Fail` once it handled them.
    Failing { id: PeerId },
    /// The other side started the close handshake.
    CloseRequested { id: PeerId, code: u16, reason: String },
    /// The connection is gone, and how it ended.
    Closed { id: PeerId, ending: Ending },
    /// A client could not connect or finish its handshake.
    ConnectFailed { reason: String },
    /// Server: an upgrade request waits for the game's verdict (`verify_handshakes`).
    HandshakeRequested { id: PeerId, request: HandshakeRequest },
    /// An incoming connection failed its handshake and was dropped (server side); `id` is the
    /// one it had, if any (a connection refused at accept had none).
    HandshakeFailed { id: Option<PeerId>, remote: SocketAddr, reason: String },
    /// Server: accepting stopped for lack of file descriptors; once per episode (see
    /// `listener::Accepted::OutOfDescriptors`).
    OutOfDescriptors { reason: String },
}

/// What the I/O thread starts with.
pub(crate) enum Start {
    /// Accept connections on this listener (with TLS when a server configuration is given).
    Listen { listener: TcpListener, tls: Option<tls::ServerSide> },
    /// Resolve `host`, connect to one of its addresses and send this upgrade request; the peer
    /// gets `id` and counts its queues in `flow`.
    Connect {
        id: PeerId,
        host: String,
        port: u16,
        request: Box<Request>,
        flow: Arc<FlowControl>,
        /// wss://: how to wrap the socket in TLS.
        tls: Option<tls::ClientSide>,
    },
}

/// The game thread's handle on the sockets: an I/O thread, or a reactor it serves itself from
/// `poll()` (see [`ConnectionConfig::io_thread`]).
pub(crate) struct ReactorHandle {
    pub(crate) commands: CommandSender,
    pub(crate) events: Receiver<ReactorEvent>,
    /// The totals every connection of this server or client adds to.
    pub(crate) counters: Arc<EndpointCounters>,
    driver: Driver,
}

/// Who serves the sockets.
enum Driver {
    /// The I/O thread, until it has been joined.
    Thread(Option<JoinHandle<()>>),
    /// Nobody but [`ReactorHandle::serve_inline`], called from the game's `poll()`, and
    /// [`ReactorHandle::write_queued`]; the flag is set while commands wait.
    /// The reactor is shared (weakly) with the command senders, so that a batch send can
    /// write at once (`CommandSender::write_queued`).
    Inline { reactor: Rc<RefCell<Box<Reactor>>> },
}

impl std::fmt::Debug for ReactorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let driver = match self.driver {
            Driver::Thread(_) => "I/O thread",
            Driver::Inline { .. } => "inline",
        };
        f.debug_struct("ReactorHandle").field("driver", &driver).finish_non_exhaustive()
    }
}

impl ReactorHandle {
    /// Starts serving: on a new I/O thread, or inline when the config says so.
    pub(crate) fn spawn(start: Start, config: &ConnectionConfig) -> Result<Self, Error> {
        let poll = Poll::new()?;
        let (command_tx, command_rx) = mpsc::channel();
        let (event_tx, event_rx) = mpsc::channel();
        let settings = Arc::new(Settings::new(config));
        let counters = settings.counters.clone();
        let (no_delay, max_connections) = (config.no_delay, config.max_connections);
        if !config.io_thread {
            let mut reactor = Box::new(Reactor::new(poll, command_rx, None, event_tx, settings, no_delay));
            reactor.start_or_report(start, max_connections);
            let reactor = Rc::new(RefCell::new(reactor));
            let wake = Wake::Inline { queued: Rc::new(Cell::new(false)), reactor: Rc::downgrade(&reactor) };
            return Ok(ReactorHandle {
                commands: CommandSender::new(command_tx, wake),
                events: event_rx,
                counters,
                driver: Driver::Inline { reactor },
            });
        }
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let wake_pending = Arc::new(AtomicBool::new(false));
        let thread_wake_pending = wake_pending.clone();
        let thread = std::thread::Builder::new().name("websocket-rs-io".into()).spawn(move || {
            let mut reactor = Reactor::new(poll, command_rx, Some(thread_wake_pending), event_tx, settings, no_delay);
            if reactor.start_or_report(start, max_connections) {
                reactor.run();
            }
        })?;
        Ok(ReactorHandle {
            commands: CommandSender::new(command_tx, Wake::Thread { waker, pending: wake_pending }),
            events: event_rx,
            counters,
            driver: Driver::Thread(Some(thread)),
        })
    }

    /// Inline mode: one round of socket work, without waiting (commands queued since the last
    /// call, ready sockets, due timers, flushes). Does nothing when an I/O thread serves.
    pub(crate) fn serve_inline(&mut self) {
        if let Driver::Inline { reactor } = &self.driver {
            self.commands.clear_queued();
            if let Ok(mut reactor) = reactor.try_borrow_mut() {
                reactor.serve_once();
            }
        }
    }

    /// Inline mode: carries out the commands queued since the last call (sends, closes) and
    /// writes what they owe now, instead of at the next `poll()`; nothing is read. Does nothing
    /// when none wait or an I/O thread serves.
    pub(crate) fn write_queued(&self) {
        self.commands.write_queued();
    }

    /// Stops serving: open peers get a 1001 close frame (best effort) and every socket is
    /// closed. Returns once the I/O thread, if any, has ended.
    pub(crate) fn shutdown(&mut self) {
        match &mut self.driver {
            Driver::Thread(thread) => {
                self.commands.send(Command::Shutdown);
                if let Some(thread) = thread.take() {
                    let _ = thread.join();
                }
            }
            Driver::Inline { reactor } => {
                if let Ok(mut reactor) = reactor.try_borrow_mut() {
                    reactor.stop();
                }
            }
        }
    }
}

impl Drop for ReactorHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One connection in the reactor's table.
struct Slot {
    id: PeerId,
    conn: Connection<WsStream>,
    /// Client: the TCP connect under way, before the connection has its stream.
    connecting: Option<Connecting>,
    /// The earliest deadline of this slot in the heap that has not come up yet.
    scheduled: Option<Instant>,
    /// Whether the slot waits in `to_flush`.
    flush_queued: bool,
    /// Whether it was counted in `Reactor::refusing` (see `Connection::is_refusing`).
    refusing: bool,
    /// Whether it was counted in `Reactor::open`.
    open: bool,
}

pub(crate) struct Reactor {
    poll: Poll,
    /// Readiness reported by the last `poll` (kept to reuse its allocation).
    ready: Option<Events>,
    commands: Receiver<Command>,
    /// I/O thread: set while a wake is on its way (the game thread then does not wake it again).
    wake_pending: Option<Arc<AtomicBool>>,
    events: Sender<ReactorEvent>,
    settings: Arc<Settings>,
    no_delay: bool,
    listener: Option<Listener>,
    tls_client: Option<tls::ClientSide>,
    slots: Slab<Slot>,
    by_id: HashMap<PeerId, usize>,
    /// Deadlines of the connections (a slot's connection may have moved its own since: it is
    /// asked again when an entry comes up).
    deadlines: BinaryHeap<Reverse<(Instant, usize)>>,
    to_flush: Vec<usize>,
    /// Server: connections being refused (answer going out, or lingering); they do not count
    /// toward `max_connections`.
    refusing: usize,
    /// Open connections (the others are handshaking or being refused).
    open: usize,
    running: bool,
}

impl Reactor {
    fn new(
        poll: Poll,
        commands: Receiver<Command>,
        wake_pending: Option<Arc<AtomicBool>>,
        events: Sender<ReactorEvent>,
        settings: Arc<Settings>,
        no_delay: bool,
    ) -> Self {
        Reactor {
            poll,
            ready: Some(Events::with_capacity(1024)),
            commands,
            wake_pending,
            events,
            settings,
            no_delay,
            listener: None,
            tls_client: None,
            slots: Slab::new(),
            by_id: HashMap::new(),
            deadlines: BinaryHeap::new(),
            to_flush: Vec::new(),
            refusing: 0,
            open: 0,
            running: true,
        }
    }

    /// Starts listening or connecting; false (and a `ConnectFailed` for a client) when it could not.
    fn start_or_report(&mut self, start: Start, max_connections: Option<usize>) -> bool {
        match self.start(start, max_connections) {
            Ok(()) => true,
            Err(err) => {
                // Only a client waits for news at start; a server's listener was bound already.
                self.emit(ReactorEvent::ConnectFailed { reason: format!("could not start serving the sockets: {err}") });
                self.running = false;
                false
            }
        }
    }

    fn emit(&self, event: ReactorEvent) {
        // The game side has gone away only when the handle was dropped; then nobody listens.
        let _ = self.events.send(event);
    }

    fn start(&mut self, start: Start, max_connections: Option<usize>) -> io::Result<()> {
        match start {
            Start::Listen { listener, tls } => {
                let registry = self.poll.registry();
                let proxy_before_tls = (self.settings.proxy_protocol && tls.is_some()).then(|| self.settings.trusted_proxies.clone());
                let listener = Listener::new(listener, tls, max_connections, proxy_before_tls, self.no_delay, registry, LISTENER)?;
                self.listener = Some(listener.counting_into(self.settings.counters.clone()));
            }
            Start::Connect { id, host, port, request, flow, tls } => {
                self.tls_client = tls;
                let now = Instant::now();
                let conn = Connection::connect(*request, self.settings.clone(), flow, now);
                let key = self.insert(id, conn);
                match connect::resolve(&host, port) {
                    Ok(addrs) => self.on_connect_progress(key, Connecting::start(addrs, self.poll.registry(), Token(key)), now),
                    Err(reason) => self.slots[key].conn.transport_failed(reason),
                }
                self.settle(key);
            }
        }
        Ok(())
    }

    fn insert(&mut self, id: PeerId, conn: Connection<WsStream>) -> usize {
        let key = self.slots.insert(Slot { id, conn, connecting: None, scheduled: None, flush_queued: false, refusing: false, open: false });
        self.by_id.insert(id, key);
        key
    }

    /// The I/O thread's loop: sleep until a socket, a command or a deadline needs it.
    fn run(&mut self) {
        while self.running {
            let timeout = self.next_deadline().map(|d| d.saturating_duration_since(Instant::now()));
            if let Err(err) = self.turn(timeout) {
                if err.kind() != io::ErrorKind::Interrupted {
                    break;
                }
            }
        }
        self.close_all();
    }

    /// Inline mode: the commands queued since the last call, then one round without waiting.
    fn serve_once(&mut self) {
        if self.running {
            self.drain_commands(Instant::now());
            let _ = self.turn(Some(Duration::ZERO));
        }
    }

    /// Inline mode: the queued commands and the flushes they owe, without polling the sockets.
    pub(crate) fn write_queued(&mut self) {
        if self.running {
            self.drain_commands(Instant::now());
            self.flush_queued();
        }
    }

    /// Inline mode: what the I/O thread does when it ends.
    fn stop(&mut self) {
        if self.running {
            self.running = false;
            self.close_all();
        }
    }

    /// Waits up to `timeout` for readiness, then serves the ready sockets, the due deadlines and
    /// the flushes owed.
    fn turn(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let mut ready = self.ready.take().unwrap_or_else(|| Events::with_capacity(1024));
        let polled = self.poll.poll(&mut ready, timeout);
        if polled.is_ok() {
            let now = Instant::now();
            for event in ready.iter() {
                match event.token() {
                    WAKER => self.drain_commands(now),
                    LISTENER => self.accept_all(),
                    Token(key) => self.on_ready(key, event.is_readable(), event.is_writable(), now),
                }
            }
            self.expire_deadlines(now);
            self.flush_queued();
        }
        self.ready = Some(ready);
        polled
    }

    fn next_deadline(&self) -> Option<Instant> {
        let retry = self.listener.as_ref().and_then(Listener::retry_at);
        let next = self.deadlines.peek().map(|Reverse((at, _))| *at);
        next.into_iter().chain(retry).min()
    }

    /// Hands what a connection reported to the game, queues its flush and deadline, and removes
    /// it once it is finished. Called after every call into a connection.
    fn settle(&mut self, key: usize) {
        let Some(slot) = self.slots.get_mut(key) else { return };
        let id = slot.id;
        let mut events = Vec::new();
        while let Some(event) = slot.conn.poll_event() {
            events.push(match event {
                ConnectionEvent::Opened(mut info) => {
                    info.no_delay = slot.conn.stream().and_then(|s| s.tcp()).and_then(|tcp| tcp.nodelay().ok()).unwrap_or(false);
                    ReactorEvent::Opened { id, flow: slot.conn.flow().clone(), info }
                }
                ConnectionEvent::Packet(packet) => ReactorEvent::Packet { id, packet },
                ConnectionEvent::Failing => ReactorEvent::Failing { id },
                ConnectionEvent::CloseRequested { code, reason } => ReactorEvent::CloseRequested { id, code, reason },
                ConnectionEvent::Closed(ending) => ReactorEvent::Closed { id, ending },
                ConnectionEvent::ConnectFailed(reason) => ReactorEvent::ConnectFailed { reason },
                ConnectionEvent::HandshakeRequested(request) => ReactorEvent::HandshakeRequested { id, request },
                // Nothing to report: a health check, or a refusal the game asked for.
                ConnectionEvent::Answered => continue,
                ConnectionEvent::HandshakeFailed(reason) => match slot.conn.remote() {
                    Some(remote) => ReactorEvent::HandshakeFailed { id: Some(id), remote, reason },
                    None => continue,
                },
            });
        }
        let refusing = slot.conn.is_refusing();
        if refusing != slot.refusing {
            slot.refusing = refusing;
            if refusing {
                self.refusing += 1;
            } else {
                self.refusing -= 1;
            }
        }
        let open = slot.conn.is_open();
        if open != slot.open {
            slot.open = open;
            if open {
                self.open += 1;
            } else {
                self.open -= 1;
            }
        }
        if slot.conn.is_finished() {
            self.remove(key);
        } else {
            if slot.conn.wants_flush() && !slot.flush_queued {
                slot.flush_queued = true;
                self.to_flush.push(key);
            }
            if let Some(at) = slot.conn.poll_timeout() {
                if slot.scheduled.is_none_or(|scheduled| at < scheduled) {
                    slot.scheduled = Some(at);
                    self.deadlines.push(Reverse((at, key)));
                }
            }
        }
        let handshaking = self.slots.len() - self.open - self.refusing;
        self.settings.counters.handshaking.store(handshaking as u64, Ordering::Relaxed);
        for event in events {
            self.emit(event);
        }
    }

    fn drain_commands(&mut self, now: Instant) {
        if let Some(pending) = &self.wake_pending {
            pending.store(false, Ordering::SeqCst);
        }
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::Peer { id, command } => {
                    if let Some(&key) = self.by_id.get(&id) {
                        self.slots[key].conn.handle_command(command, now);
                        self.settle(key);
                    }
                }
                Command::SetNoDelay { id, enabled } => {
                    let tcp = self.by_id.get(&id).and_then(|&key| self.slots[key].conn.stream()).and_then(|s| s.tcp());
                    if let Some(tcp) = tcp {
                        let _ = tcp.set_nodelay(enabled);
                    }
                }
                Command::SetRefuseNew(refuse) => {
                    if let Some(listener) = &mut self.listener {
                        listener.set_refuse_new(refuse);
                    }
                }
                Command::Drain => self.settings.draining.store(true, Ordering::Relaxed),
                Command::ReloadTls(tls) => {
                    if let Some(listener) = &mut self.listener {
                        listener.set_tls(tls);
                    }
                }
                Command::Shutdown => self.running = false,
                Command::SendMany { id, packets } => {
                    if let Some(&key) = self.by_id.get(&id) {
                        for packet in packets {
                            self.slots[key].conn.handle_command(PeerCommand::Send(packet), now);
                        }
                        self.settle(key);
                    }
                }
            }
        }
    }

    fn accept_all(&mut self) {
        loop {
            // Each connection's handshake deadline runs from its own accept: a turn that served
            // many sockets before this one may have taken a while.
            let now = Instant::now();
            let Some(listener) = self.listener.as_mut() else { return };
            let key = self.slots.vacant_key();
            let live = self.slots.len() - self.refusing;
            match listener.accept(live, self.refusing, self.poll.registry(), Token(key), now) {
                Accepted::Connection { stream, remote } => {
                    let conn = Connection::accept(stream, remote, self.settings.clone(), now);
                    let id = unused_id(&self.by_id);
                    let inserted = self.insert(id, conn);
                    debug_assert_eq!(inserted, key);
                    self.slots[key].conn.handle_readable(now);
                    self.settle(key);
                }
                Accepted::Full { stream, remote, reason } => {
                    let conn = Connection::refuse_full(stream, remote, self.settings.clone(), reason, now);
                    let id = unused_id(&self.by_id);
                    self.insert(id, conn);
                    self.slots[key].conn.handle_writable(now);
                    self.settle(key);
                }
                Accepted::Refused { remote, reason, .. } => self.emit(ReactorEvent::HandshakeFailed { id: None, remote, reason }),
                Accepted::Dropped { .. } => {}
                Accepted::OutOfDescriptors { reason } => return self.emit(ReactorEvent::OutOfDescriptors { reason }),
                Accepted::Done => return,
            }
        }
    }

    fn on_ready(&mut self, key: usize, readable: bool, writable: bool, now: Instant) {
        let Some(slot) = self.slots.get_mut(key) else { return };
        if let Some(connecting) = slot.connecting.take() {
            let progress = connecting.check(self.poll.registry(), Token(key));
            self.on_connect_progress(key, progress, now);
        } else {
            if writable {
                slot.conn.handle_writable(now);
            }
            if readable {
                slot.conn.handle_readable(now);
            }
        }
        self.settle(key);
    }

    /// Client: keeps a connect under way, or gives the connection its stream (wrapped in TLS for
    /// wss://), or says why there is none.
    fn on_connect_progress(&mut self, key: usize, progress: Progress, now: Instant) {
        let slot = &mut self.slots[key];
        match progress {
            Progress::Pending(connecting) => slot.connecting = Some(connecting),
            Progress::Failed(reason) => slot.conn.transport_failed(reason),
            Progress::Connected(stream, addr) => {
                let _ = stream.set_nodelay(self.no_delay);
                let stream = match &self.tls_client {
                    Some(tls) => match tls.connect(stream) {
                        Ok(stream) => stream,
                        Err(err) => {
                            let reason = format!("TLS with {addr} failed: {}", tls::describe_io_error(&err));
                            return slot.conn.transport_failed(reason);
                        }
                    },
                    None => NetStream::Plain(stream),
                };
                slot.conn.transport_ready(stream, addr, now);
            }
        }
    }

    fn expire_deadlines(&mut self, now: Instant) {
        while let Some(&Reverse((at, key))) = self.deadlines.peek() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            let Some(slot) = self.slots.get_mut(key) else { continue };
            if slot.scheduled == Some(at) {
                slot.scheduled = None;
            }
            if slot.conn.poll_timeout().is_some_and(|due| due <= now) {
                slot.conn.handle_timeout(now);
            }
            self.settle(key);
        }
        if self.listener.as_ref().and_then(Listener::retry_at).is_some_and(|at| at <= now) {
            self.accept_all();
        }
    }

    fn flush_queued(&mut self) {
        let keys = std::mem::take(&mut self.to_flush);
        for &key in &keys {
            let Some(slot) = self.slots.get_mut(key) else { continue };
            slot.flush_queued = false;
            slot.conn.flush();
            self.settle(key);
        }
        // Keep the allocation when no flush was queued meanwhile.
        if self.to_flush.is_empty() {
            self.to_flush = keys;
            self.to_flush.clear();
        }
    }

    fn remove(&mut self, key: usize) {
        let mut slot = self.slots.remove(key);
        self.by_id.remove(&slot.id);
        if slot.refusing {
            self.refusing -= 1;
        }
        if slot.open {
            self.open -= 1;
        }
        let registry = self.poll.registry();
        if let Some(connecting) = &mut slot.connecting {
            let _ = registry.deregister(connecting.stream_mut());
        }
        if let Some(tcp) = slot.conn.stream_mut().and_then(|s| s.tcp_mut()) {
            let _ = registry.deregister(tcp);
        }
        // Closes the socket: its descriptor must be free before the retry below.
        drop(slot);
        // A file descriptor is free again: connections left in the backlog can be taken now.
        if self.running && self.listener.as_ref().and_then(Listener::retry_at).is_some() {
            self.accept_all();
        }
    }

    /// On shutdown: a 1001 close frame to every open peer, best effort, then every socket closes.
    fn close_all(&mut self) {
        let keys: Vec<usize> = self.slots.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.slots[key].conn.shutdown();
            self.settle(key);
        }
    }
}

/// A random id in 2..2^31 that no live connection uses (Godot's `generate_unique_id` range).
fn unused_id(by_id: &HashMap<PeerId, usize>) -> PeerId {
    loop {
        let id = fastrand::i32(2..i32::MAX);
        if !by_id.contains_key(&id) {
            return id;
        }
    }
}
