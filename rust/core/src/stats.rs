//! Statistics: what every connection, server and client counts, readable by the game at any time
//! without a round trip to the I/O thread.
//!
//! - [`Traffic`]: one connection's counters and round-trip time. The connection (I/O thread)
//!   writes them as it reads, flushes and gets pongs; [`crate::PeerHandle::statistics`] reads them.
//! - [`EndpointCounters`]: one server's (or client's) totals, shared by all its connections:
//!   accepted, refused by reason, failed handshakes, episodes out of file descriptors, traffic,
//!   the sum of the peers' round-trip times. [`crate::Server::statistics`] reads them.
//! - The process registry: while [`set_monitoring`] is on, every server and client publishes a
//!   [`ProcessTotals`] from its `poll()` a few times a second; [`process_totals`] sums them (the
//!   editor's monitors).
//!
//! Counters written per message are [`Counter`]s: one writer (the endpoint's I/O thread, or the
//! game thread that serves it inline), so an add is a plain load and store, no locked
//! instruction.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// A count with one writer and any number of readers.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`; only the one writing thread calls it.
    pub(crate) fn add(&self, n: u64) {
        self.0.store(self.0.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    /// The count now.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Why a server turned a connection away: the keys of [`ServerStatistics::refused`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Beyond `max_connections`: HTTP 503 at accept.
    Full,
    /// `set_refuse_new_connections(true)`: dropped at accept.
    NotAccepting,
    /// Draining: HTTP 503.
    Draining,
    /// A browser `Origin` not in `allowed_origins`: HTTP 403.
    Origin,
    /// A malformed or unsupported upgrade request: HTTP 400, 426 or 431.
    BadRequest,
    /// The game's `reject_handshake`.
    Rejected,
    /// A held request the game did not answer within `handshake_timeout`: HTTP 503.
    NoVerdict,
    /// A plain HTTP request that is no WebSocket upgrade (nor a health check): closed unanswered.
    NotWebSocket,
}

impl Refusal {
    /// Every reason, in the order of [`ServerStatistics::refused`].
    pub const ALL: [Refusal; 8] = [
        Refusal::Full,
        Refusal::NotAccepting,
        Refusal::Draining,
        Refusal::Origin,
        Refusal::BadRequest,
        Refusal::Rejected,
        Refusal::NoVerdict,
        Refusal::NotWebSocket,
    ];

    /// Its name in statistics ("full", "not_accepting", ...).
    pub fn name(self) -> &'static str {
        match self {
            Refusal::Full => "full",
            Refusal::NotAccepting => "not_accepting",
            Refusal::Draining => "draining",
            Refusal::Origin => "origin",
            Refusal::BadRequest => "bad_request",
            Refusal::Rejected => "rejected",
            Refusal::NoVerdict => "no_verdict",
            Refusal::NotWebSocket => "not_websocket",
        }
    }

    fn index(self) -> usize {
        Refusal::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// A round-trip time estimate from ping/pong samples, smoothed as TCP does (RFC 6298): the
/// first sample R gives smoothed = R and variation = R/2; each next one moves the smoothed value
/// 1/8 and the variation 1/4 of the way.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct RttEstimator {
    /// The last sample.
    pub(crate) last: Duration,
    /// The smoothed round-trip time.
    pub(crate) smoothed: Duration,
    /// The mean deviation of the samples from the smoothed value.
    pub(crate) variance: Duration,
    /// Samples taken.
    pub(crate) samples: u64,
}

impl RttEstimator {
    /// Takes one sample.
    pub(crate) fn sample(&mut self, rtt: Duration) {
        if self.samples == 0 {
            self.smoothed = rtt;
            self.variance = rtt / 2;
        } else {
            let deviation = self.smoothed.abs_diff(rtt);
            self.variance = (self.variance * 3 + deviation) / 4;
            self.smoothed = (self.smoothed * 7 + rtt) / 8;
        }
        self.last = rtt;
        self.samples += 1;
    }
}

/// Messages, payload bytes and wire bytes each way: one connection's, or a whole endpoint's.
#[derive(Debug, Default)]
pub(crate) struct TrafficCounters {
    messages_sent: Counter,
    bytes_sent: Counter,
    wire_bytes_sent: Counter,
    messages_received: Counter,
    bytes_received: Counter,
    wire_bytes_received: Counter,
}

impl TrafficCounters {
    /// A message of `bytes` payload bytes was handed to the game.
    pub(crate) fn delivered(&self, bytes: usize) {
        self.messages_received.add(1);
        self.bytes_received.add(bytes as u64);
    }

    /// `messages` messages of `bytes` payload bytes in all reached the socket.
    pub(crate) fn flushed(&self, messages: usize, bytes: usize) {
        self.messages_sent.add(messages as u64);
        self.bytes_sent.add(bytes as u64);
    }

    /// Frame bytes read from and written to the socket.
    pub(crate) fn wire(&self, read: u64, written: u64) {
        self.wire_bytes_received.add(read);
        self.wire_bytes_sent.add(written);
    }

    /// The counts now.
    pub(crate) fn totals(&self) -> TrafficTotals {
        TrafficTotals {
            messages_sent: self.messages_sent.get(),
            messages_received: self.messages_received.get(),
            bytes_sent: self.bytes_sent.get(),
            bytes_received: self.bytes_received.get(),
            wire_bytes_sent: self.wire_bytes_sent.get(),
            wire_bytes_received: self.wire_bytes_received.get(),
        }
    }
}

/// Messages and bytes carried each way (part of [`PeerStatistics`] and [`ServerStatistics`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrafficTotals {
    /// Messages written to the socket.
    pub messages_sent: u64,
    /// Messages received (whole, handed to the game).
    pub messages_received: u64,
    /// Payload bytes of the messages sent (before compression).
    pub bytes_sent: u64,
    /// Payload bytes of the messages received (after decompression).
    pub bytes_received: u64,
    /// WebSocket frame bytes written (headers, masks, pings and close frames included, after
    /// compression; the HTTP upgrade and TLS records not).
    pub wire_bytes_sent: u64,
    /// WebSocket frame bytes read (as `wire_bytes_sent`).
    pub wire_bytes_received: u64,
}

/// Messages waiting each way (part of [`PeerStatistics`] and [`ServerStatistics`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueTotals {
    /// Messages received and not taken by the game yet.
    pub inbound_messages: u64,
    /// Payload bytes of those messages.
    pub inbound_bytes: u64,
    /// Messages the game sent that have not reached the socket yet.
    pub outbound_messages: u64,
    /// Payload bytes of those messages.
    pub outbound_bytes: u64,
}

impl QueueTotals {
    /// Adds another peer's queues.
    pub fn add(&mut self, other: &QueueTotals) {
        self.inbound_messages += other.inbound_messages;
        self.inbound_bytes += other.inbound_bytes;
        self.outbound_messages += other.outbound_messages;
        self.outbound_bytes += other.outbound_bytes;
    }
}

/// One connection's traffic and round-trip time, written by its I/O thread, read by the game.
/// Aligned to its own cache lines: the I/O thread writes it as messages pass, and the queue
/// counters beside it in `FlowControl`, which both threads write, must not share a line with it.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Traffic {
    /// What `last_heard_us` counts from.
    epoch: Instant,
    /// Messages and bytes each way.
    pub(crate) counts: TrafficCounters,
    rtt_last_us: AtomicU64,
    rtt_smoothed_us: AtomicU64,
    rtt_variance_us: AtomicU64,
    /// When the other side was last heard from, in microseconds since `epoch`.
    last_heard_us: AtomicU64,
}

impl Default for Traffic {
    fn default() -> Self {
        Traffic {
            epoch: Instant::now(),
            counts: TrafficCounters::default(),
            rtt_last_us: AtomicU64::new(0),
            rtt_smoothed_us: AtomicU64::new(0),
            rtt_variance_us: AtomicU64::new(0),
            last_heard_us: AtomicU64::new(0),
        }
    }
}

impl Traffic {
    /// I/O thread: the round-trip time estimate changed.
    pub(crate) fn set_rtt(&self, rtt: &RttEstimator) {
        self.rtt_last_us.store(micros(rtt.last), Ordering::Relaxed);
        self.rtt_smoothed_us.store(micros(rtt.smoothed), Ordering::Relaxed);
        self.rtt_variance_us.store(micros(rtt.variance), Ordering::Relaxed);
    }

    /// I/O thread: the other side was heard from at `now`.
    pub(crate) fn heard(&self, now: Instant) {
        self.last_heard_us.store(micros(now.saturating_duration_since(self.epoch)), Ordering::Relaxed);
    }

    /// Game thread: the smoothed round-trip time in milliseconds (0 before the first pong).
    pub(crate) fn rtt_ms(&self) -> f64 {
        ms(self.rtt_smoothed_us.load(Ordering::Relaxed))
    }

    /// Game thread: seconds since the other side was last heard from (or since the connection
    /// was made, before that).
    pub(crate) fn idle_seconds(&self, now: Instant) -> f64 {
        let heard = self.epoch + Duration::from_micros(self.last_heard_us.load(Ordering::Relaxed));
        now.saturating_duration_since(heard).as_secs_f64()
    }

    /// Game thread: the counters and round-trip time into `out`.
    pub(crate) fn read_into(&self, out: &mut PeerStatistics, now: Instant) {
        out.rtt_ms = self.rtt_ms();
        out.rtt_last_ms = ms(self.rtt_last_us.load(Ordering::Relaxed));
        out.rtt_variance_ms = ms(self.rtt_variance_us.load(Ordering::Relaxed));
        out.traffic = self.counts.totals();
        out.idle_seconds = self.idle_seconds(now);
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// One peer's statistics at one moment ([`crate::PeerHandle::statistics`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PeerStatistics {
    /// Smoothed round-trip time in milliseconds, from the heartbeat's pings (0 before the first
    /// pong).
    pub rtt_ms: f64,
    /// The last round-trip time sample in milliseconds.
    pub rtt_last_ms: f64,
    /// How much the samples vary around `rtt_ms` (mean deviation), in milliseconds.
    pub rtt_variance_ms: f64,
    /// Messages and bytes carried each way.
    pub traffic: TrafficTotals,
    /// Messages waiting each way.
    pub queued: QueueTotals,
    /// Seconds since the handshake finished (0 before).
    pub connected_seconds: f64,
    /// Seconds since anything (a message, a ping, a pong) came from the other side.
    pub idle_seconds: f64,
}

/// The totals of one endpoint (a server, or a client), shared by its connections and the game.
#[derive(Debug, Default)]
pub(crate) struct EndpointCounters {
    /// TCP connections accepted into a handshake.
    pub(crate) accepted: AtomicU64,
    /// Handshakes that finished: open connections made.
    pub(crate) opened: AtomicU64,
    /// Handshakes that failed (timeouts, broken requests or TLS, the client leaving).
    pub(crate) failed_handshakes: AtomicU64,
    /// Health checks answered.
    pub(crate) health_checks: AtomicU64,
    /// Times accepting stopped for lack of file descriptors (or kernel memory) with connections
    /// left waiting in the backlog: once per episode, which lasts until the backlog is empty.
    pub(crate) out_of_descriptors: AtomicU64,
    /// Connections turned away, by [`Refusal::index`].
    refused: [AtomicU64; Refusal::ALL.len()],
    /// Connections in their handshake now (set by the reactor).
    pub(crate) handshaking: AtomicU64,
    /// Messages and bytes each way, over every connection.
    pub(crate) traffic: TrafficCounters,
    /// The sum of the smoothed round-trip times of the peers that have one, in microseconds.
    rtt_sum_us: Counter,
    /// How many peers have a round-trip time.
    rtt_peers: Counter,
}

impl EndpointCounters {
    /// A connection was turned away for `why`.
    pub(crate) fn refused(&self, why: Refusal) {
        self.refused[why.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// I/O thread: a peer's smoothed round-trip time went from `old` (None: it had none) to `new`
    /// (None: it is gone).
    pub(crate) fn rtt_changed(&self, old: Option<Duration>, new: Option<Duration>) {
        let old_us = old.map_or(0, micros);
        let new_us = new.map_or(0, micros);
        self.rtt_sum_us.add(new_us.wrapping_sub(old_us));
        match (old, new) {
            (None, Some(_)) => self.rtt_peers.add(1),
            (Some(_), None) => self.rtt_peers.add(u64::MAX),
            _ => {}
        }
    }

    /// The mean of the peers' smoothed round-trip times in milliseconds (0 when none has one).
    pub(crate) fn mean_rtt_ms(&self) -> f64 {
        match self.rtt_peers.get() {
            0 => 0.0,
            peers => ms(self.rtt_sum_us.get()) / peers as f64,
        }
    }

}

/// A server's statistics at one moment ([`crate::Server::statistics`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerStatistics {
    /// Open connections.
    pub open: u64,
    /// Connections in their handshake (TCP accepted, no 101 yet).
    pub handshaking: u64,
    /// TCP connections accepted into a handshake since `listen`.
    pub accepted: u64,
    /// Handshakes that finished since `listen`.
    pub opened: u64,
    /// Connections turned away since `listen`, by reason ([`Refusal::ALL`] order).
    pub refused: Vec<(Refusal, u64)>,
    /// Handshakes that failed since `listen` (timeouts, broken requests or TLS, clients leaving).
    pub failed_handshakes: u64,
    /// Health checks answered since `listen`.
    pub health_checks: u64,
    /// Times since `listen` that accepting stopped because the process had no file descriptor
    /// left (`EMFILE`, `ENFILE`; or the kernel no memory): once per episode, which lasts until
    /// the backlog is empty again. The connections waiting meanwhile are not refused: they stay
    /// in the listen backlog and are admitted as descriptors free up (each episode is also
    /// reported as [`crate::ServerEvent::OutOfDescriptors`]).
    pub out_of_descriptors: u64,
    /// Messages and bytes carried since `listen`, over every connection.
    pub traffic: TrafficTotals,
    /// Messages received per second, over the last window of at least a second.
    pub messages_received_per_second: f64,
    /// Messages sent per second, over the same window.
    pub messages_sent_per_second: f64,
    /// Wire bytes received per second, over the same window.
    pub bytes_received_per_second: f64,
    /// Wire bytes sent per second, over the same window.
    pub bytes_sent_per_second: f64,
    /// Mean of the open peers' smoothed round-trip times, in milliseconds (0 when none has one).
    pub mean_rtt_ms: f64,
    /// Messages waiting each way, over all open peers.
    pub queued: QueueTotals,
}

/// Rates per second of an endpoint's traffic, over windows of at least a second.
#[derive(Debug, Default)]
pub(crate) struct RateMeter {
    window: Option<(Instant, TrafficTotals)>,
    /// Messages received, messages sent, wire bytes received, wire bytes sent, per second.
    rates: [f64; 4],
}

impl RateMeter {
    /// Closes the window when it is a second old (the rates then cover it) and starts the next.
    fn update(&mut self, counters: &EndpointCounters, now: Instant) {
        let totals = counters.traffic.totals();
        let Some((start, at_start)) = self.window else {
            self.window = Some((now, totals));
            return;
        };
        let elapsed = now.saturating_duration_since(start).as_secs_f64();
        if elapsed < 1.0 {
            return;
        }
        let per_second = |now: u64, then: u64| now.wrapping_sub(then) as f64 / elapsed;
        self.rates = [
            per_second(totals.messages_received, at_start.messages_received),
            per_second(totals.messages_sent, at_start.messages_sent),
            per_second(totals.wire_bytes_received, at_start.wire_bytes_received),
            per_second(totals.wire_bytes_sent, at_start.wire_bytes_sent),
        ];
        self.window = Some((now, totals));
    }
}

/// What a server or client knows of itself on the game thread, for [`ServerStatistics`] and the
/// process registry.
#[derive(Debug)]
pub(crate) struct EndpointStatistics {
    pub(crate) counters: Arc<EndpointCounters>,
    rates: RateMeter,
    board: Option<Board>,
}

impl EndpointStatistics {
    /// Statistics of an endpoint whose connections count into `counters`.
    pub(crate) fn new(counters: Arc<EndpointCounters>) -> Self {
        EndpointStatistics { counters, rates: RateMeter::default(), board: None }
    }

    /// The endpoint stopped: it leaves the process registry (its counts stay in the totals).
    pub(crate) fn retire(&mut self) {
        self.board = None;
    }

    /// The totals and rates into `out` (open peers and queues are the caller's).
    pub(crate) fn read_into(&mut self, out: &mut ServerStatistics, now: Instant) {
        self.rates.update(&self.counters, now);
        let c = &self.counters;
        out.handshaking = c.handshaking.load(Ordering::Relaxed);
        out.accepted = c.accepted.load(Ordering::Relaxed);
        out.opened = c.opened.load(Ordering::Relaxed);
        out.refused = Refusal::ALL.iter().map(|r| (*r, c.refused[r.index()].load(Ordering::Relaxed))).collect();
        out.failed_handshakes = c.failed_handshakes.load(Ordering::Relaxed);
        out.health_checks = c.health_checks.load(Ordering::Relaxed);
        out.out_of_descriptors = c.out_of_descriptors.load(Ordering::Relaxed);
        out.traffic = c.traffic.totals();
        [out.messages_received_per_second, out.messages_sent_per_second, out.bytes_received_per_second, out.bytes_sent_per_second] =
            self.rates.rates;
        out.mean_rtt_ms = c.mean_rtt_ms();
    }

    /// From `poll()`: while monitoring is on, publishes what `summary` gives (open peers, queued
    /// bytes) with the totals, at most four times a second. `summary` runs only then.
    ///
    /// Only while somebody reads the registry ([`process_totals`] within the last few seconds):
    /// `summary` visits every open peer, which a server nobody watches should not pay for.
    pub(crate) fn publish_if_due(&mut self, summary: impl FnOnce() -> (u64, u64, u64)) {
        let last_read = LAST_READ_MS.load(Ordering::Relaxed);
        if last_read == 0 || !MONITORING.load(Ordering::Relaxed) {
            return;
        }
        let now = Instant::now();
        if millis_since_start(now).saturating_sub(last_read) > READ_RECENTLY.as_millis() as u64 {
            return;
        }
        let c = &self.counters;
        let board = self.board.get_or_insert_with(|| Board::register(c.traffic.totals()));
        if board.published_at.is_some_and(|at| now.saturating_duration_since(at) < PUBLISH_INTERVAL) {
            return;
        }
        board.published_at = Some(now);
        let (peers, queued_inbound_bytes, queued_outbound_bytes) = summary();
        let traffic = c.traffic.totals();
        let since = &board.baseline;
        let totals = ProcessTotals {
            endpoints: 1,
            peers,
            handshaking: c.handshaking.load(Ordering::Relaxed),
            messages_received: traffic.messages_received.wrapping_sub(since.messages_received),
            messages_sent: traffic.messages_sent.wrapping_sub(since.messages_sent),
            bytes_received: traffic.wire_bytes_received.wrapping_sub(since.wire_bytes_received),
            bytes_sent: traffic.wire_bytes_sent.wrapping_sub(since.wire_bytes_sent),
            rtt_sum_ms: ms(c.rtt_sum_us.get()),
            rtt_peers: c.rtt_peers.get(),
            queued_inbound_bytes,
            queued_outbound_bytes,
        };
        *board.published.lock().unwrap_or_else(PoisonError::into_inner) = totals;
    }
}

/// How often a `poll()` publishes to the process registry while monitoring.
const PUBLISH_INTERVAL: Duration = Duration::from_millis(250);

/// How long after the last [`process_totals`] the endpoints go on publishing.
const READ_RECENTLY: Duration = Duration::from_secs(5);

/// When [`process_totals`] was last called: milliseconds since [`START`], plus one (0: never).
static LAST_READ_MS: AtomicU64 = AtomicU64::new(0);

/// What [`LAST_READ_MS`] counts from.
static START: OnceLock<Instant> = OnceLock::new();

fn millis_since_start(now: Instant) -> u64 {
    let start = *START.get_or_init(|| now);
    u64::try_from(now.saturating_duration_since(start).as_millis()).unwrap_or(u64::MAX - 1) + 1
}

/// Whether servers and clients publish to the process registry.
static MONITORING: AtomicBool = AtomicBool::new(false);

/// The published totals of the live endpoints, and what the ended ones had counted.
static REGISTRY: Mutex<Registry> = Mutex::new(Registry { live: Vec::new(), ended: ProcessTotals::ZERO });

#[derive(Debug)]
struct Registry {
    live: Vec<Arc<Mutex<ProcessTotals>>>,
    /// Cumulative counts of endpoints that are gone, so that process totals never go back.
    ended: ProcessTotals,
}

/// One endpoint's entry in the registry; leaving it moves its counts to `ended`.
#[derive(Debug)]
struct Board {
    published: Arc<Mutex<ProcessTotals>>,
    published_at: Option<Instant>,
    /// The endpoint's traffic when it joined: what it publishes counts from there, so that a
    /// server that ran before anybody watched shows no burst of old traffic.
    baseline: TrafficTotals,
}

impl Board {
    fn register(baseline: TrafficTotals) -> Self {
        let published = Arc::new(Mutex::new(ProcessTotals::ZERO));
        REGISTRY.lock().unwrap_or_else(PoisonError::into_inner).live.push(published.clone());
        Board { published, published_at: None, baseline }
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        let mut registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
        registry.live.retain(|entry| !Arc::ptr_eq(entry, &self.published));
        let last = self.published.lock().unwrap_or_else(PoisonError::into_inner).clone();
        registry.ended.messages_received += last.messages_received;
        registry.ended.messages_sent += last.messages_sent;
        registry.ended.bytes_received += last.bytes_received;
        registry.ended.bytes_sent += last.bytes_sent;
    }
}

/// Every server and client of the process, summed (the editor's monitors): gauges of the live
/// ones, and the traffic of all of them since they started publishing (cumulative).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcessTotals {
    /// Live servers and clients that published.
    pub endpoints: u64,
    /// Open connections.
    pub peers: u64,
    /// Connections in their handshake.
    pub handshaking: u64,
    /// Messages received (cumulative).
    pub messages_received: u64,
    /// Messages sent (cumulative).
    pub messages_sent: u64,
    /// Wire bytes received (cumulative).
    pub bytes_received: u64,
    /// Wire bytes sent (cumulative).
    pub bytes_sent: u64,
    /// Sum of the smoothed round-trip times of the peers that have one, in milliseconds.
    pub rtt_sum_ms: f64,
    /// Peers that have a round-trip time (the mean is `rtt_sum_ms / rtt_peers`).
    pub rtt_peers: u64,
    /// Payload bytes waiting for the game.
    pub queued_inbound_bytes: u64,
    /// Payload bytes waiting to reach the sockets.
    pub queued_outbound_bytes: u64,
}

impl ProcessTotals {
    const ZERO: ProcessTotals = ProcessTotals {
        endpoints: 0,
        peers: 0,
        handshaking: 0,
        messages_received: 0,
        messages_sent: 0,
        bytes_received: 0,
        bytes_sent: 0,
        rtt_sum_ms: 0.0,
        rtt_peers: 0,
        queued_inbound_bytes: 0,
        queued_outbound_bytes: 0,
    };

    fn add(&mut self, other: &ProcessTotals) {
        self.endpoints += other.endpoints;
        self.peers += other.peers;
        self.handshaking += other.handshaking;
        self.messages_received += other.messages_received;
        self.messages_sent += other.messages_sent;
        self.bytes_received += other.bytes_received;
        self.bytes_sent += other.bytes_sent;
        self.rtt_sum_ms += other.rtt_sum_ms;
        self.rtt_peers += other.rtt_peers;
        self.queued_inbound_bytes += other.queued_inbound_bytes;
        self.queued_outbound_bytes += other.queued_outbound_bytes;
    }
}

/// Turns publishing to the process registry on or off (off by default; the editor monitors turn
/// it on). While on, and while [`process_totals`] was called in the last five seconds, each
/// server's and client's `poll()` publishes up to four times a second.
pub fn set_monitoring(enabled: bool) {
    MONITORING.store(enabled, Ordering::Relaxed);
}

/// Whether servers and clients publish to the process registry.
pub fn is_monitoring() -> bool {
    MONITORING.load(Ordering::Relaxed)
}

/// The sum of what every server and client of the process last published (see
/// [`set_monitoring`]). The first call only starts the publishing: the endpoints join at their
/// next `poll()`.
pub fn process_totals() -> ProcessTotals {
    LAST_READ_MS.store(millis_since_start(Instant::now()), Ordering::Relaxed);
    let registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    let mut totals = registry.ended.clone();
    for entry in &registry.live {
        totals.add(&entry.lock().unwrap_or_else(PoisonError::into_inner));
    }
    totals
}

/// Lets the first `per_second` reports of each second through and holds back the rest, so that
/// a flood (10,000 slow connections timing out together) cannot flood the game's output. What
/// was held back is still counted by the statistics; the next report let through says how many.
#[derive(Debug)]
pub struct ReportLimiter {
    per_second: u32,
    window_start: Option<Instant>,
    in_window: u32,
    held_back: u64,
}

/// What [`ReportLimiter::admit`] says of one report.
#[derive(Debug, PartialEq, Eq)]
pub enum Report {
    /// Print it.
    Print {
        /// How many reports before it were held back (not printed) since the last one printed.
        held_back: u64,
    },
    /// Print it, and say that the next ones this second will not be: it is the last let through.
    PrintLast,
    /// Do not print it.
    Hold,
}

impl ReportLimiter {
    /// At most `per_second` reports printed in any one second (at least one).
    pub fn new(per_second: u32) -> Self {
        ReportLimiter { per_second: per_second.max(1), window_start: None, in_window: 0, held_back: 0 }
    }

    /// Whether the report made at `now` is printed.
    pub fn admit(&mut self, now: Instant) -> Report {
        let fresh = self.window_start.is_none_or(|start| now.saturating_duration_since(start) >= Duration::from_secs(1));
        if fresh {
            self.window_start = Some(now);
            self.in_window = 0;
        }
        self.in_window += 1;
        if self.in_window > self.per_second {
            self.held_back += 1;
            return Report::Hold;
        }
        if self.in_window == self.per_second {
            return Report::PrintLast;
        }
        Report::Print { held_back: std::mem::take(&mut self.held_back) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtt_follows_rfc_6298() {
        let mut rtt = RttEstimator::default();
        rtt.sample(Duration::from_millis(100));
        assert_eq!((rtt.smoothed, rtt.variance, rtt.last), (Duration::from_millis(100), Duration::from_millis(50), Duration::from_millis(100)));
        rtt.sample(Duration::from_millis(200));
        // variance = (3 * 50 + 100) / 4; smoothed = (7 * 100 + 200) / 8.
        assert_eq!(rtt.variance, Duration::from_micros(62_500));
        assert_eq!(rtt.smoothed, Duration::from_micros(112_500));
        assert_eq!(rtt.last, Duration::from_millis(200));
        assert_eq!(rtt.samples, 2);
    }

    #[test]
    fn endpoint_mean_rtt_tracks_peers_coming_and_going() {
        let counters = EndpointCounters::default();
        assert_eq!(counters.mean_rtt_ms(), 0.0);
        counters.rtt_changed(None, Some(Duration::from_millis(10)));
        counters.rtt_changed(None, Some(Duration::from_millis(30)));
        assert_eq!(counters.mean_rtt_ms(), 20.0);
        counters.rtt_changed(Some(Duration::from_millis(30)), Some(Duration::from_millis(20)));
        assert_eq!(counters.mean_rtt_ms(), 15.0);
        counters.rtt_changed(Some(Duration::from_millis(10)), None);
        assert_eq!(counters.mean_rtt_ms(), 20.0);
        counters.rtt_changed(Some(Duration::from_millis(20)), None);
        assert_eq!(counters.mean_rtt_ms(), 0.0);
    }

    #[test]
    fn rates_cover_whole_windows() {
        let counters = EndpointCounters::default();
        let mut meter = RateMeter::default();
        let start = Instant::now();
        meter.update(&counters, start);
        counters.traffic.delivered(0);
        counters.traffic.wire(0, 4000);
        for _ in 1..50 {
            counters.traffic.delivered(0);
        }
        meter.update(&counters, start + Duration::from_millis(500));
        assert_eq!(meter.rates, [0.0; 4], "half a window gives no rate yet");
        for _ in 0..50 {
            counters.traffic.delivered(0);
        }
        meter.update(&counters, start + Duration::from_secs(2));
        assert_eq!(meter.rates, [50.0, 0.0, 0.0, 2000.0]);
    }

    #[test]
    fn the_process_registry_sums_live_endpoints_and_keeps_what_ended_ones_counted() {
        // The only test of this binary that turns monitoring on (no other one polls a server).
        set_monitoring(true);
        let before = process_totals();
        let first = Arc::new(EndpointCounters::default());
        let second = Arc::new(EndpointCounters::default());
        let (mut a, mut b) = (EndpointStatistics::new(first.clone()), EndpointStatistics::new(second.clone()));
        // Both join at their first publication; their traffic counts from there.
        a.publish_if_due(|| (0, 0, 0));
        b.publish_if_due(|| (0, 0, 0));
        for _ in 0..10 {
            first.traffic.delivered(1);
        }
        first.traffic.wire(0, 300);
        second.rtt_changed(None, Some(Duration::from_millis(40)));
        for endpoint in [&mut a, &mut b] {
            if let Some(board) = endpoint.board.as_mut() {
                board.published_at = None;
            }
        }
        a.publish_if_due(|| (2, 100, 7));
        b.publish_if_due(|| (1, 0, 0));
        let totals = process_totals();
        assert_eq!(totals.endpoints - before.endpoints, 2);
        assert_eq!(totals.peers - before.peers, 3);
        assert_eq!(totals.messages_received - before.messages_received, 10);
        assert_eq!(totals.bytes_sent - before.bytes_sent, 300);
        assert_eq!((totals.queued_inbound_bytes - before.queued_inbound_bytes, totals.rtt_peers - before.rtt_peers), (100, 1));
        // Publishing again within a quarter second changes nothing.
        first.traffic.delivered(1);
        a.publish_if_due(|| (2, 100, 7));
        assert_eq!(process_totals().messages_received - before.messages_received, 10);
        // An endpoint that stops leaves its gauges out and its traffic in.
        a.retire();
        let after = process_totals();
        assert_eq!((after.endpoints - before.endpoints, after.peers - before.peers), (1, 1));
        assert_eq!(after.messages_received - before.messages_received, 10);
        assert_eq!(after.bytes_sent - before.bytes_sent, 300);
        set_monitoring(false);
        second.traffic.delivered(1);
        if let Some(board) = b.board.as_mut() {
            board.published_at = None;
        }
        b.publish_if_due(|| (5, 0, 0));
        let off = process_totals();
        assert_eq!((off.peers - before.peers, off.messages_received - before.messages_received), (1, 10), "monitoring off: nothing new");
    }

    #[test]
    fn an_endpoint_publishes_only_once_somebody_reads_and_counts_from_then() {
        let counters = Arc::new(EndpointCounters::default());
        counters.traffic.delivered(1);
        let mut endpoint = EndpointStatistics::new(counters.clone());
        // MONITORING may be on or off here (another test turns it on for a while); with nobody
        // having read, or with it off, nothing registers either way.
        if LAST_READ_MS.load(Ordering::Relaxed) == 0 {
            endpoint.publish_if_due(|| panic!("nobody reads: no summary"));
            assert!(endpoint.board.is_none());
        }
        let board = Board::register(counters.traffic.totals());
        counters.traffic.delivered(1);
        assert_eq!(counters.traffic.totals().messages_received.wrapping_sub(board.baseline.messages_received), 1);
    }

    #[test]
    fn refusal_names_are_distinct() {
        let mut names: Vec<&str> = Refusal::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Refusal::ALL.len());
        assert!(Refusal::ALL.iter().enumerate().all(|(i, r)| r.index() == i));
    }

    #[test]
    fn report_limiter_lets_a_few_through_each_second_and_counts_the_rest() {
        let start = Instant::now();
        let mut limiter = ReportLimiter::new(3);
        let at = |ms| start + Duration::from_millis(ms);
        assert_eq!(limiter.admit(at(0)), Report::Print { held_back: 0 });
        assert_eq!(limiter.admit(at(1)), Report::Print { held_back: 0 });
        assert_eq!(limiter.admit(at(2)), Report::PrintLast);
        for ms in 3..100 {
            assert_eq!(limiter.admit(at(ms)), Report::Hold);
        }
        // A second after the window began, the next one is printed with the count held back.
        assert_eq!(limiter.admit(at(999)), Report::Hold);
        assert_eq!(limiter.admit(at(1000)), Report::Print { held_back: 98 });
        assert_eq!(limiter.admit(at(5000)), Report::Print { held_back: 0 });
    }
}
