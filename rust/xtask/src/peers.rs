//! Third-party programs for the Godot tests: the WebSocket peers Python's `websockets` (in a
//! virtual environment under `target/`), a headless Chromium and Node with the npm package `ws`
//! (under `target/` too), and the reverse proxies nginx and HAProxy (the system's, or the Debian
//! packages `nginx` and `haproxy`; the tests start them with their own configuration on loopback
//! ports). The tests find them through the environment variables `WSRS_PYTHON`, `WSRS_CHROMIUM`,
//! `WSRS_NODE` (whose scripts find `ws` through `NODE_PATH`), `WSRS_NGINX` and `WSRS_HAPROXY`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::godot;
use crate::process;

/// The `websockets` release the tests are written against (and the bench's compression part runs).
pub(crate) const WEBSOCKETS_VERSION: &str = "15.0.1";
/// The `kosoku` release that runs the Autobahn|Testsuite cases.
const KOSOKU_VERSION: &str = "0.1.0";
/// The release of Node's `ws` the tests are written against.
pub(crate) const WS_VERSION: &str = "8.23.0";

/// Environment variables for the test processes, one per peer that could be provided. A peer
/// that could not be provided is reported here and left out, so only the tests that need it fail.
pub(crate) fn test_environment(target_dir: &Path) -> Vec<(String, String)> {
    let mut env = Vec::new();
    match python_for_peers(target_dir) {
        Ok(python) => env.push(("WSRS_PYTHON".to_string(), python.display().to_string())),
        Err(err) => println!("xtask: no Python `websockets` peer for the tests: {err}"),
    }
    match chromium() {
        Ok(chromium) => env.push(("WSRS_CHROMIUM".to_string(), chromium.display().to_string())),
        Err(err) => println!("xtask: no Chromium peer for the tests: {err}"),
    }
    match node_with_ws(target_dir) {
        Ok((node, modules)) => {
            env.push(("WSRS_NODE".to_string(), node.display().to_string()));
            env.push(("NODE_PATH".to_string(), modules.display().to_string()));
        }
        Err(err) => println!("xtask: no Node `ws` peer for the tests: {err}"),
    }
    for (variable, program, package) in [("WSRS_NGINX", "nginx", "nginx"), ("WSRS_HAPROXY", "haproxy", "haproxy")] {
        match reverse_proxy(variable, program, package) {
            Ok(path) => env.push((variable.to_string(), path.display().to_string())),
            Err(err) => println!("xtask: no {program} for the reverse-proxy tests: {err}"),
        }
    }
    env
}

/// Node from PATH and the `node_modules` folder holding `ws` [`WS_VERSION`], installed with npm
/// into `target/peers-node` once (under a lock, so two runs at once share it).
pub(crate) fn node_with_ws(target_dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    let dir = target_dir.join("peers-node");
    let modules = dir.join("node_modules");
    let check = format!("process.exit(require('./node_modules/ws/package.json').version === '{WS_VERSION}' ? 0 : 1)");
    let ready = || Command::new("node").current_dir(&dir).args(["-e", &check]).output().is_ok_and(|o| o.status.success());
    if ready() {
        return Ok((which("node")?, modules));
    }
    let npm = npm("for the Node `ws` peer")?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let lock_path = target_dir.join("peers-node.lock");
    let lock = File::create(&lock_path).map_err(|e| format!("cannot create {}: {e}", lock_path.display()))?;
    lock.lock().map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    if ready() {
        return Ok((which("node")?, modules));
    }
    println!("xtask: installing the npm package ws@{WS_VERSION} into {}", dir.display());
    npm_install(npm, &dir, &format!("ws@{WS_VERSION}"))?;
    if ready() {
        Ok((which("node")?, modules))
    } else {
        Err(format!("ws@{WS_VERSION} was installed into {} but node does not load it", dir.display()))
    }
}

/// The full path of `program` on PATH.
fn which(program: &str) -> Result<PathBuf, String> {
    let out = Command::new("sh").args(["-c", &format!("command -v {program}")]).output().map_err(|e| format!("cannot run sh: {e}"))?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if path.is_empty() {
        Err(format!("{program} is not on PATH"))
    } else {
        Ok(PathBuf::from(path))
    }
}

/// Installs the npm package `spec` (`name@version`) into `dir`'s `node_modules` with `npm`, without
/// a package file or lock; the error quotes npm's last lines.
pub(crate) fn npm_install(npm: &str, dir: &Path, spec: &str) -> Result<(), String> {
    let mut install = Command::new(npm);
    install
        .args(["install", "--prefix"])
        .arg(dir)
        .args(["--no-save", "--no-package-lock", "--no-audit", "--no-fund", "--loglevel=error"])
        .arg(spec);
    let run = process::run_bounded(&mut install, Duration::from_secs(600), process::Echo::Quiet)?;
    if run.status.is_some_and(|s| s.success()) {
        return Ok(());
    }
    let tail: Vec<&str> = run.output.lines().rev().take(5).collect();
    Err(format!("npm could not install {spec}: {}", tail.into_iter().rev().collect::<Vec<_>>().join(" / ")))
}

/// npm from PATH, or Debian's `npm` package (which brings Node) installed with apt-get; `purpose`
/// ends the error when neither can be had.
pub(crate) fn npm(purpose: &str) -> Result<&'static str, String> {
    let works = || Command::new("npm").arg("--version").output().is_ok_and(|o| o.status.success());
    if works() {
        return Ok("npm");
    }
    if !debian_like() || godot::sudo_prefix().is_none() {
        return Err(format!("npm is not installed (install Node.js and npm {purpose})"));
    }
    println!("xtask: installing Debian's npm package {purpose}");
    apt_get_install(&["npm"])?;
    if works() {
        Ok("npm")
    } else {
        Err("Debian's npm package was installed but npm does not run".into())
    }
}

/// A Python interpreter with `websockets` and `kosoku` installed: a venv in
/// `target/peers-venv`, made once (under a lock, so two runs at once share it).
pub(crate) fn python_for_peers(target_dir: &Path) -> Result<PathBuf, String> {
    python_venv(target_dir, "peers-venv", &[("websockets", WEBSOCKETS_VERSION), ("kosoku", KOSOKU_VERSION)])
}

/// The interpreter of a venv `target/<name>` holding exactly these PyPI packages (name,
/// version): made once, under a lock, so two runs at once share it.
pub(crate) fn python_venv(target_dir: &Path, name: &str, packages: &[(&str, &str)]) -> Result<PathBuf, String> {
    let venv = target_dir.join(name);
    let python = venv.join(if cfg!(windows) { "Scripts/python.exe" } else { "bin/python" });
    let asserts: Vec<String> = packages.iter().map(|(package, version)| format!("assert m.version('{package}') == '{version}'")).collect();
    let check = format!("import importlib.metadata as m; {}", asserts.join("; "));
    let wanted: Vec<String> = packages.iter().map(|(package, version)| format!("{package}=={version}")).collect();
    let ready = |python: &Path| Command::new(python).args(["-c", &check]).output().is_ok_and(|o| o.status.success());
    if ready(&python) {
        return Ok(python);
    }
    std::fs::create_dir_all(target_dir).map_err(|e| format!("cannot create {}: {e}", target_dir.display()))?;
    let lock_path = target_dir.join(format!("{name}.lock"));
    let lock = File::create(&lock_path).map_err(|e| format!("cannot create {}: {e}", lock_path.display()))?;
    lock.lock().map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    if ready(&python) {
        return Ok(python);
    }
    let system_python = ["python3", "python"]
        .into_iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success()))
        .ok_or("no python3 on PATH: install Python 3.9 or newer")?;
    println!("xtask: making {} with {}", venv.display(), wanted.join(", "));
    process::run_checked(Command::new(system_python).args(["-m", "venv"]).arg(&venv))
        .map_err(|e| format!("{e} (on Debian/Ubuntu: apt-get install python3-venv)"))?;
    process::run_checked(Command::new(&python).args(["-m", "pip", "install", "-q"]).args(&wanted))?;
    if ready(&python) {
        Ok(python)
    } else {
        Err(format!("{} still lacks {}", python.display(), wanted.join(" or ")))
    }
}

/// `apt-get update`, then `apt-get install` of these Debian packages (as root or through
/// password-less sudo; callers check `godot::sudo_prefix` first).
pub(crate) fn apt_get_install(packages: &[&str]) -> Result<(), String> {
    process::run_checked(&mut godot::privileged(&["apt-get", "update", "-q"]))?;
    let mut install = vec!["apt-get", "install", "-y", "-q", "--no-install-recommends"];
    install.extend_from_slice(packages);
    process::run_checked(godot::privileged(&install).env("DEBIAN_FRONTEND", "noninteractive"))
}

/// Whether this is Debian or a system based on it (Ubuntu), whose packages apt-get installs.
pub(crate) fn debian_like() -> bool {
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    os_release.lines().any(|l| l == "ID=debian" || l == "ID=ubuntu" || (l.starts_with("ID_LIKE=") && l.contains("debian")))
}

/// A reverse proxy's binary (`program`: nginx or haproxy, each answers `-v`): the path in the
/// environment variable `variable`, else `program` on PATH or in /usr/sbin (not on a user's PATH
/// everywhere), else the Debian package `package` installed with apt-get (as root or through
/// password-less sudo). Installing it may start the system's own service on a machine with an
/// init system; the tests never use that one.
fn reverse_proxy(variable: &str, program: &str, package: &str) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(variable) {
        return Ok(PathBuf::from(path));
    }
    let runs = |path: &Path| Command::new(path).arg("-v").output().is_ok_and(|o| o.status.success());
    let find = || {
        let candidates = [which(program).ok(), Some(Path::new("/usr/sbin").join(program))];
        candidates.into_iter().flatten().find(|path| runs(path))
    };
    if let Some(path) = find() {
        return Ok(path);
    }
    if !debian_like() || godot::sudo_prefix().is_none() {
        return Err(format!("install {program} (the Debian package `{package}`), or set {variable} to its binary"));
    }
    println!("xtask: installing the Debian package {package} for the reverse-proxy tests");
    apt_get_install(&[package])?;
    find().ok_or_else(|| format!("the Debian package {package} was installed but `{program} -v` does not run"))
}

/// A Chromium or Chrome binary: `WSRS_CHROMIUM`, else one on PATH, else Debian's `chromium`
/// package installed with apt-get (as root or through password-less sudo).
fn chromium() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("WSRS_CHROMIUM") {
        return Ok(PathBuf::from(path));
    }
    let names = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"];
    let find = || {
        names.iter().find_map(|name| {
            let out = Command::new("sh").args(["-c", &format!("command -v {name}")]).output().ok()?;
            let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
            // Ubuntu's chromium-browser may be a stub that asks for snap; it does not run headless here.
            let works = !path.is_empty()
                && Command::new(&path).arg("--version").output().is_ok_and(|o| o.status.success());
            works.then(|| PathBuf::from(path))
        })
    };
    if let Some(path) = find() {
        return Ok(path);
    }
    let debian = std::fs::read_to_string("/etc/os-release").unwrap_or_default().lines().any(|l| l == "ID=debian");
    if !debian || godot::sudo_prefix().is_none() {
        return Err("install Chromium or Chrome, or set WSRS_CHROMIUM to its binary".into());
    }
    println!("xtask: installing Debian's chromium package for the browser tests");
    apt_get_install(&["chromium"])?;
    find().ok_or_else(|| "chromium was installed but does not run".to_string())
}

/// OpenSSL's headers and pkg-config, which the native-tls backend builds against on Linux:
/// installed with apt-get on Debian/Ubuntu when missing.
pub(crate) fn ensure_openssl_headers() -> Result<(), String> {
    if !cfg!(target_os = "linux") {
        return Ok(());
    }
    let present = Command::new("pkg-config").args(["--exists", "openssl"]).status().is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    if godot::sudo_prefix().is_none() {
        return Err("the native-tls backend needs OpenSSL's headers: install libssl-dev and pkg-config".into());
    }
    println!("xtask: installing libssl-dev and pkg-config for the native-tls backend");
    apt_get_install(&["libssl-dev", "pkg-config"])
}
