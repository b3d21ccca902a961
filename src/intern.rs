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
/// with its hash kept beside it: growing the table never rehashes a string,
/// a lookup compares full hashes before bytes, and [`Interner::absorb`]
/// reuses the other interner's hashes.
#[derive(Clone, Default)]
pub struct Interner {
    table: HashTable<u32>,
    buf: String,
    /// (start in `buf`, length) of each string.
    spans: Vec<(usize, u32)>,
    hashes: Vec<u64>,
    hasher: foldhash::fast::FixedState,
}

impl std::fmt::Debug for Interner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interner").field("len", &self.spans.len()).finish()
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
            spans: Vec::with_capacity(n),
            hashes: Vec::with_capacity(n),
            hasher: foldhash::fast::FixedState::default(),
        }
    }

    #[inline]
    fn text(&self, i: usize) -> &str {
        let (start, len) = self.spans[i];
        &self.buf[start..start + len as usize]
    }

    /// The symbol of `s`, adding it if it is new.
    #[inline]
    pub fn intern(&mut self, s: &str) -> Sym {
        let hash = self.hasher.hash_one(s);
        self.intern_hashed(s, hash)
    }

    fn intern_hashed(&mut self, s: &str, hash: u64) -> Sym {
        let (buf, spans, hashes) = (&self.buf, &self.spans, &self.hashes);
        let found = self.table.find(hash, |&i| {
            let i = i as usize;
            hashes[i] == hash && {
                let (start, len) = spans[i];
                &buf[start..start + len as usize] == s
            }
        });
        if let Some(&i) = found {
            return Sym::from_index(i as usize);
        }
        let i = self.spans.len();
        self.spans.push((self.buf.len(), s.len() as u32));
        self.buf.push_str(s);
        self.hashes.push(hash);
        let hashes = &self.hashes;
        self.table.insert_unique(hash, i as u32, |&j| hashes[j as usize]);
        Sym::from_index(i)
    }

    /// The symbol with position `index` (as returned by [`Sym::index`]),
    /// for reading back symbols this interner numbered.
    pub fn sym_at(index: usize) -> Sym {
        Sym::from_index(index)
    }

    /// The symbol of `s` if it was interned, without adding it.
    pub fn get(&self, s: &str) -> Option<Sym> {
        let hash = self.hasher.hash_one(s);
        self.table
            .find(hash, |&i| self.hashes[i as usize] == hash && self.text(i as usize) == s)
            .map(|&i| Sym::from_index(i as usize))
    }

    /// The string of a symbol of this interner.
    #[inline]
    pub fn resolve(&self, sym: Sym) -> &str {
        self.text(sym.index())
    }

    /// How many distinct strings are interned.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether nothing is interned.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Interns every string of `other` into `self` and returns, for each
    /// symbol of `other` by index, the matching symbol of `self`.
    pub fn absorb(&mut self, other: &Interner) -> Vec<Sym> {
        (0..other.len()).map(|i| self.intern_hashed(other.text(i), other.hashes[i])).collect()
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.buf.capacity() + self.spans.capacity() * 16 + self.hashes.capacity() * 8 + self.table.capacity() * 5
    }
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
