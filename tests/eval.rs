//! `changeling eval` end to end on the story dataset (tests/fixtures/story,
//! see its README): score it, then measure the alerts against its labels.
//! `liu` (style `story`) must be found at `high`, and none of the four
//! look-alike controls may be a false positive there.

use std::path::Path;
use std::process::{Command, Output};

fn changeling(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_changeling")).args(args).output().expect("the binary runs")
}

fn score_story(dir: &Path) -> String {
    let alerts = dir.join("alerts.jsonl").display().to_string();
    let o = changeling(&["score", "--data", "tests/fixtures/story", "--out", &alerts, "--quiet"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    alerts
}

#[test]
fn story_eval_finds_liu_at_high_without_false_positives() {
    let tmp = tempfile::tempdir().unwrap();
    let alerts = score_story(tmp.path());
    let o = changeling(&["eval", "--data", "tests/fixtures/story", "--alerts", &alerts, "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");

    let high = &v["by_tier"][0];
    assert_eq!(high["tier"], "high");
    assert_eq!(high["recall"], 1.0, "liu is found at high");
    assert_eq!(high["precision"], 1.0);
    assert_eq!(high["true_positives"], 1);
    assert_eq!(high["false_positives"], 0);

    let story = high["compromised_styles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["style"] == "story")
        .expect("style `story` is broken down");
    assert_eq!(story["recall"], 1.0);

    let lookalikes = high["benign_styles"].as_array().unwrap();
    let names: Vec<&str> = lookalikes.iter().map(|s| s["style"].as_str().unwrap()).collect();
    assert_eq!(names, ["accidental-tap", "new-interest", "regret", "search"]);
    for s in lookalikes {
        assert_eq!(s["fp_rate"], 0.0, "{s}");
    }

    assert_eq!(v["ranking"]["roc_auc"], 1.0);
    assert_eq!(v["ranking"]["pr_auc"], 1.0);
    assert_eq!(v["rules"]["tier"], "high");
}

#[test]
fn text_and_json_are_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let alerts = score_story(tmp.path());
    for extra in [&[][..], &["--json"][..]] {
        let mut args = vec!["eval", "--data", "tests/fixtures/story", "--alerts", &alerts];
        args.extend_from_slice(extra);
        let a = changeling(&args);
        let b = changeling(&args);
        assert!(a.status.success());
        assert_eq!(a.stdout, b.stdout);
    }
}

#[test]
fn a_malformed_alert_line_is_an_error_naming_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let alerts = tmp.path().join("alerts.jsonl");
    std::fs::write(
        &alerts,
        "{\"actor\":\"liu\",\"start\":\"2020-09-09T13:58:00Z\",\"end\":\"2020-09-09T16:10:00Z\",\"score\":0.9,\"tier\":\"high\",\"hits\":[]}\n{\"actor\":\n",
    )
    .unwrap();
    let alerts = alerts.display().to_string();
    let o = changeling(&["eval", "--data", "tests/fixtures/story", "--alerts", &alerts]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{alerts}:2: not an alert")), "{err}");
}
