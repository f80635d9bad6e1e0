//! `cargo xtask fuzz`: a short libFuzzer run of every target in `fuzz/` (the engine-free core's
//! `Connection` driven by untrusted bytes, game commands and simulated time; the multiplayer id;
//! permessage-deflate's inflating and its extension header).
//! cargo-fuzz is installed into `target/tools` at a pinned version; the stable toolchain is used
//! with `RUSTC_BOOTSTRAP=1` and no sanitizer (libFuzzer still finds panics, overflows in debug
//! assertions and hangs). A crash leaves its input in `fuzz/artifacts/<target>/` and fails the run;
//! fix it and add the input to the core's tests (`fuzzing::tests` runs every entry point on its
//! seeds in `cargo test`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{self, Echo};

/// The cargo-fuzz release this command is written against.
const CARGO_FUZZ_VERSION: &str = "0.12.0";
/// The fuzz targets: the connection state machine fed by what the network sends (the upgrade
/// request, the upgrade response, frames, or a script of bytes, game commands and time), the
/// multiplayer id, and permessage-deflate (compressed payloads, `Sec-WebSocket-Extensions` values).
const TARGETS: [&str; 8] = [
    "server_handshake",
    "client_handshake",
    "frames",
    "connection",
    "multiplayer_id",
    "inflate",
    "extension_header",
    "proxy_header",
];

/// Runs each target for `seconds`; Ok(true) when none crashed.
pub(crate) fn run(root: &Path, target_dir: &Path, seconds: u64) -> Result<bool, String> {
    let cargo_fuzz = ensure_cargo_fuzz(target_dir)?;
    let fuzz_dir = root.join("fuzz");
    let mut crashed = Vec::new();
    for target in TARGETS {
        // A seed corpus of valid inputs (written by the core), so the fuzzer starts past the
        // first bytes of each format.
        let corpus = fuzz_dir.join("corpus").join(target);
        std::fs::create_dir_all(&corpus).map_err(|e| format!("cannot create {}: {e}", corpus.display()))?;
        write_seeds(target, &corpus)?;
        println!("== fuzz {target} for {seconds} s");
        let mut command = Command::new(&cargo_fuzz);
        command
            .current_dir(root)
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["fuzz", "run", "--fuzz-dir"])
            .arg(&fuzz_dir)
            .args(["-s", "none", "--release", "--debug-assertions", target])
            .arg(&corpus)
            .args(["--", &format!("-max_total_time={seconds}"), "-timeout=10", "-rss_limit_mb=2048", "-print_final_stats=1"]);
        // Building takes a while the first time; the run itself is bounded by libFuzzer.
        let limit = Duration::from_secs(seconds + 900);
        let run = process::run_bounded(&mut command, limit, Echo::Quiet)?;
        let summary: Vec<&str> = run
            .output
            .lines()
            .filter(|l| l.starts_with("stat::number_of_executed_units") || l.starts_with("stat::peak_rss_mb") || l.contains("Done "))
            .collect();
        for line in &summary {
            println!("  {line}");
        }
        match run.status {
            Some(status) if status.success() => println!("  {target}: no crash"),
            other => {
                let tail: Vec<&str> = run.output.lines().rev().take(40).collect();
                for line in tail.into_iter().rev() {
                    println!("  | {line}");
                }
                println!("  {target}: FAILED ({other:?}); the input is under fuzz/artifacts/{target}/");
                crashed.push(target);
            }
        }
    }
    if crashed.is_empty() {
        println!("fuzz: {} targets, {seconds} s each, no crash", TARGETS.len());
    } else {
        println!("fuzz: crashes in {}", crashed.join(", "));
    }
    Ok(crashed.is_empty())
}

/// The cargo-fuzz binary, installed into `target/tools` when missing or of another version.
fn ensure_cargo_fuzz(target_dir: &Path) -> Result<PathBuf, String> {
    let tools = target_dir.join("tools");
    let binary = tools.join("bin").join(if cfg!(windows) { "cargo-fuzz.exe" } else { "cargo-fuzz" });
    let installed = Command::new(&binary)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(CARGO_FUZZ_VERSION));
    if !installed {
        println!("xtask: installing cargo-fuzz {CARGO_FUZZ_VERSION} into {}", tools.display());
        process::run_checked(
            Command::new(env!("CARGO"))
                .args(["install", "cargo-fuzz", "--locked", "--version", CARGO_FUZZ_VERSION, "--root"])
                .arg(&tools),
        )?;
    }
    Ok(binary)
}

/// Writes the core's seed inputs for `target` into `corpus` (files named `seed-N`).
fn write_seeds(target: &str, corpus: &Path) -> Result<(), String> {
    let mut seeds = websocket_rs_core::fuzzing::seeds(target);
    seeds.extend(websocket_rs_core::fuzzing_deflate::seeds(target));
    for (i, seed) in seeds.iter().enumerate() {
        let path = corpus.join(format!("seed-{i}"));
        std::fs::write(&path, seed).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}
