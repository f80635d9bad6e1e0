//! A server's listening socket and its accept policy: refusing new connections, the
//! `max_connections` limit (HTTP 503), TCP_NODELAY, TLS wrapping, and retrying when the process
//! runs out of file descriptors.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Interest, Registry, Token};

use crate::proxy::TrustedProxies;
use crate::stats::{EndpointCounters, Refusal};
use crate::tls::{self, NetStream};

/// Connections beyond `max_connections` that may be in the middle of their 503 answer at once
/// (besides as many again as `max_connections`).
const MAX_BEING_REFUSED: usize = 64;

/// How long accepting waits after a resource error (out of file descriptors, memory) before it
/// tries again; a connection closing on our side retries at once.
const RETRY_AFTER_RESOURCE_ERROR: Duration = Duration::from_millis(50);

/// The listening socket and what decides whether a connection is taken.
pub(crate) struct Listener {
    socket: TcpListener,
    tls: Option<tls::ServerSide>,
    max_connections: Option<usize>,
    /// wss:// with the PROXY protocol: the trusted proxies, whose header comes before TLS.
    #[cfg_attr(not(any(feature = "rustls", feature = "native-tls")), allow(dead_code))]
    proxy_before_tls: Option<TrustedProxies>,
    no_delay: bool,
    refuse_new: bool,
    /// Set when accepting stopped on a resource error with connections left in the backlog:
    /// readiness is edge-triggered, so no new event will come for them; retry at this time.
    retry_at: Option<Instant>,
    /// The server's totals: connections accepted, refused, failed.
    counters: Arc<EndpointCounters>,
}

/// What one accept gave.
pub(crate) enum Accepted {
    /// A new connection, registered under the given token, wrapped in TLS when serving wss://.
    Connection { stream: NetStream, remote: SocketAddr },
    /// A connection beyond `max_connections`, registered (and wrapped in TLS) like a new one,
    /// to be answered HTTP 503 at once; why (reported to the game).
    Full { stream: NetStream, remote: SocketAddr, reason: String },
    /// A connection turned away; why (reported to the game), and whether for `max_connections`
    /// (else its TLS failed).
    Refused { remote: SocketAddr, reason: String, full: bool },
    /// A connection dropped without a word: refusing new connections, or registration failed.
    Dropped { refusing_new: bool },
    /// Accepting stopped for lack of file descriptors (or kernel memory), the first time since the
    /// backlog was last empty: the connections wait there and are taken on a retry; why (reported
    /// to the game once per such episode).
    OutOfDescriptors { reason: String },
    /// Nothing more to accept for now.
    Done,
}

impl Listener {
    /// Registers `socket` under `token`.
    pub(crate) fn new(
        mut socket: TcpListener,
        tls: Option<tls::ServerSide>,
        max_connections: Option<usize>,
        proxy_before_tls: Option<TrustedProxies>,
        no_delay: bool,
        registry: &Registry,
        token: Token,
    ) -> io::Result<Self> {
        registry.register(&mut socket, token, Interest::READABLE)?;
        let counters = Arc::default();
        Ok(Listener { socket, tls, max_connections, proxy_before_tls, no_delay, refuse_new: false, retry_at: None, counters })
    }

    /// Counts accepted, refused and failed connections into `counters` (the server's totals).
    pub(crate) fn counting_into(mut self, counters: Arc<EndpointCounters>) -> Self {
        self.counters = counters;
        self
    }

    /// Turns new connections away at accept (or stops doing so).
    pub(crate) fn set_refuse_new(&mut self, refuse: bool) {
        self.refuse_new = refuse;
    }

    /// New connections are wrapped in TLS with `tls` from now on; open ones keep what they had.
    pub(crate) fn set_tls(&mut self, tls: tls::ServerSide) {
        self.tls = Some(tls);
    }

    /// When accepting should be tried again after a resource error.
    pub(crate) fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// Accepts one connection; `live` is how many the server has (open or handshaking),
    /// `refusing` how many it is answering with a refusal, and a new one is registered under
    /// `token`.
    pub(crate) fn accept(&mut self, live: usize, refusing: usize, registry: &Registry, token: Token, now: Instant) -> Accepted {
        let accepted = self.accept_one(live, refusing, registry, token, now);
        let counters = &self.counters;
        match &accepted {
            Accepted::Connection { .. } => _ = counters.accepted.fetch_add(1, Ordering::Relaxed),
            Accepted::Full { .. } | Accepted::Refused { full: true, .. } => counters.refused(Refusal::Full),
            Accepted::Refused { full: false, .. } => _ = counters.failed_handshakes.fetch_add(1, Ordering::Relaxed),
            Accepted::Dropped { refusing_new: true } => counters.refused(Refusal::NotAccepting),
            Accepted::Dropped { refusing_new: false } => _ = counters.failed_handshakes.fetch_add(1, Ordering::Relaxed),
            Accepted::OutOfDescriptors { .. } => _ = counters.out_of_descriptors.fetch_add(1, Ordering::Relaxed),
            Accepted::Done => {}
        }
        accepted
    }

    fn accept_one(&mut self, live: usize, refusing: usize, registry: &Registry, token: Token, now: Instant) -> Accepted {
        let (mut stream, remote) = loop {
            match self.socket.accept() {
                Ok(pair) => break pair,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    self.retry_at = None;
                    return Accepted::Done;
                }
                // This one connection is gone already; the next may be fine.
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                    ) => {}
                // Out of file descriptors or memory: the rest wait in the backlog until a retry. An
                // episode lasts until the backlog is empty (`WouldBlock` above); only its start is
                // reported.
                Err(err) => {
                    let first = self.retry_at.is_none();
                    self.retry_at = Some(now + RETRY_AFTER_RESOURCE_ERROR);
                    if !first {
                        return Accepted::Done;
                    }
                    let reason = format!(
                        "cannot accept new connections: {err}; they wait in the listen backlog and are admitted as descriptors free up \
                         (retried every {} ms and whenever a connection closes)",
                        RETRY_AFTER_RESOURCE_ERROR.as_millis()
                    );
                    return Accepted::OutOfDescriptors { reason };
                }
            }
        };
        if self.refuse_new {
            return Accepted::Dropped { refusing_new: true };
        }
        let full = self.max_connections.filter(|&max| live >= max);
        if let Some(max) = full {
            // The 503 answers cost a slot each for a moment (see `Connection::refuse_full`); past
            // this many more, a connection is closed without a word.
            if refusing >= max.saturating_add(MAX_BEING_REFUSED) {
                return Accepted::Refused {
                    remote,
                    reason: format!("dropped: max_connections ({max}) reached, and {refusing} more are being refused"),
                    full: true,
                };
            }
        }
        let _ = stream.set_nodelay(self.no_delay);
        if registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE).is_err() {
            return Accepted::Dropped { refusing_new: false };
        }
        let stream = match &self.tls {
            // Refused connections are answered in TLS: they need no PROXY header read first.
            #[cfg(any(feature = "rustls", feature = "native-tls"))]
            Some(tls) if full.is_none() && self.proxy_before_tls.as_ref().is_some_and(|trusted| trusted.contains(remote.ip())) => {
                NetStream::ProxyThenTls(Some(Box::new((stream, tls.clone()))))
            }
            Some(tls) => match tls.accept(stream) {
                Ok(stream) => stream,
                Err(err) => return Accepted::Refused { remote, reason: tls::describe_io_error(&err), full: false },
            },
            None => NetStream::Plain(stream),
        };
        match full {
            Some(max) => Accepted::Full { stream, remote, reason: format!("refused with 503: max_connections ({max}) reached") },
            None => Accepted::Connection { stream, remote },
        }
    }
}
