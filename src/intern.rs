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
#[derive(Clone, Default)]
pub struct Interner {
    table: HashTable<u32>,
    strings: Vec<Box<str>>,
    hasher: foldhash::fast::FixedState,
}

impl std::fmt::Debug for Interner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interner").field("len", &self.strings.len()).finish()
    }
}

impl Interner {
    /// An empty interner.
    pub fn new() -> Interner {
        Interner::default()
    }

    /// The symbol of `s`, adding it if it is new.
    pub fn intern(&mut self, s: &str) -> Sym {
        let hash = self.hasher.hash_one(s);
        let strings = &self.strings;
        if let Some(&i) = self.table.find(hash, |&i| &*strings[i as usize] == s) {
            return Sym::from_index(i as usize);
        }
        let i = self.strings.len();
        self.strings.push(s.into());
        let strings = &self.strings;
        let hasher = &self.hasher;
        self.table.insert_unique(hash, i as u32, |&j| hasher.hash_one(&*strings[j as usize]));
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
        self.table.find(hash, |&i| &*self.strings[i as usize] == s).map(|&i| Sym::from_index(i as usize))
    }

    /// The string of a symbol of this interner.
    #[inline]
    pub fn resolve(&self, sym: Sym) -> &str {
        &self.strings[sym.index()]
    }

    /// How many distinct strings are interned.
    pub fn len(&self) -> usize {
        self.strings.len()
    }

    /// Whether nothing is interned.
    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }

    /// Interns every string of `other` into `self` and returns, for each
    /// symbol of `other` by index, the matching symbol of `self`.
    pub fn absorb(&mut self, other: &Interner) -> Vec<Sym> {
        other.strings.iter().map(|s| self.intern(s)).collect()
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.strings.iter().map(|s| s.len() + 16).sum::<usize>() + self.table.capacity() * 5
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
