//! Embeds the shipped rules (`rules/`, with their test cases) and the demo
//! dataset (`datasets/demo/`) in the binary, so that an installed
//! `changeling` runs from any directory. Writes `$OUT_DIR/embedded.rs`: two
//! lists of (path relative to its directory, bytes), in path order.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        let hidden = p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn list(name: &str, root: &Path, code: &mut String) {
    println!("cargo:rerun-if-changed={}", root.display());
    let mut found = Vec::new();
    files(root, &mut found);
    let _ = writeln!(code, "pub const {name}: &[(&str, &[u8])] = &[");
    for p in &found {
        println!("cargo:rerun-if-changed={}", p.display());
        let rel = p.strip_prefix(root).expect("below the root").to_string_lossy().replace('\\', "/");
        let _ = writeln!(code, "    ({rel:?}, include_bytes!({:?})),", p.display().to_string());
    }
    let _ = writeln!(code, "];");
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let mut code = String::new();
    list("RULES", &manifest.join("rules"), &mut code);
    list("DEMO", &manifest.join("datasets").join("demo"), &mut code);
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded.rs");
    std::fs::write(&out, code).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
}
