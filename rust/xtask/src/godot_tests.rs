//! The headless Godot test harness and the demo run.
//!
//! Every `test_*` method of every `godot-project/tests/test_*.gd` runs in its own Godot process
//! (through `tests/runner.gd`) with a time limit. A test passes when the runner prints
//! `RESULT PASS`, exits 0, and the output has no engine error it did not announce: lines with
//! `ERROR:` or `SCRIPT ERROR:` fail it unless an `EXPECT_ERROR: <fragment>` line of the same run
//! names a fragment of them (stdout and stderr interleave unpredictably, so order is not
//! checked), each announced fragment must appear, and leaked objects at exit always fail it.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use crate::process::{self, Echo};

/// Time one test may take, helper processes included.
const TEST_LIMIT: Duration = Duration::from_secs(60);
/// Time the whole demo may take.
const DEMO_LIMIT: Duration = Duration::from_secs(60);

/// One test method in one script.
struct TestCase {
    script: String,
    method: String,
}

/// Finds every `func test_*` in `tests/test_*.gd`, in file then source order.
fn discover(project: &Path) -> Result<Vec<TestCase>, String> {
    let dir = project.join("tests");
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("test_") && name.ends_with(".gd")
        })
        .collect();
    scripts.sort();
    let mut cases = Vec::new();
    for path in scripts {
        let source = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        for line in source.lines() {
            if let Some(rest) = line.strip_prefix("func test_") {
                let method = format!("test_{}", rest.split('(').next().unwrap_or_default().trim());
                cases.push(TestCase { script: format!("res://tests/{name}"), method });
            }
        }
    }
    Ok(cases)
}

/// Runs every Godot test whose `script::method` name contains `filter`, with `env` added to its
/// environment; returns (passed, failed).
pub(crate) fn run_all(godot: &Path, project: &Path, filter: &str, env: &[(String, String)]) -> Result<(usize, usize), String> {
    let mut cases = discover(project)?;
    cases.retain(|c| format!("{}::{}", c.script, c.method).contains(filter));
    if cases.is_empty() {
        return Err(format!("no test_* methods found under {}", project.join("tests").display()));
    }
    let godot_abs = std::fs::canonicalize(godot).unwrap_or_else(|_| godot.to_path_buf());
    let (mut passed, mut failed) = (0, 0);
    for case in &cases {
        let started = Instant::now();
        let mut command = Command::new(godot);
        command
            .args(["--headless", "--path"])
            .arg(project)
            .args(["-s", "res://tests/runner.gd", "--", &case.script, &case.method])
            .env("WSRS_GODOT", &godot_abs)
            .envs(env.iter().map(|(k, v)| (k, v)));
        let run = process::run_bounded(&mut command, TEST_LIMIT, Echo::Quiet)?;
        let problems = judge(&run);
        let name = format!("{}::{}", case.script.trim_start_matches("res://tests/"), case.method);
        let seconds = started.elapsed().as_secs_f32();
        if problems.is_empty() {
            passed += 1;
            println!("PASS {name} ({seconds:.1} s)");
            // Numbers a test measured (never judged by time) are shown with it.
            for line in run.output.lines().filter(|l| l.starts_with("MEASURE: ")) {
                println!("    {line}");
            }
        } else {
            failed += 1;
            println!("FAIL {name} ({seconds:.1} s)");
            for problem in &problems {
                println!("    - {problem}");
            }
            println!("    output:");
            for line in run.output.lines() {
                println!("    | {line}");
            }
        }
    }
    Ok((passed, failed))
}

/// Every reason a finished test run does not count as passed.
fn judge(run: &process::Bounded) -> Vec<String> {
    let mut problems = Vec::new();
    match run.status {
        None => problems.push(format!("timed out after {} s", TEST_LIMIT.as_secs())),
        Some(status) if !status.success() => problems.push(format!("exited with {status}")),
        Some(_) => {}
    }
    let lines: Vec<&str> = run.output.lines().collect();
    match lines.iter().find(|l| l.starts_with("RESULT ")) {
        Some(line) if *line == "RESULT PASS" => {}
        Some(line) => problems.push(line.trim_start_matches("RESULT ").to_string()),
        None => problems.push("the runner printed no RESULT line".into()),
    }
    let mut expected: Vec<(String, bool)> = lines
        .iter()
        .filter_map(|line| line.strip_prefix("EXPECT_ERROR: "))
        .map(|fragment| (fragment.to_string(), false))
        .collect();
    for line in &lines {
        let trimmed = line.trim_start();
        if trimmed.contains("will become a hard error") || trimmed.contains("shadows a method of the base class") {
            problems.push(format!("registration warning from the extension: {trimmed}"));
        } else if trimmed.contains("leaked at exit") || trimmed.contains("still in use at exit") || trimmed.starts_with("Leaked instance") {
            problems.push(format!("leak: {trimmed}"));
        } else if trimmed.starts_with("ERROR:") || trimmed.starts_with("SCRIPT ERROR:") {
            // An announced fragment not yet seen first, so that repeated fragments each need a line.
            let matches = |fragment: &String| trimmed.contains(fragment.as_str());
            let index = expected
                .iter()
                .position(|(fragment, seen)| !seen && matches(fragment))
                .or_else(|| expected.iter().position(|(fragment, _)| matches(fragment)));
            match index {
                Some(i) => expected[i].1 = true,
                None => problems.push(format!("unexpected engine error: {trimmed}")),
            }
        }
    }
    for (fragment, seen) in expected {
        if !seen {
            problems.push(format!("expected an error containing '{fragment}', none appeared"));
        }
    }
    problems
}

/// The two demos, each as one server and two client processes of headless Godot: the raw-mode
/// chat (`demo/demo.tscn`) and the multiplayer lobby (`lobby/lobby.tscn`, @rpc, spawner and
/// synchronizer). Their transcript lines (`| ...`) are shown as they come.
pub(crate) fn run_demo(godot: &Path, project: &Path) -> Result<ExitCode, String> {
    let chat = run_scene(
        godot,
        project,
        "Chat (raw mode): a WebSocketServer and two WebSocketClients exchange messages",
        "res://demo/demo.tscn",
        &["--clients=2"],
    )?;
    println!();
    let lobby = run_scene(
        godot,
        project,
        "Lobby (multiplayer mode): @rpc chat, MultiplayerSpawner and MultiplayerSynchronizer over our classes",
        "res://lobby/lobby.tscn",
        &["--players=2"],
    )?;
    Ok(crate::exit_code(chat && lobby))
}

/// Runs `scene` as a server (with `server_args`) and the clients alice and bob, each in its own
/// process; true when all three exit 0 with no engine error.
fn run_scene(godot: &Path, project: &Path, title: &str, scene: &str, server_args: &[&str]) -> Result<bool, String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("cannot find a free port: {e}"))?
        .port();
    let ready = std::env::temp_dir().join(format!("websocket-rs-demo-{}-{port}.ready", std::process::id()));
    let _ = std::fs::remove_file(&ready);
    println!("== {title}; each in its own headless Godot process, port {port}.");
    let spawn = |name: &str, args: Vec<String>| {
        let mut command = Command::new(godot);
        command.args(["--headless", "--path"]).arg(project).arg(scene).arg("--").args(args);
        let prefix = format!("[{name:>6}]");
        std::thread::spawn(move || process::run_bounded(&mut command, DEMO_LIMIT, Echo::Marked(prefix)))
    };
    let mut args: Vec<String> = vec!["--role=server".into(), format!("--port={port}"), format!("--ready-file={}", ready.display())];
    args.extend(server_args.iter().map(|a| a.to_string()));
    let server = spawn("server", args);
    let started = Instant::now();
    while !ready.exists() {
        if started.elapsed() > Duration::from_secs(30) || server.is_finished() {
            let output = server.join().map_err(|_| "server thread panicked")??.output;
            return Err(format!("the demo server did not start:\n{output}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let clients: Vec<_> = ["alice", "bob"]
        .iter()
        .map(|name| spawn(name, vec!["--role=client".into(), format!("--port={port}"), format!("--name={name}")]))
        .collect();
    let mut all_ok = true;
    for (name, handle) in std::iter::once(("server", server)).chain(["alice", "bob"].into_iter().zip(clients)) {
        let run = handle.join().map_err(|_| format!("{name} thread panicked"))??;
        let ok = run.status.is_some_and(|s| s.success());
        let errors: Vec<&str> = run.output.lines().filter(|l| l.starts_with("ERROR:") || l.starts_with("SCRIPT ERROR:")).collect();
        if !ok || !errors.is_empty() {
            all_ok = false;
            eprintln!("{name} failed ({:?}):\n{}", run.status, run.output);
        }
    }
    let _ = std::fs::remove_file(&ready);
    if all_ok {
        println!("== finished: all three processes exited cleanly.");
    }
    Ok(all_ok)
}
