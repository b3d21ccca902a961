//! `lockstep`: many accounts acting on the same items within minutes of
//! this account, item after item.
//!
//! **What it detects.** The event acts on an item (a like, a repost), and
//! at least `min_accounts` other accounts acted on this item within
//! `window` of it *and* on at least `min_items - 1` of the other items this
//! account acted on in the `lookback` before, each within `window` of this
//! account's action. This is the core of CopyCatch (Beutel et al., WWW
//! 2013): lockstep behaviour on several items, not popularity of one.
//!
//! **Why it suggests compromise.** Campaigns run through hijacked accounts
//! make them like the same posts within minutes of each other. A viral post
//! is liked by many accounts within minutes too, but those accounts do not
//! also share this account's previous likes minute by minute.
//!
//! **How.** An index of who acted on which item when (`actions`, built once
//! over the whole input, shared) is searched around each of the account's
//! recent items. It looks at other accounts' actions after the event as
//! well as before: it is a batch signal. At most `max_scan` co-actors (other
//! accounts) per item are examined, to bound the cost on very popular items.
//! The index keeps times to the second (its windows are minutes) and leaves
//! out entries with no other account on the item within `window`, which
//! lockstep could never count (about half of all likes on synthetic logs).
//! Strength: `1 - 0.5^(accounts / min_accounts)`.
//!
//! **Parameters** (defaults): `actions = ["like", "repost"]`,
//! `window = "10m"`, `lookback = "1h"`, `min_accounts = 5`, `min_items = 2`,
//! `max_scan = 2000`.
//!
//! ```toml
//! [[signal]]
//! kind = "lockstep"
//! min_accounts = 5
//! min_items = 2
//! ```
//!
//! **Known false positives.** Friends who share a feed and like the same
//! posts together (small groups: keep `min_accounts` above a friend group),
//! live-event threads.

use std::collections::VecDeque;
use std::sync::Arc;

use super::spec::{Default as D, Param, ParamReader, Ty, key, opt};
use super::{Cause, Ev, Horizon, Need, Needs, Outcome, Persist, Signal, Universe, Why, sorted};
use crate::data::schema::TableKind;
use crate::data::{AccountSpan, Dataset};
use crate::facts::item_index::ItemActors;
use crate::intern::{Sym, SymMap};
use crate::state::codec::{CodecError, Dec, Enc};
use crate::time::{HOUR, MINUTE, Millis, compact_duration};

/// The kind.
pub struct Lockstep;

/// The parameters.
pub const PARAMS: &[Param] = &[
    key("actions", Ty::List, D::List(&["like", "repost"]), "actions that count as acting on an item"),
    opt(
        "window",
        Ty::Duration,
        D::Duration(10 * MINUTE),
        "how close in time two accounts' actions on one item must be",
    ),
    key("lookback", Ty::Duration, D::Duration(HOUR), "how far back this account's earlier items are considered"),
    opt("min_accounts", Ty::Count { min: 1, max: 1_000_000 }, D::Count(5), "other accounts needed"),
    opt(
        "min_items",
        Ty::Count { min: 1, max: 1000 },
        D::Count(2),
        "items shared in lockstep needed (this one included)",
    ),
    opt("max_scan", Ty::Count { min: 1, max: 10_000_000 }, D::Count(2000), "co-actors examined per item at most"),
];

/// The parameters the per-account state (this account's recent items)
/// depends on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// Actions that count as acting on an item.
    pub actions: Vec<String>,
    /// How far back this account's earlier items are considered.
    pub lookback: Millis,
}

/// The other parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Opts {
    /// How close in time two accounts' actions on one item must be.
    pub window: Millis,
    /// Other accounts needed.
    pub min_accounts: u64,
    /// Items shared in lockstep needed (this one included).
    pub min_items: u64,
    /// Co-actors examined per item at most.
    pub max_scan: u64,
}

/// The key bound to a run.
#[derive(Debug)]
pub struct Tracker {
    actions: Vec<Sym>,
    lookback: Millis,
}

/// The options bound to a run.
#[derive(Debug)]
pub struct Judge {
    opts: Opts,
    index: Arc<ItemActors>,
    /// When the run's data ends: a verdict on an event closer to it than
    /// the window may change when later data comes (a daily run).
    data_end: Option<Millis>,
}

impl Persist for Frozen {
    fn save(&self, w: &mut Enc<'_>) {
        w.time(self.ts);
        w.sym(self.actor);
        w.sym(self.item);
        w.count(self.recent.len());
        for &(at, item) in &self.recent {
            w.time(at);
            w.sym(item);
        }
        w.time(self.window);
    }

    fn load(r: &mut Dec<'_>) -> Result<Frozen, CodecError> {
        let (ts, actor, item) = (r.time()?, r.sym()?, r.sym()?);
        let recent = (0..r.count()?).map(|_| Ok((r.time()?, r.sym()?))).collect::<Result<_, CodecError>>()?;
        Ok(Frozen { ts, actor, item, recent, window: r.time()? })
    }
}

/// A verdict waiting for the data after it: what it was judged on, to judge
/// it again when other accounts' later actions are known.
#[derive(Clone, Debug)]
pub struct Frozen {
    ts: Millis,
    actor: Sym,
    item: Sym,
    /// The account's recent items then.
    recent: Vec<(Millis, Sym)>,
    window: Millis,
}

/// Per-account state: this account's recent items.
#[derive(Debug, Default)]
pub struct State {
    recent: VecDeque<(Millis, Sym)>,
}

/// Buffers for one judgement.
#[derive(Debug, Default)]
pub struct Scratch {
    /// Co-actor -> (items in step, index of the last item counted).
    counts: SymMap<(u32, u32)>,
    /// The other accounts on the event's item within the window, sorted.
    on_item: Vec<Sym>,
}

/// Up to this many entries in the event's window, the accounts on the item
/// are listed once per event; beyond, each co-actor is looked up.
const LIST_AT_MOST: usize = 4096;

impl Signal for Lockstep {
    const NAME: &'static str = "lockstep";
    const FAMILY: Option<&'static str> = Some("lockstep");
    const PARAMS: &'static [Param] = PARAMS;
    type Key = Key;
    type Opts = Opts;
    type Tracker = Tracker;
    type Judge = Judge;
    type State = State;
    type Scratch = Scratch;
    type Later = Frozen;

    fn parse(r: &mut ParamReader<'_, '_, '_, '_>) -> (Key, Opts) {
        let key = Key { actions: r.list("actions"), lookback: r.duration("lookback") };
        let opts = Opts {
            window: r.duration("window"),
            min_accounts: r.count("min_accounts"),
            min_items: r.count("min_items"),
            max_scan: r.count("max_scan"),
        };
        (key, opts)
    }

    fn needs(key: &Key, opts: &Opts) -> Needs {
        let mut n = Needs::default();
        n.read(TableKind::Events, &["action", "target"]);
        n.facts.push(Need::ItemIndex {
            actions: sorted(&key.actions),
            every_entry: false,
            lockstep_window: Some(opts.window),
            reach: (opts.window, opts.window),
            // Its own events of these actions, judged or remembered as
            // recent items.
            read_at: Some(sorted(&key.actions)),
            // A later event reads around its recent items, within the
            // lookback, and a verdict waiting for later data around its own.
            keep: key.lookback.saturating_add(opts.window.saturating_mul(2)),
        });
        n.reach = key.lookback.saturating_add(opts.window);
        n
    }

    fn tracker(key: &Key, u: &Universe<'_>) -> Tracker {
        Tracker { actions: u.resolve_all(&key.actions), lookback: key.lookback }
    }

    fn judge(key: &Key, opts: &Opts, u: &Universe<'_>) -> Judge {
        Judge { opts: opts.clone(), index: u.item_index(&sorted(&key.actions)), data_end: u.facts.data_end }
    }

    fn new_state(_t: &Tracker) -> State {
        State::default()
    }

    fn reset(_t: &Tracker, s: &mut State, _span: &AccountSpan, _data: &Dataset) {
        s.recent.clear();
    }

    fn observe(t: &Tracker, s: &mut State, e: &Ev<'_>) {
        let horizon = e.ts.saturating_sub(t.lookback);
        while s.recent.front().is_some_and(|&(at, _)| at < horizon) {
            s.recent.pop_front();
        }
        if t.actions.contains(&e.action)
            && let Some(item) = e.target()
        {
            s.recent.push_back((e.ts, item));
        }
    }

    fn horizon(_key: &Key, opts: &Opts) -> Horizon {
        Horizon { adds: opts.window, revokes: 0 }
    }

    /// A verdict on an event less than the window before the data's end
    /// may change when the later actions of other accounts come.
    fn later(j: &Judge, t: &Tracker, s: &State, e: &Ev<'_>, _said: &Outcome) -> Option<Frozen> {
        let item = e.target()?;
        let window = j.opts.window;
        if !t.actions.contains(&e.action) || j.data_end.is_some_and(|end| e.ts.saturating_add(window) <= end) {
            return None;
        }
        let horizon = e.ts.saturating_sub(t.lookback);
        let recent = s.recent.iter().copied().filter(|&(at, _)| at >= horizon).collect();
        Some(Frozen { ts: e.ts, actor: e.actor, item, recent, window })
    }

    fn deadline(f: &Frozen) -> Millis {
        f.ts.saturating_add(f.window)
    }

    fn save(t: &Tracker, s: &State, now: Millis, w: &mut Enc<'_>) {
        let kept = s.recent.iter().filter(|&&(at, _)| at >= now.saturating_sub(t.lookback));
        w.count(kept.clone().count());
        for &(at, item) in kept {
            w.time(at);
            w.sym(item);
        }
    }

    fn load(_t: &Tracker, s: &mut State, r: &mut Dec<'_>, _data: &Dataset) -> Result<(), CodecError> {
        for _ in 0..r.count()? {
            s.recent.push_back((r.time()?, r.sym()?));
        }
        Ok(())
    }

    fn eval(j: &Judge, t: &Tracker, s: &State, x: &mut Scratch, e: &Ev<'_>) -> Outcome {
        let Some(item) = e.target() else { return Outcome::Quiet };
        if !t.actions.contains(&e.action) {
            return Outcome::Quiet;
        }
        let horizon = e.ts.saturating_sub(t.lookback);
        let recent = s.recent.iter().copied().filter(|&(at, _)| at >= horizon);
        let text = |i: Sym| e.text(i).to_string();
        judge_item(j, x, (e.ts, e.actor, item), recent, e.words, &text)
    }

    /// Judged again when the other accounts' later actions are known (a
    /// daily run's next batch), on what it was judged on then.
    fn revise(j: &Judge, _t: &Tracker, f: &mut Frozen, cause: &Cause<'_>, said: &Outcome) -> Option<Outcome> {
        let Cause::Refreshed(data) = *cause else { return None };
        let text = |i: Sym| data.strings.resolve(i).to_string();
        let now =
            judge_item(j, &mut Scratch::default(), (f.ts, f.actor, f.item), f.recent.iter().copied(), true, &text);
        (now != *said).then_some(now)
    }
}

/// The verdict on an account's action on `item` at `ts` (`at`: time,
/// account, item), given its recent items (within the lookback, the item
/// itself among them or not) and the index of everyone's actions.
fn judge_item(
    j: &Judge,
    x: &mut Scratch,
    (ts, actor, item): (Millis, Sym, Sym),
    recent: impl Iterator<Item = (Millis, Sym)>,
    words: bool,
    text: &dyn Fn(Sym) -> String,
) -> Outcome {
    let p = &j.opts;
    let cap = p.max_scan as usize;
    // Lockstep needs other recent items of this account: without enough
    // of them, say nothing before touching the index.
    let recent: Vec<(Millis, Sym)> = recent.filter(|&(_, i)| i != item).collect();
    let others = recent.len() as u64;
    if others + 1 < p.min_items {
        return Outcome::Quiet;
    }
    // Enough co-actors on this item at all? (Counted, not visited.)
    let (from, to) = (ts.saturating_sub(p.window), ts.saturating_add(p.window));
    let enough = |n: usize| n as u64 > p.min_accounts;
    if !enough(j.index.entries(item)) {
        return Outcome::Quiet;
    }
    let here = j.index.count_between(item, from, to);
    if !enough(here) {
        return Outcome::Quiet;
    }
    x.on_item.clear();
    let listed = here <= LIST_AT_MOST;
    if listed {
        x.on_item.extend(j.index.between(item, from, to).map(|(_, w)| w).filter(|&w| w != actor));
        x.on_item.sort_unstable();
    }
    // For each other recent item, its co-actors (within the window of
    // this account's action on it) that were also in step on this item;
    // per co-actor, on how many items (this one included).
    x.counts.clear();
    let mut shared_items = vec![item];
    for (at, other) in recent {
        if shared_items.contains(&other) {
            continue;
        }
        let mut any = false;
        let k = shared_items.len() as u32;
        let co_actors = j
            .index
            .between(other, at.saturating_sub(p.window), at.saturating_add(p.window))
            .filter(|&(_, w)| w != actor);
        for (_, who) in co_actors.take(cap) {
            let in_step = x.counts.contains_key(&who)
                || if listed { x.on_item.binary_search(&who).is_ok() } else { j.index.acted(item, who, from, to) };
            if in_step {
                let c = x.counts.entry(who).or_insert((1, 0));
                if c.1 != k {
                    *c = (c.0 + 1, k);
                    any = true;
                }
            }
        }
        if any {
            shared_items.push(other);
        }
    }
    let need = p.min_items as u32;
    let accounts = x.counts.values().filter(|c| c.0 >= need).count() as u64;
    if accounts < p.min_accounts {
        return Outcome::Quiet;
    }
    let strength = 1.0 - 0.5f64.powf(accounts as f64 / p.min_accounts as f64);
    if !words {
        return Outcome::Fire { strength, why: Why::default() };
    }
    Outcome::Fire {
        strength,
        why: Why::Text({
            let mut names: Vec<String> = shared_items.iter().map(|&i| text(i)).collect();
            names.sort_unstable();
            format!(
                "{accounts} other accounts acted on at least {need} of the same items within {} of this account ({})",
                compact_duration(p.window),
                names.join(", ")
            )
        }),
    }
}
