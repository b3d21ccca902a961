//! Whole-input aggregates: what signals need to know about *all* accounts
//! (the population's label distribution, who reposted or liked which item
//! when, the population's action rates).
//!
//! They are computed by one pass over every event, before scoring, as a
//! fold: [`Aggregates::add`] over any slice of rows, [`Aggregates::merge`]
//! of partial results, [`Aggregates::finish`] into the [`BindCache`] that
//! binding reads. The in-memory scorer folds over the sorted events in
//! parallel; the out-of-core scorer folds over blocks as it partitions them.
//! Every result is a sum or a sorted list, so it is the same whatever the
//! order and grouping of the rows.

use std::sync::Arc;

use rayon::prelude::*;

use super::{BindCache, SignalDef, off_pattern, rate_spike};
use crate::data::{EventRows, Items};
use crate::intern::{Interner, Sym};
use crate::plan::Plan;
use crate::time::Millis;

/// Who acted on each item, when: for one set of actions (reposts for
/// `feed_exposure`, likes for `lockstep`). Compressed sparse rows: items
/// sorted by symbol, each with its (time, account) entries sorted.
#[derive(Debug, Default)]
pub struct ItemActors {
    /// Per item, (account, position in `ts`) entries sorted by account then
    /// time, when built (for "did this account act on the item" questions).
    by_who: Vec<(Sym, u32)>,
    /// Entry range of each item, by symbol index: one memory access finds
    /// it (lookups come in account order, so they jump around).
    ranges: Vec<(u32, u32)>,
    ts: Vec<Millis>,
    who: Vec<Sym>,
}

impl ItemActors {
    /// The (time, account) entries of `item` with time in `from..=to`.
    pub fn between(&self, item: Sym, from: Millis, to: Millis) -> impl Iterator<Item = (Millis, Sym)> + '_ {
        let range = match self.range(item) {
            Some((a, b)) => {
                let ts = &self.ts[a..b];
                a + ts.partition_point(|&t| t < from)..a + ts.partition_point(|&t| t <= to)
            }
            None => 0..0,
        };
        range.map(move |i| (self.ts[i], self.who[i]))
    }

    #[inline]
    fn range(&self, item: Sym) -> Option<(usize, usize)> {
        match self.ranges.get(item.index()) {
            Some(&(a, b)) if b > a => Some((a as usize, b as usize)),
            _ => None,
        }
    }

    /// How many entries of `item` have a time in `from..=to` (without
    /// visiting them).
    pub fn count_between(&self, item: Sym, from: Millis, to: Millis) -> usize {
        match self.range(item) {
            Some((a, b)) => {
                let ts = &self.ts[a..b];
                ts.partition_point(|&t| t <= to).saturating_sub(ts.partition_point(|&t| t < from))
            }
            None => 0,
        }
    }

    /// Whether `who` acted on `item` at a time in `from..=to`. Needs the
    /// index built with pairs; without them it scans the item's entries.
    pub fn acted(&self, item: Sym, who: Sym, from: Millis, to: Millis) -> bool {
        let Some((a, b)) = self.range(item) else { return false };
        if self.by_who.is_empty() {
            return self.between(item, from, to).any(|(_, w)| w == who);
        }
        let run = &self.by_who[a..b];
        let start = run.partition_point(|&(w, k)| (w, self.ts[k as usize]) < (who, from));
        run.get(start).is_some_and(|&(w, k)| w == who && self.ts[k as usize] <= to)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }
}

/// Accumulates an [`ItemActors`].
#[derive(Clone, Debug, Default)]
pub struct ItemActorsAcc {
    rows: Vec<(Sym, Millis, Sym)>,
    /// Whether to build the per-account order too.
    pairs: bool,
}

impl ItemActorsAcc {
    fn add(&mut self, rows: &dyn EventRows, range: std::ops::Range<usize>, actions: &[Sym]) {
        for i in range {
            if actions.contains(&rows.action_at(i))
                && let Some(t) = rows.target_at(i)
            {
                self.rows.push((t, rows.ts_at(i), rows.actor_at(i)));
            }
        }
    }

    fn finish(mut self, strings: &Interner) -> ItemActors {
        // Sorted by item text, then time, then account text: independent of
        // symbol numbering and of the order rows were added in.
        self.rows.par_sort_unstable_by(|a, b| {
            a.0.cmp(&b.0).then(a.1.cmp(&b.1)).then_with(|| strings.resolve(a.2).cmp(strings.resolve(b.2)))
        });
        let mut out = ItemActors {
            ts: Vec::with_capacity(self.rows.len()),
            who: Vec::with_capacity(self.rows.len()),
            ..ItemActors::default()
        };
        let max = self.rows.iter().map(|r| r.0.index()).max().map_or(0, |m| m + 1);
        out.ranges = vec![(0, 0); max];
        let mut start = 0;
        for (k, &(item, ts, who)) in self.rows.iter().enumerate() {
            if k > 0 && self.rows[k - 1].0 != item {
                start = k;
            }
            out.ranges[item.index()] = (start as u32, k as u32 + 1);
            out.ts.push(ts);
            out.who.push(who);
        }
        if self.pairs {
            // Within an item, entries are in time order, so sorting by
            // (account, position) sorts by (account, time).
            out.by_who = self.rows.iter().enumerate().map(|(k, &(_, _, who))| (who, k as u32)).collect();
            for &(a, b) in out.ranges.iter().filter(|r| r.1 > r.0) {
                out.by_who[a as usize..b as usize].sort_unstable();
            }
        }
        out
    }
}

/// The aggregates a plan needs, being accumulated.
#[derive(Clone, Debug, Default)]
pub struct Aggregates {
    priors: Vec<((off_pattern::Feature, Vec<String>), off_pattern::PriorAcc)>,
    item_actors: Vec<(Vec<String>, ItemActorsAcc)>,
    rates: Vec<(Vec<String>, rate_spike::RateAcc)>,
}

fn slot<K: PartialEq, V: Default>(v: &mut Vec<(K, V)>, key: K) {
    if !v.iter().any(|(k, _)| *k == key) {
        v.push((key, V::default()));
    }
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v.dedup();
    v
}

impl Aggregates {
    /// The (empty) aggregates the signals of `plan` need.
    pub fn for_plan(plan: &Plan) -> Aggregates {
        let mut a = Aggregates::default();
        for r in &plan.rules {
            for s in &r.signals {
                match &s.def {
                    SignalDef::OffPattern(p) => {
                        for &f in &p.features {
                            slot(&mut a.priors, (f, sorted(&p.history)));
                        }
                    }
                    SignalDef::FeedExposure(p) => {
                        let key = sorted(&p.repost_actions);
                        slot(&mut a.item_actors, key.clone());
                        if let Some((_, acc)) = a.item_actors.iter_mut().find(|(k, _)| *k == key) {
                            acc.pairs = true;
                        }
                    }
                    SignalDef::Lockstep(p) => {
                        let key = sorted(&p.actions);
                        slot(&mut a.item_actors, key.clone());
                        if let Some((_, acc)) = a.item_actors.iter_mut().find(|(k, _)| *k == key) {
                            acc.pairs = true;
                        }
                    }
                    SignalDef::RateSpike(p) => slot(&mut a.rates, sorted(&p.actions)),
                    _ => {}
                }
            }
        }
        a
    }

    /// An empty copy with the same slots, for a parallel part of the fold.
    pub fn empty_like(&self) -> Aggregates {
        Aggregates {
            priors: self.priors.iter().map(|(k, _)| (k.clone(), Default::default())).collect(),
            item_actors: self
                .item_actors
                .iter()
                .map(|(k, a)| (k.clone(), ItemActorsAcc { rows: Vec::new(), pairs: a.pairs }))
                .collect(),
            rates: self.rates.iter().map(|(k, _)| (k.clone(), Default::default())).collect(),
        }
    }

    /// Adds rows `range` of `rows`. Items must be the dataset's.
    pub fn add(&mut self, rows: &dyn EventRows, range: std::ops::Range<usize>, strings: &Interner, items: &Items) {
        let resolve = |names: &[String]| -> Vec<Sym> { names.iter().filter_map(|n| strings.get(n)).collect() };
        for ((feature, history), acc) in &mut self.priors {
            acc.add(*feature, &resolve(history), rows, range.clone(), items);
        }
        for (actions, acc) in &mut self.item_actors {
            acc.add(rows, range.clone(), &resolve(actions));
        }
        for (actions, acc) in &mut self.rates {
            acc.add(rows, range.clone(), &resolve(actions));
        }
    }

    /// Adds all of `rows`, in parallel chunks.
    pub fn add_all(&mut self, rows: &dyn EventRows, strings: &Interner, items: &Items) {
        let n = rows.rows();
        let chunk = (n / (rayon::current_num_threads() * 4)).max(1 << 16);
        let starts: Vec<usize> = (0..n).step_by(chunk).collect();
        let parts: Vec<Aggregates> = starts
            .par_iter()
            .map(|&s| {
                let mut a = self.empty_like();
                a.add(rows, s..(s + chunk).min(n), strings, items);
                a
            })
            .collect();
        for p in parts {
            self.merge(p);
        }
    }

    /// Merges another partial result of the same plan.
    pub fn merge(&mut self, other: Aggregates) {
        for ((_, a), (_, b)) in self.priors.iter_mut().zip(other.priors) {
            a.merge(b);
        }
        for ((_, a), (_, b)) in self.item_actors.iter_mut().zip(other.item_actors) {
            a.rows.extend(b.rows);
        }
        for ((_, a), (_, b)) in self.rates.iter_mut().zip(other.rates) {
            a.merge(b);
        }
    }

    /// The finished aggregates, for binding.
    pub fn finish(self, strings: &Interner) -> BindCache {
        BindCache {
            priors: self.priors.into_iter().map(|(k, a)| (k, Arc::new(a.finish()))).collect(),
            item_actors: self.item_actors.into_iter().map(|(k, a)| (k, Arc::new(a.finish(strings)))).collect(),
            rates: self.rates.into_iter().map(|(k, a)| (k, a.finish())).collect(),
            rule_ids: Vec::new(),
        }
    }
}

/// Looks up a finished aggregate by its key (sorted action names).
pub(crate) fn key(names: &[String]) -> Vec<String> {
    sorted(names)
}
