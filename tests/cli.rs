//! The `changeling` binary, end to end: determinism across thread counts,
//! diagnostics, bad data, exit codes. Golden outputs are insta snapshots.

use std::path::Path;
use std::process::{Command, Output};

fn changeling(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_changeling")).args(args).output().expect("the binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn output_is_byte_identical_for_any_thread_count() {
    for data in ["tests/fixtures/story", "datasets/demo"] {
        let one = changeling(&["score", "--data", data, "--threads", "1", "--quiet"]);
        assert!(one.status.success(), "{}", stderr(&one));
        assert!(!one.stdout.is_empty(), "{data}: no alerts at all");
        for n in ["2", "3", "8"] {
            let many = changeling(&["score", "--data", data, "--threads", n, "--quiet"]);
            assert!(many.status.success());
            assert!(one.stdout == many.stdout, "{data}: --threads 1 and --threads {n} differ");
        }
    }
}

#[test]
fn alerts_follow_the_contract() {
    let o = changeling(&["score", "--data", "tests/fixtures/story", "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    // The story writes several alerts, one of them high: a run that wrote
    // none would check nothing.
    assert!(text.lines().count() >= 3, "too few alerts to check:\n{text}");
    assert!(text.contains(r#""tier":"high""#), "no high alert:\n{text}");
    let mut hits = 0;
    let mut last: Option<(String, String)> = None;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = (v["actor"].as_str().unwrap().to_string(), v["start"].as_str().unwrap().to_string());
        if let Some(prev) = &last {
            assert!(prev <= &key, "alerts not sorted by actor, start");
        }
        last = Some(key);
        let score = v["score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&score));
        assert!(["high", "medium", "low"].contains(&v["tier"].as_str().unwrap()));
        for h in v["hits"].as_array().unwrap() {
            for k in ["rule", "ts", "action", "strength", "why"] {
                assert!(!h[k].is_null(), "hit without {k}: {h}");
            }
            assert!(h["ts"].as_str().unwrap().ends_with('Z'));
            hits += 1;
        }
    }
    assert!(hits >= 10, "only {hits} hits checked");
}

#[test]
fn check_points_at_a_typo_and_suggests_the_name() {
    let o = changeling(&["check", "tests/fixtures/rules-typo"]);
    assert_eq!(o.status.code(), Some(2));
    let text = stderr(&o);
    insta::assert_snapshot!("check_typo", text);
    assert!(text.contains("typo.toml:10:8"), "{text}");
    assert!(text.contains("did you mean `off_pattern`?"), "{text}");
}

#[test]
fn shipped_rules_check_clean() {
    let o = changeling(&["check"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
}

#[test]
fn explain_plan_shows_signals_states_and_columns() {
    let o = changeling(&["explain-plan"]);
    assert!(o.status.success());
    insta::assert_snapshot!("explain_plan", String::from_utf8(o.stdout).unwrap());
}

#[test]
fn bad_records_are_skipped_counted_and_located() {
    let o = changeling(&["score", "--data", "tests/fixtures/bad-data"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stderr(&o);
    assert!(text.contains("(3 skipped"), "{text}");
    let events = Path::new("tests/fixtures/bad-data/events.jsonl").display().to_string();
    assert!(text.contains(&format!("{events}: line 3: broken JSON")), "{text}");
    assert!(text.contains(&format!("{events}: line 4: missing required field `actor`")), "{text}");
    assert!(text.contains(&format!("{events}: line 5: field `ts`")), "{text}");

    let strict = changeling(&["score", "--data", "tests/fixtures/bad-data", "--strict"]);
    assert_eq!(strict.status.code(), Some(2));
    assert!(stderr(&strict).contains("line 3"), "{}", stderr(&strict));
}

#[test]
fn missing_dataset_is_an_error_not_a_panic() {
    let o = changeling(&["score", "--data", "tests/fixtures/no-such-dir"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no-such-dir"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"));
}

#[test]
fn fail_on_sets_exit_code_1() {
    let o = changeling(&["score", "--data", "tests/fixtures/story", "--quiet", "--fail-on", "high"]);
    assert_eq!(o.status.code(), Some(1));
    let o = changeling(&["score", "--data", "tests/fixtures/bad-data", "--quiet", "--fail-on", "high"]);
    assert_eq!(o.status.code(), Some(0));
    let o = changeling(&["score", "--data", "tests/fixtures/story", "--quiet", "--fail-on", "hihg"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn extreme_and_malformed_values_are_skipped_alike_whatever_rules_are_loaded() {
    let events = Path::new("tests/fixtures/bad-values/events.jsonl").display().to_string();
    let mut reports = Vec::new();
    for rules in ["builtin", "rules/follows/api-spree.toml"] {
        let o = changeling(&["score", "--data", "tests/fixtures/bad-values", "--rules", rules]);
        assert!(o.status.success(), "{rules}: {}", stderr(&o));
        let text = stderr(&o);
        assert!(text.contains("read       3 events (9 skipped"), "{rules}: {text}");
        assert!(!text.contains("panicked"), "{text}");
        reports.push(text.lines().filter(|l| l.contains(&events)).map(str::to_string).collect::<Vec<_>>());
    }
    assert_eq!(reports[0], reports[1], "the skipped records depend on the rules loaded");
    let text = reports[0].join("\n");
    assert!(text.contains(&format!("{events}: line 2: field `ts`: `-9223372036854775808` is outside 1970")), "{text}");
    assert!(text.contains("line 4: field `ts`: `1599660000000000` is outside"), "{text}");
    assert!(text.contains("(epoch microseconds?"), "{text}");
    assert!(text.contains("line 5: field `actor`: string is not Unicode text"), "{text}");
    assert!(text.contains("line 7: field `actor`: expected a string, found a list"), "{text}");
}

#[test]
fn durations_beyond_ten_years_are_errors_at_their_value() {
    let o = changeling(&["check", "tests/fixtures/rules-huge-duration"]);
    assert_eq!(o.status.code(), Some(2));
    let text = stderr(&o);
    assert!(text.contains("changeling.toml:8:8"), "{text}");
    assert!(text.contains("spree.toml:14:10"), "{text}");
    assert!(text.contains("spree.toml:15:12"), "{text}");
    assert!(text.contains("longer than the maximum of 3650d (ten years)"), "{text}");
    assert!(text.contains("3 errors"), "{text}");
}

#[test]
fn records_longer_than_the_maximum_are_skipped_and_located() {
    let dir = tempfile::tempdir().unwrap();
    let huge = "A".repeat(3 << 20);
    let jsonl = format!(
        "{}\n{{\"ts\":1599660000000,\"actor\":\"b\",\"action\":\"like\",\"target\":\"{huge}\"}}\n{}\n",
        r#"{"ts":1599660000000,"actor":"a","action":"like","target":"x"}"#,
        r#"{"ts":1599660001000,"actor":"c","action":"like","target":"x"}"#,
    );
    let csv = format!(
        "ts,actor,action,target\n1599660000000,a,like,xyz\n1599660000000,b,like,\"{huge}\n{huge}\"\n1599660001000,c,like,xyz\n"
    );
    // A quoted CSV cell still open past the maximum costs its first line,
    // and reading resumes on the next (docs/data.md), which is itself too
    // long here: two skipped.
    let cases = [
        ("events.jsonl", jsonl, 2, "read       2 events (1 skipped", "over the maximum of 1048576"),
        (
            "events.csv",
            csv,
            3,
            "read       2 events (2 skipped",
            "is not closed within the maximum record length of 1048576",
        ),
    ];
    for (name, text, line, read, why) in cases {
        let data = dir.path().join(name.replace('.', "-"));
        std::fs::create_dir_all(&data).unwrap();
        let file = data.join(name);
        std::fs::write(&file, text).unwrap();
        let o = changeling(&["score", "--data", data.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        let text = stderr(&o);
        assert!(text.contains(read), "{name}: {text}");
        let located = format!("{}: line {line}: ", file.display());
        assert!(text.contains(&located), "{name}: {text}");
        assert!(text.contains(why), "{name}: {text}");
        // Every record over a much lower maximum (in CSV the header row
        // too): the run fails, writing nothing. A higher one keeps all.
        let o = changeling(&["score", "--data", data.to_str().unwrap(), "--max-record-bytes", "22"]);
        assert_eq!(o.status.code(), Some(2), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains("over the maximum of 22"), "{name}: {}", stderr(&o));
        let o = changeling(&["score", "--data", data.to_str().unwrap(), "--max-record-bytes", "8MiB"]);
        assert!(stderr(&o).contains("read       3 events (0 skipped"), "{name}: {}", stderr(&o));
    }
}
