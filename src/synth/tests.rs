//! Behaviour of the generator as a whole: determinism, readability by the
//! data layer, and the ground truth's promises (windows hold the episodes;
//! injected likes are really unexposed; look-alikes really are exposed).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::account::{
    Action, BINGE_DAILY, BINGE_KEEPS, BINGE_LIKES, CLEANUP_DAILY, Habits, LINK_DAILY, Mark, Output, RATING_DAILY,
    RATING_LIKES, Sim, Surface, Target,
};
use super::episodes::{ATTACKER_ROUTES, HIJACK_SHARE, Style};
use super::population::{DORMANT_SHARE, EXPLORER_SHARE, ItemKey, PRE_DAYS, Profile, SMALL_SHARE, World};
use super::*;
use crate::data::{Dataset, ReadOptions};
use crate::time::{DAY, HOUR, MINUTE, Millis, parse_timestamp};

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
    let report = in_pool(1, || generate(&cfg, one.path())).unwrap();
    let report4 = in_pool(4, || generate(&cfg, four.path())).unwrap();
    assert_eq!((report4.habits, &report4.styles), (report.habits, &report.styles));
    in_pool(3, || generate(&cfg, again.path())).unwrap();
    // The untidy habits are part of what must not depend on threads.
    let h = report.habits;
    assert!(h.binges > 0 && h.link_shares > 0 && h.rating_sessions > 0 && h.comebacks > 0, "{h:?}");
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

/// The world `generate` builds for `cfg`.
fn world_of(cfg: &SynthConfig) -> World {
    World::build(cfg.seed, cfg.accounts, cfg.days, cfg.start, cfg.compromise_rate, cfg.lookalike_rate)
}

/// The (time, item id) of every like the generator marked as the
/// attacker's, for account `a`.
fn attacker_likes(world: &World, a: u32) -> Vec<(i64, String)> {
    let mut out = Output::default();
    Sim::new(world, a, false).run(&mut out);
    out.events
        .iter()
        .filter(|e| e.mark == Mark::Attacker && e.action == Action::Like)
        .map(|e| match e.target {
            Target::Item(k) => (e.ts, format!("t{}-{}-{}", k.author, k.day + PRE_DAYS, k.k)),
            _ => unreachable!("likes are of items"),
        })
        .collect()
}

#[test]
fn injected_likes_are_unexposed_and_lookalike_likes_are_not() {
    let cfg = SynthConfig { impressions: true, compromise_rate: 0.08, lookalike_rate: 0.08, ..small(1200, 10) };
    let dir = tempfile::tempdir().unwrap();
    generate(&cfg, dir.path()).unwrap();
    let data = read_plain(dir.path());
    let world = world_of(&cfg);
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
                let injected = attacker_likes(&world, actor[1..].parse().unwrap());
                assert!(!injected.is_empty(), "{actor}: no injected like");
                for (t, item) in &injected {
                    // The like as written, found by actor, item and time.
                    let e = data
                        .events_of(actor)
                        .find(|e| e["action"] == "like" && e["target"] == item.as_str() && ts(e) == *t)
                        .unwrap_or_else(|| panic!("{actor}: injected like of {item} not written"));
                    let t = ts(e);
                    assert!(t >= start && t <= end);
                    let author = e["target_author"].as_str().unwrap();
                    let item = item.as_str();
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

const START: Millis = 1_704_067_200_000;

/// Every account of `world` simulated on its own: its profile and output.
fn simulate(world: &World) -> Vec<(Profile, Output)> {
    (0..world.n)
        .map(|a| {
            let mut out = Output::default();
            Sim::new(world, a, false).run(&mut out);
            (world.profile(a), out)
        })
        .collect()
}

/// The owner's likes in `out`: (time, item).
fn own_likes(out: &Output) -> impl Iterator<Item = (Millis, ItemKey)> + '_ {
    out.events.iter().filter(|e| e.mark == Mark::Normal && e.action == Action::Like).filter_map(|e| match e.target {
        Target::Item(k) => Some((e.ts, k)),
        _ => None,
    })
}

/// Whether `x` is within `tolerance` (relative) of `expect`.
fn near(x: f64, expect: f64, tolerance: f64) -> bool {
    (x - expect).abs() <= expect * tolerance
}

/// An ordinary world (nothing planted), simulated: 3,000 accounts, 30 days.
fn ordinary_world() -> (World, Vec<(Profile, Output)>) {
    let world = World::build(11, 3000, 30, START, 0.0, 0.0);
    let sims = simulate(&world);
    (world, sims)
}

#[test]
fn ordinary_habits_happen_at_their_rates() {
    let (world, sims) = ordinary_world();
    let mut habits = Habits::default();
    let (mut active_days, mut account_days) = (0.0, 0.0);
    let (mut ordinary, mut smalls, mut explorers, mut dormant) = (0.0, 0.0, 0.0, 0.0);
    for (p, out) in &sims {
        habits.add(&out.habits);
        let days: BTreeSet<i32> = own_likes(out).map(|(t, _)| world.day_of(t)).collect();
        active_days += days.len() as f64;
        account_days += (0..world.days).filter(|&d| !p.rates.dormant_on(d)).count() as f64;
        if p.creator.is_none() {
            ordinary += 1.0;
            smalls += f64::from(u8::from(p.small));
            explorers += f64::from(u8::from(p.explorer));
            dormant += f64::from(u8::from(p.comeback.is_some()));
        }
    }
    let h = habits;
    let report = format!("{h:?} over {active_days} active days, {account_days} account-days");
    assert!(near(smalls / ordinary, SMALL_SHARE, 0.2), "{smalls} small of {ordinary}");
    assert!(near(explorers / ordinary, EXPLORER_SHARE, 0.3), "{explorers} explorers of {ordinary}");
    assert!(near(dormant / ordinary, DORMANT_SHARE, 0.3), "{dormant} dormant of {ordinary}");
    assert_eq!(h.comebacks as f64, dormant, "every dormant account comes back");
    assert!(near(h.binges as f64, BINGE_DAILY * active_days, 0.35), "binges: {report}");
    assert!(near(h.binges_kept as f64 / h.binges as f64, BINGE_KEEPS, 0.25), "kept: {report}");
    assert!(h.binge_likes >= h.binges * BINGE_LIKES.0 as u64 * 3 / 4, "binge likes: {report}");
    assert!(near(h.rating_sessions as f64, RATING_DAILY * active_days, 0.35), "ratings: {report}");
    assert!(h.rating_likes >= h.rating_sessions * RATING_LIKES.0 as u64 * 9 / 10, "rating likes: {report}");
    assert!(near(h.link_shares as f64, LINK_DAILY * account_days, 0.2), "links: {report}");
    assert!(h.link_likes > h.link_shares, "no thread of links: {report}");
    assert!(near(h.cleanups as f64, CLEANUP_DAILY * active_days, 0.45), "clean-ups: {report}");
    assert!(h.cleanup_unlikes > h.cleanups && h.late_unlikes > 0, "{report}");
}

#[test]
fn binges_are_many_likes_of_a_new_topic_and_some_last() {
    let (world, sims) = ordinary_world();
    let (mut bingers, mut found, mut kept, mut returned) = (0, 0, 0, 0);
    for (p, out) in sims.iter().filter(|(_, o)| o.habits.binges > 0) {
        bingers += 1;
        let likes: Vec<(Millis, u8)> = own_likes(out)
            .flat_map(|(t, k)| world.item(k).labels().to_vec().into_iter().map(move |l| (t, l)))
            .collect();
        // A topic never among the account's interests, liked at least
        // 3/4 of BINGE_LIKES.0 times within two hours (a binge's creators
        // sometimes post on their other topics).
        let binge = likes.iter().find_map(|&(t, topic)| {
            let n = likes.iter().filter(|&&(u, l)| l == topic && u >= t && u < t + 2 * HOUR).count();
            (n >= BINGE_LIKES.0 as usize * 3 / 4 && !p.interests.iter().any(|i| i.topic == topic)).then_some((t, topic))
        });
        let Some((t, topic)) = binge else { continue };
        found += 1;
        if out.habits.binges_kept > 0 {
            kept += 1;
            if likes.iter().any(|&(u, l)| l == topic && u > t + DAY) {
                returned += 1;
            }
        }
    }
    assert!(bingers > 50, "{bingers} accounts binged");
    assert!(found * 10 >= bingers * 9, "only {found} of {bingers} binges seen in the likes");
    assert!(returned * 3 >= kept, "only {returned} of {kept} lasting binges came back to the topic");
}

#[test]
fn rating_sessions_span_several_topics_in_one_sitting() {
    let (world, sims) = ordinary_world();
    let (mut raters, mut found) = (0, 0);
    for (_, out) in sims.iter().filter(|(_, o)| o.habits.rating_sessions > 0) {
        raters += 1;
        let likes: Vec<(Millis, ItemKey)> = own_likes(out).collect();
        let sitting = likes.iter().any(|&(t, _)| {
            let window: Vec<_> = likes.iter().filter(|&&(u, _)| u >= t && u < t + 45 * MINUTE).collect();
            let topics: BTreeSet<u8> =
                window.iter().flat_map(|&&(_, k)| world.item(k).labels().first().copied()).collect();
            window.len() >= RATING_LIKES.0 as usize && topics.len() >= 3
        });
        found += usize::from(sitting);
    }
    assert!(raters > 50, "{raters} accounts had a rating session");
    assert!(found * 10 >= raters * 9, "only {found} of {raters} rating sessions seen in the likes");
}

#[test]
fn explorers_like_off_their_top_topics() {
    let (world, sims) = ordinary_world();
    // Share of likes outside the account's two heaviest initial interests.
    let off_top = |explorer: bool| {
        let (mut off, mut all) = (0.0, 0.0);
        for (p, out) in sims.iter().filter(|(p, _)| p.creator.is_none() && p.explorer == explorer) {
            let mut top: Vec<_> = p.interests.iter().collect();
            top.sort_by(|a, b| b.weight.total_cmp(&a.weight));
            let top: Vec<u8> = top.iter().take(2).map(|i| i.topic).collect();
            for (_, k) in own_likes(out) {
                all += 1.0;
                if !world.item(k).labels().iter().any(|l| top.contains(l)) {
                    off += 1.0;
                }
            }
        }
        off / all
    };
    let (explorers, others) = (off_top(true), off_top(false));
    assert!(explorers >= 0.4, "explorers: {explorers:.3} of likes off their top topics");
    assert!(explorers >= others * 1.5, "explorers {explorers:.3}, others {others:.3}");
}

#[test]
fn small_accounts_have_a_handful_of_events() {
    let (_, sims) = ordinary_world();
    let mut counts: Vec<usize> = sims
        .iter()
        .filter(|(p, _)| p.small)
        .map(|(_, out)| out.events.iter().filter(|e| e.mark == Mark::Normal).count())
        .collect();
    counts.sort_unstable();
    let median = counts[counts.len() / 2];
    assert!(median <= 10, "small accounts: median {median} events in 30 days");
}

#[test]
fn dormant_accounts_are_silent_then_come_back() {
    let (world, sims) = ordinary_world();
    let (mut returners, mut new_phones, mut abroad, mut resets) = (0, 0, 0, 0);
    for (p, out) in &sims {
        let Some(c) = p.comeback else { continue };
        returners += 1;
        let (from, back) = p.rates.dormant;
        assert!(back - from >= 14 && world.day_of(c.at) == back);
        assert!(
            out.events.iter().all(|e| !p.rates.dormant_on(world.day_of(e.ts))),
            "u{}: an event while dormant",
            p.id
        );
        let login = out
            .events
            .iter()
            .filter(|e| e.action == Action::Login && e.ts <= c.at)
            .max_by_key(|e| e.ts)
            .unwrap_or_else(|| panic!("u{}: no login on coming back", p.id));
        assert!(login.ts > c.at - MINUTE);
        if let Some(phone) = c.new_phone {
            assert_eq!(login.net.device, phone.id, "u{}: back on the old phone", p.id);
            new_phones += 1;
        }
        if login.net.country != p.country {
            abroad += 1;
        }
        let day = |t| world.day_of(t);
        let burst = out.events.iter().filter(|e| day(e.ts) == back).count();
        assert!(burst >= 2, "u{}: no burst on coming back", p.id);
        resets += usize::from(out.events.iter().any(|e| e.action == Action::PasswordChange && e.ts > c.at));
    }
    assert!(returners > 100, "{returners}");
    assert!(new_phones > returners / 5 && abroad > returners / 10 && resets > returners / 10);
}

#[test]
fn benign_link_likes_are_unexposed_and_some_are_removed() {
    let cfg = SynthConfig { impressions: true, compromise_rate: 0.0, lookalike_rate: 0.0, ..small(1500, 12) };
    let dir = tempfile::tempdir().unwrap();
    generate(&cfg, dir.path()).unwrap();
    let data = read_plain(dir.path());
    let (mut checked, mut removed) = (0, BTreeSet::new());
    for e in data.events.iter().filter(|e| e["action"] == "like" && e["surface"] == "direct") {
        let actor = e["actor"].as_str().unwrap();
        let item = e["target"].as_str().unwrap();
        let author = e["target_author"].as_str().unwrap();
        assert!(!data.followees_at(actor, ts(e)).contains(author), "{actor} follows {author}");
        assert!(!data.impressions.contains(&(actor.to_string(), item.to_string())));
        checked += 1;
        if let Some(u) = data.events_of(actor).find(|u| u["action"] == "unlike" && u["target"] == item) {
            let delay = ts(u) - ts(e);
            removed.insert(if delay < HOUR {
                0
            } else if delay < DAY {
                1
            } else {
                2
            });
        }
    }
    assert!(checked > 100, "only {checked} likes from links");
    assert_eq!(removed.len(), 3, "removed after minutes, hours and days: {removed:?}");
}

#[test]
fn attackers_navigate_and_sometimes_use_the_owners_session() {
    let world = World::build(5, 6000, 12, START, 0.1, 0.0);
    let mut surfaces: BTreeMap<Surface, f64> = BTreeMap::new();
    let (mut episodes, mut hijacked, mut on_device) = (0.0, 0.0, 0);
    for p in world.plan.planted.iter().filter(|p| p.compromised) {
        let profile = world.profile(p.account);
        let mut out = Output::default();
        Sim::new(&world, p.account, false).run(&mut out);
        let attacks: Vec<_> = out.events.iter().filter(|e| e.mark == Mark::Attacker).collect();
        if attacks.is_empty() {
            continue;
        }
        episodes += 1.0;
        for e in attacks.iter().filter(|e| matches!(e.action, Action::Like | Action::Repost)) {
            *surfaces.entry(e.surface.unwrap()).or_default() += 1.0;
        }
        let owner = profile.devices[0];
        if attacks.iter().all(|e| e.net.device == owner.id && e.net.client == owner.client) {
            hijacked += 1.0;
            assert!(attacks.iter().all(|e| e.net.country == profile.country));
            // On the device itself the address is the owner's too.
            let owner_sim = Sim::new(&world, p.account, false);
            on_device += usize::from(attacks.iter().all(|e| e.net == owner_sim.owner_net(e.ts)));
            if p.style == Style::Takeover {
                assert!(attacks.iter().all(|e| e.action != Action::Login), "a hijack needs no login");
            }
        }
    }
    let total: f64 = surfaces.values().sum();
    for (surface, weight) in ATTACKER_ROUTES {
        let share = surfaces.get(&surface).copied().unwrap_or(0.0) / total;
        assert!(near(share, weight, 0.25), "{surface:?}: {share:.3} of attacker likes, expected {weight}");
    }
    assert!(near(hijacked / episodes, HIJACK_SHARE, 0.3), "{hijacked} of {episodes} episodes hijacked");
    assert!(on_device > 0 && (on_device as f64) < hijacked, "{on_device} on the device of {hijacked}");
}
