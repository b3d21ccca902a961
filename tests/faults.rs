//! Fault injection (issue 12): a full disk under `--out` and under `--tmp`,
//! a signal at each phase of a run, SIGKILL, an early stop of the reader.
//! Every case ends in a clear exit code (2 for an error, 130, 143 or 129
//! for SIGINT, SIGTERM or SIGHUP), with no spill directory left and the
//! previous output intact or completely replaced, never shortened.
//!
//! The full disk is injected (`CHANGELING_FAULT_OUT_FULL_AFTER`,
//! `CHANGELING_FAULT_SPILL_FULL_AFTER`; see `changeling::output::fault`)
//! or real (`/dev/full`), so the tests need no root and no tmpfs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_changeling"))
}

/// Waits for `child` at most `secs`; kills it and fails the test after.
fn wait_with_timeout(mut child: Child, secs: u64) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the run did not end within {secs} s: hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run(cmd: &mut Command, secs: u64) -> Output {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("the binary runs");
    wait_with_timeout(child, secs)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Names in `dir`.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// A synthetic dataset large enough for a run of a few seconds when it
/// spills (generated once per test binary).
fn big_dataset() -> PathBuf {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let o =
            run(bin().args(["synth", "--accounts", "15000", "--days", "30", "--out"]).arg(dir.path().join("d")), 120);
        assert!(o.status.success(), "{}", stderr(&o));
        dir
    })
    .path()
    .join("d")
}

#[test]
fn a_full_device_under_out_is_an_error_naming_it() {
    let o = run(bin().args(["score", "-q", "--format", "jsonl", "--out", "/dev/full"]), 60);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("/dev/full"), "{}", stderr(&o));
    assert!(stderr(&o).contains("No space left on device"), "{}", stderr(&o));
}

#[test]
fn a_full_disk_under_out_keeps_the_previous_output() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["alerts.jsonl", "alerts.csv", "alerts.parquet"] {
        let out = dir.path().join(name);
        std::fs::write(&out, "previous\n").unwrap();
        let o = run(bin().args(["score", "-q", "--out"]).arg(&out).env("CHANGELING_FAULT_OUT_FULL_AFTER", "4096"), 60);
        assert_eq!(o.status.code(), Some(2), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains(&out.display().to_string()), "{name}: the error names the file: {}", stderr(&o));
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "previous\n", "{name}: previous output lost");
    }
    assert_eq!(names(dir.path()), ["alerts.csv", "alerts.jsonl", "alerts.parquet"], "temporary files left");
}

/// `synth --out` and `rules export` write their files the way alerts are
/// written: a failed write leaves each earlier file as it was and no
/// shortened one.
#[test]
fn a_full_disk_under_synth_and_rules_export_keeps_the_previous_files() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    std::fs::write(&events, "previous\n").unwrap();
    let o = run(
        bin()
            .args(["synth", "--quiet", "--accounts", "300", "--days", "5", "--out"])
            .arg(dir.path())
            .env("CHANGELING_FAULT_OUT_FULL_AFTER", "20000"),
        60,
    );
    assert_eq!(o.status.code(), Some(2), "synth: {}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&events).unwrap(), "previous\n", "synth: the earlier events file changed");
    assert_eq!(names(dir.path()), ["events.jsonl"], "synth: files left behind");

    let rules = dir.path().join("rules");
    let o = run(bin().args(["rules", "export"]).arg(&rules).env("CHANGELING_FAULT_OUT_FULL_AFTER", "3000"), 60);
    assert_eq!(o.status.code(), Some(2), "rules export: {}", stderr(&o));
    let mut shortened = Vec::new();
    for (path, bytes) in changeling::rules::embedded::rule_files() {
        if std::fs::read_to_string(rules.join(path)).is_ok_and(|written| written != bytes) {
            shortened.push(path);
        }
    }
    assert!(shortened.is_empty(), "rules export left shortened files: {shortened:?}");
}

#[test]
fn a_full_disk_under_tmp_stops_the_run_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("alerts.jsonl");
    let spill = tmp.path().join("spill");
    std::fs::create_dir(&spill).unwrap();
    std::fs::write(&out, "previous\n").unwrap();
    let o = run(
        bin()
            .args(["score", "-q", "--data", "datasets/demo", "--memory", "1MiB", "--tmp"])
            .arg(&spill)
            .arg("--out")
            .arg(&out)
            .env("CHANGELING_FAULT_SPILL_FULL_AFTER", "200000"),
        60,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("No space left on device"), "{}", stderr(&o));
    assert!(stderr(&o).contains(&spill.display().to_string()), "the error names the directory: {}", stderr(&o));
    assert_eq!(names(&spill), Vec::<String>::new(), "spill files left behind");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "previous\n");
}

/// Sends `signal` (a `kill` name) to the run after `after`, then checks
/// the exit code, the spill directory and the output.
fn interrupt(signal: &str, after: Duration, reference: &[u8]) {
    let tmp = tempfile::tempdir().unwrap();
    let spill = tmp.path().join("spill");
    std::fs::create_dir(&spill).unwrap();
    let out = tmp.path().join("alerts.jsonl");
    std::fs::write(&out, "previous\n").unwrap();
    let child = bin()
        .args(["score", "-q", "--threads", "2", "--memory", "1MiB", "--data"])
        .arg(big_dataset())
        .arg("--tmp")
        .arg(&spill)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let pid = child.id().to_string();
    let _ = Command::new("kill").args([&format!("-{signal}"), &pid]).status();
    let o = wait_with_timeout(child, 60);
    let written = std::fs::read(&out).unwrap();
    let what = format!("{signal} after {after:?}");
    assert!(written == b"previous\n" || written == reference, "{what}: a shortened or mixed output");
    if signal == "KILL" {
        // Nothing can clean up after SIGKILL; the final path is still
        // whole (old or new).
        return;
    }
    assert_eq!(names(&spill), Vec::<String>::new(), "{what}: spill files left behind");
    if o.status.success() {
        // The run ended before the signal.
        assert_eq!(written, reference, "{what}");
        return;
    }
    let code = match signal {
        "INT" => 130,
        "TERM" => 143,
        "HUP" => 129,
        _ => unreachable!(),
    };
    assert_eq!(o.status.code(), Some(code), "{what}: {}", stderr(&o));
    assert_eq!(written, b"previous\n", "{what}");
    assert_eq!(names(tmp.path()), ["alerts.jsonl", "spill"], "{what}: a temporary output left");
}

#[test]
fn signals_at_each_phase_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let reference_path = dir.path().join("reference.jsonl");
    let o = run(bin().args(["score", "-q", "--data"]).arg(big_dataset()).arg("--out").arg(&reference_path), 120);
    assert!(o.status.success(), "{}", stderr(&o));
    let reference = std::fs::read(&reference_path).unwrap();
    // Reading, partitioning, sorting, scoring, writing: the delays spread
    // over a run of a few seconds.
    for (signal, ms) in [("INT", 150), ("TERM", 600), ("HUP", 1200), ("INT", 2000), ("TERM", 2800), ("HUP", 3600)] {
        interrupt(signal, Duration::from_millis(ms), &reference);
    }
}

#[test]
fn sigkill_never_leaves_a_partial_file_at_the_final_path() {
    let dir = tempfile::tempdir().unwrap();
    let reference_path = dir.path().join("reference.jsonl");
    let o = run(bin().args(["score", "-q", "--data"]).arg(big_dataset()).arg("--out").arg(&reference_path), 120);
    assert!(o.status.success(), "{}", stderr(&o));
    let reference = std::fs::read(&reference_path).unwrap();
    for ms in [400, 2500, 3900] {
        interrupt("KILL", Duration::from_millis(ms), &reference);
    }
}

#[test]
fn a_strict_stop_in_a_large_file_does_not_hang() {
    // A bad line near the start of a file of many blocks: the reader must
    // not wait forever on a consumer that stopped (it did, at 0 % CPU).
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    std::fs::create_dir(&data).unwrap();
    let mut text = String::from("{\"ts\": \"not a time\", \"actor\": \"a\", \"action\": \"like\"}\n");
    let line = "{\"ts\": 1600000000000, \"actor\": \"acct-0000\", \"action\": \"like\", \"target\": \"t-1\"}\n";
    while text.len() < 48 << 20 {
        text.push_str(line);
    }
    std::fs::write(data.join("events.jsonl"), text).unwrap();
    // One thread: batches of two 4 MiB blocks, so 48 MiB is plenty to fill
    // the channel.
    let o = run(bin().args(["score", "-q", "--strict", "--threads", "1", "--data"]).arg(&data), 60);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("line 1"), "{}", stderr(&o));
}
