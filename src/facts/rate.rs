//! The population's rate of some actions per account-day: how many follows
//! (say) an account makes on a day, across everyone. `rate_spike` mixes it
//! into an account's own rate, so that an account with little history is
//! judged against what is ordinary for everyone.
//!
//! Fold: how many events have one of the actions, and each account's span
//! (first and last event). Finished: that count over the accounts' spans in
//! days (at least one day each).

use std::ops::Range;

use super::{Fact, FactRow, FactRowRef, FoldCx};
use crate::data::EventRows;
use crate::intern::{Interner, SymMap};
use crate::time::{DAY, Millis};

/// The fact kind.
pub struct Rate;

/// Which rate: of which actions (sorted).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// The actions counted, sorted and deduplicated.
    pub actions: Vec<String>,
}

/// The fold: the count, and each account's first and last event.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Partial {
    count: u64,
    spans: SymMap<(Millis, Millis)>,
}

/// The finished rate, per account-day.
#[derive(Debug, Default)]
pub struct Value {
    per_day: f64,
}

impl Value {
    /// Actions per account-day.
    pub fn per_day(&self) -> f64 {
        self.per_day
    }
}

impl Fact for Rate {
    const NAME: &'static str = "rate";
    type Key = Key;
    type Partial = Partial;
    type Value = Value;

    fn fold(key: &Key, p: &mut Partial, cx: &FoldCx<'_>, rows: &dyn EventRows, range: Range<usize>) {
        let actions = cx.resolve(&key.actions);
        for i in range {
            let (actor, ts) = (rows.actor_at(i), rows.ts_at(i));
            let span = p.spans.entry(actor).or_insert((ts, ts));
            span.0 = span.0.min(ts);
            span.1 = span.1.max(ts);
            if actions.contains(&rows.action_at(i)) {
                p.count += 1;
            }
        }
    }

    fn merge(p: &mut Partial, other: Partial) {
        p.count += other.count;
        for (k, (a, b)) in other.spans {
            let span = p.spans.entry(k).or_insert((a, b));
            span.0 = span.0.min(a);
            span.1 = span.1.max(b);
        }
    }

    fn finish(_key: &Key, p: Partial) -> Value {
        let days: f64 = p.spans.values().map(|&(a, b)| ((b - a) as f64 / DAY as f64).max(1.0)).sum();
        Value { per_day: if days > 0.0 { p.count as f64 / days } else { 0.0 } }
    }

    /// Rows: one per account (`key` the account, `a` its first event time,
    /// `b` its last), and one for the count (`key` absent, `a` the count).
    fn write_rows(p: &Partial, strings: &Interner, out: &mut Vec<FactRow>) {
        let mut spans: Vec<(&str, Millis, Millis)> =
            p.spans.iter().map(|(&k, &(a, b))| (strings.resolve(k), a, b)).collect();
        spans.sort_unstable();
        out.extend(spans.into_iter().map(|(k, a, b)| FactRow { key: Some(k.to_string()), day: None, a, b: Some(b) }));
        out.push(FactRow::count(p.count));
    }

    fn read_row(p: &mut Partial, row: FactRowRef<'_>, strings: &mut Interner) -> Result<(), String> {
        match row.key {
            Some(who) => {
                let last = row.b.ok_or("a rate span without its last time")?;
                let span = p.spans.entry(strings.intern(who)).or_insert((row.a, last));
                span.0 = span.0.min(row.a);
                span.1 = span.1.max(last);
            }
            None => p.count += row.count()?,
        }
        Ok(())
    }
}
