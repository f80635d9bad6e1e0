//! `cargo xtask bench --only scale`: 50,000 WebSocket connections to one server process, our
//! `WebSocketServer` in headless Godot as a game holds it (`godot-project/bench/scale_server.gd`,
//! 60 frames a second), from `wsrs-bench scale` load generators (as many processes as their
//! descriptor limit needs) whose connections come from several loopback source addresses
//! (127.0.0.2 and up), each address having the whole ephemeral port range. Measures the server's
//! resident memory per connection (and the kernel's TCP buffer and slab memory, both ends of
//! every connection, machine-wide), `poll()` time per frame with every connection idle and with
//! some active, the time from `broadcast()` until every client has the message (and the game
//! thread's share), and CPU time of each phase. Writes `docs/bench/scale.md` (`--quick`, 2,000
//! connections: `target/bench-quick/scale.md`).
//!
//! The count is 50,000 unless a process's RLIMIT_NOFILE hard limit (raised to only by root with
//! CAP_SYS_RESOURCE) leaves fewer descriptors to the server: then the largest count that fits,
//! and the report says so.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::report::{command_output, machine};
use super::running::{field, free_port, Running};

/// Connections the part asks for.
const REQUESTED: usize = 50_000;
/// Connections of a `--quick` run.
const REQUESTED_QUICK: usize = 2_000;
/// Descriptors the server process keeps for itself (Godot's files, the listener, epoll, pipes).
const SERVER_RESERVE: u64 = 500;
/// Descriptors each load generator keeps for itself.
const LOADGEN_RESERVE: u64 = 200;
/// Active connections: one in this many (each sends 10 messages a second, echoed).
const ACTIVE_ONE_IN: usize = 50;
/// Broadcast rounds the server runs (`ROUNDS` in scale_server.gd).
const ROUNDS: usize = 5;

/// Raises this process's soft RLIMIT_NOFILE to its hard limit (children inherit it); the
/// (soft, hard) limits after.
pub(crate) fn raise_nofile_limit() -> (u64, u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return (0, 0);
        }
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            return (raised.rlim_cur, raised.rlim_max);
        }
    }
    (limit.rlim_cur, limit.rlim_max)
}

/// The span of `net.ipv4.ip_local_port_range` (ports per source address and destination).
fn ephemeral_ports() -> (u64, u64) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut parts = s.split_whitespace().map(|p| p.parse::<u64>().ok());
            Some((parts.next()??, parts.next()??))
        })
        .unwrap_or((32768, 60999))
}

/// The kernel's TCP memory (`/proc/net/sockstat`, `TCP: ... mem N`, pages) in KiB, and the
/// slab (`/proc/meminfo`, `Slab:`) in KiB; both machine-wide.
fn kernel_memory_kib() -> (f64, f64) {
    let tcp_pages = std::fs::read_to_string("/proc/net/sockstat").ok().and_then(|s| {
        let line = s.lines().find(|l| l.starts_with("TCP:"))?.to_string();
        let words: Vec<&str> = line.split_whitespace().collect();
        words.iter().position(|w| *w == "mem").and_then(|i| words.get(i + 1)?.parse::<f64>().ok())
    });
    let slab = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Slab:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()));
    (tcp_pages.unwrap_or(0.0) * 4.0, slab.unwrap_or(0.0))
}

/// One load generator process and its share.
struct Loadgen {
    running: Running,
    clients: usize,
}

/// Server CPU seconds between the line `start` and the line `end` (waited for up to `limit`),
/// and the wall time between them as seen here.
fn phase_cpu(server: &Running, start: &str, end: &str, limit: Duration) -> Result<(f64, f64, String), String> {
    server.wait_for(|l| l == start, limit).map_err(|e| format!("the server never printed {start:?}: {e}"))?;
    let (cpu0, t0) = (server.cpu_seconds().unwrap_or(0.0), Instant::now());
    let line = server.wait_for(|l| l.starts_with(end), limit).map_err(|e| format!("the server never printed {end:?}: {e}"))?;
    let (cpu1, wall) = (server.cpu_seconds().unwrap_or(0.0), t0.elapsed().as_secs_f64());
    Ok((cpu1 - cpu0, wall, line))
}

/// Runs the scale part; Ok(false) when a message was lost or a connection dropped.
pub(super) fn run(godot: &Path, root: &Path, loadgen: &Path, target_dir: &Path, quick: bool) -> Result<bool, String> {
    let started = Instant::now();
    let (soft, hard) = raise_nofile_limit();
    let requested = if quick { REQUESTED_QUICK } else { REQUESTED };
    let fits = hard.saturating_sub(SERVER_RESERVE) as usize / 500 * 500;
    let clients = requested.min(fits);
    let limited = (clients < requested).then(|| {
        format!(
            "{requested} connections were asked for, but RLIMIT_NOFILE's hard limit on this machine is {hard} descriptors per \
             process (raising it needs root with CAP_SYS_RESOURCE, which this machine does not give): the server keeps \
             {SERVER_RESERVE} for itself, so {clients} connections were measured"
        )
    });
    if let Some(why) = &limited {
        println!("  NOTE: {why}");
    }
    let per_process = (hard.saturating_sub(LOADGEN_RESERVE) as usize).max(1);
    let processes = clients.div_ceil(per_process).max(1);
    let (low, high) = ephemeral_ports();
    let span = (high.saturating_sub(low) + 1).max(1) as usize;
    let active_total = clients / ACTIVE_ONE_IN;
    println!("  {clients} connections from {processes} load generator process(es); RLIMIT_NOFILE {soft}/{hard}; ephemeral ports {low}-{high}");

    let port = free_port()?;
    let mut command = Command::new(godot);
    command.args(["--headless", "--path"]).arg(root.join("godot-project")).args(["-s", "res://bench/scale_server.gd", "--", &port.to_string(), &clients.to_string()]);
    let server = Running::start(command)?;
    std::thread::sleep(Duration::from_millis(1500));
    let rss_before = server.rss_kib();
    let (tcp_before, slab_before) = kernel_memory_kib();
    let cpu_before = server.cpu_seconds().unwrap_or(0.0);

    let mut loadgens = Vec::new();
    let mut next_source = 2usize;
    let mut sources_used = Vec::new();
    for p in 0..processes {
        let share = clients / processes + usize::from(p < clients % processes);
        let active = active_total / processes + usize::from(p < active_total % processes);
        // Each source address takes at most half the port range, so that ports never run out.
        let sources = share.div_ceil(span / 2).max(2);
        if next_source + sources > 254 {
            return Err(format!("too many connections for the loopback source addresses ({clients})"));
        }
        let mut c = Command::new(loadgen);
        c.args(["scale", &port.to_string(), "--clients", &share.to_string(), "--active", &active.to_string()])
            .args(["--first-source", &next_source.to_string(), "--sources", &sources.to_string()]);
        sources_used.push(format!("127.0.0.{}-{}", next_source, next_source + sources - 1));
        next_source += sources;
        loadgens.push(Loadgen { running: Running::start_plain(c)?, clients: share });
    }
    let connect_started = Instant::now();
    let full = server.wait_for(|l| l.starts_with("FULL"), Duration::from_secs(600));
    let connect_s = connect_started.elapsed().as_secs_f64();
    let cpu_connected = server.cpu_seconds().unwrap_or(0.0);
    if let Err(e) = full {
        let peers = server.wait_for(|l| l.starts_with("BENCH"), Duration::ZERO).unwrap_or_default();
        for l in &loadgens {
            println!("  load generator: {}", l.running.wait_for(|_| true, Duration::ZERO).unwrap_or_default());
        }
        return Err(format!("not every connection opened ({e}; last report of the server: {peers})"));
    }
    std::thread::sleep(Duration::from_secs(1));
    let rss_full = server.rss_kib();
    let (tcp_full, slab_full) = kernel_memory_kib();
    println!("  {clients} connected in {connect_s:.1} s; server RSS {rss_before:.0} -> {rss_full:.0} KiB");

    let limit = Duration::from_secs(120);
    let (idle_cpu, idle_wall, idle_line) = phase_cpu(&server, "SCALE start=idle", "SCALE phase=idle", limit)?;
    let (broadcast_cpu, broadcast_wall, _) = phase_cpu(&server, "SCALE start=broadcast", "SCALE phase=broadcast_end", limit)?;
    let (active_cpu, active_wall, active_line) = phase_cpu(&server, "SCALE start=active", "SCALE phase=active", limit)?;
    server.wait_for(|l| l.starts_with("SCALE phase=done"), limit)?;
    let mut results = Vec::new();
    let mut rounds = vec![(0u64, u64::MAX, 0u64, 0u64); ROUNDS];
    let mut ok = true;
    let mut loadgen_cpu = 0.0;
    for l in loadgens {
        let lines = {
            let result = l.running.wait_for(|line| line.starts_with("RESULT"), Duration::from_secs(120)).unwrap_or_else(|_| "RESULT ok=false (no result)".into());
            let all: Vec<String> = (0..ROUNDS)
                .filter_map(|r| l.running.wait_for(|line| line.starts_with(&format!("ROUND round={r} ")), Duration::ZERO).ok())
                .collect();
            (result, all)
        };
        println!("  {} ({} clients)", lines.0, l.clients);
        ok &= lines.0.contains(" ok=true");
        loadgen_cpu += field(&lines.0, "loadgen_cpu_s").unwrap_or(0.0);
        for line in &lines.1 {
            let r = field(line, "round").unwrap_or(-1.0);
            if let Some(slot) = (r >= 0.0).then(|| rounds.get_mut(r as usize)).flatten() {
                slot.0 = field(line, "sent_us").unwrap_or(0.0) as u64;
                slot.1 = slot.1.min(field(line, "first_us").unwrap_or(0.0) as u64);
                slot.2 = slot.2.max(field(line, "last_us").unwrap_or(0.0) as u64);
                slot.3 += field(line, "received").unwrap_or(0.0) as u64;
            }
        }
        results.push(lines.0);
    }
    let rss_end = server.rss_kib();
    let cpu_total = server.cpu_seconds().unwrap_or(0.0);
    let broadcast_lines: Vec<String> =
        (0..ROUNDS).filter_map(|r| server.wait_for(|l| l.starts_with(&format!("SCALE phase=broadcast round={r} ")), Duration::ZERO).ok()).collect();
    drop(server);
    let incomplete = rounds.iter().filter(|r| r.3 != clients as u64).count();
    if incomplete > 0 {
        println!("  FAILED: {incomplete} broadcast rounds did not reach every client");
        ok = false;
    }
    if !ok {
        return Ok(false);
    }

    // Figures.
    let per_connection = |before: f64, after: f64| (after - before) / clients as f64;
    let idle_frames = field(&idle_line, "frames").unwrap_or(1.0).max(1.0);
    let active_frames = field(&active_line, "frames").unwrap_or(1.0).max(1.0);
    let idle_rate = idle_cpu / idle_wall.max(1e-9);
    let latencies_ms: Vec<(f64, f64)> = rounds.iter().map(|r| ((r.1 as f64 - r.0 as f64) / 1000.0, (r.2 as f64 - r.0 as f64) / 1000.0)).collect();
    let calls: Vec<(f64, f64)> =
        broadcast_lines.iter().map(|l| (field(l, "call_us").unwrap_or(0.0) / 1000.0, field(l, "next_poll_us").unwrap_or(0.0) / 1000.0)).collect();
    let broadcast_extra_cpu_ms = (broadcast_cpu - idle_rate * broadcast_wall).max(0.0) * 1000.0 / ROUNDS as f64;
    let echoes: f64 = results.iter().map(|r| field(r, "echoes").unwrap_or(0.0)).sum();
    let mut sorted: Vec<f64> = latencies_ms.iter().map(|l| l.1).collect();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    let worst = sorted.last().copied().unwrap_or(0.0);
    println!("MEASURE scale: {clients} connections, {:.2} KiB server RSS per connection", per_connection(rss_before, rss_full));
    println!(
        "MEASURE scale: poll {:.1} us/frame idle, {:.1} us/frame with {active_total} active; broadcast to all: median {median:.1} ms, worst {worst:.1} ms",
        field(&idle_line, "poll_us").unwrap_or(0.0) / idle_frames,
        field(&active_line, "poll_us").unwrap_or(0.0) / active_frames
    );

    let date = command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"], root);
    let commit = command_output("git", &["rev-parse", "--short", "HEAD"], root);
    let dirty = !command_output("git", &["status", "--porcelain", "--untracked-files=no"], root).is_empty();
    let godot_version = command_output(&godot.display().to_string(), &["--version"], root);
    let kernel = command_output("uname", &["-r"], root);
    let mut md = String::new();
    md.push_str("# Scale: many connections to one server process\n\n");
    md.push_str(&format!(
        "Written by `cargo xtask bench{} --only scale` on {date} (the run took {:.1} minutes): commit `{commit}`{}, Godot {godot_version}, \
         {}, Linux {kernel}.\n\n",
        if quick { " --quick" } else { "" },
        started.elapsed().as_secs_f64() / 60.0,
        if dirty { " with uncommitted changes" } else { "" },
        machine()
    ));
    md.push_str(&format!(
        "**{clients} WebSocket connections** to one headless Godot process running our `WebSocketServer` in raw mode as a game \
         holds it (`godot-project/bench/scale_server.gd`: release build, I/O thread on, 60 frames a second, `poll()` each \
         frame), from {processes} `wsrs-bench scale` load generator process(es) (`rust/bench/src/scale.rs`, one event-loop \
         thread each) connecting from the loopback source addresses {} (each source address binds with \
         `IP_BIND_ADDRESS_NO_PORT`, so each has the whole ephemeral range {low}-{high} towards the server). RLIMIT_NOFILE: soft \
         raised to the hard limit, {hard}, in every process.\n\n",
        sources_used.join(", ")
    ));
    if let Some(why) = &limited {
        md.push_str(&format!("**Not 50,000 here:** {why}. On a machine whose hard limit is at least 50,500 the same command opens 50,000.\n\n"));
    }
    md.push_str(
        "Every client checks every message it gets: each broadcast round in order, and on the active connections every echo in \
         order; a run that misses one, or in which the server drops a connection, fails and writes nothing.\n\n",
    );
    md.push_str("| figure | value |\n|---|---|\n");
    let mut row = |name: &str, value: String| md.push_str(&format!("| {name} | {value} |\n"));
    row("connections open at once", format!("{clients}"));
    row("time to open them all (handshakes included)", format!("{connect_s:.1} s; server CPU {:.1} s", cpu_connected - cpu_before));
    row(
        "server resident memory",
        format!("{:.1} MiB before the clients, {:.1} MiB with every connection open, {:.1} MiB at the end", rss_before / 1024.0, rss_full / 1024.0, rss_end / 1024.0),
    );
    row("**server memory per connection** (RSS growth / connections)", format!("**{:.2} KiB**", per_connection(rss_before, rss_full)));
    row(
        "kernel TCP buffer memory per connection (`/proc/net/sockstat` mem, both ends, machine-wide)",
        format!("{:.2} KiB ({:.1} -> {:.1} MiB)", per_connection(tcp_before, tcp_full), tcp_before / 1024.0, tcp_full / 1024.0),
    );
    row(
        "kernel slab per connection (`/proc/meminfo` Slab: sockets, files, epoll entries of both ends, machine-wide)",
        format!("{:.2} KiB ({:.1} -> {:.1} MiB)", per_connection(slab_before, slab_full), slab_before / 1024.0, slab_full / 1024.0),
    );
    row(
        "**`poll()` per frame, every connection idle**",
        format!(
            "**{:.1} µs** mean over {idle_frames:.0} frames, {:.0} µs the longest",
            field(&idle_line, "poll_us").unwrap_or(0.0) / idle_frames,
            field(&idle_line, "poll_max_us").unwrap_or(0.0)
        ),
    );
    row("server CPU, every connection idle", format!("{:.1}% of one core (all threads)", 100.0 * idle_rate));
    row(
        &format!("**`poll()` per frame, {active_total} connections active** (10 messages/s each, 64 B, echoed from `data_received`; the echo's GDScript runs inside `poll()`)"),
        format!(
            "**{:.1} µs** mean over {active_frames:.0} frames, {:.0} µs the longest; {echoes:.0} echoes checked",
            field(&active_line, "poll_us").unwrap_or(0.0) / active_frames,
            field(&active_line, "poll_max_us").unwrap_or(0.0)
        ),
    );
    row("server CPU with them active", format!("{:.1}% of one core (all threads)", 100.0 * active_cpu / active_wall.max(1e-9)));
    row(
        "**one 100-byte `broadcast()` to every connection: until the last client has it** (the clients' own reading included: one \
         load generator thread reads every socket in turn)",
        format!("**{median:.1} ms** median of {ROUNDS} rounds, {worst:.1} ms the slowest"),
    );
    row(
        "game thread's share of a broadcast (the `broadcast()` call; `poll()` of the next frame)",
        format!(
            "`broadcast()`: {} ms; the next `poll()`: {} ms (rounds 0-{})",
            calls.iter().map(|c| format!("{:.2}", c.0)).collect::<Vec<_>>().join(", "),
            calls.iter().map(|c| format!("{:.2}", c.1)).collect::<Vec<_>>().join(", "),
            ROUNDS - 1
        ),
    );
    row("server CPU per broadcast (all threads, above the idle rate)", format!("{broadcast_extra_cpu_ms:.1} ms"));
    row("server CPU, whole run", format!("{:.1} s", cpu_total - cpu_before));
    row("load generators' CPU, whole run", format!("{loadgen_cpu:.1} s"));
    md.push_str("\nEach broadcast round (ms after the `broadcast()` call, server and clients reading the same wall clock):\n\n");
    md.push_str("| round | first client has it | last client has it | clients |\n|---|---|---|---|\n");
    for (i, ((first, last), r)) in latencies_ms.iter().zip(&rounds).enumerate() {
        md.push_str(&format!("| {i} | {first:.1} | {last:.1} | {} |\n", r.3));
    }
    md.push_str("\nThe load generators' RESULT lines:\n\n```\n");
    for r in &results {
        md.push_str(r);
        md.push('\n');
    }
    md.push_str("```\n");
    let dir = if quick { target_dir.join("bench-quick") } else { root.join("docs/bench") };
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join("scale.md");
    std::fs::write(&path, &md).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("{md}");
    println!("bench: wrote {}", path.display());
    Ok(true)
}
