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
use crate::intern::{Interner, Sym, SymMap};
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
    /// Entry range of each item.
    ranges: Ranges,
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

/// Where each item's entries are: by symbol index for a whole index (one
/// memory access finds it; lookups come in account order, so they jump
/// around), in a map for a partition's share of one (few items of many).
#[derive(Debug)]
enum Ranges {
    Dense(Vec<(u32, u32)>),
    Sparse(SymMap<(u32, u32)>),
}

impl Default for Ranges {
    fn default() -> Ranges {
        Ranges::Dense(Vec::new())
    }
}

impl Ranges {
    #[inline]
    fn get(&self, item: Sym) -> Option<(u32, u32)> {
        match self {
            Ranges::Dense(v) => v.get(item.index()).copied(),
            Ranges::Sparse(m) => m.get(&item).copied(),
        }
    }

    fn set(&mut self, item: Sym, range: (u32, u32)) {
        match self {
            Ranges::Dense(v) => {
                if v.len() <= item.index() {
                    v.resize(item.index() + 1, (0, 0));
                }
                v[item.index()] = range;
            }
            Ranges::Sparse(m) => {
                m.insert(item, range);
            }
        }
    }

    fn all(&self) -> Vec<(u32, u32)> {
        match self {
            Ranges::Dense(v) => v.iter().copied().filter(|r| r.1 > r.0).collect(),
            Ranges::Sparse(m) => m.values().copied().collect(),
        }
    }
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
        match self.ranges.get(item) {
            Some((a, b)) if b > a => Some((a as usize, b as usize)),
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
            let start = self.who.len();
            for (k, &(_, ts, who)) in run.iter().enumerate() {
                if paired_within.is_none_or(|w| has_partner(run, k, w)) {
                    self.ts.push(ts);
                    self.who.push(who);
                }
            }
            if self.who.len() > start {
                let end = u32::try_from(self.who.len()).expect("fewer than 4 billion index entries");
                self.ranges.set(run[0].0, (start as u32, end));
            }
        }
    }

    /// Builds the per-account order of every item's entries.
    fn index_by_who(&mut self) {
        // Within an item, positions are in time order, so sorting them by
        // (account, position) sorts by (account, time).
        self.by_who = (0..self.who.len() as u32).collect();
        for (a, b) in self.ranges.all() {
            self.by_who[a as usize..b as usize].sort_unstable_by_key(|&k| (self.who[k as usize], k));
        }
    }
}

impl ItemActors {
    /// The item phase for one group of whole items (a spill bucket, or a
    /// Spark partition by item): answers `queries`, each an event of some
    /// account partition (target, time, partition), with the entries of
    /// its target within `reach` (before, after) of its time. Calls `out`
    /// once per partition and item asked about, with the entries in index
    /// order, each once however many of the partition's events reach it.
    /// Sorts `queries`.
    pub fn answer(
        &self,
        reach: (Millis, Millis),
        queries: &mut [(Sym, Millis, u32)],
        mut out: impl FnMut(u32, &[ItemRow]),
    ) {
        queries.sort_unstable_by_key(|&(item, ts, part)| (part, item, ts));
        let mut rows = Vec::new();
        for run in queries.chunk_by(|a, b| (a.2, a.0) == (b.2, b.0)) {
            let (item, part) = (run[0].0, run[0].2);
            let Some((a, b)) = self.range(item) else { continue };
            rows.clear();
            // The windows, in time order, overlapping ones merged: their
            // entries are each taken once, in the index's order.
            let mut next = a;
            for &(_, ts, _) in run {
                let (from, to) = (ts.saturating_sub(reach.0), ts.saturating_add(reach.1));
                let start = self.ts.partition_point(next, b, |t| t < from);
                let end = self.ts.partition_point(start, b, |t| t <= to);
                rows.extend((start..end).map(|i| (item, self.ts.at(i), self.who[i])));
                next = next.max(end);
            }
            if !rows.is_empty() {
                out(part, &rows);
            }
        }
    }

    /// A partition's share of an index, from the rows the item phase sent
    /// it ([`ItemActors::answer`]): each item's rows together and in the
    /// index's order. Answers every query within reach of the partition's
    /// events as the whole index does.
    pub fn from_answers(rows: &[ItemRow], pairs: bool) -> ItemActors {
        let mut out = ItemActors { ranges: Ranges::Sparse(SymMap::default()), ..ItemActors::default() };
        let mut times = Vec::with_capacity(rows.len());
        for run in rows.chunk_by(|a, b| a.0 == b.0) {
            let start = out.who.len() as u32;
            times.extend(run.iter().map(|r| r.1));
            out.who.extend(run.iter().map(|r| r.2));
            out.ranges.set(run[0].0, (start, out.who.len() as u32));
        }
        out.ts = Times::Millis(times);
        if pairs {
            out.index_by_who();
        }
        out
    }
}

/// The item phase's answers for each partition of a partitioned run: per
/// item index (its action set), one spill file per partition.
#[derive(Debug, Default)]
pub struct PartIndexes {
    indexes: Vec<(Vec<String>, Arc<ItemBuckets>, bool)>,
}

impl PartIndexes {
    /// Partition `part`'s share of every item index (read back, and its
    /// files removed), to bind its signals with.
    pub fn load(&self, part: usize) -> io::Result<HashMap<Vec<String>, Arc<ItemActors>>> {
        let mut out = HashMap::new();
        for (actions, answers, pairs) in &self.indexes {
            let rows = answers.take(part)?;
            out.insert(actions.clone(), Arc::new(ItemActors::from_answers(&rows, *pairs)));
        }
        Ok(out)
    }

    /// Bytes of answers written to spill files.
    pub fn bytes(&self) -> u64 {
        self.indexes.iter().map(|(_, a, _)| a.bytes()).sum()
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
    /// How far before and after an account's event its readers look (the
    /// widest of each).
    reach: (Millis, Millis),
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
            reach: self.reach,
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

    /// An empty index of the kind this one builds: with times in whole
    /// seconds from the earliest row when only lockstep reads it.
    fn empty_index(&self) -> ItemActors {
        let mut out = ItemActors::default();
        if !self.exposure {
            let first = match &self.spill {
                Some(b) => b.min_time(),
                None => self.rows.iter().map(|r| r.1).min(),
            };
            out.ts = Times::Seconds { base: first.unwrap_or(0).div_euclid(1000), secs: Vec::new() };
        }
        out
    }

    fn finish(mut self, strings: &Interner) -> io::Result<ItemActors> {
        let paired = self.paired_within();
        let mut out = self.empty_index();
        let spill = self.spill.take();
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
    /// In a partitioned run, the partitions' questions to the item indexes
    /// (target, time, partition), bucketed by item like the indexes' rows.
    queries: Option<Arc<ItemBuckets>>,
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
                Need::ItemIndex { actions, every_entry, lockstep_window, reach } => {
                    let acc = slot(&mut a.item_actors, actions);
                    acc.pairs = true;
                    acc.reach = (acc.reach.0.max(reach.0), acc.reach.1.max(reach.1));
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
            queries: self.queries.clone(),
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
        if !self.item_actors.is_empty() {
            self.queries = Some(Arc::new(ItemBuckets::new(dir, "queries", buckets)?));
        }
        Ok(())
    }

    /// Whether a partitioned run's partitions need the item phase's
    /// answers (some signal reads an item index).
    pub fn has_item_indexes(&self) -> bool {
        !self.item_actors.is_empty()
    }

    /// Records the questions partition `part` will ask the item indexes:
    /// one per event with a target (the readers' reach is applied when
    /// they are answered, [`Aggregates::finish_by_parts`]).
    pub fn ask(&self, rows: &dyn EventRows, part: u32) -> io::Result<()> {
        let Some(queries) = &self.queries else { return Ok(()) };
        let who = Interner::sym_at(part as usize);
        let mut batch = Vec::with_capacity(1 << 16);
        for i in 0..rows.rows() {
            if let Some(t) = rows.target_at(i) {
                batch.push((t, rows.ts_at(i), who));
                if batch.len() == 1 << 16 {
                    queries.append(&mut batch)?;
                }
            }
        }
        queries.append(&mut batch)
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

    /// The finished aggregates of a partitioned run (after
    /// [`Aggregates::spill_to`] and every partition's [`Aggregates::ask`]),
    /// with the item indexes left out: the item phase builds them one
    /// bucket of items at a time and sends each of the `parts` partitions
    /// the entries within its readers' reach of its events, to spill files
    /// in `dir` ([`PartIndexes::load`]). Buckets run in parallel.
    pub fn finish_by_parts(
        mut self,
        strings: &Interner,
        dir: &SpillDir,
        parts: usize,
    ) -> io::Result<(Facts, PartIndexes)> {
        let mut indexes = PartIndexes::default();
        let mut accs = std::mem::take(&mut self.item_actors);
        for (k, (actions, acc)) in accs.iter_mut().enumerate() {
            let Some(buckets) = &acc.spill else { return Err(io::Error::other("item indexes were not spilled")) };
            buckets.append(&mut acc.rows)?;
            let answers = Arc::new(ItemBuckets::new(dir, &format!("answers-{k}"), parts)?);
            indexes.indexes.push((actions.clone(), answers, acc.pairs));
        }
        if let Some(queries) = self.queries.take() {
            (0..queries.len()).into_par_iter().try_for_each(|b| -> io::Result<()> {
                let asked: Vec<(Sym, Millis, u32)> =
                    queries.take(b)?.into_iter().map(|(t, ts, p)| (t, ts, p.index() as u32)).collect();
                for ((_, acc), (_, answers, _)) in accs.iter().zip(&indexes.indexes) {
                    let mut rows = acc.spill.as_ref().map_or(Ok(Vec::new()), |s| s.take(b))?;
                    let mut index = acc.empty_index();
                    index.add_items(&mut rows, strings, acc.paired_within());
                    drop(rows);
                    let mut by_part: Vec<Vec<ItemRow>> = vec![Vec::new(); parts];
                    index.answer(acc.reach, &mut asked.clone(), |p, rows| by_part[p as usize].extend_from_slice(rows));
                    for (p, mut rows) in by_part.into_iter().enumerate().filter(|(_, r)| !r.is_empty()) {
                        answers.append_to(p, &mut rows)?;
                    }
                }
                Ok(())
            })?;
        }
        let facts = self.finish(strings)?;
        Ok((facts, indexes))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A partition's share of an index, built from the item phase's answers
    /// to its questions, answers every question within reach exactly as the
    /// whole index does: same entries, same order, same counts.
    #[test]
    fn a_partitions_answers_equal_the_whole_index_within_reach() {
        let mut strings = Interner::new();
        let items: Vec<Sym> = (0..6).map(|i| strings.intern(&format!("item{i}"))).collect();
        let actors: Vec<Sym> = (0..9).map(|i| strings.intern(&format!("acct{i}"))).collect();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for case in 0..200 {
            let seconds = case % 2 == 1;
            let reach = (next(5_000) as Millis, next(5_000) as Millis);
            let mut rows: Vec<ItemRow> = (0..next(60) + 1)
                .map(|_| (items[next(6) as usize], next(20_000) as Millis, actors[next(9) as usize]))
                .collect();
            let mut whole = ItemActors::default();
            if seconds {
                whole.ts = Times::Seconds { base: 0, secs: Vec::new() };
            }
            whole.add_items(&mut rows, &strings, None);
            whole.index_by_who();
            // Three partitions, each asking about a few (target, time).
            let questions: Vec<(Sym, Millis, u32)> =
                (0..next(30) + 1).map(|_| (items[next(6) as usize], next(20_000) as Millis, next(3) as u32)).collect();
            let mut answers: Vec<Vec<ItemRow>> = vec![Vec::new(); 3];
            whole.answer(reach, &mut questions.clone(), |p, r| answers[p as usize].extend_from_slice(r));
            for (p, rows) in answers.iter().enumerate() {
                let part = ItemActors::from_answers(rows, true);
                for &(item, ts, _) in questions.iter().filter(|q| q.2 == p as u32) {
                    let (from, to) = (ts - reach.0, ts + reach.1);
                    // Any window inside the reach of one of its questions.
                    for (a, b) in [(from, to), (from + reach.0 / 2, to), (from, ts), (ts, ts)] {
                        let w: Vec<_> = whole.between(item, a, b).collect();
                        assert_eq!(part.between(item, a, b).collect::<Vec<_>>(), w, "case {case}");
                        assert_eq!(part.count_between(item, a, b), w.len(), "case {case}");
                        for &who in &actors {
                            assert_eq!(part.acted(item, who, a, b), whole.acted(item, who, a, b), "case {case}");
                        }
                    }
                }
            }
        }
    }
}
