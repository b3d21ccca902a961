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

/// The mutations of the shipped rules (`changeling test --mutate`) that no
/// case catches yet, as `path=value`: thresholds the cases do not pin
/// (and some that no case can: `max_scan`, a bound on work; `after_hit`'s
/// `within` masking `unlike_latency`'s `max`). The list may only shrink: a
/// new parameter, rule or case file must pin what it adds.
const NOT_YET_CAUGHT: &[&str] = &[
    "account/impossible-travel.impossible_travel.min_distance_km=375",
    "account/impossible-travel.impossible_travel.min_distance_km=625",
    "account/takeover-activity.new_context.min_history=8",
    "account/takeover-activity.new_context.recent=2h30m",
    "account/takeover-activity.sequence.within=2h30m",
    "follows/api-spree.rate_spike.baseline=22d12h",
    "follows/api-spree.rate_spike.baseline=37d12h",
    "follows/api-spree.rate_spike.cooldown=45s",
    "follows/automation-spree.rate_spike.baseline=22d12h",
    "follows/automation-spree.rate_spike.baseline=37d12h",
    "follows/automation-spree.rate_spike.cooldown=45s",
    "follows/automation-spree.new_context.min_history=1",
    "follows/automation-spree.new_context.recent=1h30m",
    "follows/automation-spree.new_context.recent=2h30m",
    "follows/spree-new-network.rate_spike.baseline=22d12h",
    "follows/spree-new-network.rate_spike.baseline=37d12h",
    "follows/spree-new-network.rate_spike.cooldown=45s",
    "follows/spree-new-network.new_context.min_history=6",
    "follows/spree-new-network.new_context.recent=1h30m",
    "follows/spree-new-network.new_context.recent=2h30m",
    "likes/accidental-tap.unlike_latency.burst_gap=11m15s",
    "likes/accidental-tap.unlike_latency.burst_gap=18m45s",
    "likes/accidental-tap.unlike_latency.chain_gap=4h30m",
    "likes/accidental-tap.unlike_latency.chain_gap=7h30m",
    "likes/lockstep.lockstep.lookback=45m",
    "likes/lockstep.lockstep.lookback=1h15m",
    "likes/lockstep.lockstep.max_scan=1500",
    "likes/lockstep.lockstep.max_scan=2500",
    "likes/new-device.new_context.recent=1h30m",
    "likes/removed-suspicious-like.unlike_latency.max=1d12h",
    "likes/removed-suspicious-like.unlike_latency.max=2d12h",
    "likes/removed-suspicious-like.unlike_latency.burst_gap=11m15s",
    "likes/removed-suspicious-like.unlike_latency.burst_gap=18m45s",
    "likes/removed-suspicious-like.unlike_latency.chain_gap=4h30m",
    "likes/removed-suspicious-like.unlike_latency.chain_gap=7h30m",
    "likes/removed-suspicious-like.after_hit.within=1d12h",
    "likes/removed-suspicious-like.after_hit.within=2d12h",
    "likes/removed-suspicious-like.after_hit.burst_gap=11m15s",
    "likes/removed-suspicious-like.after_hit.burst_gap=18m45s",
    "likes/unexposed-off-pattern.feed_exposure.repost_window=5d6h",
    "likes/unexposed-off-pattern.feed_exposure.repost_window=8d18h",
    "likes/unexposed-off-pattern.feed_exposure.impression_window=5d6h",
    "likes/unexposed-off-pattern.feed_exposure.impression_window=8d18h",
    "likes/unexposed-off-pattern.feed_exposure.impression_slack=45s",
    "likes/unexposed-off-pattern.feed_exposure.impression_slack=1m15s",
    "likes/unexposed-off-pattern.off_pattern.min_history=2",
    "likes/unexposed-off-pattern.off_pattern.min_history=4",
    "likes/unexposed-off-pattern.off_pattern.novelty_smoothing=15",
    "likes/unexposed-off-pattern.off_pattern.novelty_smoothing=25",
    "likes/unexposed-off-pattern.off_pattern.max_burst=8",
    "likes/unexposed-off-pattern.off_pattern.max_burst=13",
    "likes/unexposed-off-pattern.off_pattern.return_window=22d12h",
    "likes/unexposed-off-pattern.off_pattern.return_window=37d12h",
    "likes/unexposed-off-pattern.off_pattern.return_after=4h30m",
    "likes/unexposed-off-pattern.off_pattern.return_after=7h30m",
    "likes/unlike-after-dwell.unlike_latency.max=1d12h",
    "likes/unlike-after-dwell.unlike_latency.burst_gap=11m15s",
    "likes/unlike-after-dwell.unlike_latency.burst_gap=18m45s",
    "likes/unlike-after-dwell.unlike_latency.chain_gap=4h30m",
    "likes/unlike-after-dwell.unlike_latency.chain_gap=7h30m",
];

#[test]
fn every_mutation_of_the_shipped_rules_is_caught_but_the_known_ones() {
    let mutations = ruletest::mutate(&[RuleLayer::Path("rules".into())])
        .unwrap_or_else(|d| panic!("the shipped rules do not load:\n{}", d.render()));
    assert!(mutations.len() > 100, "{} mutations", mutations.len());
    let missed: Vec<String> = mutations
        .iter()
        .filter(|m| m.caught == Some(false))
        .map(|m| format!("{}={}", m.path, m.to.trim_matches('"')))
        .collect();
    let new: Vec<&String> = missed.iter().filter(|m| !NOT_YET_CAUGHT.contains(&m.as_str())).collect();
    assert!(new.is_empty(), "mutations no case catches: add cases that pin them: {new:#?}");
    let fixed: Vec<&&str> = NOT_YET_CAUGHT.iter().filter(|k| !missed.iter().any(|m| m == *k)).collect();
    assert!(fixed.is_empty(), "now caught: remove them from NOT_YET_CAUGHT: {fixed:#?}");
    // The example: `min` of likes/removed-suspicious-like is pinned
    // both ways.
    for m in mutations.iter().filter(|m| m.path == "likes/removed-suspicious-like.unlike_latency.min") {
        assert_eq!(m.caught, Some(true), "{m:?}");
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
