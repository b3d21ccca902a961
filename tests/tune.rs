//! Tuning tools end to end: every row of `changeling sweep` must equal a
//! separate `changeling score` + `changeling eval` with that setting written
//! into real rule files; `changeling eval` over several datasets must equal
//! the single-dataset evaluations; bad parameter paths and values must be
//! clear errors (exit code 2) naming the setting.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn changeling(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_changeling")).args(args).output().expect("the binary runs")
}

fn ok(args: &[&str]) -> Output {
    let o = changeling(args);
    assert!(o.status.success(), "changeling {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    o
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).expect("JSON on stdout")
}

/// A small synthetic population with planted compromises and look-alikes.
fn synth(dir: &Path, seed: u64) -> String {
    let out = dir.join(format!("pop-{seed}"));
    let out = out.to_str().unwrap();
    let seed = seed.to_string();
    ok(&[
        "synth",
        "--accounts",
        "300",
        "--days",
        "10",
        "--seed",
        &seed,
        "--compromise-rate",
        "0.05",
        "--lookalike-rate",
        "0.03",
        "--out",
        out,
        "--quiet",
    ]);
    out.to_string()
}

/// Copies `from` to `to`, recursively.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Replaces the one line of `file` that sets `key` (`key = ...`) by `new`,
/// whatever value the shipped file has.
fn edit(file: &Path, key: &str, new: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    let prefix = format!("{key} = ");
    let lines: Vec<&str> = text.lines().collect();
    let at: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].starts_with(&prefix)).collect();
    assert_eq!(at.len(), 1, "{}: `{key}` is not set exactly once", file.display());
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    out[at[0]] = new.to_string();
    std::fs::write(file, out.join("\n") + "\n").unwrap();
}

/// Replaces the `min_score` of the `low` tier (the last `min_score` line).
fn edit_low_tier(file: &Path, new: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let at = lines.iter().rposition(|l| l.starts_with("min_score = ")).expect("a tier");
    assert!(lines[..at].iter().rev().find(|l| l.starts_with("name = ")).is_some_and(|l| l.contains("\"low\"")));
    lines[at] = new.to_string();
    std::fs::write(file, lines.join("\n") + "\n").unwrap();
}

/// A report without what tells where it came from, and without notes
/// (a run in memory also gives the scorer's).
fn figures(report: &Value) -> Value {
    let mut r = report.clone();
    // `eval` adds its curves (and, with --list, its account lists); a
    // sweep's report has the figures only.
    for k in ["dataset", "alerts_file", "scored_with_rules", "summary", "notes", "curves", "accounts"] {
        r.as_object_mut().unwrap().remove(k);
    }
    r
}

#[test]
fn each_sweep_row_equals_a_separate_score_and_eval() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path(), 3);
    // A signal parameter (changes hits), a hit weight and a tier threshold
    // (only regroup them), and a config duration given unquoted. All but
    // the duration change the figures on this population.
    let history = [("3", "min_history = 3"), ("40", "min_history = 40")];
    let weight = [("0.4", "weight = 0.4"), ("1.0", "weight = 1.0")];
    let low = [("0.1", "min_score = 0.1"), ("0.3", "min_score = 0.3")];
    let gap = ("3h", "gap = \"3h\"");
    let sweep = ok(&[
        "sweep",
        "--data",
        &data,
        "--set",
        "likes/unexposed-off-pattern.off_pattern.min_history=3,40",
        "--set",
        "likes/unexposed-off-pattern.hit.weight=0.4,1.0",
        "--set",
        "tier.low.min_score=0.1,0.3",
        "--set",
        "incident.gap=3h",
        "--json",
        "--quiet",
    ]);
    let sweep = json(&sweep);
    let settings = sweep["settings"].as_array().unwrap();
    assert_eq!(settings.len(), 8);
    assert_eq!(sweep["passes"], 2, "only min_history changes the hits");

    let mut i = 0;
    let mut distinct = std::collections::BTreeSet::new();
    for (h, h_line) in history {
        for (w, w_line) in weight {
            for (l, l_line) in low {
                let row = &settings[i];
                i += 1;
                assert_eq!(row["setting"], i);
                let values = &row["values"];
                assert_eq!(values["likes/unexposed-off-pattern.off_pattern.min_history"], h.parse::<u64>().unwrap());
                assert_eq!(values["likes/unexposed-off-pattern.hit.weight"], w.parse::<f64>().unwrap());
                assert_eq!(values["tier.low.min_score"], l.parse::<f64>().unwrap());
                assert_eq!(values["incident.gap"], gap.0);

                let rules = tmp.path().join(format!("rules-{i}"));
                copy_dir(Path::new("rules"), &rules);
                let rule = rules.join("likes/unexposed-off-pattern.toml");
                edit(&rule, "min_history", h_line);
                edit(&rule, "weight", w_line);
                edit_low_tier(&rules.join("changeling.toml"), l_line);
                edit(&rules.join("changeling.toml"), "gap", gap.1);
                let rules = rules.to_str().unwrap();
                let alerts = tmp.path().join(format!("alerts-{i}.jsonl"));
                let alerts = alerts.to_str().unwrap();
                ok(&["score", "--data", &data, "--rules", rules, "--out", alerts, "--quiet"]);
                let eval = json(&ok(&["eval", "--data", &data, "--alerts", alerts, "--rules", rules, "--json"]));

                let ours = &row["datasets"][0];
                assert_eq!(figures(&ours["report"]), figures(&eval), "setting #{i}: {values}");
                distinct.insert(figures(&eval).to_string());
                // With one dataset the row's figures are that dataset's.
                assert_eq!(row["worst"], ours["summary"], "setting #{i}");
                let high = &eval["by_tier"][0];
                assert_eq!(row["worst"]["recall"][0], high["recall"]);
                assert_eq!(row["worst"]["benign_flagged"][0], high["false_positives"]);
                assert_eq!(row["worst"]["roc_auc"], eval["ranking"]["roc_auc"]);
            }
        }
    }
    assert_eq!(distinct.len(), 8, "every setting changes the figures, or this test proves little");
    // The Pareto front is listed and marked consistently.
    let front: Vec<u64> = sweep["pareto"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert!(!front.is_empty());
    for s in settings {
        assert_eq!(s["pareto"].as_bool().unwrap(), front.contains(&s["setting"].as_u64().unwrap()));
    }
}

#[test]
fn sweep_output_is_deterministic_and_marks_the_front() {
    let args = [
        "sweep",
        "--data",
        "tests/fixtures/story",
        "--set",
        "likes/unexposed-off-pattern.hit.weight=0.2,0.5",
        "--set",
        "tier.high.min_score=0.8,0.95",
        "--quiet",
    ];
    let a = ok(&args);
    let b = ok(&args);
    assert_eq!(a.stdout, b.stdout);
    let two = ok(&[&args[..], &["--json", "--threads", "2"]].concat());
    for threads in ["1", "3"] {
        let other = ok(&[&args[..], &["--json", "--threads", threads]].concat());
        assert!(other.stdout == two.stdout, "--threads {threads} and --threads 2 differ");
    }
    let text = String::from_utf8(a.stdout).unwrap();
    assert!(text.contains("parameter  likes/unexposed-off-pattern.hit.weight"), "{text}");
    // A front at every tier, and a PR AUC column.
    for tier in ["high", "medium", "low"] {
        assert!(text.contains(&format!("Pareto front at {tier} (*)")), "{text}");
        assert!(text.contains(&format!("front {tier}")), "{text}");
    }
    assert!(text.contains("ROC AUC  PR AUC"), "{text}");
    let rows: Vec<&str> = text.lines().filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit())).collect();
    assert_eq!(rows.len(), 4, "{text}");
    assert!(rows.iter().any(|r| r.trim_end().ends_with('*')), "{text}");
    let v: Value = serde_json::from_slice(&two.stdout).unwrap();
    let by_tier = v["pareto_by_tier"].as_array().unwrap();
    assert_eq!(by_tier.iter().map(|f| f["tier"].as_str().unwrap()).collect::<Vec<_>>(), ["high", "medium", "low"]);
    assert_eq!(by_tier[0]["settings"], v["pareto"]);
    for f in by_tier {
        let on: Vec<u64> = f["settings"].as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).collect();
        assert!(!on.is_empty(), "an empty front at {}", f["tier"]);
        for s in v["settings"].as_array().unwrap() {
            let listed = s["pareto_tiers"].as_array().unwrap().iter().any(|t| *t == f["tier"]);
            assert_eq!(listed, on.contains(&s["setting"].as_u64().unwrap()), "setting {}", s["setting"]);
        }
    }
    assert!(v["settings"][0]["worst"]["pr_auc"].is_number());
}

#[test]
fn eval_over_several_datasets_equals_the_single_evaluations() {
    let tmp = tempfile::tempdir().unwrap();
    let a = synth(tmp.path(), 4);
    let b = synth(tmp.path(), 5);
    let many = json(&ok(&["eval", "--data", &a, "--data", &b, "--json", "--quiet"]));
    let many = many.as_array().unwrap();
    assert_eq!(many.len(), 3, "two datasets and the worst row");
    for (i, d) in [&a, &b].into_iter().enumerate() {
        let one = json(&ok(&["eval", "--data", d, "--json", "--quiet"]));
        assert_eq!(one["dataset"], d.as_str());
        assert_eq!(one["scored_with_rules"], "builtin");
        assert_eq!(many[i]["dataset"], d.as_str());
        let mut m = many[i].clone();
        m.as_object_mut().unwrap().remove("summary");
        assert_eq!(m, one, "dataset {d}");

        // Scored in memory = scored to a file and read back.
        let alerts = tmp.path().join(format!("alerts-{i}.jsonl"));
        let alerts = alerts.to_str().unwrap();
        ok(&["score", "--data", d, "--out", alerts, "--quiet"]);
        let from_file = json(&ok(&["eval", "--data", d, "--alerts", alerts, "--json"]));
        assert_eq!(figures(&from_file), figures(&one), "dataset {d}");
    }
    let worst = &many[2]["worst"];
    let recall = |v: &Value| v["summary"]["recall"][0].as_f64().unwrap();
    assert_eq!(worst["recall"][0].as_f64().unwrap(), recall(&many[0]).min(recall(&many[1])));
    let fp = |v: &Value| v["summary"]["benign_flagged"][0].as_u64().unwrap();
    assert_eq!(worst["benign_flagged"][0].as_u64().unwrap(), fp(&many[0]).max(fp(&many[1])));

    // With alerts files, one per dataset, in order.
    let alerts: Vec<PathBuf> = (0..2).map(|i| tmp.path().join(format!("alerts-{i}.jsonl"))).collect();
    let (x, y) = (alerts[0].to_str().unwrap(), alerts[1].to_str().unwrap());
    let files = json(&ok(&["eval", "--data", &a, "--data", &b, "--alerts", x, "--alerts", y, "--json"]));
    assert_eq!(figures(&files[1]), figures(&many[1]));
    assert_eq!(files[1]["alerts_file"], y);

    let text = String::from_utf8(ok(&["eval", "--data", &a, "--data", &b, "--quiet"]).stdout).unwrap();
    assert!(text.lines().any(|l| l.trim_start().starts_with("worst ")), "{text}");
    assert!(text.contains("worst: the worst of each column across the datasets"), "{text}");

    let o = changeling(&["eval", "--data", &a, "--data", &b, "--alerts", x]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("one alerts file per dataset"));
}

/// Runs a sweep over the story fixture that must fail before reading it;
/// returns its stderr.
fn failing_sweep(sets: &[&str]) -> String {
    let mut args = vec!["sweep", "--data", "tests/fixtures/story", "--quiet"];
    for s in sets {
        args.extend(["--set", s]);
    }
    let o = changeling(&args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{sets:?}: {err}");
    assert!(o.stdout.is_empty());
    err
}

#[test]
fn bad_paths_are_errors_naming_the_setting_and_the_choices() {
    let err = failing_sweep(&["likes/lockstpe.hit.weight=0.5"]);
    assert!(err.contains("error[E018]: no rule has id `likes/lockstpe`"), "{err}");
    assert!(err.contains("--> --set:1:1"), "{err}");
    assert!(err.contains("1 | likes/lockstpe.hit.weight=0.5"), "{err}");
    assert!(err.contains("did you mean `likes/lockstep`?"), "{err}");

    let err = failing_sweep(&["likes/lockstep.lockstp.window=5m"]);
    assert!(err.contains("rule `likes/lockstep` has no signal of kind `lockstp`"), "{err}");
    assert!(err.contains("expected one of `lockstep`, `hit`, `events`"), "{err}");

    let err = failing_sweep(&["likes/lockstep.lockstep.windw=5m"]);
    assert!(err.contains("error[E002]: unknown key `windw` in signal `lockstep`"), "{err}");
    assert!(err.contains("did you mean `window`?"), "{err}");

    let err = failing_sweep(&["tier.hihg.min_score=0.9"]);
    assert!(err.contains("no [[tier]] has name = \"hihg\""), "{err}");
    assert!(err.contains("did you mean `high`?"), "{err}");

    let err = failing_sweep(&["incident.gpa=3h"]);
    assert!(err.contains("unknown key `gpa` in [incident]") && err.contains("did you mean `gap`?"), "{err}");
}

#[test]
fn bad_values_get_the_ordinary_diagnostic_at_the_setting() {
    let err = failing_sweep(&["likes/lockstep.hit.weight=0.5,1.5"]);
    assert!(err.contains("error[E006]: `weight` is 1.5, but must be between 0 and 1"), "{err}");
    assert!(err.contains("1 | likes/lockstep.hit.weight=1.5"), "{err}");
    assert!(err.contains("note: --set replaces `weight = 0.8` at <builtin>/likes/lockstep.toml:"), "{err}");
    assert!(err.contains("do not load under 1 of 2 settings: #2 (likes/lockstep.hit.weight=1.5)"), "{err}");

    let err = failing_sweep(&["incident.gap=soon"]);
    assert!(err.contains("error[E007]") && err.contains("incident.gap=\"soon\""), "{err}");

    // Tiers out of order: reported in the file, naming the setting.
    let err = failing_sweep(&["tier.high.min_score=0.3"]);
    assert!(err.contains("error[E012]"), "{err}");
    assert!(err.contains("was loaded with --set tier.high.min_score=0.3"), "{err}");

    // Not PATH=VALUE at all: a usage error.
    let o = changeling(&["sweep", "--data", "tests/fixtures/story", "--set", "likes/lockstep.hit.weight"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("PATH=VALUE"));
}
