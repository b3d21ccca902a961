//! The item index: who did which actions on each item, when (reposts for
//! `feed_exposure`, likes for `lockstep`), and the item phase's exchange:
//! [`ItemActors::answer`] answers an account partition's questions from a
//! group of whole items, [`ItemActors::from_answers`] builds that
//! partition's share of the index. The index is computed by
//! [`crate::facts`]; signals only read it.

use rayon::prelude::*;

use crate::intern::{Interner, Sym, SymMap};
use crate::time::Millis;

/// One entry of an item index as exchanged between phases and spill
/// files: (item, time, account).
pub type ItemRow = (Sym, Millis, Sym);

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
    pub(crate) fn add_items(&mut self, rows: &mut [ItemRow], strings: &Interner, paired_within: Option<Millis>) {
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
    pub(crate) fn index_by_who(&mut self) {
        // Within an item, positions are in time order, so sorting them by
        // (account, position) sorts by (account, time).
        self.by_who = (0..self.who.len() as u32).collect();
        for (a, b) in self.ranges.all() {
            self.by_who[a as usize..b as usize].sort_unstable_by_key(|&k| (self.who[k as usize], k));
        }
    }
}

impl ItemActors {
    /// An empty index whose times are whole seconds from `first`'s (4
    /// bytes an entry), for readers whose windows are minutes.
    pub(crate) fn in_seconds(first: Millis) -> ItemActors {
        ItemActors { ts: Times::Seconds { base: first.div_euclid(1000), secs: Vec::new() }, ..ItemActors::default() }
    }

    /// Gives back spare capacity.
    pub(crate) fn shrink_to_fit(&mut self) {
        self.ts.shrink_to_fit();
        self.who.shrink_to_fit();
    }

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

/// Whether entry `k` of one item's time-ordered `run` has an entry of
/// another account within `window` of it.
fn has_partner(run: &[ItemRow], k: usize, window: Millis) -> bool {
    let (_, t, who) = run[k];
    let (from, to) = (t.saturating_sub(window), t.saturating_add(window));
    let before = run[..k].iter().rev().take_while(|r| r.1 >= from).any(|r| r.2 != who);
    before || run[k + 1..].iter().take_while(|r| r.1 <= to).any(|r| r.2 != who)
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
