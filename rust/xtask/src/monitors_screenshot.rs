//! `cargo xtask docs --monitors-screenshot`: photographs the editor's Debugger > Monitors tab
//! while a game that serves and connects clients runs, into `docs/monitors.png`.
//!
//! The editor runs under Xvfb on a scratch project under `target/` that links the addon and
//! holds `godot-project/tools/monitors_screenshot/` as an enabled editor plugin; the plugin plays
//! the traffic scene, shows and ticks the WebSocket monitors, saves the editor window and quits.
//! The picture is then cut to the bottom panel and scaled with ImageMagick's `convert`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::docs::{ensure_xvfb, link_dir, screenshot_project};
use crate::{godot, process};

/// The files of the plugin and of the scene it plays.
const PLUGIN_FILES: [&str; 4] = ["plugin.cfg", "monitors_screenshot.gd", "traffic.gd", "traffic.tscn"];

/// Width of the published picture, in pixels.
const WIDTH: u32 = 1200;

/// Writes `png` from a real editor run; see the module documentation.
pub(crate) fn screenshot(godot: &Path, sample: &Path, png: &Path) -> Result<(), String> {
    let xvfb_run = ensure_xvfb()?;
    let convert = which("convert").ok_or("the screenshot needs ImageMagick's convert (Debian/Ubuntu: apt-get install imagemagick)")?;
    let project = crate::target_dir().join("monitors-screenshot");
    if project.exists() {
        std::fs::remove_dir_all(&project).map_err(|e| format!("cannot empty {}: {e}", project.display()))?;
    }
    let plugin = project.join("addons/monitors_screenshot");
    std::fs::create_dir_all(&plugin).map_err(|e| format!("cannot create {}: {e}", plugin.display()))?;
    for file in PLUGIN_FILES {
        let from = sample.join("tools/monitors_screenshot").join(file);
        std::fs::copy(&from, plugin.join(file)).map_err(|e| format!("cannot copy {}: {e}", from.display()))?;
    }
    link_dir(&crate::root().join("addons/websocket_rs"), &project.join("addons/websocket_rs"))?;
    std::fs::write(project.join("project.godot"), screenshot_project("websocket_rs monitors screenshot", "monitors_screenshot")).map_err(|e| format!("cannot write project.godot: {e}"))?;
    godot::import_project(godot, &project)?;
    // Debug > Keep Debug Server Open: the plugin starts the game itself (see its header).
    let metadata = project.join(".godot/editor/project_metadata.cfg");
    std::fs::create_dir_all(project.join(".godot/editor")).map_err(|e| format!("cannot create .godot/editor: {e}"))?;
    std::fs::write(&metadata, "[debug_options]\n\nserver_keep_open=true\n").map_err(|e| format!("cannot write {}: {e}", metadata.display()))?;

    let shot = project.join("monitors-full.png");
    let mut command = Command::new(&xvfb_run);
    command
        .args(["--auto-servernum", "--server-args=-screen 0 1920x1080x24"])
        .arg(godot)
        .args(["--editor", "--path"])
        .arg(&project)
        .args(["--audio-driver", "Dummy", "--rendering-method", "gl_compatibility", "--rendering-driver", "opengl3", "--resolution", "1920x1080"])
        .args(["--", &format!("--monitors-screenshot={}", shot.display()), &format!("--godot={}", godot.display())]);
    let run = process::run_bounded(&mut command, Duration::from_secs(300), process::Echo::Quiet)?;
    for line in run.output.lines().filter(|l| l.starts_with("monitors screenshot:")) {
        println!("xtask: {line}");
    }
    if !shot.exists() {
        return Err(format!("the editor wrote no screenshot (exit {:?}):\n{}", run.status, run.output));
    }
    if let Some(dir) = png.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    // The plugin saved the bottom panel's rectangle next to the picture: cut, scale, 128 colours.
    let crop = std::fs::read_to_string(shot.with_extension("crop")).map_err(|e| format!("no crop rectangle from the plugin: {e}"))?;
    let mut shrink = Command::new(convert);
    shrink
        .arg(&shot)
        .args(["-crop", crop.trim(), "+repage", "-resize", &format!("{WIDTH}x>"), "-colors", "128", "-strip"])
        .arg(png);
    let out = shrink.output().map_err(|e| format!("cannot run convert: {e}"))?;
    if !out.status.success() {
        return Err(format!("convert failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let bytes = std::fs::metadata(png).map(|m| m.len()).unwrap_or(0);
    println!("xtask: wrote {} ({} KB)", png.display(), bytes / 1024);
    Ok(())
}

/// The path of `program` on PATH, if any.
fn which(program: &str) -> Option<std::path::PathBuf> {
    let out = Command::new("sh").args(["-c", &format!("command -v {program}")]).output().ok()?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!path.is_empty()).then(|| path.into())
}
