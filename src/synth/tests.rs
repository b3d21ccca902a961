//! Behaviour of the generator as a whole: determinism, readability by the
//! data layer, and the ground truth's promises (windows hold the episodes;
//! injected likes are really unexposed; look-alikes really are exposed).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::account::{Mark, Output, Sim};
use super::population::World;
use super::*;
use crate::data::{Dataset, ReadOptions};
use crate::time::{DAY, parse_timestamp};

fn small(accounts: u32, days: u32) -> SynthConfig {
    SynthConfig { accounts, days, seed: 7, compromise_rate: 0.04, lookalike_rate: 0.04, ..SynthConfig::default() }
}

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(f)
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap())
        })
        .collect()
}

#[test]
fn same_seed_same_bytes_for_any_thread_count() {
    let mut cfg = small(700, 8);
    cfg.impressions = true;
    let one = tempfile::tempdir().unwrap();
    let four = tempfile::tempdir().unwrap();
    let again = tempfile::tempdir().unwrap();
    in_pool(1, || generate(&cfg, one.path())).unwrap();
    in_pool(4, || generate(&cfg, four.path())).unwrap();
    in_pool(3, || generate(&cfg, again.path())).unwrap();
    let (a, b, c) = (files(one.path()), files(four.path()), files(again.path()));
    assert_eq!(a.len(), 6);
    for (name, bytes) in &a {
        assert!(!bytes.is_empty(), "{name} is empty");
        assert!(bytes == &b[name], "{name}: 1 and 4 threads differ");
        assert!(bytes == &c[name], "{name}: a second run differs");
    }
    // Impressions come from their own streams: asking for them changes no
    // event.
    let without = tempfile::tempdir().unwrap();
    cfg.impressions = false;
    generate(&cfg, without.path()).unwrap();
    assert!(files(without.path())["events.jsonl"] == a["events.jsonl"]);
    // Another seed, another dataset.
    let other = tempfile::tempdir().unwrap();
    cfg.seed = 8;
    generate(&cfg, other.path()).unwrap();
    assert!(files(other.path())["events.jsonl"] != a["events.jsonl"]);
}

#[test]
fn every_format_reads_back_without_skipped_records() {
    for (format, compression) in [
        (Format::Jsonl, Compression::None),
        (Format::Csv, Compression::None),
        (Format::Jsonl, Compression::Zstd),
        (Format::Csv, Compression::Zstd),
        (Format::Csv, Compression::Gzip),
    ] {
        let cfg = SynthConfig { format, compression, impressions: true, ..small(600, 5) };
        let dir = tempfile::tempdir().unwrap();
        let report = generate(&cfg, dir.path()).unwrap();
        let data = Dataset::open(dir.path(), &ReadOptions::default()).unwrap();
        let what = format!("{format:?}/{compression:?}");
        assert_eq!(data.report.skipped(), 0, "{what}: {:?}", data.report);
        let dups = data.report.table(TableKind::Events).unwrap().duplicates;
        assert_eq!(dups, report.duplicates, "{what}");
        assert_eq!(data.events.len() as u64, report.records(TableKind::Events) - dups, "{what}");
        assert_eq!(data.items.len() as u64, report.records(TableKind::Items));
        assert_eq!(data.accounts.table.rows, 600);
        let labels = data.labels.as_ref().unwrap();
        assert_eq!(labels.rows.len() as u64, report.records(TableKind::Labels));
        assert!(labels.rows.iter().any(|l| l.compromised && l.start.is_some()));
        assert!(data.impressions.as_ref().is_some_and(|i| !i.is_empty()));
        assert!(data.follows.as_ref().is_some_and(|f| !f.is_empty()));
    }
}

#[test]
fn broken_lines_are_exactly_the_skipped_ones() {
    for format in [Format::Jsonl, Format::Csv] {
        let cfg = SynthConfig { format, broken_rate: 0.01, ..small(300, 4) };
        let dir = tempfile::tempdir().unwrap();
        let report = generate(&cfg, dir.path()).unwrap();
        assert!(report.broken > 0);
        let data = Dataset::open(dir.path(), &ReadOptions::default()).unwrap();
        assert_eq!(data.report.skipped(), report.broken, "{format:?}");
    }
}

#[test]
fn refuses_to_mix_with_other_table_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("events.csv"), "ts,actor,action\n").unwrap();
    let err = generate(&small(100, 2), dir.path()).unwrap_err();
    assert!(matches!(err, SynthError::Conflict { .. }), "{err}");
    assert!(err.to_string().contains("events.csv"), "{err}");
    assert!(matches!(generate(&small(50, 2), dir.path()), Err(SynthError::Config(_))));
}

#[test]
fn style_counts_follow_the_rates() {
    let cfg = SynthConfig { compromise_rate: 0.05, lookalike_rate: 0.02, ..small(4000, 6) };
    let dir = tempfile::tempdir().unwrap();
    let report = generate(&cfg, dir.path()).unwrap();
    let eligible = 4000.0 * 0.95; // creators are never planted
    for style in episodes::Style::ALL {
        let bad = report.styles.get(style.name()).copied().unwrap_or(0) as f64;
        let expect = eligible * 0.05 / 5.0;
        assert!((bad - expect).abs() < expect * 0.35, "{}: {bad} planted, expected about {expect}", style.name());
        let look = format!("lookalike-{}", style.name());
        let benign = report.styles.get(&look).copied().unwrap_or(0) as f64;
        let expect = eligible * 0.02 / 5.0;
        assert!((benign - expect).abs() < expect * 0.5, "{look}: {benign} planted, expected about {expect}");
    }
}

#[test]
fn windows_hold_every_episode_event() {
    let world = World::build(3, 3000, 10, 1_704_067_200_000, 0.05, 0.03);
    let mut seen = BTreeSet::new();
    for p in &world.plan.planted {
        let mut out = Output::default();
        let label = Sim::new(&world, p.account, false).run(&mut out);
        let Some(label) = label else { continue };
        seen.insert(label.style.clone());
        let marked: Vec<_> = out.events.iter().filter(|e| e.mark != Mark::Normal).collect();
        if !p.compromised {
            assert!(label.window.is_none());
            assert!(marked.is_empty(), "{}: attacker events", label.style);
            continue;
        }
        let (start, end) = label.window.expect("compromised labels have a window");
        assert!(start <= end);
        assert!(end - start < 3 * DAY, "{}: window too long", label.style);
        assert!(
            marked.iter().any(|e| e.mark == Mark::Attacker),
            "{} of u{}: no attacker event",
            label.style,
            p.account
        );
        for e in &marked {
            assert!(
                e.ts >= start && e.ts <= end,
                "{} of u{}: {:?} at {} outside {start}..{end}",
                label.style,
                p.account,
                e.action,
                e.ts
            );
        }
        assert_eq!(marked.iter().map(|e| e.ts).min(), Some(start));
        assert_eq!(marked.iter().map(|e| e.ts).max(), Some(end));
    }
    assert_eq!(seen.len(), 10, "not every style was played: {seen:?}");
}

/// The dataset as plain records, for checks that follow the contract
/// rather than the generator's internals.
struct Plain {
    events: Vec<serde_json::Value>,
    follows: BTreeMap<String, BTreeSet<String>>,
    labels: Vec<serde_json::Value>,
    impressions: BTreeSet<(String, String)>,
}

fn read_plain(dir: &Path) -> Plain {
    let lines = |name: &str| -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.join(name))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let s = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    let mut follows: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in lines("follows.jsonl") {
        follows.entry(s(&f, "follower")).or_default().insert(s(&f, "followee"));
    }
    let mut events = lines("events.jsonl");
    events.sort_by_key(|e| (s(e, "actor"), parse_timestamp(&s(e, "ts"))));
    Plain {
        events,
        follows,
        labels: lines("labels.jsonl"),
        impressions: lines("impressions.jsonl").iter().map(|i| (s(i, "actor"), s(i, "item"))).collect(),
    }
}

impl Plain {
    /// Whom `actor` followed just before `t`.
    fn followees_at(&self, actor: &str, t: i64) -> BTreeSet<String> {
        let mut set = self.follows.get(actor).cloned().unwrap_or_default();
        for e in self.events_of(actor) {
            if ts(e) >= t {
                break;
            }
            let target = e["target"].as_str().unwrap_or_default().to_string();
            match e["action"].as_str() {
                Some("follow") => {
                    set.insert(target);
                }
                Some("unfollow") => {
                    set.remove(&target);
                }
                _ => {}
            }
        }
        set
    }

    fn events_of<'a>(&'a self, actor: &'a str) -> impl Iterator<Item = &'a serde_json::Value> {
        self.events.iter().filter(move |e| e["actor"] == actor)
    }

    /// Whether some followee of `actor` reposted `item` in the week before `t`.
    fn reposted_by_followee(&self, actor: &str, item: &str, t: i64) -> bool {
        let followees = self.followees_at(actor, t);
        self.events.iter().any(|e| {
            e["action"] == "repost"
                && e["target"] == item
                && followees.contains(e["actor"].as_str().unwrap())
                && ts(e) < t
                && ts(e) >= t - 7 * DAY
        })
    }
}

fn ts(e: &serde_json::Value) -> i64 {
    parse_timestamp(e["ts"].as_str().unwrap()).unwrap()
}

#[test]
fn injected_likes_are_unexposed_and_lookalike_likes_are_not() {
    let cfg = SynthConfig { impressions: true, compromise_rate: 0.08, lookalike_rate: 0.08, ..small(1200, 10) };
    let dir = tempfile::tempdir().unwrap();
    generate(&cfg, dir.path()).unwrap();
    let data = read_plain(dir.path());
    let (mut checked, mut exposed_lookalikes) = (0, 0);
    for l in &data.labels {
        let actor = l["actor"].as_str().unwrap();
        let style = l["style"].as_str().unwrap();
        match style {
            "story" | "quiet" => {
                let (start, end) = (
                    parse_timestamp(l["start"].as_str().unwrap()).unwrap(),
                    parse_timestamp(l["end"].as_str().unwrap()).unwrap(),
                );
                let injected: Vec<_> =
                    data.events_of(actor).filter(|e| e["action"] == "like" && e["surface"] == "direct").collect();
                assert!(!injected.is_empty(), "{actor}: no injected like");
                for e in injected {
                    let t = ts(e);
                    assert!(t >= start && t <= end);
                    let author = e["target_author"].as_str().unwrap();
                    let item = e["target"].as_str().unwrap();
                    assert!(
                        !data.followees_at(actor, t).contains(author),
                        "{actor} ({style}) follows {author}, whose {item} it was made to like"
                    );
                    assert!(
                        !data.reposted_by_followee(actor, item, t),
                        "{actor} ({style}): a followee reposted {item}"
                    );
                    assert!(
                        !data.impressions.contains(&(actor.to_string(), item.to_string())),
                        "{actor}: an impression of injected {item}"
                    );
                    checked += 1;
                }
            }
            "lookalike-quiet" => {
                for e in data.events_of(actor).filter(|e| e["action"] == "like" && e["surface"] == "home") {
                    let item = e["target"].as_str().unwrap();
                    let author = e["target_author"].as_str().unwrap();
                    assert!(
                        data.followees_at(actor, ts(e)).contains(author)
                            || data.reposted_by_followee(actor, item, ts(e)),
                        "{actor}: home like of {item} with no path to it"
                    );
                    exposed_lookalikes += 1;
                }
            }
            _ => {}
        }
    }
    assert!(checked >= 10, "only {checked} injected likes checked");
    assert!(exposed_lookalikes >= 4, "only {exposed_lookalikes}");
}

#[test]
fn home_likes_are_exposed() {
    let dir = tempfile::tempdir().unwrap();
    generate(&small(500, 6), dir.path()).unwrap();
    let data = read_plain(dir.path());
    let mut n = 0;
    for e in data.events.iter().filter(|e| e["action"] == "like" && e["surface"] == "home").step_by(7) {
        let actor = e["actor"].as_str().unwrap();
        let item = e["target"].as_str().unwrap();
        let author = e["target_author"].as_str().unwrap();
        assert!(
            data.followees_at(actor, ts(e)).contains(author) || data.reposted_by_followee(actor, item, ts(e)),
            "{actor}: home like of {item} with no path to it"
        );
        n += 1;
    }
    assert!(n > 100);
}
