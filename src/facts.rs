//! Facts across accounts, the first phase of scoring: what signals need to
//! know about *all* accounts (the population's label distribution, who
//! reposted or liked which item when, the population's action rates).
//!
//! They are computed as a fold: [`Aggregates::add`] over any slice of
//! rows, [`Aggregates::merge`] of partial results, [`Aggregates::finish`]
//! into the [`Facts`] that binding reads. The in-memory run folds over the
//! sorted events in parallel. A partitioned run folds per account partition
//! and sends the item indexes' rows to buckets by item; the item phase
//! ([`Aggregates::finish_by_parts`]) then answers each partition with the
//! entries its events can read. Every result is a sum or a sorted list, so
//! it is the same whatever the order and grouping of the rows.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use rayon::prelude::*;

use crate::data::{EventRows, Items};
use crate::intern::{Interner, Sym};
use crate::plan::Plan;
use crate::signals::item_index::{ItemActors, ItemRow};
use crate::signals::{Facts, Need, off_pattern, rate_spike, sorted};
use crate::spill::{ItemBuckets, SpillDir};
use crate::time::Millis;

pub mod wire;

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
        if self.exposure {
            return ItemActors::default();
        }
        let first = match &self.spill {
            Some(b) => b.min_time(),
            None => self.rows.iter().map(|r| r.1).min(),
        };
        ItemActors::in_seconds(first.unwrap_or(0))
    }

    /// The item phase for one group of whole items: adds `rows` (every
    /// row of each item they mention) to `index` (empty, of the kind
    /// [`ItemActorsAcc::empty_index`] gives) and answers `asked` (target,
    /// time, partition) with the entries within the readers' reach
    /// ([`ItemActors::answer`]).
    pub(crate) fn answer_items(
        &self,
        mut index: ItemActors,
        mut rows: Vec<ItemRow>,
        strings: &Interner,
        asked: &mut [(Sym, Millis, u32)],
        out: impl FnMut(u32, &[ItemRow]),
    ) {
        index.add_items(&mut rows, strings, self.paired_within());
        drop(rows);
        index.answer(self.reach, asked, out);
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
        out.shrink_to_fit();
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
    /// The actions of the events that ask the item indexes, sorted (`None`:
    /// every event with a target).
    asked_by: Option<Vec<String>>,
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
        let mut asked_by = Some(Vec::new());
        let needs =
            plan.rules.iter().flat_map(|r| r.signals.iter().flat_map(|s| s.def.needs().facts).map(move |n| (r, n)));
        for (rule, need) in needs {
            if let Need::ItemIndex { read_at, .. } = &need {
                // An index read at the events a rule selects is asked about
                // by every event when the rule selects every action.
                let actions = read_at.as_ref().unwrap_or(&rule.actions);
                match &mut asked_by {
                    Some(all) if !actions.is_empty() => all.extend(actions.iter().cloned()),
                    _ => asked_by = None,
                }
            }
            match need {
                Need::Prior { feature, history } => {
                    slot(&mut a.priors, (feature, history));
                }
                Need::ItemIndex { actions, every_entry, lockstep_window, reach, read_at: _ } => {
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
        a.asked_by = asked_by.map(|all| sorted(&all));
        a
    }

    /// The questions an account partition asks the item indexes: the
    /// target and time of each of its events with a target and an action
    /// some reader reads the indexes at.
    pub(crate) fn questions<'r>(
        &self,
        rows: &'r dyn EventRows,
        strings: &Interner,
    ) -> impl Iterator<Item = (Sym, Millis)> + 'r {
        let actions: Option<Vec<Sym>> =
            self.asked_by.as_ref().map(|names| names.iter().filter_map(|n| strings.get(n)).collect());
        (0..rows.rows()).filter_map(move |i| {
            let asks = actions.as_ref().is_none_or(|a| a.contains(&rows.action_at(i)));
            if asks { rows.target_at(i).map(|t| (t, rows.ts_at(i))) } else { None }
        })
    }

    /// An empty copy with the same slots, for a parallel part of the fold.
    pub fn empty_like(&self) -> Aggregates {
        Aggregates {
            priors: self.priors.iter().map(|(k, _)| (k.clone(), Default::default())).collect(),
            item_actors: self.item_actors.iter().map(|(k, a)| (k.clone(), a.empty_like())).collect(),
            rates: self.rates.iter().map(|(k, _)| (k.clone(), Default::default())).collect(),
            last: None,
            queries: self.queries.clone(),
            asked_by: self.asked_by.clone(),
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
    /// one per event with a target that a reader reads them at (the
    /// readers' reach is applied when they are answered,
    /// [`Aggregates::finish_by_parts`]).
    pub fn ask(&self, rows: &dyn EventRows, strings: &Interner, part: u32) -> io::Result<()> {
        let Some(queries) = &self.queries else { return Ok(()) };
        let who = Interner::sym_at(part as usize);
        let mut batch = Vec::with_capacity(1 << 16);
        for (t, ts) in self.questions(rows, strings) {
            batch.push((t, ts, who));
            if batch.len() == 1 << 16 {
                queries.append(&mut batch)?;
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
                    let rows = acc.spill.as_ref().map_or(Ok(Vec::new()), |s| s.take(b))?;
                    let mut by_part: Vec<Vec<ItemRow>> = vec![Vec::new(); parts];
                    acc.answer_items(acc.empty_index(), rows, strings, &mut asked.clone(), |p, rows| {
                        by_part[p as usize].extend_from_slice(rows)
                    });
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
