//! `cargo xtask chaos` (also run by `cargo xtask test`): our core `Server` and `Client` on an
//! impaired link. The server lives in one network namespace and the client in another, joined by
//! a veth pair (`net.rs`); one thread drives both, moving into the server's namespace to listen
//! and into the client's to connect (the core's I/O threads, and the client's reconnect attempts,
//! start from there and stay in that namespace). The cases:
//! - `clear_link`: no impairment (the figures to compare with);
//! - `loss_5`, `loss_20`: 5% and 20% of the packets in each direction dropped at random
//!   (nftables `numgen random mod 100 < N drop`);
//! - `cap_1mbit`: a 1 Mbit/s token bucket (tc `tbf`) on each direction;
//! - `delay_100ms`: 100 ms ± 20 ms added to each direction (tc `netem` where the kernel has it,
//!   else the delaying relay of `relay.rs`; the output says which);
//! - `short_partition`: everything dropped for 3 s, then healed: no disconnect, nothing lost;
//! - `long_partition`: everything dropped for 30 s: both sides drop the other within the
//!   heartbeat's bound, and the client's reconnect gets through once the link heals.
//!
//! In every case both sides send numbered messages (text and binary, up to 70 KB, which spans
//! about fifty TCP segments) and each message that arrives must be the next one sent, byte for
//! byte (`traffic.rs`): every message sent while the link works arrives once and in order.
//! Throughput and round-trip times are printed on `MEASURE` lines. Where namespaces cannot be made
//! (not root, or a kernel or container that refuses), or nftables cannot be had, the cases print
//! `SKIPPED: <reason>` and count as skipped.

mod net;
mod relay;
mod traffic;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use websocket_rs_core::{Client, ConnectionConfig, Limits, ReconnectPolicy, Server};

use net::{Network, Side};
use relay::DelayRelay;
use traffic::{Happened, Pair, SIZE_CYCLE};

/// The heartbeat interval of every case but the loss cases. A peer is dropped at the first heartbeat tick at which
/// nothing was heard since the previous tick's ping; the ticks are `H` apart, so the drop comes
/// more than `H` and at most `2H` after the peer was last heard from.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// The heartbeat interval of the loss cases. With 20% loss each way a TCP retransmission fails
/// about 36% of the time (the segment or its ACK is dropped) and each failure doubles the wait, so
/// `k` failures in a row leave `0.2 s * (2^k - 1)` of silence: 3 s was seen here, 10 s takes six
/// in a row (about 0.2% of the retransmission timeouts), 30 s eight (about 0.03%). A 10 s
/// heartbeat would drop a peer on such a link now and then, rightly; these cases are about
/// messages, so they use 30 s.
const LOSS_HEARTBEAT: Duration = Duration::from_secs(30);
/// Slack on the detection bound for a late timer or poll on a loaded machine.
const DETECTION_SLACK: Duration = Duration::from_secs(1);
/// The long partition: longer than `2H + slack`, so both sides must notice it while it lasts.
const LONG_PARTITION: Duration = Duration::from_secs(30);
/// The short partition. After it heals, each direction resumes at its next TCP retransmission;
/// with exponential backoff (200 ms, 400 ms, ...) that comes at most about twice the partition's
/// length after it began, 6-7 s here, still under `H`: no side goes a whole heartbeat interval
/// without hearing from the other, so neither drops it.
const SHORT_PARTITION: Duration = Duration::from_secs(3);
/// Paced traffic in the partition cases: one message each way this often.
const PACE: Duration = Duration::from_millis(25);
/// Round trips timed in each bulk case.
const PROBES: usize = 20;
/// The rate cap (bits per second), and how far above it the payload rate may be measured before
/// the case fails because the cap did not hold.
const CAP_BITS: f64 = 1_000_000.0;
const CAP_TOLERANCE: f64 = 1.10;
/// Added delay per direction and its jitter, and the smallest probe round trip that shows the
/// delay was in place (twice delay minus jitter).
const DELAY: Duration = Duration::from_millis(100);
const JITTER: Duration = Duration::from_millis(20);
const MIN_DELAYED_RTT: Duration = Duration::from_millis(160);
/// Bound on any one phase of a case (opening, a bulk transfer, the close), so a hang fails.
const PHASE_LIMIT: Duration = Duration::from_secs(60);

/// Results of the chaos cases.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Cases that passed.
    pub(crate) passed: usize,
    /// Cases that failed.
    pub(crate) failed: usize,
    /// Cases that could not run on this machine.
    pub(crate) skipped: usize,
}

/// How one case ended.
enum Verdict {
    Pass,
    Fail(String),
    Skip(String),
}

/// The names of the cases, in the order they run.
const CASES: [&str; 7] = ["clear_link", "loss_5", "loss_20", "cap_1mbit", "delay_100ms", "short_partition", "long_partition"];

/// Runs every case (or only those `filter` names, when it names any); prints a line per case
/// and returns the counts (a panic in a case counts as one failure).
pub(crate) fn run(filter: &str) -> Outcome {
    println!("== Impaired links: our Server and Client in two network namespaces (cargo xtask chaos)");
    let selected: Vec<&str> = CASES.iter().copied().filter(|c| !CASES.iter().any(|n| filter.contains(n)) || filter.contains(c)).collect();
    let skip_all = |reason: String| {
        for case in &selected {
            println!("SKIPPED: chaos::{case}: {reason}");
        }
        println!("chaos: 0 passed, 0 failed, {} skipped", selected.len());
        Outcome { skipped: selected.len(), ..Outcome::default() }
    };
    if !cfg!(target_os = "linux") {
        return skip_all("network namespaces are Linux only".into());
    }
    if let Err(reason) = net::namespaces_allowed() {
        return skip_all(reason);
    }
    let nft = match nft() {
        Ok(nft) => nft,
        Err(reason) => return skip_all(reason),
    };
    let network = match Network::create(&nft) {
        Ok(network) => network,
        Err(reason) => return skip_all(format!("the test network cannot be made: {reason}")),
    };
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    // One thread drives every case: it moves between the namespaces, the process's main thread
    // stays where it was. A panic in it is a failure; the network is deleted either way.
    let results = std::thread::scope(|scope| {
        let driver = scope.spawn(|| {
            let mut results = Vec::new();
            for case in &selected {
                let verdict = run_case(&network, case);
                let _ = network.heal();
                let _ = network.clear_qdisc();
                results.push((*case, verdict));
            }
            results
        });
        driver.join()
    });
    drop(network);
    let Ok(results) = results else {
        println!("FAIL chaos: a case panicked (the network namespaces were deleted)");
        return Outcome { failed: 1, ..Outcome::default() };
    };
    let mut outcome = Outcome::default();
    for (case, verdict) in results {
        match verdict {
            Verdict::Pass => {
                outcome.passed += 1;
                println!("PASS chaos::{case}");
            }
            Verdict::Fail(reason) => {
                outcome.failed += 1;
                println!("FAIL chaos::{case}: {reason}");
            }
            Verdict::Skip(reason) => {
                outcome.skipped += 1;
                println!("SKIPPED: chaos::{case}: {reason}");
            }
        }
    }
    println!(
        "MEASURE chaos: whole run {:.1} s wall, {:.2} s CPU (this process: driver, core I/O threads, relay)",
        started.elapsed().as_secs_f64(),
        cpu_seconds() - cpu_before
    );
    println!("chaos: {} passed, {} failed, {} skipped", outcome.passed, outcome.failed, outcome.skipped);
    outcome
}

fn run_case(network: &Network, case: &str) -> Verdict {
    println!("-- chaos::{case}");
    let result = match case {
        "clear_link" => bulk_case(network, case, Impairment::None, 100),
        "loss_5" => bulk_case(network, case, Impairment::Loss(5), 100),
        "loss_20" => bulk_case(network, case, Impairment::Loss(20), 50),
        "cap_1mbit" => bulk_case(network, case, Impairment::Cap, 20),
        "delay_100ms" => bulk_case(network, case, Impairment::Delay, 50),
        "short_partition" => short_partition(network),
        "long_partition" => long_partition(network),
        other => Err(Verdict::Fail(format!("no case {other}"))),
    };
    match result {
        Ok(()) => Verdict::Pass,
        Err(verdict) => verdict,
    }
}

/// What a bulk case does to the link.
#[derive(Clone, Copy, PartialEq)]
enum Impairment {
    None,
    Loss(u32),
    Cap,
    Delay,
}

/// Settings of both ends: the heartbeat, and queues large enough to keep the link busy.
fn config(heartbeat: Duration) -> ConnectionConfig {
    ConnectionConfig {
        heartbeat_interval: Some(heartbeat),
        handshake_timeout: Duration::from_secs(5),
        limits: Limits { inbound_buffer_size: 1 << 20, outbound_buffer_size: 1 << 20, ..Limits::default() },
        ..ConnectionConfig::default()
    }
}

/// Listens in the server's namespace (behind a delaying relay when `relay` is set), connects from
/// the client's and waits until both ends are open. The calling thread is left in the client's
/// namespace.
fn open_pair(network: &Network, config: &ConnectionConfig, relay: bool) -> Result<(Pair, Option<DelayRelay>), String> {
    network.enter(Side::Server)?;
    let mut server = Server::new();
    let addr = server.listen(SocketAddr::from((network.server_ip, 0)), config.clone()).map_err(|e| format!("listen: {e}"))?;
    let relay = if relay { Some(DelayRelay::start(SocketAddr::from((network.server_ip, 0)), addr, DELAY, JITTER)?) } else { None };
    let target = relay.as_ref().map_or(addr, |r| r.addr);
    network.enter(Side::Client)?;
    let mut client = Client::new();
    client.connect(&format!("ws://{target}/chaos"), config.clone()).map_err(|e| format!("connect: {e}"))?;
    let mut pair = Pair::new(server, client);
    pair.until(Instant::now() + PHASE_LIMIT, "the connection to open", Pair::both_open)?;
    Ok((pair, relay))
}

/// `Err(Verdict::Fail)` from a setup or check error.
fn fail(message: String) -> Verdict {
    Verdict::Fail(message)
}

/// A bulk case: the impairment is put on the open connection, `count` messages go each way at
/// once (throughput), then `PROBES` round trips are timed one by one (RTT); everything must
/// arrive, nothing may disconnect, and the impairment must show (packets dropped, the rate under
/// the cap, round trips over the delay).
fn bulk_case(network: &Network, case: &str, impairment: Impairment, count: usize) -> Result<(), Verdict> {
    // Delay: netem where the kernel has it, else the relay.
    let mut relay_reason = None;
    if impairment == Impairment::Delay {
        let delay = format!("{}ms", DELAY.as_millis());
        let jitter = format!("{}ms", JITTER.as_millis());
        match network.set_qdisc(&["netem", "delay", &delay, &jitter]) {
            Ok(()) => println!("chaos::{case}: delay by netem ({delay} ± {jitter} on each veth end's egress)"),
            Err(err) => {
                println!("chaos::{case}: delay by the delaying relay ({delay} ± {jitter} each way, never reordered): netem is not available ({err})");
                relay_reason = Some(err);
            }
        }
    }
    let heartbeat = if let Impairment::Loss(_) = impairment { LOSS_HEARTBEAT } else { HEARTBEAT };
    println!("chaos::{case}: heartbeat_interval {} s", heartbeat.as_secs());
    let (mut pair, _relay) = open_pair(network, &config(heartbeat), relay_reason.is_some()).map_err(fail)?;
    match impairment {
        Impairment::Loss(percent) => network.set_loss(percent).map_err(fail)?,
        Impairment::Cap => network
            .set_qdisc(&["tbf", "rate", "1mbit", "burst", "16kb", "latency", "200ms"])
            .map_err(|e| Verdict::Skip(format!("the tbf qdisc is not available: {e}")))?,
        Impairment::None | Impairment::Delay => {}
    }
    // Throughput: both directions at once.
    pair.up.plan(count, &SIZE_CYCLE);
    pair.down.plan(count, &SIZE_CYCLE);
    let start = Instant::now();
    pair.until(start + PHASE_LIMIT, "the bulk messages", |p| p.up.complete() && p.down.complete()).map_err(fail)?;
    let mut rates = Vec::new();
    for (name, stream) in [("client→server", &pair.up), ("server→client", &pair.down)] {
        let seconds = stream.last_arrival.map_or(0.0, |t| t.duration_since(start).as_secs_f64()).max(1e-6);
        let (messages, bytes) = (stream.received as f64 / seconds, stream.bytes_received as f64 / seconds);
        println!(
            "MEASURE chaos::{case} {name}: {} messages, {} bytes in {seconds:.2} s: {messages:.0} messages/s, {:.3} MB/s ({:.2} Mbit/s)",
            stream.received,
            stream.bytes_received,
            bytes / 1e6,
            bytes * 8.0 / 1e6
        );
        rates.push((name, bytes * 8.0));
    }
    // Round trips: one small message up, the server answers with one down.
    pair.echo = true;
    let mut rtts = Vec::new();
    for _ in 0..PROBES {
        let want = pair.down.received + 1;
        let sent = Instant::now();
        pair.up.plan(1, &[(24, true)]);
        pair.until(sent + PHASE_LIMIT, "a round-trip probe", |p| p.down.received >= want).map_err(fail)?;
        rtts.push(sent.elapsed());
    }
    pair.echo = false;
    rtts.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (server_stats, client_stats) = match (pair.server_peer(), pair.client.peer()) {
        (Some(s), Some(c)) => (s.statistics(), c.statistics()),
        _ => return Err(fail(format!("a side is no longer connected: {:?}", pair.events()))),
    };
    println!(
        "MEASURE chaos::{case} rtt: {PROBES} message round trips (a message up, its answer down, polled every 50 us) min {:.2} ms, median {:.2} ms, max {:.2} ms; heartbeat rtt (smoothed over the pings so far; for loss and cap only the one at open, before the impairment) server {:.2} ms, client {:.2} ms",
        ms(rtts[0]),
        ms(rtts[rtts.len() / 2]),
        ms(rtts[rtts.len() - 1]),
        server_stats.rtt_ms,
        client_stats.rtt_ms
    );
    let dropped = if let Impairment::Loss(_) = impairment { Some(network.dropped_packets().map_err(fail)?) } else { None };
    network.heal().map_err(fail)?;
    network.clear_qdisc().map_err(fail)?;
    let disconnects = pair.disconnects();
    if !disconnects.is_empty() {
        return Err(fail(format!("the connection did not survive: {disconnects:?}")));
    }
    match impairment {
        Impairment::Loss(percent) => {
            let dropped = dropped.unwrap_or(0);
            println!("MEASURE chaos::{case} nftables dropped {dropped} packets ({percent}% of those arriving, each side)");
            if dropped == 0 {
                return Err(fail("the loss rule dropped no packet: the impairment was not in place".into()));
            }
        }
        Impairment::Cap => {
            for (name, bits) in &rates {
                println!(
                    "chaos::{case} {name}: payload {:.3} Mbit/s, bound: at most {:.2} Mbit/s ({CAP_TOLERANCE} × the cap)",
                    bits / 1e6,
                    CAP_BITS * CAP_TOLERANCE / 1e6
                );
                if *bits > CAP_BITS * CAP_TOLERANCE {
                    return Err(fail(format!("{name} carried {:.3} Mbit/s through a 1 Mbit/s cap", bits / 1e6)));
                }
            }
        }
        Impairment::Delay => {
            println!("chaos::{case}: bound: every round trip at least {} ms (both directions delayed)", MIN_DELAYED_RTT.as_millis());
            if rtts[0] < MIN_DELAYED_RTT {
                return Err(fail(format!("a round trip took {:.1} ms: the delay was not in place", ms(rtts[0]))));
            }
        }
        Impairment::None => {}
    }
    println!(
        "chaos::{case}: {} + {} messages each arrived once and in order",
        pair.up.received, pair.down.received
    );
    pair.close(PHASE_LIMIT).map_err(fail)
}

/// A partition shorter than the heartbeat allows: paced messages both ways before, during and
/// after it; nothing may disconnect and every message, those sent during the partition too, must
/// arrive once and in order.
fn short_partition(network: &Network) -> Result<(), Verdict> {
    let case = "short_partition";
    let (mut pair, _) = open_pair(network, &config(HEARTBEAT), false).map_err(fail)?;
    pair.pace = Some(PACE);
    pair.run_for(Duration::from_secs(2)).map_err(fail)?;
    network.partition().map_err(fail)?;
    pair.run_for(SHORT_PARTITION).map_err(fail)?;
    let dropped = network.dropped_packets().map_err(fail)?;
    network.heal().map_err(fail)?;
    let healed = Instant::now();
    let (up, down) = (pair.up.sent(), pair.down.sent());
    pair.until(healed + PHASE_LIMIT, "the messages sent during the partition", |p| p.up.received >= up && p.down.received >= down)
        .map_err(fail)?;
    let recovered = healed.elapsed();
    pair.run_for(Duration::from_secs(2)).map_err(fail)?;
    pair.pace = None;
    pair.until(Instant::now() + PHASE_LIMIT, "the last messages", |p| p.up.complete() && p.down.complete()).map_err(fail)?;
    println!(
        "MEASURE chaos::{case}: partition {} s dropped {dropped} packets; everything sent before the heal arrived {:.2} s after it (TCP retransmission backoff)",
        SHORT_PARTITION.as_secs(),
        recovered.as_secs_f64()
    );
    println!(
        "chaos::{case}: bound: no disconnect on either side (heartbeat {} s, partition {} s); {} + {} messages each arrived once and in order",
        HEARTBEAT.as_secs(),
        SHORT_PARTITION.as_secs(),
        pair.up.received,
        pair.down.received
    );
    let disconnects = pair.disconnects();
    if !disconnects.is_empty() {
        return Err(fail(format!("the connection did not survive a {} s partition: {disconnects:?}", SHORT_PARTITION.as_secs())));
    }
    if dropped == 0 {
        return Err(fail("the partition rule dropped no packet: the link was never cut".into()));
    }
    pair.close(PHASE_LIMIT).map_err(fail)
}

/// A partition longer than the heartbeat allows: both sides must drop the other within the bound
/// (`H - 1 s` to `2H + 1 s` after the partition began: the last message was heard at most a pace
/// interval before it), the messages sent before it must all have arrived, and once it heals the
/// client's reconnect must get through and carry messages again.
fn long_partition(network: &Network) -> Result<(), Verdict> {
    let case = "long_partition";
    let policy = ReconnectPolicy {
        enabled: true,
        initial_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(2),
        max_attempts: 0,
        after_clean_close: false,
    };
    let handshake_timeout = Duration::from_secs(3);
    let config = ConnectionConfig { reconnect: policy.clone(), handshake_timeout, ..config(HEARTBEAT) };
    let (mut pair, _) = open_pair(network, &config, false).map_err(fail)?;
    pair.pace = Some(PACE);
    pair.run_for(Duration::from_secs(2)).map_err(fail)?;
    pair.pace = None;
    pair.until(Instant::now() + PHASE_LIMIT, "the messages before the partition", |p| p.up.complete() && p.down.complete())
        .map_err(fail)?;
    let before = (pair.up.received, pair.down.received);
    // During the partition both sides keep sending until they notice; those messages may be lost.
    pair.pace = Some(PACE);
    pair.closed_is_loss = true;
    let old_peer = pair.peer;
    let events_before = pair.log.len();
    network.partition().map_err(fail)?;
    let cut = Instant::now();
    let (low, high) = (HEARTBEAT - DETECTION_SLACK, 2 * HEARTBEAT + DETECTION_SLACK);
    let detected = |p: &Pair| -> (Option<Detection>, Option<Detection>) {
        let events = &p.log[events_before..];
        let server = events.iter().find_map(|(t, e)| match e {
            Happened::Disconnected { id, error } if Some(*id) == old_peer => Some((*t, error.clone())),
            _ => None,
        });
        let client = events.iter().find_map(|(t, e)| match e {
            Happened::Lost { error } => Some((*t, error.clone())),
            _ => None,
        });
        (server, client)
    };
    pair.until(cut + high + Duration::from_secs(5), "both sides to notice the partition", |p| {
        let (s, c) = detected(p);
        s.is_some() && c.is_some()
    })
    .map_err(fail)?;
    let (Some((server_at, server_error)), Some((client_at, client_error))) = detected(&pair) else {
        return Err(fail("detection vanished".into()));
    };
    let lost = (pair.up.sent() - pair.up.received, pair.down.sent() - pair.down.received);
    let sent_during = (pair.up.sent() - before.0, pair.down.sent() - before.1);
    // What follows is a new connection with new numbering.
    pair.pace = None;
    pair.up = traffic::Stream::new(b'U');
    pair.down = traffic::Stream::new(b'D');
    let heal_at = cut + LONG_PARTITION;
    pair.run_for(heal_at.saturating_duration_since(Instant::now())).map_err(fail)?;
    let dropped = network.dropped_packets().map_err(fail)?;
    network.heal().map_err(fail)?;
    let healed = Instant::now();
    let reconnect_bound = handshake_timeout + policy.max_delay + Duration::from_secs(5);
    let events_at_heal = pair.log.len();
    pair.until(healed + reconnect_bound, "the client's reconnect after the heal", |p| {
        p.both_open() && p.log[events_at_heal..].iter().any(|(_, e)| *e == Happened::Reconnected)
    })
    .map_err(fail)?;
    let reconnected = healed.elapsed();
    pair.closed_is_loss = false;
    pair.up.plan(40, &SIZE_CYCLE);
    pair.down.plan(40, &SIZE_CYCLE);
    pair.until(Instant::now() + PHASE_LIMIT, "the messages after the reconnect", |p| p.up.complete() && p.down.complete())
        .map_err(fail)?;
    let attempts = pair.log[events_before..].iter().filter(|(_, e)| matches!(e, Happened::AttemptFailed(_))).count();
    let (server_after, client_after) = (server_at.duration_since(cut), client_at.duration_since(cut));
    println!(
        "MEASURE chaos::{case}: partition {} s dropped {dropped} packets; the server dropped the client after {:.2} s, the client dropped the server after {:.2} s (bound: {:.0} s to {:.0} s, heartbeat {} s)",
        LONG_PARTITION.as_secs(),
        server_after.as_secs_f64(),
        client_after.as_secs_f64(),
        low.as_secs_f64(),
        high.as_secs_f64(),
        HEARTBEAT.as_secs()
    );
    println!(
        "MEASURE chaos::{case}: reconnected {:.2} s after the heal (bound {} s) after {attempts} failed attempts; sent during the partition before it was noticed: {} up, {} down, of which lost {} up, {} down",
        reconnected.as_secs_f64(),
        reconnect_bound.as_secs(),
        sent_during.0,
        sent_during.1,
        lost.0,
        lost.1
    );
    println!(
        "chaos::{case}: {} + {} messages before the partition and {} + {} after the reconnect each arrived once and in order",
        before.0, before.1, pair.up.received, pair.down.received
    );
    let mut problems = Vec::new();
    for (side, after, error) in [("server", server_after, &server_error), ("client", client_after, &client_error)] {
        if after < low || after > high {
            problems.push(format!("the {side} noticed after {:.2} s, outside {:.0}-{:.0} s", after.as_secs_f64(), low.as_secs_f64(), high.as_secs_f64()));
        }
        if !error.as_deref().is_some_and(|e| e.contains("no answer to a ping")) {
            problems.push(format!("the {side} dropped the connection for another reason: {error:?}"));
        }
    }
    if dropped == 0 {
        problems.push("the partition rule dropped no packet".into());
    }
    let unexpected: Vec<_> = pair.log[..events_before]
        .iter()
        .chain(&pair.log[events_at_heal..])
        .filter(|(_, e)| matches!(e, Happened::Disconnected { .. } | Happened::Lost { .. } | Happened::Closed { .. }))
        .map(|(_, e)| format!("{e:?}"))
        .collect();
    if !unexpected.is_empty() {
        problems.push(format!("disconnects outside the partition: {unexpected:?}"));
    }
    if !problems.is_empty() {
        return Err(fail(problems.join("; ")));
    }
    pair.close(PHASE_LIMIT).map_err(fail)
}

/// When a side dropped the other, and the error it gave.
type Detection = (Instant, Option<String>);

/// The `nft` binary: on PATH or in /usr/sbin, else the Debian package `nftables` installed with
/// apt-get (we are root here). Err (a skip) when it cannot be had.
fn nft() -> Result<PathBuf, String> {
    let runs = |path: &Path| Command::new(path).arg("--version").output().is_ok_and(|o| o.status.success());
    let find = || [PathBuf::from("nft"), PathBuf::from("/usr/sbin/nft")].into_iter().find(|p| runs(p));
    if let Some(path) = find() {
        return Ok(path);
    }
    if !crate::peers::debian_like() {
        return Err("nft (nftables) is not installed and this is no Debian-like system to install it on".into());
    }
    println!("xtask: installing the Debian package nftables for the impaired-link tests");
    crate::peers::apt_get_install(&["nftables"]).map_err(|e| format!("the Debian package nftables could not be installed: {e}"))?;
    find().ok_or_else(|| "the Debian package nftables was installed but `nft --version` does not run".into())
}

/// CPU time (user and system) this process used so far, in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we pass; zeroed is a valid rusage.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}
