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
    run_alerts_with(Path::new("rules"), data, tmp, tune)
}

/// [`run_alerts`] with the rules in `rules`.
fn run_alerts_with(
    rules: &Path,
    data: &str,
    tmp: &Path,
    tune: impl Fn(&mut changeling::run::RunOptions),
) -> (Vec<u8>, Option<usize>) {
    use changeling::run::{RunOptions, RunProgress, run};
    let (set, diags) = changeling::rules::load(rules);
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
    let cx = changeling::alerts::Context::new(&plan, &info, &out.strings);
    out.incidents.for_each_chunk(|chunk| changeling::alerts::write_jsonl(&mut bytes, &chunk, cx).map(drop)).unwrap();
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

/// A partition asks the item phase only about its events that some
/// reader of the item indexes reads them at (lockstep's own actions, or the
/// actions the rules with `feed_exposure` select). Here `feed_exposure`
/// reads the repost index at reposts: `b`, whom `a` follows, reposted x
/// before `a` did, so `a`'s repost of x is explained; `c`'s repost of y is
/// not.
/// Spilled in any number of partitions, with the rule selecting reposts
/// and with it selecting every action, the alerts are the in-memory ones.
#[test]
fn item_questions_follow_the_readers_actions() {
    let data = tempfile::tempdir().unwrap();
    let t0 = 1_600_000_000_000i64;
    let mut events = String::new();
    for (minute, actor, action, target) in [
        (0, "b", "repost", "x"),
        (1, "a", "repost", "x"),
        (2, "c", "repost", "y"),
        (3, "a", "like", "z"),
        (4, "c", "like", "z"),
        (5, "d", "login", ""),
    ] {
        let target = if target.is_empty() { String::new() } else { format!(r#","target":"{target}""#) };
        events.push_str(&format!(
            "{{\"ts\":{},\"actor\":\"{actor}\",\"action\":\"{action}\"{target}}}\n",
            t0 + minute * 60_000
        ));
    }
    std::fs::write(data.path().join("events.jsonl"), events).unwrap();
    let follows = "{\"follower\":\"a\",\"followee\":\"b\"}\n{\"follower\":\"c\",\"followee\":\"e\"}\n";
    std::fs::write(data.path().join("follows.jsonl"), follows).unwrap();
    let items = ["x", "y", "z"].map(|i| format!("{{\"id\":\"{i}\",\"author\":\"p{i}\"}}\n")).concat();
    std::fs::write(data.path().join("items.jsonl"), items).unwrap();
    let data_path = data.path().to_str().unwrap();
    for actions in ["actions = [\"repost\"]", ""] {
        let rules = tempfile::tempdir().unwrap();
        std::fs::write(rules.path().join("changeling.toml"), "[[tier]]\nname = \"low\"\nmin_score = 0.01\n").unwrap();
        let rule =
            format!("id = \"t/unexposed\"\ntitle = \"t\"\n[events]\n{actions}\n[[signal]]\nkind = \"feed_exposure\"\n");
        std::fs::write(rules.path().join("unexposed.toml"), rule).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let (in_memory, parts) = run_alerts_with(rules.path(), data_path, tmp.path(), |_| {});
        assert_eq!(parts, None);
        let text = String::from_utf8(in_memory.clone()).unwrap();
        let mut hits = Vec::new();
        for line in text.lines() {
            let incident: serde_json::Value = serde_json::from_str(line).unwrap();
            for h in incident["hits"].as_array().unwrap() {
                hits.push(format!("{} {} {}", incident["actor"], h["action"], h["target"]).replace('"', ""));
            }
        }
        assert!(hits.contains(&"c repost y".to_string()), "c's repost is unexplained ({actions}): {hits:?}");
        assert!(!hits.contains(&"a repost x".to_string()), "a's repost is explained ({actions}): {hits:?}");
        for n in [1, 2, 3] {
            let (spilled, parts) =
                run_alerts_with(rules.path(), data_path, tmp.path(), |o| o.force_partitions = Some(n));
            assert!(parts.is_some(), "the run was partitioned");
            assert!(spilled == in_memory, "{n} partitions ({actions}): {}", String::from_utf8_lossy(&spilled));
        }
    }
    assert_eq!(entries(data.path()), 3, "nothing written beside the data");
}

/// Incidents spilled in sorted runs (a 1 MiB budget spills them after a
/// few partitions) are merged back as they are written: every format, with
/// and without a triage filter, gives the in-memory run's file byte for
/// byte, and the summary counts the same.
#[test]
fn spilled_incidents_write_every_format_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let summary = |o: &std::process::Output| -> serde_json::Value {
        let mut v: serde_json::Value = serde_json::from_slice(&o.stderr).expect("a JSON summary");
        for timing in ["read_secs", "score_secs", "total_secs", "partitions", "incident_runs", "notes"] {
            v.as_object_mut().unwrap().remove(timing);
        }
        v
    };
    for (ext, filter) in [("jsonl", None), ("csv", Some("medium")), ("parquet", None), ("parquet", Some("high"))] {
        let filter: Vec<&str> = filter.map(|t| vec!["--min-tier", t]).unwrap_or_default();
        let run = |name: &str, extra: &[&str]| {
            let path = out.path().join(format!("{name}.{ext}"));
            let args = [&["--json", "--out", path.to_str().unwrap()], &filter[..], extra].concat();
            let o = Command::new(env!("CARGO_BIN_EXE_changeling"))
                .args(["score", "--data", "datasets/demo"])
                .args(args)
                .output()
                .expect("the binary runs");
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            (std::fs::read(&path).unwrap(), o)
        };
        let (want, in_memory) = run("in-memory", &[]);
        let (got, spilled) = run("spilled", &["--memory", "1MiB", "--tmp", tmp.path().to_str().unwrap()]);
        let runs: serde_json::Value = serde_json::from_slice(&spilled.stderr).unwrap();
        assert!(runs["incident_runs"].as_u64().unwrap() > 1, "incidents were spilled: {runs}");
        assert!(want == got, "{ext} {filter:?}: spilled incidents wrote a different file");
        assert_eq!(summary(&in_memory), summary(&spilled), "{ext} {filter:?}");
    }
    assert_eq!(entries(tmp.path()), 0, "spill files left behind");
}
