//! Checks `.github/workflows/*.yml` against the GitHub workflow schema with the PyPI package
//! `check-jsonschema` (its built-in `vendor.github-workflows` schema, shipped inside the package:
//! nothing is fetched at check time), installed in a venv under `target/`. The workflows
//! themselves only run on GitHub; this is what can be checked here.

use std::path::{Path, PathBuf};
use std::process::Command;


/// The `check-jsonschema` release used.
const CHECK_JSONSCHEMA_VERSION: &str = "0.39.0";

/// Results: one per workflow file. `skipped` says why nothing could be checked.
pub(crate) struct Report {
    pub(crate) passed: usize,
    pub(crate) failed: usize,
}

/// Checks every workflow file; prints PASS/FAIL per file, or SKIP with the reason when the
/// validator cannot be installed (then nothing counts as passed).
pub(crate) fn check(root: &Path, target_dir: &Path) -> Result<Report, String> {
    let dir = root.join(".github/workflows");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    let validator = match validator(target_dir) {
        Ok(v) => v,
        Err(why) => {
            println!("SKIP workflows::schema ({} files not checked: {why})", files.len());
            return Ok(Report { passed: 0, failed: 0 });
        }
    };
    let (mut passed, mut failed) = (0, 0);
    for file in &files {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        let output = Command::new(&validator)
            .args(["--builtin-schema", "vendor.github-workflows", "--color", "never"])
            .arg(file)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", validator.display()))?;
        if output.status.success() {
            passed += 1;
            println!("PASS workflows::{name}");
        } else {
            failed += 1;
            println!("FAIL workflows::{name}");
            for line in String::from_utf8_lossy(&output.stdout).lines().chain(String::from_utf8_lossy(&output.stderr).lines()) {
                println!("    | {line}");
            }
        }
    }
    Ok(Report { passed, failed })
}

/// `check-jsonschema` in `target/tools-venv`, made once (under a lock).
fn validator(target_dir: &Path) -> Result<PathBuf, String> {
    let python = crate::peers::python_venv(target_dir, "tools-venv", &[("check-jsonschema", CHECK_JSONSCHEMA_VERSION)])?;
    let tool = python.with_file_name(if cfg!(windows) { "check-jsonschema.exe" } else { "check-jsonschema" });
    if tool.exists() {
        Ok(tool)
    } else {
        Err(format!("{} is missing after installing check-jsonschema {CHECK_JSONSCHEMA_VERSION}", tool.display()))
    }
}
