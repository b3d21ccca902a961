//! Typed views of the optional tables: items, follows, accounts,
//! impressions and labels, each with the index the scorer needs.
//!
//! Indexes are built once after reading and are read-only afterwards.
//! Where an id appears twice (an item or account listed twice), the first
//! record wins and the rest are counted as duplicates in the read report.

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
        let (index, dups) = dense_index(&table, it::ID, strings.index_bound());
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
///
/// Compressed sparse rows: each follower's followees are one run of
/// `followee`/`since`, found through a dense index by symbol. About 16
/// bytes an edge, built without copying the table's rows.
#[derive(Clone, Debug, Default)]
pub struct Follows {
    /// Run of each follower, by symbol index.
    runs: Vec<(u32, u32)>,
    followee: Vec<Sym>,
    since: Vec<Millis>,
    /// Number of edges (slots of repeated edges in `followee` are unused).
    edges: usize,
}

impl Follows {
    /// Builds the graph; a pair listed twice keeps its earliest `since`.
    ///
    /// A counting sort by follower (count each follower's edges, then drop
    /// every edge into its follower's run, reading the table in order),
    /// then each run sorted and deduplicated on its own, in parallel: two
    /// passes over the table and small sorts, where one sort of all edges
    /// (or runs of row numbers) would read rows scattered over the table.
    pub fn new(table: &Table) -> Follows {
        use rayon::prelude::*;
        let (a, b, c) = (&table.columns[0], &table.columns[1], &table.columns[2]);
        let edge = |r: usize| Some((a.sym(r)?, b.sym(r)?, c.time(r).unwrap_or(Millis::MIN)));
        let mut starts: Vec<u32> = Vec::new();
        for r in 0..table.rows {
            if let Some((f, _, _)) = edge(r) {
                if starts.len() < f.index() + 2 {
                    starts.resize(f.index() + 2, 0);
                }
                starts[f.index() + 1] += 1;
            }
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        let total = starts.last().map_or(0, |&n| n as usize);
        let mut followee = vec![Interner::sym_at(0); total];
        let mut since = vec![Millis::MIN; total];
        let mut fill = starts.clone();
        for r in 0..table.rows {
            if let Some((f, g, t)) = edge(r) {
                let at = fill[f.index()] as usize;
                (followee[at], since[at]) = (g, t);
                fill[f.index()] += 1;
            }
        }
        drop(fill);
        // Each follower's run sorted, its repeated followees (all but the
        // earliest `since`) dropped: the run keeps its first `kept` slots
        // (the rest, one per repeat, stay unused).
        let mut runs: Vec<(&mut [Sym], &mut [Millis])> = Vec::with_capacity(starts.len());
        let (mut rest_g, mut rest_t) = (&mut followee[..], &mut since[..]);
        for w in starts.windows(2) {
            let n = (w[1] - w[0]) as usize;
            let (g, tail_g) = rest_g.split_at_mut(n);
            let (t, tail_t) = rest_t.split_at_mut(n);
            runs.push((g, t));
            (rest_g, rest_t) = (tail_g, tail_t);
        }
        let kept: Vec<u32> = runs
            .into_par_iter()
            .map_init(Vec::new, |run, (g, t)| {
                run.clear();
                run.extend(g.iter().copied().zip(t.iter().copied()));
                run.sort_unstable();
                run.dedup_by_key(|e| e.0);
                for (k, &(a, b)) in run.iter().enumerate() {
                    (g[k], t[k]) = (a, b);
                }
                run.len() as u32
            })
            .collect();
        let runs = starts.iter().zip(&kept).map(|(&start, &n)| (start, start + n)).collect();
        let edges = kept.iter().map(|&n| n as usize).sum();
        Follows { runs, followee, since, edges }
    }

    /// Whom `follower` followed when the log starts, with since when
    /// (`Millis::MIN` when unknown).
    pub fn followees(&self, follower: Sym) -> impl Iterator<Item = (Sym, Millis)> + '_ {
        let (a, b) = self.runs.get(follower.index()).map_or((0, 0), |&(a, b)| (a as usize, b as usize));
        self.followee[a..b].iter().copied().zip(self.since[a..b].iter().copied())
    }

    /// Every follower with at least one edge.
    pub fn followers(&self) -> impl Iterator<Item = Sym> + '_ {
        self.runs.iter().enumerate().filter(|(_, (a, b))| b > a).map(|(i, _)| Interner::sym_at(i))
    }

    /// Number of edges.
    pub fn len(&self) -> usize {
        self.edges
    }

    /// Whether the graph has no edges.
    pub fn is_empty(&self) -> bool {
        self.edges == 0
    }
}

/// Logged impressions: which account was shown which item, when.
#[derive(Clone, Debug, Default)]
pub struct Impressions {
    /// (actor, item, ts), sorted, each once.
    shown: Vec<(Sym, Sym, Millis)>,
}

impl Impressions {
    /// Indexes the impressions table.
    pub fn new(table: &Table) -> Impressions {
        let mut shown: Vec<(Sym, Sym, Millis)> = (0..table.rows)
            .filter_map(|r| Some((table.columns[0].sym(r)?, table.columns[1].sym(r)?, table.columns[2].time(r)?)))
            .collect();
        shown.sort_unstable();
        shown.dedup();
        Impressions { shown }
    }

    /// Whether `item` was shown to `actor` at some time in `from..=to`.
    pub fn shown_between(&self, actor: Sym, item: Sym, from: Millis, to: Millis) -> bool {
        let at = self.shown.partition_point(|&(a, i, t)| (a, i, t) < (actor, item, from));
        self.shown.get(at).is_some_and(|&(a, i, t)| a == actor && i == item && t <= to)
    }

    /// Every impression of `actor`: (item, time), by item then time.
    pub fn of(&self, actor: Sym) -> impl Iterator<Item = (Sym, Millis)> + '_ {
        let start = self.shown.partition_point(|&(a, _, _)| a < actor);
        self.shown[start..].iter().take_while(move |&&(a, _, _)| a == actor).map(|&(_, i, t)| (i, t))
    }

    /// Every account shown something, in order.
    pub fn actors(&self) -> impl Iterator<Item = Sym> + '_ {
        self.shown.chunk_by(|a, b| a.0 == b.0).map(|run| run[0].0)
    }

    /// Number of distinct impressions.
    pub fn len(&self) -> usize {
        self.shown.len()
    }

    /// Whether nothing was shown.
    pub fn is_empty(&self) -> bool {
        self.shown.is_empty()
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
        let (index, dups) = dense_index(&table, 0, strings.index_bound());
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
