//! Properties over random logs: whatever the events, the parallel scorer
//! equals the one-thread reference for any thread count, the order of
//! records in the input does not change the output, and reading never
//! panics on arbitrary bytes.

use changeling::data::{Dataset, TableKind};
use changeling::facts::Aggregates;
use changeling::plan::Plan;
use changeling::score::Scorer;
use proptest::prelude::*;
use proptest::strategy::ValueTree;

/// The shipped rules, with the lowest tier lowered so that small random
/// logs still write alerts for the properties to compare.
fn plan() -> Plan {
    let low = changeling::rules::Assignment::new("tier.low.min_score", "0.1").unwrap();
    let overrides = changeling::rules::Overrides { assignments: vec![low] };
    let (set, diags) = changeling::rules::load_with(std::path::Path::new("rules"), &overrides);
    Plan::compile(&set.unwrap_or_else(|| panic!("{}", diags.render())))
}

/// A random event line over a small vocabulary, so that likes, unlikes,
/// follows and reposts of the same items and accounts collide often.
fn event() -> impl Strategy<Value = String> {
    (
        0i64..20_000,
        0u8..6,
        prop::sample::select(vec!["like", "like", "like", "unlike", "unlike", "repost", "follow", "unfollow", "login"]),
        0u8..12,
        prop::sample::select(vec!["home", "search", "direct", "profile"]),
    )
        .prop_map(|(minute, actor, action, target, surface)| {
            let target = if action.ends_with("follow") { format!("c{}", target % 4) } else { format!("i{target}") };
            format!(
                r#"{{"ts":{},"actor":"a{actor}","action":"{action}","target":"{target}","surface":"{surface}"}}"#,
                1_600_000_000_000i64 + minute * 60_000
            )
        })
}

fn items() -> String {
    (0..12)
        .map(|i| {
            let label = ["news", "news", "sport", "adult"][i % 4];
            format!(r#"{{"id":"i{i}","author":"c{}","labels":["{label}"]}}"#, i % 5)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn alerts(plan: &Plan, events: &str, threads: Option<usize>) -> Vec<u8> {
    let follows = r#"{"follower":"a0","followee":"c0"}
{"follower":"a1","followee":"c1"}"#;
    let items = items();
    let data = Dataset::from_jsonl(
        &[(TableKind::Events, events), (TableKind::Items, &items), (TableKind::Follows, follows)],
        true,
    )
    .unwrap();
    let scorer = Scorer::new(plan, &data);
    let out = match threads {
        None => scorer.run_sequential(),
        Some(n) => rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap().install(|| scorer.run()),
    };
    let mut bytes = Vec::new();
    let info = changeling::alerts::RuleInfo::of_plan(plan);
    changeling::alerts::write_jsonl(&mut bytes, &out, changeling::alerts::Context::new(plan, &info, &data.strings))
        .unwrap();
    bytes
}

/// A lockstep rule sensitive enough to fire on a handful of accounts, with
/// a small scan cap so that the cap binds too.
const LOCKSTEP: &str = r#"
id = "t/lockstep"
title = "lockstep"
severity = "high"
version = 1
[events]
actions = ["like", "repost"]
[[signal]]
kind = "lockstep"
min_accounts = 2
min_items = 2
window = "2m"
lookback = "30m"
max_scan = 3
"#;

/// Likes, reposts and unlikes of few items by few accounts within an hour,
/// at millisecond times, so that accounts are often in step.
fn crowd_event() -> impl Strategy<Value = String> {
    (0i64..3_600_000, 0u8..8, 0u8..5, prop::sample::select(vec!["like", "like", "like", "repost", "unlike"])).prop_map(
        |(ms, actor, item, action)| {
            format!(
                r#"{{"ts":{},"actor":"a{actor}","action":"{action}","target":"i{item}"}}"#,
                1_600_000_000_000i64 + ms
            )
        },
    )
}

/// Alerts of `plan` over `events` with the item indexes built by `tune`.
fn alerts_with(plan: &Plan, events: &str, tune: impl Fn(&mut Aggregates)) -> Vec<u8> {
    let data = Dataset::from_jsonl(&[(TableKind::Events, events)], true).unwrap();
    let mut agg = Aggregates::for_plan(plan);
    tune(&mut agg);
    agg.add_all(&data.events, &data.strings, &data.items);
    let facts = agg.finish(&data.strings).unwrap();
    let scorer = Scorer::with_facts(plan, &data, &facts);
    let mut bytes = Vec::new();
    let info = changeling::alerts::RuleInfo::of_plan(plan);
    let cx = changeling::alerts::Context::new(plan, &info, &data.strings);
    changeling::alerts::write_jsonl(&mut bytes, &scorer.run_sequential(), cx).unwrap();
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Lockstep's index leaves out entries with no other account near them
    /// on the item; the alerts are those of the whole index.
    #[test]
    fn lockstep_index_pruning_changes_nothing(lines in prop::collection::vec(crowd_event(), 1..300)) {
        let (set, diags) = changeling::rules::load_texts("", &[("lockstep.toml", LOCKSTEP)]);
        let plan = Plan::compile(&set.unwrap_or_else(|| panic!("{}", diags.render())));
        let events = lines.join("\n");
        let pruned = alerts_with(&plan, &events, |_| {});
        prop_assert_eq!(&pruned, &alerts_with(&plan, &events, Aggregates::keep_every_entry));
    }

    #[test]
    fn parallel_equals_sequential(lines in prop::collection::vec(event(), 1..400), threads in 1usize..5) {
        let plan = plan();
        let events = lines.join("\n");
        prop_assert_eq!(alerts(&plan, &events, None), alerts(&plan, &events, Some(threads)));
    }

    #[test]
    fn input_order_does_not_matter(lines in prop::collection::vec(event(), 1..300), seed in any::<u64>()) {
        let plan = plan();
        let mut shuffled = lines.clone();
        // A deterministic shuffle from the seed.
        let mut s = seed | 1;
        for i in (1..shuffled.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            shuffled.swap(i, (s % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(alerts(&plan, &lines.join("\n"), None), alerts(&plan, &shuffled.join("\n"), None));
    }

    #[test]
    fn reading_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = Dataset::from_jsonl(&[(TableKind::Events, &text)], false);
    }

    #[test]
    fn arbitrary_rule_text_never_panics(text in "[a-z_=\\[\\]\"{}, .0-9\n]{0,300}") {
        let _ = changeling::rules::load_texts("", &[("r.toml", &text)]);
    }
}

/// Values of `strategy` as the properties draw them, from a fixed seed.
fn samples<S: Strategy>(strategy: S, n: usize) -> Vec<S::Value> {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    (0..n).map(|_| strategy.new_tree(&mut runner).unwrap().current()).collect()
}

/// The properties above are only worth something if the logs they draw
/// produce alerts: the very strategies of the properties, drawn from a
/// fixed seed, must give alerts in most cases (not a hand-written copy of
/// the generator, which could drift from it).
#[test]
fn the_logs_the_properties_draw_produce_alerts() {
    let plan = plan();
    for strategy in [prop::collection::vec(event(), 1..400), prop::collection::vec(event(), 1..300)] {
        let drawn = samples(strategy, 32);
        let with_alerts = drawn.iter().filter(|lines| !alerts(&plan, &lines.join("\n"), None).is_empty()).count();
        assert!(with_alerts >= 16, "only {with_alerts} of 32 drawn logs produce alerts");
    }
}

/// The lockstep pruning property compares alerts: it is only worth
/// something if lockstep fires on the logs it draws, and if the pruned
/// index leaves entries out.
#[test]
fn the_logs_the_lockstep_property_draws_make_lockstep_fire() {
    let (set, diags) = changeling::rules::load_texts("", &[("lockstep.toml", LOCKSTEP)]);
    let plan = Plan::compile(&set.unwrap_or_else(|| panic!("{}", diags.render())));
    let drawn = samples(prop::collection::vec(crowd_event(), 1..300), 32);
    let fired = drawn.iter().filter(|lines| !alerts_with(&plan, &lines.join("\n"), |_| {}).is_empty()).count();
    assert!(fired >= 16, "lockstep fires on only {fired} of 32 drawn logs");
}

/// Every hit of every rule, as (rule id, event time, target, strength,
/// why), scored by `plan` on `data`.
fn hits_by_rule(plan: &Plan, data: &Dataset) -> Vec<(String, i64, String, String)> {
    let scorer = Scorer::new(plan, data);
    let mut scratch = scorer.scratch();
    let mut out = Vec::new();
    for span in &data.events.accounts {
        for h in scorer.account_hits(span, &mut scratch) {
            let target = h.target.map_or(String::new(), |t| data.strings.resolve(t).to_string());
            out.push((plan.rules[h.rule as usize].id.clone(), h.ts, target, format!("{} {}", h.strength, h.why)));
        }
    }
    out.sort();
    out
}

/// The shipped rules with only `keep` (and the rules they refer to).
fn only(keep: &str) -> Plan {
    let (set, diags) = changeling::rules::load(std::path::Path::new("rules"));
    let mut set = set.unwrap_or_else(|| panic!("{}", diags.render()));
    let mut wanted = vec![keep.to_string()];
    let mut i = 0;
    while i < wanted.len() {
        let rule = set.rules.iter().find(|r| r.id.value == wanted[i]).expect("a shipped rule");
        for s in &rule.signals {
            for id in s.def.needs().rules {
                if !wanted.contains(&id.value) {
                    wanted.push(id.value);
                }
            }
        }
        i += 1;
    }
    set.rules.retain(|r| wanted.contains(&r.id.value));
    Plan::compile(&set)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Adding or removing a rule never changes another rule's hits: each
    /// shipped rule hits the same events, with the same strength and words,
    /// alone (with the rules it refers to) as among all the others.
    #[test]
    fn a_rules_hits_do_not_depend_on_the_other_rules(lines in prop::collection::vec(event(), 20..200)) {
        let follows = "{\"follower\":\"a0\",\"followee\":\"c0\"}";
        let items = items();
        let events = lines.join("\n");
        let data = Dataset::from_jsonl(
            &[(TableKind::Events, &events), (TableKind::Items, &items), (TableKind::Follows, follows)],
            true,
        )
        .unwrap();
        let all = plan();
        let every = hits_by_rule(&all, &data);
        for rule in &all.rules {
            let alone = hits_by_rule(&only(&rule.id), &data);
            let alone: Vec<_> = alone.into_iter().filter(|h| h.0 == rule.id).collect();
            let among: Vec<_> = every.iter().filter(|h| h.0 == rule.id).cloned().collect();
            prop_assert_eq!(alone, among, "rule {}", rule.id);
        }
    }
}

/// The report of issue 9: two `sequence` rules that differ only in
/// `within` shared one state, so loading the 1h rule made the 1d rule
/// miss. Each now keeps its own chain.
#[test]
fn sequences_with_different_windows_do_not_share_a_chain() {
    let rule = |id: &str, within: &str| {
        format!(
            "id = \"{id}\"\ntitle = \"x\"\n[events]\nactions = [\"like\"]\n[[signal]]\nkind = \"sequence\"\n\
             steps = [[\"login\"], [\"password_change\"]]\nwithin = \"{within}\"\n"
        )
    };
    let events = r#"{"ts":"2024-01-01T00:00:00Z","actor":"a","action":"login"}
{"ts":"2024-01-01T03:00:00Z","actor":"a","action":"password_change"}
{"ts":"2024-01-01T04:00:00Z","actor":"a","action":"like","target":"i"}"#;
    let data = Dataset::from_jsonl(&[(TableKind::Events, events)], true).unwrap();
    let day = rule("t/day", "1d");
    let hour = rule("t/hour", "1h");
    for texts in [vec![("d.toml", day.as_str())], vec![("d.toml", day.as_str()), ("h.toml", hour.as_str())]] {
        let (set, diags) = changeling::rules::load_texts("", &texts);
        let plan = Plan::compile(&set.unwrap_or_else(|| panic!("{}", diags.render())));
        let hits = hits_by_rule(&plan, &data);
        let day_hits: Vec<_> = hits.iter().filter(|h| h.0 == "t/day").collect();
        assert_eq!(day_hits.len(), 1, "with {} rules: {hits:?}", texts.len());
        assert!(hits.iter().all(|h| h.0 != "t/hour"), "the chain is 4 h long: {hits:?}");
    }
}

/// A JSON value for a field, drawn from the edges: extreme integers, times
/// in seconds, milliseconds, microseconds and nanoseconds, RFC 3339 text
/// at and past the accepted range, empty, huge and non-text strings (lone
/// surrogates), wrong types and deep nesting.
fn edge_value() -> impl Strategy<Value = String> {
    let fixed = prop::sample::select(vec![
        i64::MIN.to_string(),
        i64::MAX.to_string(),
        "-1".into(),
        "0".into(),
        "1599660180".into(),
        "1599660180000".into(),
        "1599660180000000".into(),
        "1599660180000000000".into(),
        "253402300799999".into(),
        "253402300800000".into(),
        "99999999999999999999999".into(),
        "1.5e3".into(),
        r#""2020-09-09T14:03:00Z""#.into(),
        r#""0001-01-01T00:00:00Z""#.into(),
        r#""9999-12-31T23:59:59.999Z""#.into(),
        r#""-9223372036854775808""#.into(),
        r#""a""#.into(),
        r#""""#.into(),
        r#""\ud800""#.into(),
        r#""\\ud800""#.into(),
        r#""x\udc00y""#.into(),
        r#""\ud83d\ude00""#.into(),
        "null".into(),
        "true".into(),
        "[]".into(),
        r#"["a",["b"],{"c":1}]"#.into(),
        "{}".into(),
    ]);
    prop_oneof![
        8 => fixed,
        1 => (0usize..3000).prop_map(|n| format!("\"{}\"", "s".repeat(n))),
        1 => (1usize..200).prop_map(|n| format!("{}1{}", "[".repeat(n), "]".repeat(n))),
        1 => (1usize..200).prop_map(|n| format!("{}1{}", "{\"k\":".repeat(n), "}".repeat(n))),
    ]
}

/// A record with edge values in its required fields and in an optional,
/// an extra or no field besides (or, now and then, a broken line).
fn edge_record() -> impl Strategy<Value = String> {
    let field = prop::sample::select(vec!["target", "surface", "lat", "device", "mood"]);
    prop_oneof![
        12 => (edge_value(), edge_value(), edge_value(), field, edge_value()).prop_map(|(ts, actor, action, key, v)| {
            format!(r#"{{"ts":{ts},"actor":{actor},"action":{action},"{key}":{v}}}"#)
        }),
        4 => (edge_value(), edge_value()).prop_map(|(ts, v)| format!(r#"{{"ts":{ts},"actor":"a","action":"like","target":{v}}}"#)),
        1 => "[^\n]{1,40}".prop_map(|s| if s.trim().is_empty() { "x".to_string() } else { s }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Reading records with edge values never panics, and every record is
    /// either read (kept or dropped as an exact duplicate) or counted as
    /// skipped; scoring what was read never panics either.
    #[test]
    fn edge_values_are_read_or_skipped_never_lost(records in prop::collection::vec(edge_record(), 1..60), max in 200usize..4000) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("events.jsonl"), records.join("\n")).unwrap();
        // Edge times include 1970: told so (see ReadOptions::time_unit).
        let opts = changeling::data::ReadOptions {
            max_record_bytes: max,
            time_unit: Some(changeling::time::TimeUnit::Ms),
            ..Default::default()
        };
        let data = Dataset::open(dir.path(), &opts).unwrap();
        let r = data.report.table(TableKind::Events).unwrap();
        prop_assert_eq!(r.records + r.duplicates + r.skipped, records.len() as u64, "{:?}", r);
        prop_assert_eq!(r.records as usize, data.events.len());
        let plan = plan();
        let scorer = Scorer::new(&plan, &data);
        let out = scorer.run_sequential();
        let info = changeling::alerts::RuleInfo::of_plan(&plan);
        let mut bytes = Vec::new();
        changeling::alerts::write_jsonl(&mut bytes, &out, changeling::alerts::Context::new(&plan, &info, &data.strings)).unwrap();
        for line in String::from_utf8(bytes).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            for k in ["start", "end"] {
                let t = v[k].as_str().unwrap();
                prop_assert!(changeling::time::parse_rfc3339(t).is_some(), "{}", t);
            }
        }
    }
}
