//! RFC 6455 and RFC 7692 conformance: the Autobahn|Testsuite cases (groups 1-7, 9, 10, and 12
//! and 13, permessage-deflate) run
//! by `kosoku` against our server (an echo server in headless Godot, `tests/helpers/autobahn_echo.gd`)
//! and with our client as the testee (`tests/helpers/autobahn_client.gd` against kosoku's fuzzing
//! server). Any FAILED or NON-STRICT case fails the run; the summary goes to
//! `docs/conformance.md`.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{self, Echo};

/// The case groups run (Autobahn's numbering; 12 and 13 are permessage-deflate).
const GROUPS: [&str; 11] = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*", "12.*", "13.*"];
/// Time one side of the suite may take.
const SUITE_LIMIT: Duration = Duration::from_secs(900);

/// The outcome of one side.
pub(crate) struct SuiteResult {
    /// "server" or "client".
    pub(crate) side: &'static str,
    /// Cases per behaviour (OK, NON-STRICT, INFORMATIONAL, FAILED, UNIMPLEMENTED).
    pub(crate) behaviours: BTreeMap<String, usize>,
    /// Per group: (cases, cases OK or INFORMATIONAL).
    pub(crate) groups: BTreeMap<u32, (usize, usize)>,
    /// Cases whose behaviour or close behaviour is FAILED or NON-STRICT.
    pub(crate) bad: Vec<String>,
}

impl SuiteResult {
    /// Whether no case failed or was non-strict.
    pub(crate) fn passed(&self) -> bool {
        self.bad.is_empty() && self.behaviours.values().sum::<usize>() > 0
    }
}

/// Runs both sides; writes `docs/conformance.md`. Returns the results (an error only when a
/// side could not be run at all).
pub(crate) fn run(godot: &Path, project: &Path, python: &Path, root: &Path) -> Result<Vec<SuiteResult>, String> {
    let kosoku = python.parent().ok_or("bad python path")?.join("kosoku");
    let work = std::env::temp_dir().join(format!("websocket-rs-autobahn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let server = server_side(godot, project, &kosoku, &work)?;
    let client = client_side(godot, project, &kosoku, &work)?;
    let results = vec![server, client];
    write_summary(&results, &root.join("docs/conformance.md"))?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(results)
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

fn wait_for_port(port: u16, child: &mut Child) -> Result<(), String> {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the process meant to listen on {port} exited with {status}"));
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err(format!("nothing listens on port {port} after 30 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// kosoku drives our echo server.
fn server_side(godot: &Path, project: &Path, kosoku: &Path, work: &Path) -> Result<SuiteResult, String> {
    let port = free_port()?;
    let stop = work.join("stop-echo");
    let mut echo = Command::new(godot)
        .args(["--headless", "--path"])
        .arg(project)
        .args(["-s", "res://tests/helpers/autobahn_echo.gd", "--", &port.to_string()])
        .arg(&stop)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the Godot echo server: {e}"))?;
    let outcome = (|| {
        wait_for_port(port, &mut echo)?;
        let reports = work.join("server-reports");
        let mut command = Command::new(kosoku);
        command.args(["-m", "fuzzingclient", &format!("127.0.0.1:{port}"), "-p", "4", "-o"]).arg(&reports);
        for group in GROUPS {
            command.args(["-i", group]);
        }
        let run = process::run_bounded(&mut command, SUITE_LIMIT, Echo::Quiet)?;
        if run.status.is_none() {
            return Err("kosoku against our server timed out".to_string());
        }
        summarize("server", &reports.join("index.json"))
    })();
    let _ = std::fs::write(&stop, "stop");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) && matches!(echo.try_wait(), Ok(None)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = echo.kill();
    let _ = echo.wait();
    outcome
}

/// Our client, driven by a GDScript testee, against kosoku's fuzzing server.
fn client_side(godot: &Path, project: &Path, kosoku: &Path, work: &Path) -> Result<SuiteResult, String> {
    let port = free_port()?;
    let reports = work.join("client-reports");
    let mut command = Command::new(kosoku);
    command.args(["-m", "fuzzingserver", &format!("127.0.0.1:{port}"), "-o"]).arg(&reports);
    for group in GROUPS {
        command.args(["-i", group]);
    }
    let mut fuzzer = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start kosoku's fuzzing server: {e}"))?;
    let outcome = (|| {
        wait_for_port(port, &mut fuzzer)?;
        let done = work.join("client-done");
        let mut testee = Command::new(godot);
        testee
            .args(["--headless", "--path"])
            .arg(project)
            .args(["-s", "res://tests/helpers/autobahn_client.gd", "--", &format!("ws://127.0.0.1:{port}"), "websocket-rs"])
            .arg(&done);
        let run = process::run_bounded(&mut testee, SUITE_LIMIT, Echo::Quiet)?;
        if !done.exists() {
            return Err(format!("the Godot client testee did not finish ({:?}):\n{}", run.status, tail(&run.output)));
        }
        // The fuzzing server writes its reports after /updateReports; give it a moment.
        let index = reports.join("index.json");
        let started = Instant::now();
        while !index.exists() && started.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(200));
        summarize("client", &index)
    })();
    let _ = fuzzer.kill();
    let _ = fuzzer.wait();
    outcome
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Reads kosoku's `index.json` (Autobahn's format: agent -> case -> behaviour).
fn summarize(side: &'static str, index: &Path) -> Result<SuiteResult, String> {
    let text = std::fs::read_to_string(index).map_err(|e| format!("no report at {}: {e}", index.display()))?;
    let mut result = SuiteResult { side, behaviours: BTreeMap::new(), groups: BTreeMap::new(), bad: Vec::new() };
    // A small reader for the fields needed: "case": {"behavior": "...", "behaviorClose": "...", ...}
    for (case, body) in case_objects(&text) {
        let behaviour = field(body, "behavior").unwrap_or("MISSING").to_string();
        let close = field(body, "behaviorClose").unwrap_or("MISSING").to_string();
        let group: u32 = case.split('.').next().and_then(|g| g.parse().ok()).unwrap_or(0);
        let good = |b: &str| b == "OK" || b == "INFORMATIONAL";
        let entry = result.groups.entry(group).or_default();
        entry.0 += 1;
        if good(&behaviour) && good(&close) {
            entry.1 += 1;
        } else {
            result.bad.push(format!("{case}: {behaviour} (close: {close})"));
        }
        *result.behaviours.entry(behaviour).or_default() += 1;
    }
    Ok(result)
}

/// The `"1.2.3": { ... }` objects of an index.json (one agent).
fn case_objects(text: &str) -> Vec<(String, &str)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("\"behavior\"") {
        // The case id is the last quoted key before the '{' that opens this object.
        let before = &rest[..start];
        let Some(open) = before.rfind('{') else { break };
        let key_end = before[..open].rfind('"');
        let key_start = key_end.and_then(|e| before[..e].rfind('"'));
        let case = match (key_start, key_end) {
            (Some(s), Some(e)) => before[s + 1..e].to_string(),
            _ => String::new(),
        };
        let close = rest[start..].find('}').map_or(rest.len(), |c| start + c);
        out.push((case, &rest[open..close]));
        rest = &rest[close..];
    }
    out
}

fn field<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("\"{name}\"");
    let at = body.find(&key)? + key.len();
    let value = body[at..].trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    value.split('"').next()
}

fn write_summary(results: &[SuiteResult], path: &PathBuf) -> Result<(), String> {
    let mut md = String::from(
        "# RFC 6455 and RFC 7692 conformance\n\n\
         The Autobahn|Testsuite cases of groups 1-7, 9 and 10, and the permessage-deflate groups 12\n\
         and 13 (our default compression settings, except `deflate_threshold = 0`: every message is\n\
         compressed), run by\n\
         the PyPI package `kosoku` through `cargo xtask conformance` (also part of\n\
         `cargo xtask test`): against our `WebSocketServer` (an echo server in headless Godot) and with\n\
         our `WebSocketClient` as the testee. Any FAILED or NON-STRICT case fails the build. This file\n\
         is written by that command.\n\n\
         | side | cases | OK | NON-STRICT | INFORMATIONAL | FAILED | other |\n|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let count = |k: &str| r.behaviours.get(k).copied().unwrap_or(0);
        let total: usize = r.behaviours.values().sum();
        let other = total - count("OK") - count("NON-STRICT") - count("INFORMATIONAL") - count("FAILED");
        md.push_str(&format!(
            "| {} | {total} | {} | {} | {} | {} | {other} |\n",
            r.side,
            count("OK"),
            count("NON-STRICT"),
            count("INFORMATIONAL"),
            count("FAILED")
        ));
    }
    md.push_str("\nPer group (cases passed / cases):\n\n| group | server | client |\n|---|---|---|\n");
    let groups: std::collections::BTreeSet<u32> = results.iter().flat_map(|r| r.groups.keys().copied()).collect();
    for g in groups {
        let cell = |r: &SuiteResult| r.groups.get(&g).map_or("-".into(), |(n, ok)| format!("{ok} / {n}"));
        md.push_str(&format!("| {g} | {} | {} |\n", cell(&results[0]), results.get(1).map_or("-".into(), cell)));
    }
    for r in results {
        if !r.bad.is_empty() {
            md.push_str(&format!("\nNot OK on the {} side:\n\n", r.side));
            for b in &r.bad {
                md.push_str(&format!("- {b}\n"));
            }
        }
    }
    md.push_str("\nINFORMATIONAL cases (7.1.6, 7.13.1, 7.13.2) have no pass/fail verdict in Autobahn.\n");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, md).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
