//! `changeling fit` end to end: the overlay it writes loads, applies, and
//! scores exactly as the fit said (its train figures are `changeling eval`'s
//! with the overlay); folds are disjoint by account; and the held-out
//! figures of a fold do not depend on that fold's labels, so they were not
//! measured on what the fit saw.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::AtomicU64;

use changeling::data::ReadProgress;
use changeling::fit::{self, FitOptions, Prepared};
use changeling::plan::Plan;
use changeling::rules::layers::{self, RuleLayer};
use changeling::tune::{self, Loaded};
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

/// A small population with enough planted compromises to fit on.
fn synth(dir: &Path, seed: u64) -> PathBuf {
    let out = dir.join(format!("pop-{seed}"));
    let seed = seed.to_string();
    ok(&[
        "synth",
        "--accounts",
        "1200",
        "--days",
        "14",
        "--seed",
        &seed,
        "--compromise-rate",
        "0.06",
        "--lookalike-rate",
        "0.03",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    out
}

fn builtin_plan() -> Plan {
    let (set, diags) = layers::load(&[RuleLayer::Builtin], &Default::default());
    Plan::compile(&set.unwrap_or_else(|| panic!("{}", diags.render())))
}

fn prepare(dirs: &[&Path], plan: &Plan, options: &FitOptions) -> Prepared {
    let mut p = Prepared::new(plan, options);
    let projection = tune::union([plan.projection(), changeling::eval::projection()]);
    for dir in dirs {
        let loaded = Loaded::read(dir, projection.clone(), None, &ReadProgress::default()).unwrap();
        p.add(&dir.display().to_string(), loaded, plan, &AtomicU64::new(0));
    }
    p
}

#[test]
fn the_overlay_applies_and_scores_as_the_fit_said() {
    let dir = tempfile::tempdir().unwrap();
    let pop = synth(dir.path(), 11);
    let overlay = dir.path().join("overlay.toml");
    let (pop_s, overlay_s) = (pop.to_str().unwrap(), overlay.to_str().unwrap());
    let fitted = json(&ok(&["fit", "--data", pop_s, "-o", overlay_s, "--json", "--quiet"]));
    let d = &fitted["datasets"][0];
    for side in ["train", "held_out"] {
        assert!(d[side]["ece"].is_f64(), "{side} ECE reported: {d}");
        assert!(d[side]["roc_auc"].is_f64(), "{side} ROC AUC reported: {d}");
    }
    assert!(fitted["compromises"].as_u64().unwrap() > 20, "enough compromises to fit on: {fitted}");

    // The overlay parses, and is a layer like any other.
    let text = std::fs::read_to_string(&overlay).unwrap();
    assert!(text.contains("\n[overlay]\n") && text.contains("\"score.calibration.raw\" = ["), "{text}");
    ok(&["check", "builtin", overlay_s]);

    // Its scores are calibrated and differ from the shipped rules'.
    let eval = |rules: &[&str]| {
        let mut args = vec!["eval", "--data", pop_s, "--json", "--quiet"];
        for r in rules {
            args.extend(["--rules", r]);
        }
        json(&ok(&args))
    };
    let with = eval(&["builtin", overlay_s]);
    let without = eval(&["builtin"]);
    assert_ne!(with["calibration"], without["calibration"]);

    // Scored for real with the overlay, the data it was fitted to gives
    // exactly the fit's train figures: the fit's rescoring from kept hits
    // is the scorer's own.
    let train = &d["train"];
    assert_eq!(with["ranking"]["roc_auc"], train["roc_auc"]);
    assert_eq!(with["ranking"]["pr_auc"], train["pr_auc"]);
    assert_eq!(with["calibration"]["ece"], train["ece"]);
    let flagged: Vec<&Value> = with["by_tier"].as_array().unwrap().iter().map(|t| &t["false_positives"]).collect();
    let train_flagged: Vec<&Value> = train["benign_flagged"].as_array().unwrap().iter().collect();
    assert_eq!(flagged, train_flagged);
    let recall: Vec<&Value> = with["by_tier"].as_array().unwrap().iter().map(|t| &t["recall"]).collect();
    assert_eq!(recall, train["recall"].as_array().unwrap().iter().collect::<Vec<_>>());

    // And `score` applies the overlay's tiers to the calibrated scores it
    // writes.
    let high: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("\"tier.high.min_score\" = "))
        .expect("the overlay sets the high tier")
        .parse()
        .unwrap();
    let alerts = ok(&["score", "--data", pop_s, "--rules", "builtin", "--rules", overlay_s, "-o", "-", "--quiet"]);
    let alerts: Vec<Value> =
        String::from_utf8(alerts.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(alerts.iter().any(|a| a["tier"] == "high"));
    for a in &alerts {
        let score = a["score"].as_f64().unwrap();
        assert_eq!(a["tier"] == "high", score >= high, "{a}");
    }
}

#[test]
fn an_overlay_value_out_of_range_is_a_diagnostic() {
    let dir = tempfile::tempdir().unwrap();
    let overlay = dir.path().join("bad.toml");
    std::fs::write(&overlay, "[overlay]\n\"likes/lockstep.hit.weight\" = 1.5\n").unwrap();
    let o = changeling(&["check", "builtin", overlay.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("E006") && err.contains("likes/lockstep.hit.weight=1.5"), "{err}");
    std::fs::write(
        &overlay,
        "[overlay]\n\"score.calibration.raw\" = [0.5, 0.2]\n\"score.calibration.calibrated\" = [0.1, 0.2]\n",
    )
    .unwrap();
    let o = changeling(&["check", "builtin", overlay.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("strictly increasing"));
}

#[test]
fn folds_are_disjoint_and_held_out_figures_never_see_their_fold() {
    let dir = tempfile::tempdir().unwrap();
    let pop = synth(dir.path(), 12);
    let plan = builtin_plan();
    let options = FitOptions { folds: 4, ..FitOptions::default() };
    let p = prepare(&[&pop], &plan, &options);
    let fitted = fit::fit(&p, &options).unwrap();

    // Every account with hits is in exactly one fold.
    let folds: Vec<Vec<String>> = (0..4).map(|k| fit::fold_accounts(&p, 0, k)).collect();
    let mut all: Vec<&String> = folds.iter().flatten().collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "an account in two folds");
    assert!(folds.iter().all(|f| !f.is_empty()));

    // Relabel fold 0: its compromised accounts become benign. Everything a
    // held-out model of fold 0 saw is unchanged, so its scores must be too;
    // the model fitted on every account did see fold 0 and must move.
    let held = fit::held_out_scores(&p, &fitted, 0, 0);
    assert!(!held.is_empty());
    let labels = std::fs::read_to_string(pop.join("labels.jsonl")).unwrap();
    let fold0: std::collections::BTreeSet<&String> = folds[0].iter().collect();
    let mut flipped = 0;
    let relabelled: String = labels
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let actor = v["actor"].as_str().unwrap().to_string();
            if fold0.contains(&actor) && v["label"] == "compromised" {
                flipped += 1;
                format!("{{\"actor\":\"{actor}\",\"label\":\"benign\"}}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert!(flipped > 0, "fold 0 has compromised accounts");
    let other = dir.path().join("relabelled");
    std::fs::create_dir_all(&other).unwrap();
    for f in std::fs::read_dir(&pop).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), other.join(f.file_name())).unwrap();
    }
    std::fs::write(other.join("labels.jsonl"), relabelled).unwrap();
    // The same dataset position and account ids, so the same folds.
    let q = prepare(&[&other], &plan, &options);
    let refitted = fit::fit(&q, &options).unwrap();
    assert_eq!(fit::held_out_scores(&q, &refitted, 0, 0), held, "fold 0's held-out scores saw fold 0's labels");
    assert_ne!(refitted.model, fitted.model, "the model fitted on every account sees fold 0's labels");
    // The other folds' models did see fold 0: their held-out scores move.
    assert!((1..4).any(|k| fit::held_out_scores(&q, &refitted, 0, k) != fit::held_out_scores(&p, &fitted, 0, k)));
}
