//! The analyst's and the researcher's commands end to end: built-in rules
//! and rule layers, triage output, `explain`, `test`, `diff`, `report` and
//! `eval` of Parquet alerts.

use std::path::Path;
use std::process::{Command, Output};

fn run_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_changeling"));
    c.args(args).current_dir(dir).env_remove("CHANGELING_RULES");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("the binary runs")
}

fn changeling(args: &[&str]) -> Output {
    run_in(Path::new("."), args, &[])
}

fn ok(args: &[&str]) -> Output {
    let o = changeling(args);
    assert!(o.status.success(), "changeling {args:?}: {}", stderr(&o));
    o
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn alerts(text: &str) -> Vec<serde_json::Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

const STORY: &str = "tests/fixtures/story";

#[test]
fn the_binary_runs_from_any_directory_with_its_own_rules_and_demo() {
    let elsewhere = tempfile::tempdir().unwrap();
    let o = run_in(elsewhere.path(), &["score", "--quiet"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let here = ok(&["score", "--data", "datasets/demo", "--quiet"]);
    assert!(o.stdout == here.stdout, "the built-in demo and rules give the repository's alerts");
    let o = run_in(elsewhere.path(), &["check"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("builtin: 13 rules OK"), "{}", stderr(&o));
}

#[test]
fn a_missing_rules_path_says_what_to_pass() {
    let o = changeling(&["score", "--data", STORY, "--rules", "no/such/rules"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("rules `no/such/rules`: no such file or directory; pass --rules DIR"), "{e}");
    assert!(e.contains("changeling rules export DIR"), "{e}");
    let o = run_in(Path::new("."), &["check"], &[("CHANGELING_RULES", "gone")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("(from CHANGELING_RULES)"), "{}", stderr(&o));
}

#[test]
fn layers_replace_rules_by_id_and_the_environment_names_them() {
    let team = tempfile::tempdir().unwrap();
    std::fs::write(
        team.path().join("lockstep.toml"),
        "id = \"likes/lockstep\"\ntitle = \"Team lockstep\"\ntags = [\"team\"]\nversion = 7\n[events]\nactions = [\"like\"]\n[[signal]]\nkind = \"lockstep\"\nmin_accounts = 50\n",
    )
    .unwrap();
    let team_dir = team.path().to_str().unwrap();
    let list = |o: Output| -> Vec<serde_json::Value> { serde_json::from_str(&stdout(&o)).unwrap() };
    let both = list(ok(&["rules", "list", "--json", "builtin", team_dir]));
    assert_eq!(both.len(), 13);
    let lockstep = both.iter().find(|r| r["id"] == "likes/lockstep").unwrap();
    assert_eq!((lockstep["title"].as_str(), lockstep["version"].as_u64()), (Some("Team lockstep"), Some(7)));
    let env = std::env::join_paths(["builtin", team_dir]).unwrap();
    let o = run_in(Path::new("."), &["rules", "list", "--json"], &[("CHANGELING_RULES", env.to_str().unwrap())]);
    assert_eq!(list(o), both);
    let alone = list(ok(&["rules", "list", "--json", team_dir]));
    assert_eq!(alone.len(), 1);
}

#[test]
fn output_formats_come_from_the_extension_or_format() {
    let dir = tempfile::tempdir().unwrap();
    let out = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    // An unknown extension is an error, not JSON under another name.
    let o = changeling(&["score", "--data", STORY, "--quiet", "-o", &out("alerts.txt")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot tell the format from the extension `.txt`"), "{}", stderr(&o));
    assert!(!dir.path().join("alerts.txt").exists());
    // `-o -` is stdout.
    let jsonl = ok(&["score", "--data", STORY, "--quiet"]).stdout;
    let o = run_in(
        dir.path(),
        &["score", "--data", &std::fs::canonicalize(STORY).unwrap().to_string_lossy(), "--quiet", "-o", "-"],
        &[],
    );
    assert_eq!(o.stdout, jsonl);
    assert!(!dir.path().join("-").exists());
    // CSV by extension: a header and one row per incident.
    ok(&["score", "--data", STORY, "--quiet", "-o", &out("alerts.csv")]);
    let csv = std::fs::read_to_string(dir.path().join("alerts.csv")).unwrap();
    let mut r = csv::Reader::from_reader(csv.as_bytes());
    assert_eq!(r.headers().unwrap().iter().collect::<Vec<_>>()[..5], ["actor", "start", "end", "score", "tier"]);
    assert_eq!(r.records().count(), alerts(&stdout_of(&jsonl)).len());
    // Per hit, to stdout.
    let o = ok(&["score", "--data", STORY, "--quiet", "--format", "csv", "--csv-rows", "hit"]);
    let hits: usize = alerts(&stdout_of(&jsonl)).iter().map(|a| a["hits"].as_array().unwrap().len()).sum();
    let mut r = csv::Reader::from_reader(o.stdout.as_slice());
    assert!(r.headers().unwrap().iter().any(|h| h == "title"));
    assert_eq!(r.records().count(), hits);
    // Parquet by extension, read back by eval.
    ok(&["score", "--data", STORY, "--quiet", "-o", &out("alerts.parquet")]);
    assert!(std::fs::read(dir.path().join("alerts.parquet")).unwrap().starts_with(b"PAR1"));
}

fn stdout_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn hits_carry_the_rules_title_severity_tags_and_version() {
    let text = stdout(&ok(&["score", "--data", STORY, "--quiet"]));
    // The added fields come last in each hit, after the contract's fields
    // and `effect` and `signals`.
    let order =
        regex::Regex::new(r#""effect":"(for|against)","signals":\[[^\]]*\],"title":"[^"]*","severity":"[a-z]+","tags":\[[^\]]*\],"version":[0-9]+\}"#)
            .unwrap();
    for line in text.lines() {
        assert_eq!(line.matches("\"rule\":").count(), order.find_iter(line).count(), "{line}");
    }
    let all = alerts(&text);
    assert!(!all.is_empty());
    for a in &all {
        for h in a["hits"].as_array().unwrap() {
            assert!(h["title"].as_str().is_some_and(|t| !t.is_empty()), "{h}");
            assert!(["info", "low", "medium", "high", "critical"].contains(&h["severity"].as_str().unwrap()), "{h}");
            assert!(h["tags"].is_array() && h["version"].as_u64() == Some(1), "{h}");
        }
    }
}

#[test]
fn triage_filters_choose_whole_incidents() {
    let all = alerts(&stdout(&ok(&["score", "--quiet"])));
    let high = alerts(&stdout(&ok(&["score", "--quiet", "--min-tier", "high"])));
    assert!(!high.is_empty() && high.len() < all.len());
    assert!(high.iter().all(|a| a["tier"] == "high"));
    let has =
        |a: &serde_json::Value, f: &dyn Fn(&serde_json::Value) -> bool| a["hits"].as_array().unwrap().iter().any(f);
    let lockstep = alerts(&stdout(&ok(&["score", "--quiet", "--rule", "likes/lock*"])));
    assert!(!lockstep.is_empty());
    assert!(lockstep.iter().all(|a| has(a, &|h| h["rule"] == "likes/lockstep")));
    // Whole incidents: the same lines as in the unfiltered output.
    assert!(lockstep.iter().all(|a| all.contains(a)));
    let campaign = alerts(&stdout(&ok(&["score", "--quiet", "--tag", "campaign"])));
    assert_eq!(campaign, lockstep);
    let no_likes = alerts(&stdout(&ok(&["score", "--quiet", "--exclude-tag", "likes"])));
    assert!(no_likes.iter().all(|a| has(a, &|h| !h["tags"].as_array().unwrap().contains(&"likes".into()))));
    let severe = alerts(&stdout(&ok(&["score", "--quiet", "--min-severity", "high"])));
    assert!(severe.len() < all.len() && severe.iter().all(|a| has(a, &|h| h["severity"] == "high")));
    // A reporting window: history before it is still read.
    let since = "2024-01-20";
    let window = alerts(&stdout(&ok(&["score", "--quiet", "--since", since, "--until", "2024-01-22T00:00:00Z"])));
    assert!(!window.is_empty() && window.len() < all.len());
    for a in &window {
        assert!(has(a, &|h| h["ts"].as_str().unwrap() >= "2024-01-20" && h["ts"].as_str().unwrap() < "2024-01-22"));
        assert!(all.contains(a), "scored with its history: {a}");
    }
    // A pattern that matches no rule is a mistake.
    let o = changeling(&["score", "--quiet", "--rule", "likes/lockstpe"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("did you mean `likes/lockstep`?"), "{}", stderr(&o));
}

#[test]
fn the_summary_counts_per_rule_in_text_and_json() {
    let o = ok(&["score", "--data", STORY]);
    let text = stderr(&o);
    assert!(text.contains("per rule, in the written incidents:"), "{text}");
    assert!(text.contains("likes/unexposed-off-pattern"), "{text}");
    let o = ok(&["score", "--data", STORY, "--json", "--min-tier", "high"]);
    let stats: serde_json::Value = serde_json::from_str(&stderr(&o)).unwrap();
    let written = stats["incidents_written"].as_u64().unwrap();
    assert_eq!(written as usize, alerts(&stdout(&o)).len());
    assert!(stats["incidents_before_filters"].as_u64().unwrap() >= written);
    let rules = stats["per_rule"].as_array().unwrap();
    assert_eq!(rules.len(), 13);
    let r = rules.iter().find(|r| r["rule"] == "likes/unexposed-off-pattern").unwrap();
    assert!(r["hits"].as_u64().unwrap() > 0 && r["incidents"]["high"].as_u64().unwrap() > 0, "{r}");
}

#[test]
fn explain_shows_decisions_hits_and_near_misses() {
    let o = ok(&["explain", "--data", STORY, "--actor", "liu"]);
    let text = stdout(&o);
    assert!(text.contains("account liu:"), "{text}");
    assert!(text.contains("likes/unexposed-off-pattern: HIT strength"), "{text}");
    assert!(text.contains("feed_exposure: fired"), "{text}");
    assert!(text.contains("2020-09-09T13:58:00Z .. 2020-09-09T16:10:00Z  score 0.9"), "{text}");
    let around = stdout(&ok(&[
        "explain",
        "--data",
        STORY,
        "--actor",
        "liu",
        "--around",
        "2020-09-09T14:00:00Z",
        "--window",
        "30m",
    ]));
    assert!(around.contains("showing 2020-09-09T13:30:00Z to 2020-09-09T14:30:00Z"), "{around}");
    assert!(around.contains(": quiet: ") || around.contains(": abstained: "), "{around}");
    let o = changeling(&["explain", "--data", STORY, "--actor", "lui"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("did you mean `liu`?"), "{}", stderr(&o));
}

#[test]
fn explain_names_the_accounts_acting_in_lockstep() {
    let all = alerts(&stdout(&ok(&["score", "--quiet", "--rule", "likes/lockstep"])));
    let actor = all[0]["actor"].as_str().unwrap();
    let text = stdout(&ok(&["explain", "--actor", actor]));
    assert!(text.contains("likes/lockstep: HIT"), "{text}");
    assert!(text.contains("pivot (likes/lockstep):"), "{text}");
    // Its co-actors are themselves flagged by lockstep.
    let flagged: Vec<&str> = all.iter().map(|a| a["actor"].as_str().unwrap()).collect();
    let pivots: Vec<&str> = text
        .split("pivot (likes/lockstep):")
        .nth(1)
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(pivots.iter().filter(|p| flagged.contains(p)).count() >= 5, "{pivots:?} {flagged:?}");
}

#[test]
fn rule_tests_pass_on_exported_rules_and_name_the_case_a_threshold_change_breaks() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    let r = rules.to_str().unwrap();
    ok(&["rules", "export", r]);
    let o = changeling(&["rules", "export", r]);
    assert_eq!(o.status.code(), Some(2), "export does not overwrite");
    let junit = dir.path().join("junit.xml");
    let o = ok(&["test", r, "--junit", junit.to_str().unwrap(), "--require-coverage"]);
    assert!(stdout(&o).contains(" passed, 0 failed"), "{}", stdout(&o));
    assert!(std::fs::read_to_string(&junit).unwrap().contains("failures=\"0\""));
    // The shipped rules, from the binary, pass too.
    assert!(stdout(&ok(&["test"])).contains(" passed, 0 failed"));

    let file = rules.join("likes/lockstep.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("min_accounts = 5", "min_accounts = 6")).unwrap();
    let o = changeling(&["test", r, "--junit", junit.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("FAIL  likes/lockstep: six accounts like the same two posts within minutes"), "{out}");
    assert!(out.contains("1 failed"), "{out}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<failure message=\"expected 6 hit(s) of the rule, got 0: none\">"), "{xml}");

    // The diff of the two rule sets on the demo names the accounts that moved.
    std::fs::write(&file, text).unwrap();
    let rule = rules.join("likes/unexposed-off-pattern.toml");
    let text = std::fs::read_to_string(&rule).unwrap();
    std::fs::write(&rule, text.replace("max_probability = 0.05", "max_probability = 0.03")).unwrap();
    let o = ok(&["diff", "builtin", r, "--data", "datasets/demo", "--json"]);
    let d: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let moved = d["diff"]["moved"].as_array().unwrap();
    assert!(!moved.is_empty());
    for m in moved {
        let n = |k: &str| m[k].as_array().unwrap().len();
        assert!(n("added") + n("removed") + n("restrength") > 0, "a move without the hits that explain it: {m}");
        assert!(m["label"].is_string(), "the demo has labels: {m}");
    }
    let text = stdout(&ok(&["diff", "builtin", r, "--data", "datasets/demo"]));
    assert!(text.contains("against the labels"), "{text}");
    let first = moved[0]["actor"].as_str().unwrap();
    assert!(text.contains(&format!("{} {first}:", moved[0]["direction"].as_str().unwrap())), "{text}");
}

#[test]
fn diff_of_alert_files_and_of_identical_rules() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.jsonl");
    let b = dir.path().join("b.parquet");
    ok(&["score", "--quiet", "-o", a.to_str().unwrap()]);
    ok(&["score", "--quiet", "-o", b.to_str().unwrap()]);
    let text = stdout(&ok(&["diff", a.to_str().unwrap(), b.to_str().unwrap()]));
    assert!(text.contains("accounts whose highest tier moved: 0 (0 raised, 0 lowered); 0 more changed"), "{text}");
    let high = dir.path().join("high.jsonl");
    ok(&["score", "--quiet", "--min-tier", "high", "-o", high.to_str().unwrap()]);
    let o = ok(&["diff", a.to_str().unwrap(), high.to_str().unwrap(), "--json"]);
    let d: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(d["diff"]["moved"].as_array().unwrap().iter().all(|m| m["direction"] == "lowered" && m["new"].is_null()));
    let o = changeling(&["diff", "builtin", a.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("give --data DIR"), "{}", stderr(&o));
}

#[test]
fn eval_reads_parquet_lists_misses_and_gives_curves() {
    let dir = tempfile::tempdir().unwrap();
    let pq = dir.path().join("alerts.parquet");
    let jl = dir.path().join("alerts.jsonl");
    ok(&["score", "--data", "datasets/demo", "--quiet", "-o", pq.to_str().unwrap()]);
    ok(&["score", "--data", "datasets/demo", "--quiet", "-o", jl.to_str().unwrap()]);
    let json = |f: &Path| -> serde_json::Value {
        let o = ok(&["eval", "--data", "datasets/demo", "--alerts", f.to_str().unwrap(), "--json", "--list"]);
        let mut v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        v.as_object_mut().unwrap().remove("alerts_file");
        v
    };
    let (p, j) = (json(&pq), json(&jl));
    assert_eq!(p, j, "Parquet and JSON Lines alerts measure the same");
    let roc = p["curves"]["roc"].as_array().unwrap();
    assert!(roc.len() > 10 && roc[0]["fpr"] == 0.0 && roc.last().unwrap()["tpr"] == 1.0);
    let fp = p["accounts"]["false_positives"].as_array().unwrap();
    assert_eq!(fp.len() as u64, p["by_tier"][0]["false_positives"].as_u64().unwrap());
    let fn_ = p["accounts"]["false_negatives"].as_array().unwrap();
    assert_eq!(fn_.len() as u64, p["by_tier"][0]["false_negatives"].as_u64().unwrap());
    let text = stdout(&ok(&["eval", "--data", "datasets/demo", "--alerts", pq.to_str().unwrap(), "--list"]));
    assert!(text.contains("false negatives at high"), "{text}");
}
