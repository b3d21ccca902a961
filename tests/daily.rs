//! Daily runs against runs over all the data: a population cut into
//! consecutive batches (by day, and at random instants), each batch scored
//! against the state the previous one left; after each, folding the
//! changes written so far (the last version of each incident id, withdrawn
//! ones dropped) gives the incidents one run over the data up to that cut
//! gives, field for field apart from `status`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use changeling::alerts::{self, Context, RuleInfo};
use changeling::data::{Dataset, ReadOptions};
use changeling::plan::Plan;
use changeling::run::RunProgress;
use changeling::run::daily::{self, Emit};
use changeling::score::Scorer;
use changeling::state::State;
use changeling::synth::{self, SynthConfig};
use serde_json::Value;

fn builtin() -> (Plan, Vec<RuleInfo>) {
    let layers = [changeling::rules::layers::RuleLayer::Path("rules".into())];
    let (set, diags) = changeling::rules::layers::load(&layers, &changeling::rules::Overrides::default());
    let set = set.unwrap_or_else(|| panic!("{}", diags.render()));
    (Plan::compile(&set), RuleInfo::of_set(&set))
}

/// A table's JSON lines, each with its time (from `field`, if any).
fn lines(dir: &Path, table: &str, field: Option<&str>) -> Vec<(i64, String)> {
    let path = dir.join(format!("{table}.jsonl"));
    let Ok(text) = std::fs::read_to_string(&path) else { return Vec::new() };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("synth writes JSON");
            let ts = field.and_then(|f| v.get(f)).map_or(i64::MIN, |t| {
                t.as_str().and_then(changeling::time::parse_timestamp).or_else(|| t.as_i64()).expect("a time")
            });
            (ts, l.to_string())
        })
        .collect()
}

fn write(dir: &Path, table: &str, rows: impl Iterator<Item = String>) {
    let text: String = rows.map(|l| l + "\n").collect();
    std::fs::write(dir.join(format!("{table}.jsonl")), text).unwrap();
}

/// The population cut at `cuts`: batch `k` holds the events (and
/// impressions) in `[cuts[k-1], cuts[k])` and the items created then; the
/// first holds the follows and accounts tables and every earlier item.
/// Also, for each cut, the dataset of everything before it.
fn cut(full: &Path, cuts: &[i64], out: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let events = lines(full, "events", Some("ts"));
    let impressions = lines(full, "impressions", Some("ts"));
    let items = lines(full, "items", Some("created_at"));
    let (mut batches, mut upto) = (Vec::new(), Vec::new());
    for (k, &c) in cuts.iter().enumerate() {
        let from = if k == 0 { i64::MIN } else { cuts[k - 1] };
        let b = out.join(format!("batch-{k:02}"));
        std::fs::create_dir_all(&b).unwrap();
        let within = |t: i64| from <= t && t < c;
        write(&b, "events", events.iter().filter(|(t, _)| within(*t)).map(|(_, l)| l.clone()));
        write(&b, "impressions", impressions.iter().filter(|(t, _)| within(*t)).map(|(_, l)| l.clone()));
        write(&b, "items", items.iter().filter(|(t, _)| within(*t)).map(|(_, l)| l.clone()));
        if k == 0 {
            for table in ["follows", "accounts"] {
                std::fs::copy(full.join(format!("{table}.jsonl")), b.join(format!("{table}.jsonl"))).unwrap();
            }
        }
        let u = out.join(format!("upto-{k:02}"));
        std::fs::create_dir_all(&u).unwrap();
        write(&u, "events", events.iter().filter(|(t, _)| *t < c).map(|(_, l)| l.clone()));
        write(&u, "impressions", impressions.iter().filter(|(t, _)| *t < c).map(|(_, l)| l.clone()));
        write(&u, "items", items.iter().filter(|(t, _)| *t < c).map(|(_, l)| l.clone()));
        for table in ["follows", "accounts"] {
            std::fs::copy(full.join(format!("{table}.jsonl")), u.join(format!("{table}.jsonl"))).unwrap();
        }
        batches.push(b);
        upto.push(u);
    }
    (batches, upto)
}

/// Alerts as JSON values keyed by incident id, `status` left out.
fn by_id(jsonl: &[u8]) -> BTreeMap<String, Value> {
    String::from_utf8(jsonl.to_vec())
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            let id = v["id"].as_str().unwrap().to_string();
            v.as_object_mut().unwrap().remove("status");
            (id, v)
        })
        .collect()
}

fn one_shot(dir: &Path, plan: &Plan, info: &[RuleInfo]) -> BTreeMap<String, Value> {
    let data = Dataset::open(dir, &ReadOptions::default()).unwrap();
    let accounts = Scorer::new(plan, &data).run();
    let mut out = Vec::new();
    alerts::write_jsonl(&mut out, &accounts, Context::new(plan, info, &data.strings)).unwrap();
    by_id(&out)
}

/// Where the state lives between runs.
#[derive(Clone, Copy, PartialEq)]
enum Kept {
    InMemory,
    OnDisk,
}

/// One daily run: from `state` (in memory) or the state directory `dir`.
fn daily_run(batch: &Path, plan: &Plan, state: &mut State, dir: &Path, kept: Kept) -> daily::DailyOutput {
    let opts = ReadOptions::default();
    match kept {
        Kept::InMemory => {
            let (out, update) = daily::run(batch, plan, state, &opts, Emit::Changes, &RunProgress::default())
                .unwrap_or_else(|e| panic!("{}: {e}", batch.display()));
            state.apply(update);
            out
        }
        Kept::OnDisk => {
            let opened = changeling::state::store::Store::open(dir).unwrap();
            let (out, update) = daily::run(batch, plan, &opened, &opts, Emit::Changes, &RunProgress::default())
                .unwrap_or_else(|e| panic!("{}: {e}", batch.display()));
            let (store, opened) = opened;
            store.commit(opened, update, &changeling::state::Keys::of(plan)).unwrap();
            out
        }
    }
}

/// Runs the batches one after the other from an empty state and checks the
/// fold after each against the one-shot run up to that cut; returns how
/// many alerts of each status the runs wrote.
fn check_cuts(full: &Path, cuts: &[i64], what: &str) -> BTreeMap<String, usize> {
    check_cuts_kept(full, cuts, what, Kept::InMemory)
}

fn check_cuts_kept(full: &Path, cuts: &[i64], what: &str, kept: Kept) -> BTreeMap<String, usize> {
    let (plan, info) = builtin();
    let work = tempfile::tempdir().unwrap();
    let (batches, upto) = cut(full, cuts, work.path());
    let mut state = State::new(&plan);
    let state_dir = work.path().join("state");
    let mut folded: BTreeMap<String, Value> = BTreeMap::new();
    let mut seen_statuses = BTreeMap::new();
    for (k, (batch, upto)) in batches.iter().zip(&upto).enumerate() {
        let _ = k;
        let out = daily_run(batch, &plan, &mut state, &state_dir, kept);
        let strings = out.strings.clone();
        let accounts = out.incidents.into_vec().unwrap();
        let mut jsonl = Vec::new();
        alerts::write_jsonl(&mut jsonl, &accounts, Context::new(&plan, &info, &strings)).unwrap();
        for line in String::from_utf8(jsonl).unwrap().lines() {
            let mut v: Value = serde_json::from_str(line).unwrap();
            let id = v["id"].as_str().unwrap().to_string();
            let status = v.as_object_mut().unwrap().remove("status").unwrap();
            *seen_statuses.entry(status.as_str().unwrap().to_string()).or_insert(0) += 1;
            if status == "withdrawn" {
                folded.remove(&id);
            } else {
                folded.insert(id, v);
            }
        }
        let want = one_shot(upto, &plan, &info);
        if folded != want {
            let only_f: Vec<&String> = folded.keys().filter(|k| !want.contains_key(*k)).collect();
            let only_w: Vec<&String> = want.keys().filter(|k| !folded.contains_key(*k)).collect();
            let differ: Vec<&String> =
                folded.keys().filter(|k| want.get(*k).is_some_and(|w| w != &folded[*k])).collect();
            let example = differ.first().map(|k| format!("\nfolded: {}\nwanted: {}", folded[*k], want[*k]));
            panic!(
                "{what}, after batch {k}: {} folded, {} wanted; only folded {:?}; only wanted {:?}; {} differ{}",
                folded.len(),
                want.len(),
                only_f.iter().take(5).collect::<Vec<_>>(),
                only_w.iter().take(5).collect::<Vec<_>>(),
                differ.len(),
                example.unwrap_or_default()
            );
        }
    }
    assert!(!folded.is_empty(), "{what}: the population gives incidents");
    assert!(seen_statuses.contains_key("new"), "{what}: statuses {seen_statuses:?}");
    seen_statuses
}

fn population(dir: &Path, days: u32, seed: u64) -> i64 {
    let cfg = SynthConfig {
        accounts: 400,
        days,
        seed,
        impressions: true,
        compromise_rate: 0.05,
        lookalike_rate: 0.03,
        ..SynthConfig::default()
    };
    synth::generate(&cfg, dir).unwrap();
    cfg.start
}

#[test]
fn daily_batches_fold_to_the_run_over_all_the_data() {
    let full = tempfile::tempdir().unwrap();
    let start = population(full.path(), 12, 5);
    let day = changeling::time::DAY;
    let cuts: Vec<i64> = (1..=13).map(|d| start + d * day).collect();
    let statuses = check_cuts(full.path(), &cuts, "by day");
    eprintln!("by day: {statuses:?}");
}

/// An item not seen within the rules' reach is gone for a batch from a
/// state on disk, as from one in memory, before a merge of its partition
/// drops its row: what a batch finds of the state does not depend on when
/// partitions were last merged (so neither do its alerts, wherever the
/// batches are cut). Found, it would be kept again as seen anew.
#[test]
fn items_out_of_reach_are_gone_before_their_partition_merges() {
    let (plan, _) = builtin();
    let reach = changeling::state::reach(&plan);
    let day = changeling::time::DAY;
    let t0 = changeling::time::parse_timestamp("2024-01-10T12:00:00Z").unwrap();
    let ts = |t: i64| changeling::time::format_rfc3339(t);
    let work = tempfile::tempdir().unwrap();
    let batch = |name: &str, items: &[&str], events: &[(i64, &str, &str)]| {
        let dir = work.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        write(&dir, "items", items.iter().map(|i| format!(r#"{{"id":"{i}","author":"far","labels":["adult"]}}"#)));
        let rows = events.iter().map(|(t, who, what)| {
            format!(r#"{{"ts":"{}","actor":"{who}","action":"like","target":"{what}","surface":"home"}}"#, ts(*t))
        });
        write(&dir, "events", rows);
        dir
    };
    let batches = [
        batch("b1", &["old", "n1"], &[(t0, "a", "old"), (t0 + 60_000, "a", "n1")]),
        // Past the reach of the item: its row is out of the state's reach.
        batch("b2", &["n2"], &[(t0 + reach + 10 * day, "c", "n2")]),
        batch("b3", &[], &[(t0 + reach + 11 * day, "b", "old")]),
    ];
    let mut in_memory = State::new(&plan);
    let on_disk = work.path().join("state");
    for b in &batches {
        daily_run(b, &plan, &mut in_memory, &on_disk, Kept::InMemory);
        daily_run(b, &plan, &mut State::new(&plan), &on_disk, Kept::OnDisk);
    }
    let ids: std::collections::BTreeSet<String> = ["old".to_string(), "n2".to_string()].into();
    // On disk, rows out of reach stay until their partition merges; those
    // within reach are what a batch can find.
    let (store, opened) = changeling::state::store::Store::open(&on_disk).unwrap();
    let since = opened.state.watermark.unwrap() - reach;
    let kept: Vec<String> =
        store.kept(false, &ids).unwrap().into_iter().filter(|(_, k)| k.seen >= since).map(|(id, _)| id).collect();
    let held: Vec<String> = in_memory.items.keys().filter(|k| ids.contains(*k)).cloned().collect();
    assert_eq!(held, ["n2"], "in memory");
    assert_eq!(kept, held, "on disk as in memory");
}

/// Verdicts a state keeps because they wait on a look-ahead keep their
/// numbers, not their words: off_pattern's and feed_exposure's words are
/// in the alerts, and in no account's payload (where they took most of the
/// bytes), since they are made when a hit is written.
#[test]
fn waiting_verdicts_keep_numbers_not_words() {
    let full = tempfile::tempdir().unwrap();
    let start = population(full.path(), 12, 7);
    let (plan, info) = builtin();
    let work = tempfile::tempdir().unwrap();
    let day = changeling::time::DAY;
    let cuts: Vec<i64> = (1..=13).map(|d| start + d * day).collect();
    let (batches, _) = cut(full.path(), &cuts, work.path());
    let mut state = State::new(&plan);
    let mut said = String::new();
    for batch in &batches {
        let out = daily_run(batch, &plan, &mut state, &work.path().join("state"), Kept::InMemory);
        let strings = out.strings.clone();
        let mut jsonl = Vec::new();
        alerts::write_jsonl(&mut jsonl, &out.incidents.into_vec().unwrap(), Context::new(&plan, &info, &strings))
            .unwrap();
        said.push_str(&String::from_utf8(jsonl).unwrap());
    }
    let phrases = ["in this account's 180-day history", "not engaged with again", "no followee reposted it"];
    for phrase in phrases {
        assert!(said.contains(phrase), "the alerts say '{phrase}'");
    }
    let waiting = state.accounts.values().filter(|a| a.open).count();
    assert!(waiting > 10, "accounts with incidents open: {waiting}");
    for (id, account) in &state.accounts {
        let (table, body) = changeling::state::codec::unpack(&account.payload).unwrap();
        for phrase in phrases {
            for bytes in [&table, &body] {
                assert!(
                    !bytes.windows(phrase.len()).any(|w| w == phrase.as_bytes()),
                    "{id}: the payload keeps the words '{phrase}'"
                );
            }
        }
    }
}

/// Thirty-five days, one batch a day: long enough for the 30-day
/// look-ahead to end, so that incidents become final, and for likes taken
/// back by it to withdraw incidents.
#[test]
fn thirty_five_daily_runs_report_every_status_and_fold_to_the_run_over_all_the_data() {
    let full = tempfile::tempdir().unwrap();
    let cfg = SynthConfig {
        accounts: 200,
        days: 35,
        seed: 3,
        impressions: true,
        compromise_rate: 0.08,
        lookalike_rate: 0.05,
        ..SynthConfig::default()
    };
    synth::generate(&cfg, full.path()).unwrap();
    let day = changeling::time::DAY;
    let cuts: Vec<i64> = (1..=36).map(|d| cfg.start + d * day).collect();
    let statuses = check_cuts(full.path(), &cuts, "35 days");
    for s in ["new", "updated", "final", "withdrawn"] {
        assert!(statuses.contains_key(s), "no {s} alert in 35 daily runs: {statuses:?}");
    }
    // The same through a state directory, its files written and read back
    // between runs (layers merged as they grow).
    let on_disk = check_cuts_kept(full.path(), &cuts, "35 days on disk", Kept::OnDisk);
    assert_eq!(on_disk, statuses, "a state on disk changes nothing");
}

#[test]
fn batches_cut_at_random_instants_fold_to_the_run_over_all_the_data() {
    let full = tempfile::tempdir().unwrap();
    let start = population(full.path(), 8, 11);
    let day = changeling::time::DAY;
    // Cuts at odd instants, some minutes apart, some days.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut cuts = Vec::new();
    let mut t = start;
    while t < start + 9 * day {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        t += [7 * 60_000, 3_600_000 + 1234, day / 3 + 17, day + 60_001][(x % 4) as usize] + (x % 60_000) as i64;
        cuts.push(t.min(start + 9 * day));
    }
    check_cuts(full.path(), &cuts, "random instants");
}

/// A campaign whose likes a cut splits (half of the accounts before it,
/// half after: lockstep fires only once the later half is known, on the
/// earlier half's likes too), and a like whose impression is logged 40
/// seconds after it, across a cut (the feed did show it: the unexposed
/// verdict is taken back by the next batch).
#[test]
fn verdicts_waiting_for_the_next_batch_are_judged_again() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    std::fs::create_dir_all(&full).unwrap();
    let t0 = changeling::time::parse_timestamp("2024-01-10T12:00:00Z").unwrap();
    let day = changeling::time::DAY;
    let ts = |t: i64| changeling::time::format_rfc3339(t);
    let (mut events, mut items, mut impressions) = (Vec::new(), Vec::new(), Vec::new());
    // Nine days of ordinary history, for baselines and population facts.
    for a in 0..8 {
        for d in 0..9 {
            for k in 0..4 {
                let item = format!("n{a}-{d}-{k}");
                items.push(format!(r#"{{"id":"{item}","author":"news{a}","labels":["news"]}}"#));
                let t = t0 - (9 - d) * day + k * 600_000 + a * 1000;
                events.push(format!(
                    r#"{{"ts":"{}","actor":"c{a}","action":"like","target":"{item}","surface":"home"}}"#,
                    ts(t)
                ));
            }
        }
    }
    for x in ["x1", "x2", "x3"] {
        items.push(format!(r#"{{"id":"{x}","author":"spam","labels":["scam/crypto"]}}"#));
    }
    // The campaign: eight accounts like x1, x2 and x3, half a minute apart.
    for a in 0..8 {
        for (k, x) in ["x1", "x2", "x3"].iter().enumerate() {
            let t = t0 + k as i64 * 240_000 + a * 30_000;
            events.push(format!(
                r#"{{"ts":"{}","actor":"c{a}","action":"like","target":"{x}","surface":"direct"}}"#,
                ts(t)
            ));
        }
    }
    // An off-pattern like by c0 an hour later whose impression is logged
    // 40 seconds after it.
    items.push(r#"{"id":"q","author":"far","labels":["adult"]}"#.to_string());
    let t1 = t0 + 3_600_000;
    events.push(format!(r#"{{"ts":"{}","actor":"c0","action":"like","target":"q","surface":"home"}}"#, ts(t1)));
    impressions.push(format!(r#"{{"actor":"c0","item":"q","ts":"{}"}}"#, ts(t1 + 40_000)));
    // Something after, so that the data reaches past both.
    events.push(format!(r#"{{"ts":"{}","actor":"z","action":"post","target":"end"}}"#, ts(t0 + day)));
    let write = |name: &str, rows: &[String]| std::fs::write(full.join(name), rows.join("\n") + "\n").unwrap();
    write("events.jsonl", &events);
    write("items.jsonl", &items);
    write("impressions.jsonl", &impressions);
    write("follows.jsonl", &[r#"{"follower":"c0","followee":"news0"}"#.to_string()]);
    write("accounts.jsonl", &[r#"{"id":"c0"}"#.to_string()]);
    // Cuts: inside the campaign, between the like and its impression, and
    // after everything.
    let cuts = [t0 + 100_000, t0 + 500_000, t1 + 20_000, t0 + 2 * day];
    let statuses = check_cuts(&full, &cuts, "waiting verdicts");
    assert!(statuses.contains_key("updated") || statuses.contains_key("withdrawn"), "{statuses:?}");
}
