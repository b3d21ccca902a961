//! The rules' own test cases (`rules/tests/`), run by `cargo test` as
//! `changeling test` runs them: against the rule files of `rules/`, with
//! a positive and a benign case for every shipped rule. A changed
//! threshold must fail a case that names the rule.

use std::path::{Path, PathBuf};

use changeling::rules::Overrides;
use changeling::rules::layers::{self, RuleLayer};
use changeling::ruletest::{self, Suite};

fn suite(overrides: &Overrides) -> Suite {
    ruletest::run_layers(&[RuleLayer::Path("rules".into())], overrides)
        .unwrap_or_else(|d| panic!("the shipped rules do not load:\n{}", d.render()))
}

fn failures(s: &Suite) -> Vec<String> {
    s.results.iter().filter_map(|r| r.outcome.as_ref().err().map(|e| format!("{}: {e}", r.title()))).collect()
}

#[test]
fn every_shipped_rule_has_passing_positive_and_benign_cases() {
    let s = suite(&Overrides::default());
    assert!(s.file_errors.is_empty(), "{:?}", s.file_errors);
    let failed = failures(&s);
    assert!(failed.is_empty(), "{} of {} cases failed:\n{}", failed.len(), s.results.len(), failed.join("\n\n"));
    assert!(s.coverage.is_empty(), "rules without a positive or a benign case: {:?}", s.coverage);
    let broken = s.results.iter().filter(|r| r.kind == ruletest::CaseKind::Diagnostics).count();
    assert!(broken >= 4, "{broken} diagnostics cases");
}

#[test]
fn a_changed_threshold_fails_a_case_of_its_rule() {
    // One threshold per shipped rule, moved a little either way.
    let changes = [
        "account/impossible-travel.impossible_travel.max_speed_kmh=900",
        "account/security-change-new-device.new_context.min_history=11",
        "account/security-change-then-activity.sequence.within=1h",
        "account/takeover-activity.new_context.recent=1h",
        "follows/api-spree.rate_spike.max_tail=1e-5",
        "follows/automation-spree.new_context.min_history=3",
        "follows/spree-new-network.new_context.min_history=4",
        "likes/accidental-tap.unlike_latency.max=29s",
        "likes/lockstep.lockstep.min_accounts=6",
        "likes/new-device.new_context.min_history=9",
        "likes/removed-suspicious-like.unlike_latency.min=5m",
        "likes/unexposed-off-pattern.off_pattern.max_probability=0.04",
        "likes/unlike-after-dwell.unlike_latency.min=11m",
    ];
    for change in changes {
        let (path, value) = change.split_once('=').unwrap();
        let overrides = Overrides { assignments: vec![changeling::rules::Assignment::new(path, value).unwrap()] };
        let rule = path.rsplitn(3, '.').last().unwrap();
        let s = suite(&overrides);
        let failed = failures(&s);
        assert!(
            failed.iter().any(|f| f.starts_with(&format!("{rule}: "))),
            "{change}: no case of {rule} failed (failures: {failed:?})"
        );
    }
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn the_builtin_rules_are_the_files_of_rules() {
    let mut on_disk = Vec::new();
    files(Path::new("rules"), &mut on_disk);
    let mut on_disk: Vec<(String, String)> = on_disk
        .iter()
        .map(|p| {
            let rel = p.strip_prefix("rules").unwrap().to_string_lossy().replace('\\', "/");
            (rel, std::fs::read_to_string(p).unwrap())
        })
        .collect();
    on_disk.sort();
    let embedded: Vec<(String, String)> =
        changeling::rules::embedded::rule_files().map(|(p, t)| (p.to_string(), t.to_string())).collect();
    assert_eq!(embedded, on_disk);
    // And they load to the same rules.
    let (a, _) = layers::load(&[RuleLayer::Builtin], &Overrides::default());
    let (b, _) = layers::load(&[RuleLayer::Path("rules".into())], &Overrides::default());
    let ids = |s: changeling::rules::RuleSet| s.rules.into_iter().map(|r| r.id.value).collect::<Vec<_>>();
    assert_eq!(ids(a.unwrap()), ids(b.unwrap()));
}
