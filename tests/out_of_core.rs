//! The partitioned (out-of-core) path gives byte-identical alerts to the
//! in-memory path, and leaves no spill files behind, also on error.

use std::path::Path;
use std::process::Command;

fn score(data: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_changeling"))
        .args(["score", "--quiet", "--data"])
        .arg(data)
        .args(extra)
        .output()
        .expect("the binary runs")
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn spilling_gives_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp_arg = tmp.path().to_str().unwrap();
    for data in ["tests/fixtures/story", "datasets/demo"] {
        let in_memory = score(Path::new(data), &[]);
        assert!(in_memory.status.success());
        for threads in ["1", "3"] {
            let spilled = score(Path::new(data), &["--memory", "1MiB", "--tmp", tmp_arg, "--threads", threads]);
            assert!(spilled.status.success(), "{}", String::from_utf8_lossy(&spilled.stderr));
            assert!(in_memory.stdout == spilled.stdout, "{data}: spilled output differs (threads {threads})");
        }
    }
    assert_eq!(entries(tmp.path()), 0, "spill files left behind");
}

#[test]
fn spilling_reports_partitions() {
    let tmp = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_changeling"))
        .args(["score", "--data", "tests/fixtures/story", "--memory", "1MiB", "--tmp"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("spilled"), "{err}");
}

#[test]
fn spill_files_are_removed_on_error() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    // Many good records, then a bad one: with --strict the run fails after
    // it has started spilling.
    let mut text = String::new();
    for i in 0..20_000 {
        text.push_str(&format!(
            r#"{{"ts":{},"actor":"a{}","action":"like","target":"i{}"}}"#,
            i * 1000,
            i % 97,
            i % 13
        ));
        text.push('\n');
    }
    text.push_str("{broken\n");
    std::fs::write(data.path().join("events.jsonl"), text).unwrap();
    let o = score(data.path(), &["--memory", "1MiB", "--strict", "--tmp", tmp.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("line 20001"), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(entries(tmp.path()), 0, "spill files left behind after an error");
}

/// Alerts of a run through the library, with `tune` applied to the options.
fn run_alerts(data: &str, tmp: &Path, tune: impl Fn(&mut changeling::run::RunOptions)) -> (Vec<u8>, Option<usize>) {
    use changeling::run::{RunOptions, RunProgress, run};
    let (set, diags) = changeling::rules::load(Path::new("rules"));
    let set = set.unwrap_or_else(|| panic!("{}", diags.render()));
    let plan = changeling::plan::Plan::compile(&set);
    let info = changeling::alerts::RuleInfo::of_set(&set);
    let mut opts = RunOptions {
        read: changeling::data::ReadOptions { projection: Some(plan.projection()), ..Default::default() },
        memory: 8 << 30,
        tmp: tmp.to_path_buf(),
        force_partitions: None,
        force_split_before_scoring: false,
    };
    tune(&mut opts);
    let out = run(Path::new(data), &plan, &opts, &RunProgress::default()).unwrap();
    let mut bytes = Vec::new();
    changeling::alerts::write_jsonl(
        &mut bytes,
        &out.accounts,
        changeling::alerts::Context::new(&plan, &info, &out.strings),
    )
    .unwrap();
    (bytes, out.partitions)
}

/// A partition too large for its share of the budget is split again before
/// sorting (pass A) and before scoring (pass B); the alerts do not change.
#[test]
fn partitions_split_again_give_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let (in_memory, parts) = run_alerts("datasets/demo", tmp.path(), |_| {});
    assert_eq!(parts, None);
    // One partition, far over a 1 MiB budget: pass A must split it.
    let (split_a, parts) = run_alerts("datasets/demo", tmp.path(), |o| {
        o.memory = 1 << 20;
        o.force_partitions = Some(1);
    });
    assert!(parts.unwrap() > 1, "the partition was split");
    assert!(in_memory == split_a, "output differs after splitting in pass A");
    // Four partitions, each split again before scoring.
    let (split_b, parts) = run_alerts("datasets/demo", tmp.path(), |o| {
        o.force_partitions = Some(4);
        o.force_split_before_scoring = true;
    });
    assert!(parts.unwrap() > 4, "partitions were split before scoring");
    assert!(in_memory == split_b, "output differs after splitting in pass B");
    assert_eq!(entries(tmp.path()), 0, "spill files left behind");
}

/// Impressions are partitioned by account with the events in a spilled
/// run: on the story with every like shown first, the partitioned output
/// equals the in-memory one, and the impressions do change it.
#[test]
fn impressions_follow_their_accounts_into_partitions() {
    let data = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir("tests/fixtures/story").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            std::fs::copy(&path, data.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    // Every like was shown to its account when it was made.
    let events = std::fs::read_to_string("tests/fixtures/story/events.jsonl").unwrap();
    let mut impressions = String::new();
    for line in events.lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        if e["action"] == "like" {
            let line = serde_json::json!({"actor": e["actor"], "item": e["target"], "ts": e["ts"]});
            impressions.push_str(&format!("{line}\n"));
        }
    }
    std::fs::write(data.path().join("impressions.jsonl"), impressions).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let without = score(Path::new("tests/fixtures/story"), &[]);
    let in_memory = score(data.path(), &[]);
    assert!(in_memory.status.success());
    assert!(in_memory.stdout != without.stdout, "impressions should change the alerts");
    for threads in ["1", "2"] {
        let args = ["--memory", "1MiB", "--tmp", tmp.path().to_str().unwrap(), "--threads", threads];
        let spilled = score(data.path(), &args);
        assert!(spilled.status.success(), "{}", String::from_utf8_lossy(&spilled.stderr));
        assert!(in_memory.stdout == spilled.stdout, "spilled output differs with impressions (threads {threads})");
    }
    assert_eq!(entries(tmp.path()), 0, "spill files left behind");
}
