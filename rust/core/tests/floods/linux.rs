//! The harness (one test at a time, each in a process of its own, `SKIPPED` counted as ignored)
//! and the four tests.

use std::collections::HashSet;
use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use websocket_rs_core::{ConnectionConfig, Server, ServerEvent, ServerStatistics, TlsClientSettings, TlsServerSettings};

use crate::client::{self, Mode};
use crate::support::{
    cpu_time, descriptor_limit, percentile, raise_descriptor_limit, resident_bytes, set_soft_descriptor_limit, Bystander,
    ConnRecord, FloodChild, LimitGuard,
};
use crate::CHILD_FLAG;

/// The server's `handshake_timeout` in the floods: each slowloris and TLS connection must be
/// dropped this long after it was accepted.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

/// How often a trickling flood connection sends its next byte (6 bytes within the deadline:
/// a deadline pushed back by each byte would never come).
const TRICKLE_INTERVAL: Duration = Duration::from_millis(500);

/// How fast the flood client opens its connections (10,000 in 2 s).
const FLOOD_RATE: u64 = 5_000;

/// A flood connection ended this much before its deadline (counted from the client's connect(2),
/// which is before the server's accept) still counts as on time: two clocks read in two
/// processes. (Before the reactor read the clock per accept, a connection accepted late in a
/// long turn of the I/O thread got the turn's start as its accept time: dropped 100 ms early.)
const EARLY_TOLERANCE: Duration = Duration::from_millis(5);

/// How late after its deadline (counted from when TCP was established) a flood connection may be
/// dropped: the server's accept queue, its timer heap and thousands of connections ending in the
/// same second, on a machine that may be busy. Measured at most 34 ms late (slowloris) and 208 ms
/// late (TLS) on 2 shared cores.
const DEADLINE_SLACK: Duration = Duration::from_millis(1500);

/// How soon after its 1 GiB frame header a connection must get its 1009 close frame and be
/// closed: the header is refused before any payload arrives. Measured 17-77 ms for the last of
/// the 1,000 (they all send their header at once).
const FAIL_SLACK: Duration = Duration::from_secs(1);

/// Bounds on the bystander's echo round trips during a flood (its messages go through the same
/// I/O thread as the flood's thousands of connections, and the game loop polls every
/// millisecond): at most half the attackers' `handshake_timeout`. Measured on 2 cores shared with
/// other builds: p99 6-61 ms, max 10-330 ms (once 1.18 s, with a linker busy on both cores; the
/// slowest round trip comes as the flood starts).
const BYSTANDER_MAX_RTT: Duration = Duration::from_millis(1500);
/// See [`BYSTANDER_MAX_RTT`].
const BYSTANDER_P99_RTT: Duration = Duration::from_millis(250);

/// The fewest round trips the bystander must make during a flood (it makes one every ~10 ms; the
/// shortest flood lasts about half a second).
const BYSTANDER_MIN_SAMPLES: usize = 20;

/// Growth of the server's resident memory per flood connection, at the flood's peak (the peak
/// growth over the most flood connections the server held at once). Measured 1.2-1.5 KiB
/// (12-14 MiB for 10,000 partial upgrade requests).
const MAX_KIB_PER_SLOWLORIS: u64 = 8;
/// See [`MAX_KIB_PER_SLOWLORIS`], for a TLS handshake left unfinished. Measured 10.1-10.3 KiB
/// (98-100 MiB for 10,000; rustls's state, with the server's flight for those that sent a whole
/// ClientHello).
const MAX_KIB_PER_TLS_HELLO: u64 = 32;
/// See [`MAX_KIB_PER_SLOWLORIS`], for an open peer whose 1 GiB frame was refused. Measured
/// 6.9-7.4 KiB (6.7 MiB for 1,000): nothing of the announced payload is reserved.
const MAX_KIB_PER_HUGE_FRAME: u64 = 32;

/// How long a whole flood test may take before it fails.
const FLOOD_LIMIT: Duration = Duration::from_secs(90);

/// What one test came to (a failure is a panic).
enum Outcome {
    Passed,
    Skipped(String),
}

type Test = fn() -> Outcome;

const TESTS: [(&str, Test); 4] = [
    ("descriptor_exhaustion", descriptor_exhaustion),
    ("slowloris", slowloris),
    ("tls_hellos", tls_hellos),
    ("huge_frame_headers", huge_frame_headers),
];

/// The first argument that makes this binary run the one test named next, alone.
const RUN_ONE_FLAG: &str = "--run-one";

/// The exit code of a test process whose test was skipped.
const SKIPPED_EXIT: i32 = 3;

/// Runs one test in this process: exit code 0 when it passed, [`SKIPPED_EXIT`] when skipped (a
/// failure panics).
fn run_one(name: &str) -> ExitCode {
    let Some((_, test)) = TESTS.iter().find(|(n, _)| *n == name) else {
        println!("no test named {name}");
        return ExitCode::FAILURE;
    };
    match test() {
        Outcome::Passed => ExitCode::SUCCESS,
        Outcome::Skipped(reason) => {
            println!("SKIPPED: {name}: {reason}");
            ExitCode::from(SKIPPED_EXIT as u8)
        }
    }
}

/// Runs the tests the arguments select (libtest's filters, `--exact`, `--skip`, `--list`), one
/// at a time, and prints libtest's summary line (skipped tests count as ignored).
pub(crate) fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == CHILD_FLAG) {
        return client::run(&args[1..]);
    }
    if let [flag, name] = &args[..] {
        if flag == RUN_ONE_FLAG {
            return run_one(name);
        }
    }
    let mut filters = Vec::new();
    let mut skips = Vec::new();
    let (mut exact, mut list) = (false, false);
    let mut words = args.iter();
    while let Some(word) = words.next() {
        match word.as_str() {
            "--exact" => exact = true,
            "--list" => list = true,
            "--skip" => skips.extend(words.next().cloned()),
            // libtest options that take a value.
            "--test-threads" | "--color" | "--format" | "--logfile" | "-Z" | "--report-time" | "--shuffle-seed" => {
                words.next();
            }
            flag if flag.starts_with('-') => {}
            filter => filters.push(filter.to_string()),
        }
    }
    let matches = |name: &str, pattern: &str| if exact { name == pattern } else { name.contains(pattern) };
    let selected: Vec<(&str, Test)> = TESTS
        .iter()
        .copied()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| matches(name, f)))
        .filter(|(name, _)| !skips.iter().any(|s| matches(name, s)))
        .collect();
    if list {
        for (name, _) in &selected {
            println!("{name}: test");
        }
        println!("{} tests, 0 benchmarks", selected.len());
        return ExitCode::SUCCESS;
    }
    let started = Instant::now();
    println!("\nrunning {} tests", selected.len());
    let (mut passed, mut failed, mut ignored) = (0, 0, 0);
    let mut failures = Vec::new();
    let exe = std::env::current_exe().expect("the test binary's path");
    for (name, _) in &selected {
        println!("test {name} ...");
        let began = Instant::now();
        // Each in a process of its own: resident memory measured from a fresh heap, and the
        // descriptor limit of its own.
        let status = std::process::Command::new(&exe).args([RUN_ONE_FLAG, name]).status();
        match status.map(|s| s.code()) {
            Ok(Some(0)) => {
                passed += 1;
                println!("test {name} ... ok ({:.1} s)", began.elapsed().as_secs_f64());
            }
            Ok(Some(SKIPPED_EXIT)) => {
                ignored += 1;
                println!("test {name} ... ignored (SKIPPED)");
            }
            other => {
                failed += 1;
                failures.push(*name);
                println!("test {name} ... FAILED ({other:?}, {:.1} s)", began.elapsed().as_secs_f64());
            }
        }
    }
    if !failures.is_empty() {
        println!("\nfailures:\n    {}", failures.join("\n    "));
    }
    let verdict = if failed == 0 { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {verdict}. {passed} passed; {failed} failed; {ignored} ignored; 0 measured; {} filtered out; finished in {:.2}s\n",
        TESTS.len() - selected.len(),
        started.elapsed().as_secs_f64()
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A server on 127.0.0.1 with a free port: it and its address.
fn listen(config: ConnectionConfig) -> (Server, SocketAddr) {
    let mut server = Server::new();
    let addr = server.listen(SocketAddr::from(([127, 0, 0, 1], 0)), config).expect("listen");
    (server, addr)
}

/// Polls `server` until the bystander is open; its id.
fn await_bystander(server: &mut Server) -> i32 {
    let mut events = Vec::new();
    let start = Instant::now();
    loop {
        server.poll(&mut events);
        if let Some(id) = events.iter().find_map(|e| match e {
            ServerEvent::ClientConnected { id, .. } => Some(*id),
            _ => None,
        }) {
            return id;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "the bystander did not connect: {events:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Sends back whatever the bystander sent.
fn echo(server: &Server, bystander: i32) {
    let peer = server.peer(bystander).expect("the bystander is still a peer");
    while let Some(packet) = peer.recv() {
        peer.send(packet).expect("echo");
    }
}

/// The bystander's round trips that started between `from` and `to`, checked against the bounds
/// and printed; `label` names the flood.
fn check_round_trips(label: &str, samples: &[(Instant, Duration)], from: Instant, to: Instant) {
    let window: Vec<&(Instant, Duration)> = samples.iter().filter(|(at, _)| *at >= from && *at <= to).collect();
    let slowest_at = window.iter().max_by_key(|(_, rtt)| *rtt).map_or(0.0, |(at, _)| at.duration_since(from).as_secs_f64());
    let mut during: Vec<Duration> = window.iter().map(|(_, rtt)| *rtt).collect();
    during.sort_unstable();
    let (p50, p99, max) = (percentile(&during, 50.0), percentile(&during, 99.0), percentile(&during, 100.0));
    println!(
        "MEASURE {label}: bystander echo round trips during the flood: {} samples, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({slowest_at:.2} s in) (bounds: p99 {} ms, max {} ms)",
        during.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        BYSTANDER_P99_RTT.as_millis(),
        BYSTANDER_MAX_RTT.as_millis()
    );
    assert!(during.len() >= BYSTANDER_MIN_SAMPLES, "{label}: only {} bystander round trips during the flood", during.len());
    assert!(p99 <= BYSTANDER_P99_RTT, "{label}: bystander p99 round trip {p99:?} > {BYSTANDER_P99_RTT:?}");
    assert!(max <= BYSTANDER_MAX_RTT, "{label}: bystander longest round trip {max:?} > {BYSTANDER_MAX_RTT:?}");
}

fn micros(d: Duration) -> u64 {
    d.as_micros() as u64
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// One flood against one server: what to send and how many.
struct Flood {
    label: &'static str,
    mode: Mode,
    count: usize,
    rate: u64,
    /// The server's configuration (a bystander's, for wss://).
    server_config: ConnectionConfig,
    bystander_config: ConnectionConfig,
    scheme: &'static str,
    max_kib_per_connection: u64,
}

/// What the server and the flood client saw.
struct FloodResult {
    records: Vec<ConnRecord>,
    stats: ServerStatistics,
    /// Server events: handshakes failed at `handshake_timeout`, and other failures (the first).
    timeouts: usize,
    other_failures: Vec<String>,
    /// Flood peers that opened, and that were dropped with an error (and the first error).
    flood_opened: usize,
    flood_dropped: usize,
    first_drop_error: Option<String>,
}

fn run_flood(flood: &Flood) -> Result<FloodResult, String> {
    let _limit = LimitGuard::new();
    // The server's connections and a margin (the child raises its own to as many).
    raise_descriptor_limit(flood.count as u64 + 200)?;
    let (mut server, addr) = listen(flood.server_config.clone());
    let url = format!("{}://127.0.0.1:{}/", flood.scheme, addr.port());
    let bystander = Bystander::start(url, flood.bystander_config.clone());
    let bystander_id = await_bystander(&mut server);
    let give_up = HANDSHAKE_TIMEOUT + Duration::from_secs(15);
    let mut child = FloodChild::spawn(flood.mode, addr, flood.count, TRICKLE_INTERVAL, flood.rate, give_up);
    let mut events = Vec::new();
    // Settle, echoing, for a moment; then the baseline.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_millis(300) {
        server.poll(&mut events);
        events.clear();
        echo(&server, bystander_id);
        std::thread::sleep(Duration::from_millis(1));
    }
    let rss_before = resident_bytes();
    let cpu_before = cpu_time();
    child.send("go");
    let go = Instant::now();
    let (mut rss_peak, mut peak_handshaking, mut peak_open) = (rss_before, 0u64, 0u64);
    let (mut last_rss, mut last_stats) = (go, go);
    let mut flood_ids = HashSet::new();
    let mut result = FloodResult {
        records: Vec::with_capacity(flood.count),
        stats: ServerStatistics::default(),
        timeouts: 0,
        other_failures: Vec::new(),
        flood_opened: 0,
        flood_dropped: 0,
        first_drop_error: None,
    };
    let mut child_done = None;
    loop {
        server.poll(&mut events);
        for event in events.drain(..) {
            match event {
                ServerEvent::ClientConnected { id, .. } => {
                    flood_ids.insert(id);
                    result.flood_opened += 1;
                }
                ServerEvent::HandshakeFailed { reason, .. } => {
                    if reason.contains("handshake not finished within") {
                        result.timeouts += 1;
                    } else if result.other_failures.len() < 5 {
                        result.other_failures.push(reason);
                    } else {
                        result.other_failures.push(String::new());
                    }
                }
                ServerEvent::ClientDisconnected { id, error, .. } => {
                    assert_ne!(id, bystander_id, "the bystander was dropped: {error:?}");
                    if flood_ids.remove(&id) {
                        result.flood_dropped += 1;
                        if result.first_drop_error.is_none() {
                            result.first_drop_error = error;
                        }
                    }
                }
                ServerEvent::OutOfDescriptors { reason } => panic!("{}: out of descriptors with the limit raised: {reason}", flood.label),
                _ => {}
            }
        }
        echo(&server, bystander_id);
        let now = Instant::now();
        if now.duration_since(last_rss) >= Duration::from_millis(10) {
            last_rss = now;
            rss_peak = rss_peak.max(resident_bytes());
        }
        if now.duration_since(last_stats) >= Duration::from_millis(50) || child_done.is_some() {
            last_stats = now;
            result.stats = server.statistics();
            peak_handshaking = peak_handshaking.max(result.stats.handshaking);
            peak_open = peak_open.max(result.stats.open);
        }
        while child_done.is_none() {
            let Some(line) = child.try_line() else { break };
            if line == "done" {
                child_done = Some(Instant::now());
            } else if let Some(record) = ConnRecord::parse(&line) {
                result.records.push(record);
            }
        }
        if child_done.is_some() && result.stats.handshaking == 0 && result.stats.open == 1 {
            break;
        }
        assert!(
            go.elapsed() < FLOOD_LIMIT,
            "{}: not over within {FLOOD_LIMIT:?}: client done {child_done:?}, statistics {:?}",
            flood.label,
            result.stats
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let over = Instant::now();
    let cpu = cpu_time().saturating_sub(cpu_before);
    let samples = bystander.finish(|| {
        server.poll(&mut events);
        echo(&server, bystander_id);
    })?;
    check_round_trips(flood.label, &samples, go, child_done.unwrap_or(over));
    let growth = rss_peak.saturating_sub(rss_before);
    let concurrent = if flood.mode == Mode::HugeFrame { peak_open.saturating_sub(1) } else { peak_handshaking }.max(1);
    let per_connection_kib = growth as f64 / 1024.0 / concurrent as f64;
    println!(
        "MEASURE {}: server resident memory {:.1} MiB before, peak {:.1} MiB (+{:.1} MiB) with {concurrent} flood connections at once: {per_connection_kib:.2} KiB each (bound {} KiB)",
        flood.label,
        rss_before as f64 / 1048576.0,
        rss_peak as f64 / 1048576.0,
        growth as f64 / 1048576.0,
        flood.max_kib_per_connection
    );
    println!(
        "MEASURE {}: {} connections, over {:.2} s after go; the server's process (its I/O thread, the game loop, the bystander) used {:.2} s of CPU: {:.0} us per flood connection; resident memory after: {:.1} MiB",
        flood.label,
        flood.count,
        over.duration_since(go).as_secs_f64(),
        cpu.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / flood.count as f64,
        resident_bytes() as f64 / 1048576.0
    );
    assert!(
        per_connection_kib <= flood.max_kib_per_connection as f64,
        "{}: {per_connection_kib:.2} KiB of resident memory per flood connection > {} KiB",
        flood.label,
        flood.max_kib_per_connection
    );
    assert_eq!(result.records.len(), flood.count, "{}: the client reported every connection", flood.label);
    let stats = &result.stats;
    assert_eq!((stats.handshaking, stats.open), (0, 1), "{}: nothing left over but the bystander: {stats:?}", flood.label);
    assert_eq!(stats.accepted, flood.count as u64 + 1, "{}: every flood connection was accepted: {stats:?}", flood.label);
    assert_eq!(stats.out_of_descriptors, 0, "{}: {stats:?}", flood.label);
    server.stop();
    Ok(result)
}

/// Checks that every flood connection was dropped by the server `HANDSHAKE_TIMEOUT` after it was
/// accepted (not before, not later than [`DEADLINE_SLACK`]), and prints the spread.
fn check_handshake_deadlines(label: &str, records: &[ConnRecord]) {
    let timeout = micros(HANDSHAKE_TIMEOUT);
    let (mut earliest, mut latest, mut sum) = (u64::MAX, 0u64, 0u64);
    for r in records {
        let established = r.established.unwrap_or_else(|| panic!("{label}: connection {} never established: {r:?}", r.index));
        let ended = r.ended.unwrap_or_else(|| panic!("{label}: connection {} still open when the client gave up: {r:?}", r.index));
        assert!(
            matches!(r.how.as_str(), "eof" | "reset" | "write-reset" | "write-epipe"),
            "{label}: connection {} ended by {}: {r:?}",
            r.index,
            r.how
        );
        // From connect(2) (before the server could accept) and from TCP established (the
        // earliest it could be accepted).
        let since_start = ended - r.started;
        let since_established = ended.saturating_sub(established);
        assert!(
            since_start + micros(EARLY_TOLERANCE) >= timeout,
            "{label}: connection {} dropped {:.1} ms after connect, before its {HANDSHAKE_TIMEOUT:?} deadline: {r:?}",
            r.index,
            ms(since_start)
        );
        assert!(
            since_established <= timeout + micros(DEADLINE_SLACK),
            "{label}: connection {} dropped {:.1} ms after it was established, later than {HANDSHAKE_TIMEOUT:?} + {DEADLINE_SLACK:?}: {r:?}",
            r.index,
            ms(since_established)
        );
        earliest = earliest.min(since_established);
        latest = latest.max(since_established);
        sum += since_established;
    }
    println!(
        "MEASURE {label}: dropped {:.1} ms to {:.1} ms (mean {:.1} ms) after TCP was established; deadline {} ms, allowed {} ms early and {} ms late",
        ms(earliest),
        ms(latest),
        ms(sum / records.len().max(1) as u64),
        HANDSHAKE_TIMEOUT.as_millis(),
        EARLY_TOLERANCE.as_millis(),
        DEADLINE_SLACK.as_millis()
    );
}

fn flood_config(tls: Option<TlsServerSettings>) -> ConnectionConfig {
    ConnectionConfig { handshake_timeout: HANDSHAKE_TIMEOUT, tls_server: tls, ..ConnectionConfig::default() }
}

/// 10,000 upgrade requests sent byte by byte, none finished: each is dropped at
/// `handshake_timeout` from accept.
fn slowloris() -> Outcome {
    let flood = Flood {
        label: "slowloris",
        mode: Mode::Slowloris,
        count: 10_000,
        rate: FLOOD_RATE,
        server_config: flood_config(None),
        bystander_config: ConnectionConfig::default(),
        scheme: "ws",
        max_kib_per_connection: MAX_KIB_PER_SLOWLORIS,
    };
    let result = match run_flood(&flood) {
        Ok(result) => result,
        Err(reason) => return Outcome::Skipped(reason),
    };
    check_timeouts(&flood, &result);
    let fewest_bytes = result.records.iter().map(|r| r.sent).min().unwrap_or(0);
    println!("MEASURE slowloris: each connection sent {fewest_bytes} or more bytes, one every {} ms, before it was dropped", TRICKLE_INTERVAL.as_millis());
    // Several bytes arrived within each deadline: had each pushed it back, none would have ended.
    assert!(fewest_bytes >= 4, "slowloris: a connection sent only {fewest_bytes} bytes");
    Outcome::Passed
}

/// The server's side of a slowloris or TLS flood: every connection failed its handshake at the
/// timeout, none opened, and each was dropped on time.
fn check_timeouts(flood: &Flood, result: &FloodResult) {
    let stats = &result.stats;
    assert_eq!(result.other_failures, Vec::<String>::new(), "{}: handshakes that failed otherwise than by timeout", flood.label);
    assert_eq!(result.timeouts, flood.count, "{}: one timeout reported per flood connection", flood.label);
    assert_eq!(result.flood_opened, 0, "{}: no flood connection opened", flood.label);
    assert_eq!((stats.failed_handshakes, stats.opened), (flood.count as u64, 1), "{}: {stats:?}", flood.label);
    check_handshake_deadlines(flood.label, &result.records);
}

/// (private key PEM, certificate PEM) for "localhost".
fn certificate() -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    let cert = params.self_signed(&key).expect("self-signed");
    (key.serialize_pem(), cert.pem())
}

/// 10,000 wss:// connections whose TLS handshake never finishes: even ones send the ClientHello
/// byte by byte, odd ones send it whole and then nothing; each is dropped at `handshake_timeout`.
fn tls_hellos() -> Outcome {
    if !cfg!(feature = "rustls") {
        return Outcome::Skipped("the TLS flood makes its ClientHello with rustls (feature rustls is off)".into());
    }
    let (key, cert) = certificate();
    let flood = Flood {
        label: "tls_hellos",
        mode: Mode::TlsHello,
        count: 10_000,
        rate: FLOOD_RATE,
        server_config: flood_config(Some(TlsServerSettings { private_key_pem: key, certificate_chain_pem: cert.clone() })),
        bystander_config: ConnectionConfig {
            tls_client: TlsClientSettings::Verify { trusted_chain_pem: Some(cert), common_name_override: Some("localhost".into()) },
            ..ConnectionConfig::default()
        },
        scheme: "wss",
        max_kib_per_connection: MAX_KIB_PER_TLS_HELLO,
    };
    let result = match run_flood(&flood) {
        Ok(result) => result,
        Err(reason) => return Outcome::Skipped(reason),
    };
    check_timeouts(&flood, &result);
    let hello = result.records.iter().filter(|r| r.index % 2 == 1).map(|r| r.sent).max().unwrap_or(0);
    let trickled = result.records.iter().filter(|r| r.index % 2 == 0).map(|r| r.sent).min().unwrap_or(0);
    println!("MEASURE tls_hellos: half sent their {hello}-byte ClientHello whole, half {trickled} or more of its bytes one by one");
    assert!(result.records.iter().filter(|r| r.index % 2 == 1).all(|r| r.sent == hello), "every silent connection sent the whole hello");
    assert!(trickled >= 4 && trickled < hello, "tls_hellos: trickled {trickled} of {hello} bytes");
    Outcome::Passed
}

/// 1,000 open peers, once all are open, each send a frame header announcing 1 GiB, then trickle
/// payload bytes: each gets a 1009 close frame at once and is dropped, and the server never holds
/// the payload.
fn huge_frame_headers() -> Outcome {
    let flood = Flood {
        label: "huge_frame_headers",
        mode: Mode::HugeFrame,
        count: 1_000,
        rate: 2_000,
        server_config: flood_config(None),
        bystander_config: ConnectionConfig::default(),
        scheme: "ws",
        max_kib_per_connection: MAX_KIB_PER_HUGE_FRAME,
    };
    let result = match run_flood(&flood) {
        Ok(result) => result,
        Err(reason) => return Outcome::Skipped(reason),
    };
    let stats = &result.stats;
    assert_eq!((result.flood_opened, result.flood_dropped), (1_000, 1_000), "every flood peer opened and was dropped");
    let error = result.first_drop_error.clone().unwrap_or_default();
    assert!(error.contains("1009") || error.contains("max_message_size"), "dropped for the message size: {error}");
    assert_eq!((stats.opened, stats.failed_handshakes), (1_001, 0), "{stats:?}");
    let (mut latest_close_frame, mut latest_end) = (0u64, 0u64);
    for r in &result.records {
        let header = r.header_sent.unwrap_or_else(|| panic!("connection {} never sent its header: {r:?}", r.index));
        assert!(r.upgraded.is_some_and(|at| at <= header), "connection {}: the header went out after the 101: {r:?}", r.index);
        assert_eq!(r.close_code, Some(1009), "connection {} got close code {:?}: {r:?}", r.index, r.close_code);
        let close_frame = r.close_frame_at.unwrap_or(u64::MAX).saturating_sub(header);
        let ended = r.ended.unwrap_or(u64::MAX).saturating_sub(header);
        assert!(close_frame <= micros(FAIL_SLACK), "connection {}: 1009 came {:.1} ms after the header: {r:?}", r.index, ms(close_frame));
        assert!(ended <= micros(FAIL_SLACK), "connection {}: closed {:.1} ms after the header: {r:?}", r.index, ms(ended));
        assert!(matches!(r.how.as_str(), "eof" | "reset" | "write-reset" | "write-epipe"), "connection {} ended by {}", r.index, r.how);
        latest_close_frame = latest_close_frame.max(close_frame);
        latest_end = latest_end.max(ended);
    }
    println!(
        "MEASURE huge_frame_headers: 1009 close frame at most {:.1} ms and TCP closed at most {:.1} ms after the 1 GiB header (bound {} ms)",
        ms(latest_close_frame),
        ms(latest_end),
        FAIL_SLACK.as_millis()
    );
    Outcome::Passed
}

/// Connections the lowered descriptor limit leaves room for.
const ROOM: usize = 100;
/// Connections in the flood: ten times the room. The listen backlog holds 1,024 (the server's
/// `LISTEN_BACKLOG`) where the system allows it; where it holds fewer, the kernel drops the SYNs
/// of the others, which come back with their retransmits (after 1 s, 3 s, ...), so every one
/// gets in eventually.
const FLOOD: usize = 1_000;
/// The listen backlog the server asks for (see [`FLOOD`]); the kernel caps it at
/// `net.core.somaxconn`.
const BACKLOG: usize = 1_024;

/// How many connections the listen backlog holds here.
fn backlog() -> usize {
    let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn").ok().and_then(|s| s.trim().parse().ok());
    somaxconn.map_or(BACKLOG, |max: usize| max.min(BACKLOG))
}
/// Connections the client closes to free descriptors in the first step.
const FREED: usize = 50;

/// With `RLIMIT_NOFILE` lowered to leave room for 100 connections, 1,000 arrive: the bystander
/// keeps its echoes, the server reports the episode once (event and counter), and the waiting
/// connections are admitted as soon as descriptors are free, with no new connection arriving:
/// first when some of the flood's own connections close, then when the limit is raised again.
fn descriptor_exhaustion() -> Outcome {
    let _limit = LimitGuard::new();
    // The flood client (which inherits the hard limit) needs the flood's descriptors.
    if let Err(reason) = raise_descriptor_limit(FLOOD as u64 + 200) {
        return Outcome::Skipped(reason);
    }
    let (soft, _) = descriptor_limit();
    let (mut server, addr) = listen(ConnectionConfig::default());
    let bystander = Bystander::start(format!("ws://127.0.0.1:{}/", addr.port()), ConnectionConfig::default());
    let bystander_id = await_bystander(&mut server);
    let mut child = FloodChild::spawn(Mode::Hold, addr, FLOOD, TRICKLE_INTERVAL, 1_000_000, Duration::from_secs(60));
    // Every descriptor number up to a new highest one is taken; the limit then leaves exactly
    // ROOM more.
    let probe = File::open("/dev/null").expect("/dev/null");
    let highest_before = probe.as_raw_fd();
    let mut fillers = vec![probe];
    loop {
        let file = File::open("/dev/null").expect("/dev/null");
        let fd = file.as_raw_fd();
        fillers.push(file);
        if fd > highest_before {
            break;
        }
    }
    let highest = fillers.iter().map(AsRawFd::as_raw_fd).max().unwrap_or(0) as u64;
    set_soft_descriptor_limit(highest + 1 + ROOM as u64).expect("lower the limit");
    let lowered = Instant::now();
    let mut events = Vec::new();
    let mut episodes = Vec::new();
    let (mut opened, mut failed) = (0usize, Vec::new());
    let mut poll = |server: &mut Server, episodes: &mut Vec<String>, opened: &mut usize, failed: &mut Vec<String>| {
        server.poll(&mut events);
        for event in events.drain(..) {
            match event {
                ServerEvent::ClientConnected { .. } => *opened += 1,
                ServerEvent::OutOfDescriptors { reason } => episodes.push(reason),
                ServerEvent::HandshakeFailed { reason, .. } => failed.push(reason),
                ServerEvent::ClientDisconnected { id, error, .. } => assert_ne!(id, bystander_id, "the bystander was dropped: {error:?}"),
                _ => {}
            }
        }
        echo(server, bystander_id);
        std::thread::sleep(Duration::from_millis(1));
    };
    child.send("go");
    let go = Instant::now();
    // The room fills; the rest wait in the backlog.
    while opened < ROOM {
        poll(&mut server, &mut episodes, &mut opened, &mut failed);
        assert!(go.elapsed() < Duration::from_secs(20), "only {opened} of {ROOM} admitted: {:?}", server.statistics());
    }
    let full = Instant::now();
    while full.elapsed() < Duration::from_millis(500) {
        poll(&mut server, &mut episodes, &mut opened, &mut failed);
    }
    let stats = server.statistics();
    println!("MEASURE descriptor_exhaustion: {ROOM} connections admitted {:.1} ms after go; then 500 ms out of descriptors", ms(micros(full - go)));
    assert_eq!(opened, ROOM, "no descriptor, no connection beyond the room");
    assert_eq!((stats.open, stats.accepted, stats.handshaking), (ROOM as u64 + 1, ROOM as u64 + 1, 0), "{stats:?}");
    assert_eq!(stats.out_of_descriptors, 1, "one episode so far: {stats:?}");
    assert_eq!(episodes.len(), 1, "the game was told once: {episodes:?}");
    assert!(episodes[0].contains("Too many open files") && episodes[0].contains("backlog"), "a clear error: {}", episodes[0]);
    println!("MEASURE descriptor_exhaustion: the game was told: {}", episodes[0]);

    // Step 1: the flood client closes some of its admitted connections; as the server drops them,
    // as many waiting connections get in, without anything new arriving.
    child.send(&format!("close {FREED}"));
    assert_eq!(child.line(Duration::from_secs(10)), format!("closed {FREED}"));
    let admitted_line = loop {
        poll(&mut server, &mut episodes, &mut opened, &mut failed);
        if let Some(line) = child.try_line() {
            break line;
        }
        assert!(lowered.elapsed() < Duration::from_secs(30), "the waiting connections were not admitted after {FREED} closed");
    };
    let latency_us: u64 = admitted_line.strip_prefix("admitted ").and_then(|us| us.parse().ok()).expect("admitted line");
    while opened < ROOM + FREED {
        poll(&mut server, &mut episodes, &mut opened, &mut failed);
        assert!(lowered.elapsed() < Duration::from_secs(30), "the server saw {opened} of {} admitted", ROOM + FREED);
    }
    println!(
        "MEASURE descriptor_exhaustion: {FREED} waiting connections upgraded {:.2} ms after {FREED} admitted ones closed (the retry timer alone would take 50 ms)",
        ms(latency_us)
    );
    assert!(latency_us < 2_000_000, "admitted within 2 s of the closes");
    let stats = server.statistics();
    assert_eq!(stats.open, ROOM as u64 + 1, "the room is full again: {stats:?}");
    assert_eq!((stats.out_of_descriptors, episodes.len()), (1, 1), "still the same episode: {stats:?}");

    // Step 2: the limit goes back up; nothing closes and nothing new arrives, yet every waiting
    // connection gets in (the listener retries by itself).
    set_soft_descriptor_limit(soft.max(highest + 1 + FLOOD as u64 + 100)).expect("raise the limit");
    let raised = Instant::now();
    let mut from_backlog = None;
    while opened < FLOOD {
        if from_backlog.is_none() && raised.elapsed() >= Duration::from_millis(200) {
            from_backlog = Some(opened - ROOM - FREED);
        }
        poll(&mut server, &mut episodes, &mut opened, &mut failed);
        assert!(raised.elapsed() < Duration::from_secs(20), "only {opened} of {FLOOD} admitted after the limit was raised");
    }
    let all_in = raised.elapsed();
    child.send("status");
    let status = loop {
        poll(&mut server, &mut episodes, &mut opened, &mut failed);
        if let Some(line) = child.try_line() {
            break line;
        }
        assert!(raised.elapsed() < Duration::from_secs(30), "no status from the flood client");
    };
    let from_backlog = from_backlog.unwrap_or(opened - ROOM - FREED);
    let backlog = backlog();
    println!(
        "MEASURE descriptor_exhaustion: after the limit was raised, {from_backlog} waiting connections admitted within 200 ms (the listen backlog holds {backlog}), all {} within {:.1} ms (those beyond the backlog come back with their SYN retransmits)",
        FLOOD - ROOM - FREED,
        ms(micros(all_in))
    );
    // Those in the backlog (the listener's 50 ms retry), less those taken in step 1.
    let waiting = backlog.min(FLOOD - ROOM).saturating_sub(FREED);
    assert!(from_backlog >= waiting, "only {from_backlog} of {waiting} admitted within 200 ms of the limit being raised");
    assert_eq!(status, format!("status upgraded={FLOOD} lost=0 open={}", FLOOD - FREED), "every flood connection got in, none was lost");
    let stats = server.statistics();
    assert_eq!((stats.open, stats.handshaking), ((FLOOD - FREED) as u64 + 1, 0), "{stats:?}");
    assert_eq!(stats.accepted, FLOOD as u64 + 1, "{stats:?}");
    assert_eq!((stats.out_of_descriptors, episodes.len()), (1, 1), "one episode in all: {stats:?}");
    assert_eq!(failed, Vec::<String>::new(), "no handshake failed");
    child.send("quit");
    let samples = bystander
        .finish(|| poll(&mut server, &mut episodes, &mut opened, &mut failed))
        .expect("the bystander kept its connection and got every echo in order");
    check_round_trips("descriptor_exhaustion", &samples, go, Instant::now());
    drop(fillers);
    server.stop();
    Outcome::Passed
}
