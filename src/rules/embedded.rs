//! The shipped rules and the demo dataset, compiled into the binary.
//!
//! `build.rs` embeds every file of the repository's `rules/` (the engine
//! configuration, the rule files and their test cases under `tests/`) and
//! of `datasets/demo/`. They are the defaults of every command, so that an
//! installed binary runs from any directory; `changeling rules export`
//! writes the rules out for a team to copy and edit. Nothing here is read
//! from disk at run time.

mod files {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

use std::io;
use std::path::{Path, PathBuf};

/// What users write for the built-in rules where a rules directory is
/// expected (`--rules builtin`); `./builtin` names a directory.
pub const BUILTIN: &str = "builtin";

/// How diagnostics name a built-in file: `<builtin>/likes/lockstep.toml`.
pub fn display_path(relative: &str) -> PathBuf {
    PathBuf::from(format!("<{BUILTIN}>/{relative}"))
}

/// Every shipped rules file, as (path relative to `rules/`, text), in path
/// order: `changeling.toml`, the rule files, and `tests/...`.
pub fn rule_files() -> impl Iterator<Item = (&'static str, &'static str)> {
    files::RULES.iter().map(|(p, bytes)| (*p, std::str::from_utf8(bytes).expect("shipped rules are UTF-8 (build.rs)")))
}

/// Every file of the demo dataset, as (name, bytes).
pub fn demo_files() -> &'static [(&'static str, &'static [u8])] {
    files::DEMO
}

/// Writes the shipped rules (configuration, rule files, test cases) below
/// `dir`, creating directories as needed. Refuses to replace a file that
/// exists unless `force`; returns the files written.
pub fn export(dir: &Path, force: bool) -> io::Result<Vec<PathBuf>> {
    if !force {
        let existing: Vec<String> = files::RULES
            .iter()
            .map(|(p, _)| dir.join(p))
            .filter(|p| p.exists())
            .map(|p| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} file(s) exist already (first: {}); choose an empty directory or pass --force to replace them",
                    existing.len(),
                    existing[0]
                ),
            ));
        }
    }
    let mut written = Vec::new();
    for (p, bytes) in files::RULES {
        let path = dir.join(p);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        crate::output::write_file(&path, bytes)?;
        written.push(path);
    }
    Ok(written)
}

/// Writes the demo dataset into `dir` (which must exist).
pub fn write_demo(dir: &Path) -> io::Result<()> {
    for (name, bytes) in files::DEMO {
        // A scratch copy in a temporary directory, not an output.
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_rules_are_embedded_with_their_tests() {
        let names: Vec<&str> = rule_files().map(|(p, _)| p).collect();
        assert!(names.contains(&"changeling.toml"), "{names:?}");
        assert!(names.contains(&"likes/lockstep.toml"), "{names:?}");
        assert!(names.iter().any(|n| n.starts_with("tests/")), "{names:?}");
        assert!(demo_files().iter().any(|(n, _)| n.starts_with("events.")));
    }

    #[test]
    fn export_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let written = export(dir.path(), false).unwrap();
        assert_eq!(written.len(), rule_files().count());
        let e = export(dir.path(), false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert!(e.to_string().contains("--force"), "{e}");
        export(dir.path(), true).unwrap();
    }
}
