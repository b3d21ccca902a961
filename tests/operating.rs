//! Operating changeling every day (issue 20), end to end through the
//! binary: datasets not overwritten by accident, outputs named as users
//! name them, messages that do not leak temporary directories.

use std::path::Path;
use std::process::{Command, Output};

fn changeling(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_changeling")).args(args).output().expect("the binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(args: &[&str]) -> Output {
    let o = changeling(args);
    assert!(o.status.success(), "changeling {args:?}: {}", stderr(&o));
    o
}

/// A tiny synthetic population in `dir`.
fn synth(dir: &Path, seed: &str, more: &[&str]) -> Output {
    let out = dir.to_str().unwrap();
    let mut args = vec!["synth", "--accounts", "100", "--days", "2", "--seed", seed, "--out", out, "--quiet"];
    args.extend(more);
    changeling(&args)
}

#[test]
fn synth_refuses_to_write_over_a_dataset_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let pop = tmp.path().join("pop");
    let first = synth(&pop, "1", &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let events = pop.join("events.jsonl");
    let before = std::fs::read(&events).unwrap();

    let again = synth(&pop, "2", &[]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    let err = stderr(&again);
    assert!(err.contains("already holds a dataset") && err.contains("events.jsonl"), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(&events).unwrap(), before, "the first dataset was changed");

    let forced = synth(&pop, "2", &["--force"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert_ne!(std::fs::read(&events).unwrap(), before, "--force wrote nothing");

    // A directory that exists without a dataset is fine.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join("notes.txt"), "mine").unwrap();
    let o = synth(&empty, "1", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn dev_null_needs_no_format() {
    let o = ok(&["score", "--data", "tests/fixtures/story", "-o", "/dev/null", "--quiet"]);
    assert!(o.stdout.is_empty());
    ok(&["score", "--data", "tests/fixtures/story", "-o", "/dev/null", "--format", "parquet", "--quiet"]);
}

#[test]
fn a_format_the_extension_contradicts_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x.csv");
    let o =
        changeling(&["score", "--data", "tests/fixtures/story", "--format", "parquet", "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("names a .csv file but --format is parquet"), "{err}");
    assert!(!out.exists(), "a file was written");
    // The same format, or an extension that names none, is fine.
    ok(&["score", "--data", "tests/fixtures/story", "--format", "csv", "-o", out.to_str().unwrap(), "--quiet"]);
    let txt = tmp.path().join("x.txt");
    ok(&["score", "--data", "tests/fixtures/story", "--format", "jsonl", "-o", txt.to_str().unwrap(), "--quiet"]);
}

#[test]
fn messages_about_the_demo_do_not_name_its_temporary_directory() {
    let o = changeling(&["explain", "--actor", "nobody-at-all"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("the built-in demo dataset"), "{err}");
    assert!(!err.contains("changeling-demo"), "{err}");
}
