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

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use rayon::prelude::*;

use super::{Facts, Need, off_pattern, rate_spike};
use crate::data::{EventRows, Items};
use crate::intern::{Interner, Sym};
use crate::plan::Plan;
use crate::spill::{ItemBuckets, ItemRow, SpillDir};
use crate::time::Millis;

/// Who acted on each item, when: for one set of actions (reposts for
/// `feed_exposure`, likes for `lockstep`). Compressed sparse rows: each
/// item's entries contiguous and in time order (ties by account text).
#[derive(Debug, Default)]
pub struct ItemActors {
    /// Per item, positions of its entries sorted by account then time, when
    /// built (for "did this account act on the item" questions).
    by_who: Vec<u32>,
    /// Entry range of each item, by symbol index: one memory access finds
    /// it (lookups come in account order, so they jump around).
    ranges: Vec<(u32, u32)>,
    ts: Times,
    who: Vec<Sym>,
}

/// The times of an index's entries: milliseconds, or whole seconds from a
/// base (4 bytes an entry) for a reader whose windows are minutes.
#[derive(Debug)]
enum Times {
    Millis(Vec<Millis>),
    Seconds { base: i64, secs: Vec<u32> },
}

impl Default for Times {
    fn default() -> Times {
        Times::Millis(Vec::new())
    }
}

impl Times {
    #[inline]
    fn at(&self, i: usize) -> Millis {
        match self {
            Times::Millis(v) => v[i],
            Times::Seconds { base, secs } => (base + secs[i] as i64) * 1000,
        }
    }

    /// Pushes `t`, which is a whole second for [`Times::Seconds`] (see
    /// [`ItemActors::add_items`]).
    fn push(&mut self, t: Millis) {
        match self {
            Times::Millis(v) => v.push(t),
            Times::Seconds { base, secs } => secs.push((t.div_euclid(1000) - *base).clamp(0, u32::MAX as i64) as u32),
        }
    }

    /// The first position in `a..b` whose time is not `before`.
    #[inline]
    fn partition_point(&self, a: usize, b: usize, before: impl Fn(Millis) -> bool) -> usize {
        a + match self {
            Times::Millis(v) => v[a..b].partition_point(|&t| before(t)),
            Times::Seconds { base, secs } => secs[a..b].partition_point(|&s| before((base + s as i64) * 1000)),
        }
    }

    fn shrink_to_fit(&mut self) {
        match self {
            Times::Millis(v) => v.shrink_to_fit(),
            Times::Seconds { secs, .. } => secs.shrink_to_fit(),
        }
    }
}

impl ItemActors {
    /// The (time, account) entries of `item` with time in `from..=to`.
    pub fn between(&self, item: Sym, from: Millis, to: Millis) -> impl Iterator<Item = (Millis, Sym)> + '_ {
        let range = match self.range(item) {
            Some((a, b)) => self.ts.partition_point(a, b, |t| t < from)..self.ts.partition_point(a, b, |t| t <= to),
            None => 0..0,
        };
        range.map(move |i| (self.ts.at(i), self.who[i]))
    }

    #[inline]
    fn range(&self, item: Sym) -> Option<(usize, usize)> {
        match self.ranges.get(item.index()) {
            Some(&(a, b)) if b > a => Some((a as usize, b as usize)),
            _ => None,
        }
    }

    /// How many entries `item` has in all.
    #[inline]
    pub fn entries(&self, item: Sym) -> usize {
        self.range(item).map_or(0, |(a, b)| b - a)
    }

    /// How many entries of `item` have a time in `from..=to` (without
    /// visiting them).
    pub fn count_between(&self, item: Sym, from: Millis, to: Millis) -> usize {
        match self.range(item) {
            Some((a, b)) => self.ts.partition_point(a, b, |t| t <= to) - self.ts.partition_point(a, b, |t| t < from),
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
        let key = |k: u32| (self.who[k as usize], self.ts.at(k as usize));
        let start = run.partition_point(|&k| key(k) < (who, from));
        run.get(start).is_some_and(|&k| key(k).0 == who && key(k).1 <= to)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.who.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.who.is_empty()
    }

    /// Adds the entries of whole items: `rows` holds every row of each
    /// item it mentions, none of them already added. Sorts `rows` by item,
    /// time and account text, then drops the rows without another account
    /// within `paired_within` on the same item, if given. With times in
    /// seconds, rows are truncated to the second first, so that sorting and
    /// pairing see the times readers will.
    fn add_items(&mut self, rows: &mut [ItemRow], strings: &Interner, paired_within: Option<Millis>) {
        if let Times::Seconds { .. } = self.ts {
            for r in rows.iter_mut() {
                r.1 = r.1.div_euclid(1000) * 1000;
            }
        }
        rows.par_sort_unstable_by(|a, b| {
            a.0.cmp(&b.0).then(a.1.cmp(&b.1)).then_with(|| strings.resolve(a.2).cmp(strings.resolve(b.2)))
        });
        for run in rows.chunk_by(|a, b| a.0 == b.0) {
            let item = run[0].0.index();
            let start = self.who.len();
            for (k, &(_, ts, who)) in run.iter().enumerate() {
                if paired_within.is_none_or(|w| has_partner(run, k, w)) {
                    self.ts.push(ts);
                    self.who.push(who);
                }
            }
            if self.who.len() > start {
                if self.ranges.len() <= item {
                    self.ranges.resize(item + 1, (0, 0));
                }
                let end = u32::try_from(self.who.len()).expect("fewer than 4 billion index entries");
                self.ranges[item] = (start as u32, end);
            }
        }
    }

    /// Builds the per-account order of every item's entries.
    fn index_by_who(&mut self) {
        // Within an item, positions are in time order, so sorting them by
        // (account, position) sorts by (account, time).
        self.by_who = (0..self.who.len() as u32).collect();
        for &(a, b) in self.ranges.iter().filter(|r| r.1 > r.0) {
            self.by_who[a as usize..b as usize].sort_unstable_by_key(|&k| (self.who[k as usize], k));
        }
    }
}

/// Whether entry `k` of one item's time-ordered `run` has an entry of
/// another account within `window` of it.
fn has_partner(run: &[ItemRow], k: usize, window: Millis) -> bool {
    let (_, t, who) = run[k];
    let (from, to) = (t.saturating_sub(window), t.saturating_add(window));
    let before = run[..k].iter().rev().take_while(|r| r.1 >= from).any(|r| r.2 != who);
    before || run[k + 1..].iter().take_while(|r| r.1 <= to).any(|r| r.2 != who)
}

/// Accumulates an [`ItemActors`].
#[derive(Clone, Debug, Default)]
pub struct ItemActorsAcc {
    rows: Vec<ItemRow>,
    /// Whether to build the per-account order too.
    pairs: bool,
    /// Whether `feed_exposure` reads it (it needs every entry).
    exposure: bool,
    /// The widest `window` of the `lockstep` signals reading it.
    lockstep_window: Option<Millis>,
    /// Where rows go when the input does not fit in memory.
    spill: Option<Arc<ItemBuckets>>,
    /// Drop nothing (see [`Aggregates::keep_every_entry`]).
    keep_all: bool,
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

    /// An empty accumulator with the same settings (and spill buckets).
    fn empty_like(&self) -> ItemActorsAcc {
        ItemActorsAcc {
            rows: Vec::new(),
            pairs: self.pairs,
            exposure: self.exposure,
            lockstep_window: self.lockstep_window,
            spill: self.spill.clone(),
            keep_all: self.keep_all,
        }
    }

    /// Entries that cannot matter to any reader are dropped: when only
    /// `lockstep` reads the index, an entry with no other account's entry
    /// on the item within its window is never counted. Lockstep looks at an
    /// item's entries around the account's own entry on it, which is in the
    /// index too, and counts only other accounts; so every entry it counts
    /// has a partner, and leaving the others out lowers only counts that
    /// lead to no hit anyway (see `lockstep.rs`). The window is widened by
    /// a second for the truncation of times. On synthetic logs this keeps
    /// about half of the likes.
    fn paired_within(&self) -> Option<Millis> {
        if self.exposure || self.keep_all {
            None
        } else {
            self.lockstep_window.map(|w| (w.div_euclid(1000) + 2) * 1000)
        }
    }

    fn finish(mut self, strings: &Interner) -> io::Result<ItemActors> {
        let paired = self.paired_within();
        let mut out = ItemActors::default();
        let spill = self.spill.take();
        if !self.exposure {
            // Only lockstep reads it: seconds are enough.
            let first = match &spill {
                Some(b) => b.min_time(),
                None => self.rows.iter().map(|r| r.1).min(),
            };
            out.ts = Times::Seconds { base: first.unwrap_or(0).div_euclid(1000), secs: Vec::new() };
        }
        match spill {
            None => out.add_items(&mut self.rows, strings, paired),
            Some(buckets) => {
                buckets.append(&mut self.rows)?;
                for b in 0..buckets.len() {
                    let mut rows = buckets.take(b)?;
                    out.add_items(&mut rows, strings, paired);
                }
            }
        }
        out.ts.shrink_to_fit();
        out.who.shrink_to_fit();
        if self.pairs {
            out.index_by_who();
        }
        Ok(out)
    }
}

/// The aggregates a plan needs, being accumulated.
#[derive(Clone, Debug, Default)]
pub struct Aggregates {
    priors: Vec<((off_pattern::Feature, Vec<String>), off_pattern::PriorAcc)>,
    item_actors: Vec<(Vec<String>, ItemActorsAcc)>,
    rates: Vec<(Vec<String>, rate_spike::RateAcc)>,
    /// The latest event time seen.
    last: Option<Millis>,
}

/// The value of `key` in `v`, added empty if missing.
fn slot<K: PartialEq, V: Default>(v: &mut Vec<(K, V)>, key: K) -> &mut V {
    let i = match v.iter().position(|(k, _)| *k == key) {
        Some(i) => i,
        None => {
            v.push((key, V::default()));
            v.len() - 1
        }
    };
    &mut v[i].1
}

impl Aggregates {
    /// The (empty) aggregates the signals of `plan` need, as they declare
    /// them ([`super::Needs::facts`]).
    pub fn for_plan(plan: &Plan) -> Aggregates {
        let mut a = Aggregates::default();
        for need in plan.rules.iter().flat_map(|r| &r.signals).flat_map(|s| s.def.needs().facts) {
            match need {
                Need::Prior { feature, history } => {
                    slot(&mut a.priors, (feature, history));
                }
                Need::ItemIndex { actions, every_entry, lockstep_window } => {
                    let acc = slot(&mut a.item_actors, actions);
                    acc.pairs = true;
                    acc.exposure |= every_entry;
                    if let Some(w) = lockstep_window {
                        acc.lockstep_window = Some(acc.lockstep_window.map_or(w, |x| x.max(w)));
                    }
                }
                Need::Rate { actions } => {
                    slot(&mut a.rates, actions);
                }
                Need::DataEnd => {}
            }
        }
        a
    }

    /// An empty copy with the same slots, for a parallel part of the fold.
    pub fn empty_like(&self) -> Aggregates {
        Aggregates {
            priors: self.priors.iter().map(|(k, _)| (k.clone(), Default::default())).collect(),
            item_actors: self.item_actors.iter().map(|(k, a)| (k.clone(), a.empty_like())).collect(),
            rates: self.rates.iter().map(|(k, _)| (k.clone(), Default::default())).collect(),
            last: None,
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
        let last = range.map(|i| rows.ts_at(i)).max();
        self.last = self.last.max(last);
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
        self.last = self.last.max(other.last);
    }

    /// From now on, keeps the rows of item indexes in `buckets` spill files
    /// in `dir` (written by [`Aggregates::spill_rows`]) rather than in
    /// memory, and builds the indexes one bucket at a time.
    pub fn spill_to(&mut self, dir: &SpillDir, buckets: usize) -> io::Result<()> {
        for (i, (_, acc)) in self.item_actors.iter_mut().enumerate() {
            acc.spill = Some(Arc::new(ItemBuckets::new(dir, &i.to_string(), buckets)?));
        }
        Ok(())
    }

    /// Keeps every entry of the item indexes, even those no reader can
    /// count (see `ItemActorsAcc::paired_within`): slower and larger, for
    /// checking that leaving them out changes nothing.
    pub fn keep_every_entry(&mut self) {
        for (_, acc) in &mut self.item_actors {
            acc.keep_all = true;
        }
    }

    /// Writes the item rows held in memory to their spill buckets (when
    /// [`Aggregates::spill_to`] was called).
    pub fn spill_rows(&mut self) -> io::Result<()> {
        for (_, acc) in &mut self.item_actors {
            if let Some(b) = &acc.spill {
                b.append(&mut acc.rows)?;
            }
        }
        Ok(())
    }

    /// Bytes of item rows written to spill files.
    pub fn spilled_bytes(&self) -> u64 {
        self.item_actors.iter().filter_map(|(_, a)| a.spill.as_ref()).map(|b| b.bytes()).sum()
    }

    /// The finished aggregates, for binding. Fails only reading back spill
    /// files.
    pub fn finish(self, strings: &Interner) -> io::Result<Facts> {
        let mut item_actors = HashMap::new();
        for (k, a) in self.item_actors {
            item_actors.insert(k, Arc::new(a.finish(strings)?));
        }
        Ok(Facts {
            priors: self.priors.into_iter().map(|(k, a)| (k, Arc::new(a.finish()))).collect(),
            item_actors,
            rates: self.rates.into_iter().map(|(k, a)| (k, a.finish())).collect(),
            data_end: self.last,
        })
    }
}
