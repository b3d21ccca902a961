//! The population's distribution of one feature of the target (its labels,
//! author or language) over the history actions of every account: how
//! common each value is among everyone's likes, reposts and replies.
//! `off_pattern` smooths an account's own baseline toward it, so that a
//! value rare in the population is confidently rare for a short history
//! too, while a common one needs history to be called off pattern.
//!
//! Fold: a count per value over history events with the feature known, and
//! how many such events there were. Finished: each value's share, Laplace
//! smoothed so that a value never seen still has one.

use std::ops::Range;

use super::{Fact, FactRow, FactRowRef, FoldCx};
use crate::data::{EventRows, Items};
use crate::intern::{Interner, Sym, SymMap};

/// A property of the target that a baseline is kept of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feature {
    /// The item's labels (multi-valued).
    Labels,
    /// The item's author.
    Author,
    /// The item's language.
    Lang,
}

impl Feature {
    /// The features' names, as rules write them.
    pub const NAMES: [&'static str; 3] = ["labels", "author", "lang"];

    /// The feature named `name`.
    pub fn named(name: &str) -> Option<Feature> {
        Feature::NAMES.iter().position(|n| *n == name).map(|i| [Feature::Labels, Feature::Author, Feature::Lang][i])
    }

    /// The feature's name, as rules write it.
    pub fn name(self) -> &'static str {
        Feature::NAMES[self as usize]
    }

    /// The feature's values for a target with an optional explicit author
    /// (an event's `target_author`), into `out`.
    pub fn values_of(self, target: Option<Sym>, author: Option<Sym>, items: &Items, out: &mut Vec<Sym>) {
        out.clear();
        let row = target.and_then(|t| items.row(t));
        match self {
            Feature::Labels => {
                if let Some(r) = row {
                    out.extend_from_slice(items.labels(r));
                }
            }
            Feature::Author => out.extend(author.or_else(|| row.and_then(|r| items.author(r)))),
            Feature::Lang => out.extend(row.and_then(|r| items.lang(r))),
        }
    }
}

/// The fact kind.
pub struct Prior;

/// Which distribution: the feature, over which actions (sorted).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// The feature.
    pub feature: Feature,
    /// The history actions, sorted and deduplicated.
    pub history: Vec<String>,
}

/// The fold: value counts over history events with the feature known.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Partial {
    counts: SymMap<u64>,
    total: u64,
}

/// The finished distribution.
#[derive(Debug, Default)]
pub struct Value {
    share: SymMap<f64>,
    unseen: f64,
}

impl Value {
    /// The population's share of value `v`.
    pub fn of(&self, v: Sym) -> f64 {
        self.share.get(&v).copied().unwrap_or(self.unseen)
    }
}

impl Fact for Prior {
    const NAME: &'static str = "prior";
    type Key = Key;
    type Partial = Partial;
    type Value = Value;

    fn fold(key: &Key, p: &mut Partial, cx: &FoldCx<'_>, rows: &dyn EventRows, range: Range<usize>) {
        let history = cx.resolve(&key.history);
        let mut values = Vec::new();
        for i in range {
            if !history.contains(&rows.action_at(i)) {
                continue;
            }
            key.feature.values_of(rows.target_at(i), rows.target_author_at(i), cx.items, &mut values);
            if !values.is_empty() {
                p.total += 1;
            }
            for &v in &values {
                *p.counts.entry(v).or_default() += 1;
            }
        }
    }

    fn merge(p: &mut Partial, other: Partial) {
        p.total += other.total;
        for (k, v) in other.counts {
            *p.counts.entry(k).or_default() += v;
        }
    }

    fn finish(_key: &Key, p: Partial) -> Value {
        // Laplace smoothing, so that a value never seen still has a share.
        let denom = p.total as f64 + p.counts.len() as f64 + 1.0;
        Value { share: p.counts.into_iter().map(|(k, c)| (k, (c as f64 + 1.0) / denom)).collect(), unseen: 1.0 / denom }
    }

    /// Rows: one per value (`key` the value, `a` its count), and one for
    /// the number of events (`key` absent, `a` the count).
    fn write_rows(p: &Partial, strings: &Interner, out: &mut Vec<FactRow>) {
        let mut values: Vec<(&str, u64)> = p.counts.iter().map(|(&v, &c)| (strings.resolve(v), c)).collect();
        values.sort_unstable();
        out.extend(values.into_iter().map(|(v, c)| FactRow::keyed(v, c)));
        out.push(FactRow::count(p.total));
    }

    fn read_row(p: &mut Partial, row: FactRowRef<'_>, strings: &mut Interner) -> Result<(), String> {
        let n = row.count()?;
        match row.key {
            Some(v) => *p.counts.entry(strings.intern(v)).or_default() += n,
            None => p.total += n,
        }
        Ok(())
    }
}
