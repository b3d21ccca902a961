//! The population's distribution of one feature of the target (its labels,
//! author or language) over the history actions of every account: how
//! common each value is among everyone's likes, reposts and replies.
//! `off_pattern` smooths an account's own baseline toward it, so that a
//! value rare in the population is confidently rare for a short history
//! too, while a common one needs history to be called off pattern.
//!
//! **As of the day before.** A verdict on an event of day `d` (UTC) reads
//! the distribution over the history events of days `d - days` to `d - 1`:
//! never the event's own day, never anything after it, so that a daily run
//! that has seen only the days before gives the same verdict as a run over
//! all of them. On the first day of the data nothing is known
//! ([`Value::known`]), and `off_pattern` abstains.
//!
//! Fold: a count per (value, day) over history events with the feature
//! known, and per day how many such events there were. Finished: each
//! value's share in the window before a day, Laplace smoothed over the
//! values seen in that window, so that a value never seen still has one.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use super::{Fact, FactRow, FactRowRef, FoldCx};
use crate::data::{EventRows, Items};
use crate::intern::{Interner, Sym, SymMap};
use crate::time::{Millis, day_of};

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

/// Which distribution: the feature, over which actions (sorted), over how
/// many days before the verdict's.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// The feature.
    pub feature: Feature,
    /// The history actions, sorted and deduplicated.
    pub history: Vec<String>,
    /// The days before the verdict's day it covers (at least 1).
    pub days: u32,
}

/// The fold: counts per (value, day) over history events with the feature
/// known, and the number of such events per day.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Partial {
    counts: HashMap<(Sym, i64), u64, foldhash::fast::FixedState>,
    totals: BTreeMap<i64, u64>,
}

impl Partial {
    /// Forgets the days before `day` (a daily run keeps only what a later
    /// verdict can read).
    pub fn retain_from(&mut self, day: i64) {
        self.counts.retain(|&(_, d), _| d >= day);
        self.totals.retain(|&d, _| d >= day);
    }
}

/// The finished distribution, answering for any day.
#[derive(Debug, Default)]
pub struct Value {
    /// The window, in days.
    days: i64,
    /// The first day with data; the arrays below start there.
    first: i64,
    /// Events with the feature known, on the days before each day
    /// (`total[k]` sums days `first .. first + k`).
    total: Vec<u64>,
    /// Distinct values with a count in the window before each day.
    distinct: Vec<u32>,
    /// Per value, (day, count of that day and the days before) in day
    /// order.
    cumulative: SymMap<Vec<(i64, u64)>>,
}

impl Value {
    /// Index into the per-day arrays of the days before `day`, clamped.
    fn at(&self, day: i64) -> usize {
        (day - self.first).clamp(0, self.total.len().saturating_sub(1) as i64) as usize
    }

    /// Whether the days before `day` hold any history event with the
    /// feature known (without, the population's distribution is unknown).
    pub fn known(&self, day: i64) -> bool {
        let (from, to) = (self.at(day - self.days), self.at(day));
        self.total.get(to).copied().unwrap_or(0) > self.total.get(from).copied().unwrap_or(0)
    }

    /// The population's share of value `v` on day `day`: its share among
    /// the history events of days `day - days` to `day - 1`.
    pub fn of(&self, v: Sym, day: i64) -> f64 {
        let (from, to) = (self.at(day - self.days), self.at(day));
        let n = self.total.get(to).copied().unwrap_or(0) - self.total.get(from).copied().unwrap_or(0);
        let k = self.distinct.get(self.at(day)).copied().unwrap_or(0);
        let c = self.cumulative.get(&v).map_or(0, |cum| {
            // The count up to and including `d`.
            let upto = |d: i64| match cum.partition_point(|&(x, _)| x <= d) {
                0 => 0,
                i => cum[i - 1].1,
            };
            upto(day - 1) - upto(day - 1 - self.days)
        });
        (c as f64 + 1.0) / (n as f64 + f64::from(k) + 1.0)
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
            if values.is_empty() {
                continue;
            }
            let day = day_of(rows.ts_at(i));
            *p.totals.entry(day).or_default() += 1;
            for &v in &values {
                *p.counts.entry((v, day)).or_default() += 1;
            }
        }
    }

    fn merge(p: &mut Partial, other: Partial) {
        for (d, n) in other.totals {
            *p.totals.entry(d).or_default() += n;
        }
        for (k, n) in other.counts {
            *p.counts.entry(k).or_default() += n;
        }
    }

    fn finish(key: &Key, p: Partial) -> Value {
        let days = i64::from(key.days.max(1));
        let (Some(&first), Some(&last)) = (p.totals.keys().next(), p.totals.keys().next_back()) else {
            return Value { days, ..Value::default() };
        };
        // Per-day arrays over every day a verdict can ask about: from the
        // first day with data to the day after the window of the last.
        let len = (last - first + days + 2) as usize;
        let mut total = vec![0u64; len + 1];
        for (&d, &n) in &p.totals {
            total[(d - first + 1) as usize] += n;
        }
        for k in 1..total.len() {
            total[k] += total[k - 1];
        }
        let mut by_value: SymMap<Vec<(i64, u64)>> = SymMap::default();
        for ((v, d), n) in p.counts {
            by_value.entry(v).or_default().push((d, n));
        }
        // A value is in the window of day `x` when it has a count on one of
        // the days `x - days .. x - 1`: each counted day `d` covers the
        // days `d + 1 ..= d + days`; the union of those, per value, added to
        // a difference array.
        let mut change = vec![0i64; len + 2];
        let mut cumulative = SymMap::default();
        for (v, mut list) in by_value {
            list.sort_unstable();
            let mut covered: Option<(i64, i64)> = None;
            let mut add = |(a, b): (i64, i64)| {
                change[(a - first) as usize] += 1;
                change[(b - first + 1) as usize] -= 1;
            };
            for &(d, _) in &list {
                let (a, b) = (d + 1, d + days);
                covered = match covered {
                    Some((x, y)) if a <= y + 1 => Some((x, y.max(b))),
                    Some(span) => {
                        add(span);
                        Some((a, b))
                    }
                    None => Some((a, b)),
                };
            }
            if let Some(span) = covered {
                add(span);
            }
            let mut sum = 0;
            let cum: Vec<(i64, u64)> = list
                .into_iter()
                .map(|(d, n)| {
                    sum += n;
                    (d, sum)
                })
                .collect();
            cumulative.insert(v, cum);
        }
        let mut distinct = vec![0u32; len + 1];
        let mut running = 0i64;
        for (k, slot) in distinct.iter_mut().enumerate() {
            running += change[k];
            *slot = running.max(0) as u32;
        }
        Value { days, first, total, distinct, cumulative }
    }

    /// Rows: one per value and day (`key` the value, `day`, `a` its
    /// count), and one per day for the number of events (`key` absent).
    fn write_rows(p: &Partial, strings: &Interner, out: &mut Vec<FactRow>) {
        let mut values: Vec<(&str, i64, u64)> =
            p.counts.iter().map(|(&(v, d), &c)| (strings.resolve(v), d, c)).collect();
        values.sort_unstable();
        out.extend(values.into_iter().map(|(v, d, c)| FactRow { day: Some(d), ..FactRow::keyed(v, c) }));
        out.extend(p.totals.iter().map(|(&d, &n)| FactRow { day: Some(d), ..FactRow::count(n) }));
    }

    fn retain(key: &Key, p: &mut Partial, watermark: Millis) {
        p.retain_from(day_of(watermark) - i64::from(key.days.max(1)));
    }

    fn read_row(p: &mut Partial, row: FactRowRef<'_>, strings: &mut Interner) -> Result<(), String> {
        let n = row.count()?;
        let day = row.day.ok_or("a prior row without its day")?;
        match row.key {
            Some(v) => *p.counts.entry((strings.intern(v), day)).or_default() += n,
            None => *p.totals.entry(day).or_default() += n,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The share of a value on a day, as the definition says, by brute
    /// force over the partial.
    fn by_definition(p: &Partial, days: i64, v: Sym, day: i64) -> f64 {
        let window = (day - days)..day;
        let n: u64 = p.totals.iter().filter(|(d, _)| window.contains(d)).map(|(_, n)| n).sum();
        let c: u64 = p.counts.iter().filter(|((x, d), _)| *x == v && window.contains(d)).map(|(_, n)| n).sum();
        let mut seen: Vec<Sym> = p.counts.keys().filter(|(_, d)| window.contains(d)).map(|(x, _)| *x).collect();
        seen.sort_unstable();
        seen.dedup();
        (c as f64 + 1.0) / (n as f64 + seen.len() as f64 + 1.0)
    }

    #[test]
    fn a_share_counts_only_the_days_before_within_the_window() {
        let mut strings = Interner::new();
        let values: Vec<Sym> = (0..5).map(|i| strings.intern(&format!("v{i}"))).collect();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for case in 0..50 {
            let days = 1 + next(6) as i64;
            let mut p = Partial::default();
            for _ in 0..next(40) {
                let (v, d) = (values[next(5) as usize], 100 + next(20) as i64);
                *p.counts.entry((v, d)).or_default() += 1;
                *p.totals.entry(d).or_default() += 1 + next(2);
            }
            let key = Key { feature: Feature::Labels, history: Vec::new(), days: days as u32 };
            let value = Prior::finish(&key, p.clone());
            for day in 95..130 {
                for &v in &values {
                    let want = by_definition(&p, days, v, day);
                    assert_eq!(value.of(v, day), want, "case {case}, day {day}, window {days}");
                }
            }
        }
    }
}
