//! Finding Godot 4.6 or newer, or provisioning Debian sid's build of it into a user cache.
//!
//! Order: `GDRUST_GODOT_BIN`, then `GODOT4_BIN`, then `godot` on PATH, each if it is 4.6+. Else,
//! on Debian/Ubuntu x86_64, Debian sid's `godot` package is installed once with `debootstrap`
//! into `$XDG_CACHE_HOME/godot-websocket-rs/` (or `~/.cache/...`) and started through a wrapper
//! script that runs it with sid's own loader and libraries (no chroot). A lock file makes two
//! runs at once safe; a finished install is marked and reused.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process;

/// Lowest Godot version the addon supports.
const MIN_VERSION: (u32, u32) = (4, 6);
/// Folder (under the cache) of the provisioned Godot.
const PROVISION_DIR: &str = "godot-4.6-debian-sid";

/// Returns a runnable Godot 4.6+ (a binary or the wrapper script of a provisioned one).
pub(crate) fn find_or_provision() -> Result<PathBuf, String> {
    let mut rejected = Vec::new();
    for var in ["GDRUST_GODOT_BIN", "GODOT4_BIN"] {
        if let Some(path) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            let path = PathBuf::from(path);
            match version_of(&path) {
                Some(v) if v >= MIN_VERSION => return Ok(path),
                Some(v) => rejected.push(format!("{var}={} is Godot {}.{}", path.display(), v.0, v.1)),
                None => rejected.push(format!("{var}={} does not run as Godot", path.display())),
            }
        }
    }
    if let Some(v) = version_of(Path::new("godot")) {
        if v >= MIN_VERSION {
            return Ok(PathBuf::from("godot"));
        }
        rejected.push(format!("`godot` on PATH is Godot {}.{}", v.0, v.1));
    }
    let wrapper = cache_dir()?.join(PROVISION_DIR).join("godot");
    if is_ready(&wrapper) {
        return Ok(wrapper);
    }
    if let Err(why) = can_provision() {
        let mut message = String::from("no Godot 4.6 or newer was found");
        if !rejected.is_empty() {
            message.push_str(&format!(" ({})", rejected.join("; ")));
        }
        message.push_str(&format!(
            ", and it cannot be provisioned here: {why}.\n\
             Install Godot 4.6+ (https://godotengine.org/download) and put it on PATH as `godot`, \
             or set GODOT4_BIN (or GDRUST_GODOT_BIN) to its path."
        ));
        return Err(message);
    }
    provision(&wrapper)
}

/// `major.minor` of the Godot at `path`, if it runs.
fn version_of(path: &Path) -> Option<(u32, u32)> {
    let output = Command::new(path).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().rev().find(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
    let mut parts = line.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn cache_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir).join("godot-websocket-rs"));
    }
    let home = std::env::var_os("HOME").ok_or("neither XDG_CACHE_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cache/godot-websocket-rs"))
}

fn is_ready(wrapper: &Path) -> bool {
    wrapper.with_file_name("READY").exists() && version_of(wrapper).is_some_and(|v| v >= MIN_VERSION)
}

/// Why this machine cannot provision Godot, if it cannot.
fn can_provision() -> Result<(), String> {
    if std::env::consts::OS != "linux" || std::env::consts::ARCH != "x86_64" {
        return Err(format!("automatic install covers Debian/Ubuntu x86_64 only, this is {}/{}",
            std::env::consts::OS, std::env::consts::ARCH));
    }
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let debian_like = os_release.lines().any(|l| {
        (l.starts_with("ID=") || l.starts_with("ID_LIKE="))
            && (l.contains("debian") || l.contains("ubuntu"))
    });
    if !debian_like {
        return Err("automatic install covers Debian and Ubuntu only".into());
    }
    if sudo_prefix().is_none() {
        return Err("installing needs root (or sudo without a password) for apt-get and debootstrap".into());
    }
    Ok(())
}

/// `[]` when root, `["sudo", "-n"]` when password-less sudo works, None otherwise.
pub(crate) fn sudo_prefix() -> Option<Vec<&'static str>> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() == "0" {
        return Some(Vec::new());
    }
    let sudo_ok = Command::new("sudo").args(["-n", "true"]).status().is_ok_and(|s| s.success());
    sudo_ok.then(|| vec!["sudo", "-n"])
}

pub(crate) fn privileged(args: &[&str]) -> Command {
    let prefix = sudo_prefix().unwrap_or_default();
    let all: Vec<&str> = prefix.iter().copied().chain(args.iter().copied()).collect();
    let mut command = Command::new(all[0]);
    command.args(&all[1..]);
    command
}

/// Installs Debian sid's Godot under the cache (once, under a lock) and writes its wrapper.
fn provision(wrapper: &Path) -> Result<PathBuf, String> {
    let dir = wrapper.parent().ok_or("bad cache path")?.to_path_buf();
    let cache = dir.parent().ok_or("bad cache path")?.to_path_buf();
    std::fs::create_dir_all(&cache).map_err(|e| format!("cannot create {}: {e}", cache.display()))?;
    let lock_path = cache.join("provision.lock");
    let lock = File::create(&lock_path).map_err(|e| format!("cannot create {}: {e}", lock_path.display()))?;
    println!("xtask: waiting for the provisioning lock {}", lock_path.display());
    lock.lock().map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    // Another run may have finished while we waited.
    if is_ready(wrapper) {
        return Ok(wrapper.to_path_buf());
    }
    println!("xtask: no Godot 4.6+ found; installing Debian sid's godot package into {} (once, about 1-2 minutes)", dir.display());
    ensure_host_packages()?;
    let staging = cache.join(format!("{PROVISION_DIR}.partial"));
    if staging.exists() {
        process::run_checked(privileged(&["rm", "-rf"]).arg(&staging))?;
    }
    let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
    // No mirror argument: debootstrap uses its own default.
    process::run_checked(
        privileged(&["debootstrap", "--variant=minbase", "--include=godot"])
            .arg(format!("--keyring={keyring}"))
            .arg("sid")
            .arg(staging.join("root")),
    )
    .map_err(|e| format!("debootstrap of Debian sid with godot failed: {e}"))?;
    if dir.exists() {
        process::run_checked(privileged(&["rm", "-rf"]).arg(&dir))?;
    }
    // The staging folder was made by root: hand it to the current user so the wrapper can be written.
    if sudo_prefix().is_some_and(|p| !p.is_empty()) {
        let uid = Command::new("id").arg("-u").output().map_err(|e| e.to_string())?;
        let uid = String::from_utf8_lossy(&uid.stdout).trim().to_string();
        process::run_checked(privileged(&["chown", &uid]).arg(&staging))?;
    }
    std::fs::write(staging.join("godot"), WRAPPER_SCRIPT).map_err(|e| format!("cannot write the wrapper: {e}"))?;
    make_executable(&staging.join("godot"))?;
    std::fs::rename(&staging, &dir).map_err(|e| format!("cannot move {} into place: {e}", staging.display()))?;
    match version_of(wrapper) {
        Some(v) if v >= MIN_VERSION => {
            std::fs::write(dir.join("READY"), format!("{}.{}\n", v.0, v.1)).map_err(|e| e.to_string())?;
            println!("xtask: Godot {}.{} ready at {}", v.0, v.1, wrapper.display());
            Ok(wrapper.to_path_buf())
        }
        Some(v) => Err(format!("Debian sid's godot is {}.{}, older than 4.6", v.0, v.1)),
        None => Err(format!("the provisioned Godot at {} does not run", wrapper.display())),
    }
}

/// debootstrap and Debian's archive keyring (an Ubuntu host lacks the latter).
fn ensure_host_packages() -> Result<(), String> {
    let have_debootstrap = Command::new("sh").args(["-c", "command -v debootstrap || test -x /usr/sbin/debootstrap"])
        .output()
        .is_ok_and(|o| o.status.success());
    let have_keyring = Path::new("/usr/share/keyrings/debian-archive-keyring.gpg").exists();
    if have_debootstrap && have_keyring {
        return Ok(());
    }
    process::run_checked(&mut privileged(&["apt-get", "update", "-q"]))?;
    process::run_checked(
        privileged(&["apt-get", "install", "-y", "-q", "debootstrap", "debian-archive-keyring"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// Runs sid's Godot with sid's own dynamic loader and libraries: no chroot, no root.
const WRAPPER_SCRIPT: &str = r#"#!/bin/sh
# Godot from Debian sid, installed by `cargo xtask` (godot-websocket-rs).
R="$(cd "$(dirname "$0")" && pwd)/root"
exec "$R/lib64/ld-linux-x86-64.so.2" \
  --library-path "$R/usr/lib/x86_64-linux-gnu:$R/lib/x86_64-linux-gnu:$R/usr/lib/x86_64-linux-gnu/pulseaudio" \
  "$R/usr/bin/godot" "$@"
"#;

fn make_executable(path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    }
    let _ = path;
    Ok(())
}

/// Runs the editor's import once, which fills the script class cache and imports resources.
///
/// The extension is listed in `.godot/extension_list.cfg` beforehand: a headless editor that
/// discovers a GDExtension for the first time crashes at shutdown (Godot engine bug, e.g.
/// godotengine/godot#123511), after its work is done but with a failing exit code.
pub(crate) fn import_project(godot: &Path, project: &Path) -> Result<(), String> {
    let list = project.join(".godot/extension_list.cfg");
    let entry = "res://addons/websocket_rs/websocket_rs.gdextension";
    if !std::fs::read_to_string(&list).unwrap_or_default().lines().any(|l| l == entry) {
        std::fs::create_dir_all(project.join(".godot")).map_err(|e| format!("cannot create .godot: {e}"))?;
        std::fs::write(&list, format!("{entry}\n")).map_err(|e| format!("cannot write {}: {e}", list.display()))?;
    }
    let mut command = Command::new(godot);
    command.args(["--headless", "--path"]).arg(project).arg("--import");
    let run = process::run_bounded(&mut command, Duration::from_secs(300), process::Echo::Quiet)?;
    let registered = std::fs::read_to_string(project.join(".godot/extension_list.cfg")).unwrap_or_default();
    if run.status.is_none_or(|s| !s.success()) || !registered.contains("websocket_rs.gdextension") {
        return Err(format!("importing {} failed:\n{}", project.display(), run.output));
    }
    Ok(())
}
