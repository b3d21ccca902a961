//! The events table, sorted by account and time, without exact duplicates.
//!
//! After reading, events are ordered by (actor, ts), ties broken by the
//! record's full content compared as text, so the order depends only on the
//! data and never on file order, block boundaries or thread count. Records
//! identical in every field are kept once. Each account's events are then
//! one contiguous range, which is what the scorer partitions on.

use std::cmp::Ordering;

use rayon::prelude::*;

use super::schema::ev;
use super::table::{Column, Table, Times};
use crate::intern::{Interner, Sym};
use crate::time::Millis;

/// One account's events: `start..end` in the sorted table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountSpan {
    /// The account.
    pub actor: Sym,
    /// First event index.
    pub start: u32,
    /// One past the last event index.
    pub end: u32,
}

impl AccountSpan {
    /// The span's event indices.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// All events, columnar, sorted by (actor, ts).
#[derive(Clone, Debug)]
pub struct Events {
    ts: Vec<Millis>,
    actor: Vec<Sym>,
    action: Vec<Sym>,
    /// Every column, including extras; `ts`, `actor` and `action` are also
    /// held densely above for the hot path.
    pub table: Table,
    /// Accounts in table order, one span each.
    pub accounts: Vec<AccountSpan>,
}

impl Events {
    /// Sorts and deduplicates a freshly read events table. Returns the
    /// events and how many exact duplicates were dropped.
    ///
    /// Rows are put in account order by a counting sort on the actor's
    /// symbol (one pass to count, one to place, rows of an account keeping
    /// their order), then each account's rows are sorted on their own, in
    /// parallel, by (ts, row), and rows equal in (actor, ts) by content, as
    /// text. The order is that of sorting all rows by (actor, ts, content),
    /// without one large sort of scattered rows.
    pub fn from_table(mut table: Table, strings: &Interner) -> (Events, u64) {
        let n = table.rows;
        let ts = take_times(&mut table.columns[ev::TS], n);
        let actor = take_syms(&mut table.columns[ev::ACTOR], n);
        let action = take_syms(&mut table.columns[ev::ACTION], n);

        let bound = actor.par_iter().map(|a| a.index() + 1).max().unwrap_or(0);
        let mut starts = vec![0u32; bound + 1];
        for a in &actor {
            starts[a.index() + 1] += 1;
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let mut order = vec![0u32; n];
        for (row, a) in actor.iter().enumerate() {
            let at = &mut starts[a.index()];
            order[*at as usize] = row as u32;
            *at += 1;
        }
        drop(starts);

        let columns = &table.columns;
        let by_content = |a: &u32, b: &u32| {
            let (a, b) = (*a as usize, *b as usize);
            strings.resolve(action[a]).cmp(strings.resolve(action[b])).then_with(|| {
                columns.iter().map(|c| c.cmp_rows(a, b, strings)).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
            })
        };
        order.par_chunk_by_mut(|&a, &b| actor[a as usize] == actor[b as usize]).for_each(|run| {
            run.sort_unstable_by_key(|&r| (ts[r as usize], r));
            for tie in run.chunk_by_mut(|&a, &b| ts[a as usize] == ts[b as usize]) {
                if tie.len() > 1 {
                    tie.sort_by(by_content);
                }
            }
        });
        let before = order.len();
        order.dedup_by(|b, a| {
            let (a, b) = (*a as usize, *b as usize);
            actor[a] == actor[b] && ts[a] == ts[b] && action[a] == action[b] && columns.iter().all(|c| c.same(a, b))
        });
        let duplicates = (before - order.len()) as u64;

        let ts: Vec<Millis> = order.par_iter().map(|&i| ts[i as usize]).collect();
        let actor: Vec<Sym> = order.par_iter().map(|&i| actor[i as usize]).collect();
        let action: Vec<Sym> = order.par_iter().map(|&i| action[i as usize]).collect();
        table.gather(&order);
        let accounts = spans(&actor);
        (Events { ts, actor, action, table, accounts }, duplicates)
    }

    /// Back into a plain table (for writing a sorted partition to disk).
    pub fn into_table(self) -> Table {
        let mut table = self.table;
        table.columns[ev::TS] = Column::Time(Times::from_values(self.ts));
        table.columns[ev::ACTOR] = Column::Sym(self.actor.into_iter().map(Some).collect());
        table.columns[ev::ACTION] = Column::Sym(self.action.into_iter().map(Some).collect());
        table
    }

    /// No events.
    pub fn empty() -> Events {
        Events {
            ts: Vec::new(),
            actor: Vec::new(),
            action: Vec::new(),
            table: Table::new(super::schema::TableKind::Events),
            accounts: Vec::new(),
        }
    }

    /// Number of events.
    #[inline]
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// Whether there are no events.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// Event time.
    #[inline]
    pub fn ts(&self, i: usize) -> Millis {
        self.ts[i]
    }

    /// The acting account.
    #[inline]
    pub fn actor(&self, i: usize) -> Sym {
        self.actor[i]
    }

    /// The action.
    #[inline]
    pub fn action(&self, i: usize) -> Sym {
        self.action[i]
    }

    /// The target item or account, if any.
    #[inline]
    pub fn target(&self, i: usize) -> Option<Sym> {
        self.table.columns[ev::TARGET].sym(i)
    }

    /// The symbol in column `col` at event `i` (any symbol column, including
    /// `actor` and `action`).
    #[inline]
    pub fn sym(&self, col: usize, i: usize) -> Option<Sym> {
        match col {
            ev::ACTOR => Some(self.actor[i]),
            ev::ACTION => Some(self.action[i]),
            _ => self.table.columns.get(col).and_then(|c| c.sym(i)),
        }
    }

    /// The number in column `col` (`lat`, `lon`) at event `i`.
    #[inline]
    pub fn num(&self, col: usize, i: usize) -> Option<f64> {
        self.table.columns.get(col).and_then(|c| c.num(i))
    }

    /// All event times (sorted within each account).
    pub fn all_ts(&self) -> &[Millis] {
        &self.ts
    }

    /// All actions.
    pub fn all_actions(&self) -> &[Sym] {
        &self.action
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.ts.capacity() * 8 + self.actor.capacity() * 4 + self.action.capacity() * 4 + self.table.heap_bytes()
    }
}

/// The values of a required time column, leaving it empty.
fn take_times(column: &mut Column, n: usize) -> Vec<Millis> {
    match std::mem::replace(column, Column::Time(Times::new())) {
        Column::Time(v) => v.into_values(n).expect("a required field is present in every row"),
        _ => unreachable!("the schema makes it a time column"),
    }
}

/// The values of a required symbol column, leaving it empty.
fn take_syms(column: &mut Column, n: usize) -> Vec<Sym> {
    match std::mem::replace(column, Column::Sym(Vec::new())) {
        Column::Sym(v) => {
            assert_eq!(v.len(), n, "a required field is present in every row");
            v.into_par_iter().map(|s| s.expect("a required field is present in every row")).collect()
        }
        _ => unreachable!("the schema makes it a symbol column"),
    }
}

fn spans(actor: &[Sym]) -> Vec<AccountSpan> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=actor.len() {
        if i == actor.len() || actor[i] != actor[start] {
            out.push(AccountSpan { actor: actor[start], start: start as u32, end: i as u32 });
            start = i;
        }
    }
    out
}

/// Rows of events, however they are held: the sorted [`Events`] of a whole
/// dataset, or one raw block of a table being read (for aggregates computed
/// while streaming).
pub trait EventRows: Sync {
    /// Number of rows.
    fn rows(&self) -> usize;
    /// Event time of row `i`.
    fn ts_at(&self, i: usize) -> Millis;
    /// Acting account of row `i`.
    fn actor_at(&self, i: usize) -> Sym;
    /// Action of row `i`.
    fn action_at(&self, i: usize) -> Sym;
    /// Target of row `i`.
    fn target_at(&self, i: usize) -> Option<Sym>;
    /// `target_author` of row `i`.
    fn target_author_at(&self, i: usize) -> Option<Sym>;
}

impl EventRows for Events {
    fn rows(&self) -> usize {
        self.len()
    }
    fn ts_at(&self, i: usize) -> Millis {
        self.ts[i]
    }
    fn actor_at(&self, i: usize) -> Sym {
        self.actor[i]
    }
    fn action_at(&self, i: usize) -> Sym {
        self.action[i]
    }
    fn target_at(&self, i: usize) -> Option<Sym> {
        self.target(i)
    }
    fn target_author_at(&self, i: usize) -> Option<Sym> {
        self.table.columns[ev::TARGET_AUTHOR].sym(i)
    }
}

/// A raw events table (as read, before sorting): its required columns are
/// set on every row.
impl EventRows for Table {
    fn rows(&self) -> usize {
        self.rows
    }
    fn ts_at(&self, i: usize) -> Millis {
        self.columns[ev::TS].time(i).expect("ts is required")
    }
    fn actor_at(&self, i: usize) -> Sym {
        self.columns[ev::ACTOR].sym(i).expect("actor is required")
    }
    fn action_at(&self, i: usize) -> Sym {
        self.columns[ev::ACTION].sym(i).expect("action is required")
    }
    fn target_at(&self, i: usize) -> Option<Sym> {
        self.columns[ev::TARGET].sym(i)
    }
    fn target_author_at(&self, i: usize) -> Option<Sym> {
        self.columns[ev::TARGET_AUTHOR].sym(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::jsonl;
    use crate::data::schema::TableKind;
    use crate::data::table::TableBuilder;

    fn events(lines: &[&str]) -> (Events, u64, Interner) {
        let mut b = TableBuilder::new(TableKind::Events);
        let mut bad = Vec::new();
        jsonl::parse_block(lines.join("\n").as_bytes(), 1, &mut b, &mut bad);
        assert!(bad.is_empty(), "{bad:?}");
        let mut strings = Interner::new();
        let mut t = Table::new(TableKind::Events);
        t.append(b, &mut strings);
        let (e, d) = Events::from_table(t, &strings);
        (e, d, strings)
    }

    #[test]
    fn sorts_per_account_and_drops_exact_duplicates() {
        let (e, dups, strings) = events(&[
            r#"{"ts":30,"actor":"b","action":"like","target":"x"}"#,
            r#"{"ts":20,"actor":"a","action":"like","target":"y"}"#,
            r#"{"ts":10,"actor":"b","action":"like","target":"z"}"#,
            r#"{"ts":20,"actor":"a","action":"like","target":"y"}"#,
            r#"{"ts":20,"actor":"a","action":"like","target":"x"}"#,
            r#"{"ts":20,"actor":"a","action":"like","target":"y","extra":"1"}"#,
        ]);
        assert_eq!(dups, 1);
        assert_eq!(e.len(), 5);
        let rows: Vec<(String, i64, String)> = (0..e.len())
            .map(|i| {
                (strings.resolve(e.actor(i)).to_string(), e.ts(i), strings.resolve(e.target(i).unwrap()).to_string())
            })
            .collect();
        assert_eq!(rows[0], ("b".into(), 10, "z".into()));
        assert_eq!(rows[1], ("b".into(), 30, "x".into()));
        // Equal (actor, ts): ordered by content, so `x` before `y`, and the
        // record with an extra field after the one without.
        assert_eq!(rows[2], ("a".into(), 20, "x".into()));
        assert_eq!(rows[3], ("a".into(), 20, "y".into()));
        assert_eq!(rows[4], ("a".into(), 20, "y".into()));
        let extra = e.table.column_index("extra").unwrap();
        assert_eq!(e.sym(extra, 3), None);
        assert!(e.sym(extra, 4).is_some());
        assert_eq!(e.accounts.len(), 2);
        assert_eq!(e.accounts[1].range(), 2..5);
    }
}
