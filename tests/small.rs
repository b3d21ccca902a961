//! Small faults of issue 21, item 11: each a behaviour at the edge of a
//! command (JUnit characters, `report -o -`, an unwritable `--out`, files
//! left by a killed run, messages).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_changeling"));
    c.env_remove("CHANGELING_RULES");
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the binary runs")
}

/// Whether every character of `s` is one XML 1.0 allows.
fn xml_chars_only(s: &str) -> Result<(), char> {
    match s.chars().find(|&c| {
        !matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..='\u{10ffff}')
    }) {
        Some(c) => Err(c),
        None => Ok(()),
    }
}

/// A rules directory with the shipped new-device rule and a case file.
fn rules_with_case(dir: &Path, case: &str) -> PathBuf {
    let rules = dir.join("rules");
    std::fs::create_dir_all(rules.join("tests")).unwrap();
    std::fs::copy("rules/likes/new-device.toml", rules.join("new-device.toml")).unwrap();
    std::fs::write(rules.join("tests/new-device.toml"), case).unwrap();
    rules
}

#[test]
fn junit_xml_is_well_formed_whatever_the_case_names_hold() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = rules_with_case(
        tmp.path(),
        "# Cases named with characters XML does not allow.\nrule = \"likes/new-device\"\n\n\
         [[case]]\nname = \"non-characters \\uFFFE and \\uFFFF, a bell \\u0007\"\n[case.data]\n\
         events = '''\n{\"ts\":\"2020-01-01T00:00:00Z\",\"actor\":\"a\",\"action\":\"like\",\"target\":\"x\"}\n'''\n",
    );
    let xml = tmp.path().join("junit.xml");
    let o = run(bin().arg("test").arg(&rules).arg("--junit").arg(&xml));
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    let doc = std::fs::read_to_string(&xml).unwrap();
    assert_eq!(xml_chars_only(&doc), Ok(()), "{doc}");
    assert!(doc.contains("non-characters \\u{fffe} and \\u{ffff}, a bell \\u{7}"), "{doc}");
}

#[test]
fn report_to_dash_writes_the_page_to_stdout() {
    let tmp = tempfile::tempdir().unwrap();
    let alerts = tmp.path().join("alerts.jsonl");
    let o = run(bin().args(["score", "-q", "--data", "tests/fixtures/story", "-o"]).arg(&alerts));
    assert!(o.status.success());
    let cwd = tmp.path().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    let o = run(bin().arg("report").arg("--alerts").arg(&alerts).args(["-o", "-"]).current_dir(&cwd));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let page = text(&o.stdout);
    assert!(
        page.starts_with("<!DOCTYPE html>") && page.trim_end().ends_with("</html>"),
        "{}",
        &page[..page.len().min(200)]
    );
    assert!(!cwd.join("-").exists(), "a file named `-` was written");
    assert!(text(&o.stderr).contains("written to stdout"), "{}", text(&o.stderr));
}

#[test]
fn an_unwritable_out_is_found_before_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-dir");
    // The dataset does not exist either: the output is checked first, so
    // the error is the output's.
    let out = missing.join("alerts.jsonl");
    let o = run(bin().args(["score", "-q", "--data"]).arg(tmp.path().join("no-data")).arg("-o").arg(&out));
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains(&out.display().to_string()) && !err.contains("no-data"), "{err}");

    let page = missing.join("report.html");
    let o = run(bin().args(["report", "--alerts"]).arg(tmp.path().join("no-alerts.jsonl")).arg("-o").arg(&page));
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains(&page.display().to_string()) && !err.contains("no-alerts"), "{err}");

    // A directory given as the output file.
    let o = run(bin().args(["score", "-q", "--data"]).arg(tmp.path().join("no-data")).arg("-o").arg(tmp.path()));
    assert_eq!(o.status.code(), Some(2));
    assert!(!text(&o.stderr).contains("no-data"), "{}", text(&o.stderr));

    // `test --junit`: before any case runs.
    let junit = missing.join("junit.xml");
    let o = run(bin().args(["test", "--junit"]).arg(&junit));
    assert_ne!(o.status.code(), Some(0));
    assert!(text(&o.stdout).is_empty(), "cases ran first:\n{}", text(&o.stdout));
    assert!(text(&o.stderr).contains(&junit.display().to_string()), "{}", text(&o.stderr));
    assert!(
        std::fs::read_dir(tmp.path()).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".tmp"))
    );
}

/// The id of a process that has ended.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    assert!(!Path::new(&format!("/proc/{pid}")).exists() || !Path::new("/proc/self").exists());
    pid
}

/// The pid of a process that has ended and ours, or `None` (said) where
/// there is no /proc to tell live processes from dead ones.
fn dead_and_live_pids() -> Option<(u32, u32)> {
    if !Path::new("/proc/self").exists() {
        eprintln!("skipped: no /proc to tell live processes from dead ones");
        return None;
    }
    Some((dead_pid(), std::process::id()))
}

#[test]
fn spill_and_demo_directories_of_killed_runs_are_removed_by_the_next_run() {
    let Some((dead, live)) = dead_and_live_pids() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let make = |name: String| {
        let d = tmp.path().join(name);
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/part-0"), b"spilled").unwrap();
        d
    };
    let dead_spill = make(format!("changeling-spill-{dead}-0"));
    let live_spill = make(format!("changeling-spill-{live}-3"));
    let dead_demo = make(format!("changeling-demo-{dead}-x1y2z3"));
    let live_demo = make(format!("changeling-demo-{live}-a1b2c3"));
    let other = make("changeling-spill-notapid".into());
    // A run that spills (the story at the smallest budget) under --tmp,
    // with the demo dataset's copy under TMPDIR.
    let o = run(bin()
        .args(["score", "-q", "--memory", "1MiB", "--tmp"])
        .arg(tmp.path())
        .env("TMPDIR", tmp.path())
        .stdout(std::process::Stdio::null()));
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(!dead_spill.exists(), "the spill directory of a dead process is left");
    assert!(!dead_demo.exists(), "the demo copy of a dead process is left");
    for kept in [&live_spill, &live_demo, &other] {
        assert!(kept.exists(), "{} was removed", kept.display());
    }
    let left: Vec<String> =
        std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left.len(), 3, "{left:?}");
}

/// The temporary output files that a run killed with SIGKILL leaves beside
/// its destination are removed by the next run writing there, when their
/// process is gone; those of live runs and of other destinations stay.
#[test]
fn temporary_outputs_of_killed_runs_are_removed_by_the_next_run() {
    let Some((dead, live)) = dead_and_live_pids() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let make = |name: String| {
        let p = tmp.path().join(name);
        std::fs::write(&p, b"{\"half\": ").unwrap();
        p
    };
    let dead_temp = make(format!(".alerts.jsonl.changeling-{dead}-0.tmp"));
    let live_temp = make(format!(".alerts.jsonl.changeling-{live}-2.tmp"));
    let other_dest = make(format!(".other.jsonl.changeling-{dead}-0.tmp"));
    let out = tmp.path().join("alerts.jsonl");
    let o = run(bin().args(["score", "-q", "--data", "tests/fixtures/story", "-o"]).arg(&out));
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(!dead_temp.exists(), "the temporary output of a dead process is left");
    for kept in [&live_temp, &other_dest, &out] {
        assert!(kept.exists(), "{} was removed", kept.display());
    }
}

#[test]
fn a_typo_in_one_rule_is_not_an_unknown_rule_for_another() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules");
    let o = run(bin().args(["rules", "export"]).arg(&rules));
    assert!(o.status.success(), "{}", text(&o.stderr));
    // likes/removed-suspicious-like refers to likes/unexposed-off-pattern
    // (after_hit), which now has a typo.
    let file = rules.join("likes/unexposed-off-pattern.toml");
    let t = std::fs::read_to_string(&file).unwrap();
    assert!(t.contains("kind = \"feed_exposure\""));
    std::fs::write(&file, t.replacen("kind = \"feed_exposure\"", "kind = \"feed_exposur\"", 1)).unwrap();
    let o = run(bin().arg("check").arg(&rules));
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("error[E005]: unknown signal kind `feed_exposur`"), "{err}");
    assert!(!err.contains("E017"), "a misleading unknown-rule error:\n{err}");
    assert!(err.contains("1 error, "), "{err}");
}

#[test]
fn explain_never_prints_a_year_past_9999() {
    for (around, window) in [("9999-12-31T00:00:00Z", "3650d"), ("1970-01-01T00:00:00Z", "3650d")] {
        let o = run(bin().args([
            "explain",
            "--data",
            "tests/fixtures/story",
            "--actor",
            "liu",
            "--around",
            around,
            "--window",
            window,
        ]));
        assert!(o.status.success(), "{}", text(&o.stderr));
        let out = text(&o.stdout);
        assert!(
            !out.contains("10009") && !out.contains("-3650") && !out.contains("1960"),
            "{}",
            &out[..out.len().min(600)]
        );
        assert!(
            out.contains("9999-12-31T23:59:59.999Z") || out.contains("1970-01-01T00:00:00Z"),
            "{}",
            &out[..out.len().min(600)]
        );
    }
}

/// A dataset of a few accounts' likes and one account's `heavy` events:
/// `distinct` different ones, each written `copies` times.
fn heavy_dataset(dir: &Path, distinct: usize, copies: usize) -> PathBuf {
    let data = dir.join(format!("heavy-{distinct}-{copies}"));
    std::fs::create_dir_all(&data).unwrap();
    let mut s = String::new();
    for i in 0..200 {
        s.push_str(&format!(
            "{{\"ts\":{},\"actor\":\"a{}\",\"action\":\"like\",\"target\":\"t-{}\"}}\n",
            1_600_000_000_000i64 + i * 60_000,
            i % 7,
            i % 13
        ));
    }
    for i in 0..distinct {
        let line = format!(
            "{{\"ts\":{},\"actor\":\"heavy\",\"action\":\"like\",\"target\":\"t-1\"}}\n",
            1_600_000_000_000i64 + i as i64
        );
        for _ in 0..copies {
            s.push_str(&line);
        }
    }
    std::fs::write(data.join("events.jsonl"), s).unwrap();
    data
}

#[test]
fn the_heavy_partition_note_counts_events_not_repeated_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let note = "could not be split below a worker's";
    // One event written 30,000 times: deduplicated, it is light.
    let data = heavy_dataset(tmp.path(), 1, 30_000);
    let o = run(bin().args(["score", "--memory", "1MiB", "--data"]).arg(&data).stdout(std::process::Stdio::null()));
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("29,999 duplicates dropped"), "{err}");
    assert!(!err.contains(note), "a heavy partition claimed for one event:\n{err}");
    // 5,000 distinct events of one account: heavy indeed, and said.
    let data = heavy_dataset(tmp.path(), 5_000, 1);
    let o = run(bin().args(["score", "--memory", "1MiB", "--data"]).arg(&data).stdout(std::process::Stdio::null()));
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains(note), "{err}");
}

#[test]
fn messages_for_huge_floats_bad_regexes_and_a_tmp_file_say_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    let rule = std::fs::read_to_string("rules/likes/new-device.toml").unwrap().replace(
        "actions = [\"like\", \"repost\"]",
        "actions = [\"like\", \"repost\"]\nwhere = [{ field = \"client\", matches = \"ab(c\" }, \
         { field = \"client\", matches = \"(a{1000}){1000}\" }, { field = \"lat\", ge = 1e400 }]",
    );
    std::fs::write(rules.join("x.toml"), rule.replace("weight = 0.3", "weight = -1e400")).unwrap();
    let o = run(bin().arg("check").arg(&rules));
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2));
    for want in [
        "`matches` is not a valid regex: unclosed group at character 3 of the pattern",
        "`matches` is not a valid regex: it compiles to more than 10 MiB (the size limit)",
        "`ge` must be a finite number: this one is infinite, or too large for a float",
        "`weight` must be a finite number: this one is minus infinite, or too large for a float",
    ] {
        assert!(err.contains(want), "no `{want}` in:\n{err}");
    }
    assert!(!err.contains("found a float"), "{err}");

    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let o = run(bin().args(["score", "-q", "--memory", "1MiB", "--data", "tests/fixtures/story", "--tmp"]).arg(&file));
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains("--tmp") && err.contains("not a directory"), "{err}");
}

#[test]
fn a_rule_that_can_never_fire_is_e016() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    let base = std::fs::read_to_string("rules/likes/new-device.toml").unwrap();
    let with = |filter: &str| {
        base.replace(
            "actions = [\"like\", \"repost\"]",
            &format!("actions = [\"like\", \"repost\"]\nwhere = [{filter}]"),
        )
    };
    std::fs::write(rules.join("never.toml"), with("{ field = \"action\", eq = \"follow\" }")).unwrap();
    let o = run(bin().arg("check").arg(&rules));
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("error[E016]: this rule can never fire: none of its [events] actions (like, repost)"),
        "{err}"
    );
    assert!(err.contains("never.toml:16:"), "{err}");
    // A test some action passes is fine.
    for ok in ["{ field = \"action\", eq = \"repost\" }", "{ field = \"action\", not_in = [\"like\"] }"] {
        std::fs::write(rules.join("never.toml"), with(ok)).unwrap();
        let o = run(bin().arg("check").arg(&rules));
        assert!(o.status.success(), "{ok}: {}", text(&o.stderr));
    }
}
