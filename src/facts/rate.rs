//! The population's rate of some actions per account-day: how many follows
//! (say) an account makes on a day, across everyone. `rate_spike` mixes it
//! into an account's own rate, so that an account with little history is
//! judged against what is ordinary for everyone.
//!
//! **As of the day before.** A verdict on an event of day `d` (UTC) reads
//! the rate over days `d - days` to `d - 1`: the events of those days with
//! one of the actions, over the account-days of those days, an account
//! counting from the day of its first event on (so that a quiet day of an
//! account counts as a day with no such actions). Nothing of day `d` or
//! after is read; on the first day of the data the rate is 0.
//!
//! Fold: per day, the events with one of the actions and the accounts whose
//! first event it is. The fold reads whole accounts in time order, so an
//! account's first row is its first event.

use std::collections::BTreeMap;
use std::ops::Range;

use super::{Fact, FactRow, FactRowRef, FoldCx};
use crate::data::EventRows;
use crate::intern::Interner;
use crate::time::{Millis, day_of};

/// The fact kind.
pub struct Rate;

/// Which rate: of which actions (sorted), over how many days before the
/// verdict's.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// The actions counted, sorted and deduplicated.
    pub actions: Vec<String>,
    /// The days before the verdict's day it covers (at least 1).
    pub days: u32,
}

/// The fold: per day, (events with one of the actions, accounts first
/// seen).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Partial {
    days: BTreeMap<i64, (u64, u64)>,
}

impl Partial {
    /// Counts the first event of an account (seen by a daily run, which
    /// knows the accounts of earlier runs) on `day`.
    pub fn first_seen(&mut self, day: i64) {
        self.days.entry(day).or_default().1 += 1;
    }

    /// Forgets the actions of days before `day`; accounts first seen then
    /// are kept (they still count their days), summed into one day.
    pub fn retain_from(&mut self, day: i64) {
        let old: u64 = self.days.range(..day).map(|(_, &(_, n))| n).sum();
        self.days.retain(|&d, _| d >= day);
        if old > 0 {
            self.days.entry(day - 1).or_default().1 += old;
        }
    }
}

/// The finished rate, answering for any day.
#[derive(Debug, Default)]
pub struct Value {
    days: i64,
    first: i64,
    /// Per day from `first`: the actions of the days before it.
    actions: Vec<u64>,
    /// Accounts first seen on the days before, and the sum of their first
    /// days (for the account-days in a window).
    seen: Vec<u64>,
    seen_days: Vec<i128>,
}

impl Value {
    fn at(&self, day: i64) -> usize {
        (day - self.first).clamp(0, self.actions.len().saturating_sub(1) as i64) as usize
    }

    /// Actions per account-day over the `days` days before `day`.
    pub fn per_day(&self, day: i64) -> f64 {
        if self.actions.is_empty() {
            return 0.0;
        }
        let (from, to) = (self.at(day - self.days), self.at(day));
        let count = self.actions[to] - self.actions[from];
        // Accounts first seen before the window count all its days; those
        // first seen inside it, the days from their first on.
        let before = self.seen[from] as i128;
        let inside = (self.seen[to] - self.seen[from]) as i128;
        let inside_days = inside * i128::from(day) - (self.seen_days[to] - self.seen_days[from]);
        // A day past the arrays' end: clamping moved `to`, so the window's
        // accounts and days are those the arrays hold.
        let account_days = before * i128::from(self.days) + inside_days;
        if account_days <= 0 { 0.0 } else { count as f64 / account_days as f64 }
    }
}

impl Fact for Rate {
    const NAME: &'static str = "rate";
    type Key = Key;
    type Partial = Partial;
    type Value = Value;

    fn fold(key: &Key, p: &mut Partial, cx: &FoldCx<'_>, rows: &dyn EventRows, range: Range<usize>) {
        let actions = cx.resolve(&key.actions);
        let start = range.start;
        for i in range {
            let day = day_of(rows.ts_at(i));
            let first = i == start || rows.actor_at(i - 1) != rows.actor_at(i);
            if first && cx.is_new(rows.actor_at(i)) {
                p.first_seen(day);
            }
            if actions.contains(&rows.action_at(i)) {
                p.days.entry(day).or_default().0 += 1;
            }
        }
    }

    fn merge(p: &mut Partial, other: Partial) {
        for (d, (a, n)) in other.days {
            let e = p.days.entry(d).or_default();
            e.0 += a;
            e.1 += n;
        }
    }

    fn finish(key: &Key, p: Partial) -> Value {
        let days = i64::from(key.days.max(1));
        let (Some(&first), Some(&last)) = (p.days.keys().next(), p.days.keys().next_back()) else {
            return Value { days, ..Value::default() };
        };
        let len = (last - first + days + 2) as usize;
        let (mut actions, mut seen, mut seen_days) = (vec![0u64; len + 1], vec![0u64; len + 1], vec![0i128; len + 1]);
        for (&d, &(a, n)) in &p.days {
            let k = (d - first + 1) as usize;
            actions[k] += a;
            seen[k] += n;
            seen_days[k] += i128::from(n) * i128::from(d);
        }
        for k in 1..=len {
            actions[k] += actions[k - 1];
            seen[k] += seen[k - 1];
            seen_days[k] += seen_days[k - 1];
        }
        Value { days, first, actions, seen, seen_days }
    }

    /// Rows: one per day (`day`, `a` the events with one of the actions,
    /// `b` the accounts first seen).
    fn write_rows(p: &Partial, _strings: &Interner, out: &mut Vec<FactRow>) {
        let n = |x: u64| x.min(i64::MAX as u64) as i64;
        out.extend(p.days.iter().map(|(&d, &(a, s))| FactRow { key: None, day: Some(d), a: n(a), b: Some(n(s)) }));
    }

    fn retain(key: &Key, p: &mut Partial, watermark: Millis) {
        p.retain_from(day_of(watermark) - i64::from(key.days.max(1)));
    }

    fn read_row(p: &mut Partial, row: FactRowRef<'_>, _strings: &mut Interner) -> Result<(), String> {
        let day = row.day.ok_or("a rate row without its day")?;
        let seen = u64::try_from(row.b.ok_or("a rate row without its accounts")?).map_err(|_| "negative accounts")?;
        let e = p.days.entry(day).or_default();
        e.0 += row.count()?;
        e.1 += seen;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_counts_the_window_before_over_account_days_from_first_seen() {
        let mut p = Partial::default();
        // Day 10: two accounts appear, 6 actions; day 12: one more, 3
        // actions; day 15: 9 actions.
        p.days.insert(10, (6, 2));
        p.days.insert(12, (3, 1));
        p.days.insert(15, (9, 0));
        let v = Rate::finish(&Key { actions: vec![], days: 3 }, p);
        // Day 10 itself: nothing before.
        assert_eq!(v.per_day(10), 0.0);
        // Day 11, window 8..=10: 6 actions over 2 accounts x 1 day.
        assert_eq!(v.per_day(11), 6.0 / 2.0);
        // Day 13, window 10..=12: 9 actions; 2 accounts x 3 days + 1 x 1.
        assert_eq!(v.per_day(13), 9.0 / 7.0);
        // Day 16, window 13..=15: 9 actions; 3 accounts x 3 days.
        assert_eq!(v.per_day(16), 9.0 / 9.0);
        // Long after: no actions, every account's whole window.
        assert_eq!(v.per_day(40), 0.0);
    }
}
