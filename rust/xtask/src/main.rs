//! Project tasks, run as `cargo xtask <task>`:
//! - `build [--release] [--native-tls]`: build the extension (TLS through rustls, or the
//!   platform's library) and install it into `addons/websocket_rs/bin/`;
//! - `test [--godot-only] [FILTER]`: `cargo test` of the workspace, then every headless Godot
//!   test (only those whose `script::method` name contains FILTER, if given), then the release
//!   checks (the zip and its echo, the editor docs, the workflow files; a FILTER naming any of
//!   `package`, `docs`, `workflows` runs only those); ends with `N passed, N failed`;
//! - `demo`: one server and two client Godot processes chat through the addon;
//! - `conformance`: the Autobahn|Testsuite cases against our server and client (also in `test`);
//!   writes `docs/conformance.md`;
//! - `soak [--seconds N]`: ws://, ws:// with permessage-deflate and wss:// with permessage-deflate
//!   clients connect, exchange checked messages and leave, paced, for 10 minutes by default;
//!   reports lost messages, server memory growth and CPU time, writes `docs/soak.md`;
//! - `fuzz [--seconds N]`: a libFuzzer run of every `fuzz/` target, a minute each by default;
//! - `bench [--quick] [--only PARTS] [--baseline REV]`: ours (with its I/O thread and inline), Godot's built-in
//!   WebSocket, a pure-tungstenite ceiling and Bun under the same load generator, then
//!   Godot-to-Godot RPCs over ours, ours inline, the built-in and ENet, then permessage-deflate on
//!   and off against ours, Node `ws` and Python `websockets`; writes `docs/bench/` (`--quick`: a smoke run of a few minutes, and
//!   `--only raw,rpc:enet,compression,...`: some parts only, both written to `target/bench-quick/`;
//!   `--baseline REV`: our parts with the extension of REV and of the working tree, interleaved,
//!   into `docs/bench/before-after.md`; `--help`: the options);
//! - `godot`: print the Godot 4.6+ binary used (provisioning it if needed);
//! - `package [--prebuilt DIR] [--test]`: write `target/package/websocket_rs-<version>.zip` with
//!   `addons/websocket_rs/` (this platform's release build, or every library from DIR);
//!   `--test` unzips it into an empty Godot project and runs an echo there (also in `test`);
//! - `docs [--screenshot] [--monitors-screenshot]`: the editor's class reference from `godot
//!   --doctool`, failing on any member without a description (also in `test`); `--screenshot`
//!   photographs the editor's WebSocketServer help page under Xvfb into `docs/editor-help.png`,
//!   `--monitors-screenshot` the WebSocket graphs in Debugger > Monitors into `docs/monitors.png`;
//! - `workflows`: checks `.github/workflows/*.yml` against the GitHub workflow schema (also in
//!   `test`);
//! - `chaos [CASE]`: our core server and client in two network namespaces under packet loss, a
//!   rate cap, delay and partitions (also in `test`; skipped where namespaces are not allowed);
//! - `version`: print the project's version (the root Cargo.toml's).

mod bench;
mod chaos;
mod conformance;
mod docs;
mod fuzz;
mod godot;
mod godot_tests;
mod monitors_screenshot;
mod package;
mod peers;
mod process;
mod soak;
mod workflows;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build") => {
            let backend = if args.iter().any(|a| a == "--native-tls") { Backend::NativeTls } else { Backend::Rustls };
            build_with(args.iter().any(|a| a == "--release"), backend).map(|_| ExitCode::SUCCESS)
        }
        Some("test") if wants_help(&args) => {
            println!("{TEST_USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        Some("test") => {
            let godot_only = args.iter().any(|a| a == "--godot-only");
            let filter = args.iter().skip(1).find(|a| !a.starts_with("--")).cloned().unwrap_or_default();
            test(godot_only, &filter)
        }
        Some("demo") => demo(),
        Some("conformance") => conformance_command(),
        Some("soak") => {
            let seconds = seconds_arg(&args).unwrap_or(600);
            prepare_godot().and_then(|godot| soak::run(&godot, &root(), seconds)).map(exit_code)
        }
        Some("fuzz") => {
            let seconds = seconds_arg(&args).unwrap_or(60);
            fuzz::run(&root(), &target_dir(), seconds).map(exit_code)
        }
        Some("bench") => bench_command(&args),
        Some("godot") => godot::find_or_provision().map(|g| {
            println!("{}", g.display());
            ExitCode::SUCCESS
        }),
        Some("package") => package_command(&args),
        Some("docs") => docs_command(args.iter().any(|a| a == "--screenshot"), args.iter().any(|a| a == "--monitors-screenshot")),
        Some("workflows") => workflows::check(&root(), &target_dir()).map(|r| exit_code(r.failed == 0)),
        Some("chaos") => Ok(exit_code(chaos::run(args.get(1).map_or("", String::as_str)).failed == 0)),
        Some("version") => {
            println!("{}", package::VERSION);
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            eprintln!("usage: cargo xtask <build [--release] [--native-tls] | test [--godot-only] [FILTER] | demo | conformance | soak [--seconds N] | fuzz [--seconds N] | bench [--quick] [--only PARTS] [--baseline REV] | godot | package [--prebuilt DIR] [--test] | docs [--screenshot] [--monitors-screenshot] | workflows | chaos [CASE] | version>");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// What `cargo xtask test --help` prints.
const TEST_USAGE: &str = "\
usage: cargo xtask test [--godot-only] [FILTER]

  (no option)   cargo test of the workspace, every headless Godot test, the Autobahn conformance
                cases, the TLS tests again with native-tls, the impaired-link cases (chaos), then
                the release checks (package, docs, workflows); ends with `N passed, N failed`
  --godot-only  leave out cargo test
  FILTER        only the Godot tests whose `script::method` contains it (conformance, tls: those
                too; chaos: those cases, chaos::loss_20 one of them); a FILTER naming package,
                docs or workflows runs only those release checks
  -h, --help    this text";

/// Whether a task's arguments ask for its usage.
fn wants_help(args: &[String]) -> bool {
    args.iter().skip(1).any(|a| a == "-h" || a == "--help")
}

/// Builds the release extension and load generator, then runs the benchmarks.
fn bench_command(args: &[String]) -> Result<ExitCode, String> {
    let Some(options) = bench::Options::parse(&args[1..])? else {
        println!("{}", bench::USAGE);
        return Ok(ExitCode::SUCCESS);
    };
    build_with(true, Backend::Rustls)?;
    process::run_checked(Command::new(env!("CARGO")).current_dir(root()).args(["build", "--release", "-p", "websocket_rs_bench"]))?;
    let loadgen = target_dir().join("release").join(if cfg!(windows) { "wsrs-bench.exe" } else { "wsrs-bench" });
    let godot = godot::find_or_provision()?;
    godot::import_project(&godot, &root().join("godot-project"))?;
    let ok = bench::run(&godot, &root(), &loadgen, &target_dir(), &options)?;
    // The tests and the demo expect the debug build.
    build(false)?;
    Ok(exit_code(ok))
}

/// The number after `--seconds`, if given.
fn seconds_arg(args: &[String]) -> Option<u64> {
    args.iter().position(|a| a == "--seconds").and_then(|i| args.get(i + 1)).and_then(|s| s.parse().ok())
}

/// Success when a check passed.
pub(crate) fn exit_code(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The repository root (the workspace that holds this crate).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// Cargo's target directory (`CARGO_TARGET_DIR` or `target/`).
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"))
}

/// Which TLS library the extension is built with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    /// rustls (the default).
    Rustls,
    /// The cargo feature `native-tls`, built in its own target directory so that switching
    /// back and forth does not rebuild everything.
    NativeTls,
}

impl Backend {
    fn target_dir(self) -> PathBuf {
        match self {
            Backend::Rustls => target_dir(),
            Backend::NativeTls => target_dir().join("native-tls"),
        }
    }

    fn apply(self, cargo: &mut Command) {
        if self == Backend::NativeTls {
            cargo.args(["--features", "native-tls"]).env("CARGO_TARGET_DIR", self.target_dir());
        }
    }
}

/// Builds the extension with the default TLS backend and installs it.
fn build(release: bool) -> Result<PathBuf, String> {
    build_with(release, Backend::Rustls)
}

/// Builds the extension and copies it to where `websocket_rs.gdextension` expects it.
fn build_with(release: bool, backend: Backend) -> Result<PathBuf, String> {
    let mut cargo = Command::new(env!("CARGO"));
    cargo.current_dir(root()).args(["build", "-p", "websocket_rs"]);
    if release {
        cargo.arg("--release");
    }
    backend.apply(&mut cargo);
    process::run_checked(&mut cargo)?;
    let profile = if release { "release" } else { "debug" };
    let (built, installed) = library_names()?;
    let from = backend.target_dir().join(profile).join(built);
    let to = root().join("addons/websocket_rs/bin").join(installed);
    let dir = to.parent().expect("bin folder");
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // Copy to a temporary name and rename, so a running Godot never sees a half-written library.
    let name = to.file_name().and_then(|n| n.to_str()).unwrap_or("library");
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    std::fs::copy(&from, &tmp).map_err(|e| format!("cannot copy {}: {e}", from.display()))?;
    std::fs::rename(&tmp, &to).map_err(|e| format!("cannot install {}: {e}", to.display()))?;
    println!("xtask: installed {}", to.display());
    Ok(to)
}

/// (file cargo builds, file name the .gdextension lists) for this platform. On macOS the
/// .gdextension names a framework folder, whose executable the library becomes.
pub(crate) fn library_names() -> Result<(&'static str, &'static str), String> {
    use std::env::consts::{ARCH, OS};
    Ok(match (OS, ARCH) {
        ("linux", "x86_64") => ("libwebsocket_rs.so", "libwebsocket_rs.linux.x86_64.so"),
        ("linux", "aarch64") => ("libwebsocket_rs.so", "libwebsocket_rs.linux.arm64.so"),
        ("windows", "x86_64") => ("websocket_rs.dll", "websocket_rs.windows.x86_64.dll"),
        ("windows", "aarch64") => ("websocket_rs.dll", "websocket_rs.windows.arm64.dll"),
        ("macos", _) => ("libwebsocket_rs.dylib", "libwebsocket_rs.macos.framework/libwebsocket_rs.macos"),
        (os, arch) => return Err(format!("no library name for {os}/{arch} in websocket_rs.gdextension")),
    })
}

/// Builds, finds Godot and imports the sample project (which registers the extension).
fn prepare_godot() -> Result<PathBuf, String> {
    build(false)?;
    let godot = godot::find_or_provision()?;
    godot::import_project(&godot, &root().join("godot-project"))?;
    Ok(godot)
}

/// The release checks at the end of `test`, each also run alone when the filter names it.
const RELEASE_CHECKS: [&str; 3] = ["package", "docs", "workflows"];

fn test(godot_only: bool, filter: &str) -> Result<ExitCode, String> {
    let mut passed = 0usize;
    let mut failed = 0usize;

    if !godot_only {
        let (p, f) = cargo_test()?;
        passed += p;
        failed += f;
    }

    let godot = prepare_godot()?;
    let env = peers::test_environment(&target_dir());
    // A filter naming a release check (e.g. `package,docs,workflows`) runs only those checks.
    let release_only = !filter.is_empty() && RELEASE_CHECKS.iter().any(|name| filter.contains(name));
    if !release_only {
        println!("== Godot tests (headless)");
        let (p, f) = godot_tests::run_all(&godot, &root().join("godot-project"), filter, &env)?;
        passed += p;
        failed += f;
    }

    if filter.is_empty() || (filter.contains("conformance") && !release_only) {
        let (p, f) = conformance(&godot)?;
        passed += p;
        failed += f;
    }

    // The same TLS tests with the other backend (cargo feature native-tls).
    if filter.is_empty() || (filter.contains("tls") && !release_only) {
        println!("== TLS tests with the native-tls backend");
        let (p, f) = native_tls_tests(&godot, &env, godot_only)?;
        passed += p;
        failed += f;
    }

    // Impaired links in network namespaces (skipped cases count as neither).
    if filter.is_empty() || (filter.contains("chaos") && !release_only) {
        let outcome = chaos::run(filter);
        passed += outcome.passed;
        failed += outcome.failed;
    }

    // The release: the zip and its echo, the editor's class reference, the workflow files.
    for (name, check) in [RELEASE_CHECKS[0], RELEASE_CHECKS[1], RELEASE_CHECKS[2]].into_iter().zip([
        distribution_package as fn(&Path) -> Result<(usize, usize), String>,
        distribution_docs,
        distribution_workflows,
    ]) {
        if filter.is_empty() || filter.contains(name) {
            let (p, f) = check(&godot)?;
            passed += p;
            failed += f;
        }
    }

    println!("{passed} passed, {failed} failed");
    Ok(exit_code(failed == 0 && passed > 0))
}

/// The core's TLS tests and the Godot TLS tests with the extension built with native-tls; the
/// default build is installed again afterwards. Returns (passed, failed).
fn native_tls_tests(godot: &Path, env: &[(String, String)], godot_only: bool) -> Result<(usize, usize), String> {
    let (mut passed, mut failed) = (0, 0);
    peers::ensure_openssl_headers()?;
    if !godot_only {
        let mut cargo = Command::new(env!("CARGO"));
        cargo.current_dir(root()).args(["test", "-p", "websocket_rs_core", "--test", "tls", "--color", "never"]);
        Backend::NativeTls.apply(&mut cargo);
        let (status, output) = process::run_tee(&mut cargo)?;
        let (p, f) = process::count_cargo_results(&output);
        passed += p;
        failed += f;
        if !status.success() && f == 0 {
            failed += 1;
        }
    }
    build_with(false, Backend::NativeTls)?;
    let result = godot_tests::run_all(godot, &root().join("godot-project"), "test_tls.gd", env);
    build(false)?;
    let (p, f) = result?;
    Ok((passed + p, failed + f))
}

/// The Autobahn cases against our server and our client; one result per side.
fn conformance(godot: &Path) -> Result<(usize, usize), String> {
    println!("== RFC 6455 conformance (Autobahn|Testsuite cases run by kosoku)");
    let python = peers::python_for_peers(&target_dir())?;
    let results = conformance::run(godot, &root().join("godot-project"), &python, &root())?;
    let (mut passed, mut failed) = (0, 0);
    for r in &results {
        let summary: Vec<String> = r.behaviours.iter().map(|(k, v)| format!("{v} {k}")).collect();
        if r.passed() {
            passed += 1;
            println!("PASS conformance::{} ({})", r.side, summary.join(", "));
        } else {
            failed += 1;
            println!("FAIL conformance::{} ({})", r.side, summary.join(", "));
            for bad in &r.bad {
                println!("    - {bad}");
            }
        }
    }
    println!("    summary written to docs/conformance.md");
    Ok((passed, failed))
}

fn conformance_command() -> Result<ExitCode, String> {
    let godot = prepare_godot()?;
    let (_, failed) = conformance(&godot)?;
    Ok(exit_code(failed == 0))
}

/// `cargo test --workspace`; returns (passed, failed).
fn cargo_test() -> Result<(usize, usize), String> {
    let mut passed = 0usize;
    let mut failed = 0usize;
    println!("== cargo test (workspace)");
    let mut cargo = Command::new(env!("CARGO"));
    cargo.current_dir(root()).args(["test", "--workspace", "--color", "never"]);
    let (status, output) = process::run_tee(&mut cargo)?;
    let (p, f) = process::count_cargo_results(&output);
    passed += p;
    failed += f;
    if !status.success() && f == 0 {
        // A build failure or a crashed test binary counts as one failure.
        failed += 1;
    }
    Ok((passed, failed))
}

fn demo() -> Result<ExitCode, String> {
    let godot = prepare_godot()?;
    godot_tests::run_demo(&godot, &root().join("godot-project"))
}

/// `cargo xtask package [--prebuilt DIR] [--test]`.
fn package_command(args: &[String]) -> Result<ExitCode, String> {
    let libraries = match args.iter().position(|a| a == "--prebuilt").map(|i| args.get(i + 1)) {
        Some(Some(dir)) => package::Libraries::Prebuilt(PathBuf::from(dir)),
        Some(None) => return Err("--prebuilt needs a folder".into()),
        None => package::Libraries::BuildHere,
    };
    let zip = package::package(&root(), &target_dir(), libraries)?;
    if !args.iter().any(|a| a == "--test") {
        return Ok(ExitCode::SUCCESS);
    }
    let godot = godot::find_or_provision()?;
    package::test_zip(&godot, &zip, &target_dir()).map(exit_code)
}

/// `cargo xtask docs [--screenshot] [--monitors-screenshot]`.
fn docs_command(screenshot: bool, monitors_screenshot: bool) -> Result<ExitCode, String> {
    let godot = prepare_godot()?;
    if monitors_screenshot {
        monitors_screenshot::screenshot(&godot, &root().join("godot-project"), &root().join("docs/monitors.png"))?;
    }
    let report = docs::check(&godot, &root().join("godot-project"), &target_dir())?;
    if screenshot {
        docs::screenshot(&godot, &root().join("godot-project"), &root().join("docs/editor-help.png"))?;
    }
    Ok(exit_code(report.undocumented.is_empty()))
}

/// The release zip of this platform and its echo in an empty project: one result.
fn distribution_package(godot: &Path) -> Result<(usize, usize), String> {
    println!("== Release package (cargo xtask package --test)");
    let zip = package::package(&root(), &target_dir(), package::Libraries::BuildHere)?;
    Ok(if package::test_zip(godot, &zip, &target_dir())? { (1, 0) } else { (0, 1) })
}

/// Every class member documented in the editor's help: one result.
fn distribution_docs(godot: &Path) -> Result<(usize, usize), String> {
    println!("== Editor documentation (godot --doctool --gdextension-docs)");
    let report = docs::check(godot, &root().join("godot-project"), &target_dir())?;
    Ok(if report.undocumented.is_empty() { (1, 0) } else { (0, 1) })
}

/// The workflow files against the GitHub workflow schema: one result per file (a skipped check
/// counts as neither).
fn distribution_workflows(_godot: &Path) -> Result<(usize, usize), String> {
    println!("== Workflow files (check-jsonschema, GitHub workflow schema)");
    let report = workflows::check(&root(), &target_dir())?;
    Ok((report.passed, report.failed))
}
