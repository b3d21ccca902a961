//! Typed views of the optional tables: items, follows, accounts,
//! impressions and labels, each with the index the scorer needs.
//!
//! Indexes are built once after reading and are read-only afterwards.
//! Where an id appears twice (an item or account listed twice), the first
//! record wins and the rest are counted as duplicates in the read report.

use std::collections::HashMap;

use super::schema::it;
use super::table::Table;
use crate::intern::{Interner, Sym};
use crate::time::Millis;

/// Builds a dense index: symbol index -> first row with that id, + 1.
fn dense_index(table: &Table, id_col: usize, symbols: usize) -> (Vec<u32>, u64) {
    let mut index = vec![0u32; symbols];
    let mut dups = 0;
    for row in 0..table.rows {
        if let Some(id) = table.columns[id_col].sym(row) {
            let slot = &mut index[id.index()];
            if *slot == 0 {
                *slot = row as u32 + 1;
            } else {
                dups += 1;
            }
        }
    }
    (index, dups)
}

/// Content items, indexed by id.
#[derive(Clone, Debug)]
pub struct Items {
    /// The table as read.
    pub table: Table,
    index: Vec<u32>,
}

impl Items {
    /// Indexes `table`; returns the items and how many duplicate ids it had.
    pub fn new(table: Table, strings: &Interner) -> (Items, u64) {
        let (index, dups) = dense_index(&table, it::ID, strings.len());
        (Items { table, index }, dups)
    }

    /// An empty items table, for datasets without one.
    pub fn empty() -> Items {
        Items { table: Table::new(super::schema::TableKind::Items), index: Vec::new() }
    }

    /// The row of item `id`.
    #[inline]
    pub fn row(&self, id: Sym) -> Option<usize> {
        match self.index.get(id.index()) {
            Some(&r) if r > 0 => Some(r as usize - 1),
            _ => None,
        }
    }

    /// The author of the item at `row`.
    #[inline]
    pub fn author(&self, row: usize) -> Option<Sym> {
        self.table.columns[it::AUTHOR].sym(row)
    }

    /// The labels of the item at `row`.
    #[inline]
    pub fn labels(&self, row: usize) -> &[Sym] {
        self.table.columns[it::LABELS].list(row)
    }

    /// The language of the item at `row`.
    #[inline]
    pub fn lang(&self, row: usize) -> Option<Sym> {
        self.table.columns[it::LANG].sym(row)
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.table.rows
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.table.rows == 0
    }
}

/// The follow graph as it stood when the log starts.
#[derive(Clone, Debug, Default)]
pub struct Follows {
    /// (followee, since) for all followers, grouped by follower.
    edges: Vec<(Sym, Millis)>,
    by_follower: HashMap<Sym, (u32, u32)>,
}

impl Follows {
    /// Builds the graph; a pair listed twice keeps its earliest `since`.
    pub fn new(table: &Table) -> Follows {
        let mut rows: Vec<(Sym, Sym, Millis)> = (0..table.rows)
            .filter_map(|r| {
                let since = table.columns[2].time(r).unwrap_or(Millis::MIN);
                Some((table.columns[0].sym(r)?, table.columns[1].sym(r)?, since))
            })
            .collect();
        rows.sort_unstable();
        rows.dedup_by_key(|(a, b, _)| (*a, *b));
        let mut by_follower = HashMap::new();
        let mut start = 0;
        for i in 1..=rows.len() {
            if i == rows.len() || rows[i].0 != rows[start].0 {
                by_follower.insert(rows[start].0, (start as u32, i as u32));
                start = i;
            }
        }
        Follows { edges: rows.into_iter().map(|(_, b, s)| (b, s)).collect(), by_follower }
    }

    /// Whom `follower` followed when the log starts, with since when
    /// (`Millis::MIN` when unknown).
    pub fn followees(&self, follower: Sym) -> &[(Sym, Millis)] {
        match self.by_follower.get(&follower) {
            Some(&(a, b)) => &self.edges[a as usize..b as usize],
            None => &[],
        }
    }

    /// Number of edges.
    pub fn len(&self) -> usize {
        self.edges.len()
    }

    /// Whether the graph has no edges.
    pub fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }
}

/// Logged impressions: which account was shown which item, first when.
#[derive(Clone, Debug, Default)]
pub struct Impressions {
    /// (actor, item, first ts), sorted.
    first: Vec<(Sym, Sym, Millis)>,
}

impl Impressions {
    /// Indexes the impressions table.
    pub fn new(table: &Table) -> Impressions {
        let mut first: Vec<(Sym, Sym, Millis)> = (0..table.rows)
            .filter_map(|r| Some((table.columns[0].sym(r)?, table.columns[1].sym(r)?, table.columns[2].time(r)?)))
            .collect();
        first.sort_unstable();
        first.dedup_by_key(|(a, i, _)| (*a, *i));
        Impressions { first }
    }

    /// When `item` was first shown to `actor`, if ever.
    pub fn first_shown(&self, actor: Sym, item: Sym) -> Option<Millis> {
        let at = self.first.partition_point(|&(a, i, _)| (a, i) < (actor, item));
        match self.first.get(at) {
            Some(&(a, i, t)) if a == actor && i == item => Some(t),
            _ => None,
        }
    }

    /// Number of distinct (account, item) pairs shown.
    pub fn len(&self) -> usize {
        self.first.len()
    }

    /// Whether nothing was shown.
    pub fn is_empty(&self) -> bool {
        self.first.is_empty()
    }
}

/// Account metadata, indexed by id.
#[derive(Clone, Debug)]
pub struct Accounts {
    /// The table as read.
    pub table: Table,
    index: Vec<u32>,
}

impl Accounts {
    /// Indexes `table`; returns the accounts and how many duplicate ids it had.
    pub fn new(table: Table, strings: &Interner) -> (Accounts, u64) {
        let (index, dups) = dense_index(&table, 0, strings.len());
        (Accounts { table, index }, dups)
    }

    /// An empty accounts table.
    pub fn empty() -> Accounts {
        Accounts { table: Table::new(super::schema::TableKind::Accounts), index: Vec::new() }
    }

    /// The row of account `id`.
    #[inline]
    pub fn row(&self, id: Sym) -> Option<usize> {
        match self.index.get(id.index()) {
            Some(&r) if r > 0 => Some(r as usize - 1),
            _ => None,
        }
    }
}

/// One ground-truth label.
#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    /// The account.
    pub actor: Sym,
    /// Whether it is labelled compromised (else benign).
    pub compromised: bool,
    /// Start of the compromise window, if known.
    pub start: Option<Millis>,
    /// End of the compromise window, if known.
    pub end: Option<Millis>,
    /// Row in the labels table, for extra fields such as `style`.
    pub row: usize,
}

/// Ground truth, for evaluation only.
#[derive(Clone, Debug)]
pub struct Labels {
    /// The table as read (extra fields such as `style` live here).
    pub table: Table,
    /// One entry per record.
    pub rows: Vec<Label>,
}

impl Labels {
    /// Types the labels table (its values were checked while reading).
    pub fn new(table: Table, strings: &Interner) -> Labels {
        let rows = (0..table.rows)
            .filter_map(|r| {
                Some(Label {
                    actor: table.columns[0].sym(r)?,
                    compromised: strings.resolve(table.columns[1].sym(r)?) == "compromised",
                    start: table.columns[2].time(r),
                    end: table.columns[3].time(r),
                    row: r,
                })
            })
            .collect();
        Labels { table, rows }
    }

    /// The value of an extra field (such as `style`) of a label.
    pub fn extra<'a>(&self, label: &Label, field: &str, strings: &'a Interner) -> Option<&'a str> {
        let col = self.table.column_index(field)?;
        self.table.columns[col].sym(label.row).map(|s| strings.resolve(s))
    }
}
