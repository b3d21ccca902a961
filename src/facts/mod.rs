//! Facts across accounts, the first phase of scoring: what signals need to
//! know about *all* accounts (the population's label distribution, its
//! action rates, who reposted or liked which item when).
//!
//! Two kinds of fact:
//!
//! - **Population facts** implement [`Fact`], one file per kind ([`prior`],
//!   [`rate`]) and one line in the `registry!` below. A fact folds any
//!   slice of rows into a partial, merges partials in any order, finishes
//!   into the value signals read, and writes its partial as rows of strings
//!   and numbers ([`FactRow`]) and reads them back: the same contract serves
//!   the in-memory fold, the partitioned run, the Spark stages
//!   ([`wire`]) and, for daily runs, the state a later run resumes from.
//!   Signals ask for a fact by its typed key ([`crate::signals::Universe::fact`]);
//!   binding checks that every fact a plan declares was computed, so a
//!   lookup never silently finds nothing.
//! - **Item indexes** ([`item_index`]): who did which actions on each item,
//!   when. They are too large to merge in one place, so a partitioned run
//!   sends their rows to buckets by item, and the item phase
//!   ([`Aggregates::finish_by_parts`]) answers each account partition with
//!   the entries its events can read.
//!
//! [`Aggregates`] drives the fold: [`Aggregates::add`] over any slice of
//! rows, [`Aggregates::merge`] of partial results, [`Aggregates::finish`]
//! into the [`Facts`] that binding reads. Every result is a sum, a count, a
//! minimum, a maximum or a sorted list, so it is the same whatever the
//! order and grouping of the rows.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::io;
use std::ops::Range;
use std::sync::Arc;

use rayon::prelude::*;

use crate::data::{EventRows, Events, Items};
use crate::intern::{Interner, Sym};
use crate::plan::Plan;
use crate::signals::{Need, sorted};
use crate::spill::{ItemBuckets, SpillDir};
use crate::time::Millis;
use item_index::{ItemActors, ItemRow};

pub mod item_index;
pub mod prior;
pub mod rate;
pub mod wire;

/// A population fact kind: what every kind implements. See the module doc.
pub trait Fact: Sized + 'static {
    /// Its name, in plans and messages.
    const NAME: &'static str;
    /// What tells two facts of this kind apart: signals asking with equal
    /// keys share one fact.
    type Key: Clone + Debug + PartialEq + Eq + Hash + PartialOrd + Ord + Send + Sync;
    /// The fold over some rows, before merging.
    type Partial: Clone + Debug + Default + PartialEq + Send + Sync;
    /// The finished fact, as signals read it.
    type Value: Debug + Default + Send + Sync;

    /// Folds rows `range` of `rows` into `p`.
    fn fold(key: &Self::Key, p: &mut Self::Partial, cx: &FoldCx<'_>, rows: &dyn EventRows, range: Range<usize>);

    /// Merges another partial of the same key into `p`: the result does not
    /// depend on the order or grouping of merges.
    fn merge(p: &mut Self::Partial, other: Self::Partial);

    /// The finished fact.
    fn finish(key: &Self::Key, p: Self::Partial) -> Self::Value;

    /// The partial as rows, strings resolved, in an order that depends only
    /// on its content.
    fn write_rows(p: &Self::Partial, strings: &Interner, out: &mut Vec<FactRow>);

    /// Adds one row written by [`Fact::write_rows`] to `p`, interning its
    /// strings into `strings`; a partial read from rows equals the one
    /// written. An error says what is wrong with the row.
    fn read_row(p: &mut Self::Partial, row: FactRowRef<'_>, strings: &mut Interner) -> Result<(), String>;

    /// Forgets what no verdict on an event after `watermark` can read (a
    /// daily run keeps the rest for the next).
    fn retain(key: &Self::Key, p: &mut Self::Partial, watermark: Millis);
}

/// What a fold reads beside the rows: the run's strings (to resolve the
/// names in keys), its items, and (in a daily run) which accounts earlier
/// runs have seen.
#[derive(Clone, Copy)]
pub struct FoldCx<'a> {
    /// Every string of the run.
    pub strings: &'a Interner,
    /// The items table.
    pub items: &'a Items,
    /// Accounts seen before this run's events (a daily run's state); none
    /// when the run holds all events.
    pub seen_before: Option<&'a (dyn Fn(Sym) -> bool + Sync)>,
}

impl FoldCx<'_> {
    /// The run's symbols of `names` (names no event has are left out).
    pub fn resolve(&self, names: &[String]) -> Vec<Sym> {
        names.iter().filter_map(|n| self.strings.get(n)).collect()
    }

    /// Whether `account`'s first event in these rows is its first ever.
    pub fn is_new(&self, account: Sym) -> bool {
        self.seen_before.is_none_or(|seen| !seen(account))
    }
}

/// One row of a fact's partial, as it crosses between processes (and is
/// kept between runs): a text key, a day, and two numbers, each kind
/// saying in its [`Fact::write_rows`] what they hold.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FactRow {
    /// A value, an account, ... (absent for a total).
    pub key: Option<String>,
    /// A day number (days since 1970-01-01, UTC), for facts kept by day.
    pub day: Option<i64>,
    /// A count or a time.
    pub a: i64,
    /// A second count or time.
    pub b: Option<i64>,
}

impl FactRow {
    /// A row of a count for `key`.
    pub fn keyed(key: &str, count: u64) -> FactRow {
        FactRow { key: Some(key.to_string()), day: None, a: count.min(i64::MAX as u64) as i64, b: None }
    }

    /// A row of a count without key.
    pub fn count(count: u64) -> FactRow {
        FactRow { key: None, day: None, a: count.min(i64::MAX as u64) as i64, b: None }
    }

    /// The row, its strings borrowed.
    pub fn as_ref(&self) -> FactRowRef<'_> {
        FactRowRef { key: self.key.as_deref(), day: self.day, a: self.a, b: self.b }
    }
}

/// A [`FactRow`] being read, its strings borrowed.
#[derive(Clone, Copy, Debug)]
pub struct FactRowRef<'a> {
    /// See [`FactRow::key`].
    pub key: Option<&'a str>,
    /// See [`FactRow::day`].
    pub day: Option<i64>,
    /// See [`FactRow::a`].
    pub a: i64,
    /// See [`FactRow::b`].
    pub b: Option<i64>,
}

impl FactRowRef<'_> {
    /// `a` as a count.
    pub fn count(&self) -> Result<u64, String> {
        u64::try_from(self.a).map_err(|_| format!("negative count {}", self.a))
    }
}

/// A fact kind listed in the registry: how its keys, partials and values
/// sit in the registry's enums.
pub trait Registered: Fact {
    /// The key as a registry key.
    fn key(k: Self::Key) -> FactKey;
    /// The value, if `v` is one of this kind.
    fn value(v: &AnyValue) -> Option<&Arc<Self::Value>>;
}

/// Generates the registry: one enum variant per kind for its key, partial
/// and value, and the dispatch over them.
macro_rules! registry {
    ($( $variant:ident => $module:ident :: $kind:ident; )*) => {
        /// A population fact: its kind and key.
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum FactKey {
            $(
                #[doc = concat!("See [`", stringify!($module), "`].")]
                $variant(<$module::$kind as Fact>::Key),
            )*
        }

        /// A population fact's partial.
        #[derive(Clone, Debug, PartialEq)]
        pub enum AnyPartial {
            $(
                #[doc = concat!("See [`", stringify!($module), "`].")]
                $variant(<$module::$kind as Fact>::Partial),
            )*
        }

        /// A finished population fact.
        #[derive(Clone, Debug)]
        pub enum AnyValue {
            $(
                #[doc = concat!("See [`", stringify!($module), "`].")]
                $variant(Arc<<$module::$kind as Fact>::Value>),
            )*
        }

        $(
            impl Registered for $module::$kind {
                fn key(k: Self::Key) -> FactKey {
                    FactKey::$variant(k)
                }
                #[allow(unreachable_patterns)]
                fn value(v: &AnyValue) -> Option<&Arc<Self::Value>> {
                    match v {
                        AnyValue::$variant(x) => Some(x),
                        _ => None,
                    }
                }
            }

            impl From<<$module::$kind as Fact>::Key> for FactKey {
                fn from(k: <$module::$kind as Fact>::Key) -> FactKey {
                    FactKey::$variant(k)
                }
            }
        )*

        impl FactKey {
            /// The kind's name.
            pub fn kind(&self) -> &'static str {
                match self { $( FactKey::$variant(_) => <$module::$kind as Fact>::NAME, )* }
            }

            /// An empty partial of this fact.
            pub fn empty(&self) -> AnyPartial {
                match self { $( FactKey::$variant(_) => AnyPartial::$variant(Default::default()), )* }
            }

            /// Folds rows `range` of `rows` into `p`.
            fn fold(&self, p: &mut AnyPartial, cx: &FoldCx<'_>, rows: &dyn EventRows, range: Range<usize>) {
                match (self, p) {
                    $( (FactKey::$variant(k), AnyPartial::$variant(p)) => <$module::$kind as Fact>::fold(k, p, cx, rows, range), )*
                    #[allow(unreachable_patterns)]
                    _ => unreachable!("a partial is always used with the key that made it"),
                }
            }

            /// The finished fact.
            fn finish(&self, p: AnyPartial) -> AnyValue {
                match (self, p) {
                    $( (FactKey::$variant(k), AnyPartial::$variant(p)) => AnyValue::$variant(Arc::new(<$module::$kind as Fact>::finish(k, p))), )*
                    #[allow(unreachable_patterns)]
                    _ => unreachable!("a partial is always used with the key that made it"),
                }
            }
        }

        impl AnyPartial {
            /// Merges another partial of the same key.
            pub fn merge(&mut self, other: AnyPartial) {
                match (self, other) {
                    $( (AnyPartial::$variant(a), AnyPartial::$variant(b)) => <$module::$kind as Fact>::merge(a, b), )*
                    #[allow(unreachable_patterns)]
                    _ => unreachable!("partials merged are of one key"),
                }
            }

            /// The partial as rows (see [`Fact::write_rows`]).
            pub fn write_rows(&self, strings: &Interner, out: &mut Vec<FactRow>) {
                match self { $( AnyPartial::$variant(p) => <$module::$kind as Fact>::write_rows(p, strings, out), )* }
            }

            /// Adds a row (see [`Fact::read_row`]).
            pub fn read_row(&mut self, row: FactRowRef<'_>, strings: &mut Interner) -> Result<(), String> {
                match self { $( AnyPartial::$variant(p) => <$module::$kind as Fact>::read_row(p, row, strings), )* }
            }

            /// Forgets what no later verdict reads (see [`Fact::retain`]).
            pub fn retain(&mut self, key: &FactKey, watermark: Millis) {
                match (key, self) {
                    $( (FactKey::$variant(k), AnyPartial::$variant(p)) => <$module::$kind as Fact>::retain(k, p, watermark), )*
                    #[allow(unreachable_patterns)]
                    _ => unreachable!("a partial is always used with the key that made it"),
                }
            }
        }
    };
}

registry! {
    Prior => prior::Prior;
    Rate => rate::Rate;
}

/// Every fact a plan's signals need, finished, for binding: population
/// facts by key, item indexes by their action set, and when the input ends.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    values: Vec<(FactKey, AnyValue)>,
    /// Who did which actions on each item, when, by action set (sorted).
    pub item_actors: HashMap<Vec<String>, Arc<ItemActors>>,
    /// The time of the last event of the whole input (for look-ahead).
    pub data_end: Option<Millis>,
}

impl Facts {
    /// The population fact of kind `F` with key `key`, if it was computed.
    pub fn get<F: Registered>(&self, key: &F::Key) -> Option<&Arc<F::Value>> {
        let want = F::key(key.clone());
        self.values.iter().find(|(k, _)| *k == want).and_then(|(_, v)| F::value(v))
    }

    /// Whether the population fact `key` was computed.
    pub fn has(&self, key: &FactKey) -> bool {
        self.values.iter().any(|(k, _)| k == key)
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
    /// The population facts, in the order the plan first declares them.
    facts: Vec<(FactKey, AnyPartial)>,
    item_actors: Vec<(Vec<String>, ItemActorsAcc)>,
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
                Need::Fact(key) => {
                    if !a.facts.iter().any(|(k, _)| *k == key) {
                        let empty = key.empty();
                        a.facts.push((key, empty));
                    }
                }
                Need::ItemIndex { actions, every_entry, lockstep_window, reach, read_at: _, keep: _ } => {
                    let acc = slot(&mut a.item_actors, actions);
                    acc.pairs = true;
                    acc.reach = (acc.reach.0.max(reach.0), acc.reach.1.max(reach.1));
                    acc.exposure |= every_entry;
                    if let Some(w) = lockstep_window {
                        acc.lockstep_window = Some(acc.lockstep_window.map_or(w, |x| x.max(w)));
                    }
                }
            }
        }
        a.asked_by = asked_by.map(|all| sorted(&all));
        a
    }

    /// Adds all of `events` as [`Aggregates::add_all`] does, in a daily run
    /// whose state has seen the accounts `seen_before` says.
    pub fn add_all_seen(
        &mut self,
        events: &Events,
        strings: &Interner,
        items: &Items,
        seen_before: &(dyn Fn(Sym) -> bool + Sync),
    ) {
        let parts: Vec<Aggregates> = events
            .accounts
            .par_chunks(4096)
            .map(|spans| {
                let mut a = self.empty_like();
                let cx = FoldCx { strings, items, seen_before: Some(seen_before) };
                for span in spans {
                    a.add_with(events, span.range(), &cx);
                }
                a
            })
            .collect();
        for p in parts {
            self.merge(p);
        }
    }

    fn add_with(&mut self, rows: &dyn EventRows, range: std::ops::Range<usize>, cx: &FoldCx<'_>) {
        for (key, p) in &mut self.facts {
            key.fold(p, cx, rows, range.clone());
        }
        for (actions, acc) in &mut self.item_actors {
            acc.add(rows, range.clone(), &cx.resolve(actions));
        }
        let last = range.map(|i| rows.ts_at(i)).max();
        self.last = self.last.max(last);
    }

    /// Merges a population fact's partial from elsewhere (a daily run's
    /// state) into fact `slot`.
    pub fn merge_fact(&mut self, slot: usize, p: AnyPartial) {
        self.facts[slot].1.merge(p);
    }

    /// Adds entries of item index `slot` from elsewhere (a daily run's
    /// state).
    pub fn add_index_rows(&mut self, slot: usize, rows: impl IntoIterator<Item = ItemRow>) {
        self.item_actors[slot].1.rows.extend(rows);
    }

    /// The latest event time is at least `t` (a daily run's watermark).
    pub fn see_time(&mut self, t: Option<Millis>) {
        self.last = self.last.max(t);
    }

    /// The latest event time seen.
    pub fn last(&self) -> Option<Millis> {
        self.last
    }

    /// Each population fact's rows, what no verdict after `watermark` reads
    /// left out: what a daily run keeps for the next.
    pub fn kept_facts(&self, strings: &Interner, watermark: Millis) -> Vec<Vec<FactRow>> {
        self.facts
            .iter()
            .map(|(key, p)| {
                let mut p = p.clone();
                p.retain(key, watermark);
                let mut rows = Vec::new();
                p.write_rows(strings, &mut rows);
                rows
            })
            .collect()
    }

    /// Each item index's entries at or after `since(index)`: what a daily
    /// run keeps for the next.
    pub fn kept_entries(&self, since: impl Fn(&[String]) -> Millis) -> Vec<Vec<ItemRow>> {
        self.item_actors
            .iter()
            .map(|(actions, acc)| {
                let from = since(actions);
                let mut rows: Vec<ItemRow> = acc.rows.iter().copied().filter(|r| r.1 >= from).collect();
                rows.sort_unstable_by_key(|r| (r.1, r.0, r.2));
                rows
            })
            .collect()
    }

    /// The item indexes' action sets, in the order they are declared.
    pub fn item_index_keys(&self) -> Vec<Vec<String>> {
        self.item_actors.iter().map(|(k, _)| k.clone()).collect()
    }

    /// The population facts, in the order they are declared.
    pub fn fact_keys(&self) -> Vec<FactKey> {
        self.facts.iter().map(|(k, _)| k.clone()).collect()
    }

    /// Leaves out the item indexes (for a fold of the population facts
    /// alone).
    pub(crate) fn clear_item_indexes(&mut self) {
        self.item_actors.clear();
    }

    /// The population facts' partials and the latest event time.
    pub(crate) fn into_population(self) -> (Vec<(FactKey, AnyPartial)>, Option<Millis>) {
        (self.facts, self.last)
    }

    /// Replaces the population facts' partials and the latest event time
    /// with `facts` (of the same keys) and `last`.
    pub(crate) fn set_population(&mut self, facts: Vec<(FactKey, AnyPartial)>, last: Option<Millis>) {
        debug_assert!(facts.iter().map(|(k, _)| k).eq(self.facts.iter().map(|(k, _)| k)));
        self.facts = facts;
        self.last = last;
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
            facts: self.facts.iter().map(|(k, _)| (k.clone(), k.empty())).collect(),
            item_actors: self.item_actors.iter().map(|(k, a)| (k.clone(), a.empty_like())).collect(),
            last: None,
            queries: self.queries.clone(),
            asked_by: self.asked_by.clone(),
        }
    }

    /// Adds rows `range` of `rows`: whole accounts, each in time order.
    /// Items must be the dataset's.
    pub fn add(&mut self, rows: &dyn EventRows, range: std::ops::Range<usize>, strings: &Interner, items: &Items) {
        let cx = FoldCx { strings, items, seen_before: None };
        for (key, p) in &mut self.facts {
            key.fold(p, &cx, rows, range.clone());
        }
        for (actions, acc) in &mut self.item_actors {
            acc.add(rows, range.clone(), &cx.resolve(actions));
        }
        let last = range.map(|i| rows.ts_at(i)).max();
        self.last = self.last.max(last);
    }

    /// Adds all of `events`, in parallel chunks of whole accounts.
    pub fn add_all(&mut self, events: &Events, strings: &Interner, items: &Items) {
        let chunk = (events.len() / (rayon::current_num_threads() * 4)).max(1 << 16);
        // Chunk boundaries at account boundaries: the first span starting
        // at or after each multiple of `chunk`.
        let mut starts = vec![0usize];
        for span in &events.accounts {
            if span.start as usize >= starts[starts.len() - 1] + chunk {
                starts.push(span.start as usize);
            }
        }
        starts.push(events.len());
        let parts: Vec<Aggregates> = starts
            .par_windows(2)
            .map(|w| {
                let mut a = self.empty_like();
                a.add(events, w[0]..w[1], strings, items);
                a
            })
            .collect();
        for p in parts {
            self.merge(p);
        }
    }

    /// Merges another partial result of the same plan.
    pub fn merge(&mut self, other: Aggregates) {
        for ((_, a), (_, b)) in self.facts.iter_mut().zip(other.facts) {
            a.merge(b);
        }
        for ((_, a), (_, b)) in self.item_actors.iter_mut().zip(other.item_actors) {
            a.rows.extend(b.rows);
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
        let mut facts = self.finish(strings)?;
        // The run's facts hold each index empty: a partition is bound with
        // its own share ([`PartIndexes::load`]), never with these.
        for (actions, _, _) in &indexes.indexes {
            facts.item_actors.insert(actions.clone(), Arc::new(ItemActors::default()));
        }
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
            values: self.facts.into_iter().map(|(k, p)| (k.clone(), k.finish(p))).collect(),
            item_actors,
            data_end: self.last,
        })
    }
}
