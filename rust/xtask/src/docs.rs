//! The editor's help for our classes: `godot --doctool DIR --gdextension-docs` writes the class
//! reference the editor shows (gdext's `register-docs` turns the `///` comments of
//! rust/extension into it); [`check`] fails on every class and member whose description is
//! empty. [`screenshot`] photographs the editor's help page of `WebSocketServer` under Xvfb.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{godot, process};

/// What the doc check found.
pub(crate) struct Report {
    /// `Class.member (kind)` of each class or member with no description.
    pub(crate) undocumented: Vec<String>,
}

/// Runs the doctool on `project` and checks every class it wrote. Prints the undocumented
/// members and `PASS docs::...` or `FAIL docs::...`.
pub(crate) fn check(godot: &Path, project: &Path, target_dir: &Path) -> Result<Report, String> {
    let out = target_dir.join("doctool");
    if out.exists() {
        std::fs::remove_dir_all(&out).map_err(|e| format!("cannot empty {}: {e}", out.display()))?;
    }
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut command = Command::new(godot);
    command.args(["--headless", "--path"]).arg(project).arg("--doctool").arg(&out).arg("--gdextension-docs");
    let run = process::run_bounded(&mut command, Duration::from_secs(120), process::Echo::Quiet)?;
    let files = xml_files(&out);
    if run.status.is_none_or(|s| !s.success()) || files.is_empty() {
        return Err(format!("godot --doctool wrote no class reference (exit {:?}):\n{}", run.status, run.output));
    }
    let mut classes = Vec::new();
    let mut members = 0usize;
    let mut undocumented = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let class = check_class(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        members += class.members;
        undocumented.extend(class.undocumented);
        classes.push(class.name);
    }
    classes.sort();
    let documented = members - undocumented.iter().filter(|u| !u.ends_with("(class)")).count();
    println!(
        "    class reference of {} ({} files in {}): {documented} of {members} members described",
        classes.join(", "),
        files.len(),
        out.display()
    );
    if undocumented.is_empty() {
        println!("PASS docs::every_member_described ({members} members of {} classes)", classes.len());
    } else {
        let classes_missing = undocumented.iter().filter(|u| u.ends_with("(class)")).count();
        println!(
            "FAIL docs::every_member_described ({} of {members} members and {classes_missing} of {} classes without a description):",
            undocumented.len() - classes_missing,
            classes.len()
        );
        for name in &undocumented {
            println!("    - {name}");
        }
    }
    Ok(Report { undocumented })
}

/// The `.xml` files under `dir`, sorted.
fn xml_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "xml") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The first child element of `node` named `tag`.
fn child<'a, 'input>(node: roxmltree::Node<'a, 'input>, tag: &str) -> Option<roxmltree::Node<'a, 'input>> {
    node.children().find(|c| c.has_tag_name(tag))
}

/// One class of the reference.
struct Class {
    name: String,
    /// Methods, properties, signals, constants and the like.
    members: usize,
    undocumented: Vec<String>,
}

/// Checks one class file: the class's brief and long description, and the description of every
/// method, property, signal and constant.
fn check_class(xml: &str) -> Result<Class, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| format!("not XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "class" {
        return Err(format!("root element is <{}>, not <class>", root.tag_name().name()));
    }
    let name = root.attribute("name").unwrap_or("?").to_string();
    let text_of = |node: Option<roxmltree::Node>| node.and_then(|n| n.text()).unwrap_or("").trim().to_string();
    let mut undocumented = Vec::new();
    let brief = text_of(child(root, "brief_description"));
    let long = text_of(child(root, "description"));
    if brief.is_empty() || long.is_empty() {
        undocumented.push(format!("{name} (class)"));
    }
    // (list element, item element, kind shown, whether the text sits in a <description> child)
    let kinds = [
        ("constructors", "constructor", "constructor", true),
        ("methods", "method", "method", true),
        ("members", "member", "property", false),
        ("signals", "signal", "signal", true),
        ("constants", "constant", "constant", false),
        ("operators", "operator", "operator", true),
        ("theme_items", "theme_item", "theme item", false),
    ];
    let mut members = 0;
    for (list, item, kind, nested) in kinds {
        let Some(list) = child(root, list) else { continue };
        for node in list.children().filter(|c| c.has_tag_name(item)) {
            members += 1;
            let text = if nested { text_of(child(node, "description")) } else { text_of(Some(node)) };
            if text.is_empty() {
                undocumented.push(format!("{name}.{} ({kind})", node.attribute("name").unwrap_or("?")));
            }
        }
    }
    Ok(Class { name, members, undocumented })
}

/// Opens the editor on the sample project under Xvfb, shows the help page of `WebSocketServer`
/// and writes what the editor window shows to `png`. The editor plugin that does it lives in
/// `godot-project/tools/help_screenshot/`; it runs in a scratch project under `target/` that
/// links the addon, so the sample project is left as it is.
pub(crate) fn screenshot(godot: &Path, sample: &Path, png: &Path) -> Result<(), String> {
    let xvfb_run = ensure_xvfb()?;
    let root = crate::root();
    let project = crate::target_dir().join("help-screenshot");
    if project.exists() {
        std::fs::remove_dir_all(&project).map_err(|e| format!("cannot empty {}: {e}", project.display()))?;
    }
    let plugin = project.join("addons/help_screenshot");
    std::fs::create_dir_all(&plugin).map_err(|e| format!("cannot create {}: {e}", plugin.display()))?;
    for file in ["plugin.cfg", "help_screenshot.gd"] {
        let from = sample.join("tools/help_screenshot").join(file);
        std::fs::copy(&from, plugin.join(file)).map_err(|e| format!("cannot copy {}: {e}", from.display()))?;
    }
    link_dir(&root.join("addons/websocket_rs"), &project.join("addons/websocket_rs"))?;
    std::fs::write(project.join("project.godot"), SCREENSHOT_PROJECT).map_err(|e| format!("cannot write project.godot: {e}"))?;
    godot::import_project(godot, &project)?;

    let shot = project.join("help.png");
    let mut command = Command::new(&xvfb_run);
    command
        .args(["--auto-servernum", "--server-args=-screen 0 1280x800x24"])
        .arg(godot)
        .args(["--editor", "--path"])
        .arg(&project)
        .args(["--rendering-method", "gl_compatibility", "--rendering-driver", "opengl3", "--resolution", "1280x800"])
        .args(["--", &format!("--help-screenshot={}", shot.display())]);
    let run = process::run_bounded(&mut command, Duration::from_secs(180), process::Echo::Quiet)?;
    if !shot.exists() {
        return Err(format!("the editor wrote no screenshot (exit {:?}):\n{}", run.status, run.output));
    }
    if let Some(dir) = png.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::copy(&shot, png).map_err(|e| format!("cannot write {}: {e}", png.display()))?;
    println!("xtask: the editor's help page of WebSocketServer is in {}", png.display());
    Ok(())
}

/// The scratch project of the screenshot: the sample's renderer, the screenshot plugin enabled.
const SCREENSHOT_PROJECT: &str = "config_version=5

[application]

config/name=\"websocket_rs help screenshot\"
config/features=PackedStringArray(\"4.6\")

[editor_plugins]

enabled=PackedStringArray(\"res://addons/help_screenshot/plugin.cfg\")

[rendering]

renderer/rendering_method=\"gl_compatibility\"
";

#[cfg(unix)]
fn link_dir(target: &Path, link: &Path) -> Result<(), String> {
    std::os::unix::fs::symlink(target, link).map_err(|e| format!("cannot link {}: {e}", link.display()))
}

#[cfg(not(unix))]
fn link_dir(_target: &Path, _link: &Path) -> Result<(), String> {
    Err("the editor screenshot runs on Linux (Xvfb) only".into())
}

/// `xvfb-run`, with Debian's `xvfb` package installed when missing (as root or through
/// password-less sudo).
fn ensure_xvfb() -> Result<PathBuf, String> {
    let find = || {
        let out = Command::new("sh").args(["-c", "command -v xvfb-run"]).output().ok()?;
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (!path.is_empty()).then(|| PathBuf::from(path))
    };
    if let Some(path) = find() {
        return Ok(path);
    }
    if !cfg!(target_os = "linux") || godot::sudo_prefix().is_none() {
        return Err("the screenshot needs xvfb-run: install Xvfb (Debian/Ubuntu: apt-get install xvfb xauth)".into());
    }
    println!("xtask: installing Debian's xvfb package for the editor screenshot");
    process::run_checked(&mut godot::privileged(&["apt-get", "update", "-q"]))?;
    process::run_checked(
        godot::privileged(&["apt-get", "install", "-y", "-q", "--no-install-recommends", "xvfb", "xauth"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    find().ok_or_else(|| "xvfb was installed but xvfb-run is not on PATH".to_string())
}

#[cfg(test)]
mod tests {
    use super::check_class;

    #[test]
    fn empty_descriptions_are_named() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8" ?>
<class name="WebSocketServer" inherits="MultiplayerPeerExtension">
	<brief_description>A server.</brief_description>
	<description>Listens.</description>
	<methods>
		<method name="listen"><return type="int" /><description>Starts listening.</description></method>
		<method name="poll"><return type="void" /><description>
		</description></method>
	</methods>
	<members>
		<member name="bind_ip" type="String" setter="set_bind_ip" getter="get_bind_ip" default="&quot;*&quot;">
		</member>
	</members>
	<signals>
		<signal name="data_received"><param index="0" name="id" type="int" /><description>One message.</description></signal>
	</signals>
	<constants>
		<constant name="STATE_OPEN" value="1">Open.</constant>
	</constants>
</class>"#;
        let class = check_class(xml).unwrap();
        assert_eq!(class.name, "WebSocketServer");
        assert_eq!(class.members, 5);
        assert_eq!(class.undocumented, ["WebSocketServer.poll (method)", "WebSocketServer.bind_ip (property)"]);
    }

    #[test]
    fn a_class_without_descriptions_is_named() {
        let xml = r#"<class name="WebSocketClient"><brief_description /><description /></class>"#;
        assert_eq!(check_class(xml).unwrap().undocumented, ["WebSocketClient (class)"]);
    }
}
