//! The story behind changeling, as a test (dataset: tests/fixtures/story,
//! see its README): the diplomat's account must come out `high` with all
//! three mission signals in its hits; the four look-alike controls must not.
//! Variants rebuild the incident with the four likes reached through the
//! account's own navigation (a profile visit, a search), as an attacker
//! holding the session would: the story must still be told, and the
//! controls must still stay below `high`.

use std::path::{Path, PathBuf};

use changeling::data::{Dataset, ReadOptions};
use changeling::plan::Plan;
use changeling::score::{AccountIncidents, Scorer};

fn run() -> (Plan, Dataset) {
    run_on(Path::new("tests/fixtures/story"))
}

fn run_on(dir: &Path) -> (Plan, Dataset) {
    let (set, diags) = changeling::rules::load(Path::new("rules"));
    let set = set.unwrap_or_else(|| panic!("shipped rules do not load:\n{}", diags.render()));
    let plan = Plan::compile(&set);
    let data = Dataset::open(dir, &ReadOptions::default()).expect("story dataset reads");
    (plan, data)
}

/// The story dataset with the surface of liu's four attack likes (the likes
/// of 2020-09-09 afternoon) replaced by `surface`, written to a temporary
/// directory. Returns the directory (kept alive by the guard).
fn variant(surface: &str) -> (tempfile::TempDir, PathBuf) {
    let src = Path::new("tests/fixtures/story");
    let tmp = tempfile::tempdir().unwrap();
    let mut changed = 0;
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_owned();
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let text = if name == "events.jsonl" {
            let mut out = String::new();
            for line in text.lines() {
                let mut e: serde_json::Value = serde_json::from_str(line).unwrap();
                let ts = e["ts"].as_str().unwrap_or_default();
                if e["actor"] == "liu" && e["action"] == "like" && ts.starts_with("2020-09-09T1") {
                    e["surface"] = surface.into();
                    changed += 1;
                }
                out.push_str(&serde_json::to_string(&e).unwrap());
                out.push('\n');
            }
            out
        } else {
            text
        };
        std::fs::write(tmp.path().join(name), text).unwrap();
    }
    // Four attack likes, and the repeats the fixture adds of some of them.
    assert!(changed >= 4, "{changed} attack likes rewritten");
    let dir = tmp.path().to_path_buf();
    (tmp, dir)
}

/// Asserts the story is told on `dir`: liu `high`, with the four likes,
/// their removals, and all three mission signals.
fn assert_story_told(dir: &Path) {
    let (plan, data) = run_on(dir);
    let out = Scorer::new(&plan, &data).run();
    assert_eq!(best_tier(&plan, &data, &out, "liu"), Some("high"), "{out:#?}");
    let liu = out.iter().find(|a| data.strings.resolve(a.actor) == "liu").unwrap();
    let incident = liu.incidents.iter().find(|i| plan.config.tiers[i.tier].name == "high").unwrap();
    let mut kinds: Vec<&str> = incident.hits.iter().flat_map(|h| h.signals.iter().copied()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    for kind in ["feed_exposure", "off_pattern", "unlike_latency"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let count = |rule: &str| incident.hits.iter().filter(|h| plan.rules[h.rule as usize].id == rule).count();
    assert_eq!(count("likes/unexposed-off-pattern"), 4, "{:#?}", incident.hits);
    assert_eq!(count("likes/removed-suspicious-like"), 4);
    // No single family put it there.
    assert!(incident.families.len() >= 2, "{:?}", incident.families);
}

fn assert_controls_not_high(dir: &Path) {
    let (plan, data) = run_on(dir);
    let out = Scorer::new(&plan, &data).run();
    for control in ["ctl_tap", "ctl_newinterest", "ctl_search", "ctl_regret"] {
        let tier = best_tier(&plan, &data, &out, control);
        assert_ne!(tier, Some("high"), "{control} came out high");
    }
}

#[test]
fn the_story_is_told_when_the_likes_come_through_profile_visits() {
    let (_guard, dir) = variant("profile");
    assert_story_told(&dir);
    assert_controls_not_high(&dir);
}

#[test]
fn the_story_is_told_when_the_likes_come_through_search() {
    let (_guard, dir) = variant("search");
    assert_story_told(&dir);
    assert_controls_not_high(&dir);
}

fn best_tier<'a>(plan: &'a Plan, data: &Dataset, out: &[AccountIncidents], actor: &str) -> Option<&'a str> {
    out.iter()
        .find(|a| data.strings.resolve(a.actor) == actor)
        .and_then(|a| a.incidents.iter().map(|i| i.tier).min())
        .map(|t| plan.config.tiers[t].name.as_str())
}

#[test]
fn the_diplomat_is_high_with_all_three_signals() {
    let dir = Path::new("tests/fixtures/story");
    assert_story_told(dir);
    let (plan, data) = run_on(dir);
    let out = Scorer::new(&plan, &data).run();
    let liu = out.iter().find(|a| data.strings.resolve(a.actor) == "liu").unwrap();
    let incident = liu.incidents.iter().find(|i| plan.config.tiers[i.tier].name == "high").unwrap();
    let count = |rule: &str| incident.hits.iter().filter(|h| plan.rules[h.rule as usize].id == rule).count();
    assert_eq!(count("likes/unlike-after-dwell"), 4);
    assert!(incident.hits.iter().any(|h| h.why.contains("label 'adult' has probability")));
    // Every hit says its evidence: unexposed, removed after a dwell, or
    // from a device the account never used.
    assert!(
        incident
            .hits
            .iter()
            .all(|h| h.why.contains("not followed") || h.why.contains("after the like") || h.why.contains("seen")),
        "{:#?}",
        incident.hits
    );
    assert!(incident.hits.iter().any(|h| h.why.contains("was hit by likes/unexposed-off-pattern")));
}

#[test]
fn the_controls_are_not_high() {
    let dir = Path::new("tests/fixtures/story");
    assert_controls_not_high(dir);
    let (plan, data) = run_on(dir);
    let out = Scorer::new(&plan, &data).run();
    // One regret removal of a like the feed showed is below every tier. The
    // likes found by search are off pattern and only partly explained by
    // navigation: novelty alone, which stays low.
    assert_eq!(best_tier(&plan, &data, &out, "ctl_regret"), None);
    assert_eq!(best_tier(&plan, &data, &out, "ctl_search"), Some("low"));
    // Nobody in the background population is flagged at all.
    let flagged: Vec<&str> = out.iter().map(|a| data.strings.resolve(a.actor)).collect();
    assert_eq!(flagged, ["ctl_search", "liu"]);
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
