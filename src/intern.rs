//! String interning.
//!
//! Every identifier and categorical value in a dataset (account and item ids,
//! actions, surfaces, devices, labels, ...) is stored once and referred to by
//! a 4-byte [`Sym`]. Columns of events are then columns of `Sym`s, compared
//! and hashed as integers on the hot path.
//!
//! Symbols are numbered in insertion order, so the numbering depends only on
//! the order strings are first seen. The reader merges per-block interners in
//! file order, which keeps numbering independent of the thread count; output
//! never depends on symbol numbers anyway (it sorts by the strings).

use std::hash::BuildHasher;
use std::num::NonZeroU32;

use hashbrown::HashTable;

/// A hash map keyed by symbols, with a fast fixed hasher (symbols are small
/// integers; SipHash's protection against chosen keys buys nothing here).
pub type SymMap<V> = std::collections::HashMap<Sym, V, foldhash::fast::FixedState>;

/// An interned string: an index into an [`Interner`]. `Option<Sym>` is also
/// four bytes, which is how columns store absent values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sym(NonZeroU32);

impl Sym {
    /// The symbol's position in its interner, from 0.
    #[inline]
    pub fn index(self) -> usize {
        self.0.get() as usize - 1
    }

    #[inline]
    fn from_index(i: usize) -> Sym {
        let n = u32::try_from(i + 1).expect("more than 4 billion distinct strings");
        Sym(NonZeroU32::new(n).expect("index + 1 is never zero"))
    }
}

/// A set of strings, each stored once, numbered in insertion order.
///
/// Strings live end to end in one buffer (no allocation per string), each
/// with 32 bits of its hash kept beside it (12 bytes a string besides its
/// text): growing the table never reads a string again, a lookup compares
/// those bits before bytes, and [`Interner::absorb`] reuses the other
/// interner's.
#[derive(Clone, Default)]
pub struct Interner {
    table: HashTable<u32>,
    buf: String,
    /// End of each string in `buf` (its start is the previous end).
    ends: Vec<u64>,
    /// The high 32 bits of each string's hash.
    hashes: Vec<u32>,
    hasher: foldhash::fast::FixedState,
}

impl std::fmt::Debug for Interner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interner").field("len", &self.ends.len()).finish()
    }
}

impl Interner {
    /// An empty interner.
    pub fn new() -> Interner {
        Interner::default()
    }

    /// An empty interner with room for about `n` strings of `bytes` in all.
    pub fn with_capacity(n: usize, bytes: usize) -> Interner {
        Interner {
            table: HashTable::with_capacity(n),
            buf: String::with_capacity(bytes),
            ends: Vec::with_capacity(n),
            hashes: Vec::with_capacity(n),
            hasher: foldhash::fast::FixedState::default(),
        }
    }

    #[inline]
    fn text(&self, i: usize) -> &str {
        text(&self.buf, &self.ends, i)
    }

    /// The table's hash of a string whose full hash is `full`: its high 32
    /// bits (those kept), spread again over 64.
    #[inline]
    fn short(full: u64) -> u32 {
        (full >> 32) as u32
    }

    #[inline]
    fn spread(short: u32) -> u64 {
        (short as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// The symbol of `s`, adding it if it is new.
    #[inline]
    pub fn intern(&mut self, s: &str) -> Sym {
        let short = Interner::short(self.hasher.hash_one(s));
        self.intern_hashed(s, short)
    }

    fn intern_hashed(&mut self, s: &str, short: u32) -> Sym {
        let (buf, ends, hashes) = (&self.buf, &self.ends, &self.hashes);
        let found = self
            .table
            .find(Interner::spread(short), |&i| hashes[i as usize] == short && text(buf, ends, i as usize) == s);
        if let Some(&i) = found {
            return Sym::from_index(i as usize);
        }
        let i = self.ends.len();
        self.buf.push_str(s);
        self.ends.push(self.buf.len() as u64);
        self.hashes.push(short);
        let hashes = &self.hashes;
        self.table.insert_unique(Interner::spread(short), i as u32, |&j| Interner::spread(hashes[j as usize]));
        Sym::from_index(i)
    }

    /// The symbol with position `index` (as returned by [`Sym::index`]),
    /// for reading back symbols this interner numbered.
    pub fn sym_at(index: usize) -> Sym {
        Sym::from_index(index)
    }

    /// The symbol of `s` if it was interned, without adding it.
    pub fn get(&self, s: &str) -> Option<Sym> {
        let short = Interner::short(self.hasher.hash_one(s));
        self.table
            .find(Interner::spread(short), |&i| self.hashes[i as usize] == short && self.text(i as usize) == s)
            .map(|&i| Sym::from_index(i as usize))
    }

    /// The string of a symbol of this interner.
    #[inline]
    pub fn resolve(&self, sym: Sym) -> &str {
        self.text(sym.index())
    }

    /// How many distinct strings are interned.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether nothing is interned.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Interns every string of `other` into `self` and returns, for each
    /// symbol of `other` by index, the matching symbol of `self`.
    pub fn absorb(&mut self, other: &Interner) -> Vec<Sym> {
        (0..other.len()).map(|i| self.intern_hashed(other.text(i), other.hashes[i])).collect()
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.buf.capacity() + self.ends.capacity() * 8 + self.hashes.capacity() * 4 + self.table.capacity() * 5
    }
}

#[inline]
fn text<'a>(buf: &'a str, ends: &[u64], i: usize) -> &'a str {
    let start = if i == 0 { 0 } else { ends[i - 1] as usize };
    &buf[start..ends[i] as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_once_in_insertion_order() {
        let mut i = Interner::new();
        let a = i.intern("alice");
        let b = i.intern("bob");
        assert_eq!(i.intern("alice"), a);
        assert_ne!(a, b);
        assert_eq!(a.index(), 0);
        assert_eq!(b.index(), 1);
        assert_eq!(i.resolve(b), "bob");
        assert_eq!(i.get("carol"), None);
        assert_eq!(i.len(), 2);
        assert_eq!(std::mem::size_of::<Option<Sym>>(), 4);
    }

    #[test]
    fn absorb_maps_local_symbols() {
        let mut global = Interner::new();
        global.intern("x");
        let mut local = Interner::new();
        let y = local.intern("y");
        let x = local.intern("x");
        let map = global.absorb(&local);
        assert_eq!(global.resolve(map[y.index()]), "y");
        assert_eq!(map[x.index()], global.get("x").unwrap());
    }
}
