//! Bun, the reference server `Bun.serve` runs on (uWebSockets inside): the `bun` executable from
//! the npm package `@oven/bun-linux-x64` (or `@oven/bun-linux-x64-baseline` on a CPU without
//! AVX2), installed with npm into `target/bench-tools/` once. npm itself comes from Debian's `npm`
//! package when it is missing (as root or through password-less sudo).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::peers;

/// The Bun release the bench runs.
pub(super) const BUN_VERSION: &str = "1.4.5";

/// The `bun` executable of [`BUN_VERSION`], installed if needed; or why it cannot be had here
/// (the bench then skips Bun's rows with that reason).
pub(super) fn bun(target_dir: &Path) -> Result<PathBuf, String> {
    if !(cfg!(target_os = "linux") && cfg!(target_arch = "x86_64")) {
        return Err("the bench installs Bun on Linux x86_64 only".into());
    }
    let avx2 = std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|s| s.split_whitespace().any(|w| w == "avx2"));
    let package = if avx2 { "@oven/bun-linux-x64" } else { "@oven/bun-linux-x64-baseline" };
    let dir = target_dir.join("bench-tools");
    let binary = dir.join("node_modules").join(package).join("bin/bun");
    let ready = |binary: &Path| Command::new(binary).arg("--version").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == BUN_VERSION);
    if ready(&binary) {
        return Ok(binary);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let lock_path = target_dir.join("bench-tools.lock");
    let lock = File::create(&lock_path).map_err(|e| format!("cannot create {}: {e}", lock_path.display()))?;
    lock.lock().map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    if ready(&binary) {
        return Ok(binary);
    }
    let npm = peers::npm("to fetch Bun")?;
    println!("xtask: installing the npm package {package}@{BUN_VERSION} into {}", dir.display());
    peers::npm_install(npm, &dir, &format!("{package}@{BUN_VERSION}"))?;
    if ready(&binary) {
        Ok(binary)
    } else {
        Err(format!("{package}@{BUN_VERSION} was installed but {} does not run as Bun {BUN_VERSION}", binary.display()))
    }
}
