//! String interning.
//!
//! Every identifier and categorical value in a dataset (account and item ids,
//! actions, surfaces, devices, labels, ...) is stored once and referred to by
//! a 4-byte [`Sym`]. Columns of events are then columns of `Sym`s, compared
//! and hashed as integers on the hot path.
//!
//! An interner is split into [`SHARDS`] shards by a hash of the string, each
//! with its own table and text. Readers parse blocks of records in parallel,
//! each into a private interner, and merge each block into the shared one
//! with [`Interner::absorb`], which merges the shards in parallel: shard `k`
//! of the block only ever meets shard `k` of the shared interner, so no lock
//! is taken and each shard's table, a fraction of the whole, stays in the
//! core's cache while it is merged. (A single table merged on one thread was
//! the read's bottleneck: a quarter of its CPU at 1 M accounts.)
//!
//! Within a shard, strings are numbered in insertion order; a symbol's index
//! interleaves shards (`position in shard * SHARDS + shard`), so indices are
//! dense up to the imbalance of the shards (about 1 % at a million strings;
//! [`Interner::index_bound`] sizes vectors indexed by symbol). The numbering
//! depends only on the strings and the order they are first seen, never on
//! the thread count; output never depends on symbol numbers anyway (it sorts
//! by the strings).

use std::hash::BuildHasher;
use std::num::NonZeroU32;

use hashbrown::HashTable;
use rayon::prelude::*;

/// A hash map keyed by symbols, with a fast fixed hasher (symbols are small
/// integers; SipHash's protection against chosen keys buys nothing here).
pub type SymMap<V> = std::collections::HashMap<Sym, V, foldhash::fast::FixedState>;

/// Number of shards of an [`Interner`]: enough for the merge to spread over
/// the cores and for one shard's table to fit a core's cache at a few
/// million strings; few enough that an empty interner is cheap (one is made
/// per parsed block). Not tuned beyond comparing 64 with one shard.
pub const SHARDS: usize = 64;
const SHARD_BITS: u32 = SHARDS.trailing_zeros();

/// An interned string: an index into an [`Interner`]. `Option<Sym>` is also
/// four bytes, which is how columns store absent values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sym(NonZeroU32);

impl Sym {
    /// The symbol's index in its interner, from 0 and below the interner's
    /// [`Interner::index_bound`].
    #[inline]
    pub fn index(self) -> usize {
        self.0.get() as usize - 1
    }

    #[inline]
    fn from_index(i: usize) -> Sym {
        let n = u32::try_from(i + 1).expect("more than 4 billion distinct strings");
        Sym(NonZeroU32::new(n).expect("index + 1 is never zero"))
    }

    /// The symbol of the `pos`-th string of shard `shard`.
    #[inline]
    fn of(shard: usize, pos: usize) -> Sym {
        Sym::from_index(pos * SHARDS + shard)
    }

    /// (shard, position in the shard).
    #[inline]
    fn split(self) -> (usize, usize) {
        let i = self.index();
        (i % SHARDS, i / SHARDS)
    }
}

/// A set of strings, each stored once, numbered in insertion order within
/// each of its shards.
///
/// Strings live end to end in one buffer per shard (no allocation per
/// string), with 32 bits of each one's hash kept in its table entry beside
/// its position (4 bytes a string besides its text and an 8-byte table
/// slot): growing a table never reads a string again, a lookup compares
/// those bits before bytes, and [`Interner::absorb`] reuses the bits the
/// block computed.
#[derive(Clone)]
pub struct Interner {
    shards: Box<[Shard]>,
    len: usize,
    hasher: foldhash::fast::FixedState,
}

/// Strings end to end in one buffer, with the kept bits of each one's hash.
#[derive(Clone, Default)]
struct Run {
    buf: String,
    /// End of each string in `buf` (its start is the previous end).
    ends: Vec<u32>,
    /// The high 32 bits of each string's hash (empty in an [`Interner`]'s
    /// shard, whose table keeps them).
    hashes: Vec<u32>,
}

impl Run {
    #[inline]
    fn text(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.buf[start..self.ends[i] as usize]
    }

    #[inline]
    fn len(&self) -> usize {
        self.ends.len()
    }

    /// Appends `s` with its hash bits; returns its position.
    #[inline]
    fn push(&mut self, s: &str, short: u32) -> usize {
        self.hashes.push(short);
        self.push_text(s)
    }

    /// Appends `s` alone (a shard's table keeps the hash bits); returns its
    /// position.
    #[inline]
    fn push_text(&mut self, s: &str) -> usize {
        self.buf.push_str(s);
        self.ends.push(u32::try_from(self.buf.len()).expect("less than 4 GiB of text in one interner shard"));
        self.ends.len() - 1
    }

    fn heap_bytes(&self) -> usize {
        self.buf.capacity() + self.ends.capacity() * 4 + self.hashes.capacity() * 4
    }
}

/// One shard of an [`Interner`]: the strings whose hash falls in it, and
/// a table of their positions, each entry with the string's kept hash bits
/// (high half) beside its position (low half), so that a lookup reads no
/// other array before it compares text, and growing reads nothing.
#[derive(Clone, Default)]
struct Shard {
    table: HashTable<u64>,
    run: Run,
}

/// One more than the largest index of a symbol, for shards of these
/// lengths.
fn bound(lens: impl DoubleEndedIterator<Item = usize> + Clone) -> usize {
    let longest = lens.clone().max().unwrap_or(0);
    if longest == 0 {
        return 0;
    }
    let last = lens.rev().position(|n| n == longest).map(|from_end| SHARDS - 1 - from_end).expect("a longest shard");
    (longest - 1) * SHARDS + last + 1
}

impl Default for Interner {
    fn default() -> Interner {
        Interner {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            len: 0,
            hasher: foldhash::fast::FixedState::default(),
        }
    }
}

impl std::fmt::Debug for Interner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interner").field("len", &self.len).finish()
    }
}

impl Shard {
    /// The table's hash of a string whose kept hash bits are `short`.
    #[inline]
    fn spread(short: u32) -> u64 {
        (short as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    fn find(&self, s: &str, short: u32) -> Option<usize> {
        let run = &self.run;
        self.table
            .find(Shard::spread(short), |&e| (e >> 32) as u32 == short && run.text(e as u32 as usize) == s)
            .map(|&e| e as u32 as usize)
    }

    /// The position of `s`, adding it if new; and whether it was added.
    #[inline]
    fn intern(&mut self, s: &str, short: u32) -> (usize, bool) {
        if let Some(i) = self.find(s, short) {
            return (i, false);
        }
        let i = self.run.push_text(s);
        let entry = (u64::from(short) << 32) | i as u64;
        self.table.insert_unique(Shard::spread(short), entry, |&e| Shard::spread((e >> 32) as u32));
        (i, true)
    }

    /// Interns every string of `other` (the same shard of a block's
    /// strings), returning each one's position here and how many were new.
    fn absorb(&mut self, other: &Run) -> (Vec<u32>, usize) {
        let mut added = 0;
        let map = (0..other.len())
            .map(|i| {
                let (pos, new) = self.intern(other.text(i), other.hashes[i]);
                added += usize::from(new);
                pos as u32
            })
            .collect();
        (map, added)
    }

    fn heap_bytes(&self) -> usize {
        self.run.heap_bytes() + self.table.capacity() * 9
    }
}

impl Interner {
    /// An empty interner.
    pub fn new() -> Interner {
        Interner::default()
    }

    /// The symbol of `s`, adding it if it is new.
    #[inline]
    pub fn intern(&mut self, s: &str) -> Sym {
        let (shard, short, _) = locate(&self.hasher, s);
        let (pos, new) = self.shards[shard].intern(s, short);
        self.len += usize::from(new);
        Sym::of(shard, pos)
    }

    /// The symbol with index `index` (as returned by [`Sym::index`]), for
    /// reading back symbols this interner numbered.
    pub fn sym_at(index: usize) -> Sym {
        Sym::from_index(index)
    }

    /// The symbol of `s` if it was interned, without adding it.
    pub fn get(&self, s: &str) -> Option<Sym> {
        let (shard, short, _) = locate(&self.hasher, s);
        self.shards[shard].find(s, short).map(|pos| Sym::of(shard, pos))
    }

    /// The string of a symbol of this interner.
    #[inline]
    pub fn resolve(&self, sym: Sym) -> &str {
        let (shard, pos) = sym.split();
        self.shards[shard].run.text(pos)
    }

    /// How many distinct strings are interned.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is interned.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// One more than the largest [`Sym::index`] of this interner: the
    /// length of a vector indexed by symbol. At least [`Interner::len`],
    /// and a little more, as shards differ in size.
    pub fn index_bound(&self) -> usize {
        bound(self.shards.iter().map(|s| s.run.len()))
    }

    /// Interns every string of a block into `self` and returns, for each
    /// symbol of `other` by index, the matching symbol of `self` (indices
    /// of `other` that name no string map to an arbitrary symbol).
    ///
    /// Shards are merged in parallel on the rayon pool when `other` is
    /// large enough to pay for it; the result does not depend on it.
    pub fn absorb(&mut self, other: &LocalStrings) -> Vec<Sym> {
        let merge = |(mine, theirs): (&mut Shard, &Run)| mine.absorb(theirs);
        let maps: Vec<(Vec<u32>, usize)> = if other.len() >= 4096 {
            self.shards.par_iter_mut().zip(other.shards.par_iter()).map(merge).collect()
        } else {
            self.shards.iter_mut().zip(other.shards.iter()).map(merge).collect()
        };
        self.len += maps.iter().map(|m| m.1).sum::<usize>();
        let bound = other.index_bound();
        let mut out = Vec::with_capacity(bound);
        for pos in 0..bound.div_ceil(SHARDS) {
            for (shard, (map, _)) in maps.iter().enumerate() {
                if out.len() == bound {
                    break;
                }
                out.push(Sym::of(shard, map.get(pos).map_or(0, |&p| p as usize)));
            }
        }
        out
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.shards.iter().map(Shard::heap_bytes).sum::<usize>() + self.shards.len() * size_of::<Shard>()
    }
}

/// The shard, the kept hash bits and the cache slot of a string: the
/// shard and the slot from the low half of its hash, the kept bits from the
/// high half, so that they are independent.
#[inline]
fn locate(hasher: &foldhash::fast::FixedState, s: &str) -> (usize, u32, usize) {
    let full = hasher.hash_one(s);
    let low = full as u32;
    ((low >> (32 - SHARD_BITS)) as usize, (full >> 32) as u32, (low as usize) & (CACHE_SLOTS - 1))
}

/// Slots of a [`LocalStrings`]' cache of recent strings.
const CACHE_SLOTS: usize = 4096;

/// The strings of one block of records being parsed, by one thread, before
/// [`Interner::absorb`] merges them into the shared interner.
///
/// It keeps no hash table: a string is hashed and appended to its shard,
/// and its symbol here is its position. A small direct-mapped cache of
/// recent strings catches repeats, so that a column of few values (actions,
/// countries) adds about one string per value and block; a column of many
/// (account and item ids) adds about one per row, which the shared
/// interner then finds shard by shard, each shard's table small enough to
/// stay in cache. Interning each row into a private table first was the
/// larger half of the read's cost: that table, as large as the block's
/// distinct strings, missed the cache on almost every row.
///
/// Its symbols mean something only to itself and to the map that
/// [`Interner::absorb`] returns.
pub struct LocalStrings {
    shards: Box<[Run]>,
    /// Per slot: the kept hash bits (high half) and the symbol's index + 1
    /// (low half) of the last string met there; 0 when empty.
    cache: Box<[u64]>,
    hasher: foldhash::fast::FixedState,
}

impl Default for LocalStrings {
    fn default() -> LocalStrings {
        LocalStrings {
            shards: (0..SHARDS).map(|_| Run::default()).collect(),
            cache: vec![0; CACHE_SLOTS].into_boxed_slice(),
            hasher: foldhash::fast::FixedState::default(),
        }
    }
}

impl std::fmt::Debug for LocalStrings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStrings").field("len", &self.len()).finish()
    }
}

impl LocalStrings {
    /// No strings.
    pub fn new() -> LocalStrings {
        LocalStrings::default()
    }

    /// A symbol for `s`: the one it had if it is in the cache, else a new one.
    #[inline]
    pub fn intern(&mut self, s: &str) -> Sym {
        let (shard, short, slot) = locate(&self.hasher, s);
        let cached = self.cache[slot];
        if (cached >> 32) as u32 == short && cached != 0 {
            let sym = Sym::from_index((cached as u32 - 1) as usize);
            if self.resolve(sym) == s {
                return sym;
            }
        }
        let sym = Sym::of(shard, self.shards[shard].push(s, short));
        self.cache[slot] = (u64::from(short) << 32) | (sym.index() as u64 + 1);
        sym
    }

    /// The string of a symbol of these strings.
    #[inline]
    pub fn resolve(&self, sym: Sym) -> &str {
        let (shard, pos) = sym.split();
        self.shards[shard].text(pos)
    }

    /// Strings held, counting repeats the cache missed.
    pub fn len(&self) -> usize {
        self.shards.iter().map(Run::len).sum()
    }

    /// Whether no string is held.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|r| r.len() == 0)
    }

    /// One more than the largest [`Sym::index`] of these strings.
    pub fn index_bound(&self) -> usize {
        bound(self.shards.iter().map(Run::len))
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.shards.iter().map(Run::heap_bytes).sum::<usize>() + self.cache.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_once() {
        let mut i = Interner::new();
        let a = i.intern("alice");
        let b = i.intern("bob");
        assert_eq!(i.intern("alice"), a);
        assert_ne!(a, b);
        assert_eq!(i.resolve(a), "alice");
        assert_eq!(i.resolve(b), "bob");
        assert_eq!(i.get("bob"), Some(b));
        assert_eq!(i.get("carol"), None);
        assert_eq!(i.len(), 2);
        assert!(a.index() < i.index_bound() && b.index() < i.index_bound());
        assert_eq!(std::mem::size_of::<Option<Sym>>(), 4);
    }

    #[test]
    fn numbering_is_by_first_sight_within_each_shard() {
        let words: Vec<String> = (0..5000).map(|k| format!("w{k}")).collect();
        let mut i = Interner::new();
        let syms: Vec<Sym> = words.iter().map(|w| i.intern(w)).collect();
        // Each shard numbers its strings 0, 1, 2, ... in the order seen.
        let mut next = [0usize; SHARDS];
        for s in &syms {
            let (shard, pos) = s.split();
            assert_eq!(pos, next[shard]);
            next[shard] += 1;
        }
        assert_eq!(i.len(), 5000);
        let bound = i.index_bound();
        assert_eq!(bound, syms.iter().map(|s| s.index()).max().unwrap() + 1);
        // Dense up to the shards' imbalance: about 3 standard deviations of
        // a shard's size (78 ± 9 strings here; 1.4 % at 3 M strings).
        assert!(bound < 5000 * 3 / 2, "{bound}");
    }

    #[test]
    fn absorb_maps_local_symbols_as_interning_one_by_one() {
        let mut global = Interner::new();
        global.intern("x");
        let mut local = LocalStrings::new();
        let y = local.intern("y");
        let x = local.intern("x");
        assert_eq!(local.intern("y"), y, "a repeat in the cache");
        assert_eq!(local.resolve(x), "x");
        let map = global.absorb(&local);
        assert_eq!(global.resolve(map[y.index()]), "y");
        assert_eq!(map[x.index()], global.get("x").unwrap());
        assert_eq!(global.len(), 2);

        // Large enough to merge shards in parallel, with repeats the cache
        // misses: the same symbols as interning the strings one by one, in
        // the same order.
        let words: Vec<String> = (0..20_000).map(|k| format!("s{}", (k * 7919) % 15_000)).collect();
        let mut block = LocalStrings::new();
        let locals: Vec<Sym> = words.iter().map(|w| block.intern(w)).collect();
        assert!(block.len() > 15_000, "the cache misses some repeats");
        let mut one_by_one = global.clone();
        let expected: Vec<Sym> = words.iter().map(|w| one_by_one.intern(w)).collect();
        let map = global.absorb(&block);
        let got: Vec<Sym> = locals.iter().map(|s| map[s.index()]).collect();
        assert_eq!(got, expected);
        assert_eq!(global.len(), one_by_one.len());
        assert_eq!(global.index_bound(), one_by_one.index_bound());
    }
}
