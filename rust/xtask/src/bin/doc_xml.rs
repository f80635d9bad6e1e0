//! Prints the class reference XML that gdext's `register-docs` hands to the editor for each of
//! the extension's classes (what the editor's help shows), one class after another, each
//! starting with its `<?xml` line. `cargo xtask docs` runs it and checks the result; built only
//! with the feature `doc-xml`, so the other tasks do not compile the extension into xtask.

// The classes register their docs through the extension crate being linked in.
use websocket_rs as _;

fn main() {
    for xml in godot::docs::__gather_xml_docs() {
        println!("{xml}");
    }
}
