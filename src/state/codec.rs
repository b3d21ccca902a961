//! The byte encoding of what one account carries from one daily run to the
//! next (its signals' states, its waiting verdicts, its open incidents):
//! the payload of a state file's `state` column (see [`super`] and
//! docs/state.md).
//!
//! A payload is self-contained: its strings (labels, devices, items, ...)
//! are written once, in a table at its start, and referred to by their
//! position, so a run that reads it interns them into its own strings.
//! Integers are LEB128 varints (signed ones zigzag-encoded), floats their
//! 8 IEEE-754 bytes little-endian, texts a length and UTF-8 bytes.
//!
//! ```text
//! payload := strings body                 (uncompressed)
//! strings := count (len utf8-bytes)*
//! stored  := len(lz4(strings)) lz4(strings) lz4(body)
//! ```
//!
//! The payload is stored compressed, its two parts apart: the length of
//! the strings' block, the strings as one LZ4 block, then the body as
//! another ([`Enc::finish`]; each block is its uncompressed length as four
//! bytes little-endian, then LZ4's block format). A state file's blocks
//! need no compression of their own, a run decompresses only the accounts
//! it resumes, on the thread that resumes them, and it reads the strings
//! of every payload first ([`read_strings`]) without decompressing the
//! bodies twice ([`unpack_body`]).
//!
//! Decoding never panics on bad bytes: every read checks its bounds and
//! says what is wrong ([`CodecError`]).

use std::collections::HashMap;

use crate::intern::{Interner, LocalStrings, Sym};
use crate::signals::{Outcome, Why};
use crate::time::Millis;

/// Bytes that are not a payload this version writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt state payload: {0}")]
pub struct CodecError(pub String);

fn bad<T>(what: impl Into<String>) -> Result<T, CodecError> {
    Err(CodecError(what.into()))
}

/// Writes a payload.
pub struct Enc<'s> {
    strings: &'s Interner,
    /// Each symbol's position in the payload's table.
    table: HashMap<Sym, u32, foldhash::fast::FixedState>,
    order: Vec<Sym>,
    body: Vec<u8>,
    /// Buffers kept from one payload to the next.
    head: Vec<u8>,
    out: Vec<u8>,
}

/// Appends an unsigned LEB128 varint.
fn put_u64(buf: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            buf.push(byte);
            return;
        }
        buf.push(byte | 0x80);
    }
}

/// Appends a text: its length, then its UTF-8 bytes.
fn put_text(buf: &mut Vec<u8>, s: &str) {
    put_u64(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

/// Appends `raw` as a block: its length as four bytes little-endian, then
/// LZ4's block format.
fn put_lz4(out: &mut Vec<u8>, raw: &[u8]) {
    let len = u32::try_from(raw.len()).expect("a payload part under 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
    let at = out.len();
    out.resize(at + lz4_flex::block::get_maximum_output_size(raw.len()), 0);
    let n = lz4_flex::block::compress_into(raw, &mut out[at..]).expect("room for the worst case");
    out.truncate(at + n);
}

impl<'s> Enc<'s> {
    /// An empty payload whose symbols are those of `strings`.
    pub fn new(strings: &'s Interner) -> Enc<'s> {
        Enc {
            strings,
            table: HashMap::default(),
            order: Vec::new(),
            body: Vec::new(),
            head: Vec::new(),
            out: Vec::new(),
        }
    }

    /// The text of a symbol (to order what is written by name).
    pub fn text_of(&self, s: Sym) -> &'s str {
        self.strings.resolve(s)
    }

    /// An unsigned integer.
    pub fn u64(&mut self, v: u64) {
        put_u64(&mut self.body, v);
    }

    /// A count or length.
    pub fn count(&mut self, n: usize) {
        self.u64(n as u64);
    }

    /// A signed integer.
    pub fn i64(&mut self, v: i64) {
        self.u64(((v << 1) ^ (v >> 63)) as u64);
    }

    /// A time.
    pub fn time(&mut self, t: Millis) {
        self.i64(t);
    }

    /// A float, exactly.
    pub fn f64(&mut self, v: f64) {
        self.body.extend_from_slice(&v.to_bits().to_le_bytes());
    }

    /// A flag.
    pub fn bool(&mut self, v: bool) {
        self.body.push(u8::from(v));
    }

    /// A byte.
    pub fn u8(&mut self, v: u8) {
        self.body.push(v);
    }

    /// A text.
    pub fn text(&mut self, s: &str) {
        put_text(&mut self.body, s);
    }

    /// A symbol: its position in the payload's table of strings.
    pub fn sym(&mut self, s: Sym) {
        let next = self.order.len() as u32;
        let at = *self.table.entry(s).or_insert_with(|| {
            self.order.push(s);
            next
        });
        self.u64(u64::from(at));
    }

    /// An optional symbol.
    pub fn opt_sym(&mut self, s: Option<Sym>) {
        match s {
            Some(s) => {
                self.bool(true);
                self.sym(s);
            }
            None => self.bool(false),
        }
    }

    /// A signal's verdict.
    pub fn outcome(&mut self, o: &Outcome) {
        match o {
            Outcome::Fire { strength, why } => {
                self.u8(3);
                self.f64(*strength);
                why.save(self);
            }
            Outcome::Quiet => self.u8(1),
            Outcome::Abstain => self.u8(2),
        }
    }

    /// The payload: its table of strings, then its body, compressed
    /// ([`unpack`] reverses it). The encoder is left empty, its buffers
    /// kept, for the next payload.
    pub fn finish(&mut self) -> Vec<u8> {
        self.head.clear();
        put_u64(&mut self.head, self.order.len() as u64);
        for &s in &self.order {
            put_text(&mut self.head, self.strings.resolve(s));
        }
        self.out.clear();
        put_lz4(&mut self.out, &self.head);
        let strings_len = self.out.len();
        put_lz4(&mut self.out, &self.body);
        let mut payload = Vec::with_capacity(self.out.len() + 5);
        put_u64(&mut payload, strings_len as u64);
        payload.extend_from_slice(&self.out);
        self.clear();
        payload
    }

    /// Feeds what was written to `eat`, uncompressed (the texts of its
    /// symbols in the order first written, then the body), and forgets it:
    /// a form of the content whatever the run numbers its symbols, for a
    /// fingerprint.
    pub fn feed(&mut self, eat: &mut dyn FnMut(&[u8])) {
        for &s in &self.order {
            eat(self.strings.resolve(s).as_bytes());
        }
        eat(&self.body);
        self.clear();
    }

    /// Forgets what was written since the last payload.
    pub fn clear(&mut self) {
        self.table.clear();
        self.order.clear();
        self.body.clear();
    }
}

/// The largest payload read, uncompressed: far above any account's.
const MAX_PAYLOAD: usize = 1 << 30;

/// A payload's two blocks, still compressed: its strings' and its body's.
fn blocks(payload: &[u8]) -> Result<(&[u8], &[u8]), CodecError> {
    let mut d = Dec::new(payload, Vec::new());
    let n = d.count()?;
    Ok((&payload[d.at..d.at + n], &payload[d.at + n..]))
}

/// One block as [`put_lz4`] wrote it, uncompressed into `out`.
fn unpack_into(block: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
    let Some(head) = block.get(..4) else { return bad("truncated") };
    let n = u32::from_le_bytes(head.try_into().expect("four bytes")) as usize;
    // An LZ4 block expands its input at most 255 times.
    if n > MAX_PAYLOAD || n > block.len().saturating_mul(255) {
        return bad(format!("a payload of {n} bytes from {}", block.len()));
    }
    out.clear();
    out.resize(n, 0);
    match lz4_flex::block::decompress_into(&block[4..], out) {
        Ok(m) if m == n => Ok(()),
        Ok(m) => bad(format!("an LZ4 block of {m} bytes where its head says {n}")),
        Err(e) => bad(format!("not an LZ4 block: {e}")),
    }
}

/// A payload's body as [`Enc::finish`] wrote it, uncompressed into `out`
/// (for [`Dec::with_syms`]).
pub fn unpack_body(payload: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
    unpack_into(blocks(payload)?.1, out)
}

/// A payload's table of strings and its body, uncompressed (for
/// [`Dec::open`]).
pub fn unpack(payload: &[u8]) -> Result<(Vec<u8>, Vec<u8>), CodecError> {
    let (strings, body) = blocks(payload)?;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    unpack_into(strings, &mut a)?;
    unpack_into(body, &mut b)?;
    Ok((a, b))
}

/// Reads a payload whose strings were interned into a run's strings.
pub struct Dec<'a> {
    bytes: &'a [u8],
    at: usize,
    syms: Vec<Sym>,
    /// The version of the account state being read (see
    /// [`Dec::carry_version`]).
    carry: u8,
}

impl<'a> Dec<'a> {
    /// Starts reading a payload's `body` alone, the strings of its `table`
    /// interned into `strings` ([`unpack`] gives both).
    pub fn open(table: &[u8], body: &'a [u8], strings: &mut Interner) -> Result<Dec<'a>, CodecError> {
        let mut local = LocalStrings::new();
        let syms = parse_strings(table, &mut local)?;
        let map = strings.absorb(&local);
        Ok(Dec::with_syms(body, syms.into_iter().map(|s| map[s.index()]).collect()))
    }

    /// Reads a payload's `body` ([`unpack_body`]), its table's strings
    /// being `syms` ([`read_strings`], mapped to the run's strings).
    pub fn with_syms(body: &'a [u8], syms: Vec<Sym>) -> Dec<'a> {
        Dec::new(body, syms)
    }

    /// A reader at the start of `bytes`, of the newest account state.
    fn new(bytes: &'a [u8], syms: Vec<Sym>) -> Dec<'a> {
        Dec { bytes, at: 0, syms, carry: u8::MAX }
    }

    /// The version of the account state being read, as its version byte
    /// said ([`Dec::set_carry_version`]), for readers of older versions;
    /// the newest until set.
    pub fn carry_version(&self) -> u8 {
        self.carry
    }

    /// Records the version of the account state being read.
    pub fn set_carry_version(&mut self, version: u8) {
        self.carry = version;
    }

    /// Whether every byte was read.
    pub fn done(&self) -> bool {
        self.at == self.bytes.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        match self.bytes.get(self.at..self.at.saturating_add(n)) {
            Some(b) if self.at.checked_add(n).is_some() => {
                self.at += n;
                Ok(b)
            }
            _ => bad("truncated"),
        }
    }

    /// An unsigned integer.
    pub fn u64(&mut self) -> Result<u64, CodecError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            if shift == 63 && byte > 1 {
                return bad("an integer of more than 64 bits");
            }
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        bad("an integer of more than 64 bits")
    }

    /// A count or length, checked against the bytes left (each counted
    /// thing takes at least one byte), so that a bad count cannot make a
    /// reader allocate without bound.
    pub fn count(&mut self) -> Result<usize, CodecError> {
        let n = self.u64()?;
        match usize::try_from(n) {
            Ok(n) if n <= self.bytes.len() - self.at => Ok(n),
            _ => bad(format!("a count of {n} with {} bytes left", self.bytes.len() - self.at)),
        }
    }

    /// A signed integer.
    pub fn i64(&mut self) -> Result<i64, CodecError> {
        let v = self.u64()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// A time.
    pub fn time(&mut self) -> Result<Millis, CodecError> {
        self.i64()
    }

    /// A count that fits 32 bits.
    pub fn u32(&mut self) -> Result<u32, CodecError> {
        let v = self.u64()?;
        u32::try_from(v).or_else(|_| bad(format!("{v} does not fit 32 bits")))
    }

    /// A float.
    pub fn f64(&mut self) -> Result<f64, CodecError> {
        let b = self.take(8)?;
        Ok(f64::from_bits(u64::from_le_bytes(b.try_into().expect("eight bytes"))))
    }

    /// A flag.
    pub fn bool(&mut self) -> Result<bool, CodecError> {
        match self.take(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            b => bad(format!("a flag of {b}")),
        }
    }

    /// A byte.
    pub fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    /// A text.
    pub fn text(&mut self) -> Result<&'a str, CodecError> {
        let n = self.count()?;
        std::str::from_utf8(self.take(n)?).or_else(|_| bad("a text that is not UTF-8"))
    }

    /// A symbol.
    pub fn sym(&mut self) -> Result<Sym, CodecError> {
        let i = self.u64()?;
        usize::try_from(i)
            .ok()
            .and_then(|i| self.syms.get(i).copied())
            .map_or_else(|| bad(format!("string {i} of a table of {}", self.syms.len())), Ok)
    }

    /// An optional symbol.
    pub fn opt_sym(&mut self) -> Result<Option<Sym>, CodecError> {
        if self.bool()? { Ok(Some(self.sym()?)) } else { Ok(None) }
    }

    /// A signal's verdict.
    pub fn outcome(&mut self) -> Result<Outcome, CodecError> {
        match self.u8()? {
            // Versions 1 and 2 wrote the words as text after kind 0.
            0 => Ok(Outcome::Fire { strength: self.f64()?, why: Why::Text(self.text()?.to_string()) }),
            3 => Ok(Outcome::Fire { strength: self.f64()?, why: Why::load(self)? }),
            1 => Ok(Outcome::Quiet),
            2 => Ok(Outcome::Abstain),
            k => bad(format!("a verdict of kind {k}")),
        }
    }
}

/// Reads the table of strings of a payload into `local`: each string's
/// symbol there, in table order (`scratch` holds the table uncompressed).
/// Accounts' tables are read so in parallel, into one [`LocalStrings`] per
/// chunk of accounts, which [`Interner::absorb`] then merges into the run's
/// strings ([`Dec::with_syms`] reads the body).
pub fn read_strings(payload: &[u8], local: &mut LocalStrings, scratch: &mut Vec<u8>) -> Result<Vec<Sym>, CodecError> {
    unpack_into(blocks(payload)?.0, scratch)?;
    parse_strings(scratch, local)
}

/// The strings of an uncompressed table, all of it.
fn parse_strings(table: &[u8], local: &mut LocalStrings) -> Result<Vec<Sym>, CodecError> {
    let mut d = Dec::new(table, Vec::new());
    let n = d.count()?;
    let mut syms = Vec::with_capacity(n);
    for _ in 0..n {
        syms.push(local.intern(d.text()?));
    }
    if !d.done() {
        return bad("bytes after the table of strings");
    }
    Ok(syms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_back_as_written_and_every_cut_is_an_error() {
        let mut strings = Interner::new();
        let (a, b) = (strings.intern("alpha"), strings.intern("β"));
        let mut e = Enc::new(&strings);
        for v in [0u64, 1, 127, 128, 300, u64::MAX] {
            e.u64(v);
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            e.i64(v);
        }
        e.f64(0.1);
        e.f64(f64::NEG_INFINITY);
        e.sym(b);
        e.sym(a);
        e.sym(b);
        e.opt_sym(None);
        e.text("why, with words");
        e.outcome(&Outcome::Fire { strength: 0.25, why: Why::Text("x".into()) });
        e.outcome(&Outcome::Abstain);
        let bytes = e.finish();

        let mut other = Interner::new();
        let (table, body) = unpack(&bytes).unwrap();
        let mut d = Dec::open(&table, &body, &mut other).unwrap();
        for v in [0u64, 1, 127, 128, 300, u64::MAX] {
            assert_eq!(d.u64().unwrap(), v);
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(d.i64().unwrap(), v);
        }
        assert_eq!(d.f64().unwrap(), 0.1);
        assert_eq!(d.f64().unwrap(), f64::NEG_INFINITY);
        assert_eq!(other.resolve(d.sym().unwrap()), "β");
        assert_eq!(other.resolve(d.sym().unwrap()), "alpha");
        assert_eq!(other.resolve(d.sym().unwrap()), "β");
        assert_eq!(d.opt_sym().unwrap(), None);
        assert_eq!(d.text().unwrap(), "why, with words");
        assert_eq!(d.outcome().unwrap(), Outcome::Fire { strength: 0.25, why: Why::Text("x".into()) });
        assert_eq!(d.outcome().unwrap(), Outcome::Abstain);
        assert!(d.done());

        // Every proper prefix fails somewhere, never panics.
        for cut in 0..bytes.len() {
            let prefix = &bytes[..cut];
            let read = || -> Result<(), CodecError> {
                let mut other = Interner::new();
                let (table, body) = unpack(prefix)?;
                let mut d = Dec::open(&table, &body, &mut other)?;
                for _ in 0..6 {
                    d.u64()?;
                }
                for _ in 0..5 {
                    d.i64()?;
                }
                d.f64()?;
                d.f64()?;
                for _ in 0..3 {
                    d.sym()?;
                }
                d.opt_sym()?;
                d.text()?;
                d.outcome()?;
                d.outcome()?;
                Ok(())
            };
            assert!(read().is_err(), "a payload cut at {cut} of {} read", bytes.len());
        }
    }
}
