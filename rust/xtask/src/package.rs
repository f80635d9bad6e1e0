//! The release package: `target/package/websocket_rs-<version>.zip`, holding
//! `addons/websocket_rs/` ready to unzip into a Godot project (the `.gdextension`, `bin/` with the
//! libraries at hand, the icons, LICENSE and the addon's README), and its test: the zip unzipped
//! into an empty Godot project whose only script echoes a message through the packaged library.
//!
//! Which files make up a release is read from `websocket_rs.gdextension` itself (its
//! `[libraries]` and `[icons]`), so the package and the extension file cannot disagree.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{godot, process};

/// The one version of the project: `[workspace.package] version` in the root Cargo.toml.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The addon folder, as it sits in the repository and in the zip.
const ADDON: &str = "addons/websocket_rs";
/// The extension file, relative to the addon folder.
const GDEXTENSION: &str = "websocket_rs.gdextension";
/// The script the zip test runs in the empty project.
const ZIP_ECHO_SCRIPT: &str = include_str!("package/zip_echo.gd");

/// Where the package of this version is written.
pub(crate) fn zip_path(target_dir: &Path) -> PathBuf {
    target_dir.join("package").join(format!("websocket_rs-{VERSION}.zip"))
}

/// A `key = "res://addons/websocket_rs/<path>"` entry of a section of the `.gdextension`, with
/// the path relative to the addon folder.
#[derive(Debug, PartialEq)]
struct Entry {
    key: String,
    path: String,
}

/// The entries of `[section]` in the `.gdextension` text.
fn section_entries(gdextension: &str, section: &str) -> Result<Vec<Entry>, String> {
    let header = format!("[{section}]");
    let mut inside = false;
    let mut entries = Vec::new();
    for line in gdextension.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == header;
            continue;
        }
        if !inside || line.is_empty() || line.starts_with(';') {
            continue;
        }
        let (key, value) = line.split_once('=').ok_or_else(|| format!("{GDEXTENSION}: `{line}` is not `key = \"path\"`"))?;
        let value = value.trim().trim_matches('"');
        let path = value
            .strip_prefix(&format!("res://{ADDON}/"))
            .ok_or_else(|| format!("{GDEXTENSION}: {value} is not inside res://{ADDON}/"))?;
        entries.push(Entry { key: key.trim().to_string(), path: path.to_string() });
    }
    Ok(entries)
}

/// The distinct library paths (relative to the addon folder) the `.gdextension` lists, in order.
fn library_paths(gdextension: &str) -> Result<Vec<String>, String> {
    let mut paths: Vec<String> = Vec::new();
    for entry in section_entries(gdextension, "libraries")? {
        if !paths.contains(&entry.path) {
            paths.push(entry.path);
        }
    }
    Ok(paths)
}

/// Where the libraries of the package come from.
pub(crate) enum Libraries {
    /// The release build of this machine's platform, made now (the others are left out).
    BuildHere,
    /// Every library the `.gdextension` lists, already built, in this folder under the file (or
    /// `.framework` folder) names the `.gdextension` uses: what the release workflow collected
    /// from its platform jobs. A missing one is an error.
    Prebuilt(PathBuf),
}

/// Builds (if asked) and writes the zip; returns its path.
pub(crate) fn package(root: &Path, target_dir: &Path, libraries: Libraries) -> Result<PathBuf, String> {
    let addon = root.join(ADDON);
    let gdextension = read(&addon.join(GDEXTENSION))?;
    let wanted = library_paths(&gdextension)?;
    // (path inside the addon folder, file or folder on disk)
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    let mut missing: Vec<String> = Vec::new();
    match &libraries {
        Libraries::BuildHere => {
            let (built, installed) = crate::library_names()?;
            process::run_checked(Command::new(env!("CARGO")).current_dir(root).args(["build", "--release", "-p", "websocket_rs"]))?;
            let library = target_dir.join("release").join(built);
            let inside = format!("bin/{installed}");
            for path in &wanted {
                if path == &inside {
                    found.push((path.clone(), library.clone()));
                } else if inside.starts_with(&format!("{path}/")) {
                    // macOS: the library is the executable of a .framework folder.
                    found.push((inside.clone(), library.clone()));
                } else {
                    missing.push(path.clone());
                }
            }
            if found.is_empty() {
                return Err(format!("{GDEXTENSION} lists no library named {inside}, which this platform builds"));
            }
        }
        Libraries::Prebuilt(dir) => {
            for path in &wanted {
                let name = path.strip_prefix("bin/").unwrap_or(path);
                let source = dir.join(name);
                if source.exists() {
                    found.push((path.clone(), source));
                } else {
                    missing.push(path.clone());
                }
            }
            if !missing.is_empty() {
                return Err(format!(
                    "{} lacks libraries that {GDEXTENSION} lists: {}",
                    dir.display(),
                    missing.join(", ")
                ));
            }
        }
    }

    let out = zip_path(target_dir);
    std::fs::create_dir_all(out.parent().expect("package dir")).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let tmp = out.with_extension("zip.partial");
    let file = std::fs::File::create(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    let mut zip = zip::ZipWriter::new(file);
    let add = |zip: &mut zip::ZipWriter<std::fs::File>, inside: &str, source: &Path| {
        add_path(zip, &format!("{ADDON}/{inside}"), source)
    };

    add(&mut zip, GDEXTENSION, &addon.join(GDEXTENSION))?;
    let uid = addon.join(format!("{GDEXTENSION}.uid"));
    if uid.exists() {
        add(&mut zip, &format!("{GDEXTENSION}.uid"), &uid)?;
    }
    add(&mut zip, "README.md", &addon.join("README.md"))?;
    add(&mut zip, "LICENSE", &addon.join("LICENSE"))?;
    for icon in section_entries(&gdextension, "icons")? {
        add(&mut zip, &icon.path, &addon.join(&icon.path))?;
    }
    for (inside, source) in &found {
        add(&mut zip, inside, source)?;
        if let Some(framework) = framework_of(inside) {
            let plist = format!("{framework}/Resources/Info.plist");
            if !source.join("Resources/Info.plist").exists() && !found.iter().any(|(p, _)| p == &plist) {
                add_bytes(&mut zip, &format!("{ADDON}/{plist}"), info_plist(framework).as_bytes())?;
            }
        }
    }
    zip.finish().map_err(|e| format!("cannot finish {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &out).map_err(|e| format!("cannot move {} into place: {e}", out.display()))?;

    let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    println!("xtask: wrote {} ({size} bytes)", out.display());
    for (inside, _) in &found {
        println!("    {ADDON}/{inside}");
    }
    if !missing.is_empty() {
        println!("    not built on this machine (the release workflow builds them): {}", missing.join(", "));
    }
    Ok(out)
}

/// The `.framework` folder a path inside the addon lies in, if any.
fn framework_of(inside: &str) -> Option<&str> {
    if inside.ends_with(".framework") {
        return Some(inside);
    }
    let end = inside.find(".framework/")? + ".framework".len();
    Some(&inside[..end])
}

/// The Info.plist a macOS framework needs to be signed and notarized with the exported game.
fn info_plist(framework: &str) -> String {
    let name = Path::new(framework).file_stem().and_then(|s| s.to_str()).unwrap_or("libwebsocket_rs.macos");
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>CFBundleExecutable</key>
	<string>{name}</string>
	<key>CFBundleIdentifier</key>
	<string>org.godot-websocket-rs.{name}</string>
	<key>CFBundleInfoDictionaryVersion</key>
	<string>6.0</string>
	<key>CFBundleName</key>
	<string>websocket_rs</string>
	<key>CFBundlePackageType</key>
	<string>FMWK</string>
	<key>CFBundleShortVersionString</key>
	<string>{VERSION}</string>
	<key>CFBundleVersion</key>
	<string>{VERSION}</string>
	<key>LSMinimumSystemVersion</key>
	<string>10.13</string>
</dict>
</plist>
"#
    )
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn options(executable: bool) -> zip::write::SimpleFileOptions {
    zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(if executable { 0o755 } else { 0o644 })
}

/// Adds a file, or a folder with everything in it, as `name`.
fn add_path(zip: &mut zip::ZipWriter<std::fs::File>, name: &str, source: &Path) -> Result<(), String> {
    if source.is_dir() {
        let mut children: Vec<PathBuf> = std::fs::read_dir(source)
            .map_err(|e| format!("cannot list {}: {e}", source.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        children.sort();
        for child in children {
            let child_name = child.file_name().and_then(|n| n.to_str()).ok_or("non-UTF-8 file name")?.to_string();
            add_path(zip, &format!("{name}/{child_name}"), &child)?;
        }
        return Ok(());
    }
    let bytes = std::fs::read(source).map_err(|e| format!("cannot read {}: {e}", source.display()))?;
    let is_library = [".so", ".dll", ".dylib"].iter().any(|ext| name.ends_with(ext)) || name.contains(".framework/");
    zip.start_file(name, options(is_library)).map_err(|e| format!("cannot add {name}: {e}"))?;
    zip.write_all(&bytes).map_err(|e| format!("cannot add {name}: {e}"))
}

fn add_bytes(zip: &mut zip::ZipWriter<std::fs::File>, name: &str, bytes: &[u8]) -> Result<(), String> {
    zip.start_file(name, options(false)).map_err(|e| format!("cannot add {name}: {e}"))?;
    zip.write_all(bytes).map_err(|e| format!("cannot add {name}: {e}"))
}

/// Unzips the package into an empty Godot project under `target/package-test/` and runs an echo
/// there through the packaged library. Returns whether it passed, after printing PASS or FAIL.
pub(crate) fn test_zip(godot: &Path, zip_file: &Path, target_dir: &Path) -> Result<bool, String> {
    let project = target_dir.join("package-test/project");
    if project.exists() {
        std::fs::remove_dir_all(&project).map_err(|e| format!("cannot empty {}: {e}", project.display()))?;
    }
    std::fs::create_dir_all(&project).map_err(|e| format!("cannot create {}: {e}", project.display()))?;
    let file = std::fs::File::open(zip_file).map_err(|e| format!("cannot open {}: {e}", zip_file.display()))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| format!("{} is not a zip: {e}", zip_file.display()))?;
    let names: Vec<String> = archive
        .file_names()
        .map(|name| name.map(|n| n.to_string()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot read {}: {e}", zip_file.display()))?;
    if let Some(stray) = names.iter().find(|n| !n.starts_with(&format!("{ADDON}/"))) {
        println!("FAIL package::zip_echo ({stray} is outside {ADDON}/)");
        return Ok(false);
    }
    archive.extract(&project).map_err(|e| format!("cannot unzip {}: {e}", zip_file.display()))?;
    std::fs::write(project.join("project.godot"), "config_version=5\n\n[application]\n\nconfig/name=\"websocket_rs zip test\"\n")
        .map_err(|e| format!("cannot write project.godot: {e}"))?;
    std::fs::write(project.join("zip_echo.gd"), ZIP_ECHO_SCRIPT).map_err(|e| format!("cannot write zip_echo.gd: {e}"))?;

    godot::import_project(godot, &project)?;
    let mut command = Command::new(godot);
    command.args(["--headless", "--path"]).arg(&project).args(["--script", "res://zip_echo.gd"]);
    let run = process::run_bounded(&mut command, Duration::from_secs(60), process::Echo::Quiet)?;
    let ok_line = run.output.lines().find(|l| l.starts_with("ZIP ECHO OK"));
    let problems: Vec<&str> = run
        .output
        .lines()
        .filter(|l| l.starts_with("ZIP ECHO FAIL") || l.contains("ERROR:") || l.contains("leaked"))
        .collect();
    let passed = run.status.is_some_and(|s| s.success()) && ok_line.is_some() && problems.is_empty();
    if passed {
        println!("PASS package::zip_echo ({} files unzipped into an empty project; {})", names.len(), ok_line.unwrap_or_default());
    } else {
        println!("FAIL package::zip_echo (exit {:?})", run.status);
        for line in run.output.lines() {
            println!("    | {line}");
        }
    }
    Ok(passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "[configuration]\nentry_symbol = \"gdext_rust_init\"\n\n[libraries]\n\
        linux.debug.x86_64 = \"res://addons/websocket_rs/bin/libwebsocket_rs.linux.x86_64.so\"\n\
        linux.release.x86_64 = \"res://addons/websocket_rs/bin/libwebsocket_rs.linux.x86_64.so\"\n\
        macos.debug = \"res://addons/websocket_rs/bin/libwebsocket_rs.macos.framework\"\n\n\
        [icons]\nWebSocketServer = \"res://addons/websocket_rs/icons/WebSocketServer.svg\"\n";

    #[test]
    fn libraries_are_listed_once_each() {
        assert_eq!(
            library_paths(SAMPLE).unwrap(),
            ["bin/libwebsocket_rs.linux.x86_64.so", "bin/libwebsocket_rs.macos.framework"]
        );
        assert_eq!(
            section_entries(SAMPLE, "icons").unwrap(),
            [Entry { key: "WebSocketServer".into(), path: "icons/WebSocketServer.svg".into() }]
        );
    }

    #[test]
    fn the_repository_gdextension_names_its_files_inside_the_addon() {
        let text = std::fs::read_to_string(crate::root().join(ADDON).join(GDEXTENSION)).unwrap();
        assert!(!library_paths(&text).unwrap().is_empty());
        for icon in section_entries(&text, "icons").unwrap() {
            assert!(crate::root().join(ADDON).join(&icon.path).exists(), "{} is missing", icon.path);
        }
    }

    #[test]
    fn the_changelog_has_a_section_for_this_version() {
        let changelog = std::fs::read_to_string(crate::root().join("CHANGELOG.md")).unwrap();
        assert!(changelog.lines().any(|l| l.starts_with(&format!("## [{VERSION}]"))), "CHANGELOG.md lacks ## [{VERSION}]");
    }

    #[test]
    fn the_addon_license_is_the_repository_license() {
        // The addon folder carries its own copy, so a download of the addon alone has it.
        let read = |p: &str| std::fs::read_to_string(crate::root().join(p)).unwrap();
        assert_eq!(read("LICENSE"), read("addons/websocket_rs/LICENSE"));
    }

    #[test]
    fn a_framework_path_is_found() {
        assert_eq!(framework_of("bin/x.macos.framework/x.macos"), Some("bin/x.macos.framework"));
        assert_eq!(framework_of("bin/x.macos.framework"), Some("bin/x.macos.framework"));
        assert_eq!(framework_of("bin/x.so"), None);
    }
}
