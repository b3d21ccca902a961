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

use super::aggregate::ItemActors;
use super::{BindCache, Ev, Outcome};
use crate::data::schema::TableKind;
use crate::data::{AccountSpan, Dataset};
use crate::intern::{Sym, SymMap};
use crate::rules::reader::{Ctx, TableReader};
use crate::time::{HOUR, MINUTE, Millis, compact_duration};

/// The evidence family of a rule led by this signal (see `[score]`).
pub const FAMILY: Option<&str> = Some("lockstep");

/// Validated parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Actions that count as acting on an item.
    pub actions: Vec<String>,
    /// How close in time two accounts' actions on one item must be.
    pub window: Millis,
    /// How far back this account's earlier items are considered.
    pub lookback: Millis,
    /// Other accounts needed.
    pub min_accounts: u64,
    /// Items shared in lockstep needed (this one included).
    pub min_items: u64,
    /// Co-actors examined per item at most.
    pub max_scan: u64,
}

impl Params {
    /// Reads the parameters of a `[[signal]]` table.
    pub fn parse(r: &mut TableReader<'_, '_>, ctx: &mut Ctx<'_>) -> Params {
        Params {
            actions: super::actions_param(r, ctx, "actions", &["like", "repost"]),
            window: r.duration_or(ctx, "window", 10 * MINUTE),
            lookback: r.duration_or(ctx, "lookback", HOUR),
            min_accounts: r.count(ctx, "min_accounts", 1_000_000, 5).max(1),
            min_items: r.count(ctx, "min_items", 1000, 2).max(1),
            max_scan: r.count(ctx, "max_scan", 10_000_000, 2000).max(1),
        }
    }

    pub(crate) fn describe(&self) -> Vec<(&'static str, String)> {
        vec![
            ("actions", format!("{:?}", self.actions)),
            ("window", compact_duration(self.window)),
            ("lookback", compact_duration(self.lookback)),
            ("min_accounts", self.min_accounts.to_string()),
            ("min_items", self.min_items.to_string()),
            ("max_scan", self.max_scan.to_string()),
        ]
    }

    pub(crate) fn state_key(&self) -> String {
        format!("{:?}/{}", self.actions, self.lookback)
    }

    pub(crate) fn reads(&self) -> Vec<(TableKind, String)> {
        vec![(TableKind::Events, "action".into()), (TableKind::Events, "target".into())]
    }
}

/// Bound to a dataset.
#[derive(Debug)]
pub struct Bound {
    params: Params,
    actions: Vec<Sym>,
    index: Arc<ItemActors>,
}

/// Per-account state: this account's recent items.
#[derive(Debug, Default)]
pub struct State {
    recent: VecDeque<(Millis, Sym)>,
    /// Co-actor -> (items in step, index of the last item counted).
    counts: SymMap<(u32, u32)>,
    /// The other accounts on the event's item within the window, sorted.
    on_item: Vec<Sym>,
}

/// Up to this many entries in the event's window, the accounts on the item
/// are listed once per event; beyond, each co-actor is looked up.
const LIST_AT_MOST: usize = 4096;

impl Bound {
    pub(crate) fn new(p: &Params, data: &Dataset, cache: &mut BindCache) -> Bound {
        let actions = super::resolve_all(data, &p.actions);
        let index = cache.item_actors.get(&super::aggregate::key(&p.actions)).cloned().unwrap_or_default();
        Bound { params: p.clone(), actions, index }
    }

    pub(crate) fn new_state(&self) -> State {
        State::default()
    }

    pub(crate) fn reset(&self, s: &mut State, _span: &AccountSpan, _data: &Dataset) {
        s.recent.clear();
        s.counts.clear();
    }

    pub(crate) fn note(&self) -> Option<String> {
        None
    }

    pub(crate) fn observe(&self, s: &mut State, e: &Ev<'_>) {
        while s.recent.front().is_some_and(|&(t, _)| t < e.ts - self.params.lookback) {
            s.recent.pop_front();
        }
        if self.actions.contains(&e.action)
            && let Some(t) = e.target()
        {
            s.recent.push_back((e.ts, t));
        }
    }

    pub(crate) fn eval(&self, s: &mut State, e: &Ev<'_>) -> Outcome {
        let Some(item) = e.target() else { return Outcome::Quiet };
        if !self.actions.contains(&e.action) {
            return Outcome::Quiet;
        }
        let p = &self.params;
        let cap = p.max_scan as usize;
        // Lockstep needs other recent items of this account: without enough
        // of them, say nothing before touching the index.
        let horizon = e.ts - p.lookback;
        let others = s.recent.iter().filter(|&&(t, i)| t >= horizon && i != item).count() as u64;
        if others + 1 < p.min_items {
            return Outcome::Quiet;
        }
        // Enough co-actors on this item at all? (Counted, not visited.)
        let (from, to) = (e.ts - p.window, e.ts + p.window);
        let enough = |n: usize| n as u64 > p.min_accounts;
        if !enough(self.index.entries(item)) {
            return Outcome::Quiet;
        }
        let here = self.index.count_between(item, from, to);
        if !enough(here) {
            return Outcome::Quiet;
        }
        s.on_item.clear();
        let listed = here <= LIST_AT_MOST;
        if listed {
            s.on_item.extend(self.index.between(item, from, to).map(|(_, w)| w).filter(|&w| w != e.actor));
            s.on_item.sort_unstable();
        }
        // For each other recent item, its co-actors (within the window of
        // this account's action on it) that were also in step on this item;
        // per co-actor, on how many items (this one included).
        s.counts.clear();
        let mut shared_items = vec![item];
        let recent: Vec<(Millis, Sym)> = s.recent.iter().copied().filter(|&(t, i)| t >= horizon && i != item).collect();
        for (t, other) in recent {
            if shared_items.contains(&other) {
                continue;
            }
            let mut any = false;
            let k = shared_items.len() as u32;
            let co_actors = self.index.between(other, t - p.window, t + p.window).filter(|&(_, w)| w != e.actor);
            for (_, who) in co_actors.take(cap) {
                let in_step = s.counts.contains_key(&who)
                    || if listed {
                        s.on_item.binary_search(&who).is_ok()
                    } else {
                        self.index.acted(item, who, from, to)
                    };
                if in_step {
                    let c = s.counts.entry(who).or_insert((1, 0));
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
        let accounts = s.counts.values().filter(|c| c.0 >= need).count() as u64;
        if accounts < p.min_accounts {
            return Outcome::Quiet;
        }
        let strength = 1.0 - 0.5f64.powf(accounts as f64 / p.min_accounts as f64);
        let mut names: Vec<&str> = shared_items.iter().map(|&i| e.text(i)).collect();
        names.sort_unstable();
        Outcome::Fire {
            strength,
            why: format!(
                "{accounts} other accounts acted on at least {need} of the same items within {} of this account ({})",
                compact_duration(p.window),
                names.join(", ")
            ),
        }
    }
}
