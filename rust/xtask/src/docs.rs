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

/// Checks that every class and member of the extension has a description in the editor's help.
///
/// Which classes and members exist comes from `godot --doctool DIR --gdextension-docs` (Godot's
/// own list, from ClassDB). Their descriptions come from what gdext's `register-docs` hands to
/// the editor (`editor_help_load_xml_from_utf8_chars`), printed by the `doc-xml` helper: the
/// doctool does not include those (its XML for extension classes is an empty skeleton, meant
/// for hand-written `doc_classes/`), so it alone cannot tell. Prints every undocumented
/// `Class.member` and `PASS docs::...` or `FAIL docs::...`.
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
    let mut skeleton = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        skeleton.push(parse_class(&text).map_err(|e| format!("{}: {e}", file.display()))?);
    }
    let registered = registered_docs()?;
    std::fs::write(out.join("registered.xml"), registered.iter().map(|c| c.source.as_str()).collect::<String>())
        .map_err(|e| format!("cannot write registered.xml: {e}"))?;

    let undocumented = undocumented(&skeleton, &registered);
    let members: usize = skeleton.iter().map(|c| c.members.len()).sum();
    let mut names: Vec<&str> = skeleton.iter().map(|c| c.name.as_str()).collect();
    names.sort();
    let classes_missing = undocumented.iter().filter(|u| u.ends_with("(class)")).count();
    let members_missing = undocumented.len() - classes_missing;
    println!(
        "    {}: {} of {members} members and {} of {} classes described (doctool skeleton and registered docs in {})",
        names.join(", "),
        members - members_missing,
        names.len() - classes_missing,
        names.len(),
        out.display()
    );
    if undocumented.is_empty() {
        println!("PASS docs::every_member_described ({members} members of {} classes)", names.len());
    } else {
        println!(
            "FAIL docs::every_member_described ({members_missing} of {members} members and {classes_missing} of {} classes without a description):",
            names.len()
        );
        for name in &undocumented {
            println!("    - {name}");
        }
    }
    Ok(Report { undocumented })
}

/// The class reference gdext registers with the editor, one entry per class, from the `doc-xml`
/// helper (built with the extension as a library; its debug build's dependencies are reused).
fn registered_docs() -> Result<Vec<ClassDocs>, String> {
    let mut cargo = Command::new(env!("CARGO"));
    cargo.current_dir(crate::root()).args(["run", "--quiet", "-p", "xtask", "--features", "doc-xml", "--bin", "doc-xml"]);
    let output = cargo.output().map_err(|e| format!("cannot run {cargo:?}: {e}"))?;
    if !output.status.success() {
        return Err(format!("{cargo:?} failed:\n{}", String::from_utf8_lossy(&output.stderr)));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    text.split("<?xml")
        .filter(|piece| !piece.trim().is_empty())
        .map(|piece| parse_class(&format!("<?xml{piece}")))
        .collect()
}

/// `Class (class)` or `Class.member (kind)` for each class or member of `skeleton` that has no
/// description in `registered`.
fn undocumented(skeleton: &[ClassDocs], registered: &[ClassDocs]) -> Vec<String> {
    let mut missing = Vec::new();
    for class in skeleton {
        let docs = registered.iter().find(|r| r.name == class.name);
        if docs.is_none_or(|d| d.text.is_empty()) {
            missing.push(format!("{} (class)", class.name));
        }
        for member in &class.members {
            let described = docs.is_some_and(|d| {
                d.members.iter().any(|m| m.kind == member.kind && m.name == member.name && !m.text.is_empty())
            });
            if !described {
                missing.push(format!("{}.{} ({})", class.name, member.name, member.kind));
            }
        }
    }
    missing
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

/// One class of a class reference XML.
struct ClassDocs {
    name: String,
    /// The brief and long description, joined (the editor shows a class with either).
    text: String,
    /// Methods, properties, signals, constants and the like.
    members: Vec<Member>,
    /// The XML it was read from.
    source: String,
}

struct Member {
    kind: &'static str,
    name: String,
    text: String,
}

/// Reads one class of a class reference: its descriptions and every method, property, signal
/// and constant with its description.
fn parse_class(xml: &str) -> Result<ClassDocs, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| format!("not XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "class" {
        return Err(format!("root element is <{}>, not <class>", root.tag_name().name()));
    }
    let name = root.attribute("name").unwrap_or("?").to_string();
    let text_of = |node: Option<roxmltree::Node>| node.and_then(|n| n.text()).unwrap_or("").trim().to_string();
    let text = [text_of(child(root, "brief_description")), text_of(child(root, "description"))].join(" ").trim().to_string();
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
    let mut members = Vec::new();
    for (list, item, kind, nested) in kinds {
        let Some(list) = child(root, list) else { continue };
        for node in list.children().filter(|c| c.has_tag_name(item)) {
            let text = if nested { text_of(child(node, "description")) } else { text_of(Some(node)) };
            members.push(Member { kind, name: node.attribute("name").unwrap_or("?").to_string(), text });
        }
    }
    Ok(ClassDocs { name, text, members, source: xml.to_string() })
}

/// Opens the editor on the sample project under Xvfb, shows the help page of `WebSocketServer`
/// and writes what the editor window shows to `png` (and, scrolled to the description of
/// `listen`, to `<png stem>-listen.png`). The editor plugin that does it lives in
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
    std::fs::write(project.join("project.godot"), screenshot_project("websocket_rs help screenshot", "help_screenshot")).map_err(|e| format!("cannot write project.godot: {e}"))?;
    godot::import_project(godot, &project)?;

    let shot = project.join("help.png");
    let mut command = Command::new(&xvfb_run);
    command
        .args(["--auto-servernum", "--server-args=-screen 0 1280x1024x24"])
        .arg(godot)
        .args(["--editor", "--path"])
        .arg(&project)
        .args(["--audio-driver", "Dummy", "--rendering-method", "gl_compatibility", "--rendering-driver", "opengl3", "--resolution", "1280x1024"])
        .args(["--", &format!("--help-screenshot={}", shot.display())]);
    let run = process::run_bounded(&mut command, Duration::from_secs(180), process::Echo::Quiet)?;
    if !shot.exists() {
        return Err(format!("the editor wrote no screenshot (exit {:?}):\n{}", run.status, run.output));
    }
    if let Some(dir) = png.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    // The class page, then the same page scrolled to the description of `listen`.
    let listen = |p: &Path| p.with_file_name(format!("{}-listen.png", p.file_stem().and_then(|s| s.to_str()).unwrap_or("help")));
    for (from, to) in [(shot.clone(), png.to_path_buf()), (listen(&shot), listen(png))] {
        std::fs::copy(&from, &to).map_err(|e| format!("cannot write {}: {e}", to.display()))?;
        println!("xtask: wrote {}", to.display());
    }
    Ok(())
}

/// The `project.godot` of a scratch project for an editor screenshot: the sample's renderer,
/// and the editor plugin `addons/<plugin>/` enabled (it takes the picture).
pub(crate) fn screenshot_project(name: &str, plugin: &str) -> String {
    format!(
        "config_version=5

[application]

config/name=\"{name}\"
config/features=PackedStringArray(\"4.6\")

[editor_plugins]

enabled=PackedStringArray(\"res://addons/{plugin}/plugin.cfg\")

[rendering]

renderer/rendering_method=\"gl_compatibility\"
"
    )
}

#[cfg(unix)]
pub(crate) fn link_dir(target: &Path, link: &Path) -> Result<(), String> {
    std::os::unix::fs::symlink(target, link).map_err(|e| format!("cannot link {}: {e}", link.display()))
}

#[cfg(not(unix))]
pub(crate) fn link_dir(_target: &Path, _link: &Path) -> Result<(), String> {
    Err("the editor screenshot runs on Linux (Xvfb) only".into())
}

/// `xvfb-run`, with Debian's `xvfb` package installed when missing (as root or through
/// password-less sudo).
pub(crate) fn ensure_xvfb() -> Result<PathBuf, String> {
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
    crate::peers::apt_get_install(&["xvfb", "xauth"])?;
    find().ok_or_else(|| "xvfb was installed but xvfb-run is not on PATH".to_string())
}

#[cfg(test)]
mod tests {
    use super::{parse_class, undocumented};

    const SKELETON: &str = r#"<?xml version="1.0" encoding="UTF-8" ?>
<class name="WebSocketServer" inherits="MultiplayerPeerExtension">
	<brief_description>
	</brief_description>
	<description>
	</description>
	<methods>
		<method name="listen"><return type="int" /><description>
		</description></method>
		<method name="poll"><return type="void" /><description>
		</description></method>
	</methods>
	<members>
		<member name="bind_ip" type="String" setter="set_bind_ip" getter="get_bind_ip" default="&quot;*&quot;">
		</member>
	</members>
	<signals>
		<signal name="data_received"><param index="0" name="id" type="int" /><description>
		</description></signal>
	</signals>
	<constants>
		<constant name="STATE_OPEN" value="1">
		</constant>
	</constants>
</class>"#;

    #[test]
    fn members_missing_from_the_registered_docs_are_named() {
        let registered = r#"<?xml version="1.0" encoding="UTF-8"?>
<class name="WebSocketServer" inherits="MultiplayerPeerExtension">
<brief_description>A server.</brief_description>
<description></description>
<methods><method name="listen"><return type="GodotError" /><description>
  Starts listening.
  </description></method></methods>
<signals><signal name="data_received"><description>One message.</description></signal></signals>
<members><member name="bind_ip" type="GString" default=""></member></members>
<constants><constant name="STATE_OPEN" value="1">Open.</constant></constants>
</class>"#;
        let skeleton = parse_class(SKELETON).unwrap();
        assert_eq!(skeleton.members.len(), 5);
        let missing = undocumented(&[skeleton], &[parse_class(registered).unwrap()]);
        assert_eq!(missing, ["WebSocketServer.poll (method)", "WebSocketServer.bind_ip (property)"]);
    }

    #[test]
    fn a_class_gdext_registered_nothing_for_is_named_with_every_member() {
        let missing = undocumented(&[parse_class(SKELETON).unwrap()], &[]);
        assert_eq!(missing.len(), 6);
        assert_eq!(missing[0], "WebSocketServer (class)");
    }
}
