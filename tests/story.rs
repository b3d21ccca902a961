//! The story behind changeling, as a test (dataset: tests/fixtures/story,
//! see its README): the diplomat's account must come out `high` with all
//! three mission signals in its hits; the four look-alike controls must not.

use std::path::Path;

use changeling::data::{Dataset, ReadOptions};
use changeling::plan::Plan;
use changeling::score::{AccountIncidents, Scorer};

fn run() -> (Plan, Dataset) {
    let (set, diags) = changeling::rules::load(Path::new("rules"));
    let set = set.unwrap_or_else(|| panic!("shipped rules do not load:\n{}", diags.render()));
    let plan = Plan::compile(&set);
    let data = Dataset::open(Path::new("tests/fixtures/story"), &ReadOptions::default()).expect("story dataset reads");
    (plan, data)
}

fn best_tier<'a>(plan: &'a Plan, data: &Dataset, out: &[AccountIncidents], actor: &str) -> Option<&'a str> {
    out.iter()
        .find(|a| data.strings.resolve(a.actor) == actor)
        .and_then(|a| a.incidents.iter().map(|i| i.tier).min())
        .map(|t| plan.config.tiers[t].name.as_str())
}

#[test]
fn the_diplomat_is_high_with_all_three_signals() {
    let (plan, data) = run();
    let out = Scorer::new(&plan, &data).run();
    assert_eq!(best_tier(&plan, &data, &out, "liu"), Some("high"));
    let liu = out.iter().find(|a| data.strings.resolve(a.actor) == "liu").unwrap();
    let incident = liu.incidents.iter().find(|i| plan.config.tiers[i.tier].name == "high").unwrap();
    let mut kinds: Vec<&str> = incident.hits.iter().flat_map(|h| h.signals.iter().copied()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    for kind in ["feed_exposure", "off_pattern", "unlike_latency"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    // The four likes and their four removals, each explained.
    let count = |rule: &str| incident.hits.iter().filter(|h| plan.rules[h.rule as usize].id == rule).count();
    assert_eq!(count("likes/unexposed-off-pattern"), 4, "{:#?}", incident.hits);
    assert_eq!(count("likes/unlike-after-dwell"), 4);
    assert_eq!(count("likes/removed-suspicious-like"), 4);
    assert!(incident.hits.iter().any(|h| h.why.contains("label 'adult' has probability")));
    assert!(incident.hits.iter().all(|h| h.why.contains("not followed") || h.why.contains("after the like")));
    assert!(incident.hits.iter().any(|h| h.why.contains("was hit by likes/unexposed-off-pattern")));
}

#[test]
fn the_controls_are_not_high() {
    let (plan, data) = run();
    let out = Scorer::new(&plan, &data).run();
    for control in ["ctl_tap", "ctl_newinterest", "ctl_search", "ctl_regret"] {
        let tier = best_tier(&plan, &data, &out, control);
        assert_ne!(tier, Some("high"), "{control} came out high");
    }
    // The regret removal is seen, but only as weak evidence.
    assert_eq!(best_tier(&plan, &data, &out, "ctl_regret"), Some("low"));
    // Nobody in the background population is flagged at all.
    let flagged: Vec<&str> = out.iter().map(|a| data.strings.resolve(a.actor)).collect();
    assert_eq!(flagged, ["ctl_regret", "liu"]);
}

#[test]
fn shuffled_repeated_log_is_sorted_and_deduplicated() {
    let (_, data) = run();
    let r = data.report.table(changeling::data::TableKind::Events).unwrap();
    assert!(r.duplicates >= 50, "the fixture repeats 50 records; {} dropped", r.duplicates);
    assert_eq!(r.skipped, 0);
    for span in &data.events.accounts {
        let ts: Vec<i64> = span.range().map(|i| data.events.ts(i)).collect();
        assert!(ts.windows(2).all(|w| w[0] <= w[1]));
    }
}
